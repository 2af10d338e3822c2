"""Simulation-based (DHARMa) scaled residuals and their tests.

DHARMa is not installable here (no Debian package), so the tests check closed forms (the
PIT randomisation, the binomial outlier test), R's own ``ks.test`` and ``binom.test`` on
fixed inputs, and simulations with known truth: residuals of data drawn from the fitted
model itself are uniform (the KS test rejects at about its level or less), and the
dispersion and zero-inflation tests reject for a Poisson model fitted to negative-binomial
and to zero-inflated data.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from resistance_outcomes.models import ModelSpecError, fit_mixed
from resistance_outcomes.models.glmm import fit_glmm
from resistance_outcomes.models.residuals import (
    TEST_COLUMNS,
    SimulatedResiduals,
    dispersion_test,
    outlier_test,
    residual_tests,
    scaled_residuals,
    simulated_residuals,
    uniformity_test,
    zero_inflation_test,
)

GOLDEN = 0.6180339887
#: The long simulation studies (several CPU minutes) run with ``pytest -m long``; their
#: measured rates are stated beside them, and smaller versions always run.
LONG = pytest.mark.long


def _fixed_residuals(n: int) -> np.ndarray:
    """((1:n * 0.6180339887) %% 1)^1.3 in R: a fixed, slightly non-uniform sample."""
    return np.mod(np.arange(1, n + 1) * GOLDEN, 1.0) ** 1.3


def _from_residuals(residuals, nsim=250, observed=None, simulations=None) -> SimulatedResiduals:
    residuals = np.asarray(residuals, dtype=float)
    n = residuals.size
    observed = np.zeros(n) if observed is None else np.asarray(observed, dtype=float)
    table = pd.DataFrame(
        {"row": np.arange(1, n + 1), "observed": observed, "fitted": 0.0, "residual": residuals}
    )
    simulations = np.zeros((n, nsim)) if simulations is None else simulations
    return SimulatedResiduals(table, simulations, nsim, 0, False, "poisson")


def _grouped_data(rng, n_groups=25, per_group=8):
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=g.size)
    eta = 0.3 + 0.4 * x + rng.normal(0, 0.5, n_groups)[g]
    return pd.DataFrame({"g": g, "x": x}), eta


# --------------------------------------------------------------------------- PIT by hand


def test_pit_residual_is_uniform_between_the_fractions_below_and_at_or_below():
    sims = np.array([[1.0, 2.0, 2.0, 3.0], [0.5, 1.5, 2.5, 3.5], [0.0, 0.0, 0.0, 0.0]])
    observed = np.array([2.0, 3.0, 5.0])
    r = scaled_residuals(sims, observed, np.random.default_rng(7))
    u = np.random.default_rng(7).uniform(size=3)
    # row 1: 1 of 4 below, 3 of 4 at or below -> 0.25 + 0.5 u; row 2: no ties -> 3/4;
    # row 3: all simulations below -> 1 (an outlier at the upper margin)
    np.testing.assert_allclose(r, [0.25 + 0.5 * u[0], 0.75, 1.0], rtol=0, atol=1e-15)


def test_pit_of_an_all_zero_distribution_is_uniform():
    # a count that is 0 in every simulation and observed 0: lower 0, upper 1, so the PIT
    # residual is U(0, 1) exactly (KS on 2000 residuals, not rejected)
    sims = np.zeros((2000, 20))
    r = scaled_residuals(sims, np.zeros(2000), np.random.default_rng(3))
    assert st.kstest(r, "uniform").pvalue > 0.05
    assert 0 <= r.min() and r.max() <= 1


def test_pit_of_a_binary_observation():
    # observed 1 with 30 ones among 100 simulations: lower 0.7, upper 1
    sims = np.zeros((5000, 100))
    sims[:, :30] = 1.0
    r = scaled_residuals(sims, np.ones(5000), np.random.default_rng(4))
    assert r.min() >= 0.7 and r.max() <= 1.0
    assert abs(r.mean() - 0.85) < 4 * np.sqrt(0.3**2 / 12 / 5000)


def test_simulated_residuals_equal_the_hand_computation_on_a_fitted_model():
    rng = np.random.default_rng(11)
    df, eta = _grouped_data(rng)
    df["y"] = rng.poisson(np.exp(eta))
    fit = fit_mixed("y ~ x + (1 | g)", df, family="poisson")
    res = fit.simulated_residuals(nsim=60, seed=5)
    sims = fit.simulate(60, seed=np.random.default_rng(np.random.SeedSequence(5, spawn_key=(0,))))
    np.testing.assert_array_equal(res.simulations, sims.to_numpy())
    pit = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(1,)))
    expected = scaled_residuals(sims.to_numpy(), df["y"].to_numpy(float), pit)
    np.testing.assert_array_equal(res.residuals, expected)
    np.testing.assert_allclose(res.fitted, np.exp(fit.design.X @ fit.beta))
    again = simulated_residuals(fit, 60, seed=5)
    pd.testing.assert_frame_equal(again.table, res.table)


def test_binomial_cbind_residuals_are_on_the_successes_scale():
    rng = np.random.default_rng(12)
    df, eta = _grouped_data(rng)
    df["s"] = rng.binomial(5, 1 / (1 + np.exp(-eta)))
    df["f"] = 5 - df["s"]
    fit = fit_mixed("cbind(s, f) ~ x + (1 | g)", df, family="binomial")
    res = fit.simulated_residuals(nsim=40, seed=1)
    np.testing.assert_array_equal(res.observed, df["s"].to_numpy(float))
    assert res.simulations.max() <= 5 and set(np.unique(res.simulations)) <= set(range(6))


def test_conditional_simulations_keep_the_conditional_modes():
    rng = np.random.default_rng(13)
    df, eta = _grouped_data(rng)
    df["y"] = rng.poisson(np.exp(eta))
    fit = fit_mixed("y ~ x + (1 | g)", df, family="poisson")
    res = fit.simulated_residuals(nsim=400, seed=2, conditional=True)
    mu = fit.predict()["estimate"].to_numpy()  # conditional mean
    np.testing.assert_allclose(res.simulations.mean(axis=1), mu, rtol=0.25, atol=0.15)
    assert res.conditional


@pytest.mark.parametrize("nsim", [1, 0, 2.5, True])
def test_bad_nsim_is_refused(nsim):
    rng = np.random.default_rng(1)
    df, eta = _grouped_data(rng, 5, 4)
    df["y"] = rng.poisson(np.exp(eta))
    fit = fit_mixed("y ~ 1 + (1 | g)", df, family="poisson")
    with pytest.raises(ModelSpecError, match="nsim"):
        simulated_residuals(fit, nsim, seed=1)


# --------------------------------------------------------------------------- tests vs R


def test_uniformity_test_matches_r_ks_test():
    small = uniformity_test(_from_residuals(_fixed_residuals(50)))
    # R 4.2.2: ks.test(((1:50 * 0.6180339887) %% 1)^1.3, "punif")  (exact, n < 100)
    assert small.loc[0, "statistic"] == pytest.approx(0.114577351939216, abs=1e-12)
    assert small.loc[0, "p_value"] == pytest.approx(0.492050828767442, abs=1e-9)
    large = uniformity_test(_from_residuals(_fixed_residuals(200)))
    # R 4.2.2: ks.test(((1:200 * 0.6180339887) %% 1)^1.3, "punif")  (asymptotic)
    assert large.loc[0, "statistic"] == pytest.approx(0.0968458352475915, abs=1e-12)
    assert large.loc[0, "p_value"] == pytest.approx(0.0469575120689233, abs=1e-6)
    assert list(small.columns) == TEST_COLUMNS


def _hand_binomial_p(k: int, n: int, p: float) -> float:
    """Two-sided exact binomial p value as R's binom.test defines it: the probability of
    every count no more likely than the observed one."""
    pmf = np.array([np.exp(st.binom.logpmf(j, n, p)) for j in range(n + 1)])
    return float(min(1.0, pmf[pmf <= pmf[k] * (1 + 1e-7)].sum()))


@pytest.mark.parametrize(
    ("count", "r_p"),
    # R 4.2.2: binom.test(7, 300, p = 2/251)$p.value, binom.test(0, ...), binom.test(1, ...)
    [(7, 0.0110252034276934), (0, 0.184586492605568), (1, 0.737510806245003)],
)
def test_outlier_test_against_a_hand_computed_binomial_test(count, r_p):
    r = np.full(300, 0.5)
    lows = count // 2
    r[:lows] = 0.0  # below 1/251
    r[lows:count] = 1.0  # above 250/251
    r[count] = 1 / 251 + 1e-9  # just inside: not an outlier
    out = outlier_test(_from_residuals(r, nsim=250))
    assert out.loc[0, "statistic"] == count
    assert out.loc[0, "p_value"] == pytest.approx(_hand_binomial_p(count, 300, 2 / 251), rel=1e-9)
    assert out.loc[0, "p_value"] == pytest.approx(r_p, rel=1e-9)


def test_dispersion_and_zero_inflation_tests_by_hand():
    # observed spread twice the simulated one; zeros counted exactly
    rng = np.random.default_rng(1)
    sims = rng.poisson(3.0, size=(400, 99)).astype(float)
    observed = rng.poisson(3.0, size=400).astype(float)
    res = _from_residuals(np.full(400, 0.5), nsim=99, observed=observed, simulations=sims)
    res.table["fitted"] = 3.0
    disp = dispersion_test(res)
    sim_var = np.var(sims - 3.0, axis=0, ddof=1)
    obs_var = np.var(observed - 3.0, ddof=1)
    assert disp.loc[0, "statistic"] == pytest.approx(obs_var / sim_var.mean())
    tail = min(np.mean(sim_var <= obs_var), np.mean(sim_var >= obs_var))
    assert disp.loc[0, "p_value"] == pytest.approx(min(1, 2 * tail))
    zeros = zero_inflation_test(res)
    sim_zeros = (sims == 0).sum(axis=0)
    assert zeros.loc[0, "statistic"] == pytest.approx((observed == 0).sum() / sim_zeros.mean())
    # an observation far out of the simulated range: p is the smallest possible, 0
    wide = _from_residuals(np.full(400, 0.5), 99, observed * 3 - 6, sims)
    wide.table["fitted"] = 3.0
    assert dispersion_test(wide).loc[0, "p_value"] == 0.0
    table = residual_tests(res)
    assert list(table["test"]) == ["uniformity", "dispersion", "zero_inflation", "outliers"]


# --------------------------------------------------------------------------- simulations

FAMILIES = {
    "poisson": ("y ~ x + (1 | g)", "poisson"),
    "negative_binomial": ("y ~ x + (1 | g)", "negative_binomial"),
    "binomial_01": ("y ~ x + (1 | g)", "binomial"),
    "binomial_cbind": ("cbind(y, f) ~ x + (1 | g)", "binomial"),
}


def _pilot_fit(kind: str, seed: int = 2026):
    """A model fitted to one dataset of its family: the model the replicates come from."""
    rng = np.random.default_rng(seed)
    df, eta = _grouped_data(rng)
    if kind == "poisson":
        df["y"] = rng.poisson(np.exp(eta))
    elif kind == "negative_binomial":
        df["y"] = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(eta)))
    elif kind == "binomial_01":
        df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    else:
        df["y"] = rng.binomial(5, 1 / (1 + np.exp(-eta)))
        df["f"] = 5 - df["y"]
    formula, family = FAMILIES[kind]
    return fit_mixed(formula, df, family=family)


def _refit(fit, counts: np.ndarray):
    """The pilot's design refitted to a new response (successes for binomial)."""
    y = counts / fit.design.prior_weights if fit.family == "binomial" else counts
    return fit_glmm(replace(fit.design, y=np.asarray(y, float)), fit.family)


