"""The true parameters of a power simulation, from natural-scale statements or from a fit.

A truth is a mapping on the model's own (link) scale::

    {"fixed": {term: value, ...},            # lme4 column names of X
     "sd": {group: sd or [sd_1, sd_2, ...]}, # per random-effect term, coefficient order
     "corr": {group: [[1, r], [r, 1]]},      # optional, vector-valued terms
     "sigma": 0.8,                           # gaussian only
     "theta": 2.5}                           # NB2 size, negative_binomial only

Conversions from the quantities a study plan states:

- :func:`sd_from_icc` / :func:`icc_from_sd`: a therapist share of variance (ICC) and the
  random-intercept SD, on the latent logit scale for binomial models, on the log scale for
  Poisson and NB2 models (the lognormal approximation of Nakagawa, Johnson & Schielzeth,
  2017, as :func:`resistance_outcomes.models.nakagawa_r2` computes the ICC of a fit), and
  on the response scale for gaussian models;
- :func:`log_ratio`: an odds ratio or rate ratio as its coefficient, ``log(ratio)``;
- :func:`logit`: a baseline dropout probability or per-session hazard as a logit
  intercept; :func:`per_session_hazard`: the constant per-session hazard that yields an
  overall dropout probability over a number of sessions;
- :func:`log_rate_per_minute`: a baseline rate per session of a given length as the
  intercept of a count model with ``offset(log(minutes))``.

:func:`build_truth` assembles and checks a truth for a formula's terms;
:func:`truth_from_fit` takes it from a fitted model (a pilot study), with any part
overridden.
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..models import MixedResult, build_design, get_family, parse_formula

__all__ = [
    "TruthError",
    "build_truth",
    "icc_from_sd",
    "log_rate_per_minute",
    "log_ratio",
    "logit",
    "per_session_hazard",
    "sd_from_icc",
    "truth_from_fit",
]

#: The keys of a truth mapping.
TRUTH_KEYS = ("fixed", "sd", "corr", "sigma", "theta")


class TruthError(ValueError):
    """A stated truth is incomplete or inconsistent with the model; the message says how."""


# --------------------------------------------------------------------------- conversions


def _number(value, what: str, low=None, high=None, open_low=True, open_high=True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TruthError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise TruthError(f"{what} must be finite, got {value!r}")
    if low is not None and (number < low or (open_low and number == low)):
        bound = ">" if open_low else ">="
        raise TruthError(f"{what} must be {bound} {low}, got {value!r}")
    if high is not None and (number > high or (open_high and number == high)):
        bound = "<" if open_high else "<="
        raise TruthError(f"{what} must be {bound} {high}, got {value!r}")
    return number


def _distribution_variance(family: str, sigma=None, mean=None, theta=None) -> float:
    """Level-1 variance on the model scale (the family's ``latent_variance``)."""
    fam = get_family(family)
    if fam.name == "gaussian":
        if sigma is None:
            raise TruthError("a gaussian ICC needs the residual SD: give sigma")
        return fam.latent_variance(sigma=_number(sigma, "sigma", low=0))
    if not fam.latent_needs_mean:
        return fam.latent_variance()
    if mean is None:
        raise TruthError(
            f"a {fam.name} ICC on the log scale needs the mean count per observation: give mean"
        )
    mu = _number(mean, "mean", low=0)
    if fam.n_dispersion:
        if theta is None:
            raise TruthError(f"a {fam.name} ICC needs the NB2 size: give theta")
        fam = replace(fam, theta=_number(theta, "theta", low=0))
    return fam.latent_variance(mean=mu)


def sd_from_icc(
    icc: float,
    family: str = "binomial",
    *,
    sigma: float | None = None,
    mean: float | None = None,
    theta: float | None = None,
    other_variance: float = 0.0,
) -> float:
    """Random-intercept SD of a grouping factor (e.g. therapist) from its share of variance.

    The share is ``icc = v / (v + v_other + v_e)``, so ``v = icc / (1 - icc) * (v_other +
    v_e)`` and the SD is ``sqrt(v)``, where ``v_other`` is the variance of the model's
    other random intercepts (e.g. clients within therapists; 0 by default) and ``v_e`` the
    level-1 variance on the model scale:

    - binomial (logit link): ``pi^2 / 3``, the variance of the standard logistic
      distribution (latent-variable definition; Snijders & Bosker, 2012, section 17.2);
    - Poisson (log link): ``log(1 + 1 / mean)``; NB2: ``log(1 + 1 / mean + 1 / theta)``
      (lognormal approximation, Nakagawa, Johnson & Schielzeth, 2017, J R Soc Interface
      14: 20170213), with ``mean`` the expected count per observation; the definition
      :func:`resistance_outcomes.models.nakagawa_r2` uses for a fit's ICC;
    - gaussian: ``sigma^2``.

    Parameters
    ----------
    icc : float
        Share of variance, in [0, 1).
    family : str
        ``"binomial"``, ``"poisson"``, ``"negative_binomial"`` or ``"gaussian"``.
    sigma : float, optional
        Residual SD (gaussian).
    mean : float, optional
        Mean count per observation, e.g. ruptures per session (Poisson, NB2).
    theta : float, optional
        NB2 size (negative_binomial).
    other_variance : float, default 0
        Sum of the other random-intercept variances in the denominator.

    Returns
    -------
    float

    Examples
    --------
    >>> round(sd_from_icc(0.126), 2)  # therapist share of dropout, Saxon et al. 2017
    0.69
    >>> round(sd_from_icc(0.2, "gaussian", sigma=1.0), 3)
    0.5
    """
    share = _number(icc, "icc", low=0, high=1, open_low=False)
    other = _number(other_variance, "other_variance", low=0, open_low=False)
    level1 = _distribution_variance(family, sigma=sigma, mean=mean, theta=theta)
    return math.sqrt(share / (1 - share) * (other + level1))


def icc_from_sd(
    sd: float,
    family: str = "binomial",
    *,
    sigma: float | None = None,
    mean: float | None = None,
    theta: float | None = None,
    other_variance: float = 0.0,
) -> float:
    """Share of variance of a random intercept with SD ``sd``: the inverse of
    :func:`sd_from_icc`, ``sd^2 / (sd^2 + other_variance + v_e)``.

    Examples
    --------
    >>> round(icc_from_sd(0.69), 3)
    0.126
    """
    value = _number(sd, "sd", low=0, open_low=False)
    other = _number(other_variance, "other_variance", low=0, open_low=False)
    level1 = _distribution_variance(family, sigma=sigma, mean=mean, theta=theta)
    return value**2 / (value**2 + other + level1)


def log_ratio(ratio: float) -> float:
    """Coefficient of an odds ratio (logit link) or rate ratio (log link): ``log(ratio)``.

    Examples
    --------
    >>> round(log_ratio(2.7), 4)  # alliance and dropout, OR about 2.7 (Sharf et al. 2010)
    0.9933
    """
    return math.log(_number(ratio, "ratio", low=0))


def logit(probability: float) -> float:
    """Logit intercept of a baseline probability or per-session hazard: ``log(p / (1 - p))``.

    Examples
    --------
    >>> round(logit(0.197), 4)  # dropout rate across studies, Swift & Greenberg 2012
    -1.4052
    """
    p = _number(probability, "probability", low=0, high=1)
    return math.log(p / (1 - p))


def per_session_hazard(dropout_probability: float, sessions: int) -> float:
    """Constant per-session hazard ``h`` that gives an overall dropout probability ``P`` over
    ``sessions`` periods: ``1 - (1 - h)^sessions = P``, so ``h = 1 - (1 - P)^(1/sessions)``.

    The periods are the rows at risk: a person-period design of ``K`` planned sessions
    (:func:`resistance_outcomes.power.person_period_design`) has ``K - 1`` rows per client,
    so a dropout probability over the plan gives ``per_session_hazard(P, K - 1)``.

    Examples
    --------
    >>> round(per_session_hazard(0.197, 12), 3)  # about 0.018 (domain figures)
    0.018
    """
    p = _number(dropout_probability, "dropout_probability", low=0, high=1)
    k = _number(sessions, "sessions", low=0)
    if k != int(k):
        raise TruthError(f"sessions must be a whole number, got {sessions!r}")
    return 1 - (1 - p) ** (1 / k)


def log_rate_per_minute(rate_per_session: float, minutes: float) -> float:
    """Intercept of a count model with ``offset(log(minutes))`` for a baseline rate per
    session of ``minutes`` minutes: ``log(rate_per_session / minutes)``.

    Examples
    --------
    >>> round(log_rate_per_minute(2.0, 50.0), 4)  # 2 ruptures per 50-minute session
    -3.2189
    """
    rate = _number(rate_per_session, "rate_per_session", low=0)
    return math.log(rate / _number(minutes, "minutes", low=0))


# --------------------------------------------------------------------------- the builder


def _response_names(response: str) -> set[str]:
    """Column names the response expression reads (``cbind(k, n - k)`` -> {k, n})."""
    try:
        tree = ast.parse(response, mode="eval")
    except SyntaxError:
        return {response}
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in calls}


