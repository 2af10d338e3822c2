"""Validation of the canonical tables: types, ranges, keys, cross-table references, and
columns that look like personal identifiers.

Every finding is a :class:`Problem` that names the file, the spreadsheet row (header = 1,
first data row = 2), the column and the value, says what is wrong and what to do. Checks
collect every problem rather than stopping at the first; :class:`ValidationFailed` carries
them all and prints them grouped by kind.

The column types, ranges and keys come from the JSON-Schema-style files in
``workflow/schemas/`` (one per table), read with :func:`load_schemas`:

- ``type``: ``string``, ``integer``, ``number`` or ``boolean``; a list that includes
  ``"null"`` allows empty cells.
- ``enum``: allowed values of a string column (matched ignoring case and surrounding
  spaces; stored as a pandas category in the order listed).
- ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``minLength``.
- ``readOnly: true``: the column is derived by the pipeline and never read from input.
- ``required``: columns that must be present; ``primary_key``: columns whose combined
  values must be unique.

Booleans are read from yes/no, true/false, y/n and 1/0, ignoring case.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema
import numpy as np
import pandas as pd

from resistance_outcomes.io import ConfigError, read_yaml

if TYPE_CHECKING:
    from resistance_outcomes.codebook import Codebook

__all__ = [
    "Problem",
    "ValidationFailed",
    "check_analysis_coders",
    "check_code_values",
    "check_coding_log",
    "check_references",
    "find_identifier_columns",
    "find_suspect_missing_codes",
    "load_schemas",
    "missing_values_hint",
    "schema_with_constructs",
    "validate_table",
]

TABLES = ("clients", "sessions", "codes", "coding_log")
TRUE_WORDS = frozenset({"yes", "y", "true", "1", "1.0"})
FALSE_WORDS = frozenset({"no", "n", "false", "0", "0.0"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input.

    Attributes
    ----------
    file : str
        The input file (or configuration file) the problem is in.
    row : int or None
        Spreadsheet row number (header = 1, first data row = 2); None for a problem with a
        whole column or file.
    column : str or None
        The column as named in the canonical tables (or the file, before renaming).
    value : str or None
        The offending value as written, or None.
    message : str
        What is wrong.
    hint : str
        What to do about it.

    Examples
    --------
    >>> from resistance_outcomes.validate import Problem
    >>> print(Problem("sessions.csv", 7, "minutes", "45 min", "not a number",
    ...               "Write the number only."))
    sessions.csv, row 7, column 'minutes', value '45 min': not a number. Write the number only.
    """

    file: str
    row: int | None
    column: str | None
    value: str | None
    message: str
    hint: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.value is not None:
            where.append(f"value {self.value!r}")
        return f"{', '.join(where)}: {self.message}. {self.hint}"


class ValidationFailed(Exception):
    """The input has problems; ``problems`` lists every one of them.

    ``str()`` groups the problems by file, column and kind, shows at most
    ``max_examples`` rows of each group and the number of the others.

    Examples
    --------
    >>> from resistance_outcomes.validate import Problem, ValidationFailed
    >>> error = ValidationFailed([Problem("c.csv", 2, "client", None, "empty value",
    ...                                   "Fill it in.")])
    >>> print(error)  # doctest: +NORMALIZE_WHITESPACE
    Validation found 1 problem.
    <BLANKLINE>
    c.csv, column 'client' (1 problem):
      row 2: empty value
      What to do: Fill it in.
    """

    def __init__(self, problems: list[Problem], max_examples: int = 5):
        self.problems = list(problems)
        self.max_examples = max_examples
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"Validation found {count} problem{'s' if count != 1 else ''}."]
        for (file, column, hint), group in group_problems(self.problems).items():
            where = file if column is None else f"{file}, column {column!r}"
            lines += ["", f"{where} ({_plural(len(group), 'problem')}):"]
            lines += [f"  {_example(problem)}" for problem in group[: self.max_examples]]
            if len(group) > self.max_examples:
                lines.append(f"  ... and {len(group) - self.max_examples} more")
            lines.append(f"  What to do: {hint}")
        return "\n".join(lines)


def group_problems(problems: list[Problem]) -> dict[tuple, list[Problem]]:
    """Group problems of one kind: same file, column and advice, in order of appearance.

    Examples
    --------
    >>> from resistance_outcomes.validate import Problem, group_problems
    >>> p = Problem("s.csv", 3, "minutes", "x", "not a number", "Write a number.")
    >>> list(group_problems([p, p]))
    [('s.csv', 'minutes', 'Write a number.')]
    """
    groups: dict[tuple, list[Problem]] = defaultdict(list)
    for problem in problems:
        groups[(problem.file, problem.column, problem.hint)].append(problem)
    return dict(groups)


def _example(problem: Problem) -> str:
    parts = []
    if problem.row is not None:
        parts.append(f"row {problem.row}")
    if problem.value is not None:
        parts.append(repr(problem.value))
    return f"{', '.join(parts)}: {problem.message}" if parts else problem.message


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------- schemas


