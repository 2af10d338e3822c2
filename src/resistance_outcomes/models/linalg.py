"""Cholesky-type factorisation of the sparse matrix ``Lambda' Z' W Z Lambda + I``.

The matrix is symmetric positive definite. Its leading rows belong to the random-effects
term with the most levels; because every observation sits in exactly one level of that
term, this leading part is block diagonal with small ``k x k`` blocks. The factorisation
eliminates it exactly (batched dense Cholesky of the small blocks) and factors the Schur
complement of the remaining rows, dense when it is small or dense, otherwise with
SuperLU in symmetric mode (no pivoting off the diagonal, fill-reducing ordering), which
for a positive-definite matrix is a Cholesky factorisation up to a diagonal scaling.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

__all__ = ["SparseCholesky", "single_threaded_blas"]


def single_threaded_blas(func):
    """Run ``func`` with one BLAS thread.

    Mixed-model fitting factors many small dense matrices; multi-threaded BLAS only adds
    synchronisation cost there (tens of times slower on a busy machine).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


class SparseCholesky:
    """Factor, solve and log-determinant of a sparse symmetric positive-definite matrix.

    Parameters
    ----------
    leading : tuple of int, optional
        ``(n1, k)``: the first ``n1`` rows form a block-diagonal part with ``k x k``
        blocks (no entries between blocks). ``(0, 1)`` means no such structure.
        :attr:`MixedDesign.leading_block` gives it for ``Lambda' Z' W Z Lambda + I``.
    dense_below : int, optional
        Factor densely when the matrix (or its Schur complement) has fewer rows.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> a = sp.csc_matrix(np.array([[4.0, 0.0, 2.0], [0.0, 9.0, 3.0], [2.0, 3.0, 6.0]]))
    >>> chol = SparseCholesky(leading=(2, 1), dense_below=0).factor(a)
    >>> bool(np.allclose(a @ chol.solve(np.ones(3)), 1.0))
    True
    >>> bool(np.isclose(chol.logdet(), np.log(np.linalg.det(a.toarray()))))
    True
    """

    def __init__(self, leading: tuple[int, int] = (0, 1), dense_below: int = 600):
        self.n1, self.k = int(leading[0]), int(leading[1])
        if self.n1 % self.k:
            raise ValueError(f"leading size {self.n1} is not a multiple of block size {self.k}")
        self.dense_below = dense_below
        self._dense = None
        self._schur = None
        self._inverse_parts = None

    def factor(self, a) -> SparseCholesky:
        """Factor ``a`` (scipy sparse or dense array); returns ``self``.

        Raises
        ------
        numpy.linalg.LinAlgError
            If ``a`` is not positive definite.
        """
        q = a.shape[0]
        self.q = q
        self._inverse_parts = None
        if q < self.dense_below or self.n1 == 0:
            self._factor_plain(a)
        else:
            self._factor_blocked(sp.csr_matrix(a))
        return self

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Solve ``a x = b`` for a vector or a matrix of right-hand sides."""
        b = np.asarray(b, dtype=float)
        if self._dense is not None:
            return self._dense.solve(b)
        n1 = self.n1
        b1, b2 = b[:n1], b[n1:]
        x1 = self._dinv @ b1
        if self.q == n1:
            return x1
        x2 = self._schur.solve(b2 - self._dinv_b.T @ b1)
        return np.concatenate([x1 - self._dinv_b @ x2, x2])

    def logdet(self) -> float:
        """``log det(a)``."""
        if self._dense is not None:
            return self._dense.logdet
        return self._logdet_d + (self._schur.logdet if self._schur is not None else 0.0)

    def has_inverse_entries(self, max_entries: int = 20_000_000) -> bool:
        """Whether :meth:`inverse_entries` is available: the matrix or its Schur
        complement was factored densely, with at most ``max_entries`` entries of the
        inverse's off-diagonal block held."""
        if self._dense is not None:
            return self._dense.chol is not None and self.q * self.q <= max_entries
        if self._schur is None:
            return True
        return self._schur.chol is not None and self.n1 * (self.q - self.n1) <= max_entries

    def inverse_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Entries ``(rows[i], cols[i])`` of the inverse of the factored matrix.

        Entries within the leading block-diagonal part must lie in its diagonal blocks
        (the others are not formed). With ``D`` the leading part, ``b`` the block right of
        it and ``S`` the Schur complement, the inverse is
        ``[[D^-1 + F S^-1 F', -F S^-1], [-S^-1 F', S^-1]]`` with ``F = D^-1 b``.
        Needs :meth:`has_inverse_entries`.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> a = np.array([[4.0, 0.0, 2.0], [0.0, 9.0, 3.0], [2.0, 3.0, 6.0]])
        >>> chol = SparseCholesky(leading=(2, 1), dense_below=0).factor(sp.csc_matrix(a))
        >>> rows, cols = np.array([0, 0, 2, 1]), np.array([0, 2, 1, 1])
        >>> bool(np.allclose(chol.inverse_entries(rows, cols), np.linalg.inv(a)[rows, cols]))
        True
        """
        rows, cols = np.asarray(rows), np.asarray(cols)
        if self._inverse_parts is None:
            self._inverse_parts = self._compute_inverse_parts()
        parts = self._inverse_parts
        if self._dense is not None:
            return parts[rows, cols]
        blocks, k_mat, s_inv = parts
        n1, k = self.n1, self.k
        out = np.empty(len(rows))
        lead_r, lead_c = rows < n1, cols < n1
        both = lead_r & lead_c
        out[both] = blocks[rows[both] // k, rows[both] % k, cols[both] % k]
        if s_inv is not None:
            upper = lead_r & ~lead_c
            out[upper] = -k_mat[rows[upper], cols[upper] - n1]
            lower = ~lead_r & lead_c
            out[lower] = -k_mat[cols[lower], rows[lower] - n1]
            rest = ~lead_r & ~lead_c
            out[rest] = s_inv[rows[rest] - n1, cols[rest] - n1]
        return out

    def _compute_inverse_parts(self):
        if self._dense is not None:
            return scipy.linalg.cho_solve(self._dense.chol, np.eye(self.q), check_finite=False)
        n1, k = self.n1, self.k
        dinv = self._dinv.tocoo()
        blocks = np.zeros((n1 // k, k, k))
        np.add.at(blocks, (dinv.row // k, dinv.row % k, dinv.col % k), dinv.data)
        if self._schur is None:
            return blocks, None, None
        q2 = self.q - n1
        s_inv = scipy.linalg.cho_solve(self._schur.chol, np.eye(q2), check_finite=False)
        f = self._dinv_b.tocsr()
        k_mat = np.asarray(f @ s_inv)  # F S^-1, (n1, q2)
        # diagonal blocks of F S^-1 F': entry (a, b) of a block is sum_r K[a, r] F[b, r]
        fc = f.tocoo()
        level, offset_b = fc.row // k, fc.row % k
        for offset_a in range(k):
            values = k_mat[level * k + offset_a, fc.col] * fc.data
            np.add.at(blocks, (level, offset_a, offset_b), values)
        return blocks, k_mat, s_inv

    def _factor_plain(self, a) -> None:
        self._dense = _FactorSolver(a, self.dense_below)

    def _factor_blocked(self, a: sp.csr_matrix) -> None:
        n1, k = self.n1, self.k
        self._dense = None
        if k == 1:
            d = a.diagonal()[:n1]
            if np.any(d <= 0):
                raise np.linalg.LinAlgError("matrix is not positive definite")
            self._logdet_d = float(np.sum(np.log(d)))
            self._dinv = sp.diags(1.0 / d, format="csr")
        else:
            lead = a[:n1, :n1].tocoo()
            blocks = np.zeros((n1 // k, k, k))
            np.add.at(blocks, (lead.row // k, lead.row % k, lead.col % k), lead.data)
            chol = np.linalg.cholesky(blocks)  # raises LinAlgError if not PD
            self._logdet_d = float(2 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2))))
            self._dinv = sp.bsr_matrix(
                (np.linalg.inv(blocks), np.arange(n1 // k), np.arange(n1 // k + 1)),
                shape=(n1, n1),
            ).tocsr()
        if self.q == n1:
            self._schur = None
            return
        b = a[:n1, n1:]
        self._dinv_b = (self._dinv @ b).tocsr()
        schur = a[n1:, n1:] - (b.T @ self._dinv_b)
        self._schur = _FactorSolver(schur, self.dense_below)


class _FactorSolver:
    """Dense Cholesky or SuperLU (symmetric mode) of one symmetric positive-definite matrix."""

    def __init__(self, a, dense_below: int):
        q = a.shape[0]
        dense = q < dense_below or (sp.issparse(a) and a.nnz > 0.1 * q * q)
        if dense:
            matrix = a.toarray() if sp.issparse(a) else np.asarray(a, dtype=float)
            try:
                self.chol = scipy.linalg.cho_factor(matrix, lower=True, check_finite=False)
            except scipy.linalg.LinAlgError as err:
                raise np.linalg.LinAlgError(str(err)) from None
            self.lu = None
            self.logdet = float(2 * np.sum(np.log(np.diag(self.chol[0]))))
        else:
            self.chol = None
            self.lu = spla.splu(
                sp.csc_matrix(a),
                permc_spec="MMD_AT_PLUS_A",
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
            u_diag = self.lu.U.diagonal()
            if np.any(u_diag <= 0) or not np.all(np.isfinite(u_diag)):
                raise np.linalg.LinAlgError("matrix is not positive definite")
            self.logdet = float(np.sum(np.log(u_diag)))

    def solve(self, b: np.ndarray) -> np.ndarray:
        if self.chol is not None:
            return scipy.linalg.cho_solve(self.chol, b, check_finite=False)
        return self.lu.solve(np.asarray(b, dtype=float))