def _replicate_pvalues(kind: str, replicates: int, nsim: int = 250) -> np.ndarray:
    """KS p values of the residuals of ``replicates`` datasets drawn from the pilot fit and
    refitted; replicate i seeded by SeedSequence(1, spawn_key=(i,))."""
    pilot = _pilot_fit(kind)
    data = pilot.simulate(replicates, seed=99).to_numpy()
    p = np.empty(replicates)
    for i in range(replicates):
        refit = _refit(pilot, data[:, i])
        seed = int(np.random.SeedSequence(1, spawn_key=(i,)).generate_state(1)[0])
        p[i] = uniformity_test(refit.simulated_residuals(nsim, seed=seed)).loc[0, "p_value"]
    return p


def _check_level(p: np.ndarray, alpha: float = 0.05) -> None:
    """Rejection rate at most alpha plus 3 Monte Carlo SEs (parameter estimation makes the
    KS test on fitted-model residuals conservative, so rates below alpha are expected)."""
    rate = float(np.mean(p < alpha))
    se = np.sqrt(alpha * (1 - alpha) / p.size)
    print(f"KS rejection rate {rate:.3f} of {p.size} (MC SE {se:.3f})")
    assert rate <= alpha + 3 * se, f"KS rejection rate {rate:.3f} (MC SE {se:.3f})"
    assert np.median(p) > 0.25  # not piled up near 0