def load_schemas(schema_dir: str | Path) -> dict[str, dict]:
    """Read the ``clients``, ``sessions``, ``codes`` and ``coding_log`` schemas from
    ``<table>.schema.yaml``.

    Each file must be a valid JSON Schema (draft 2020-12) describing one row as an object.

    Parameters
    ----------
    schema_dir : str or path-like
        Directory holding the schema files (``workflow/schemas`` in the workflow).

    Returns
    -------
    dict
        Table name -> schema.

    Examples
    --------
    >>> from resistance_outcomes.validate import load_schemas
    >>> schemas = load_schemas("workflow/schemas")  # doctest: +SKIP
    >>> schemas["clients"]["primary_key"]          # doctest: +SKIP
    ['study', 'client']
    """
    schemas = {}
    for table in TABLES:
        path = Path(schema_dir) / f"{table}.schema.yaml"
        schema = read_yaml(path, f"{table} schema")
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as error:
            raise ConfigError(f"{path}: not a valid JSON Schema ({error.message}).") from error
        if not isinstance(schema.get("properties"), dict):
            raise ConfigError(f"{path}: the schema needs a `properties:` mapping of columns.")
        schemas[table] = schema
    return schemas


def _types(spec: dict) -> set[str]:
    kind = spec.get("type", "string")
    return set(kind) if isinstance(kind, list) else {kind}


# ------------------------------------------------------------------- single tables


