"""Generalised linear mixed models: Laplace approximation and adaptive Gauss-Hermite quadrature.

The method follows lme4's ``glmer`` (Bates, Maechler, Bolker & Walker, 2015, JSS 67(1)).
With spherical random effects ``u`` (``b = Lambda u``, ``u ~ N(0, I)``) and linear predictor
``eta = X beta + Z Lambda u + offset``, penalised iteratively reweighted least squares
(Newton's method) finds the conditional mode ``u_hat`` of

    g(u) = -2 log f(y | eta) + |u|^2 ,

and the Laplace approximation to -2 log-likelihood is

    D(theta, beta) = g(u_hat) + log det(H),   H = Lambda' Z' W Z Lambda + I,

with ``W`` the observed information of each observation at ``u_hat`` (for the canonical
binomial and Poisson links the same as lme4's working weights; for NB2 the same as
glmmTMB's Laplace approximation). ``D`` is minimised over the covariance parameters
``theta`` (bounded below as in lme4), the fixed effects ``beta`` and, for NB2,
``theta_nb**-0.5`` (the SD of NB2's gamma frailty, smooth at the Poisson limit
``theta_nb -> inf``): L-BFGS-B with the gradient, finished by Newton steps with the
numerical Hessian (the default ``"exact"`` mode below).

Safeguards of that optimisation:

* the optimizer works on each parameter times the root mean square of its column (of the
  random-effects model matrix for theta, as the LMM's
  :func:`~resistance_outcomes.models.lmm.theta_scale`; of ``X`` for beta), and converts
  back exactly: its path, starting values, tolerances and zero checks, and so the fit,
  do not depend on the units of a covariate;
* where the deviance cannot be evaluated (``exp(eta)`` overflows) it is ``+inf``, so
  that line searches back off; floating-point warnings stay inside the engine;
* a run whose end point fails the convergence checks (Hessian positive definite, scaled
  gradient below lme4's 2e-3, no variance at zero where the deviance still decreases
  away from zero) is continued from that point, then restarted with the covariance
  parameters reset; covariance parameters never start at zero, where the gradient of
  the (even) deviance vanishes;
* a diagonal entry of a term's factor at zero with entries below it (a zero random
  intercept variance next to a random slope, say) can hide a descent: the sign of that
  column is arbitrary there, and in the mirrored representation the gradient of the
  entry changes sign; the checks look at the representation in which it is negative;
* NB2 starts from the Poisson GLMM, its limit as ``theta_nb -> inf``, with a moment
  estimate of ``theta_nb``, which is kept within [1e-6, 1e8]. The NB2 log-likelihood is
  compared with the Poisson one: a fit below it fails the checks (and says so), and
  ``theta_nb`` at the upper bound is reported as the Poisson limit, where the two
  log-likelihoods agree.

Two solvers handle ``H``:

* nested scalar factors (one random intercept or scalar term per factor, each factor
  nested in the next, e.g. clients within therapists): ``H`` has the sparsity of a tree,
  its LDL' factor has no fill-in, and every step is O(n) with ``np.bincount``; selected
  elements of ``H^-1`` (Takahashi's recursions) give the exact gradient of ``D``;
* anything else (crossed factors, correlated random slopes): a blocked Cholesky factor.
  The term with most levels gives ``H`` a block-diagonal leading part (one small block
  per level), eliminated exactly; the Schur complement of the other terms is factored
  densely. The elements of ``H^-1`` between random effects that share an observation
  follow from the same factor and give the exact gradient of ``D``. Where that Schur
  complement is large (over ``MAX_DENSE_SCHUR`` rows) the sparse Cholesky factor of
  :class:`~resistance_outcomes.models.linalg.SparseCholesky` and central
  finite-difference gradients are used instead.

Standard errors of ``beta`` are those of lme4's default for ``glmer``: twice the ``beta``
block of the inverse Hessian of ``D`` with respect to all parameters, the Hessian taken
numerically. Adaptive Gauss-Hermite quadrature (``nagq > 1``) replaces the Laplace
approximation per group when there is one scalar grouping factor, as lme4's ``nAGQ``.

Two PIRLS modes (``control["pirls"]``):

* ``"exact"`` (default): PIRLS runs to the exact conditional mode and ``log det(H)`` is
  taken there, so ``D`` is the Laplace approximation itself and the estimates are its
  optimum.
* ``"lme4"``: lme4's ``glmer`` (1.1-31) deviance as lme4 computes it: PIRLS updates in
  lme4's order (factor ``H`` at the current weights, solve, then move ``eta``), stops at
  a relative change of the penalised deviance below ``tolPwrss = 1e-7``, and
  ``log det(H)`` comes from the weights of the iterate before the last one; the fit
  runs lme4's two stages (nAGQ = 0 over theta with beta inside PIRLS, then the Laplace
  deviance over theta and beta), each PIRLS restarting at lme4's ``lp0``, and the
  covariance of ``beta`` is lme4's ``vcov`` from the ``deriv12`` Hessian (step 1e-4) of
  that deviance. Binomial and Poisson, Laplace only; the deviance is only piecewise
  smooth, so it is minimised without derivatives (Nelder-Mead, as lme4) and takes
  more evaluations. Like lme4 it works on theta and beta themselves (not scaled), so,
  like lme4's, its path depends on the units of the covariates.

The two differ only through lme4's inexact log-determinant, in the last digits: on
``cbpp`` lme4's fixed effects lie up to 4e-4 (relative) and its standard errors up to
1.3% from the exact Laplace optimum, and the ``"lme4"`` mode reproduces lme4's numbers;
for the other reference models (and with quadrature, ``nAGQ = 25``) both modes agree
with lme4 to the precision of its output. Use ``"lme4"`` to reproduce an lme4 analysis
to its last reported digits, ``"exact"`` otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy import optimize, special
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from .families import GlmmFamily, Poisson, glmm_family
from .formula import ModelSpecError
from .linalg import SparseCholesky, SymbolicAnalysis
from .lmm import _theta_columns, theta_scale

__all__ = ["GlmmEstimates", "estimate_glmm", "fit_glmm", "laplace_objective"]

PIRLS_MODES = ("exact", "lme4")
DEFAULT_CONTROL = {
    "solver": "auto",
    "pirls": "exact",
    "maxiter": 500,
    "ftol": 1e-10,
    "newton_steps": 10,
}
SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance, on theta in the optimizer's coordinates
GRADIENT_TOL = 2e-3  # lme4's check.conv.grad tolerance on the scaled gradient
BOUND_TOL = 1e-8  # a parameter this close to a finite bound is at the bound
MAX_RUNS_PER_START = 3  # L-BFGS-B runs from one start while they lower the deviance
MAX_NEWTON_HALVINGS = 6
MAX_MODIFIED_STEP = 2.0  # longest Newton step where the Hessian is not positive definite
THETA_START_MIN = 0.1  # starting value of a covariance parameter found at its bound
# (optimizer's coordinates)
POISSON_LIMIT_TOL = 1e-6  # NB2 logLik may fall this far below the Poisson one (rounding;
# times 1 + 1e-4 |logLik| for large data)
MAX_NAGQ = 25
MAX_DENSE_SCHUR = 2500  # the general solver factors a Schur complement this large densely
# (crossed binary, 3,000 x 2,500 levels, 30,000 rows: 68 s; the sparse Cholesky with
# finite-difference gradients took over 15 minutes)
MAX_DENSE_COUPLING = 2_000_000  # ... and keeps D^-1 B (first-term rows x the others) dense
# up to this many entries, sparse beyond


# ---------------------------------------------------------------------------------------
# Solvers for H = Lambda' Z' W Z Lambda + I
# ---------------------------------------------------------------------------------------


@dataclass
class _TreeFactor:
    """LDL' factor of H for nested scalar factors: pivots and unit-lower multipliers."""

    pivots: list[np.ndarray]  # d_k per level
    multipliers: dict  # (k, m) -> L[ancestor at m, node at k], k < m

    def logdet(self) -> float:
        return float(sum(np.log(d).sum() for d in self.pivots))


