"""Model frame and design matrices for mixed models (lme4's ``lFormula`` step).

``build_design`` turns a formula and a data frame into the response, the dense
fixed-effects matrix ``X`` (patsy, treatment contrasts, lme4-style column names), the
sparse transposed random-effects matrix ``Zt`` and the map from the covariance
parameters ``theta`` to the relative covariance factor ``Lambda`` (Bates, Maechler,
Bolker & Walker, 2015, JSS 67(1), section 2.3).

Random-effects terms are ordered as lme4 orders them, by decreasing number of levels;
within a term the columns of ``Z`` are level-major (for each level, its coefficients).
``theta`` holds, term by term, the lower triangle of each term's relative covariance
factor in column-major order.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy
import patsy.builtins
import scipy.sparse as sp

from .formula import ModelSpecError, ParsedFormula, RandomTerm, parse_formula

__all__ = ["MixedDesign", "ReBlock", "build_design"]

#: Functions a formula may call besides patsy's own (I, C, Q, center, standardize, ...).
FORMULA_FUNCTIONS = {
    "np": np,
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}
_KNOWN_NAMES = set(FORMULA_FUNCTIONS) | set(patsy.builtins.__all__)
_NO_NA = patsy.NAAction(NA_types=[])


@dataclass
class ReBlock:
    """One random-effects term: its grouping factor, levels and coefficients.

    Attributes
    ----------
    group : str
        Grouping factor name (``"herd"``, ``"batch:cask"``).
    levels : pandas.Index
        Level labels in the order of the term's columns of ``Z``.
    coef_names : list of str
        Random coefficients, e.g. ``["(Intercept)", "Days"]``.
    theta_slice : slice
        This term's entries in ``theta``.
    z_slice : slice
        This term's rows in ``Zt``.
    model_matrix : numpy.ndarray
        (n, n_coef) model matrix of the term's coefficients (before grouping).
    codes : numpy.ndarray
        Level index of each observation.
    term_info : patsy.DesignInfo
        How ``model_matrix`` was built, to rebuild it for new data.
    """

    group: str
    levels: pd.Index
    coef_names: list[str]
    theta_slice: slice
    z_slice: slice = field(default_factory=lambda: slice(0, 0))
    model_matrix: np.ndarray = field(default=None, repr=False)
    codes: np.ndarray = field(default=None, repr=False)
    term_info: patsy.DesignInfo = field(default=None, repr=False)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_coef(self) -> int:
        return len(self.coef_names)

    @property
    def n_theta(self) -> int:
        return self.n_coef * (self.n_coef + 1) // 2

    def factor(self, theta: np.ndarray) -> np.ndarray:
        """The (n_coef, n_coef) lower-triangular relative covariance factor of this term."""
        k = self.n_coef
        lower = np.zeros((k, k))
        rows, cols = _lower_triangle_colmajor(k)
        lower[rows, cols] = np.asarray(theta)[self.theta_slice]
        return lower


@dataclass
class MixedDesign:
    """Response, fixed- and random-effects design of a mixed model.

    Attributes
    ----------
    formula : ParsedFormula
    y : numpy.ndarray
        Response; for ``cbind(s, f)`` the proportion ``s / (s + f)``.
    prior_weights : numpy.ndarray
        Ones, the user's weights, or the number of trials for ``cbind`` (times weights).
    offset : numpy.ndarray
        Sum of the ``offset(...)`` terms, zeros if none.
    X : numpy.ndarray
        (n, p) fixed-effects matrix of full column rank.
    fixed_names : list of str
        lme4-style column names of ``X``.
    Zt : scipy.sparse.csc_matrix
        (q, n) transposed random-effects matrix.
    blocks : list of ReBlock
    theta0, theta_lower : numpy.ndarray
        Starting values and lower bounds for ``theta``.
    frame : pandas.DataFrame
        The rows used and the data columns the formula uses (original index kept).
    n_dropped : int
        Rows dropped because a used column was missing.
    dropped_columns : dict
        Column -> number of rows missing there.
    x_info : patsy.DesignInfo
        How ``X`` was built, to rebuild it for new data.
    """

    formula: ParsedFormula
    y: np.ndarray
    prior_weights: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    fixed_names: list[str]
    Zt: sp.csc_matrix
    blocks: list[ReBlock]
    theta0: np.ndarray
    theta_lower: np.ndarray
    frame: pd.DataFrame
    n_dropped: int
    dropped_columns: dict[str, int]
    x_info: patsy.DesignInfo = field(default=None, repr=False)
    _lambda_pattern: tuple = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Number of observations used."""
        return len(self.y)

    @property
    def p(self) -> int:
        """Number of fixed-effects coefficients."""
        return self.X.shape[1]

    @property
    def q(self) -> int:
        """Number of random effects."""
        return self.Zt.shape[0]

    @property
    def leading_block(self) -> tuple[int, int]:
        """(rows, block size) of the leading block-diagonal part of ``Lambda' Z' W Z Lambda``.

        The first term's random effects never share an observation across levels, so that
        part is block diagonal with ``n_coef`` x ``n_coef`` blocks (see ``linalg``).
        """
        first = self.blocks[0]
        return first.n_levels * first.n_coef, first.n_coef

    def lambdat(self, theta: np.ndarray) -> sp.csc_matrix:
        """Transposed relative covariance factor ``Lambda_theta'`` as a (q, q) sparse matrix."""
        lind, indices, indptr = self._lambda_pattern
        data = np.asarray(theta, dtype=float)[lind]
        return sp.csc_matrix((data, indices, indptr), shape=(self.q, self.q))

    @property
    def lambdat_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(theta index, row, column)`` of each stored entry of ``Lambda_theta'``, in the
        order of :meth:`lambdat`'s data (column by column)."""
        lind, rows, indptr = self._lambda_pattern
        cols = np.repeat(np.arange(self.q), np.diff(indptr))
        return np.asarray(lind), np.asarray(rows), cols

    def covariance_matrices(self, theta: np.ndarray, sigma: float = 1.0) -> list[np.ndarray]:
        """Covariance matrix ``sigma^2 T T'`` of each term's random coefficients."""
        return [sigma**2 * (t @ t.T) for t in (block.factor(theta) for block in self.blocks)]

    def new_design_matrices(
        self, newdata: pd.DataFrame
    ) -> tuple[np.ndarray, sp.csc_matrix, np.ndarray]:
        """``X``, ``Zt`` and offset for new data; levels not seen in fitting get no effect.

        Parameters
        ----------
        newdata : pandas.DataFrame
            Must hold the columns the formula uses (the response is not needed).

        Returns
        -------
        X_new : numpy.ndarray
        Zt_new : scipy.sparse.csc_matrix
            Columns of unseen levels are zero, so predictions use the population level.
        offset_new : numpy.ndarray
        """
        newdata = _new_frame(self, newdata)
        x_new = _build_with_info(self.x_info, newdata, "fixed part")
        rows, values = [], []
        for block in self.blocks:
            mm = _build_with_info(block.term_info, newdata, f"random term for {block.group}")
            codes = block.levels.get_indexer(_group_labels(newdata, block.group))
            seen = codes >= 0
            start = block.z_slice.start
            rows.append(
                start + np.where(seen, codes, 0)[:, None] * block.n_coef + np.arange(block.n_coef)
            )
            values.append(mm * seen[:, None])
        zt_new = _zt_from_entries(np.hstack(rows), np.hstack(values), self.q)
        offset_new = _evaluate_offsets(self.formula, newdata)
        return x_new, zt_new, offset_new


