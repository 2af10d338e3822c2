"""Parse mixed-model formulas written in lme4 syntax.

A formula has a response, a fixed part (passed on to patsy, so factors, interactions and
transformations work as in patsy), random-effect terms in parentheses with a bar, and
optional ``offset(...)`` terms::

    ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)

Nesting ``(1 | a/b)`` expands to ``(1 | a) + (1 | a:b)``; the double bar ``(1 + x || g)``
expands to uncorrelated terms ``(1 | g) + (0 + x | g)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ModelSpecError", "ParsedFormula", "RandomTerm", "parse_formula"]


class ModelSpecError(ValueError):
    """A model specification or its data cannot be used; the message says what to change."""


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after nesting has been expanded.

    Attributes
    ----------
    expr : str
        The model for the random coefficients, left of the bar: ``"1"``, ``"1 + Days"``,
        ``"0 + x"``.
    group : str
        The grouping factor; an interaction of columns is written ``"batch:cask"``.
    """

    expr: str
    group: str

    @property
    def group_columns(self) -> tuple[str, ...]:
        """The data columns whose combination defines the groups."""
        return tuple(part.strip() for part in self.group.split(":"))


@dataclass(frozen=True)
class ParsedFormula:
    """A mixed-model formula split into its parts.

    Attributes
    ----------
    formula : str
        The formula as given.
    response : str
        Left-hand side, e.g. ``"Reaction"`` or ``"cbind(incidence, size - incidence)"``.
    fixed : str
        Right-hand fixed part in patsy syntax, ``"1"`` when there is none.
    random : tuple of RandomTerm
        Random-effects terms in the order written (nesting expanded).
    offsets : tuple of str
        Expressions inside ``offset(...)``.
    """

    formula: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...]


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4-style formula into response, fixed part, random terms and offsets.

    Parameters
    ----------
    formula : str
        A formula such as ``"y ~ x + (1 + x | g)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    ModelSpecError
        If the formula has no ``~``, unbalanced parentheses, an empty side, or a random
        term without a grouping factor.

    Examples
    --------
    >>> f = parse_formula("strength ~ 1 + (1 | batch/cask)")
    >>> f.fixed, [(t.expr, t.group) for t in f.random]
    ('1', [('1', 'batch'), ('1', 'batch:cask')])
    >>> parse_formula("y ~ x + offset(log(minutes)) + (1 | g)").offsets
    ('log(minutes)',)
    """
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise ModelSpecError(
            f"formula {formula!r} must contain exactly one '~' separating the response "
            "from the predictors, e.g. 'y ~ x + (1 | group)'"
        )
    _check_parentheses(formula)
    lhs, rhs = (side.strip() for side in formula.split("~"))
    if not lhs or not rhs:
        raise ModelSpecError(f"formula {formula!r} needs a response left of '~' and terms right")

    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    offsets: list[str] = []
    for sign, term in _split_top_level(rhs, formula):
        inner = _strip_outer_parentheses(term)
        if inner is not None and _find_top_level(inner, "|") >= 0:
            if sign == "-":
                raise ModelSpecError(f"random term {term!r} in {formula!r} cannot be subtracted")
            random.extend(_expand_random(inner, formula))
        elif re.fullmatch(r"offset\s*\(.*\)", term, flags=re.DOTALL):
            if sign == "-":
                raise ModelSpecError(f"offset {term!r} in {formula!r} cannot be subtracted")
            offsets.append(term[term.index("(") + 1 : -1].strip())
        else:
            fixed_parts.append(term if sign == "+" else f"- {term}")

    _check_distinct(random, formula)
    fixed = _join_fixed(fixed_parts)
    return ParsedFormula(
        formula=formula,
        response=lhs,
        fixed=_r_powers_to_python(fixed),
        random=tuple(random),
        offsets=tuple(offsets),
    )


def _check_distinct(random: list[RandomTerm], formula: str) -> None:
    seen: set[tuple[str, str]] = set()
    for term in random:
        key = (term.expr.replace(" ", ""), term.group)
        if key in seen:
            raise ModelSpecError(
                f"random term ({term.expr} | {term.group}) appears twice in {formula!r} "
                "(after expanding nesting); keep one of them"
            )
        seen.add(key)


def _check_parentheses(formula: str) -> None:
    depth = 0
    for char in formula:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise ModelSpecError(f"formula {formula!r} has unbalanced parentheses")


def _split_top_level(rhs: str, formula: str) -> list[tuple[str, str]]:
    """Split at '+' and '-' outside parentheses, returning (sign, term) pairs."""
    terms: list[tuple[str, str]] = []
    depth, sign, start = 0, "+", 0
    for i, char in enumerate(rhs):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char in "+-" and depth == 0 and not _is_exponent_sign(rhs, i):
            term = rhs[start:i].strip()
            if term:
                terms.append((sign, term))
            elif i > 0 and rhs[:i].strip():
                raise ModelSpecError(f"formula {formula!r} has an empty term near position {i}")
            sign, start = char, i + 1
    last = rhs[start:].strip()
    if not last:
        raise ModelSpecError(f"formula {formula!r} ends with an operator")
    terms.append((sign, last))
    return terms


def _is_exponent_sign(text: str, i: int) -> bool:
    """True for the sign in a number written like 1e-3."""
    return i >= 2 and text[i - 1] in "eE" and text[i - 2].isdigit()


def _strip_outer_parentheses(term: str) -> str | None:
    """Return the inside of ``( ... )`` when the parentheses enclose the whole term."""
    if not (term.startswith("(") and term.endswith(")")):
        return None
    depth = 0
    for i, char in enumerate(term):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and i < len(term) - 1:
            return None
    return term[1:-1].strip()


def _find_top_level(text: str, char: str) -> int:
    depth = 0
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == char and depth == 0:
            return i
    return -1


def _expand_random(inner: str, formula: str) -> list[RandomTerm]:
    bar = _find_top_level(inner, "|")
    uncorrelated = inner[bar + 1 : bar + 2] == "|"
    expr = inner[:bar].strip()
    group = inner[bar + (2 if uncorrelated else 1) :].strip()
    if not expr or not group:
        raise ModelSpecError(
            f"random term ({inner}) in {formula!r} needs a model left of '|' and a grouping "
            "factor right of it, e.g. (1 | therapist)"
        )
    if not re.fullmatch(r"[A-Za-z_.][\w.]*(\s*[:/]\s*[A-Za-z_.][\w.]*)*", group):
        raise ModelSpecError(
            f"grouping factor {group!r} in {formula!r} must be column names joined by '/' "
            "(nesting) or ':' (interaction), e.g. therapist/client"
        )
    exprs = _split_uncorrelated(expr, formula) if uncorrelated else [expr]
    return [RandomTerm(e, g) for g in _expand_nesting(group) for e in exprs]


def _expand_nesting(group: str) -> list[str]:
    """``a/b/c`` -> ``a``, ``a:b``, ``a:b:c``; ``a:b`` stays as it is."""
    levels = [part.strip() for part in group.split("/")]
    return [":".join(levels[: i + 1]).replace(" ", "") for i in range(len(levels))]


def _split_uncorrelated(expr: str, formula: str) -> list[str]:
    """``1 + x + z`` -> ``["1", "0 + x", "0 + z"]`` for the double-bar syntax."""
    parts = [term for _, term in _split_top_level(expr, formula)]
    has_intercept = not any(p in ("0", "-1") for p in parts)
    slopes = [p for p in parts if p not in ("0", "1", "-1")]
    return (["1"] if has_intercept else []) + [f"0 + {s}" for s in slopes]


def _join_fixed(parts: list[str]) -> str:
    if not parts:
        return "1"
    return " + ".join(parts).replace("+ - ", "- ")


def _r_powers_to_python(fixed: str) -> str:
    """Inside ``I(...)`` translate R's ``^`` to Python's ``**`` (``I(x^2)`` -> ``I(x**2)``)."""
    out, i = [], 0
    while i < len(fixed):
        match = re.compile(r"\bI\s*\(").search(fixed, i)
        if match is None:
            out.append(fixed[i:])
            break
        out.append(fixed[i : match.end()])
        depth, j = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(fixed[j], 0)
            j += 1
        out.append(fixed[match.end() : j].replace("^", "**"))
        i = j
    return "".join(out)