def validate_table(
    raw: pd.DataFrame,
    table: str,
    file: str,
    schema: dict,
    config_file: str = "config/config.yaml",
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check one table against its schema and convert its columns to their types.

    Parameters
    ----------
    raw : pandas.DataFrame
        The table with canonical column names and text values, indexed by spreadsheet
        row number, as :func:`resistance_outcomes.io.read_table` returns it.
    table : str
        ``"clients"``, ``"sessions"``, ``"codes"`` or ``"coding_log"`` (used in advice).
    file : str
        The file name to report problems against.
    schema : dict
        The table's schema (see :func:`load_schemas`).
    config_file : str
        The run's configuration file, named in the advice.

    Returns
    -------
    typed : pandas.DataFrame
        Schema columns first, in schema order, converted: ``string`` -> str, ``enum`` ->
        category, ``integer`` -> Int64, ``number`` -> float64, ``boolean`` -> boolean.
        Cells that fail a check are missing. Columns not in the schema are kept as text.
        Same index as ``raw``.
    problems : list of Problem
        Missing required columns, empty required cells, unconvertible or out-of-range
        values and repeated keys; whole-column problems first, then by row.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.validate import validate_table
    >>> schema = {"properties": {"session": {"type": "integer", "minimum": 1}},
    ...           "required": ["session"]}
    >>> raw = pd.DataFrame({"session": ["1", "0", "two"]}, index=pd.Index([2, 3, 4]))
    >>> typed, problems = validate_table(raw, "sessions", "s.csv", schema)
    >>> typed["session"].tolist()
    [1, <NA>, <NA>]
    >>> [(p.row, p.value, p.message) for p in problems]
    [(3, '0', 'below the minimum 1'), (4, 'two', 'not a whole number')]
    """
    properties = schema["properties"]
    problems = []
    for column in schema.get("required", []):
        if column not in raw.columns:
            problems.append(
                Problem(
                    file,
                    None,
                    column,
                    None,
                    f"required column {column!r} is missing",
                    f"Add the column to the file, or map your column to it under "
                    f"`columns: {table}:` in {config_file}.",
                )
            )
    typed = {}
    for column, spec in properties.items():
        if column not in raw.columns:
            continue
        if spec.get("readOnly"):
            problems.append(
                Problem(
                    file,
                    None,
                    column,
                    None,
                    f"{column!r} is derived by the pipeline",
                    "Remove the column (or its mapping): it is never read from input.",
                )
            )
            continue
        typed[column], found = _coerce_column(raw[column], spec, file, column, config_file)
        problems += found
    others = [column for column in raw.columns if column not in properties]
    result = pd.DataFrame(typed, index=raw.index).join(raw[others])
    problems += _duplicate_key_problems(result, schema.get("primary_key", []), file)
    return result, sorted(problems, key=lambda p: (p.row is not None, p.row or 0))


def missing_values_hint(config_file: str = "config/config.yaml") -> str:
    """The advice added to a value problem that may be an undeclared missing-value code.

    Examples
    --------
    >>> from resistance_outcomes.validate import missing_values_hint
    >>> missing_values_hint("my.yaml")  # doctest: +ELLIPSIS
    'If the value is a code for a missing value, declare it under `missing_values:` in my.yaml...'
    """
    return (
        "If the value is a code for a missing value, declare it under `missing_values:` in "
        f"{config_file} (for all files, or for this file and column; config/README.md)."
    )


def _coerce_column(
    values: pd.Series, spec: dict, file: str, column: str, config_file: str = "config/config.yaml"
) -> tuple[pd.Series, list[Problem]]:
    text = values.astype("str").str.strip()
    text = text.where(text != "")
    types = _types(spec) - {"null"}
    kind = types.pop() if len(types) == 1 else "string"
    converter = _CONVERTERS["enum" if "enum" in spec else kind]
    converted, bad, message, hint = converter(text, spec)
    if kind in ("integer", "number", "boolean") and "enum" not in spec:
        hint = f"{hint} {missing_values_hint(config_file)}"
    problems = [Problem(file, row, column, values[row], message, hint) for row in text.index[bad]]
    in_range, range_problems = _range_problems(
        converted.where(~bad), values, spec, file, column, config_file
    )
    problems += range_problems
    if "null" not in _types(spec):
        for row in text.index[text.isna()]:
            problems.append(
                Problem(
                    file,
                    row,
                    column,
                    None,
                    "empty cell in a column that must be filled",
                    f"Fill in {column!r} for every row, or remove the row.",
                )
            )
    return converted.where(~bad & in_range), problems


def _to_integer(text: pd.Series, spec: dict):
    number = pd.to_numeric(text, errors="coerce")
    bad = text.notna() & ~(np.isfinite(number) & (number % 1 == 0))
    return (
        number.where(~bad).astype("Int64"),
        bad,
        "not a whole number",
        "Write a whole number (for example 3), without units or text.",
    )


def _to_number(text: pd.Series, spec: dict):
    number = pd.to_numeric(text, errors="coerce")
    bad = text.notna() & ~np.isfinite(number)
    return (
        number.where(~bad).astype("float64"),
        bad,
        "not a number",
        "Write a number with a decimal point (for example 4.5), without units or text.",
    )


def _to_boolean(text: pd.Series, spec: dict):
    lower = text.str.lower()
    converted = pd.Series(pd.NA, index=text.index, dtype="boolean")
    converted[lower.isin(TRUE_WORDS)] = True
    converted[lower.isin(FALSE_WORDS)] = False
    bad = text.notna() & converted.isna()
    return converted, bad, "not a yes/no value", "Write yes or no (or true/false, 1/0)."


def _to_category(text: pd.Series, spec: dict):
    allowed = [str(value) for value in spec["enum"]]
    by_key = {_label_key(value): value for value in allowed}
    matched = text.map(lambda value: by_key.get(_label_key(value)), na_action="ignore")
    bad = text.notna() & matched.isna()
    return (
        pd.Series(pd.Categorical(matched, categories=allowed), index=text.index),
        bad,
        f"not one of: {', '.join(allowed)}",
        f"Use one of: {', '.join(allowed)}.",
    )


def _to_string(text: pd.Series, spec: dict):
    return text.astype(str), pd.Series(False, index=text.index), "", ""


_CONVERTERS = {
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "enum": _to_category,
    "string": _to_string,
}


def _label_key(value: str) -> str:
    return " ".join(str(value).casefold().split())


def _range_problems(
    converted: pd.Series,
    raw: pd.Series,
    spec: dict,
    file: str,
    column: str,
    config_file: str = "config/config.yaml",
) -> tuple[pd.Series, list[Problem]]:
    checks = [
        ("minimum", np.less, "below the minimum"),
        ("exclusiveMinimum", np.less_equal, "must be greater than"),
        ("maximum", np.greater, "above the maximum"),
        ("exclusiveMaximum", np.greater_equal, "must be less than"),
    ]
    ok = pd.Series(True, index=converted.index)
    problems = []
    if converted.dtype.kind not in "iuf":
        return ok, problems
    numbers = converted.astype("float64")
    for keyword, fails, words in checks:
        if keyword not in spec:
            continue
        failing = numbers.notna() & fails(numbers, spec[keyword])
        for row in numbers.index[failing]:
            problems.append(
                Problem(
                    file,
                    row,
                    column,
                    raw[row],
                    f"{words} {_number_text(spec[keyword])}",
                    f"{column!r} must be {_range_text(spec)}. {missing_values_hint(config_file)}",
                )
            )
        ok &= ~failing
    return ok, problems


def _range_text(spec: dict) -> str:
    parts = []
    if "minimum" in spec:
        parts.append(f">= {spec['minimum']}")
    if "exclusiveMinimum" in spec:
        parts.append(f"> {spec['exclusiveMinimum']}")
    if "maximum" in spec:
        parts.append(f"<= {spec['maximum']}")
    if "exclusiveMaximum" in spec:
        parts.append(f"< {spec['exclusiveMaximum']}")
    return " and ".join(parts)


def _duplicate_key_problems(typed: pd.DataFrame, key: list[str], file: str) -> list[Problem]:
    if not key or not set(key) <= set(typed.columns):
        return []
    complete = typed[key].dropna()
    repeated = complete[complete.duplicated(keep=False)]
    problems = []
    for values, group in repeated.groupby(key, sort=False, observed=True):
        rows = group.index.tolist()
        shown = ", ".join(f"{name}={value}" for name, value in zip(key, values, strict=True))
        for row in rows:
            problems.append(
                Problem(
                    file,
                    row,
                    key[-1],
                    str(typed.at[row, key[-1]]),
                    f"the key ({shown}) appears on rows {', '.join(map(str, rows))}",
                    f"Each ({', '.join(key)}) must appear once: remove or renumber the repeats.",
                )
            )
    return problems


def schema_with_constructs(schema: dict, codebook: Codebook) -> dict:
    """The sessions schema with one column per construct of the codebook.

    A construct of the codebook (``codebook.constructs[name]``) may arrive as a sessions
    column; it is typed by its kind: ``count`` -> integer >= 0, ``rating`` -> number within
    the construct's ``range`` (for a ``mean_rating`` construct made from codes: the range of
    its codes), ``boolean`` -> yes/no. Every one may be empty. Columns the schema already
    describes keep the schema's description.

    Parameters
    ----------
    schema : dict
        The sessions schema (:func:`load_schemas`).
    codebook : Codebook

    Returns
    -------
    dict
        A copy of ``schema`` whose ``properties`` also hold the constructs (after the
        schema's own columns, in codebook order).

    Examples
    --------
    >>> from resistance_outcomes.codebook import Codebook, Construct
    >>> from resistance_outcomes.validate import schema_with_constructs
    >>> codebook = Codebook({}, {"homework_noncompliance": Construct(
    ...     "homework_noncompliance", "column", value_kind="count")})
    >>> schema = schema_with_constructs({"properties": {}}, codebook)
    >>> schema["properties"]["homework_noncompliance"]["minimum"]
    0
    """
    properties = dict(schema["properties"])
    for name, construct in codebook.constructs.items():
        if name in properties:
            continue
        kind = construct.kind
        where = f"construct of {codebook.source}"
        if kind == "boolean":
            spec = {"type": ["boolean", "null"]}
        elif kind == "rating":
            spec = {"type": ["number", "null"]}
            low, high = construct.minimum, construct.maximum
            if low is None and high is None:
                ranges = [(c.minimum, c.maximum) for c in codebook.codes.values()]
                ranges = [
                    r
                    for c, r in zip(codebook.codes.values(), ranges, strict=True)
                    if c.construct == name
                ]
                if ranges:
                    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
            if low is not None:
                spec["minimum"] = _plain_number(low)
            if high is not None:
                spec["maximum"] = _plain_number(high)
        else:
            spec = {"type": ["integer", "null"], "minimum": 0}
        label = construct.label or name
        properties[name] = spec | {"description": f"{label} ({kind}; {where})"}
    return {**schema, "properties": properties}


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


#: How a number that looks like a missing-value code is written: optional minus, then
#: two or more nines (-99, -999, 99, 9999), with an optional ``.0``.
_SUSPECT_CODE = re.compile(r"^-?9{2,}(\.0+)?$")


def find_suspect_missing_codes(
    typed: pd.DataFrame,
    raw: pd.DataFrame,
    file: str,
    columns: list[str],
    config_file: str = "config/config.yaml",
) -> list[Problem]:
    """Find numbers that look like undeclared missing-value codes.

    A value such as ``-99``, ``-999``, ``99`` or ``9999`` (a minus sign or not, then only
    nines) that lies far outside the range of the column's other values (beyond their
    lowest minus, or their highest plus, the larger of their spread and their largest
    absolute value) is almost always a code for a missing value; read as a number it
    would go into the analyses. Declared
    codes (``missing_values:``) are missing before this check, so it finds only the
    undeclared ones.

    Parameters
    ----------
    typed : pandas.DataFrame
        The typed table (:func:`validate_table`).
    raw : pandas.DataFrame
        The same table as text, for the values as written.
    file : str
        The file name for the messages.
    columns : list of str
        Numeric columns to check (not the keys: a session number 99 can be real).
    config_file : str
        The run's configuration file, named in the advice.

    Returns
    -------
    list of Problem
        One per suspect cell, in row order.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.validate import find_suspect_missing_codes
    >>> typed = pd.DataFrame({"severity": [12.0, -99.0, 15.0]}, index=[2, 3, 4])
    >>> raw = pd.DataFrame({"severity": ["12", "-99", "15"]}, index=[2, 3, 4])
    >>> [(p.row, p.value) for p in find_suspect_missing_codes(typed, raw, "c.csv",
    ...                                                        ["severity"])]
    [(3, '-99')]
    """
    problems = []
    for column in columns:
        if column not in typed.columns or not pd.api.types.is_numeric_dtype(typed[column]):
            continue
        if pd.api.types.is_bool_dtype(typed[column]):
            continue
        numbers = pd.to_numeric(typed[column], errors="coerce").astype("float64")
        text = numbers.map(lambda v: "" if np.isnan(v) else _number_text(v))
        suspect = text.str.match(_SUSPECT_CODE) & numbers.notna()
        if not suspect.any():
            continue
        others = numbers[~suspect].dropna()
        low, high = (others.min(), others.max()) if len(others) else (np.inf, -np.inf)
        spread = max(high - low, abs(low), abs(high)) if len(others) else 0.0
        outside = suspect & ((numbers < low - spread) | (numbers > high + spread))
        for row in numbers.index[outside]:
            value = raw.at[row, column] if column in raw.columns else text[row]
            problems.append(
                Problem(
                    file,
                    row,
                    column,
                    None if pd.isna(value) else str(value),
                    "looks like a code for a missing value (far outside the range of the "
                    "column's other values) and is not declared",
                    f"Declare it under `missing_values:` in {config_file} (for all files, "
                    "or for this file and column; config/README.md), or correct the value. "
                    "If such values are real, set `validation: undeclared_codes: keep`.",
                )
            )
    return sorted(problems, key=lambda problem: problem.row)


# --------------------------------------------------------------- across the tables


def check_references(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    codes: pd.DataFrame | None = None,
    codebook: Codebook | None = None,
    files: dict[str, str] | None = None,
    coding_log: pd.DataFrame | None = None,
) -> list[Problem]:
    """Check the typed tables against each other.

    Finds sessions of clients not in the clients table; session numbers that are not
    1, 2, ... k without gaps; minutes on sessions not attended (attended sessions
    without minutes are valid: minutes are optional); more repaired ruptures than
    ruptures; with a code table, codes of sessions that are missing or were not
    attended, codes not in the codebook, values outside a code's range, ratings on units
    without the markers they rate, and
    constructs supplied both as a sessions column and through the codes; with a coding
    log, logged sessions that are missing or were not attended and the checks of
    :func:`check_coding_log`. Repeated keys and negative counts are found by
    :func:`validate_table`.

    Parameters
    ----------
    clients, sessions : pandas.DataFrame
        Typed tables from :func:`validate_table`, indexed by spreadsheet row.
    codes : pandas.DataFrame, optional
        Typed code table, with codes written as in the codebook.
    codebook : Codebook, optional
        Needed with ``codes``.
    files : dict, optional
        Table name -> file name for the messages. Default: the table names.
    coding_log : pandas.DataFrame, optional
        Typed coding log.

    Returns
    -------
    list of Problem

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.validate import check_references
    >>> clients = pd.DataFrame({"study": ["s"], "client": ["1"]}, index=[2])
    >>> sessions = pd.DataFrame({"study": ["s", "s"], "client": ["1", "1"],
    ...                          "session": [1, 3], "attended": [False, False]}, index=[2, 3])
    >>> [p.message for p in check_references(clients, sessions)]
    ['session 2 is missing before this one']
    """
    files = {table: table for table in TABLES} | (files or {})
    problems = _unknown_client_problems(clients, sessions, files)
    problems += _session_gap_problems(sessions, files["sessions"])
    problems += _minutes_problems(sessions, files["sessions"])
    problems += _repaired_problems(sessions, files["sessions"])
    if codes is not None:
        if codebook is None:
            raise ValueError("check_references needs the codebook to check a code table.")
        problems += _session_reference_problems(codes, "codes", sessions, files)
        problems += check_code_values(codes, codebook, files["codes"])
        problems += _double_supply_problems(sessions, codes, codebook, files)
    if coding_log is not None:
        problems += _session_reference_problems(coding_log, "coding_log", sessions, files)
        problems += check_coding_log(coding_log, codes, files)
    return problems


def check_code_values(codes: pd.DataFrame, codebook: Codebook, file: str = "codes"):
    """Check the codes themselves: listed in the codebook, values in range, ratings on
    units the same coder marked.

    Parameters
    ----------
    codes : pandas.DataFrame
        Typed code table, codes written as in the codebook, indexed by spreadsheet row.
    codebook : Codebook
    file : str
        The file name for the messages.

    Returns
    -------
    list of Problem

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import load_codebook
    >>> from resistance_outcomes.validate import check_code_values
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> codes = pd.DataFrame({"code": ["W_MIN", "W_XYZ"], "value": [1.0, 1.0]}, index=[2, 3])
    >>> [p.message for p in check_code_values(codes, codebook)]  # doctest: +SKIP
    ["code 'W_XYZ' is not in the codebook"]
    """
    return _code_problems(codes, codebook, file) + _rating_without_marker_problems(
        codes, codebook, file
    )


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Rows' key tuples; rows with a missing key part get None."""
    if not set(columns) <= set(frame.columns):
        return pd.Series(None, index=frame.index, dtype=object)
    parts = frame[columns].astype(object)
    complete = parts.notna().all(axis=1)
    return pd.Series(
        [
            tuple(row) if ok else None
            for row, ok in zip(parts.itertuples(index=False), complete, strict=True)
        ],
        index=frame.index,
        dtype=object,
    )