def _design_for(formula: str, data: pd.DataFrame):
    """The model's design; response columns the data lack (a plan has none yet) are
    filled with 1 only to build it."""
    if not isinstance(data, pd.DataFrame):
        raise TruthError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    parsed = parse_formula(formula)
    missing = sorted(_response_names(parsed.response) - set(map(str, data.columns)))
    if missing:
        data = data.assign(**{name: 1.0 for name in missing})
    return build_design(parsed, data)


def _check_corr(group: str, value, n_coef: int) -> list[list[float]]:
    matrix = np.asarray(value, dtype=float)
    if matrix.shape != (n_coef, n_coef):
        raise TruthError(
            f"corr['{group}'] must be a {n_coef} x {n_coef} matrix (the term's coefficients), "
            f"got shape {matrix.shape}"
        )
    if not np.allclose(matrix, matrix.T) or not np.allclose(np.diag(matrix), 1.0):
        raise TruthError(f"corr['{group}'] must be symmetric with ones on the diagonal")
    if np.any(np.abs(matrix) > 1) or np.linalg.eigvalsh(matrix).min() < -1e-10:
        raise TruthError(f"corr['{group}'] is not a correlation matrix (not positive semidefinite)")
    return matrix.tolist()


def _layout(design) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The fixed-effect terms and the random-effect groups with their coefficients."""
    return list(design.fixed_names), [(b.group, list(b.coef_names)) for b in design.blocks]


def _check_truth(truth: Mapping, layout, family: str) -> dict:
    """Check a truth against a model's terms and groups (:func:`_layout`) and return it
    with plain floats, in the model's order."""
    fixed_names, blocks = layout
    unknown = [k for k in truth if k not in TRUTH_KEYS]
    if unknown:
        raise TruthError(f"unknown truth key(s) {unknown}; a truth has {list(TRUTH_KEYS)}")
    name = get_family(family).name
    fixed = dict(truth.get("fixed") or {})
    extra = [t for t in fixed if t not in fixed_names]
    if extra:
        raise TruthError(
            f"fixed-effect term(s) {extra} are not columns of the model; its terms are "
            f"{fixed_names}"
        )
    missing = [t for t in fixed_names if t not in fixed]
    if missing:
        raise TruthError(
            f"no true value for fixed-effect term(s) {missing}; give them, or "
            "others_zero=True to set every term not given to 0"
        )
    out = {"fixed": {t: _number(fixed[t], f"fixed['{t}']") for t in fixed_names}}
    sds = dict(truth.get("sd") or {})
    corrs = dict(truth.get("corr") or {})
    groups = [group for group, _ in blocks]
    extra = [g for g in [*sds, *corrs] if g not in groups]
    if extra:
        raise TruthError(
            f"random-effect group(s) {sorted(set(extra))} are not terms of the model; its "
            f"groups are {groups}"
        )
    missing = [g for g in groups if g not in sds]
    if missing:
        raise TruthError(f"no true SD for random-effect group(s) {missing}")
    out["sd"], out["corr"] = {}, {}
    for group, coef_names in blocks:
        value = sds[group]
        values = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
        if values.size != len(coef_names):
            raise TruthError(
                f"sd['{group}'] needs {len(coef_names)} value(s), one per coefficient "
                f"{coef_names}, got {value!r}"
            )
        checked = [_number(v, f"sd['{group}']", low=0, open_low=False) for v in values]
        out["sd"][group] = checked[0] if len(coef_names) == 1 else checked
        if group in corrs:
            out["corr"][group] = _check_corr(group, corrs[group], len(coef_names))
    if not out["corr"]:
        del out["corr"]
    if name == "gaussian":
        if truth.get("sigma") is None:
            raise TruthError("a gaussian model needs the residual SD: give sigma")
        out["sigma"] = _number(truth["sigma"], "sigma", low=0)
    elif truth.get("sigma") is not None:
        raise TruthError(f"sigma is the residual SD of gaussian models, not of {name} ones")
    if name == "negative_binomial":
        if truth.get("theta") is None:
            raise TruthError("a negative_binomial model needs the NB2 size: give theta")
        out["theta"] = _number(truth["theta"], "theta", low=0)
    elif truth.get("theta") is not None:
        raise TruthError(f"theta is the NB2 size of negative_binomial models, not of {name} ones")
    return out


