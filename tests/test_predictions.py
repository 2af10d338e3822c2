"""What the model step hands the figures (predictions, residuals, random effects), checked
against hand computations, and the figures drawn from those files."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit
from snakemake.iocontainers import Namedlist

from resistance_outcomes import derive, figures
from resistance_outcomes.analysis import (
    AnalysisTables,
    ModelSpec,
    fit_model,
    parse_model_spec,
    run_model,
)
from resistance_outcomes.pipeline import (
    figure_diagnostics_step,
    figure_dropout_by_repair_step,
    figure_rupture_rate_step,
)
from resistance_outcomes.predictions import (
    RANDOM_EFFECT_COLUMNS,
    forest_effects,
    population_predictions,
    random_effects_table,
    read_model_table,
    residual_table,
)

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
Z = stats.norm.ppf(0.975)
RATE_FORMULA = "ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)"
DROPOUT_FORMULA = (
    "dropout ~ framework * repair_rate_between + rupture_rate_between + age + (1 | therapist)"
)


def session_frame(seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(12):
        fw = FRAMEWORKS[t % 3]
        for c in range(5):
            u = rng.normal(0, 0.3)
            for s in range(1, 9):
                minutes = float(rng.integers(40, 60))
                mu = np.exp(-4 + 0.2 * (t % 3) - 0.03 * (s - 4.5) + u + np.log(minutes))
                rows.append(
                    {
                        "therapist": f"T{t}",
                        "client": f"T{t}C{c}",
                        "framework": fw,
                        "session": s,
                        "session_c": s - 4.5,
                        "minutes": minutes,
                        "ruptures": rng.poisson(mu),
                    }
                )
    frame = pd.DataFrame(rows)
    frame["framework"] = pd.Categorical(frame["framework"], categories=FRAMEWORKS)
    return frame


def rate_spec(family="poisson", method="mixed"):
    return {
        "name": "r",
        "data": "sessions",
        "family": family,
        "method": method,
        "formula": RATE_FORMULA,
        "contrasts": {"factor": "framework", "pairwise": True, "slopes": ["session_c"]},
        "derived_variables": {"session_c": {"definition": "session - centre", "centre": 4.5}},
        "factor_levels": {"framework": FRAMEWORKS},
    }


def client_frame(seed=5, n=400):
    rng = np.random.default_rng(seed)
    clients = pd.DataFrame(
        {
            "therapist": [f"T{i % 20}" for i in range(n)],
            "client": [f"C{i}" for i in range(n)],
            "framework": pd.Categorical([FRAMEWORKS[i % 3] for i in range(n)], FRAMEWORKS),
            "repair_rate": rng.uniform(0, 1, n),
            "rupture_rate_between": rng.normal(0, 1, n),
            "age": rng.uniform(20, 60, n),
        }
    )
    clients["repair_rate_between"] = clients["repair_rate"] - 0.5
    clients["dropout"] = rng.binomial(1, expit(-1.5 - clients["repair_rate_between"]))
    return clients.drop(columns="repair_rate")


def dropout_spec(method="mixed"):
    return {
        "name": "d",
        "data": "clients",
        "family": "binomial",
        "method": method,
        "formula": DROPOUT_FORMULA,
        "derived_variables": {
            "repair_rate": {"grand_mean": 0.5},
            "rupture_rate": {"grand_mean": 1.0},
        },
        "factor_levels": {"framework": FRAMEWORKS},
    }


def fitted(spec, frame):
    return fit_model(ModelSpec.from_dict(spec), frame)


# --------------------------------------------------------------------------- predictions


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_predictions_are_exp_of_the_linear_predictor_at_mean_minutes(family):
    frame = session_frame()
    spec = rate_spec(family)
    fit = fitted(spec, frame)
    pred = population_predictions(spec, fit, frame)
    assert list(pred.columns) == ["framework", "session", "estimate", "ci_low", "ci_high"]
    assert pred["session"].tolist() == list(range(1, 9)) * 3  # every session observed
    assert pred["framework"].tolist() == [f for f in FRAMEWORKS for _ in range(8)]
    b = fit.coefficients.set_index("term")["estimate"]
    names = list(b.index)
    log_minutes = np.log(frame["minutes"].mean())
    for row in pred.itertuples():
        x = pd.Series(0.0, index=names)
        x["(Intercept)"] = 1.0
        x["session_c"] = row.session - 4.5
        if row.framework != "psychoanalytic":
            x[f"framework{row.framework}"] = 1.0
            x[f"framework{row.framework}:session_c"] = row.session - 4.5
        eta = float(x @ b) + log_minutes
        se = float(np.sqrt(x.to_numpy() @ fit.vcov @ x.to_numpy()))
        assert row.estimate == pytest.approx(np.exp(eta), rel=1e-10)
        assert row.ci_low == pytest.approx(np.exp(eta - Z * se), rel=1e-10)
        assert row.ci_high == pytest.approx(np.exp(eta + Z * se), rel=1e-10)


@pytest.mark.parametrize("method", ["mixed", "gee"])
def test_dropout_predictions_are_the_logistic_over_the_raw_repair_rate(method):
    frame = client_frame()
    spec = dropout_spec(method)
    fit = fitted(spec, frame)
    pred = population_predictions(spec, fit, frame)
    assert list(pred.columns) == ["framework", "repair_rate", "estimate", "ci_low", "ci_high"]
    # a proportion: 0 to 1 in 51 steps, per framework
    assert pred["repair_rate"].tolist() == pytest.approx(list(np.linspace(0, 1, 51)) * 3)
    beta = pd.Series(fit.beta, index=fit.design.fixed_names)
    row = pred[(pred["framework"] == "behavioral") & np.isclose(pred["repair_rate"], 0.8)]
    # repair_rate_between = 0.8 - 0.5; rupture_rate_between (centred) at 0; age at its mean
    eta = (
        beta["(Intercept)"]
        + beta["frameworkbehavioral"]
        + 0.3 * (beta["repair_rate_between"] + beta["frameworkbehavioral:repair_rate_between"])
        + frame["age"].mean() * beta["age"]
    )
    assert row["estimate"].iloc[0] == pytest.approx(expit(eta), rel=1e-10)
    assert (pred["ci_low"] < pred["estimate"]).all() and (pred["estimate"] < pred["ci_high"]).all()


def test_without_a_numeric_predictor_the_factors_that_interact_are_crossed():
    frame = session_frame()
    frame["kind"] = pd.Categorical(np.where(frame.index % 2, "b", "a"), categories=["a", "b"])
    spec = {
        "formula": "ruptures ~ framework * kind + offset(log(minutes)) + (1 | client)",
        "family": "poisson",
        "factor_levels": {"framework": FRAMEWORKS, "kind": ["a", "b"]},
    }
    fit = fit_mixed_frame(spec, frame)
    pred = population_predictions(spec, fit, frame)
    assert list(pred.columns) == ["framework", "kind", "estimate", "ci_low", "ci_high"]
    assert len(pred) == 6
    b = pd.Series(fit.beta, index=fit.design.fixed_names)
    row = pred[(pred["framework"] == "cognitive") & (pred["kind"] == "b")].iloc[0]
    eta = (
        b["(Intercept)"]
        + b["frameworkcognitive"]
        + b["kindb"]
        + b["frameworkcognitive:kindb"]
        + np.log(frame["minutes"].mean())
    )
    assert row["estimate"] == pytest.approx(np.exp(eta), rel=1e-10)


def fit_mixed_frame(spec, frame):
    from resistance_outcomes.models import fit_mixed

    return fit_mixed(spec["formula"], frame, family=spec["family"])


# --------------------------------------------------------------------------- residuals


def test_poisson_residuals_are_pearson_residuals_by_hand():
    frame = session_frame()
    fit = fitted(rate_spec("poisson"), frame)
    res = residual_table(fit, frame)
    assert list(res.columns) == ["row", "fitted", "residual", "framework"]  # no identifiers
    assert res["row"].tolist() == list(range(1, len(frame) + 1))
    assert res["framework"].tolist() == frame["framework"].astype(str).tolist()
    # conditional mean exp(X beta + Z b + log(minutes))
    eta = fit.design.X @ fit.beta + fit.design.Zt.T @ fit.b + np.log(frame["minutes"])
    mu = np.exp(eta.to_numpy())
    assert res["fitted"].to_numpy() == pytest.approx(mu, rel=1e-10)
    y = frame["ruptures"].to_numpy(float)
    assert res["residual"].to_numpy() == pytest.approx((y - mu) / np.sqrt(mu), rel=1e-10)


def test_negative_binomial_and_binomial_and_gaussian_residuals_by_hand():
    frame = session_frame()
    nb = fitted(rate_spec("negative_binomial"), frame)
    res = residual_table(nb, frame)
    mu = res["fitted"].to_numpy()
    y = frame["ruptures"].to_numpy(float)
    theta = nb.nb_theta
    assert res["residual"].to_numpy() == pytest.approx((y - mu) / np.sqrt(mu + mu**2 / theta))

    clients = client_frame()
    logistic = fitted(dropout_spec(), clients)
    res = residual_table(logistic, clients)
    eta = logistic.design.X @ logistic.beta + logistic.design.Zt.T @ logistic.b
    mu = expit(np.asarray(eta))
    y = clients["dropout"].to_numpy(float)
    assert res["fitted"].to_numpy() == pytest.approx(mu, rel=1e-10)
    assert res["residual"].to_numpy() == pytest.approx((y - mu) / np.sqrt(mu * (1 - mu)))

    spec = {"formula": "age ~ framework + (1 | therapist)", "family": "gaussian"}
    linear = fit_mixed_frame(spec, clients)
    res = residual_table(linear, clients)
    mu = linear.design.X @ linear.beta + linear.design.Zt.T @ linear.b
    assert res["residual"].to_numpy() == pytest.approx((clients["age"] - mu) / linear.sigma)


def test_gee_residuals_use_the_population_mean_and_have_no_random_effects():
    clients = client_frame()
    fit = fitted(dropout_spec("gee"), clients)
    res = residual_table(fit, clients)
    mu = expit(fit.design.X @ fit.beta)
    y = clients["dropout"].to_numpy(float)
    assert res["residual"].to_numpy() == pytest.approx((y - mu) / np.sqrt(mu * (1 - mu)))
    modes = random_effects_table(fit)
    assert modes.empty and list(modes.columns) == RANDOM_EFFECT_COLUMNS


def test_random_effects_are_the_conditional_modes_by_level():
    frame = session_frame()
    fit = fitted(rate_spec("poisson"), frame)
    modes = random_effects_table(fit)
    assert list(modes.columns) == ["group", "term", "level", "mode"]
    # lme4's order: client-in-therapist (60 levels) before therapist (12)
    assert modes["group"].unique().tolist() == ["therapist:client", "therapist"]
    assert len(modes) == 60 + 12 and set(modes["term"]) == {"(Intercept)"}
    assert modes["mode"].to_numpy() == pytest.approx(np.asarray(fit.b))
    therapists = modes[modes["group"] == "therapist"]
    assert sorted(therapists["level"]) == sorted(frame["therapist"].unique())
    # the level codes are those of the model frame: pseudonymous, nothing else
    assert set(therapists["level"]) <= set(frame["therapist"])


# --------------------------------------------------------------------------- the model step


def tables_for(frame):
    """Canonical and derived tables holding exactly the sessions of ``frame``."""
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


def model_paths(folder):
    names = {
        "spec": "spec.json",
        "frame": "model_frame.csv",
        "coefficients": "coefficients.csv",
        "variance_components": "variance_components.csv",
        "fit": "fit.json",
        "contrasts": "contrasts.csv",
        "predictions": "predictions.csv",
        "residuals": "residuals.csv",
        "random_effects": "random_effects.csv",
    }
    return {key: folder / name for key, name in names.items()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A rupture-rate model run and written by the model step, and its fit."""
    folder = tmp_path_factory.mktemp("models") / "r"
    entry = {"data": "sessions", "family": "poisson", "formula": RATE_FORMULA}
    spec = parse_model_spec("r", entry)
    outputs = run_model(spec, tables_for(session_frame()))
    outputs.write(model_paths(folder))
    frame = outputs.frame
    fit = fit_model(spec, frame)
    return folder, outputs, fit