def _unknown_client_problems(clients, sessions, files) -> list[Problem]:
    known = set(_keys(clients, ["study", "client"]).dropna())
    keys = _keys(sessions, ["study", "client"])
    return [
        Problem(
            files["sessions"],
            row,
            "client",
            key[1],
            f"client is not in {files['clients']}",
            f"Add the client to {files['clients']} or correct the client id.",
        )
        for row, key in keys.dropna().items()
        if key not in known
    ]


def _session_gap_problems(sessions: pd.DataFrame, file: str) -> list[Problem]:
    if not {"study", "client", "session"} <= set(sessions.columns):
        return []
    problems = []
    frame = sessions[["study", "client", "session"]].dropna()
    for _, group in frame.groupby(["study", "client"], sort=False, observed=True):
        numbers = group["session"].astype(int)
        present = set(numbers)
        for missing in sorted(set(range(1, max(present) + 1)) - present):
            after = numbers[numbers > missing].idxmin()
            problems.append(
                Problem(
                    file,
                    after,
                    "session",
                    str(numbers[after]),
                    f"session {missing} is missing before this one",
                    "Number each client's sessions 1, 2, 3, ... without gaps; list missed "
                    "sessions too, with attended = no.",
                )
            )
    return problems


def _minutes_problems(sessions: pd.DataFrame, file: str) -> list[Problem]:
    """Minutes on a session not attended contradict it. (Minutes are optional: an attended
    session without them is valid, and models with a minutes offset leave it out.)"""
    if not {"attended", "minutes"} <= set(sessions.columns):
        return []
    missed = sessions["attended"].eq(False).fillna(False).astype(bool)
    problems = []
    for row in sessions.index[missed & sessions["minutes"].notna()]:
        problems.append(
            Problem(
                file,
                row,
                "minutes",
                str(sessions.at[row, "minutes"]),
                "minutes given for a session not attended",
                "Leave minutes empty when the session was not attended, or correct attended.",
            )
        )
    return problems


