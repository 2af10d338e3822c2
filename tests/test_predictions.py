"""Prediction grids and forest effects for the figures, checked against hand computations."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from resistance_outcomes.analysis import ModelSpec, fit_model
from resistance_outcomes.predictions import (
    dropout_by_repair_prediction,
    forest_effects,
    rupture_rate_prediction,
)

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]


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


def test_rupture_rate_prediction_is_exp_of_the_linear_predictor():
    frame = session_frame()
    spec = {
        "name": "r",
        "data": "sessions",
        "family": "poisson",
        "formula": "ruptures ~ framework * session_c + offset(log(minutes)) "
        "+ (1 | therapist/client)",
        "derived_variables": {"session_c": {"centre": 4.5}},
        "factor_levels": {"framework": FRAMEWORKS},
    }
    fit = fit_model(ModelSpec.from_dict(spec), frame)
    pred = rupture_rate_prediction(spec, fit, frame)
    b = fit.coefficients.set_index("term")["estimate"]
    row = pred[(pred["framework"] == "cognitive") & (pred["session"] == 7)].iloc[0]
    eta = (
        b["(Intercept)"]
        + b["frameworkcognitive"]
        + (7 - 4.5) * (b["session_c"] + b["frameworkcognitive:session_c"])
        + np.log(frame["minutes"].mean())
    )
    assert row["estimate"] == pytest.approx(np.exp(eta), rel=1e-10)
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert len(pred) == 3 * 8


def test_dropout_by_repair_prediction_is_the_logistic_of_the_linear_predictor():
    rng = np.random.default_rng(5)
    n = 400
    clients = pd.DataFrame(
        {
            "therapist": [f"T{i % 20}" for i in range(n)],
            "client": [f"C{i}" for i in range(n)],
            "framework": pd.Categorical([FRAMEWORKS[i % 3] for i in range(n)], FRAMEWORKS),
            "repair_rate": rng.uniform(0, 1, n),
        }
    )
    clients["repair_rate_between"] = clients["repair_rate"] - 0.5
    clients["dropout"] = rng.binomial(1, expit(-1.5 - clients["repair_rate_between"]))
    spec = {
        "name": "d",
        "data": "clients",
        "family": "binomial",
        "formula": "dropout ~ framework * repair_rate_between + (1 | therapist)",
        "derived_variables": {"repair_rate": {"grand_mean": 0.5}},
        "factor_levels": {"framework": FRAMEWORKS},
    }
    frame = clients.drop(columns="repair_rate")
    fit = fit_model(ModelSpec.from_dict(spec), frame)
    pred = dropout_by_repair_prediction(spec, fit, frame, points=11)
    b = fit.coefficients.set_index("term")["estimate"]
    row = pred[(pred["framework"] == "behavioral") & np.isclose(pred["repair_rate"], 0.8)]
    eta = (
        b["(Intercept)"]
        + b["frameworkbehavioral"]
        + 0.3 * (b["repair_rate_between"] + b["frameworkbehavioral:repair_rate_between"])
    )
    assert row["estimate"].iloc[0] == pytest.approx(expit(eta), rel=1e-10)
    assert pred["repair_rate"].min() == 0 and pred["repair_rate"].max() == 1


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
