"""Population-averaged GEE fits.

The independence working correlation is checked against numbers computed here by hand:
its estimates solve the GLM score equations (Newton's method written out below) and its
standard errors are the cluster-robust sandwich ``B^-1 M B^-1`` with ``B = X'WX`` and
``M = sum_g X_g' r_g r_g' X_g`` (Liang & Zeger 1986), without small-sample correction.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from resistance_outcomes.models import ModelSpecError
from resistance_outcomes.models.gee import gee


@pytest.fixture(scope="module")
def dropout_data():
    rng = np.random.default_rng(21)
    therapist = np.repeat(np.arange(40), 12)
    client = np.arange(480)
    x = rng.normal(size=480)
    eta = -0.8 + 0.6 * x + rng.normal(0, 0.7, 40)[therapist]
    return pd.DataFrame(
        {
            "dropout": rng.binomial(1, special.expit(eta)),
            "x": x,
            "therapist": therapist.astype(str),
            "client": client.astype(str),
        }
    )


def _logistic_sandwich(y, X, clusters):
    beta = np.zeros(X.shape[1])
    for _ in range(50):
        mu = special.expit(X @ beta)
        beta = beta + np.linalg.solve(X.T @ ((mu * (1 - mu))[:, None] * X), X.T @ (y - mu))
    mu = special.expit(X @ beta)
    bread = np.linalg.inv(X.T @ ((mu * (1 - mu))[:, None] * X))
    meat = np.zeros((X.shape[1], X.shape[1]))
    for g in np.unique(clusters):
        score = X[clusters == g].T @ (y - mu)[clusters == g]
        meat += np.outer(score, score)
    return beta, np.sqrt(np.diag(bread @ meat @ bread))


def test_independence_gee_is_glm_with_sandwich_errors(dropout_data):
    table = gee("dropout ~ x + (1 | therapist)", dropout_data, cov_struct="independence")
    X = np.column_stack([np.ones(len(dropout_data)), dropout_data["x"]])
    beta, se = _logistic_sandwich(
        dropout_data["dropout"].to_numpy(float), X, dropout_data["therapist"].to_numpy()
    )
    np.testing.assert_allclose(table["estimate"], beta, rtol=1e-6)
    np.testing.assert_allclose(table["std_error"], se, rtol=1e-6)
    z = beta / se
    np.testing.assert_allclose(table["p_value"], 2 * stats.norm.sf(np.abs(z)), rtol=1e-6)
    np.testing.assert_allclose(
        table["exp_ci_low"], np.exp(beta - 1.959963984540054 * se), rtol=1e-6
    )


def test_tidy_columns_and_cluster_from_nested_formula(dropout_data):
    table = gee("dropout ~ x + (1 | therapist/client)", dropout_data)
    assert list(table.columns) == [
        "term",
        "estimate",
        "std_error",
        "statistic",
        "df",
        "p_value",
        "ci_low",
        "ci_high",
        "exp_estimate",
        "exp_ci_low",
        "exp_ci_high",
    ]
    assert table["term"].tolist() == ["(Intercept)", "x"]
    assert table["df"].isna().all()
    assert table.attrs["cluster"] == "therapist"
    assert table.attrs["n_clusters"] == 40
    assert table.attrs["cov_struct"] == "exchangeable"
    assert 0 < table.attrs["working_correlation"] < 1


def test_groups_argument_overrides_formula(dropout_data):
    by_arg = gee("dropout ~ x", dropout_data, groups="therapist", cov_struct="independence")
    by_formula = gee("dropout ~ x + (1 | therapist)", dropout_data, cov_struct="independence")
    pd.testing.assert_frame_equal(by_arg, by_formula)


def test_errors(dropout_data):
    with pytest.raises(ModelSpecError, match="names no clusters"):
        gee("dropout ~ x", dropout_data)
    with pytest.raises(ModelSpecError, match="cov_struct"):
        gee("dropout ~ x + (1 | therapist)", dropout_data, cov_struct="ar1")
    crossed = dropout_data.assign(site=np.tile(np.arange(5), 96).astype(str))
    with pytest.raises(ModelSpecError, match="crossed"):
        gee("dropout ~ x + (1 | therapist) + (1 | site)", crossed)
    with pytest.raises(ModelSpecError, match="family binomial needs a 0/1 response"):
        gee("x ~ 1 + (1 | therapist)", dropout_data)