def _repaired_problems(sessions: pd.DataFrame, file: str) -> list[Problem]:
    if not {"repaired", "ruptures"} <= set(sessions.columns):
        return []
    too_many = (sessions["repaired"] > sessions["ruptures"]).fillna(False).astype(bool)
    return [
        Problem(
            file,
            row,
            "repaired",
            str(sessions.at[row, "repaired"]),
            f"more repaired ruptures than ruptures ({sessions.at[row, 'ruptures']})",
            "A session cannot repair more ruptures than it had: correct one of them.",
        )
        for row in sessions.index[too_many]
    ]


def _session_reference_problems(frame, table, sessions, files) -> list[Problem]:
    """Rows of ``frame`` (codes or coding log) whose session is not listed or not attended."""
    key = ["study", "client", "session"]
    listed_in = "Code" if table == "codes" else "Log"
    flags = (
        sessions["attended"]
        if "attended" in sessions.columns
        else pd.Series(True, index=sessions.index)
    )
    attended = {
        row_key: flag
        for row_key, flag in zip(_keys(sessions, key), flags, strict=True)
        if row_key is not None
    }
    problems = []
    for row, row_key in _keys(frame, key).dropna().items():
        value = str(row_key[2])
        if row_key not in attended:
            problems.append(
                Problem(
                    files[table],
                    row,
                    "session",
                    value,
                    f"client {row_key[1]}, session {row_key[2]} is not in {files['sessions']}",
                    f"{listed_in} only sessions listed in {files['sessions']}; check client and "
                    "session.",
                )
            )
        elif attended[row_key] is pd.NA or not attended[row_key]:
            problems.append(
                Problem(
                    files[table],
                    row,
                    "session",
                    value,
                    f"client {row_key[1]}, session {row_key[2]} was not attended",
                    "Only attended sessions can be coded: check attended or the session.",
                )
            )
    return problems