def test_the_model_step_writes_predictions_residuals_and_random_effects(written):
    folder, outputs, fit = written
    for name in ("predictions.csv", "residuals.csv", "random_effects.csv"):
        assert (folder / name).is_file()
    predictions = read_model_table(folder / "predictions.csv", ("framework",))
    frame = outputs.frame
    b = pd.Series(fit.beta, index=fit.design.fixed_names)
    row = predictions[(predictions["framework"] == "cognitive") & (predictions["session"] == 7)]
    centre = outputs.spec["derived_variables"]["session_c"]["centre"]
    eta = (
        b["(Intercept)"]
        + b["frameworkcognitive"]
        + (7 - centre) * (b["session_c"] + b["frameworkcognitive:session_c"])
        + np.log(frame["minutes"].mean())
    )
    assert row["estimate"].iloc[0] == pytest.approx(np.exp(eta), rel=1e-9)
    residuals = read_model_table(folder / "residuals.csv", ("framework",))
    assert list(residuals.columns) == ["row", "fitted", "residual", "framework"]
    assert len(residuals) == len(frame)
    assert residuals["fitted"].to_numpy() == pytest.approx(
        residual_table(fit)["fitted"].to_numpy(), rel=1e-9
    )
    modes = read_model_table(folder / "random_effects.csv", ("group", "term", "level"))
    assert modes["mode"].to_numpy() == pytest.approx(np.asarray(fit.b), rel=1e-9, abs=1e-12)


