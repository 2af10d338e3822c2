"""Profile-likelihood intervals of variance shares: the ICC and each grouping factor's share.

A variance share is ``V_num / (V_all + v_e)`` on the link scale, with the quantities of
:func:`~resistance_outcomes.models.inference.nakagawa_r2`: each random term contributes
``V_b = mean_i z_i' Sigma_b z_i`` (Johnson, 2014), terms with one level per observation
(generalised models) count as residual variance, and ``v_e`` is the family's level-1
variance (:meth:`~resistance_outcomes.models.families.GlmmFamily.latent_variance`: the
residual variance ``sigma^2`` of a linear model, ``pi^2 / 3`` for the logit link, the
lognormal approximation for log-link counts with the null model's mean held at its
estimate). Two kinds of share are profiled:

* ``ICC``: the adjusted ICC, every grouping term in the numerator (the ICC of the model
  tables and of ``performance::icc``);
* ``VPC (<group>)``, when a model has more than one grouping factor: the share of one
  factor's terms, e.g. of therapists in ``(1 | therapist/client)`` (the variance
  partition coefficient; Goldstein, Browne & Rasbash, 2002).

The profile of a share ``c`` is the deviance minimised over all parameters subject to
the share being ``c`` (the profile likelihood of a function of the parameters; Venzon &
Moolgavkar, 1988). It is walked on the scale of the SD ratio
``r = sqrt(c / (1 - c)) = sqrt(V_num / (V_rest + v_e))``, which behaves as an SD does (a
bound at zero, a profile close to linear), and the limits are transformed back. It is
computed in coordinates where ``r`` is one of them: ``r`` takes the place of one SD of the
numerator (the pivot, the one contributing most at the estimate), and the numerator's
SDs are ``t * d``, where ``d`` are the walk's coordinates (the pivot's held at its
estimate) and ``t`` is solved from ``r``,

    t = r sqrt((V_rest + v_e) / V_num(d)),

so that every ``d``, correlation, other SD, residual SD, NB2 size and fixed effect is a
free coordinate without constraints beyond its bounds; at the estimate ``t = 1`` and
``d`` are the SDs. The walk, the spline interpolation and its inversion are those of
:mod:`~resistance_outcomes.models.profile`, on the same deviance (the ML deviance of a
linear model, also for a REML fit, as lme4 profiles it; the exact Laplace deviance of a
generalised model), with points added at the limits until zeta there is within 1e-3 of
the quantile (the profile of a share bends where another SD reaches zero). A share whose
profile reaches 0 before the quantile gets the lower limit 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .families import get_family
from .linalg import single_threaded_blas
from .profile import (
    INTERVAL_COLUMNS,
    ProfiledParameter,
    _check_level,
    _GlmmProfiler,
    _LmmProfiler,
    block_sd_corr,
    make_profiler,
    walk_profiles,
)

__all__ = ["ShareSpec", "share_intervals", "share_specs", "variance_share"]


def share_to_ratio(share: float) -> float:
    """The SD ratio ``sqrt(share / (1 - share))``, the scale the share is profiled on."""
    return float(np.sqrt(share / (1 - share))) if share < 1 else np.inf


def ratio_to_share(ratio: float) -> float:
    """The share ``r^2 / (1 + r^2)`` of an SD ratio (1 for an infinite ratio)."""
    return float(ratio**2 / (1 + ratio**2)) if np.isfinite(ratio) else (1.0 if ratio > 0 else ratio)


@dataclass(frozen=True)
class ShareSpec:
    """A variance share: its name, group and term in interval tables, and the random
    terms (indices into ``design.blocks``) of its numerator."""

    name: str
    group: str
    term: str
    numerator: tuple[int, ...]


def share_specs(design, family) -> list[ShareSpec]:
    """The variance shares of a model: the ICC, and one share per grouping factor when
    there are several.

    Parameters
    ----------
    design : MixedDesign
    family : str or GlmmFamily

    Returns
    -------
    list of ShareSpec
        Empty when no random term groups observations (only observation-level terms).

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2, 4, 3, 5, 6, 2, 3], "t": list("aaaabbbb"),
    ...                    "c": list("kkllmmnn")})
    >>> d = build_design("y ~ 1 + (1 | t/c)", df)
    >>> [(s.name, s.group, s.numerator) for s in share_specs(d, "gaussian")]
    [('ICC', '', (0, 1)), ('VPC (t:c)', 't:c', (0,)), ('VPC (t)', 't', (1,))]
    """
    family = get_family(family)
    grouping = [
        i
        for i, block in enumerate(design.blocks)
        if family.name == "gaussian" or block.n_levels != design.n
    ]
    if not grouping:
        return []
    latent = "" if family.name == "gaussian" else ", latent scale"
    groups = list(dict.fromkeys(design.blocks[i].group for i in grouping))
    overall = groups[0] if len(groups) == 1 else ""
    specs = [ShareSpec("ICC", overall, f"ICC (adjusted{latent})", tuple(grouping))]
    if len(groups) > 1:
        for group in groups:
            members = tuple(i for i in grouping if design.blocks[i].group == group)
            specs.append(
                ShareSpec(f"VPC ({group})", group, f"variance share ({group}{latent})", members)
            )
    return specs


class _ShareMap:
    """The coordinates of a share's profile (``c`` at the pivot, ``d`` for the
    numerator's SDs) and the parameters on the SD scale they stand for."""

    def __init__(self, fit, spec: ShareSpec, params: list[ProfiledParameter]):
        from .design import _lower_triangle_colmajor
        from .inference import nakagawa_r2

        design = fit.design
        self.n_theta = len(fit.theta)
        self.family = get_family(fit.family)
        self.mean = None
        if self.family.latent_needs_mean:
            r2 = fit.extra.get("_r2") or nakagawa_r2(fit)
            self.mean = r2["null_mean"]
        self.blocks = []  # (slice, rows, cols, mean of z z', in numerator)
        numerator_sd = []
        for b, block in enumerate(design.blocks):
            rows, cols = _lower_triangle_colmajor(block.n_coef)
            mm = block.model_matrix
            self.blocks.append(
                (block.theta_slice, rows, cols, mm.T @ mm / design.n, b in spec.numerator)
            )
            if b in spec.numerator:
                start = block.theta_slice.start
                numerator_sd += [
                    start + k for k, (r, c) in enumerate(zip(rows, cols, strict=True)) if r == c
                ]
        self.numerator_sd = np.array(numerator_sd)
        dispersion = [i for i, p in enumerate(params) if p.kind in ("sigma", "nb_size")]
        self.dispersion_index = dispersion[0] if dispersion else None
        values = np.array([p.value for p in params])
        contributions = [self._sd_contribution(values, k) for k in self.numerator_sd]
        self.pivot = int(self.numerator_sd[int(np.argmax(contributions))])
        self.ref = 1.0

    def _sd_contribution(self, values, k) -> float:
        for sl, rows, _, mean_zz, _ in self.blocks:
            if sl.start <= k < sl.stop:
                r = rows[k - sl.start]
                return float(values[k] ** 2 * mean_zz[r, r])
        return 0.0

    def variances(self, sdcor) -> tuple[float, float]:
        """(numerator variance, other random terms' variance) at SDs and correlations."""
        num = rest = 0.0
        for sl, rows, cols, mean_zz, in_numerator in self.blocks:
            sd, corr = block_sd_corr(sdcor[sl], rows, cols)
            variance = float(sd @ (corr * mean_zz) @ sd)
            if in_numerator:
                num += variance
            else:
                rest += variance
        return num, rest

    def level1(self, y) -> float:
        """The family's level-1 variance at the residual SD or NB2 size of ``y``."""
        family = self.family
        if family.name == "gaussian":
            return family.latent_variance(sigma=float(y[self.dispersion_index]))
        if family.n_dispersion:
            phi = float(y[self.dispersion_index])  # size**-0.5
            family = replace(family, theta=phi**-2 if phi > 0 else np.inf)
        return family.latent_variance(mean=self.mean)

    def share(self, params) -> float:
        """The share at parameters on the SD scale."""
        num, rest = self.variances(np.asarray(params, float)[: self.n_theta])
        total = num + rest + self.level1(params)
        return num / total if total > 0 else np.nan

    def scale_factor(self, y) -> float:
        """``t``: the factor of the numerator's SDs that gives the SD ratio ``y[pivot]``."""
        ratio = float(y[self.pivot])
        if ratio <= 0:
            return 0.0
        sdcor = np.array(y[: self.n_theta], dtype=float)
        sdcor[self.pivot] = self.ref
        num, rest = self.variances(sdcor)
        return float(ratio * np.sqrt((rest + self.level1(y)) / num))

    def to_params(self, y) -> np.ndarray:
        """Parameters on the SD scale (profile.py's order) at coordinates ``y``."""
        par = np.array(y, dtype=float)
        t = self.scale_factor(y)
        par[self.pivot] = self.ref
        par[self.numerator_sd] *= t
        return par

    def from_params(self, params) -> np.ndarray:
        """Coordinates of parameters on the SD scale (``t = 1``; the pivot's reference
        is its SD there, or 1 when the numerator is zero)."""
        y = np.array(params, dtype=float)
        self.ref = float(y[self.pivot]) if y[self.pivot] > 0 else 1.0
        y[self.pivot] = share_to_ratio(self.share(params))
        return y

    def pull_back(self, y, grad) -> np.ndarray:
        """The gradient in the coordinates from the gradient on the SD scale (chain rule;
        ``t``'s derivatives by central differences, exact for its polynomial parts)."""
        t = self.scale_factor(y)
        d = np.array(y[: self.n_theta], dtype=float)
        d[self.pivot] = self.ref
        out = np.array(grad, dtype=float)
        out[self.numerator_sd] = t * grad[self.numerator_sd]
        out[self.pivot] = 0.0  # held in every profile point
        if t == 0:
            return out
        g_num = float(grad[self.numerator_sd] @ d[self.numerator_sd])
        n_var = self.n_theta + (self.dispersion_index is not None)
        for j in range(n_var):
            if j == self.pivot:
                continue
            h = 1e-6 * max(1.0, abs(y[j]))
            up, down = np.array(y, dtype=float), np.array(y, dtype=float)
            up[j] += h
            down[j] -= h
            out[j] += g_num * (self.scale_factor(up) - self.scale_factor(down)) / (2 * h)
        return out