def build_truth(
    formula: str,
    data: pd.DataFrame,
    family: str = "gaussian",
    *,
    fixed: Mapping[str, float],
    sd: Mapping | None = None,
    corr: Mapping | None = None,
    sigma: float | None = None,
    theta: float | None = None,
    others_zero: bool = False,
) -> dict:
    """Assemble and check the truth of a power simulation for a formula's terms.

    Every column of the fixed-effects matrix (lme4's names, e.g. ``"(Intercept)"``,
    ``"frameworkcognitive:session_c"``) needs a value, unless ``others_zero`` sets the
    ones not given to 0; every random-effect term needs its SD(s), by its group name as the
    design names it (``"therapist"``, ``"therapist:client"``).

    Parameters
    ----------
    formula : str
        Model formula in lme4 syntax.
    data : pandas.DataFrame
        The planned design (e.g. :func:`resistance_outcomes.power.session_design`); the
        response need not exist yet.
    family : str
        As :func:`resistance_outcomes.models.fit_mixed`.
    fixed : mapping
        Term -> value on the model scale (see :func:`log_ratio`, :func:`logit`,
        :func:`log_rate_per_minute`).
    sd : mapping, optional
        Group -> SD, or a list of SDs in the term's coefficient order (see
        :func:`sd_from_icc`).
    corr : mapping, optional
        Group -> correlation matrix of a vector-valued term (default: uncorrelated).
    sigma : float, optional
        Residual SD; required for gaussian models, refused for others.
    theta : float, optional
        NB2 size; required for negative_binomial models, refused for others.
    others_zero : bool, default False
        Set every fixed-effect term not in ``fixed`` to 0.

    Returns
    -------
    dict
        The truth (keys fixed, sd, corr when given, sigma or theta), terms in design order.

    Raises
    ------
    TruthError
        Listing terms without a value, terms or groups the model does not have, and
        invalid SDs, correlations, sigma or theta.

    Examples
    --------
    >>> from resistance_outcomes.power import client_design
    >>> plan = client_design(["cognitive", "psychodynamic"], 10, 8)
    >>> truth = build_truth("dropout ~ framework + (1 | therapist)", plan, "binomial",
    ...                     fixed={"(Intercept)": logit(0.2),
    ...                            "frameworkpsychodynamic": log_ratio(1.5)},
    ...                     sd={"therapist": sd_from_icc(0.126)})
    >>> round(truth["sd"]["therapist"], 3)
    0.689
    """
    design = _design_for(formula, data)
    fixed = dict(fixed)
    if others_zero:
        fixed = {t: fixed.get(t, 0.0) for t in design.fixed_names} | fixed
    truth = {"fixed": fixed, "sd": dict(sd or {}), "corr": dict(corr or {})}
    truth["sigma"], truth["theta"] = sigma, theta
    return _check_truth(truth, _layout(design), family)


