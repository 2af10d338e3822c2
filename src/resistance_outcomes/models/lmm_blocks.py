"""Blocked Cholesky factor of ``Lambda' Z' W Z Lambda + I`` for scalar random effects.

When every random-effects term is a scalar (random intercepts, or one random slope
without intercept), ``Lambda`` is diagonal, ``Lambda = diag(t)`` with ``t`` repeating
each term's ``theta`` over its levels, and

    A = diag(t) G diag(t) + I,    G = Z' W Z.

As in lme4 and MixedModels.jl (Bates, Maechler, Bolker & Walker 2015; Bates et al. 2025,
arXiv 2505.11674), ``G`` is stored once in blocks: its leading block (the term with the
most levels) is diagonal, ``d1``, because every observation is in one level of that
term; the block ``G21`` below it is sparse; the block ``G22`` of the other terms is
dense. An evaluation at ``theta`` then needs no sparse matrix products of ``Lambda``:

    D = t1^2 d1 + 1 (diagonal),  B = diag(t2) G21 t1,  S = diag(t2) G22 diag(t2) + I - B D^-1 B'

with ``S`` (the Schur complement) factored densely; ``log det A = sum log D + log det S``.
The Schur update ``B D^-1 B'`` is one sparse product of a matrix whose pattern is fixed
(only its values change). The diagonal of ``A^(-1)``, which the exact gradient of the
deviance needs, follows from ``S^(-1)``:
``diag(A^-1)_1 = 1 / D + diag(B' S^-1 B) / D^2`` and ``diag(A^-1)_2 = diag(S^-1)``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

__all__ = ["ScalarBlockedFactor", "scalar_blocked_applicable"]

#: Largest Schur complement (rows) factored densely by the blocked path.
DENSE_SCHUR_MAX = 4000
#: Below this many rows the Schur complement is factored densely whatever its sparsity.
DENSE_SCHUR_ALWAYS = 600


def scalar_blocked_applicable(design, ztwz: sp.spmatrix) -> bool:
    """Whether :class:`ScalarBlockedFactor` suits ``design``: all terms scalar and a
    Schur complement of the leading term that is small or dense enough to factor densely.

    Parameters
    ----------
    design : MixedDesign
    ztwz : scipy.sparse matrix
        ``Z' W Z``.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0], "x": [0.0, 1.0, 0.0, 1.0],
    ...                    "g": ["a", "a", "b", "b"]})
    >>> design = build_design("y ~ 1 + (1 | g)", df)
    >>> scalar_blocked_applicable(design, design.Zt @ design.Zt.T)
    True
    >>> design = build_design("y ~ 1 + (1 + x | g)", df)
    >>> scalar_blocked_applicable(design, design.Zt @ design.Zt.T)
    False
    """
    if not design.blocks or any(block.n_coef != 1 for block in design.blocks):
        return False
    n1 = design.blocks[0].n_levels
    q2 = design.q - n1
    if q2 < DENSE_SCHUR_ALWAYS:
        return True
    if q2 > DENSE_SCHUR_MAX:
        return False
    g = sp.csr_matrix(ztwz)
    g21 = g[n1:, :n1]
    g21.data[:] = 1.0
    pattern = (g21 @ g21.T + g[n1:, n1:]).nnz
    return pattern > 0.1 * q2 * q2


class ScalarBlockedFactor:
    """Factor of ``A = diag(t) Z'WZ diag(t) + I`` from blocks of ``Z'WZ`` stored once.

    Parameters
    ----------
    design : MixedDesign
        All terms scalar (see :func:`scalar_blocked_applicable`).
    ztwz : scipy.sparse matrix
        ``Z' W Z``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> rng = np.random.default_rng(2)
    >>> df = pd.DataFrame({"y": rng.normal(size=40), "a": rng.integers(0, 8, 40),
    ...                    "b": rng.integers(0, 5, 40)})
    >>> design = build_design("y ~ 1 + (1 | a) + (1 | b)", df)
    >>> ztz = (design.Zt @ design.Zt.T).tocsc()
    >>> fac = ScalarBlockedFactor(design, ztz).factor(np.array([0.7, 1.3]))
    >>> lt = design.lambdat(np.array([0.7, 1.3]))
    >>> a = (lt @ ztz @ lt.T).toarray() + np.eye(design.q)
    >>> bool(np.isclose(fac.logdet(), np.linalg.slogdet(a)[1]))
    True
    >>> bool(np.allclose(fac.solve(np.ones(design.q)), np.linalg.solve(a, np.ones(design.q))))
    True
    """

    def __init__(self, design, ztwz: sp.spmatrix):
        blocks = design.blocks
        self.q = design.q
        self.n1 = n1 = blocks[0].n_levels
        self.q2 = q2 = self.q - n1
        # theta index of each row of Z'
        self.theta_of_row = np.concatenate(
            [np.full(b.n_levels, b.theta_slice.start) for b in blocks]
        )
        self.term_starts = np.array([b.z_slice.start for b in blocks])
        g = sp.csr_matrix(ztwz)
        self.d1 = g.diagonal()[:n1].copy()
        g21 = g[n1:, :n1].tocsr()
        g21.sort_indices()
        self.g21 = g21
        self._g21_data = g21.data.copy()
        self._g21_rows = np.repeat(np.arange(q2), np.diff(g21.indptr))
        self._g21_cols = g21.indices.copy()
        self.g22 = g[n1:, n1:].toarray() if q2 else np.zeros((0, 0))
        self._work = g21.copy()  # same pattern, values filled per evaluation
        self._update = _schur_update_map(g21) if q2 else None
        self.t = None

    def factor(self, theta) -> ScalarBlockedFactor:
        """Factor at ``theta``; returns ``self``.

        Raises
        ------
        numpy.linalg.LinAlgError
            If the matrix is not numerically positive definite.
        """
        theta = np.asarray(theta, dtype=float)
        t = theta[self.theta_of_row]
        self.t = t
        n1 = self.n1
        t1, t2 = t[:n1], t[n1:]
        d = t1 * t1 * self.d1 + 1.0
        self.d = d
        self._logdet_d = float(np.sum(np.log(d)))
        self._chol = None
        if self.q2 == 0:
            return self
        self._b_data = self._g21_data * t2[self._g21_rows] * t1[self._g21_cols]
        s = self.g22 * np.outer(t2, t2)
        s[np.diag_indices_from(s)] += 1.0
        self._m2 = None
        if self._update is not None:
            # lower triangle of B D^-1 B' = diag(t2) G21 diag(t1^2 / D) G21' diag(t2)
            rows, cols, linear_map = self._update
            weights = np.column_stack([t1 * t1 / d, t1 * t1 / (d * d)])
            values = linear_map @ weights
            outer = t2[rows] * t2[cols]
            s[rows, cols] -= values[:, 0] * outer
            self._m2 = values[:, 1] * outer  # lower triangle of B D^-2 B'
        elif self._work.nnz:
            e = self._work  # B D^(-1/2) on the fixed pattern of G21
            e.data = self._g21_data * t2[self._g21_rows] * (t1 / np.sqrt(d))[self._g21_cols]
            s -= (e @ e.T).toarray()
        try:
            self._chol = scipy.linalg.cho_factor(s, lower=True, check_finite=False)
        except (scipy.linalg.LinAlgError, ValueError) as err:
            raise np.linalg.LinAlgError(str(err)) from None
        diag = np.diag(self._chol[0])
        if not np.all(np.isfinite(diag)):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        self._logdet_s = float(2 * np.sum(np.log(diag)))
        return self

    def _b(self) -> sp.csr_matrix:
        b = self._work.copy()
        b.data = self._b_data
        return b

    def logdet(self) -> float:
        """``log det A``."""
        return self._logdet_d + (self._logdet_s if self._chol is not None else 0.0)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``A x = rhs`` for a vector or a matrix of right-hand sides."""
        rhs = np.asarray(rhs, dtype=float)
        vector = rhs.ndim == 1
        r = rhs[:, None] if vector else rhs
        n1, d = self.n1, self.d
        r1, r2 = r[:n1], r[n1:]
        if self.q2 == 0:
            x = r1 / d[:, None]
        else:
            b = self._b()
            x2 = scipy.linalg.cho_solve(self._chol, r2 - b @ (r1 / d[:, None]), check_finite=False)
            x1 = (r1 - b.T @ x2) / d[:, None]
            x = np.vstack([x1, x2])
        return x[:, 0] if vector else x

    def term_traces_of_inverse(self) -> np.ndarray:
        """Sum of the diagonal of ``A^(-1)`` over each term's rows."""
        n1, d = self.n1, self.d
        traces = np.zeros(len(self.term_starts))
        traces[0] = np.sum(1.0 / d)
        if self.q2 == 0:
            return traces
        inv_lower, info = scipy.linalg.lapack.dpotri(self._chol[0], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("inverse of the Schur complement failed")
        # diag(B' S^-1 B) / D^2 summed = sum(S^-1 * (B D^-1)(B D^-1)')
        if self._m2 is not None:
            rows, cols, _ = self._update
            twice = np.where(rows == cols, 1.0, 2.0)
            traces[0] += float(np.sum(self._m2 * twice * inv_lower[rows, cols]))
        elif self._work.nnz:
            e2 = self._work.copy()
            e2.data = self._b_data / d[self._g21_cols]
            m2 = (e2 @ e2.T).tocsr()
            m2_rows = np.repeat(np.arange(self.q2), np.diff(m2.indptr))
            s_inv = np.tril(inv_lower) + np.tril(inv_lower, -1).T
            traces[0] += float(m2.data @ s_inv[m2_rows, m2.indices])
        diag2 = np.diag(inv_lower)
        starts = self.term_starts[1:] - n1
        traces[1:] = np.add.reduceat(diag2, starts) if len(starts) else []
        return traces


#: Largest number of products in the Schur update held as a precomputed linear map.
UPDATE_MAP_MAX = 10_000_000  # about 120 MB


def _schur_update_map(g21: sp.csr_matrix):
    """The lower triangle of ``G21 diag(w) G21'`` as a fixed linear map of ``w``.

    Entry ``(r, c)`` is ``sum_j G21[r, j] G21[c, j] w_j``: for the pattern's entries
    ``r >= c`` the products ``G21[r, j] G21[c, j]`` are stored once as a sparse matrix
    (entries by level ``j``), so each evaluation is one sparse matrix-vector product.

    Returns
    -------
    (rows, cols, map) or None
        None when the map would hold more than :data:`UPDATE_MAP_MAX` products (the
        update is then a sparse matrix product per evaluation).
    """
    csc = g21.tocsc()
    csc.sort_indices()
    counts = np.diff(csc.indptr)
    pairs = counts.astype(np.int64) * (counts + 1) // 2
    if int(np.sum(pairs)) > UPDATE_MAP_MAX:
        return None
    q2, n1 = csc.shape
    # output pattern: lower triangle of G21 G21', numbered row by row
    pattern = abs(csc).astype(bool).astype(np.float64)
    pattern = sp.tril(pattern @ pattern.T).tocsr()
    pattern.sort_indices()
    out_rows = np.repeat(np.arange(q2, dtype=np.int32), np.diff(pattern.indptr))
    out_cols = pattern.indices.astype(np.int32)
    lookup = np.zeros((q2, q2), dtype=np.int32)  # q2 <= DENSE_SCHUR_MAX
    lookup[out_rows, out_cols] = np.arange(pattern.nnz, dtype=np.int32)
    entries, values = [], []
    chunk_ends = np.searchsorted(np.cumsum(pairs), np.arange(1, n1 + 1) * 500_000)
    start = 0
    for end in np.unique(np.minimum(chunk_ends + 1, n1)):
        if end <= start:
            continue
        sub = csc[:, start:end]
        c_counts = np.diff(sub.indptr)
        column = np.repeat(np.arange(end - start), c_counts)
        reps = c_counts[column]
        first = np.repeat(np.arange(sub.nnz), reps)
        offset = np.arange(len(first)) - np.repeat(np.cumsum(reps) - reps, reps)
        second = sub.indptr[column[first]] + offset
        r, c = sub.indices[first], sub.indices[second]
        keep = r >= c
        first, second, r, c = first[keep], second[keep], r[keep], c[keep]
        entries.append(lookup[r, c])  # generated level by level: the map's CSC order
        values.append(sub.data[first] * sub.data[second])
        start = end
    indptr = np.concatenate([[0], np.cumsum(pairs)])
    linear_map = sp.csc_matrix(
        (np.concatenate(values), np.concatenate(entries), indptr), shape=(pattern.nnz, n1)
    )
    return out_rows, out_cols, linear_map