def _share_parameters(params, share_map, spec, value) -> list[ProfiledParameter]:
    params = list(params)
    params[share_map.pivot] = ProfiledParameter(
        spec.name, spec.group, spec.term, "share", value, 0.0, np.inf
    )
    return params


class _LmmShareProfiler(_LmmProfiler):
    """The ML deviance of a linear mixed model in a share's coordinates."""

    def __init__(self, base: _LmmProfiler, share_map: _ShareMap, spec: ShareSpec):
        self.__dict__.update(base.__dict__)
        self.map = share_map
        self.optimum = share_map.from_params(base.optimum)
        self.params = _share_parameters(base.params, share_map, spec, self.optimum[share_map.pivot])
        self.lower, self.upper = base.lower.copy(), base.upper.copy()
        self.lower[share_map.pivot], self.upper[share_map.pivot] = 0.0, np.inf

    def _to_params(self, varpar):
        return self.map.to_params(varpar)

    def deviance(self, varpar) -> float:
        return _LmmProfiler.deviance(self, self.map.to_params(varpar))


class _GlmmShareProfiler(_GlmmProfiler):
    """The Laplace deviance of a GLMM and its gradient in a share's coordinates."""

    def __init__(self, base: _GlmmProfiler, share_map: _ShareMap, spec: ShareSpec):
        self.__dict__.update(base.__dict__)
        self.map = share_map
        pivot = share_map.pivot
        self.optimum = share_map.from_params(base.optimum)
        self.params = _share_parameters(base.params, share_map, spec, self.optimum[pivot])
        self.lower, self.upper = base.lower.copy(), base.upper.copy()
        self.lower[pivot], self.upper[pivot] = 0.0, np.inf
        self.scale = base.scale.copy()
        self.scale[pivot] = 1.0
        self._hessian = self._share_hessian()

    def value_and_gradient(self, par):
        y = np.asarray(par, dtype=float)
        value, grad = _GlmmProfiler.value_and_gradient(self, self.map.to_params(y))
        if not np.isfinite(value):
            return np.inf, np.zeros_like(y)
        return value, self.map.pull_back(y, grad)

    def _share_hessian(self) -> np.ndarray:
        """The Hessian at the optimum over every coordinate but the share (held in each
        point), in units of the coordinates' scales; 1 on the share's diagonal."""
        n = len(self.params)
        hess = np.zeros((n, n))
        for j in range(n):
            if j == self.map.pivot:
                continue
            step = np.zeros(n)
            step[j] = 1e-4 * self.scale[j]
            up = self.value_and_gradient(self.optimum + step)[1] * self.scale
            down = self.value_and_gradient(self.optimum - step)[1] * self.scale
            hess[:, j] = (up - down) / 2e-4
        hess[self.map.pivot, :] = hess[:, self.map.pivot] = 0.0
        hess[self.map.pivot, self.map.pivot] = 1.0
        return 0.5 * (hess + hess.T)