def build_design(
    formula: str | ParsedFormula,
    data: pd.DataFrame,
    weights: str | np.ndarray | pd.Series | None = None,
) -> MixedDesign:
    """Build the response and design matrices of a mixed model.

    Rows with a missing value in any column the formula uses (or in the weights) are
    dropped and counted in ``n_dropped`` and ``dropped_columns``.

    Parameters
    ----------
    formula : str or ParsedFormula
        lme4-style formula; see :func:`parse_formula`.
    data : pandas.DataFrame
    weights : str, array-like or None
        Prior weights: a column name or one positive value per row of ``data``.

    Returns
    -------
    MixedDesign

    Raises
    ------
    ModelSpecError
        For a column the data lack, a grouping factor with one level, a rank-deficient
        fixed-effects matrix, non-numeric responses, non-finite transformed values or
        unusable weights; the message names the column, row and value.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0], "x": [0.0, 1.0, 0.0, 1.0],
    ...                    "g": ["a", "a", "b", "b"]})
    >>> d = build_design("y ~ x + (1 | g)", df)
    >>> d.fixed_names, d.Zt.shape
    (['(Intercept)', 'x'], (2, 4))
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    columns = _used_columns(parsed, data)
    frame, weight_values, n_dropped, dropped = _complete_cases(parsed, data, columns, weights)

    y, prior_weights = _evaluate_response(parsed, frame)
    prior_weights = prior_weights * weight_values
    offset = _evaluate_offsets(parsed, frame)
    x, fixed_names, x_info = _fixed_matrix(parsed, frame)
    blocks = _random_blocks(parsed, frame)
    zt = _random_matrix(blocks, len(frame))
    theta0, theta_lower = _theta_start(blocks)
    return MixedDesign(
        formula=parsed,
        y=y,
        prior_weights=prior_weights,
        offset=offset,
        X=x,
        fixed_names=fixed_names,
        Zt=zt,
        blocks=blocks,
        theta0=theta0,
        theta_lower=theta_lower,
        frame=frame,
        n_dropped=n_dropped,
        dropped_columns=dropped,
        x_info=x_info,
        _lambda_pattern=_lambda_pattern(blocks),
    )


# --- columns and missing values -------------------------------------------------------


def _expression_names(code: str, where: str) -> set[str]:
    """Variable names an expression reads (function names excluded), ``Q("a b")`` included."""
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError as err:
        raise ModelSpecError(f"cannot read {where} {code!r}: {err.msg}") from None
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in called:
            names.add(node.id)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Q"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
    return names


def _patsy_codes(rhs: str, formula: str) -> list[str]:
    try:
        desc = patsy.ModelDesc.from_formula(rhs)
    except patsy.PatsyError as err:
        raise ModelSpecError(f"cannot read {rhs!r} in formula {formula!r}: {err}") from None
    return [factor.code for term in desc.rhs_termlist for factor in term.factors]


def _used_columns(parsed: ParsedFormula, data: pd.DataFrame) -> list[str]:
    codes = [(parsed.response, "response")]
    codes += [(c, "fixed part") for c in _patsy_codes(parsed.fixed, parsed.formula)]
    for term in parsed.random:
        codes += [(c, "random term") for c in _patsy_codes(term.expr, parsed.formula)]
    codes += [(o, "offset") for o in parsed.offsets]
    names: list[str] = []
    for code, where in codes:
        names += sorted(_expression_names(code, where))
    for term in parsed.random:
        names += list(term.group_columns)
    available = set(map(str, data.columns))
    missing = [n for n in dict.fromkeys(names) if n not in available and n not in _KNOWN_NAMES]
    if missing:
        raise ModelSpecError(
            f"formula {parsed.formula!r} uses column(s) {', '.join(map(repr, missing))} that "
            f"the data do not have; available columns: {', '.join(map(str, data.columns))}"
        )
    return [n for n in dict.fromkeys(names) if n in available]


def _complete_cases(parsed, data, columns, weights):
    frame = data.loc[:, columns]
    missing = frame.isna()
    weight_values = _weight_values(weights, data)
    if weights is not None:
        missing["(weights)"] = np.isnan(weight_values)
    dropped = {str(c): int(n) for c, n in missing.sum().items() if n > 0}
    keep = ~missing.any(axis=1).to_numpy()
    if not keep.any():
        raise ModelSpecError(
            f"no complete rows for formula {parsed.formula!r}: every row misses a value in "
            f"one of {', '.join(dropped)}"
        )
    frame = frame.loc[keep].copy()
    for col in frame.columns:
        frame[col] = _as_factor_if_categorical(frame[col])
    return frame, weight_values[keep], int((~keep).sum()), dropped


def _as_factor_if_categorical(column: pd.Series) -> pd.Series:
    """String, object and boolean columns become pandas categoricals with sorted levels (as
    R's factors; it also spares patsy a slow scan), unused levels dropped."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.remove_unused_categories()
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.astype(pd.CategoricalDtype([False, True]))
    if pd.api.types.is_string_dtype(column.dtype) or column.dtype == object:
        return column.astype("category")
    return column


def _weight_values(weights, data: pd.DataFrame) -> np.ndarray:
    if weights is None:
        return np.ones(len(data))
    if isinstance(weights, str):
        if weights not in data.columns:
            raise ModelSpecError(
                f"weights column {weights!r} is not in the data; available columns: "
                f"{', '.join(map(str, data.columns))}"
            )
        values = pd.to_numeric(data[weights], errors="coerce").to_numpy(dtype=float)
        label = f"weights column {weights!r}"
    else:
        values = np.asarray(weights, dtype=float).ravel()
        label = "weights"
        if len(values) != len(data):
            raise ModelSpecError(
                f"weights has {len(values)} values but the data have {len(data)} rows; "
                "give one weight per row"
            )
    bad = np.isfinite(values) & (values <= 0) | np.isinf(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelSpecError(
            f"{label} must be positive and finite; row with index {data.index[i]!r} has "
            f"{values[i]!r}: remove the row or correct the weight"
        )
    return values


# --- evaluating expressions -------------------------------------------------------------


class _ColumnNamespace(dict):
    """Mapping that hands expression evaluation the data columns as float arrays."""

    def __init__(self, frame: pd.DataFrame, where: str):
        super().__init__()
        self.frame, self.where = frame, where

    def __missing__(self, name):
        if name not in self.frame.columns:
            raise KeyError(name)
        return _numeric_column(self.frame, name, self.where)


def _numeric_column(frame: pd.DataFrame, name: str, where: str) -> np.ndarray:
    column = frame[name]
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(column.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=float)
    converted = pd.to_numeric(column, errors="coerce")
    bad = converted.isna() & column.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ModelSpecError(
            f"column {name!r} used in the {where} must be numeric; row with index "
            f"{frame.index[i]!r} has {column.iloc[i]!r}"
        )
    return converted.to_numpy(dtype=float)


def _evaluate(code: str, frame: pd.DataFrame, where: str) -> np.ndarray:
    namespace = _ColumnNamespace(frame, where)
    try:
        with np.errstate(all="ignore"):  # non-finite results are reported below
            value = eval(code, {"__builtins__": {}, **FORMULA_FUNCTIONS}, namespace)
    except ModelSpecError:
        raise
    except Exception as err:  # the user's expression failed; say which one
        raise ModelSpecError(f"cannot evaluate {where} {code!r}: {err}") from None
    values = np.broadcast_to(np.asarray(value, dtype=float), (len(frame),)).copy()
    _check_finite(values, frame, f"{where} {code!r}")
    return values


def _check_finite(values: np.ndarray, frame: pd.DataFrame, what: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelSpecError(
            f"{what} is not finite ({values[i]!r}) in {int(bad.sum())} row(s), first the row "
            f"with index {frame.index[i]!r}; check the values (e.g. log of zero) or drop them"
        )


def _evaluate_response(parsed: ParsedFormula, frame: pd.DataFrame):
    tree = ast.parse(parsed.response, mode="eval").body
    is_cbind = isinstance(tree, ast.Call) and getattr(tree.func, "id", None) == "cbind"
    if not is_cbind:
        return _evaluate(parsed.response, frame, "response"), np.ones(len(frame))
    if len(tree.args) != 2:
        raise ModelSpecError(
            f"{parsed.response!r} must have two arguments: cbind(successes, failures)"
        )
    successes, failures = (_evaluate(ast.unparse(arg), frame, "response") for arg in tree.args)
    trials = successes + failures
    bad = trials <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelSpecError(
            f"{parsed.response!r} has no trials (successes + failures = {trials[i]:g}) in the "
            f"row with index {frame.index[i]!r}; drop rows without trials"
        )
    return successes / trials, trials


def _evaluate_offsets(parsed: ParsedFormula, frame: pd.DataFrame) -> np.ndarray:
    total = np.zeros(len(frame))
    for code in parsed.offsets:
        total += _evaluate(code, frame, "offset")
    return total


# --- fixed effects ----------------------------------------------------------------------


def _fixed_matrix(parsed: ParsedFormula, frame: pd.DataFrame):
    try:
        with np.errstate(all="ignore"):  # non-finite columns are reported below
            matrix = patsy.dmatrix(
                parsed.fixed,
                frame,
                eval_env=patsy.EvalEnvironment([FORMULA_FUNCTIONS]),
                NA_action=_NO_NA,
            )
    except patsy.PatsyError as err:
        raise ModelSpecError(
            f"cannot build the fixed part {parsed.fixed!r} of {parsed.formula!r}: {err}"
        ) from None
    x = np.asarray(matrix, dtype=float)
    names = [r_column_name(n) for n in matrix.design_info.column_names]
    for j, name in enumerate(names):
        _check_finite(x[:, j], frame, f"fixed-effects column {name!r}")
    _check_rank(x, names, parsed.formula)
    return x, names, matrix.design_info


def r_column_name(patsy_name: str) -> str:
    """Translate a patsy column name to R's: ``a[T.b]:x`` -> ``ab:x``, ``Intercept`` ->
    ``(Intercept)``.

    Examples
    --------
    >>> r_column_name("framework[T.cognitive]:session_c")
    'frameworkcognitive:session_c'
    """
    if patsy_name == "Intercept":
        return "(Intercept)"
    parts, depth, start = [], 0, 0
    for i, char in enumerate(patsy_name):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == ":" and depth == 0:
            parts.append(patsy_name[start:i])
            start = i + 1
    parts.append(patsy_name[start:])
    return ":".join(_r_factor_name(part) for part in parts)


def _r_factor_name(part: str) -> str:
    if not part.endswith("]") or "[" not in part:
        return part
    depth = 0
    for i in range(len(part) - 1, -1, -1):
        depth += {"]": 1, "[": -1}.get(part[i], 0)
        if depth == 0:
            base, level = part[:i], part[i + 1 : -1]
            break
    level = level[2:] if level.startswith("T.") else level
    return base + {"True": "TRUE", "False": "FALSE"}.get(level, level)


def _check_rank(x: np.ndarray, names: list[str], formula: str) -> None:
    """Raise when a column of ``x`` is a linear combination of the columns before it.

    Uses the unpivoted QR decomposition: ``|R[j, j]|`` is the length of column j's part
    orthogonal to the earlier columns, compared with its own length (tolerance 1e-7, as R's
    ``lm``).
    """
    if x.shape[0] < x.shape[1]:
        raise ModelSpecError(
            f"formula {formula!r} has {x.shape[1]} fixed-effects columns but only "
            f"{x.shape[0]} complete rows; simplify the fixed part"
        )
    r = np.linalg.qr(x, mode="r")
    norms = np.linalg.norm(x, axis=0)
    aliased = [j for j in range(x.shape[1]) if norms[j] == 0 or abs(r[j, j]) <= 1e-7 * norms[j]]
    if aliased:
        described = ", ".join(repr(names[j]) for j in aliased)
        raise ModelSpecError(
            f"the fixed-effects design of {formula!r} is rank deficient: column(s) "
            f"{described} are constant zero or linear combinations of earlier columns "
            f"({', '.join(names)}); remove the redundant terms or merge sparse factor levels"
        )


# --- random effects ---------------------------------------------------------------------


def _group_labels(frame: pd.DataFrame, group: str) -> np.ndarray:
    """Each row's level label of a grouping factor (``a:b`` joined as strings)."""
    columns = [c.strip() for c in group.split(":")]
    if len(columns) == 1:
        return frame[columns[0]].to_numpy()
    labels = frame[columns[0]].astype(str).to_numpy(dtype=object)
    for col in columns[1:]:
        labels = labels + ":" + frame[col].astype(str).to_numpy(dtype=object)
    return labels


def _group_codes(frame: pd.DataFrame, group: str, formula: str) -> tuple[pd.Index, np.ndarray]:
    """Integer level codes (levels sorted, unused dropped) and the level labels."""
    columns = [c.strip() for c in group.split(":")]
    codes = np.zeros(len(frame), dtype=np.int64)
    labels = None
    for col in columns:
        cat = pd.Categorical(frame[col]).remove_unused_categories()
        col_labels = cat.categories.to_numpy()
        if labels is None:
            codes, labels = cat.codes.astype(np.int64), col_labels
        else:
            uniq, codes = np.unique(codes * len(col_labels) + cat.codes, return_inverse=True)
            prev = labels[uniq // len(col_labels)].astype(str).astype(object)
            labels = prev + ":" + col_labels[uniq % len(col_labels)].astype(str).astype(object)
    levels = pd.Index(labels)
    if len(levels) < 2:
        raise ModelSpecError(
            f"grouping factor {group!r} in {formula!r} has only one level "
            f"({levels[0]!r}) in the rows used; a random effect needs at least two groups: "
            "remove the term or check the data"
        )
    return levels, codes.astype(np.int64)


def _random_blocks(parsed: ParsedFormula, frame: pd.DataFrame) -> list[ReBlock]:
    blocks = [_random_block(term, parsed, frame) for term in parsed.random]
    blocks.sort(key=lambda b: -b.n_levels)  # lme4's order; sort is stable
    theta_start = z_start = 0
    for block in blocks:
        block.theta_slice = slice(theta_start, theta_start + block.n_theta)
        block.z_slice = slice(z_start, z_start + block.n_levels * block.n_coef)
        theta_start, z_start = block.theta_slice.stop, block.z_slice.stop
    return blocks


def _random_block(term: RandomTerm, parsed: ParsedFormula, frame: pd.DataFrame) -> ReBlock:
    try:
        matrix = patsy.dmatrix(
            term.expr,
            frame,
            eval_env=patsy.EvalEnvironment([FORMULA_FUNCTIONS]),
            NA_action=_NO_NA,
        )
    except patsy.PatsyError as err:
        raise ModelSpecError(
            f"cannot build random term ({term.expr} | {term.group}) of {parsed.formula!r}: {err}"
        ) from None
    mm = np.asarray(matrix, dtype=float)
    if mm.shape[1] == 0:
        raise ModelSpecError(
            f"random term ({term.expr} | {term.group}) in {parsed.formula!r} has no coefficients"
        )
    names = [r_column_name(n) for n in matrix.design_info.column_names]
    for j, name in enumerate(names):
        _check_finite(mm[:, j], frame, f"random-effects column {name!r} of {term.group}")
    levels, codes = _group_codes(frame, term.group, parsed.formula)
    return ReBlock(
        group=term.group,
        levels=levels,
        coef_names=names,
        theta_slice=slice(0, 0),
        model_matrix=mm,
        codes=codes,
        term_info=matrix.design_info,
    )


def _random_matrix(blocks: list[ReBlock], n: int) -> sp.csc_matrix:
    """``Zt`` built directly from level codes: each observation's column holds, block by
    block, its term's model-matrix row at rows ``start + code * n_coef + j``."""
    if not blocks:
        return sp.csc_matrix((0, n))
    rows = np.hstack(
        [b.z_slice.start + b.codes[:, None] * b.n_coef + np.arange(b.n_coef) for b in blocks]
    )
    values = np.hstack([b.model_matrix for b in blocks])
    return _zt_from_entries(rows, values, blocks[-1].z_slice.stop)


def _zt_from_entries(rows: np.ndarray, values: np.ndarray, q: int) -> sp.csc_matrix:
    n, m = rows.shape
    indptr = np.arange(0, n * m + 1, m, dtype=np.int64)
    zt = sp.csc_matrix((values.ravel(), rows.ravel(), indptr), shape=(q, n))
    zt.has_sorted_indices = True
    return zt


def _lower_triangle_colmajor(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a k x k lower triangle in column-major order."""
    cols, rows = np.triu_indices(k)
    return rows, cols


def _theta_start(blocks: list[ReBlock]) -> tuple[np.ndarray, np.ndarray]:
    theta0, lower = [], []
    for block in blocks:
        rows, cols = _lower_triangle_colmajor(block.n_coef)
        diagonal = rows == cols
        theta0.append(diagonal.astype(float))
        lower.append(np.where(diagonal, 0.0, -np.inf))
    if not blocks:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(theta0), np.concatenate(lower)


def _lambda_pattern(blocks: list[ReBlock]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSC pattern of ``Lambda'`` and, per stored entry, its index in ``theta``.

    ``Lambda'`` is block diagonal with ``T'`` (upper triangular) repeated once per level;
    entry (r, c) of ``T'`` is ``T[c, r]``.
    """
    all_rows, all_cols, all_lind = [], [], []
    for block in blocks:
        k = block.n_coef
        tri_rows, tri_cols = _lower_triangle_colmajor(k)
        index = np.full((k, k), -1)
        index[tri_rows, tri_cols] = np.arange(len(tri_rows)) + block.theta_slice.start
        r, c = np.nonzero(index.T >= 0)  # positions in T'
        base = block.z_slice.start + np.arange(block.n_levels)[:, None] * k
        all_rows.append((base + r).ravel())
        all_cols.append((base + c).ravel())
        all_lind.append(np.tile(index.T[r, c], block.n_levels))
    if not blocks:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(1, dtype=int)
    rows, cols, lind = (np.concatenate(a) for a in (all_rows, all_cols, all_lind))
    order = np.lexsort((rows, cols))
    q = blocks[-1].z_slice.stop
    indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=q))])
    return lind[order], rows[order], indptr


# --- new data ---------------------------------------------------------------------------


def _new_frame(design: MixedDesign, newdata: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(newdata, pd.DataFrame):
        raise ModelSpecError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    response = _expression_names(design.formula.response, "response")
    needed = [c for c in design.frame.columns if c not in response]
    missing = [c for c in needed if c not in newdata.columns]
    if missing:
        raise ModelSpecError(
            f"newdata lacks column(s) {', '.join(map(repr, missing))} that the model "
            f"{design.formula.formula!r} uses"
        )
    frame = newdata.loc[:, needed]
    incomplete = frame.isna().any(axis=1).to_numpy()
    if incomplete.any():
        i = int(np.flatnonzero(incomplete)[0])
        raise ModelSpecError(
            f"newdata has missing values in {int(incomplete.sum())} row(s), first the row "
            f"with index {frame.index[i]!r}; drop or fill them before predicting"
        )
    return frame


def _build_with_info(info: patsy.DesignInfo, frame: pd.DataFrame, what: str) -> np.ndarray:
    try:
        (matrix,) = patsy.build_design_matrices([info], frame, NA_action=_NO_NA)
    except patsy.PatsyError as err:
        raise ModelSpecError(f"cannot build the {what} for newdata: {err}") from None
    return np.asarray(matrix, dtype=float)