def _exact_level_pvalues(kind: str, replicates: int, nsim: int = 100) -> np.ndarray:
    """KS p values of the fitted model's own residuals for data drawn from it given its
    conditional modes (no refit): each residual is then exactly U(0, 1) and independent of
    the others, so the KS test must reject at its nominal rate."""
    pilot = _pilot_fit(kind)
    data = pilot.simulate(replicates, seed=98, use_re=True).to_numpy()
    pw = pilot.design.prior_weights
    p = np.empty(replicates)
    for i in range(replicates):
        y = data[:, i] / pw if pilot.family == "binomial" else data[:, i]
        model = replace(pilot, design=replace(pilot.design, y=y))
        res = model.simulated_residuals(nsim, seed=i, conditional=True)
        p[i] = uniformity_test(res).loc[0, "p_value"]
    return p


def _check_exact_level(p: np.ndarray, alpha: float = 0.05) -> None:
    rate = float(np.mean(p < alpha))
    se = np.sqrt(alpha * (1 - alpha) / p.size)
    print(f"KS rejection rate {rate:.3f} of {p.size} (MC SE {se:.3f})")
    assert abs(rate - alpha) <= 3 * se, f"KS rejection rate {rate:.3f} (MC SE {se:.3f})"


# Measured (test_residuals_of_data_from_the_fitted_model_are_uniform_many): KS rejection
# rate at .05 with 2,000 replicates (MC SE 0.005), no refit / given the modes: Poisson
# .0445, NB .0415, binomial 0/1 .0485, cbind .0545; with 400 refits (MC SE 0.011):
# .005, .000, .000, .000 (the test is conservative once the parameters are estimated).


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_residuals_of_data_from_the_fitted_model_are_uniform(kind):
    _check_exact_level(_exact_level_pvalues(kind, replicates=150))
    _check_level(_replicate_pvalues(kind, replicates=25))