def _code_problems(codes: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    if "code" not in codes.columns:
        return []
    values = codes["value"] if "value" in codes.columns else pd.Series(np.nan, codes.index)
    problems = []
    for row, code, value in zip(codes.index, codes["code"], values, strict=True):
        if pd.isna(code):
            continue
        entry = codebook.codes.get(code)
        if entry is None:
            problems.append(
                Problem(
                    file,
                    row,
                    "code",
                    code,
                    f"code {code!r} is not in the codebook",
                    "Correct the code, or add it under its instrument in config/codebook.yaml.",
                )
            )
        elif not pd.isna(value) and not entry.accepts(value):
            problems.append(
                Problem(
                    file,
                    row,
                    "value",
                    _number_text(value),
                    f"{entry.code} takes {entry.range_text()}",
                    "Correct the value: markers and strategies are 1 when present (0 when coded "
                    "absent); ratings lie in the range the codebook gives.",
                )
            )
    return sorted(problems, key=lambda problem: problem.row)


def _rating_without_marker_problems(codes, codebook, file) -> list[Problem]:
    unit_key = ["study", "client", "session", "unit", "coder"]
    if not set(unit_key) | {"code"} <= set(codes.columns):
        return []
    problems = []
    present = codes[codes["value"] > 0] if "value" in codes.columns else codes
    for rating, within in codebook.rating_scopes().items():
        rated = codes[codes["code"].isin(codebook.codes_of(rating))]
        if rated.empty:
            continue
        marked = set(_keys(present[present["code"].isin(codebook.codes_of(within))], unit_key))
        for row, row_key, code in zip(
            rated.index, _keys(rated, unit_key), rated["code"], strict=True
        ):
            if row_key is not None and row_key not in marked:
                problems.append(
                    Problem(
                        file,
                        row,
                        "code",
                        code,
                        f"rating on unit {row_key[3]} without a {within} marker by coder "
                        f"{row_key[4]}",
                        f"Rate only units the same coder marked ({within}); check the unit "
                        "number or add the marker.",
                    )
                )
    return problems


def _double_supply_problems(sessions, codes, codebook, files) -> list[Problem]:
    if "code" not in codes.columns:
        return []
    made = codebook.session_columns(codes["code"].dropna().unique())
    return [
        Problem(
            files["sessions"],
            None,
            column,
            None,
            f"{column!r} is both a column of {files['sessions']} and made from "
            f"the codes in {files['codes']}",
            "Keep one source: remove the column (or its mapping) or those codes.",
        )
        for column in made
        if column in sessions.columns
    ]


def check_coding_log(
    coding_log: pd.DataFrame,
    codes: pd.DataFrame | None = None,
    files: dict[str, str] | None = None,
) -> list[Problem]:
    """Check the coding log against the code table.

    Every coder with codes in a session must be logged for that session; the logged units
    must reach the highest unit the coder has codes for; and where both tables give the
    coder's role, they must agree. (Sessions of the log that are missing or were not
    attended are found by :func:`check_references`.)

    Parameters
    ----------
    coding_log : pandas.DataFrame
        Typed coding log (``study``, ``client``, ``session``, ``coder``, ``units`` and
        optionally ``role``), indexed by spreadsheet row.
    codes : pandas.DataFrame, optional
        Typed code table.
    files : dict, optional
        Table name -> file name for the messages. Default: the table names.

    Returns
    -------
    list of Problem
        Code rows of a coder not logged for the session (column ``coder``); log rows whose
        ``units`` is below the coder's highest coded unit (column ``units``); log rows whose
        ``role`` differs from the coder's role in the code table (column ``role``).

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.validate import check_coding_log
    >>> log = pd.DataFrame({"study": "s", "client": "1", "session": 1, "coder": ["A"],
    ...                     "units": [1]}, index=[2])
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": 1, "unit": [2, 5],
    ...                       "coder": ["A", "B"], "code": "W_MIN"}, index=[2, 3])
    >>> files = {"codes": "codes.csv", "coding_log": "log.csv"}
    >>> [(p.file, p.row, p.column, p.value) for p in check_coding_log(log, codes, files)]
    [('codes.csv', 3, 'coder', 'B'), ('log.csv', 2, 'units', '1')]
    """
    files = {table: table for table in TABLES} | (files or {})
    key = ["study", "client", "session", "coder"]
    if codes is None or codes.empty or not set(key) <= set(codes.columns):
        return []
    logged = dict(zip(_keys(coding_log, key), coding_log.index, strict=True))
    logged.pop(None, None)
    code_keys = _keys(codes, key)
    problems = [
        Problem(
            files["codes"],
            row,
            "coder",
            row_key[3],
            f"coder {row_key[3]} is not in {files['coding_log']} for client {row_key[1]}, "
            f"session {row_key[2]}",
            f"Add a row for this coder and session to {files['coding_log']}, or correct the "
            "coder or session.",
        )
        for row, row_key in code_keys.items()
        if row_key is not None and row_key not in logged
    ]
    problems += _logged_units_problems(coding_log, codes, code_keys, logged, files)
    problems += _logged_role_problems(coding_log, codes, code_keys, logged, files)
    return problems


def _logged_units_problems(coding_log, codes, code_keys, logged, files) -> list[Problem]:
    if "unit" not in codes.columns:
        return []
    highest = codes["unit"].groupby(code_keys.to_numpy(), sort=False).max()
    problems = []
    for row_key, unit in highest.items():
        row = logged.get(row_key)
        units = None if row is None else coding_log.at[row, "units"]
        if units is None or pd.isna(units) or pd.isna(unit) or unit <= units:
            continue
        problems.append(
            Problem(
                files["coding_log"],
                row,
                "units",
                str(units),
                f"coder {row_key[3]} has codes up to unit {unit} of this session in "
                f"{files['codes']}, more than the {units} units logged",
                "Give the number of units the coder coded (segments or utterances), or correct "
                "the unit numbers of the codes.",
            )
        )
    return problems


def _logged_role_problems(coding_log, codes, code_keys, logged, files) -> list[Problem]:
    if "role" not in codes.columns or "role" not in coding_log.columns:
        return []
    roles = codes["role"].astype(object).groupby(code_keys.to_numpy(), sort=False).first()
    problems = []
    for row_key, role in roles.dropna().items():
        row = logged.get(row_key)
        if row is None or pd.isna(coding_log.at[row, "role"]):
            continue
        if str(coding_log.at[row, "role"]) != str(role):
            problems.append(
                Problem(
                    files["coding_log"],
                    row,
                    "role",
                    str(coding_log.at[row, "role"]),
                    f"coder {row_key[3]} is {role} coder of this session in {files['codes']}",
                    "Give the coder the same role in both files.",
                )
            )
    return problems


def check_analysis_coders(
    codes: pd.DataFrame,
    file: str = "codes",
    rule: str | list[str] = "primary",
    config_file: str = "config/config.yaml",
) -> list[Problem]:
    """Check that every coded session has one analysis coder.

    Parameters
    ----------
    codes : pandas.DataFrame
        Typed code table with the boolean column ``analysis_coder`` added by
        :func:`resistance_outcomes.codebook.select_analysis_codes`, indexed by
        spreadsheet row.
    file : str
        The file name for the messages.
    rule : "primary" or list of str
        The ``coding.analysis_coder`` rule the column was made with.
    config_file : str
        The run's configuration file, named in the advice.

    Returns
    -------
    list of Problem
        One per session with two or more primary coders; one per coder listed with both
        roles in a session; and, under a list of coder ids, one per session coded only by
        coders not in the list. (Under ``primary`` with a ``role`` column, a session with
        only reliability rows is one where the primary coder found nothing to code: its
        construct counts are 0.)

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.validate import check_analysis_coders
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": 1,
    ...                       "coder": ["A", "B"], "analysis_coder": [True, True]},
    ...                      index=[2, 3])
    >>> [p.message for p in check_analysis_coders(codes)]
    ['session 1 of client 1 has 2 primary coders (A, B)']
    """
    session_key = ["study", "client", "session"]
    frame = codes.dropna(subset=[*session_key, "coder"])
    flagged = frame[frame["analysis_coder"]]
    first_rows = frame.reset_index().groupby(session_key, sort=False, observed=True).first()
    counts = flagged.groupby(session_key, observed=True)["coder"].nunique()
    counts = counts.reindex(first_rows.index, fill_value=0)
    suspect = (counts > 1) | ((counts == 0) & (rule != "primary"))
    problems = []
    for key, count in counts[suspect].items():
        _, client, session = key
        row, coder = int(first_rows.loc[key].iloc[0]), first_rows.loc[key, "coder"]
        if rule != "primary" and count == 0:
            listed = ", ".join(frame.loc[_rows_of(frame, key), "coder"].unique())
            problems.append(
                Problem(
                    file,
                    row,
                    "coder",
                    coder,
                    f"session {session} of client {client} is coded only by coders not listed "
                    f"({listed})",
                    f"Add the session's coder to coding: analysis_coder in {config_file}.",
                )
            )
        elif count > 1:
            chosen = ", ".join(flagged.loc[_rows_of(flagged, key), "coder"].unique())
            problems.append(
                Problem(
                    file,
                    row,
                    "coder",
                    coder,
                    f"session {session} of client {client} has {count} primary coders ({chosen})",
                    "Mark exactly one coder of each session as primary; the others are "
                    "reliability coders.",
                )
            )
    if "role" in frame.columns:
        problems += _mixed_role_problems(frame, file)
    return sorted(problems, key=lambda problem: problem.row)


def _rows_of(frame: pd.DataFrame, key: tuple) -> pd.Series:
    study, client, session = key
    return (frame["study"] == study) & (frame["client"] == client) & (frame["session"] == session)


def _mixed_role_problems(frame: pd.DataFrame, file: str) -> list[Problem]:
    key = ["study", "client", "session", "coder"]
    roles = frame.groupby(key, sort=False, observed=True)["role"].nunique()
    mixed = frame.reset_index().groupby(key, sort=False, observed=True).first()[roles > 1]
    return [
        Problem(
            file,
            int(first.iloc[0]),
            "role",
            str(first["role"]),
            f"coder {coder} is both primary and reliability coder in this session",
            "Give each coder one role per session.",
        )
        for (*_, coder), first in mixed.iterrows()
    ]


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ------------------------------------------------------------------- identifiers

_IDENTIFIER_NAMES = {
    "name": "a name",
    "names": "names",
    "firstname": "a name",
    "lastname": "a name",
    "surname": "a name",
    "forename": "a name",
    "fullname": "a name",
    "email": "an e-mail address",
    "mail": "an e-mail address",
    "phone": "a phone number",
    "telephone": "a phone number",
    "mobile": "a phone number",
    "tel": "a phone number",
    "dob": "a date of birth",
    "birthdate": "a date of birth",
    "birthday": "a date of birth",
    "address": "an address",
    "street": "an address",
    "postcode": "a postcode",
    "zip": "a postcode",
    "zipcode": "a postcode",
    "ssn": "a social security number",
    "nhs": "an NHS number",
    "mrn": "a medical record number",
}
_IDENTIFIER_PHRASES = {
    ("date", "of", "birth"): "a date of birth",
    ("birth", "date"): "a date of birth",
    ("e", "mail"): "an e-mail address",
    ("post", "code"): "a postcode",
    ("zip", "code"): "a postcode",
    ("social", "security"): "a social security number",
    ("medical", "record"): "a medical record number",
}
_FREE_TEXT_NAMES = {
    "transcript",
    "transcripts",
    "note",
    "notes",
    "text",
    "comment",
    "comments",
    "remark",
    "remarks",
}
_REFERENCE_WORDS = {
    "id",
    "no",
    "nr",
    "num",
    "number",
    "code",
    "type",
    "count",
    "length",
    "len",
    "n",
}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)*\.[A-Za-z]{2,}")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
_DMY_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})$")
_PHONE = re.compile(r"^\+?[\d\s().-]+$")
FREE_TEXT_WORDS = 10


