"""Cholesky-type factorisation of the sparse matrix ``Lambda' Z' W Z Lambda + I``.

The matrix is symmetric positive definite. Its leading rows belong to the random-effects
term with the most levels; because every observation sits in exactly one level of that
term, this leading part is block diagonal with small ``k x k`` blocks. The factorisation
eliminates it exactly (batched dense Cholesky of the small blocks) and factors the Schur
complement of the remaining rows, dense when it is small or dense, otherwise sparse.

The sparsity pattern of the matrix is the same for every ``theta``, so the sparse part is
analysed once per pattern (:class:`SymbolicAnalysis`): the first matrix is factored with
SuperLU in symmetric mode (no pivoting off the diagonal, minimum-degree ordering), which
for a positive-definite matrix is a Cholesky factorisation up to a diagonal scaling, and
the column counts of its factor decide for all later matrices of that pattern. When the
factor fills in (crossed factors whose levels share many first-term levels), a dense
Cholesky is several times faster than any sparse one and is used; otherwise later
matrices are refactored numerically only by QDLDL's LDL' (approximate-minimum-degree
ordering and elimination tree computed once, ``qdldl.Solver.update``).
"""

from __future__ import annotations

import functools

import numpy as np
import qdldl
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

__all__ = ["SparseCholesky", "SymbolicAnalysis", "single_threaded_blas"]

# a sparse factor whose flop count times this exceeds a dense Cholesky's is done densely
# (QDLDL, not supernodal, measured about 15 times slower per flop than LAPACK here)
SPARSE_FLOP_PENALTY = 15.0


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
    analysis : SymbolicAnalysis, optional
        Ordering and symbolic factorisation kept from earlier matrices of the same
        pattern; share one between instances that factor matrices of one pattern (each
        :meth:`factor` of one instance reuses its own otherwise).

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

    def __init__(
        self,
        leading: tuple[int, int] = (0, 1),
        dense_below: int = 600,
        analysis: SymbolicAnalysis | None = None,
    ):
        self.n1, self.k = int(leading[0]), int(leading[1])
        if self.n1 % self.k:
            raise ValueError(f"leading size {self.n1} is not a multiple of block size {self.k}")
        self.dense_below = dense_below
        self.analysis = SymbolicAnalysis() if analysis is None else analysis
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
        self._dense = _factor_part(a, self.dense_below, self.analysis)

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
        self._schur = _factor_part(schur, self.dense_below, self.analysis)