# --------------------------------------------------------------------------- from a fit


def _from_result(result: MixedResult) -> tuple[dict, str, tuple]:
    truth = {"fixed": dict(zip(result.design.fixed_names, map(float, result.beta), strict=True))}
    truth["sd"], truth["corr"] = {}, {}
    covariances = result.design.covariance_matrices(result.theta, result.sigma)
    for block, cov in zip(result.design.blocks, covariances, strict=True):
        sd = np.sqrt(np.diag(cov))
        truth["sd"][block.group] = float(sd[0]) if block.n_coef == 1 else sd.tolist()
        if block.n_coef > 1:
            outer = np.outer(sd, sd)
            corr = np.divide(cov, outer, out=np.zeros_like(cov), where=outer > 0)
            np.fill_diagonal(corr, 1.0)
            truth["corr"][block.group] = corr.tolist()
    if result.family == "gaussian":
        truth["sigma"] = float(result.sigma)
    if result.family == "negative_binomial":
        truth["theta"] = float(result.nb_theta)
    return truth, result.family, _layout(result.design)


def _blank(value) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and value.strip().lower() in ("", "nan"))
    )


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TruthError(
            f"{path}: missing; a model folder has coefficients.csv, "
            "variance_components.csv and fit.json"
        )
    try:
        return pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _from_folder(folder: Path) -> tuple[dict, str, tuple]:
    fit_path = folder / "fit.json"
    if not fit_path.is_file():
        raise TruthError(f"{fit_path}: missing; run the model step for '{folder.name}' first")
    fit = json.loads(fit_path.read_text(encoding="utf-8"))
    if not fit.get("fitted", True):
        raise TruthError(
            f"{fit_path}: the model '{folder.name}' was not fitted "
            f"({fit.get('reason', 'no reason given')}); it gives no truth"
        )
    if str(fit.get("method", "")).upper() == "GEE":
        raise TruthError(
            f"{fit_path}: the model '{folder.name}' is a population-averaged (GEE) fit; its "
            "coefficients are marginal and it has no random-effect variances, so it gives no "
            "truth for a mixed model"
        )
    family = get_family(fit.get("family", "gaussian")).name
    coefficients = _read_csv(folder / "coefficients.csv")
    for column in ("term", "estimate"):
        if column not in coefficients:
            raise TruthError(f"{folder / 'coefficients.csv'}: no column '{column}'")
    truth = {"fixed": {}, "sd": {}, "corr": {}}
    for row, (term, value) in enumerate(
        zip(coefficients.term, coefficients.estimate, strict=True), 2
    ):
        truth["fixed"][str(term)] = _number(
            value, f"{folder / 'coefficients.csv'} row {row} ('{term}') estimate"
        )
    components = _read_csv(folder / "variance_components.csv")
    where = folder / "variance_components.csv"
    for column in ("group", "term1", "term2", "sd", "corr"):
        if not components.empty and column not in components:
            raise TruthError(f"{where}: no column '{column}'")
    names: dict[str, list[str]] = {}
    sds: dict[str, list[float]] = {}
    pairs = []
    for row, rec in enumerate(components.to_dict("records"), 2):
        group = str(rec["group"])
        if group == "Residual":
            truth["sigma"] = _number(rec["sd"], f"{where} row {row} (Residual) sd", low=0)
        elif _blank(rec["term2"]):
            names.setdefault(group, []).append(str(rec["term1"]))
            sds.setdefault(group, []).append(
                _number(rec["sd"], f"{where} row {row} ('{group}') sd", low=0, open_low=False)
            )
        else:
            pairs.append((row, group, str(rec["term1"]), str(rec["term2"]), rec["corr"]))
    for group, values in sds.items():
        truth["sd"][group] = values[0] if len(values) == 1 else values
        if len(values) > 1:
            truth["corr"][group] = np.eye(len(values)).tolist()
    for row, group, term1, term2, value in pairs:
        if group not in names or term1 not in names[group] or term2 not in names[group]:
            raise TruthError(f"{where} row {row}: a correlation of '{group}' terms without SDs")
        i, j = names[group].index(term1), names[group].index(term2)
        r = 0.0 if _blank(value) else _number(value, f"{where} row {row} corr", -1, 1, False, False)
        truth["corr"][group][i][j] = truth["corr"][group][j][i] = r
    if family == "negative_binomial":
        truth["theta"] = _number(fit.get("nb_theta"), f"{fit_path} nb_theta", low=0)
    if family != "gaussian":
        truth.pop("sigma", None)
    return truth, family, (list(truth["fixed"]), list(names.items()))


