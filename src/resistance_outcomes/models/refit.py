"""Refitting a built design to a new response (simulation-based power, the bootstrap).

A design is built once (model frame, X, Z, the formula's terms) and refitted with only
its response replaced; the covariance parameters may start at given values (a warm
start), e.g. the truth of a power analysis or the estimates of a bootstrapped fit.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .design import MixedDesign
from .families import get_family
from .linalg import single_threaded_blas
from .lmm import theta_scale

__all__ = ["WARM_START_MIN", "model_response", "refit", "warm_design"]

WARM_START_MIN = 0.1  # start of a zero variance (optimizer's coordinates)


@single_threaded_blas
def refit(
    design: MixedDesign,
    family: str,
    y: np.ndarray,
    reml: bool = True,
    control: dict | None = None,
    nagq: int = 1,
):
    """The model of ``design`` fitted to the response ``y`` (same rows, same order).

    Parameters
    ----------
    design : MixedDesign
        A built design (its ``theta0`` is the optimizer's start, see :func:`warm_design`).
    family : str
    y : numpy.ndarray
        The new response on the design's scale (binomial: proportions of the trials, see
        :func:`model_response`).
    reml, control, nagq
        As :func:`resistance_outcomes.models.fit_mixed`.

    Returns
    -------
    MixedResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import build_design, fit_mixed
    >>> rng = np.random.default_rng(2)
    >>> g = np.repeat(np.arange(6), 5)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=6)[g] + rng.normal(size=30)})
    >>> design = build_design("y ~ 1 + (1 | g)", df)
    >>> y = df["y"].to_numpy() + 1.0
    >>> again = refit(design, "gaussian", y)
    >>> fresh = fit_mixed("y ~ 1 + (1 | g)", df.assign(y=y))
    >>> bool(np.allclose(again.beta, fresh.beta))
    True
    """
    design = replace(design, y=np.asarray(y, dtype=float))
    if not get_family(family).glmm:
        from .lmm import fit_lmm

        return fit_lmm(design, reml=reml, control=control)
    from .glmm import fit_glmm

    return fit_glmm(design, family, nagq=nagq, control=control)


def model_response(family: str, sims: np.ndarray, design: MixedDesign) -> np.ndarray:
    """The design's response from simulated values: binomial successes become proportions
    of the trials (the prior weights); other families are unchanged.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models import build_design
    >>> df = pd.DataFrame({"s": [1, 2], "f": [3, 2], "g": ["a", "b"]})
    >>> design = build_design("cbind(s, f) ~ 1 + (1 | g)", df)
    >>> model_response("binomial", np.array([2.0, 4.0]), design).tolist()
    [0.5, 1.0]
    """
    if get_family(family).name == "binomial":
        return sims / design.prior_weights
    return sims


def warm_design(design: MixedDesign, theta: np.ndarray) -> MixedDesign:
    """The design with its starting ``theta0`` at ``theta`` (relative covariance
    parameters, lme4's layout), converted to the optimizer's coordinates; entries with a
    lower bound of 0 (variances) start at least at :data:`WARM_START_MIN`.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("aabb")})
    >>> design = build_design("y ~ 1 + (1 | g)", df)
    >>> warm_design(design, np.array([0.0])).theta0.tolist()
    [0.1]
    """
    start = np.asarray(theta, dtype=float) * theta_scale(design)
    start = np.where(design.theta_lower == 0, np.maximum(start, WARM_START_MIN), start)
    return replace(design, theta0=start)