class _NestedSolver:
    """``H`` for scalar random-effect factors forming a nested chain.

    Levels are ordered finest first; ``ancestor[k, m]`` maps each level of factor ``k`` to
    its level in the coarser factor ``m``. The solver works on the rows sorted by the
    finest factor (``row_order``), so that spreading level values to rows is
    ``np.repeat`` and summing rows into levels ``np.add.reduceat``; coarser factors go
    through the finest one. Vectors in u-space follow the row order of ``Zt`` (blocks
    contiguous, as in the design).
    """

    analytic_gradient = True

    def __init__(self, codes, zvals, n_levels, offsets, theta_index):
        self.K = len(codes)
        self.n_levels = n_levels
        self.slices = [slice(o, o + n) for o, n in zip(offsets, n_levels, strict=True)]
        self.theta_index = theta_index
        self.q = int(sum(n_levels))
        self.row_order = np.argsort(codes[0], kind="stable")
        finest = codes[0][self.row_order]
        self.counts = np.bincount(finest, minlength=n_levels[0])
        self.nonempty = self.counts > 0
        self.starts = (np.cumsum(self.counts) - self.counts)[self.nonempty]
        self.zvals = [None if z is None else z[self.row_order] for z in zvals]
        self.ancestor = {}
        for k in range(self.K):
            for m in range(k + 1, self.K):
                parent = np.zeros(n_levels[k], dtype=np.intp)
                parent[codes[k]] = codes[m]
                self.ancestor[k, m] = parent

    @classmethod
    def from_design(cls, design) -> _NestedSolver | None:
        """The solver when every block is scalar and the factors nest; otherwise None."""
        blocks = design.blocks
        if not blocks or any(b.n_coef != 1 for b in blocks):
            return None
        Zt = sp.csc_matrix(design.Zt)
        n = Zt.shape[1]
        offsets = np.concatenate([[0], np.cumsum([b.n_levels for b in blocks])]).astype(int)
        order = sorted(range(len(blocks)), key=lambda i: -blocks[i].n_levels)
        codes, zvals = [], []
        for i in order:
            coo = Zt[offsets[i] : offsets[i + 1], :].tocoo()
            if coo.nnz != n or np.bincount(coo.col, minlength=n).max() != 1:
                return None
            code = np.empty(n, dtype=np.intp)
            z = np.empty(n)
            code[coo.col] = coo.row
            z[coo.col] = coo.data
            codes.append(code)
            zvals.append(None if np.all(z == 1.0) else z)
        for k in range(len(order)):
            for m in range(k + 1, len(order)):
                parent = np.zeros(blocks[order[k]].n_levels, dtype=np.intp)
                parent[codes[k]] = codes[m]
                if not np.array_equal(parent[codes[k]], codes[m]):
                    return None
        return cls(
            codes,
            zvals,
            [blocks[i].n_levels for i in order],
            [offsets[i] for i in order],
            [blocks[i].theta_slice.start for i in order],
        )

    # -- moving between rows and levels ----------------------------------------------------

    def _spread(self, k, level_values, scaled=True):
        """Row values ``level_values[code_k(row)] (* z_k)``; a (levels, m) array works too."""
        values = level_values if k == 0 else level_values[self.ancestor[0, k]]
        rows = np.repeat(values, self.counts, axis=0)
        z = self.zvals[k]
        if z is None or not scaled:
            return rows
        return rows * (z if rows.ndim == 1 else z[:, None])

    def _sum(self, k, row_values, scaled=True):
        """Sum of ``row_values (* z_k)`` within each level of factor ``k``."""
        z = self.zvals[k]
        if z is not None and scaled:
            row_values = row_values * z
        finest = np.zeros(self.n_levels[0])
        finest[self.nonempty] = np.add.reduceat(row_values, self.starts)
        if k == 0:
            return finest
        return np.bincount(self.ancestor[0, k], weights=finest, minlength=self.n_levels[k])

    def _theta(self, theta):
        return [float(theta[i]) for i in self.theta_index]

    # -- products with Z Lambda ----------------------------------------------------------

    def linpred(self, theta, u):
        """``Z Lambda u`` for a u-vector."""
        th = self._theta(theta)
        out = th[0] * self._spread(0, u[self.slices[0]])
        for k in range(1, self.K):
            out += th[k] * self._spread(k, u[self.slices[k]])
        return out

    def cross(self, theta, v):
        """``Lambda' Z' v`` for an n-vector."""
        out = np.empty(self.q)
        for k, t in enumerate(self._theta(theta)):
            out[self.slices[k]] = t * self._sum(k, v)
        return out

    def effects(self, theta, u):
        """Random effects on the original scale, ``b = Lambda u``."""
        b = np.array(u, dtype=float)
        for k, t in enumerate(self._theta(theta)):
            b[self.slices[k]] *= t
        return b

    def dlinpred(self, j, u):
        """``Z (dLambda / dtheta_j) u``."""
        k = self.theta_index.index(j)
        return self._spread(k, u[self.slices[k]])

    # -- factorisation -------------------------------------------------------------------

    def factor(self, theta, w) -> _TreeFactor:
        """LDL' elimination from the finest level up; fill-in stays on the tree."""
        th = self._theta(theta)
        K = self.K
        diag = [1.0 + th[k] ** 2 * self._sum(k, self._weighted(k, w)) for k in range(K)]
        off = {}
        for k in range(K):
            for m in range(k + 1, K):
                zw = w if self.zvals[m] is None else w * self.zvals[m]
                off[k, m] = th[k] * th[m] * self._sum(k, zw)
        mult = {}
        for k in range(K):
            for m in range(k + 1, K):
                mult[k, m] = off[k, m] / diag[k]
            for m in range(k + 1, K):
                anc = self.ancestor[k, m]
                diag[m] = diag[m] - np.bincount(
                    anc, weights=off[k, m] * mult[k, m], minlength=self.n_levels[m]
                )
                for m2 in range(m + 1, K):
                    off[m, m2] = off[m, m2] - np.bincount(
                        anc, weights=off[k, m] * mult[k, m2], minlength=self.n_levels[m]
                    )
        return _TreeFactor(diag, mult)

    def _weighted(self, k, w):
        """``w * z_k`` (the second z of ``w * z_k**2`` is applied by ``_sum``)."""
        return w if self.zvals[k] is None else w * self.zvals[k]

    def solve(self, fac: _TreeFactor, rhs):
        """Solve ``H x = rhs`` for a u-vector or a (q, m) matrix."""
        x = np.array(rhs, dtype=float)
        parts = [x[s] for s in self.slices]
        two_d = x.ndim == 2
        for k in range(self.K):  # forward: L y = rhs
            for m in range(k + 1, self.K):
                parts[m] -= _bincount_rows(
                    self.ancestor[k, m], fac.multipliers[k, m], parts[k], self.n_levels[m], two_d
                )
        for k in range(self.K):
            parts[k] /= fac.pivots[k][:, None] if two_d else fac.pivots[k]
        for k in reversed(range(self.K)):  # backward: L' x = D^-1 y
            for m in range(k + 1, self.K):
                lk = fac.multipliers[k, m][:, None] if two_d else fac.multipliers[k, m]
                parts[k] -= lk * parts[m][self.ancestor[k, m]]
        for s, part in zip(self.slices, parts, strict=True):
            x[s] = part
        return x

    def selected_inverse(self, fac: _TreeFactor):
        """Elements of ``H^-1`` on the tree (Takahashi's recursions, coarsest level first).

        Returns the diagonal per level and, for ``k < m``, the element between each level
        of factor ``k`` and its ancestor in factor ``m``.
        """
        diag = [None] * self.K
        off = {}

        def entry(m, m2, idx):  # H^-1 between a level-m node and its ancestor at m2
            if m == m2:
                return diag[m][idx]
            lo, hi = min(m, m2), max(m, m2)
            return off[lo, hi][idx]

        for k in reversed(range(self.K)):
            anc = {m: self.ancestor[k, m] for m in range(k + 1, self.K)}
            for m in range(k + 1, self.K):
                off[k, m] = -sum(
                    entry(m, m2, anc[m] if m <= m2 else anc[m2]) * fac.multipliers[k, m2]
                    for m2 in range(k + 1, self.K)
                )
            diag[k] = 1.0 / fac.pivots[k] - sum(
                fac.multipliers[k, m] * off[k, m] for m in range(k + 1, self.K)
            )
        return diag, off

    def leverages(self, theta, fac: _TreeFactor):
        """Per observation: ``h_i = [Z Lambda H^-1 Lambda' Z']_ii`` and, for each theta
        index ``j``, ``r_ij = [Z dLambda_j H^-1 Lambda' Z']_ii``."""
        th = self._theta(theta)
        diag, off = self.selected_inverse(fac)
        n = self.counts.sum()
        n_theta = max(self.theta_index) + 1
        r = np.zeros((n, n_theta))
        for k in range(self.K):
            level = [
                th[m] * (diag[k] if m == k else off[min(k, m), max(k, m)]) for m in range(self.K)
            ]
            # element (k, m) lives on the finer factor min(k, m): spread from there
            acc = sum(
                self._spread(min(k, m), level[m], scaled=False)
                * (1.0 if self.zvals[m] is None else self.zvals[m])
                for m in range(self.K)
            )
            r[:, self.theta_index[k]] = acc if self.zvals[k] is None else acc * self.zvals[k]
        h = r[:, self.theta_index] @ np.asarray(th)
        return h, r


def _bincount_rows(index, scale, values, length, two_d):
    """Sum ``scale * values`` into ``length`` bins by ``index`` (rows of a matrix too)."""
    if not two_d:
        return np.bincount(index, weights=scale * values, minlength=length)
    return np.column_stack(
        [
            np.bincount(index, weights=scale * values[:, j], minlength=length)
            for j in range(values.shape[1])
        ]
    )


@dataclass
class _BlockedFactor:
    """Factor of ``H`` split at the leading block-diagonal part (see :class:`_SparseSolver`).

    ``H = [[D, B], [B', C]]`` with ``D`` block diagonal (``k x k`` blocks, one per level of
    the first term); ``G = D^-1 B`` and the Schur complement ``S = C - B' G`` (dense
    Cholesky factor ``schur``, None when the first term is the only one).
    """

    dinv: np.ndarray  # (levels, k, k) inverses of D's blocks
    g: np.ndarray  # (n1, q2) D^-1 B
    schur: tuple | None  # scipy.linalg.cho_factor of S
    log_det: float

    def logdet(self) -> float:
        return self.log_det