@pytest.mark.slow
@LONG
@pytest.mark.parametrize("kind", list(FAMILIES))
def test_residuals_of_data_from_the_fitted_model_are_uniform_many(kind):
    _check_exact_level(_exact_level_pvalues(kind, replicates=2000))
    _check_level(_replicate_pvalues(kind, replicates=400))


def _misfit_rates(truth: str, replicates: int, conditional: bool, nsim: int = 250):
    """Rejection rates at .05 of a Poisson GLMM fitted to NB (size 1.5) or zero-inflated
    (30% structural zeros) data, 25 groups of 8; replicate i seeded by
    SeedSequence(7, spawn_key=(i,))."""
    rejected = {"dispersion": 0, "zero_inflation": 0, "uniformity": 0, "outliers": 0}
    for i in range(replicates):
        rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(i,)))
        df, eta = _grouped_data(rng)
        mu = np.exp(eta + 0.7)
        if truth == "negative_binomial":
            df["y"] = rng.negative_binomial(1.5, 1.5 / (1.5 + mu))
        else:
            df["y"] = rng.poisson(mu) * (rng.uniform(size=mu.size) > 0.3)
        fit = fit_mixed("y ~ x + (1 | g)", df, family="poisson")
        res = fit.simulated_residuals(nsim, seed=i, conditional=conditional)
        tests = residual_tests(res).set_index("test")
        for name in rejected:
            rejected[name] += bool(tests.loc[name, "p_value"] < 0.05)
    return {name: count / replicates for name, count in rejected.items()}


# Rejection rates at .05 measured with 200 replicates (test_misfit_rejection_rates_many;
# MC SE at most 0.035), Poisson GLMM fitted to
#   NB data, new random effects:    dispersion .475, zero inflation .93, KS .975, outliers .635
#   NB data, conditional modes:     dispersion 1.00, zero inflation 1.00, KS 1.00, outliers 1.00
#   zero-inflated, new effects:     dispersion .25,  zero inflation 1.00, KS .995, outliers .385
#   zero-inflated, conditional:     dispersion .98,  zero inflation 1.00, KS .97,  outliers .905
# With new random effects (the default) the fitted therapist variance absorbs part of the
# overdispersion, so the dispersion test is much weaker than with the conditional modes
# kept (DHARMa's testDispersion help says the same; its default became conditional in
# 0.5.0); the KS and zero-inflation tests still reject.


def test_dispersion_test_rejects_poisson_fitted_to_negative_binomial_data():
    conditional = _misfit_rates("negative_binomial", replicates=20, conditional=True)
    assert conditional["dispersion"] >= 0.9
    unconditional = _misfit_rates("negative_binomial", replicates=20, conditional=False)
    assert 0.1 <= unconditional["dispersion"] <= 0.8
    assert unconditional["uniformity"] >= 0.9


