"""SparseCholesky and SymbolicAnalysis against SuperLU from scratch and dense LAPACK."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from resistance_outcomes.models.design import build_design
from resistance_outcomes.models.linalg import SparseCholesky, SymbolicAnalysis


def _superlu(a):
    """The factorisation used before the analysis was kept: SuperLU from scratch."""
    lu = spla.splu(
        sp.csc_matrix(a),
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    return lu, float(np.sum(np.log(lu.U.diagonal())))


def _random_spd(q, density, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    m = sp.random(q, q, density=density, random_state=rng)
    return sp.csc_matrix(scale * (m @ m.T) + sp.identity(q))


def _close(x, y, rel=1e-10):
    return np.max(np.abs(x - y)) <= rel * np.max(np.abs(y))


def test_refactorisation_matches_superlu_on_random_matrices():
    analysis = SymbolicAnalysis()
    rhs = np.random.default_rng(9).normal(size=(800, 3))
    base = _random_spd(800, 0.003, seed=1)
    for i, scale in enumerate([1.0, 0.3, 4.0, 1e-3]):
        a = sp.csc_matrix(scale * (base - sp.identity(800)) + sp.identity(800))
        fac = analysis.factor(a)
        lu, logdet = _superlu(a)
        assert fac.logdet == pytest.approx(logdet, rel=1e-10)
        assert _close(fac.solve(rhs), lu.solve(rhs))
        assert _close(fac.solve(rhs[:, 0]), lu.solve(rhs[:, 0]))
        assert type(fac).__name__ == ("_SuperLUFactor" if i == 0 else "_SparseFactor")
    assert analysis.n_analyses == 1 and analysis.dense is False


def test_fewer_entries_reuse_the_pattern_and_new_entries_extend_it():
    analysis = SymbolicAnalysis()
    a = _random_spd(700, 0.003, seed=2)
    analysis.factor(a)
    analysis.factor(a)
    # drop a few off-diagonal pairs: still within the pattern, held as zeros
    coo = sp.coo_matrix(a)
    off = np.flatnonzero(coo.row != coo.col)[:20]
    pairs = set(zip(coo.row[off], coo.col[off], strict=True))
    keep = [
        (r, c) not in pairs and (c, r) not in pairs for r, c in zip(coo.row, coo.col, strict=True)
    ]
    keep = np.array(keep)
    fewer = sp.csc_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=a.shape)
    fewer = sp.csc_matrix(fewer + 10 * sp.identity(700))  # still positive definite
    fac = analysis.factor(fewer)
    assert analysis.n_analyses == 1
    assert fac.logdet == pytest.approx(np.linalg.slogdet(fewer.toarray())[1], rel=1e-10)
    # an entry outside the pattern: a new analysis (of the union)
    extra = sp.csc_matrix(a + 0.01 * (sp.eye(700, k=350) + sp.eye(700, k=-350)))
    fac = analysis.factor(extra)
    assert analysis.n_analyses == 2
    assert fac.logdet == pytest.approx(np.linalg.slogdet(extra.toarray())[1], rel=1e-10)


def test_an_earlier_factor_still_solves_its_own_matrix():
    analysis = SymbolicAnalysis()
    a = _random_spd(650, 0.004, seed=3)
    analysis.factor(a)
    first = analysis.factor(a)
    second = analysis.factor(sp.csc_matrix(3.0 * a))
    b = np.ones(650)
    assert _close(a @ first.solve(b), b)
    assert _close(3.0 * (a @ second.solve(b)), b)
    assert _close(a @ first.solve(b), b)


def test_not_positive_definite_raises():
    analysis = SymbolicAnalysis()
    a = _random_spd(650, 0.004, seed=4)
    analysis.factor(a)
    analysis.factor(a)
    indefinite = sp.csc_matrix(a - 2.0 * sp.diags(np.r_[np.zeros(649), a.diagonal()[-1]]))
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        analysis.factor(indefinite)
    with pytest.raises(np.linalg.LinAlgError):
        analysis.factor(sp.csc_matrix(a * np.nan))
    assert analysis.factor(a).logdet == pytest.approx(_superlu(a)[1], rel=1e-10)


def _h_matrix(formula, data, theta):
    design = build_design(formula, data)
    ztz = design.Zt @ design.Zt.T
    lt = design.lambdat(np.asarray(theta, dtype=float))
    return design, sp.csr_matrix(lt @ ztz @ lt.T + sp.identity(design.q))


def _nested_with_coders(seed=5):
    """Sessions of clients nested in therapists, each session coded by one of 12 coders:
    the Schur complement of the therapists and coders stays sparse when factored."""
    rng = np.random.default_rng(seed)
    n, clients, therapists = 3000, 800, 650
    client = np.r_[np.arange(clients), rng.integers(0, clients, n - clients)]
    therapist = np.r_[np.arange(therapists), rng.integers(0, therapists, clients - therapists)]
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "client": pd.Categorical(client),
            "therapist": pd.Categorical(therapist[client]),
            "coder": pd.Categorical(rng.integers(0, 12, n)),
        }
    )


def _crossed(seed=6):
    """Two crossed factors of 1,500 and 700 levels in 8,000 rows: the Schur complement of
    the second is sparse (about 6% entries) but its factor fills in."""
    rng = np.random.default_rng(seed)
    n = 8000
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "a": pd.Categorical(np.r_[np.arange(1500), rng.integers(0, 1500, n - 1500)]),
            "b": pd.Categorical(
                rng.permutation(np.r_[np.arange(700), rng.integers(0, 700, n - 700)])
            ),
        }
    )


@pytest.mark.parametrize(
    ("formula", "data", "thetas", "dense"),
    [
        (
            "y ~ x + (1 + x | client) + (1 | therapist) + (1 | coder)",
            _nested_with_coders,
            [[0.8, 0.1, 0.4, 0.5, 0.3], [1.2, -0.3, 0.2, 0.9, 0.05], [0.5, 0.0, 0.0, 0.2, 0.7]],
            False,
        ),
        ("y ~ 1 + (1 | a) + (1 | b)", _crossed, [[0.8, 0.5], [0.3, 1.1]], True),
    ],
)
def test_sparse_cholesky_of_a_design_matches_superlu_and_lapack(formula, data, thetas, dense):
    frame = data()
    chol = None
    for i, theta in enumerate(thetas):
        design, h = _h_matrix(formula, frame, theta)
        if chol is None:
            chol = SparseCholesky(design.leading_block)
        chol.factor(h)
        rhs = np.random.default_rng(1).normal(size=(design.q, 2))
        lu, logdet = _superlu(h)
        assert chol.logdet() == pytest.approx(logdet, rel=1e-10)
        if i == 0:
            dense_logdet = np.linalg.slogdet(h.toarray())[1]
            assert chol.logdet() == pytest.approx(dense_logdet, rel=1e-10)
        assert _close(chol.solve(rhs), lu.solve(rhs))
    assert chol.analysis.n_analyses == 1 and chol.analysis.dense is dense


def test_a_failed_first_factorisation_leaves_the_decision_to_the_next():
    analysis = SymbolicAnalysis()
    a = _random_spd(650, 0.004, seed=7)
    with pytest.raises(np.linalg.LinAlgError):
        analysis.factor(sp.csc_matrix(a - 3.0 * sp.identity(650)))
    assert analysis.dense is None
    fac = analysis.factor(a)
    assert analysis.dense is False and analysis.n_analyses == 1
    assert fac.logdet == pytest.approx(_superlu(a)[1], rel=1e-10)