class _SparseSolver:
    """General ``H`` (crossed factors, correlated terms).

    The first term (the one with most levels) has ``k x k`` diagonal blocks of ``H`` and
    nothing between its levels, because every observation is in one level of it. ``H``
    is factored by eliminating that block-diagonal part exactly and factoring the Schur
    complement of the other terms' rows densely (blocked Cholesky, as lme4 and
    MixedModels.jl do for linear models); this applies while that complement is small
    (``MAX_DENSE_SCHUR`` rows). Every piece is assembled directly from the observations'
    rows of ``Z Lambda`` (``np.bincount``), and the exact gradient of the Laplace
    deviance needs only the elements of ``H^-1`` between random effects that share an
    observation, which the blocked factor gives directly (:meth:`leverages`). The
    coupling ``D^-1 B`` between the first term and the others is kept dense up to
    ``MAX_DENSE_COUPLING`` entries and sparse beyond (a first term with thousands of
    levels, such as an observation-level random effect); the leverages then take the
    first term's levels in chunks, so that memory stays bounded. Larger Schur
    complements go to :class:`~resistance_outcomes.models.linalg.SparseCholesky` (sparse
    Cholesky with a fill-reducing ordering, analysed once for all evaluations) with
    finite-difference gradients.
    """

    row_order = slice(None)

    def __init__(self, design):
        self.design = design
        self.Zt = sp.csc_matrix(design.Zt)
        self.q = self.Zt.shape[0]
        self.leading = design.leading_block
        self.n1, self.k1 = self.leading
        self.q2 = self.q - self.n1
        self.identity = sp.identity(self.q, format="csr")
        self._theta_key = None
        self._A = None
        self._values_key = None
        self._values = None
        blocks = design.blocks
        self.blocked = self.q2 <= MAX_DENSE_SCHUR
        self.analytic_gradient = self.blocked
        self._analysis = SymbolicAnalysis()  # H's pattern is the same for every theta
        self.dense_coupling = self.n1 * self.q2 <= MAX_DENSE_COUPLING
        # rows of u in each observation's support, term by term (the first term first)
        self.support = np.hstack(
            [b.z_slice.start + b.codes[:, None] * b.n_coef + np.arange(b.n_coef) for b in blocks]
        ).astype(np.intp)
        self.level = np.asarray(blocks[0].codes, dtype=np.intp)  # level of the first term
        self.n_levels1 = blocks[0].n_levels
        self.schur_rows = self.support[:, self.k1 :] - self.n1
        # rows of D per observation, and where each observation's products go in C and B
        self._first = self.level[:, None] * self.k1 + np.arange(self.k1)
        rows2 = self.schur_rows
        self._c_index = (rows2[:, :, None] * self.q2 + rows2[:, None, :]).ravel()
        self._b_index = (self._first[:, :, None] * self.q2 + rows2[:, None, :]).ravel()
        if not self.dense_coupling:  # B and G = D^-1 B sparse: their pattern, CSR order
            keys, inverse = np.unique(self._b_index, return_inverse=True)
            self._b_entry = inverse.ravel()
            self._b_rows, self._b_cols = keys // self.q2, keys % self.q2
            self._b_indptr = np.concatenate(
                [[0], np.cumsum(np.bincount(self._b_rows, minlength=self.n1))]
            )
        # observations by level of the first term, for leverages in chunks of levels
        self._obs_order = np.argsort(self.level, kind="stable")
        self._level_start = np.concatenate(
            [[0], np.cumsum(np.bincount(self.level, minlength=self.n_levels1))]
        )
        # theta entry j is T[row, col] of its term: d(Z Lambda u)/d theta_j at a row is
        # z[row] * u[col of the row's level]; its column in ``support`` is seg + col
        self._term_of_theta = []
        seg = 0
        for b in blocks:
            cols, rows = np.triu_indices(b.n_coef)  # T's lower triangle, column-major
            for r, c in zip(rows, cols, strict=True):
                self._term_of_theta.append((b, int(r), seg + int(c)))
            seg += b.n_coef

    # -- Z Lambda, row by row --------------------------------------------------------------

    def _a(self, theta):
        key = np.asarray(theta, dtype=float).tobytes()
        if key != self._theta_key:
            self._A = sp.csr_matrix(self.design.lambdat(theta) @ self.Zt)
            self._theta_key = key
        return self._A

    def _rows(self, theta):
        """``(n, K)``: each observation's row of ``Z Lambda`` on its ``support`` columns."""
        key = np.asarray(theta, dtype=float).tobytes()
        if key != self._values_key:
            self._values = np.hstack([b.model_matrix @ b.factor(theta) for b in self.design.blocks])
            self._values_key = key
        return self._values

    def linpred(self, theta, u):
        return np.einsum("ik,ik->i", self._rows(theta), u[self.support])

    def cross(self, theta, v):
        weights = self._rows(theta) * v[:, None]
        return np.bincount(self.support.ravel(), weights.ravel(), minlength=self.q)

    def effects(self, theta, u):
        return self.design.lambdat(theta).T @ u

    def dlinpred(self, j, u):
        """``Z (dLambda / dtheta_j) u``."""
        block, row, column = self._term_of_theta[j]
        return block.model_matrix[:, row] * u[self.support[:, column]]

    # -- factorisation ---------------------------------------------------------------------

    def factor(self, theta, w):
        if not self.blocked:
            A = self._a(theta)
            H = A @ A.T.multiply(w[:, None]) + self.identity
            chol = SparseCholesky(leading=self.leading, analysis=self._analysis)
            return chol.factor(H.tocsr())
        values = self._rows(theta)
        k1, n_lev, q2 = self.k1, self.n_levels1, self.q2
        v1, v2 = values[:, :k1], values[:, k1:]
        d = np.empty((n_lev, k1, k1))
        for a in range(k1):
            for b in range(a + 1):
                d[:, a, b] = d[:, b, a] = np.bincount(
                    self.level, w * v1[:, a] * v1[:, b], minlength=n_lev
                )
        d += np.eye(k1)
        if k1 == 1:
            if not np.all(d > 0):  # NaN too
                raise np.linalg.LinAlgError("matrix is not positive definite")
            log_det, dinv = float(np.log(d).sum()), 1.0 / d
        else:
            chol = np.linalg.cholesky(d)  # LinAlgError if not positive definite
            log_det = float(2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
            dinv = np.linalg.inv(d)
        if q2 == 0:
            return _BlockedFactor(dinv, np.zeros((self.n1, 0)), None, log_det)
        wv2 = w[:, None] * v2
        c_weights = (wv2[:, :, None] * v2[:, None, :]).ravel()
        c = np.bincount(self._c_index, c_weights, minlength=q2 * q2).reshape(q2, q2)
        c += np.eye(q2)
        b_weights = (v1[:, :, None] * wv2[:, None, :]).ravel()
        if self.dense_coupling:
            bmat = np.bincount(self._b_index, b_weights, minlength=self.n1 * q2)
            bmat = bmat.reshape(n_lev, k1, q2)
            g = np.einsum("lab,lbq->laq", dinv, bmat).reshape(self.n1, q2)
            schur = c - bmat.reshape(self.n1, q2).T @ g
        else:
            data = np.bincount(self._b_entry, b_weights, minlength=self._b_cols.size)
            pattern = (self._b_cols, self._b_indptr)
            bmat = sp.csr_matrix((data, *pattern), shape=(self.n1, q2))
            if k1 == 1:
                g = sp.csr_matrix((data * dinv[self._b_rows, 0, 0], *pattern), shape=bmat.shape)
            else:
                blocks = sp.bsr_matrix(
                    (dinv, np.arange(n_lev), np.arange(n_lev + 1)), shape=(self.n1, self.n1)
                )
                g = sp.csr_matrix(blocks @ bmat)
            schur = c - (bmat.T @ g).toarray()
        try:
            schur_chol = scipy.linalg.cho_factor(schur, lower=True, check_finite=False)
        except scipy.linalg.LinAlgError as err:
            raise np.linalg.LinAlgError(str(err)) from None
        log_det += float(2.0 * np.log(np.diag(schur_chol[0])).sum())
        return _BlockedFactor(dinv, g, schur_chol, log_det)

    def solve(self, fac, rhs):
        """Solve ``H x = rhs`` for a u-vector or a (q, m) matrix."""
        if not isinstance(fac, _BlockedFactor):
            return fac.solve(rhs)
        rhs = np.asarray(rhs, dtype=float)
        n1, k1 = self.n1, self.k1
        b1 = rhs[:n1].reshape((self.n_levels1, k1) + rhs.shape[1:])
        x1 = np.einsum("lab,lb...->la...", fac.dinv, b1).reshape(rhs[:n1].shape)
        if fac.schur is None:
            return x1
        x2 = scipy.linalg.cho_solve(fac.schur, rhs[n1:] - fac.g.T @ rhs[:n1], check_finite=False)
        return np.concatenate([x1 - fac.g @ x2, x2])

    def leverages(self, theta, fac: _BlockedFactor):
        """Per observation: ``h_i = [Z Lambda H^-1 Lambda' Z']_ii`` and, for each theta
        index ``j``, ``r_ij = [Z dLambda_j H^-1 Lambda' Z']_ii``.

        Both need ``H^-1`` only between the random effects of one observation (its
        ``support``): with ``M = G S^-1``, the first term's block of level ``l`` is
        ``D_l^-1 + G_l M_l'``, its elements with the other terms ``-M`` and those among
        the other terms ``S^-1``.
        """
        values = self._rows(theta)
        k1, n_lev, q2 = self.k1, self.n_levels1, self.q2
        v1, v2 = values[:, :k1], values[:, k1:]
        if fac.schur is None:
            q_all = np.einsum("iab,ib->ia", fac.dinv[self.level], v1)
        else:
            inverse, info = scipy.linalg.lapack.dpotri(fac.schur[0], lower=1)  # S^-1
            if info != 0:
                raise np.linalg.LinAlgError("Schur complement is singular")
            sinv = np.tril(inverse) + np.tril(inverse, -1).T
            q_all = np.empty_like(values)
            # levels in chunks: M = G S^-1 is dense, at most MAX_DENSE_COUPLING entries
            step = max(1, MAX_DENSE_COUPLING // (k1 * q2))
            for lo in range(0, n_lev, step):
                hi = min(lo + step, n_lev)
                obs = self._obs_order[self._level_start[lo] : self._level_start[hi]]
                q_all[obs] = self._chunk_products(fac, sinv, lo, hi, obs, v1[obs], v2[obs])
        h = np.einsum("ik,ik->i", values, q_all)
        r = np.empty((values.shape[0], len(self._term_of_theta)))
        for j, (block, row, column) in enumerate(self._term_of_theta):
            r[:, j] = block.model_matrix[:, row] * q_all[:, column]
        return h, r

    def _chunk_products(self, fac, sinv, lo, hi, obs, v1, v2):
        """``H^-1`` restricted to each observation's support, times its row of ``Z Lambda``,
        for the observations ``obs`` of the first term's levels ``lo:hi``."""
        k1 = self.k1
        g = fac.g[lo * k1 : hi * k1]
        m = np.asarray(g @ sinv)  # rows of M = G S^-1
        inv11 = fac.dinv[lo:hi].copy()
        for a in range(k1):
            for b in range(k1):
                ga, mb = g[a::k1], m[b::k1]
                prod = ga.multiply(mb).sum(axis=1) if sp.issparse(ga) else (ga * mb).sum(axis=1)
                inv11[:, a, b] += np.asarray(prod).ravel()
        rows2 = self.schur_rows[obs]
        m_obs = m[self._first[obs][:, :, None] - lo * k1, rows2[:, None, :]]  # -H^-1_12
        s_obs = sinv[rows2[:, :, None], rows2[:, None, :]]  # H^-1_22
        q1 = np.einsum("iab,ib->ia", inv11[self.level[obs] - lo], v1)
        q1 -= np.einsum("iab,ib->ia", m_obs, v2)
        q2 = np.einsum("iab,ib->ia", s_obs, v2) - np.einsum("iab,ia->ib", m_obs, v1)
        return np.hstack([q1, q2])


# ---------------------------------------------------------------------------------------
# The Laplace / AGQ objective
# ---------------------------------------------------------------------------------------


@dataclass
class _Mode:
    """Conditional mode of u for one parameter vector and what PIRLS computed there."""

    u: np.ndarray
    eta: np.ndarray
    penalised: float  # -2 * kernel log-likelihood + |u|^2
    factor: object
    score: np.ndarray
    weight: np.ndarray


class _Objective:
    """Deviance of a GLMM as a function of ``x = (theta, beta, dispersion) * scale``.

    ``scale`` (default 1) is a factor per parameter, :func:`_optimizer_scale` in a fit,
    so that the optimizer's coordinates do not depend on the units of a covariate.
    ``columns`` lists the theta indices of each column of each term's factor, diagonal
    entry first (:func:`_theta_columns`; default: every theta entry a scalar term).
    """

    def __init__(
        self,
        X,
        y,
        pw,
        offset,
        family: GlmmFamily,
        solver,
        n_theta,
        nagq=1,
        pirls_tol=1e-20,
        pirls_maxit=60,
        scale=None,
        columns=None,
    ):
        self.X, self.y, self.pw, self.offset = X, y, pw, offset
        self.family = family
        self.solver = solver
        self.n_theta = n_theta
        n_par = n_theta + X.shape[1] + family.n_dispersion
        self.scale = np.ones(n_par) if scale is None else np.asarray(scale, dtype=float)
        self.columns = [np.array([j]) for j in range(n_theta)] if columns is None else columns
        self.p = X.shape[1]
        self.nagq = nagq
        self.pirls_tol = pirls_tol
        self.pirls_maxit = pirls_maxit
        self.u_start = np.zeros(solver.q)
        self.n_evaluations = 0
        if nagq > 1:
            nodes, weights = np.polynomial.hermite_e.hermegauss(nagq)
            self.gh = (nodes, np.log(weights / np.sqrt(2.0 * np.pi)) + nodes**2 / 2.0)

    def unpack(self, x):
        x = np.asarray(x, dtype=float) / self.scale
        theta = x[: self.n_theta]
        beta = x[self.n_theta : self.n_theta + self.p]
        family = self.family.with_dispersion(x[self.n_theta + self.p :])
        return theta, beta, family

    def mode(self, x, u_start=None) -> _Mode:
        """Penalised iteratively reweighted least squares: Newton's method on ``u`` with
        step halving, until the Newton decrement is below ``pirls_tol * |g(u)|``."""
        theta, beta, fam = self.unpack(x)
        solver, y, pw = self.solver, self.y, self.pw
        u = np.array(self.u_start if u_start is None else u_start, dtype=float)
        eta_fixed = self.X @ beta + self.offset
        eta = eta_fixed + solver.linpred(theta, u)
        pen = -2.0 * fam.kernel(eta, y, pw).sum() + u @ u
        if not np.isfinite(pen) and np.any(u):  # the previous mode may not suit x: u = 0
            u, eta = np.zeros_like(u), eta_fixed
            pen = -2.0 * fam.kernel(eta, y, pw).sum()
        if not np.isfinite(pen):  # e.g. exp(eta) overflows: no mode to look for
            self.n_evaluations += 1
            return _Mode(u, eta, np.inf, None, None, None)
        for _ in range(self.pirls_maxit):
            s, w = fam.score_weight(eta, y, pw)
            fac = solver.factor(theta, w)
            grad = solver.cross(theta, s) - u
            delta = solver.solve(fac, grad)
            if float(grad @ delta) < self.pirls_tol * max(1.0, abs(pen)):
                break
            for step in 0.5 ** np.arange(30):
                u_new = u + step * delta
                eta_new = eta_fixed + solver.linpred(theta, u_new)
                pen_new = -2.0 * fam.kernel(eta_new, y, pw).sum() + u_new @ u_new
                if pen_new <= pen + 1e-10 * abs(pen):
                    break
            else:  # no decrease along the Newton direction: u is as good as it gets
                break
            u, eta, pen = u_new, eta_new, pen_new
        else:
            s, w = fam.score_weight(eta, y, pw)
            fac = solver.factor(theta, w)
        self.n_evaluations += 1
        return _Mode(u, eta, pen, fac, s, w)

    def deviance(self, x, u_start=None) -> tuple[float, _Mode | None]:
        """Laplace (or AGQ) deviance up to the data-only constant, and the mode.

        Where the deviance cannot be evaluated (``exp(eta)`` overflows, ``H`` is not
        numerically positive definite) it is ``+inf``, so that line searches back off.
        """
        try:
            md = self.mode(x, u_start)
            if md.factor is None:
                return np.inf, md
            value = self._agq(x, md) if self.nagq > 1 else md.penalised + md.factor.logdet()
        except np.linalg.LinAlgError:
            return np.inf, None
        return (float(value) if np.isfinite(value) else np.inf), md

    def _agq(self, x, md: _Mode) -> float:
        """Adaptive Gauss-Hermite quadrature over one scalar grouping factor (lme4's nAGQ).

        Per group ``j`` the integral over ``u_j`` is taken at ``u_hat_j + z_k / sqrt(H_jj)``
        for the Gauss-Hermite nodes ``z_k``; with one node this is the Laplace deviance.
        """
        theta, _, fam = self.unpack(x)
        solver = self.solver
        th = solver._theta(theta)[0]
        u = md.u[solver.slices[0]]
        sd = 1.0 / np.sqrt(md.factor.pivots[0])
        dev0 = -2.0 * solver._sum(0, fam.kernel(md.eta, self.y, self.pw), scaled=False) + u**2
        terms = []
        for node, log_weight in zip(*self.gh, strict=True):
            if node == 0.0:
                terms.append(np.full(u.size, log_weight))
                continue
            eta = md.eta + th * solver._spread(0, sd * node)
            dev = (
                -2.0 * solver._sum(0, fam.kernel(eta, self.y, self.pw), scaled=False)
                + (u + sd * node) ** 2
            )
            terms.append(log_weight - 0.5 * (dev - dev0))
        log_mult = logsumexp(np.vstack(terms), axis=0)
        return float(dev0.sum() + md.factor.logdet() - 2.0 * log_mult.sum())

    # -- gradients ---------------------------------------------------------------------

    def value_and_gradient(self, x):
        """Deviance and its gradient (exact for the Laplace approximation, unless the
        general solver's Schur complement is too large for its dense factor)."""
        x = np.asarray(x, dtype=float)
        value, md = self.deviance(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        if self.solver.analytic_gradient and self.nagq == 1:
            grad = self._laplace_gradient(x, md)
        else:
            grad = self._fd_gradient(x, md.u)
        if not np.all(np.isfinite(grad)):  # next to an overflow: treat as out of range
            return np.inf, np.zeros_like(x)
        self.u_start = md.u
        return value, grad

    def _fd_gradient(self, x, u, rel_step=1e-5):
        grad = np.empty_like(x)
        for j in range(x.size):
            h = rel_step * max(1.0, abs(x[j]))
            up, down = x.copy(), x.copy()
            up[j] += h
            down[j] -= h
            grad[j] = (self.deviance(up, u)[0] - self.deviance(down, u)[0]) / (2.0 * h)
        return grad

    def _laplace_gradient(self, x, md: _Mode):
        """Exact gradient of the Laplace deviance (implicit differentiation, adjoint form).

        For a parameter ``p``, with ``deta_u`` the change of ``eta`` at fixed ``u``:
        ``dD/dp = dg/dp|_u + tr(H^-1 dH/dp)``; ``dH/dp`` involves ``dw/deta * deta/dp``
        and ``deta/dp = deta_u + Z Lambda du/dp`` with ``du/dp = -H^-1 rhs_p``,
        ``rhs_p = Lambda'Z'(w deta_u - ds/dp) - dLambda_p'Z's``. The terms through
        ``du/dp`` are collected with one adjoint solve ``a = H^-1 Lambda'Z'(h dw)``, where
        ``h_i = [Z Lambda H^-1 Lambda' Z']_ii``. Divided by ``scale`` at the end: the
        gradient with respect to the optimizer's coordinates ``x``.
        """
        theta, _, fam = self.unpack(x)
        solver, y, pw = self.solver, self.y, self.pw
        s, w, u = md.score, md.weight, md.u
        h, r = solver.leverages(theta, md.factor)
        hdw = h * fam.dweight(md.eta, y, pw)
        a = solver.solve(md.factor, solver.cross(theta, hdw))
        zeta = solver.linpred(theta, a)
        c = hdw - zeta * w - 2.0 * s
        grad = np.empty(x.size)
        for j in range(self.n_theta):
            grad[j] = c @ solver.dlinpred(j, u) + s @ solver.dlinpred(j, a) + 2.0 * (w @ r[:, j])
        grad[self.n_theta : self.n_theta + self.p] = c @ self.X
        if fam.n_dispersion:
            dl, ds, dwd = fam.dispersion_terms(md.eta, y, pw)
            grad[-1] = -2.0 * dl.sum() + h @ dwd + zeta @ ds
        return grad / self.scale  # with respect to the optimizer's coordinates

    def hessian(self, x, rel_step=1e-4):
        """Hessian of the deviance: central differences of the gradient, symmetrised; NaN
        in the columns whose differences reach a point where the deviance is infinite."""
        _, md = self.deviance(x)
        self.u_start = md.u
        n_par = x.size
        hess = np.empty((n_par, n_par))
        for j in range(n_par):
            step = rel_step * max(1.0, abs(x[j]))
            up, down = x.copy(), x.copy()
            up[j] += step
            down[j] -= step
            self.u_start = md.u
            v_up, g_up = self.value_and_gradient(up)
            self.u_start = md.u
            v_down, g_down = self.value_and_gradient(down)
            finite = np.isfinite(v_up) and np.isfinite(v_down)
            hess[:, j] = (g_up - g_down) / (2.0 * step) if finite else np.nan
        self.u_start = md.u
        return 0.5 * (hess + hess.T)


# ---------------------------------------------------------------------------------------
# lme4's glmer deviance (control={"pirls": "lme4"})
# ---------------------------------------------------------------------------------------

LME4_TOL_PWRSS = 1e-7  # glmerControl()$tolPwrss
LME4_PIRLS_MAXIT = 30  # pwrssUpdate's iteration limit (lme4 src/external.cpp)
LME4_MAX_HALVINGS = 10  # pwrssUpdate's maxstephalfit
LME4_DERIV_STEP = 1e-4  # deriv12's default delta (lme4 R/deriv.R)


class _PirlsFailure(Exception):
    """lme4's pwrssUpdate would stop here (no convergence, or step halving failed)."""


@dataclass
class _Lme4Iterate:
    """lme4's predictor after ``pwrssUpdate``: the last solution, and the factor of ``H``
    at the weights it was solved with (those of the iterate before it)."""

    u: np.ndarray
    beta: np.ndarray  # lme4's delb: the fixed effects when PIRLS solves for them, else 0
    eta: np.ndarray
    factor: object
    weight: np.ndarray


class _Lme4Deviance:
    """lme4's ``glmer`` deviance functions, evaluated in lme4's order of operations.

    lme4 fits in two stages (``glmer``, ``mkGlmerDevfun`` and ``updateGlmerDevfun``,
    lme4 R/lmer.R and R/modular.R). A PIRLS over ``(u, beta)`` at the initial theta,
    started from the family's ``mustart``, gives the linear predictor ``lp0``. Stage 1
    minimises the nAGQ = 0 deviance over theta, each evaluation a PIRLS over
    ``(u, beta)`` started at ``lp0``. Stage 2 takes ``lp0`` and the starting ``beta``
    from the stage-1 optimum and minimises the Laplace deviance over ``(theta, beta)``,
    each evaluation a PIRLS over ``u`` alone started at ``lp0``.

    Each PIRLS iteration (``internal_glmerWrkIter``, lme4 src/external.cpp) factors
    ``H`` at the current weights, solves for the new ``u`` (and ``beta``), then moves
    ``eta``; iterations stop when the penalised deviance changes by less than
    ``tolPwrss`` relative (``pwrssUpdate``). The deviance
    ``log det(H) + |u|^2 - 2 log f(y | eta)`` therefore takes ``log det(H)`` at the
    weights of the iterate before the last one.

    Values are on the scale of :class:`_Objective` (without data-only constants).
    """

    def __init__(self, X, y, pw, offset, family: GlmmFamily, solver, n_theta, trials):
        self.X, self.y, self.pw, self.offset = X, y, pw, offset
        self.family = family
        self.solver = solver
        self.n_theta = n_theta
        self.n_evaluations = 0
        eta = _lme4_start_eta(family, y, pw, offset)
        residuals = family.deviance_residuals(eta, y, pw, trials)
        # residual deviance = saturated - 2 * kernel (lme4 tests convergence on it)
        self._saturated = float(residuals @ residuals + 2.0 * family.kernel(eta, y, pw).sum())
        self.last = _Lme4Iterate(np.zeros(solver.q), np.zeros(X.shape[1]), eta, None, None)
        self.lp0 = np.zeros_like(y)
        self._eta_start = eta

    def first_stage(self, theta0, lower) -> np.ndarray:
        """lme4's initial PIRLS at ``theta0`` and stage 1; sets ``lp0`` for stage 2 and
        returns stage 2's start ``(theta, beta)``.

        Stage 1 is minimised by Nelder-Mead (lme4: bobyqa) and evaluated once more at
        its optimum, as lme4's ``optwrap`` does; ``lp0`` and ``beta`` come from there.
        """
        try:
            self.last = self._pwrss(theta0, self._eta_start, self.offset, joint=True)
        except (_PirlsFailure, np.linalg.LinAlgError) as err:
            raise _lme4_stopped(f"at the starting values ({err})") from None
        self.lp0 = self.last.eta - self.offset
        stage1 = _nelder_mead(self.stage1, theta0, np.full(self.n_theta, 0.2), lower)
        if not np.isfinite(self.stage1(stage1.x)):
            raise _lme4_stopped("at the end of the first stage")
        self.lp0 = self.last.eta - self.offset
        return np.concatenate([stage1.x, self.last.beta])

    def stage1(self, theta) -> float:
        """nAGQ = 0 deviance of theta (beta solved for inside PIRLS)."""
        return self._evaluate(theta, self.offset, joint=True)

    def stage2(self, x) -> float:
        """Laplace deviance of ``x = (theta, beta)``."""
        theta, beta = x[: self.n_theta], x[self.n_theta :]
        return self._evaluate(theta, self.offset + self.X @ beta, joint=False)

    def _evaluate(self, theta, fixed, joint) -> float:
        self.n_evaluations += 1
        try:
            it = self._pwrss(theta, self.offset + self.lp0, fixed, joint)
        except (_PirlsFailure, np.linalg.LinAlgError):
            return np.inf  # lme4 stops here; the optimizer backs off instead
        self.last = it
        return float(
            it.factor.logdet()
            + it.u @ it.u
            - 2.0 * self.family.kernel(it.eta, self.y, self.pw).sum()
        )

    def _pwrss(self, theta, eta, fixed, joint) -> _Lme4Iterate:
        """lme4's ``pwrssUpdate``. ``fixed`` is the part of eta PIRLS does not solve for:
        the offset (``joint``) or the offset plus ``X beta``."""
        theta = np.asarray(theta, dtype=float)
        u, beta = self.last.u, self.last.beta
        old = np.finfo(float).max
        for _ in range(LME4_PIRLS_MAXIT):
            old_u, old_beta = u, beta
            s, w = self.family.score_weight(eta, self.y, self.pw)
            fac = self.solver.factor(theta, w)
            # W times lme4's working response (eta - offset) + (y - mu) / mu_eta
            wz = w * (eta - fixed) + s
            u, beta = self._solve(theta, fac, w, wz, joint)
            eta = self._linpred(theta, fixed, u, beta)
            pdev = self._penalised(eta, u)
            if abs((old - pdev) / pdev) < LME4_TOL_PWRSS:
                return _Lme4Iterate(u, beta, eta, fac, w)
            for _ in range(LME4_MAX_HALVINGS):
                if not (np.isnan(pdev) or pdev > old):
                    break
                u = 0.5 * (old_u + u)
                beta = 0.5 * (old_beta + beta) if joint else beta
                eta = self._linpred(theta, fixed, u, beta)
                pdev = self._penalised(eta, u)
            if np.isnan(pdev) or pdev - old > LME4_TOL_PWRSS:
                raise _PirlsFailure("PIRLS step halvings failed to reduce the deviance")
            old = pdev
        raise _PirlsFailure(f"PIRLS did not converge in {LME4_PIRLS_MAXIT} iterations")

    def _solve(self, theta, fac, w, wz, joint):
        """New ``u`` (and ``beta``): lme4's ``solveU`` or ``solve`` (block elimination)."""
        rhs_u = self.solver.cross(theta, wz)
        if not joint:
            return self.solver.solve(fac, rhs_u), np.zeros(self.X.shape[1])
        zwx, schur = self.fixed_block(theta, fac, w)
        h_rhs = self.solver.solve(fac, rhs_u)
        beta = np.linalg.solve(schur, self.X.T @ wz - zwx.T @ h_rhs)
        return h_rhs - self.solver.solve(fac, zwx @ beta), beta

    def fixed_block(self, theta, fac, w):
        """``Lambda' Z' W X`` and the Schur complement ``X'WX - X'WZ Lambda H^-1 Lambda'Z'WX``
        (lme4's ``RX' RX``)."""
        wx = w[:, None] * self.X
        zwx = np.column_stack([self.solver.cross(theta, col) for col in wx.T])
        schur = self.X.T @ wx - zwx.T @ self.solver.solve(fac, zwx)
        return zwx, schur

    def _linpred(self, theta, fixed, u, beta):
        return fixed + self.X @ beta + self.solver.linpred(theta, u)

    def _penalised(self, eta, u) -> float:
        """Residual deviance plus ``|u|^2`` (lme4's ``resDev() + sqrL(1)``)."""
        kernel = self.family.kernel(eta, self.y, self.pw).sum()
        return float(self._saturated - 2.0 * kernel + u @ u)

    def unscaled_vcov(self, theta) -> np.ndarray:
        """``(RX' RX)^-1`` at the last iterate's factor (lme4's ``pp$unsc()``)."""
        _, schur = self.fixed_block(theta, self.last.factor, self.last.weight)
        return np.linalg.inv(schur)


def _lme4_start_eta(family: GlmmFamily, y, pw, offset):
    """``offset + link(mustart)`` with R's ``family$initialize`` for ``mustart``:
    ``(weights * y + 0.5) / (weights + 1)`` (binomial), ``y + 0.1`` (Poisson)."""
    if family.name == "binomial":
        return offset + special.logit((pw * y + 0.5) / (pw + 1.0))
    return offset + np.log(y + 0.1)


def _deriv12(fun, x, fx, delta=LME4_DERIV_STEP):
    """Gradient and Hessian by central differences, as lme4's ``deriv12``.

    Diagonal: ``(f(x + d e_j) - 2 f(x) + f(x - d e_j)) / d^2``; off-diagonal: the
    four-point formula ``(f(++) - f(+-) - f(-+) + f(--)) / (4 d^2)``.
    """
    k = x.size
    gradient, hessian = np.empty(k), np.empty((k, k))
    step = np.eye(k) * delta
    for j in range(k):
        up, down = fun(x + step[j]), fun(x - step[j])
        hessian[j, j] = (up - 2.0 * fx + down) / delta**2
        gradient[j] = (up - down) / (2.0 * delta)
        for i in range(j):
            hessian[i, j] = hessian[j, i] = (
                fun(x + step[i] + step[j])
                - fun(x + step[i] - step[j])
                - fun(x - step[i] + step[j])
                + fun(x - step[i] - step[j])
            ) / (4.0 * delta**2)
    return gradient, hessian


def _lme4_vcov(hessian, n_theta, unscaled):
    """lme4's ``vcov.merMod(use.hessian = TRUE)``: ``2 [H^-1]_beta,beta`` from the Hessian
    of the deviance over (theta, beta); ``unscaled`` (``pp$unsc()``) when ``H`` is
    singular or that block is not positive definite."""
    try:
        inv = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return unscaled
    block = inv[n_theta:, n_theta:]
    vcov = block + block.T
    if not np.all(np.isfinite(vcov)) or np.linalg.eigvalsh(vcov).min() <= 0:
        return unscaled
    return vcov


def _nelder_mead(fun, x0, steps, lower, restarts=5, rel_gain=1e-12):
    """Minimise ``fun`` by Nelder-Mead within ``x >= lower``, from the simplex
    ``x0, x0 + steps_j e_j``, restarting from the best point (with steps a tenth as
    long) until a run gains less than ``rel_gain`` (relative).

    lme4's deviance is only piecewise smooth (the number of PIRLS iterations changes
    with the parameters), so the method is derivative-free, as lme4's.
    """
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    x, value, nfev, nit = np.asarray(x0, dtype=float), np.inf, 0, 0
    steps = np.asarray(steps, dtype=float)
    for _ in range(restarts):
        opt = optimize.minimize(
            fun,
            x,
            method="Nelder-Mead",
            bounds=bounds,
            options={
                "initial_simplex": np.vstack([x, x + np.diag(steps)]),
                "xatol": 1e-8,
                "fatol": 1e-6,
                "maxfev": 1000 * x.size,
            },
        )
        nfev, nit = nfev + opt.nfev, nit + opt.nit
        gain = value - opt.fun
        x, value = opt.x, opt.fun
        if gain <= rel_gain * abs(value):
            break
        steps = steps / 10.0
    opt.nfev, opt.nit = nfev, nit
    return opt


# ---------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------


@dataclass
class GlmmEstimates:
    """Everything a GLMM fit estimates, before it is wrapped in a ``MixedResult``.

    Attributes
    ----------
    family : GlmmFamily
        The family, with its estimated dispersion (NB2 ``theta``).
    method : str
        ``"Laplace"`` or ``"AGQ(k)"``.
    theta, beta : ndarray
        Relative covariance parameters (lme4's theta) and fixed effects.
    vcov : ndarray
        Covariance matrix of ``beta``.
    b : ndarray
        Conditional modes of the random effects, original scale, ``Zt`` row order.
    eta : ndarray
        Conditional linear predictor at the estimates.
    loglik : float
        Log-likelihood (Laplace or quadrature) including all constants.
    converged, singular : bool
    messages : list of str
    extra : dict
        PIRLS mode, optimizer report, gradient, Hessian eigenvalues, timings.
    """

    family: GlmmFamily
    method: str
    theta: np.ndarray
    beta: np.ndarray
    vcov: np.ndarray
    b: np.ndarray
    eta: np.ndarray
    loglik: float
    converged: bool
    singular: bool
    messages: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _choose_solver(design, choice: str):
    if choice not in ("auto", "nested", "sparse"):
        raise ModelSpecError(
            f"control['solver'] must be 'auto', 'nested' or 'sparse', not {choice!r}"
        )
    nested = _NestedSolver.from_design(design) if choice in ("auto", "nested") else None
    if choice == "nested" and nested is None:
        raise ModelSpecError(
            "control['solver'] = 'nested' needs scalar random-effect terms "
            "whose grouping factors are nested in one another"
        )
    return nested if nested is not None else _SparseSolver(design)


def _glm_start(X, y, pw, offset, family: GlmmFamily, iterations=25):
    """Fixed effects of the model without random effects (Newton's method; the last finite
    iterate if it diverges, as under complete separation)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iterations):
        s, w = family.score_weight(X @ beta + offset, y, pw)
        try:
            step = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ s)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.max(np.abs(step)) > 50:
            break
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def _nb_theta_start(X, y, pw, offset, family):
    """Moment estimate of the NB2 size from a Poisson GLM fit, kept within [0.05, 1e4]
    (the working dispersion of the GEE)."""
    beta = _glm_start(X, y, pw, offset, Poisson())
    size = _nb_size_moment(y, np.exp(X @ beta + offset), pw)
    return replace(family, theta=float(np.clip(size, 0.05, 1e4)))


def estimate_glmm(
    design, family: str | GlmmFamily, nagq: int = 1, control: dict | None = None
) -> GlmmEstimates:
    """Fit a GLMM by Laplace approximation or adaptive Gauss-Hermite quadrature.

    The lower-level routine behind :func:`fit_glmm`; it returns the estimates without
    wrapping them in a result object.

    Parameters
    ----------
    design : MixedDesign
        From ``build_design``.
    family : str or GlmmFamily
        ``"binomial"``, ``"poisson"`` or ``"negative_binomial"`` (aliases accepted).
    nagq : int
        1 for the Laplace approximation; up to 25 quadrature points per group with a
        single scalar random-effect term.
    control : dict, optional
        ``solver``: "auto" (default: the nested solver when it applies), "nested" or
        "sparse"; ``maxiter``: L-BFGS-B iterations (500); ``ftol``: relative decrease of
        the deviance at which L-BFGS-B hands over to Newton steps (1e-10);
        ``newton_steps``: at most this many Newton steps (10); ``pirls``: "exact"
        (default) for the exact Laplace approximation, or "lme4" for lme4's ``glmer``
        deviance and standard errors (binomial and Poisson, ``nagq=1``; see the module
        notes). Unknown settings are an error.

    Returns
    -------
    GlmmEstimates

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(30), 20)
    >>> y = rng.poisson(np.exp(0.5 + rng.normal(0, 0.5, 30)[g]))
    >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g.astype(str)}))
    >>> est = estimate_glmm(d, "poisson")
    >>> bool(est.converged), est.method
    (True, 'Laplace')
    """
    # overflow far from the optimum is handled (the deviance there is +inf), not reported
    with (
        threadpool_limits(limits=1, user_api="blas"),
        np.errstate(over="ignore", invalid="ignore", divide="ignore"),
    ):
        return _estimate(design, family, nagq, dict(control or {}))


def _estimate(design, family, nagq, control) -> GlmmEstimates:
    control = _check_control(control)
    if not design.blocks:
        raise ModelSpecError(
            f"formula {design.formula.formula!r} has no random-effect term such as "
            "(1 | therapist); add one, or fit a generalised linear model instead"
        )
    fam = glmm_family(family)
    y = np.asarray(design.y, dtype=float)
    pw = np.asarray(design.prior_weights, dtype=float) * np.ones_like(y)
    offset = np.asarray(design.offset, dtype=float) * np.ones_like(y)
    X = np.asarray(design.X, dtype=float)
    trials = _is_cbind(design)
    fam.validate(y, pw, design.formula.response, design.frame.index)
    nagq = _check_nagq(nagq, design)
    _check_pirls(control["pirls"], fam, nagq)
    solver = _choose_solver(design, control["solver"])
    rows = solver.row_order
    data = (X[rows], y[rows], pw[rows], offset[rows])

    started = time.perf_counter()
    if control["pirls"] == "lme4":
        best = _fit_lme4(design, data, fam, solver, trials)
    else:
        best = _fit_exact(design, data, fam, solver, nagq, control)
    fit_seconds = time.perf_counter() - started
    n_theta, p = len(design.theta0), X.shape[1]
    natural, fam = best.x / best.scale, best.family
    theta, beta = natural[:n_theta], natural[n_theta : n_theta + p]
    eta = np.empty_like(best.eta)
    eta[rows] = best.eta
    loglik = _complete_loglik(best.deviance, eta, y, pw, fam, trials)
    singular = bool(np.any(best.x[:n_theta][np.isfinite(design.theta_lower)] < SINGULAR_TOL))
    n_params = n_theta + p + fam.n_dispersion
    pearson = fam.pearson_residuals(eta, y, pw)
    extra = {
        "pirls": control["pirls"],
        "optimizer": best.optimizer,
        "optimizer_message": str(best.report.message),
        "optimizer_iterations": int(best.report.nit),
        "function_evaluations": int(best.n_evaluations),
        "optimizer_attempts": int(best.attempts),
        "solver": "nested" if isinstance(solver, _NestedSolver) else "sparse",
        "optimizer_scale": best.scale.tolist(),
        "gradient": best.gradient.tolist(),
        "scaled_gradient_max": best.checks["scaled_gradient_max"],
        "hessian_eigenvalues": best.checks["eigenvalues"],
        "hessian_positive_definite": best.checks["positive_definite"],
        "laplace_deviance": -2.0 * loglik,
        "overdispersion_ratio": float(np.sum(pearson**2) / max(y.size - n_params, 1)),
        "fit_seconds": fit_seconds,
        "total_seconds": time.perf_counter() - started,
        **best.extra,
    }
    return GlmmEstimates(
        family=fam,
        method="Laplace" if nagq == 1 else f"AGQ({nagq})",
        theta=theta,
        beta=beta,
        vcov=best.vcov,
        b=solver.effects(theta, best.u),
        eta=eta,
        loglik=loglik,
        converged=_converged(best.checks),
        singular=singular,
        messages=_messages(best, singular),
        extra=extra,
    )


def laplace_objective(design, family: str | GlmmFamily, nagq: int = 1, solver: str = "auto"):
    """The Laplace (or AGQ) deviance of a GLMM as a function of its natural parameters.

    The deviance the exact fit minimises (``control["pirls"] = "exact"``), for use outside
    the fit (profiles, refits with parameters held fixed): ``objective.deviance(x)`` and
    ``objective.value_and_gradient(x)`` at ``x = (theta, beta, dispersion)`` (NB2's
    dispersion is ``size**-0.5``), up to a constant that depends on the data only. The
    conditional mode of each evaluation is the starting point of the next one.

    Parameters
    ----------
    design : MixedDesign
    family : str or GlmmFamily
        With its dispersion, if any, as the default of ``x``'s last entry.
    nagq : int
    solver : {"auto", "nested", "sparse"}

    Returns
    -------
    objective : _Objective
        Its parameters in natural units (scale 1).
    lower, upper : numpy.ndarray
        Bounds of ``x``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(20), 10)
    >>> y = rng.poisson(np.exp(0.5 + rng.normal(0, 0.5, 20)[g]))
    >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g.astype(str)}))
    >>> objective, lower, upper = laplace_objective(d, "poisson")
    >>> bool(objective.deviance([0.5, 0.5])[0] < objective.deviance([0.5, 2.0])[0])
    True
    """
    fam = glmm_family(family)
    y = np.asarray(design.y, dtype=float)
    pw = np.asarray(design.prior_weights, dtype=float) * np.ones_like(y)
    offset = np.asarray(design.offset, dtype=float) * np.ones_like(y)
    X = np.asarray(design.X, dtype=float)
    nagq = _check_nagq(nagq, design)
    slv = _choose_solver(design, solver)
    rows = slv.row_order
    objective = _Objective(
        X[rows],
        y[rows],
        pw[rows],
        offset[rows],
        fam,
        slv,
        len(design.theta0),
        nagq=nagq,
        columns=_theta_columns(design),
    )
    lower, upper = _bounds(design, X.shape[1], fam)
    return objective, lower, upper


@dataclass
class _Optimum:
    """What a fitting route hands back: the optimum and what was computed there."""

    x: np.ndarray  # (theta, beta, dispersion) * scale: the optimizer's coordinates
    scale: np.ndarray  # see :func:`_optimizer_scale`
    family: GlmmFamily  # with the estimated dispersion
    deviance: float  # Laplace (or AGQ) deviance without data-only constants
    u: np.ndarray
    eta: np.ndarray  # solver row order
    vcov: np.ndarray  # of beta (not scaled)
    gradient: np.ndarray  # in the optimizer's coordinates, as the checks
    checks: dict
    optimizer: str
    report: optimize.OptimizeResult
    n_evaluations: int
    attempts: int = 1  # runs of the optimizer (see :func:`_optimise`)
    notes: list[str] = field(default_factory=list)  # for the result's messages
    extra: dict = field(default_factory=dict)  # for the result's ``extra``


@dataclass
class _Attempt:
    """One run of :func:`_minimise` and the checks at the point it reached."""

    x: np.ndarray
    value: float
    report: optimize.OptimizeResult
    vcov: np.ndarray
    checks: dict


def _fit_exact(design, data, fam, solver, nagq, control) -> _Optimum:
    """Exact Laplace (or AGQ) optimum: L-BFGS-B then Newton (:func:`_minimise`), restarted
    when the convergence checks fail (:func:`_optimise`). NB2 starts from the Poisson fit
    (:func:`_fit_negative_binomial`)."""
    if fam.n_dispersion:
        return _fit_negative_binomial(design, data, fam, solver, nagq, control)
    X, y, pw, offset = data
    scale = _optimizer_scale(design, X, fam)
    objective = _Objective(
        X,
        y,
        pw,
        offset,
        fam,
        solver,
        len(design.theta0),
        nagq=nagq,
        scale=scale,
        columns=_theta_columns(design),
    )
    # theta starts at design.theta0 in the optimizer's coordinates (see _optimizer_scale)
    beta0 = _glm_start(X, y, pw, offset, fam) * scale[len(design.theta0) :]
    x0 = np.concatenate([design.theta0, beta0])
    lower, upper = _bounds(design, X.shape[1], fam)
    attempt, n_attempts = _optimise(objective, [x0], lower, upper, design.theta0, control)
    return _optimum(objective, attempt, n_attempts)


def _optimum(objective, attempt: _Attempt, n_attempts, notes=(), extra=None) -> _Optimum:
    deviance, md = objective.deviance(attempt.x)
    beta_scale = objective.scale[objective.n_theta : objective.n_theta + objective.p]
    vcov = attempt.vcov / np.outer(beta_scale, beta_scale)
    return _Optimum(
        attempt.x,
        objective.scale,
        objective.unpack(attempt.x)[2],
        deviance,
        md.u,
        md.eta,
        vcov,
        attempt.report.jac,
        attempt.checks,
        "L-BFGS-B",
        attempt.report,
        objective.n_evaluations,
        n_attempts,
        list(notes),
        dict(extra or {}),
    )


def _optimizer_scale(design, X, fam) -> np.ndarray:
    """Factor from ``(theta, beta, dispersion)`` to the optimizer's coordinates.

    Theta entries: :func:`~resistance_outcomes.models.lmm.theta_scale` (the root mean
    square of the entry's random-effects column); fixed effects: the root mean square of
    their column of ``X`` (1 for a column of zeros); the dispersion, which has no units:
    1. Rescaling a covariate then leaves the optimizer's path unchanged, and its
    tolerances, starting values and zero checks mean the same in any units.
    """
    rms = np.sqrt(np.mean(X**2, axis=0))
    return np.concatenate(
        [theta_scale(design), np.where(rms > 0, rms, 1.0), np.ones(fam.n_dispersion)]
    )


def _bounds(design, p, fam):
    """Lower and upper bounds of x = (theta, beta, dispersion): lme4's bounds on theta,
    none on beta, the family's on its dispersion (optimisation scale)."""
    disp_lower, disp_upper = fam.dispersion_bounds()
    n_theta = len(design.theta0)
    lower = np.concatenate([design.theta_lower, np.full(p, -np.inf), disp_lower])
    upper = np.concatenate([np.full(n_theta + p, np.inf), disp_upper])
    return lower, upper


def _fit_negative_binomial(design, data, fam, solver, nagq, control) -> _Optimum:
    """NB2 from the Poisson fit, its limit as the size grows, and never below it.

    Starts: the Poisson GLMM's (theta, beta) with a moment estimate of the size from its
    conditional means, then the same (theta, beta) with the size at its upper bound (the
    Poisson limit). Since the Poisson model is the limit of NB2, the NB2 log-likelihood
    is at least the Poisson one: an optimum below it (beyond rounding) fails the
    convergence checks, and is reported as such if no start does better. A size at its
    upper bound means the data show no overdispersion beyond the Poisson: the fit is
    the Poisson limit, and said so.
    """
    X, y, pw, offset = data
    poisson = _fit_exact(design, data, Poisson(), solver, nagq, control)
    poisson_loglik = _complete_loglik(poisson.deviance, poisson.eta, y, pw, Poisson(), False)
    constant = _loglik_constant(poisson.eta, y, pw, fam, False)
    objective = _Objective(
        X,
        y,
        pw,
        offset,
        fam,
        solver,
        len(design.theta0),
        nagq=nagq,
        scale=_optimizer_scale(design, X, fam),
        columns=_theta_columns(design),
    )
    lower, upper = _bounds(design, X.shape[1], fam)

    def below_limit(attempt):  # a size held at the upper bound is the limit itself
        tol = POISSON_LIMIT_TOL * (1.0 + 1e-4 * abs(poisson_loglik))
        return (
            -0.5 * attempt.value + constant < poisson_loglik - tol
            and _dispersion_bound(attempt, lower, upper) != "upper"
        )

    sigma = _nb_size_moment(y, np.exp(poisson.eta), pw) ** -0.5  # 0 for no excess
    starts = [np.concatenate([poisson.x, lower[-1:]])]  # the Poisson limit
    if sigma > lower[-1]:
        starts.insert(0, np.concatenate([poisson.x, [sigma]]))
    attempt, n_attempts = _optimise(
        objective, starts, lower, upper, design.theta0, control, accept=lambda a: not below_limit(a)
    )
    attempt.checks["below_poisson_limit"] = below_limit(attempt)
    loglik = -0.5 * attempt.value + constant
    bound = _dispersion_bound(attempt, lower, upper)
    notes = _nb_notes(
        bound, attempt.checks["below_poisson_limit"], loglik, poisson_loglik, attempt.x[-1] ** -2
    )
    optimum = _optimum(
        objective,
        attempt,
        n_attempts,
        notes,
        {"poisson_loglik": poisson_loglik, "nb_size_at_bound": bound},
    )
    optimum.n_evaluations += poisson.n_evaluations
    return optimum


def _nb_size_moment(y, mu, pw) -> float:
    """Moment estimate of the NB2 size: ``sum(mu^2) / sum((y - mu)^2 - mu)``, weighted;
    infinite when the counts vary no more than Poisson counts with means ``mu``."""
    excess = np.sum(pw * ((y - mu) ** 2 - mu))
    return float(np.sum(pw * mu**2) / excess) if excess > 0 else np.inf


def _dispersion_bound(attempt: _Attempt, lower, upper) -> str | None:
    """ "upper" or "lower" when the NB2 size is held at that bound, else None (the size
    is largest where its optimisation scale, ``size**-0.5``, is smallest)."""
    held = _held_at_bound(attempt.x, attempt.report.jac, lower, upper)
    if not held[-1]:
        return None
    return "upper" if attempt.x[-1] <= lower[-1] + BOUND_TOL else "lower"


def _nb_notes(bound, below_limit, loglik, poisson_loglik, size) -> list[str]:
    notes = []
    if bound == "upper":
        notes.append(
            f"negative-binomial size (theta) at its upper bound {size:.3g}: the data show no "
            "overdispersion beyond Poisson; this is the Poisson limit (log-likelihood "
            f"{loglik:.4f}, Poisson {poisson_loglik:.4f}) and the Poisson fit is equivalent"
        )
    elif bound == "lower":
        notes.append(
            f"negative-binomial size (theta) at its lower bound {size:.3g}: extreme "
            "overdispersion; check the response for excess zeros or a missing predictor"
        )
    if below_limit:
        notes.append(
            f"negative-binomial log-likelihood {loglik:.4f} is below that of its Poisson "
            f"limit ({poisson_loglik:.4f}): the optimum was not found; report the Poisson "
            "fit or simplify the model"
        )
    return notes


def _fit_lme4(design, data, fam, solver, trials) -> _Optimum:
    """lme4's two-stage glmer fit of :class:`_Lme4Deviance`, and its Hessian-based vcov.

    Stage 1 (lme4: bobyqa) and stage 2 (lme4: Nelder-Mead, first simplex steps 0.02 for
    theta and 0.2 * min(SE, 10) for beta, as lme4's ``optwrap``) are minimised here by
    Nelder-Mead with restarts; ``vcov`` follows ``vcov.merMod(use.hessian = TRUE)`` on
    the ``deriv12`` Hessian of the stage-2 deviance.
    """
    X, y, pw, offset = data
    n_theta, lower = len(design.theta0), design.theta_lower
    dev = _Lme4Deviance(X, y, pw, offset, fam, solver, n_theta, trials)
    x0 = dev.first_stage(design.theta0, lower)
    theta0, beta0 = x0[:n_theta], x0[n_theta:]
    beta_se = np.sqrt(np.diag(dev.unscaled_vcov(theta0)))
    steps = 0.2 * np.concatenate([np.full(n_theta, 0.1), np.minimum(beta_se, 10.0)])
    full_lower = np.concatenate([lower, np.full(beta0.size, -np.inf)])
    opt = _nelder_mead(dev.stage2, x0, steps, full_lower)
    x_hat = opt.x
    gradient, hessian = _deriv12(dev.stage2, x_hat, dev.stage2(x_hat))
    deviance = dev.stage2(x_hat)  # back to the optimum's state, as optwrap does
    if not np.all(np.isfinite(np.r_[deviance, gradient, hessian.ravel()])):
        raise _lme4_stopped("at the optimum or next to it")
    theta = x_hat[:n_theta]
    vcov = _lme4_vcov(hessian, n_theta, dev.unscaled_vcov(theta))
    no_upper = np.full(x_hat.size, np.inf)
    _, checks = _vcov_and_checks(
        hessian, gradient, x_hat, full_lower, no_upper, n_theta, beta0.size
    )
    return _Optimum(
        x_hat,
        np.ones(x_hat.size),
        fam,
        deviance,
        dev.last.u,
        dev.last.eta,
        vcov,
        gradient,
        checks,
        "Nelder-Mead",
        opt,
        dev.n_evaluations,
    )


def _lme4_stopped(where: str) -> ModelSpecError:
    return ModelSpecError(
        f"lme4-compatible PIRLS failed {where}, where lme4's glmer stops with an error "
        "too; fit with the default control={'pirls': 'exact'}"
    )


def _check_control(control: dict) -> dict:
    unknown = sorted(set(control) - set(DEFAULT_CONTROL))
    if unknown:
        raise ModelSpecError(
            f"unknown control setting(s) {unknown} for a generalised linear mixed model; "
            f"valid ones: {', '.join(DEFAULT_CONTROL)}"
        )
    control = {**DEFAULT_CONTROL, **control}
    if control["pirls"] not in PIRLS_MODES:
        raise ModelSpecError(
            f"control['pirls'] must be one of {PIRLS_MODES}, not {control['pirls']!r}"
        )
    return control


def _check_pirls(mode, fam, nagq) -> None:
    if mode != "lme4":
        return
    if fam.name not in ("binomial", "poisson"):
        raise ModelSpecError(
            f"control={{'pirls': 'lme4'}} reproduces lme4's glmer, which has no "
            f"{fam.name} family (the reference for it is glmmTMB's exact Laplace "
            "approximation); leave control['pirls'] at 'exact'"
        )
    if nagq > 1:
        raise ModelSpecError(
            f"control={{'pirls': 'lme4'}} reproduces glmer's Laplace approximation "
            f"(nagq=1), not quadrature (nagq={nagq}); leave control['pirls'] at 'exact'"
        )


def _optimise(
    objective: _Objective, starts, lower, upper, theta0, control, accept=None
) -> tuple[_Attempt, int]:
    """Minimise from the starts in turn until an attempt passes the convergence checks
    (:func:`_converged`) and ``accept`` (a further test of an attempt, if given).

    An attempt that does not pass is continued from where it stopped, with a fresh
    L-BFGS-B memory, while that lowers the deviance (at most ``MAX_RUNS_PER_START`` runs
    per start): L-BFGS-B's line search can end the run early after a step into a region
    where the deviance is infinite. After the given starts, the best point so far with
    the covariance parameters reset to ``theta0`` is tried.

    Returns
    -------
    attempt : _Attempt
        The attempt with the lowest deviance.
    n_attempts : int
    """
    n_theta = len(theta0)
    best, n_attempts, pending, reset = None, 0, list(starts), False
    while pending:
        x0, previous = pending.pop(0), np.inf
        for _ in range(MAX_RUNS_PER_START):
            attempt = _attempt(objective, np.clip(x0, lower, upper), lower, upper, n_theta, control)
            n_attempts += 1
            if best is None or attempt.value < best.value:
                best = attempt
            if _converged(best.checks) and (accept is None or accept(best)):
                return best, n_attempts
            if not attempt.value < previous - 1e-9 * abs(attempt.value):
                break
            x0, previous = attempt.x, attempt.value
        if not pending and not reset:
            reset = True
            pending.append(np.concatenate([theta0, best.x[n_theta:]]))
    return best, n_attempts


def _attempt(objective, x0, lower, upper, n_theta, control) -> _Attempt:
    """One run of :func:`_minimise`. Covariance parameters at their lower bound start at
    ``THETA_START_MIN`` instead: the deviance is even in each scalar theta, so its
    gradient there is exactly zero and L-BFGS-B would not move. The end point is
    mirrored (:func:`_mirror_zero_columns`) before the convergence checks."""
    x0 = x0.copy()
    at_zero = np.isfinite(lower[:n_theta]) & (x0[:n_theta] <= lower[:n_theta] + BOUND_TOL)
    x0[:n_theta][at_zero] = lower[:n_theta][at_zero] + THETA_START_MIN
    x, opt, hessian = _minimise(objective, x0, lower, upper, control)
    x, opt.jac, hessian = _mirror_zero_columns(x, opt.jac, hessian, objective.columns)
    opt.x = x
    vcov, checks = _vcov_and_checks(hessian, opt.jac, x, lower, upper, n_theta, objective.p)
    return _Attempt(x, float(opt.fun), opt, vcov, checks)


def _mirror_zero_columns(x, gradient, hessian, columns):
    """The same point with each column of a term's factor whose diagonal entry is at zero
    and whose gradient there is positive changed in sign.

    The deviance is unchanged when a column of a factor ``T`` (and of ``u``) changes sign.
    With the diagonal entry at zero this flips only the entries below it, a point
    L-BFGS-B cannot reach from here (the diagonal is bounded below by zero), and flips the
    sign of the gradient of the diagonal entry: where that gradient is positive, a
    variance held at zero (e.g. a random intercept, with the slope's SD in the entry
    below) decreases the deviance, with the opposite correlation, in the mirrored
    representation. The checks of :func:`_vcov_and_checks` see that descent there.
    Gradient and Hessian are transformed with the point (``S g`` and ``S H S``, ``S``
    the diagonal matrix of signs).
    """
    sign = np.ones(x.size)
    for column in columns:
        diagonal, below = column[0], column[1:]
        if x[diagonal] == 0.0 and gradient[diagonal] > 0 and np.any(x[below] != 0.0):
            sign[column] = -1.0
    if np.all(sign > 0):
        return x, gradient, hessian
    return x * sign + 0.0, gradient * sign, hessian * np.outer(sign, sign)


def _converged(checks) -> bool:
    return bool(
        checks["positive_definite"]
        and checks["scaled_gradient_max"] < GRADIENT_TOL
        and not checks["descent_from_zero"]
        and not checks.get("below_poisson_limit", False)
    )


def _minimise(objective: _Objective, x0, lower, upper, control):
    """Minimise the deviance within bounds: L-BFGS-B to the neighbourhood of the optimum,
    then Newton.

    L-BFGS-B (with the exact gradient) stops once the relative decrease of the deviance
    falls below ``control["ftol"]`` (1e-10). The Hessian there (central differences of
    the gradient, needed for the standard errors anyway) drives Newton steps, halved
    until the deviance does not increase, until the step is below 1e-6 standard errors;
    parameters at a bound that the gradient pushes outwards stay there. The Hessian is
    recomputed at the end only if the Newton steps moved a parameter by more than 0.01
    standard errors.

    Returns
    -------
    x : ndarray
    opt : scipy.optimize.OptimizeResult
        The L-BFGS-B report, with ``x``, ``fun`` and ``jac`` updated after the Newton steps.
    hessian : ndarray
        All NaN when the deviance is infinite at ``x`` (no finite point was found).
    """
    bounds = [
        (lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
        for lo, hi in zip(lower, upper, strict=True)
    ]
    opt = optimize.minimize(
        objective.value_and_gradient,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={
            "maxiter": control["maxiter"],
            "ftol": control["ftol"],
            "gtol": 1e-10,
            "maxcor": 20,
        },
    )
    x = np.clip(opt.x, lower, upper)
    value, grad = objective.value_and_gradient(x)
    if not np.isfinite(value):
        opt.x, opt.fun, opt.jac = x, value, grad
        return x, opt, np.full((x.size, x.size), np.nan)
    hessian = objective.hessian(x)
    x_start = x.copy()
    sd = _newton_sd(hessian)
    for _ in range(control["newton_steps"]):
        step = _newton_step(hessian, grad, x, lower, upper)
        if step is None or np.all(np.abs(step) <= 1e-6 * sd):
            break
        for scale in 0.5 ** np.arange(MAX_NEWTON_HALVINGS):
            trial = np.clip(x + scale * step, lower, upper)
            trial_value, trial_grad = objective.value_and_gradient(trial)
            if trial_value <= value + 1e-12 * abs(value):
                break
        else:
            break
        x, value, grad = trial, trial_value, trial_grad
    if np.any(np.abs(x - x_start) > 0.01 * sd):
        hessian = objective.hessian(x)
        value, grad = objective.value_and_gradient(x)
    opt.x, opt.fun, opt.jac = x, value, grad
    return x, opt, hessian


def _newton_sd(hessian):
    """``sqrt(diag(pinv(hessian)))``, floored at 1e-12; 1e-12 if the Hessian is not finite."""
    if not np.all(np.isfinite(hessian)):
        return np.full(hessian.shape[0], 1e-12)
    return np.sqrt(np.maximum(np.diag(np.linalg.pinv(hessian)), 1e-24))


def _held_at_bound(x, grad, lower, upper):
    """Parameters at a bound with the gradient pushing them outwards."""
    return ((x <= lower + BOUND_TOL) & (grad > 0)) | ((x >= upper - BOUND_TOL) & (grad < 0))


def _newton_step(hessian, grad, x, lower, upper):
    """Newton step with parameters held at their bounds (:func:`_held_at_bound`).

    Where the Hessian of the free parameters is not positive definite (a concave stretch
    of the deviance, e.g. of a flat NB2 size profile) the step uses the absolute values
    of its eigenvalues, a descent direction that leaves the concave region, and is
    shortened to at most ``MAX_MODIFIED_STEP`` in every parameter. None if the Hessian is
    not finite or singular.
    """
    if not np.all(np.isfinite(hessian)):
        return None
    free = ~_held_at_bound(x, grad, lower, upper)
    sub = hessian[np.ix_(free, free)]
    step = np.zeros_like(x)
    try:
        np.linalg.cholesky(sub)
        step[free] = -np.linalg.solve(sub, grad[free])
        return step
    except np.linalg.LinAlgError:
        pass
    values, vectors = np.linalg.eigh(sub)
    if np.min(np.abs(values)) <= 1e-12 * np.max(np.abs(values)):
        return None
    step[free] = -vectors @ ((vectors.T @ grad[free]) / np.abs(values))
    return step * min(1.0, MAX_MODIFIED_STEP / np.max(np.abs(step)))


def _is_cbind(design) -> bool:
    return design.formula.response.replace(" ", "").startswith("cbind(")


def _check_nagq(nagq, design) -> int:
    if not isinstance(nagq, int | np.integer) or not 1 <= nagq <= MAX_NAGQ:
        raise ModelSpecError(f"nagq must be a whole number from 1 to {MAX_NAGQ}, not {nagq!r}")
    if nagq > 1 and (len(design.blocks) != 1 or design.blocks[0].n_coef != 1):
        terms = ", ".join(f"({' + '.join(b.coef_names)} | {b.group})" for b in design.blocks)
        raise ModelSpecError(
            f"adaptive Gauss-Hermite quadrature (nagq={nagq}) needs a single scalar random "
            f"effect term such as (1 | g); the model has {terms}. Use nagq=1 (Laplace)."
        )
    return int(nagq)


def _complete_loglik(deviance, eta, y, pw, fam, trials) -> float:
    """Add the data-only constants to -deviance / 2."""
    return float(-0.5 * deviance + _loglik_constant(eta, y, pw, fam, trials))


def _loglik_constant(eta, y, pw, fam, trials) -> float:
    """Sum of the data-only terms of the log-likelihood (e.g. ``-log(y!)``): the family's
    complete log-likelihood (statsmodels') minus its kernel; free of ``eta``."""
    return float(fam.loglik_obs(eta, y, pw, trials).sum() - fam.kernel(eta, y, pw).sum())


def _vcov_and_checks(hessian, gradient, x, lower, upper, n_theta, p):
    """vcov(beta) = 2 [H^-1]_beta,beta (lme4's use.hessian); convergence checks.

    Covariance parameters at their boundary (theta below ``SINGULAR_TOL``) and a
    dispersion held at a bound (:func:`_held_at_bound`) are fixed: their rows are
    dropped. When the Hessian is not positive definite the beta block alone is used.
    ``descent_from_zero``: a theta at zero where the quadratic model of the deviance
    (gradient and Hessian diagonal) decreases at ``THETA_START_MIN``, or has its minimum
    further than ``GRADIENT_TOL`` from zero (a Newton step away from zero that the
    scaled-gradient check would not accept). For a scalar term the gradient there is
    zero by symmetry, so the curvature alone tells a boundary minimum from a saddle; a
    diagonal entry with entries below it can have a negative gradient at zero (see
    :func:`_mirror_zero_columns`).
    """
    free = np.ones(x.size, dtype=bool)
    at_zero = np.isfinite(lower[:n_theta]) & (x[:n_theta] < SINGULAR_TOL)
    free[:n_theta] = ~at_zero
    free[n_theta + p :] = ~_held_at_bound(x, gradient, lower, upper)[n_theta + p :]
    beta_idx = np.arange(n_theta, n_theta + p)
    if not np.all(np.isfinite(hessian)):
        return np.full((p, p), np.nan), {
            "eigenvalues": [],
            "positive_definite": False,
            "scaled_gradient_max": np.inf,
            "descent_from_zero": False,
        }
    slope, curvature = gradient[:n_theta], np.diag(hessian)[:n_theta]
    descent = bool(
        np.any(
            at_zero
            & (
                (slope + 0.5 * curvature * THETA_START_MIN < 0)
                | (-slope > GRADIENT_TOL * curvature)
            )
        )
    )
    sub = hessian[np.ix_(free, free)]
    eigenvalues = np.linalg.eigvalsh(sub)
    positive = bool(eigenvalues.min() > 0)
    if positive:
        inv = np.linalg.inv(sub)
        pos = np.flatnonzero(free)
        sel = np.searchsorted(pos, beta_idx)
        vcov = 2.0 * inv[np.ix_(sel, sel)]
        scaled = np.linalg.solve(sub, gradient[free])
    else:
        block = hessian[np.ix_(beta_idx, beta_idx)]
        vcov = 2.0 * np.linalg.pinv(block)
        scaled = np.full(free.sum(), np.inf)
    return 0.5 * (vcov + vcov.T), {
        "eigenvalues": eigenvalues.tolist(),
        "positive_definite": positive,
        "scaled_gradient_max": float(np.max(np.abs(scaled))) if scaled.size else 0.0,
        "descent_from_zero": descent,
    }


def _messages(best: _Optimum, singular) -> list[str]:
    checks = best.checks
    messages = [f"optimizer ({best.optimizer}): {best.report.message}", *best.notes]
    if not checks["positive_definite"]:
        fallback = (
            "lme4's unscaled covariance"
            if best.optimizer == "Nelder-Mead"
            else "the fixed-effects block only"
        )
        messages.append(
            "Hessian of the deviance is not positive definite: standard errors "
            f"use {fallback}; consider simplifying the model"
        )
    if checks["descent_from_zero"]:
        messages.append(
            "model failed to converge: a random-effect variance is at zero "
            "where the deviance still decreases away from zero"
        )
    if checks["scaled_gradient_max"] >= GRADIENT_TOL:
        messages.append(
            f"model failed to converge: max|scaled gradient| = "
            f"{checks['scaled_gradient_max']:.3g} (tolerance {GRADIENT_TOL})"
        )
    if singular:
        messages.append(
            "boundary (singular) fit: a random-effect variance is estimated at "
            "zero or a correlation at +-1"
        )
    return messages


def fit_glmm(design, family: str, nagq: int = 1, control: dict | None = None):
    """Fit a binomial, Poisson or negative-binomial mixed model.

    Parameters
    ----------
    design : MixedDesign
        From :func:`resistance_outcomes.models.design.build_design`.
    family : str
        ``"binomial"`` (logit), ``"poisson"`` (log) or ``"negative_binomial"`` (NB2, log;
        aliases ``"nbinom2"``, ``"negbin"``).
    nagq : int
        1: Laplace approximation; 2-25: adaptive Gauss-Hermite quadrature (one scalar
        random-effect term only).
    control : dict, optional
        See :func:`estimate_glmm`. ``{"pirls": "lme4"}`` reproduces lme4's ``glmer``
        (binomial and Poisson, Laplace): lme4 takes the log-determinant of the Laplace
        approximation one PIRLS iteration early, so its estimates differ from the exact
        Laplace optimum (the default, ``"exact"``) in the last digits, e.g. up to 4e-4
        (relative) in the fixed effects and 1.3% in their standard errors on lme4's
        ``cbpp`` example. Use it to reproduce an lme4 analysis.

    Returns
    -------
    MixedResult
        ``deviance`` is ``-2 * loglik``; ``extra`` holds the PIRLS mode, the optimizer
        report (``optimizer_attempts``: runs needed, see the module notes;
        ``optimizer_scale``: the factor from each parameter to the optimizer's
        coordinates), the gradient and the Hessian eigenvalues in those coordinates,
        and the Pearson overdispersion ratio
        (``overdispersion``: sum of squared Pearson residuals over ``nobs - n_params``);
        for NB2 also ``poisson_loglik`` (the Poisson GLMM it started from) and
        ``nb_size_at_bound`` (``"upper"``: the Poisson limit, ``"lower"``, or None).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> rng = np.random.default_rng(3)
    >>> therapist = np.repeat(np.arange(40), 25)
    >>> x = rng.normal(size=1000)
    >>> eta = -1 + 0.5 * x + rng.normal(0, 0.7, 40)[therapist]
    >>> df = pd.DataFrame({"dropout": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x,
    ...                    "therapist": therapist.astype(str)})
    >>> fit = fit_glmm(build_design("dropout ~ x + (1 | therapist)", df), "binomial")
    >>> fit.coefficients["term"].tolist()
    ['(Intercept)', 'x']
    """
    from .result import MixedResult

    est = estimate_glmm(design, family, nagq=nagq, control=control)
    fam = est.family
    n_params = len(est.theta) + len(est.beta) + fam.n_dispersion
    extra = dict(est.extra)
    extra["overdispersion"] = extra.pop("overdispersion_ratio")
    return MixedResult(
        design=design,
        family=fam.name,
        method=est.method,
        beta=est.beta,
        vcov=est.vcov,
        df=None,
        theta=est.theta,
        sigma=1.0,
        nb_theta=float(fam.theta) if fam.n_dispersion else None,
        b=np.asarray(est.b),
        loglik=est.loglik,
        deviance=-2.0 * est.loglik,
        n_params=n_params,
        converged=est.converged,
        singular=est.singular,
        messages=est.messages,
        extra=extra,
    )