def test_zero_inflation_test_rejects_poisson_fitted_to_zero_inflated_data():
    rates = _misfit_rates("zero_inflated", replicates=20, conditional=False)
    assert rates["zero_inflation"] >= 0.9
    assert rates["uniformity"] >= 0.9


@pytest.mark.slow
@LONG
def test_misfit_rejection_rates_many():
    rates = {
        (truth, conditional): _misfit_rates(truth, replicates=200, conditional=conditional)
        for truth in ("negative_binomial", "zero_inflated")
        for conditional in (False, True)
    }
    print(rates)
    assert rates["negative_binomial", True]["dispersion"] >= 0.95
    assert 0.2 <= rates["negative_binomial", False]["dispersion"] <= 0.7
    assert rates["zero_inflated", False]["zero_inflation"] >= 0.95
    assert rates["zero_inflated", True]["zero_inflation"] >= 0.95


# --------------------------------------------------------------------------- the model step

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
RATE_FORMULA = "ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)"


def _session_tables(size: float | None, seed: int = 3):
    """Sessions of 12 therapists x 5 clients x 8 sessions; ruptures Poisson (size None) or
    negative binomial with that size; the canonical and derived tables holding them."""
    from resistance_outcomes import derive
    from resistance_outcomes.analysis import AnalysisTables

    rng = np.random.default_rng(seed)
    rows = []
    for t in range(12):
        for c in range(5):
            u = rng.normal(0, 0.3)
            for s in range(1, 9):
                minutes = float(rng.integers(40, 60))
                mu = np.exp(-3 + 0.2 * (t % 3) - 0.03 * (s - 4.5) + u + np.log(minutes))
                y = (
                    rng.poisson(mu)
                    if size is None
                    else rng.negative_binomial(size, size / (size + mu))
                )
                rows.append(
                    {
                        "therapist": f"T{t}",
                        "client": f"T{t}C{c}",
                        "framework": FRAMEWORKS[t % 3],
                        "session": s,
                        "minutes": minutes,
                        "ruptures": y,
                    }  # fmt: skip
                )
    frame = pd.DataFrame(rows)
    clients = (
        frame[["therapist", "client", "framework"]]
        .drop_duplicates("client")
        .assign(study="s", planned_sessions=8, end_status="completed")
        .reset_index(drop=True)
    )
    sessions = frame[["client", "session", "minutes", "ruptures"]].assign(
        study="s", attended=True, repaired=0
    )
    return AnalysisTables(clients, sessions, derive.session_table(sessions, clients), clients, {})


MODEL_FILES = {
    "spec": "spec.json",
    "frame": "model_frame.csv",
    "coefficients": "coefficients.csv",
    "variance_components": "variance_components.csv",
    "fit": "fit.json",
    "contrasts": "contrasts.csv",
    "predictions": "predictions.csv",
    "residuals": "residuals.csv",
    "random_effects": "random_effects.csv",
    "simulated_residuals": "simulated_residuals.csv",
    "diagnostics": "diagnostics.json",
}


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    """A Poisson rupture model fitted to Poisson and to overdispersed (NB, size 0.8) data,
    written by the model step with its diagnostics, and a GEE fit."""
    from resistance_outcomes.analysis import parse_model_spec, run_model

    root = tmp_path_factory.mktemp("models")
    settings = {"nsim": 250, "seed": 20261126, "conditional": False}
    folders = {}
    for name, size, method in [
        ("rupture_frequency", 0.8, "mixed"),
        ("rupture_poisson", None, "mixed"),
        ("rupture_gee", None, "gee"),
    ]:
        entry = {"data": "sessions", "family": "poisson", "formula": RATE_FORMULA,
                 "method": method}  # fmt: skip
        outputs = run_model(
            parse_model_spec(name, entry), _session_tables(size), diagnostics=settings
        )
        folder = root / name
        outputs.write({key: folder / file for key, file in MODEL_FILES.items()})
        folders[name] = (folder, outputs)
    return folders