def variance_share(fit, spec: ShareSpec) -> float:
    """A share's value at the fit's estimates.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> round(variance_share(fit, share_specs(fit.design, fit.family)[0]), 3)  # = icc(fit)
    0.351
    """
    from .profile import profile_parameters

    params = profile_parameters(fit)
    return _ShareMap(fit, spec, params).share([p.value for p in params])


@single_threaded_blas
def share_intervals(fit, level: float = 0.95, profiler=None) -> pd.DataFrame:
    """Profile-likelihood intervals of the ICC and of each grouping factor's share.

    Parameters
    ----------
    fit : MixedResult
    level : float
    profiler : optional
        From :func:`~resistance_outcomes.models.profile.make_profiler` (``fit``'s), to
        share it with the parameters' profiles.

    Returns
    -------
    pandas.DataFrame
        In the columns of :func:`~resistance_outcomes.models.profile.profile_intervals`:
        one row ``ICC`` and, for a model with several grouping factors, one row
        ``VPC (<group>)`` per factor (:func:`share_specs`); estimate at the fit's
        estimates; empty without a grouping term.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})
    >>> share_intervals(fit_mixed("y ~ 1 + (1 | g)", df))[
    ...     ["parameter", "estimate", "ci_low", "ci_high"]].round(3)
      parameter  estimate  ci_low  ci_high
    0       ICC     0.268   0.011    0.589
    """
    _check_level(level)
    specs = share_specs(fit.design, fit.family)
    if not specs:
        return pd.DataFrame(columns=INTERVAL_COLUMNS)
    base = profiler or make_profiler(fit)
    wrapper = _LmmShareProfiler if isinstance(base, _LmmProfiler) else _GlmmShareProfiler
    rows = []
    for spec in specs:
        share_map = _ShareMap(fit, spec, base.params)
        profiler_c = wrapper(base, share_map, spec)
        prof = walk_profiles(profiler_c, [share_map.pivot], level, refine=True)[spec.name]
        low, high = (ratio_to_share(r) for r in prof.limits(level))
        rows.append(
            {
                "parameter": spec.name,
                "group": spec.group,
                "term": spec.term,
                "estimate": variance_share(fit, spec),
                "ci_low": low,
                "ci_high": high,
                "method": "profile",
                "note": "; ".join(dict.fromkeys(prof.messages)),
            }
        )
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