def test_the_files_are_written_to_snakemake_outputs_too(written, tmp_path):
    _, outputs, _ = written
    outputs.write(Namedlist(fromdict={k: str(v) for k, v in model_paths(tmp_path).items()}))
    for name in ("predictions.csv", "residuals.csv", "random_effects.csv"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_a_gee_model_writes_random_effects_with_the_header_only(tmp_path):
    entry = {"data": "sessions", "family": "poisson", "formula": RATE_FORMULA, "method": "gee"}
    outputs = run_model(parse_model_spec("g", entry), tables_for(session_frame()))
    outputs.write(model_paths(tmp_path))
    assert (tmp_path / "random_effects.csv").read_text().strip() == "group,term,level,mode"
    assert "no random effects" in json.loads((tmp_path / "fit.json").read_text())["random_effects"]
    assert len(read_model_table(tmp_path / "predictions.csv")) == 3 * 8


# --------------------------------------------------------------------------- figures


def lines(fig):
    return [(ax.get_title(), line.get_xydata()) for ax in fig.axes for line in ax.get_lines()]


def assert_same_lines(a, b):
    assert len(a) == len(b) and len(a) > 0
    for (title_a, data_a), (title_b, data_b) in zip(a, b, strict=True):
        assert title_a == title_b
        np.testing.assert_allclose(data_a, data_b, rtol=1e-9, atol=1e-12)


def test_figures_drawn_from_the_files_are_those_drawn_from_the_fit(written, tmp_path):
    folder, outputs, fit = written
    frame = outputs.frame
    rates = frame.groupby(["framework", "session"], observed=True)["ruptures"].agg(["mean"])
    rates = rates.reset_index().assign(ci_low=lambda d: d["mean"] - 0.1)
    rates["ci_high"] = rates["mean"] + 0.1
    rates_path = tmp_path / "rates.csv"
    rates.to_csv(rates_path, index=False)

    # rupture rate: what the step draws from predictions.csv, and the prediction computed
    # before from the refitted model (grid of every session, minutes at their mean)
    figure_rupture_rate_step(
        input=Namedlist(
            fromdict={
                "model_spec": str(folder / "spec.json"),
                "predictions": str(folder / "predictions.csv"),
                "rates": str(rates_path),
            }
        ),
        output=Namedlist(fromdict={"pdf": tmp_path / "r.pdf", "png": tmp_path / "r.png"}),
    )
    assert (tmp_path / "r.png").is_file()
    sessions = np.arange(frame["session"].min(), frame["session"].max() + 1)
    grid = pd.DataFrame(
        {
            "framework": pd.Categorical(np.repeat(FRAMEWORKS, len(sessions)), FRAMEWORKS),
            "session": np.tile(sessions, 3),
            "session_c": np.tile(sessions, 3)
            - outputs.spec["derived_variables"]["session_c"]["centre"],
            "minutes": frame["minutes"].mean(),
            "therapist": "(new)",
            "client": "(new)",
        }
    )
    before = pd.concat(
        [
            grid[["framework", "session"]].astype({"framework": str}),
            fit.predict(grid, level="population", scale="response", ci=True),
        ],
        axis=1,
    )
    from_file = read_model_table(folder / "predictions.csv", ("framework",))
    assert_same_lines(
        lines(figures.plot_rupture_rate_by_session(rates, prediction=from_file)),
        lines(figures.plot_rupture_rate_by_session(rates, prediction=before)),
    )

    # diagnostics: from residuals.csv and random_effects.csv as from the fit itself
    figure_diagnostics_step(
        input=Namedlist(
            fromdict={
                "spec": str(folder / "spec.json"),
                "fit": str(folder / "fit.json"),
                "residuals": str(folder / "residuals.csv"),
                "random_effects": str(folder / "random_effects.csv"),
            }
        ),
        output=Namedlist(fromdict={"pdf": tmp_path / "d.pdf", "png": tmp_path / "d.png"}),
    )
    assert (tmp_path / "d.png").is_file()
    drawn = figures.plot_model_diagnostics(
        read_model_table(folder / "residuals.csv", ("framework",)),
        random_effects=read_model_table(folder / "random_effects.csv", ("group", "term", "level")),
        family="poisson",
    )
    direct = figures.plot_model_diagnostics(fit)
    assert_same_lines(lines(drawn), lines(direct))
    assert drawn.axes[0].get_xlabel() == "Fitted count"
    assert drawn.axes[1].get_ylabel() == "Conditional mode\n(log rate)"


def test_dropout_figure_drawn_from_predictions_csv(tmp_path):
    clients = client_frame()
    spec = dropout_spec()
    fit = fitted(spec, clients)
    population_predictions(spec, fit, clients).to_csv(tmp_path / "predictions.csv", index=False)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    figure_dropout_by_repair_step(
        input=Namedlist(
            fromdict={
                "model_spec": str(tmp_path / "spec.json"),
                "predictions": str(tmp_path / "predictions.csv"),
            }
        ),
        output=Namedlist(fromdict={"pdf": tmp_path / "d.pdf", "png": tmp_path / "d.png"}),
    )
    assert (tmp_path / "d.png").is_file()
    # as drawn before: the logistic of X beta over 0-1, by hand
    beta = pd.Series(fit.beta, index=fit.design.fixed_names)
    rates = np.linspace(0, 1, 51)
    before = []
    for framework in FRAMEWORKS:
        shift = beta.get(f"framework{framework}", 0.0)
        slope = beta["repair_rate_between"] + beta.get(
            f"framework{framework}:repair_rate_between", 0.0
        )
        eta = (
            beta["(Intercept)"]
            + shift
            + slope * (rates - 0.5)
            + beta["age"] * clients["age"].mean()
        )
        before.append(pd.DataFrame({"framework": framework, "repair_rate": rates,
                                    "estimate": expit(eta)}))  # fmt: skip
    before = pd.concat(before, ignore_index=True)
    from_file = read_model_table(tmp_path / "predictions.csv", ("framework",))
    np.testing.assert_allclose(from_file["estimate"], before["estimate"], rtol=1e-10)
    fig = figures.plot_dropout_by_repair(from_file)
    drawn = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == 51]
    assert len(drawn) == 3  # one line per framework
    scale = 100 if max(max(line.get_ydata()) for line in drawn) > 1 else 1  # percent axis?
    x_scale = 100 if max(max(line.get_xdata()) for line in drawn) > 1 else 1
    expected = [before.loc[before["framework"] == f, "estimate"].to_numpy() for f in FRAMEWORKS]
    for line in drawn:
        np.testing.assert_allclose(line.get_xdata(), x_scale * rates, rtol=1e-12)
        assert sum(np.allclose(line.get_ydata(), scale * e, rtol=1e-9) for e in expected) == 1