def test_model_step_writes_simulated_residuals_and_diagnostics(model_folders):
    import json

    folder, outputs = model_folders["rupture_frequency"]
    table = pd.read_csv(folder / "simulated_residuals.csv")
    assert list(table.columns) == ["row", "fitted", "residual"]  # no identifiers
    assert len(table) == len(outputs.frame) == 480
    assert table["residual"].between(0, 1).all()
    assert sorted(table["row"]) == list(range(1, 481))
    record = json.loads((folder / "diagnostics.json").read_text())
    assert record["assessed"] and record["nsim"] == 250 and record["seed"] == 20261126
    tests = {t["test"]: t for t in record["tests"]}
    assert set(tests) == {"uniformity", "dispersion", "zero_inflation", "outliers"}
    for t in tests.values():
        assert t["flagged"] == (t["p_value"] < 0.05) and t["what"]
    assert tests["uniformity"]["flagged"]  # NB(size 0.8) data under a Poisson model
    assert record["flagged"] == [t for t in tests if tests[t]["flagged"]]
    # the same seed gives the same file
    again = pd.read_csv(folder / "simulated_residuals.csv")
    pd.testing.assert_frame_equal(table, again)
    # the fitted values are the population-level means of the model
    from resistance_outcomes.analysis import fit_model, parse_model_spec

    fit = fit_model(parse_model_spec("m", {"data": "sessions", "family": "poisson",
                                           "formula": RATE_FORMULA}), outputs.frame)  # fmt: skip
    np.testing.assert_allclose(
        table["fitted"].to_numpy(), fit.predict(level="population")["estimate"], rtol=1e-6
    )


def test_gee_model_writes_diagnostics_not_assessed(model_folders):
    import json

    folder, _ = model_folders["rupture_gee"]
    record = json.loads((folder / "diagnostics.json").read_text())
    assert record["assessed"] is False and "population-averaged" in record["reason"]
    assert (folder / "simulated_residuals.csv").read_text().strip() == "row,fitted,residual"


def test_summary_lists_models_failing_a_residual_test(model_folders):
    from resistance_outcomes import summary
    from resistance_outcomes.results import read_model_folder

    analyses = [read_model_folder(folder) for folder, _ in model_folders.values()]
    text = "\n".join(summary._flag_section(analyses))
    assert "Models whose simulated residuals (250 simulations per observation) fail" in text
    assert "\nEach simulation draws new random effects." in text
    print(text)
    checks = text.split("Models whose simulated residuals")[1]
    line = next(x for x in checks.splitlines() if x.startswith("- Rupture frequency:"))
    assert "uniformity (KS) test *p* < .001" in line and line.endswith("(simulated residuals)")
    assert "- Rupture poisson:" not in checks  # Poisson data: no test at p < .05


def test_diagnostics_figure_draws_the_simulated_residuals(model_folders, tmp_path):
    from snakemake.iocontainers import Namedlist

    from resistance_outcomes.pipeline import figure_diagnostics_step

    folder, _ = model_folders["rupture_frequency"]
    inputs = {key: str(folder / MODEL_FILES[key]) for key in
              ("spec", "fit", "residuals", "random_effects", "simulated_residuals",
               "diagnostics")}  # fmt: skip
    output = {"pdf": tmp_path / "d.pdf", "png": tmp_path / "d.png"}
    figure_diagnostics_step(input=Namedlist(fromdict=inputs), output=Namedlist(fromdict=output))
    assert (tmp_path / "d.png").stat().st_size > 10_000

    from resistance_outcomes import figures

    table = pd.read_csv(folder / "simulated_residuals.csv")
    import json

    tests = json.loads((folder / "diagnostics.json").read_text())["tests"]
    modes = pd.read_csv(folder / "random_effects.csv")
    fig = figures.plot_model_diagnostics(
        pd.read_csv(folder / "residuals.csv"), random_effects=modes, family="poisson",
        simulated=table, tests=tests,
    )  # fmt: skip
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["Quantiles of simulated residuals", "Residual quantiles in 10 bins"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0].startswith("KS test: D = ") and texts[1].startswith("Dispersion: ratio ")
    assert texts[2].startswith("Outliers: ")
    # the QQ points are the sorted residuals at the uniform plotting positions
    xy = fig.axes[0].get_lines()[0].get_xydata()
    np.testing.assert_allclose(xy[:, 1], np.sort(table["residual"]))
    # the median line: the median residual within each tenth of ranked predictions
    median = fig.axes[1].get_lines()[4].get_xydata()[:, 1]  # points, then (dashed, line) per q
    ranks = (st.rankdata(table["fitted"]) - 0.5) / len(table)
    bins = np.minimum((ranks * 10).astype(int), 9)
    expected = pd.Series(table["residual"].to_numpy()).groupby(bins).median().to_numpy()
    np.testing.assert_allclose(median, expected)