def find_identifier_columns(
    df: pd.DataFrame, file: str, config_file: str = "config/config.yaml"
) -> list[Problem]:
    """Find columns that look like direct identifiers, by name or by content.

    By name: words such as name, first/last name, email, phone, dob / date of birth /
    birthdate, address, postcode / zip, ssn, nhs, mrn; and free-text names (transcript,
    notes, text, comment) unless the name says it is a reference to one (``transcript_id``,
    ``note_type``). By content: any e-mail address, phone number (10-15 digits written with
    ``+`` or separators) or full calendar date (day, month and year: dates of birth and
    visit dates are identifiers under the HIPAA Safe Harbor rule), or any cell with
    ``FREE_TEXT_WORDS`` (10) or more words.

    Parameters
    ----------
    df : pandas.DataFrame
        A table as read (text values), indexed by spreadsheet row.
    file : str
        The file name for the messages.
    config_file : str
        The run's configuration file, named in the advice.

    Returns
    -------
    list of Problem
        One per suspicious column; the value is never shown.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.validate import find_identifier_columns
    >>> df = pd.DataFrame({"client_id": ["001"], "contact": ["ann@example.org"]}, index=[2])
    >>> [(p.column, p.row, p.message) for p in find_identifier_columns(df, "c.csv")]
    [('contact', 2, 'holds an e-mail address')]
    """
    problems = []
    for column in df.columns:
        reason = _identifier_by_name(str(column))
        row = None
        if reason is None:
            row, reason = _identifier_by_content(df[column])
        if reason is not None:
            problems.append(
                Problem(
                    file,
                    row,
                    column,
                    None,
                    reason,
                    "Remove the column from the file given to the pipeline, or set "
                    f"`validation: identifiers: drop` in {config_file} to leave it out.",
                )
            )
    return problems


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word]