# --------------------------------------------------------------------------- forest


def test_forest_effects_exponentiate_and_rescale_repair_to_ten_points():
    contrasts = pd.DataFrame(
        {
            "kind": ["pairwise", "simple_slope", "simple_slope"],
            "variable": ["framework", "repair_rate_between", "unrepaired_within"],
            "level": ["cognitive", "cognitive", "behavioral"],
            "estimate": [0.4, -2.0, 0.5],
            "ci_low": [0.1, -3.0, 0.1],
            "ci_high": [0.7, -1.0, 0.9],
            "ratio_kind": ["odds ratio"] * 3,
        }
    )
    effects = forest_effects({"m": contrasts}, {"m": "Retention"})
    assert effects["label"].tolist() == [
        "Repair rate (between clients), per 10 points",
        "Unrepaired ruptures (within client)",
    ]
    # exp(0.1 * -2.0) = 0.818731; exp(0.5) = 1.648721
    assert effects["estimate"].round(6).tolist() == [0.818731, 1.648721]
    assert effects["ci_low"].round(6).tolist() == [0.740818, 1.105171]
    assert set(effects["group"]) == {"Retention"}


def test_forest_effects_label_predictors_from_the_studys_vocabulary():
    from resistance_outcomes.vocabulary import ConstructInfo, Vocabulary

    contrasts = pd.DataFrame(
        {
            "kind": ["simple_slope", "simple_slope"],
            "variable": ["sustain_talk_within", "baseline_bdi"],
            "level": ["systemic", "systemic"],
            "estimate": [0.2, 0.03],
            "ci_low": [0.1, 0.01],
            "ci_high": [0.3, 0.05],
            "ratio_kind": ["odds ratio"] * 2,
        }
    )
    vocab = Vocabulary(
        constructs={
            "sustain_talk": ConstructInfo("sustain_talk", "Sustain talk", "count", "codes")
        },
        labels={"baseline_bdi": "Baseline BDI-II"},
    )
    effects = forest_effects({"m": contrasts}, {"m": "Hazard"}, vocab=vocab)
    assert effects["label"].tolist() == ["Sustain talk (within client)", "Baseline BDI-II"]
    # exp(0.03) = 1.030455
    assert effects["estimate"].round(6).tolist() == [1.221403, 1.030455]