def truth_from_fit(result_or_folder, override: Mapping | None = None) -> dict:
    """The truth of a fitted model (a pilot study), with any part overridden.

    From a :class:`~resistance_outcomes.models.MixedResult`: ``beta`` by term, the SDs and
    correlations of its random-effect covariance (``variance_components``), ``sigma``
    (gaussian) and ``nb_theta`` (negative_binomial). From a model folder
    (``results/models/<name>/``): the same read from ``coefficients.csv`` (term, estimate),
    ``variance_components.csv`` (SD rows, correlation rows, the ``Residual`` row) and
    ``fit.json`` (family, nb_theta).

    Parameters
    ----------
    result_or_folder : MixedResult, str or path-like
        A fit, or its model folder (a file in it is taken as its folder).
    override : mapping, optional
        Parts to replace, in the truth format: ``{"fixed": {term: value}}`` replaces those
        terms only, ``{"sd": {group: value}}`` those groups, ``"sigma"`` / ``"theta"``
        the value. Terms and groups the fit does not have are refused.

    Returns
    -------
    dict
        The truth (see :mod:`resistance_outcomes.power.truth`).

    Raises
    ------
    TruthError
        For a folder file missing or malformed, a model not fitted or fitted by GEE, or an
        override naming a term or group the model does not have or giving invalid values.

    Examples
    --------
    >>> truth = truth_from_fit("results/models/rupture_frequency",  # doctest: +SKIP
    ...                        {"fixed": {"frameworkcognitive": log_ratio(0.8)}})
    """
    if isinstance(result_or_folder, MixedResult):
        truth, family, layout = _from_result(result_or_folder)
    elif isinstance(result_or_folder, (str, os.PathLike)):
        folder = Path(result_or_folder)
        if folder.suffix in (".json", ".csv"):
            folder = folder.parent
        truth, family, layout = _from_folder(folder)
    else:
        raise TruthError(
            "truth_from_fit takes a MixedResult or a model folder, got "
            f"{type(result_or_folder).__name__}"
        )
    override = dict(override or {})
    unknown = [k for k in override if k not in TRUTH_KEYS]
    if unknown:
        raise TruthError(f"unknown override key(s) {unknown}; a truth has {list(TRUTH_KEYS)}")
    for key in ("fixed", "sd", "corr"):
        given = dict(override.get(key) or {})
        known = truth["fixed"] if key == "fixed" else truth["sd"]
        extra = [t for t in given if t not in known]
        if extra:
            what = "fixed-effect term(s)" if key == "fixed" else "random-effect group(s)"
            raise TruthError(
                f"override {key}: {what} {extra} are not in the fitted model; it has {list(known)}"
            )
        truth.setdefault(key, {}).update(given)
    for key in ("sigma", "theta"):
        if key in override:
            if key not in truth:
                raise TruthError(f"override {key}: the fitted {family} model has no {key}")
            truth[key] = override[key]
    return _check_truth(truth, layout, family)