class SymbolicAnalysis:
    """Ordering and symbolic factorisation of one sparsity pattern, kept across matrices.

    Holds the pattern (upper triangle) of the first sparse matrix given to
    :meth:`factor`, whether matrices of that pattern are factored densely (decided from
    the column counts of the first one's factor) and, if not, a QDLDL solver whose
    ordering and elimination tree are reused: later matrices of the pattern (or with
    fewer entries: the others are held as zeros) are refactored numerically only. A
    matrix with an entry outside the pattern starts a new analysis of the union.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> m = sp.random(700, 700, density=0.002, random_state=rng)
    >>> a = sp.csc_matrix(m @ m.T + 5 * sp.identity(700))
    >>> analysis = SymbolicAnalysis()
    >>> first = analysis.factor(a)
    >>> second = analysis.factor(2 * a)  # numeric refactorisation only
    >>> bool(np.isclose(second.logdet - first.logdet, 700 * np.log(2)))
    True
    >>> analysis.dense, analysis.n_analyses
    (False, 1)
    """

    def __init__(self):
        self.keys = None
        self.dense = None
        self.n_analyses = 0
        self._solver = None
        self._current = None

    def factor(self, a) -> _SparseFactor | _DenseFactor:
        """Factor the sparse symmetric positive-definite ``a`` (scipy sparse, both
        triangles stored); raises ``numpy.linalg.LinAlgError`` if it is not."""
        a = sp.csc_matrix(a)
        upper = sp.triu(a, format="csc")
        upper.sum_duplicates()
        data = self._pattern_data(upper)
        if data is None:  # a new pattern: analyse it from this matrix
            self._analyse(upper)
        if data is None or self.dense is None:  # undecided (also after a failed first)
            return self._first_factor(a)
        if self.dense:
            return _DenseFactor(a.toarray())
        return self._numeric(data)

    def _pattern_data(self, upper: sp.csc_matrix) -> np.ndarray | None:
        """``upper``'s entries placed in the analysed pattern (zeros elsewhere), or None
        if the pattern is unset or lacks one of them."""
        if self.keys is None or upper.shape[0] != self.q:
            return None
        if np.array_equal(upper.indptr, self.indptr) and np.array_equal(
            upper.indices, self.indices
        ):
            return upper.data
        keys = _pattern_keys(upper)
        at = np.searchsorted(self.keys, keys)
        if np.any(at >= self.keys.size) or np.any(
            self.keys[np.minimum(at, self.keys.size - 1)] != keys
        ):
            return None
        data = np.zeros(self.keys.size)
        data[at] = upper.data
        return data

    def _analyse(self, upper: sp.csc_matrix) -> None:
        keys = _pattern_keys(upper)
        if self.keys is not None and upper.shape[0] == self.q:
            keys = np.union1d(self.keys, keys)
        q = upper.shape[0]
        self.q, self.keys = q, keys
        self.indices = (keys % q).astype(upper.indices.dtype)
        self.indptr = np.searchsorted(keys // q, np.arange(q + 1)).astype(upper.indptr.dtype)
        self.dense = None
        self._solver = None
        self._current = None
        self.n_analyses += 1

    def _first_factor(self, a: sp.csc_matrix) -> _SuperLUFactor:
        factor = _SuperLUFactor(a)
        counts = np.diff(factor.lu.L.indptr).astype(float)  # column counts of the factor
        q = a.shape[0]
        self.dense = SPARSE_FLOP_PENALTY * float(counts @ counts) > q**3 / 3.0
        return factor

    def _numeric(self, data: np.ndarray) -> _SparseFactor:
        upper = sp.csc_matrix((data, self.indices, self.indptr), shape=(self.q, self.q))
        if self._solver is None:
            try:
                self._solver = qdldl.Solver(upper, upper=True)
            except (ValueError, RuntimeError) as err:
                raise np.linalg.LinAlgError(f"matrix is not positive definite ({err})") from None
        else:
            self._solver.update(upper, upper=True)
        factor = _SparseFactor(self, upper)
        self._current = factor
        d = self._solver.factors()[1]
        if not np.all(d > 0):  # NaN too
            raise np.linalg.LinAlgError("matrix is not positive definite")
        factor.logdet = float(np.sum(np.log(d)))
        return factor

    def _solve(self, factor: _SparseFactor, b: np.ndarray) -> np.ndarray:
        if self._current is not factor:  # a later matrix was factored since: refactor
            self._solver.update(factor.upper, upper=True)
            self._current = factor
        if b.ndim == 1:
            return self._solver.solve(b)
        return np.column_stack([self._solver.solve(b[:, j]) for j in range(b.shape[1])])


def _pattern_keys(upper: sp.csc_matrix) -> np.ndarray:
    """Entries of a canonical CSC matrix as ``column * q + row``, sorted."""
    q = upper.shape[0]
    cols = np.repeat(np.arange(q, dtype=np.int64), np.diff(upper.indptr))
    return cols * q + upper.indices


class _DenseFactor:
    """Dense Cholesky factor."""

    lu = None

    def __init__(self, matrix: np.ndarray):
        try:
            self.chol = scipy.linalg.cho_factor(matrix, lower=True, check_finite=False)
        except scipy.linalg.LinAlgError as err:
            raise np.linalg.LinAlgError(str(err)) from None
        self.logdet = float(2 * np.sum(np.log(np.diag(self.chol[0]))))

    def solve(self, b: np.ndarray) -> np.ndarray:
        return scipy.linalg.cho_solve(self.chol, b, check_finite=False)


class _SuperLUFactor:
    """SuperLU in symmetric mode with a minimum-degree ordering."""

    chol = None

    def __init__(self, a: sp.csc_matrix):
        self.lu = spla.splu(
            a,
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
        u_diag = self.lu.U.diagonal()
        if np.any(u_diag <= 0) or not np.all(np.isfinite(u_diag)):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        self.logdet = float(np.sum(np.log(u_diag)))

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self.lu.solve(np.asarray(b, dtype=float))


class _SparseFactor:
    """QDLDL's ``P L D L' P'`` of one matrix of an analysed pattern."""

    chol = None
    lu = None

    def __init__(self, analysis: SymbolicAnalysis, upper: sp.csc_matrix):
        self.analysis, self.upper = analysis, upper
        self.logdet = np.nan

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self.analysis._solve(self, np.asarray(b, dtype=float))


def _factor_part(a, dense_below: int, analysis: SymbolicAnalysis):
    """Dense Cholesky of a small or dense symmetric positive-definite matrix, otherwise the
    sparse factor of ``analysis``."""
    q = a.shape[0]
    if q < dense_below or (sp.issparse(a) and a.nnz > 0.1 * q * q):
        return _DenseFactor(a.toarray() if sp.issparse(a) else np.asarray(a, dtype=float))
    return analysis.factor(a)