def _identifier_by_name(name: str) -> str | None:
    words = _name_words(name)
    for word in words:
        if word in _IDENTIFIER_NAMES:
            return f"the column name suggests {_IDENTIFIER_NAMES[word]}"
    for phrase, what in _IDENTIFIER_PHRASES.items():
        if any(tuple(words[i : i + len(phrase)]) == phrase for i in range(len(words))):
            return f"the column name suggests {what}"
    if set(words) & _FREE_TEXT_NAMES and not set(words) & _REFERENCE_WORDS:
        return "the column name suggests free text"
    return None


def _identifier_by_content(values: pd.Series) -> tuple[int | None, str | None]:
    tests = [
        (_is_email, "holds an e-mail address"),
        (_is_full_date, "holds full dates (day, month, year)"),
        (_is_phone, "holds a phone number"),
        (_is_free_text, f"holds free text ({FREE_TEXT_WORDS} or more words in a cell)"),
    ]
    text = values.dropna().astype(str).str.strip().drop_duplicates()  # first row of each
    for test, reason in tests:
        for row, value in text.items():
            if test(value):
                return row, reason
    return None, None


def _is_email(value: str) -> bool:
    return _EMAIL.search(value) is not None


def _is_full_date(value: str) -> bool:
    iso = _ISO_DATE.match(value)
    if iso:
        return _valid_date(int(iso[1]), int(iso[2]), int(iso[3]))
    dmy = _DMY_DATE.match(value)
    if dmy:
        first, second, year = int(dmy[1]), int(dmy[2]), int(dmy[3])
        return _valid_date(year, second, first) or _valid_date(year, first, second)
    return False


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year if year > 99 else 2000 + year, month, day)
    except ValueError:
        return False
    return True


def _is_phone(value: str) -> bool:
    if not _PHONE.match(value) or _is_full_date(value):
        return False
    if re.fullmatch(r"-?\d+(\.\d+)?", value):  # a plain number, such as a rating mean
        return False
    digits = sum(character.isdigit() for character in value)
    written_as_phone = value.startswith("+") or any(sep in value for sep in " ()-.")
    return 10 <= digits <= 15 and written_as_phone


def _is_free_text(value: str) -> bool:
    return len(value.split()) >= FREE_TEXT_WORDS
