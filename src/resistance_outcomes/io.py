"""Reading and writing tables and YAML configuration files.

Input tables are read with every column as text, so that validation sees the values
exactly as they were typed (``"007"`` keeps its leading zeros, ``"3,5"`` can be reported
as a bad number). The index of a table read by :func:`read_table` is the row number a
spreadsheet shows for that record: the header is row 1, the first data row is row 2. SPSS
(``.sav``, ``.zsav``) and Stata (``.dta``) files are read with pyreadstat; their rows are
numbered by case, as SPSS's Data View and Stata's browser show them (first case = 1).

Only empty cells are missing when a table is read. Missing-value codes (``NA``, ``-99``,
...) are applied afterwards, column by column, by :func:`apply_missing_values`, which
counts the cells each code made missing, so that no code is applied without saying so.
SPSS user-defined missing values and Stata extended missing values (``.a`` ... ``.z``)
are declared by the file itself: :func:`read_input` makes them missing and counts them.

Input files are only ever opened for reading. Output tables are written atomically: to a
temporary file in the target directory, which is then renamed over the target.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from resistance_outcomes.config import ConfigError

__all__ = [
    "ConfigError",
    "DEFAULT_MISSING_VALUES",
    "InputFileError",
    "InputTable",
    "apply_missing_values",
    "match_missing_values",
    "read_canonical",
    "read_input",
    "read_table",
    "read_yaml",
    "write_table",
]

#: Missing-value codes used when the configuration declares none (``missing_values:``):
#: ``NA`` is what R writes, ``#N/A`` what Excel shows, ``.`` what SAS and Stata write.
#: Matched ignoring case and surrounding spaces; every use is counted in the report.
DEFAULT_MISSING_VALUES = ("NA", "N/A", "#N/A", "NaN", "NULL", ".")

_TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_SPSS_SUFFIXES = {".sav", ".zsav"}
_STATA_SUFFIXES = {".dta"}
_WRITE_SUFFIXES = {".csv", ".parquet"}


class InputFileError(Exception):
    """An input file cannot be read as a table: missing, of an unknown type, unreadable,
    empty, or with a header that does not name every column once.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    reason : str
        What is wrong and what to do, without the path.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass
class InputTable:
    """A table as read from its file, with what the file itself declared.

    Attributes
    ----------
    frame : pandas.DataFrame
        Every value a string or missing, as :func:`read_table` returns it.
    value_labels : dict
        SPSS and Stata only: column -> {value as text: label}, every value label the file
        gives (:func:`read_table` does not apply them; the caller chooses the columns).
    missing : dict
        SPSS and Stata only: column -> {declared missing value: cells made missing}, for
        the file's user-defined missing values (SPSS) and extended missing values (Stata).
    kind : str
        ``"text"``, ``"Excel"``, ``"Parquet"``, ``"SPSS"`` or ``"Stata"``.
    """

    frame: pd.DataFrame
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    missing: dict[str, dict[str, int]] = field(default_factory=dict)
    kind: str = "text"


def read_table(path: str | os.PathLike, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a CSV, TSV, Excel, Parquet, SPSS or Stata file with every column as text.

    Parameters
    ----------
    path : str or path-like
        The file. The type is taken from the extension: ``.csv`` (comma separated),
        ``.tsv`` or ``.txt`` (tab separated), ``.xlsx``/``.xlsm``/``.xls`` (Excel; ``.xls``
        needs the optional ``xlrd`` package), ``.parquet``/``.pq``, ``.sav``/``.zsav``
        (SPSS) and ``.dta`` (Stata). Text files are read as UTF-8 (a byte-order mark, as
        Excel writes, is allowed).
    sheet : str or int, optional
        Excel only: the sheet name or its 0-based position. Default: the first sheet.

    Returns
    -------
    pandas.DataFrame
        One column per header cell (variable), every value a string or missing. Empty
        cells (after stripping spaces) are missing; every other cell is kept as written,
        surrounding spaces and missing-value codes such as ``NA`` included (see
        :func:`apply_missing_values`). Rows whose cells are all empty are left out. The
        index, named ``row``, is the spreadsheet row number (header = 1); for SPSS and
        Stata files, the case number (first case = 1). Numbers of SPSS and Stata files
        are written without a decimal part when whole (``3``, ``12.5``), SPSS
        user-missing and Stata extended missing values are missing, and value labels are
        not applied (see :func:`read_input`).

    Raises
    ------
    InputFileError
        The file does not exist, has an unknown extension, cannot be parsed, has no
        header or no data rows, or its header has an empty or repeated column name.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from resistance_outcomes.io import read_table
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "clients.csv"
    >>> _ = path.write_text("client_id,severity\\n007,NA\\n008,\\n", encoding="utf-8")
    >>> read_table(path).to_dict("index")  # row 2: the first data row
    {2: {'client_id': '007', 'severity': 'NA'}, 3: {'client_id': '008', 'severity': nan}}
    """
    return read_input(path, sheet).frame


def read_input(path: str | os.PathLike, sheet: str | int | None = None) -> InputTable:
    """Read a table like :func:`read_table`, keeping what an SPSS or Stata file declares.

    SPSS files are read with their user-defined missing values (single values and
    ranges) and Stata files with their extended missing values (``.a`` ... ``.z``): the
    cells holding them are made missing and counted per column and value. Value labels
    are returned beside the table, keyed by the value as the table writes it.

    Parameters
    ----------
    path : str or path-like
        The file (see :func:`read_table`).
    sheet : str or int, optional
        Excel only: the sheet.

    Returns
    -------
    InputTable

    Raises
    ------
    InputFileError
        As :func:`read_table`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import pandas as pd, pyreadstat
    >>> from resistance_outcomes.io import read_input
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "clients.sav"
    >>> frame = pd.DataFrame({"client": ["1", "2", "3"], "treatment": [1.0, 2.0, 1.0],
    ...                       "severity": [12.5, -99.0, 14.0]})
    >>> pyreadstat.write_sav(frame, path, variable_value_labels={
    ...     "treatment": {1: "CBT", 2: "PDT"}}, missing_ranges={"severity": [-99]})
    >>> table = read_input(path)
    >>> table.frame["severity"].tolist(), table.missing
    (['12.5', nan, '14'], {'severity': {'-99': 1}})
    >>> table.value_labels
    {'treatment': {'1': 'CBT', '2': 'PDT'}}
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(
            path,
            "file not found (relative paths are read from the folder the workflow runs in).",
        )
    suffix = path.suffix.lower()
    if sheet is not None and suffix not in _EXCEL_SUFFIXES:
        raise InputFileError(path, f"a sheet ({sheet!r}) was given for a file that is not Excel.")
    if suffix in _TEXT_SEPARATORS:
        return InputTable(_grid_to_table(_read_text_grid(path, _TEXT_SEPARATORS[suffix]), path))
    if suffix in _EXCEL_SUFFIXES:
        return InputTable(_grid_to_table(_read_excel_grid(path, sheet), path), kind="Excel")
    if suffix in _PARQUET_SUFFIXES:
        return InputTable(_read_parquet(path), kind="Parquet")
    if suffix in _SPSS_SUFFIXES | _STATA_SUFFIXES:
        return _read_statistical(path, "SPSS" if suffix in _SPSS_SUFFIXES else "Stata")
    raise InputFileError(
        path,
        f"unknown file type {suffix!r}. Use .csv, .tsv, .txt (tab separated), .xlsx, .xls, "
        ".parquet, .sav or .zsav (SPSS) or .dta (Stata).",
    )


def _read_text_grid(path: Path, separator: str) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path,
            sep=separator,
            header=None,
            dtype=str,
            encoding="utf-8-sig",
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError as error:
        raise InputFileError(path, "the file is empty.") from error
    except pd.errors.ParserError as error:
        raise InputFileError(
            path,
            f"cannot be read as a {'comma' if separator == ',' else 'tab'}-separated "
            f"table ({error}). Check that every row has as many cells as the header and that "
            "quotes are closed.",
        ) from error
    except UnicodeDecodeError as error:
        raise InputFileError(
            path, f"not UTF-8 text (byte {error.start}). Save it again as 'CSV UTF-8'."
        ) from error


def _read_excel_grid(path: Path, sheet: str | int | None) -> pd.DataFrame:
    try:
        return pd.read_excel(
            path,
            sheet_name=0 if sheet is None else sheet,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except ImportError as error:
        raise InputFileError(
            path, "reading .xls files needs the 'xlrd' package; save the file as .xlsx."
        ) from error
    except (ValueError, KeyError) as error:
        raise InputFileError(path, f"sheet {sheet!r} cannot be read ({error}).") from error
    except Exception as error:  # openpyxl and zipfile raise many kinds for corrupt files
        raise InputFileError(path, f"cannot be read as an Excel workbook ({error}).") from error


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputFileError(path, f"cannot be read as a Parquet file ({error}).") from error
    names = table.column_names
    _check_header(names, path)
    frame = pd.DataFrame(
        {
            name: [None if value is None else str(value) for value in column.to_pylist()]
            for name, column in zip(names, table.columns, strict=True)
        },
        dtype=str,
    )
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="row")
    return _finish(frame, path)


def _read_statistical(path: Path, kind: str) -> InputTable:
    """An SPSS or Stata file: values as text, declared missing values applied and counted."""
    import pyreadstat

    reader = pyreadstat.read_sav if kind == "SPSS" else pyreadstat.read_dta
    try:
        data, meta = reader(str(path), user_missing=True, disable_datetime_conversion=True)
    except Exception as error:  # pyreadstat raises ReadstatError, PyreadstatError, OSError
        article = "an" if kind == "SPSS" else "a"
        raise InputFileError(path, f"cannot be read as {article} {kind} file ({error}).") from error
    names = [str(name) for name in data.columns]
    _check_header(names, path)
    string_columns = {
        name for name, kind_ in (meta.readstat_variable_types or {}).items() if kind_ == "string"
    }
    columns, missing = {}, {}
    for name in data.columns:
        values = data[name]
        is_missing, counts = _declared_missing(values, meta, str(name), name in string_columns)
        if counts:
            missing[str(name)] = counts
        columns[str(name)] = [
            None if flag else _statistical_text(value)
            for value, flag in zip(values.tolist(), is_missing, strict=True)
        ]
    frame = pd.DataFrame(columns, dtype=str)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    labels = {
        str(name): {_statistical_text(value): str(label) for value, label in mapping.items()}
        for name, mapping in (meta.variable_value_labels or {}).items()
        if mapping
    }
    return InputTable(_finish(frame, path), labels, missing, kind)


def _declared_missing(values: pd.Series, meta, name: str, is_string: bool):
    """Which cells hold a missing value the file declares, and how many per value."""
    flags = [False] * len(values)
    counts: dict[str, int] = {}
    cells = values.tolist()
    for spec in (getattr(meta, "missing_ranges", None) or {}).get(name, []):
        low, high = spec["lo"], spec["hi"]
        same = low == high
        label = (
            _statistical_text(low)
            if same
            else (f"{_statistical_text(low)} to {_statistical_text(high)}")
        )
        for position, value in enumerate(cells):
            if flags[position] or value is None or _is_nan(value):
                continue
            if is_string or isinstance(value, str):
                hit = same and str(value).strip() == str(low).strip()
            else:
                hit = low <= value <= high
            if hit:
                flags[position] = True
                counts[label] = counts.get(label, 0) + 1
    if not is_string:  # Stata extended missing values arrive as their letter
        for position, value in enumerate(cells):
            if not flags[position] and isinstance(value, str) and re.fullmatch("[a-z]", value):
                flags[position] = True
                counts[f".{value}"] = counts.get(f".{value}", 0) + 1
    return flags, counts


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _statistical_text(value) -> str | None:
    """A cell of an SPSS or Stata file as text: whole numbers without ``.0``."""
    if value is None or _is_nan(value):
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


def _grid_to_table(grid: pd.DataFrame, path: Path) -> pd.DataFrame:
    if grid.empty or grid.iloc[0].isna().all():
        raise InputFileError(path, "no header row (the first row is empty).")
    header = [None if pd.isna(name) else str(name).strip() for name in grid.iloc[0]]
    while header and header[-1] is None and grid.iloc[1:, len(header) - 1].isna().all():
        header.pop()  # trailing empty columns, as spreadsheets sometimes export
    _check_header(header, path)
    frame = grid.iloc[1:, : len(header)].copy()
    frame.columns = header
    frame.index = pd.RangeIndex(2, len(grid) + 1, name="row")
    return _finish(frame, path)


def _check_header(header: list, path: Path) -> None:
    empty = [position + 1 for position, name in enumerate(header) if not name]
    if empty:
        raise InputFileError(
            path, f"column {empty[0]} of the header has no name. Give every column a name."
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise InputFileError(
                path,
                f"the column name {name!r} appears twice in the header (columns "
                f"{seen[name]} and {position}). Rename one of them.",
            )
        seen[name] = position


def _finish(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame = frame.astype(str).where(frame.notna())  # keep missing cells missing
    frame = frame.mask(frame.apply(lambda column: column.str.strip() == ""))
    frame = frame.dropna(how="all")
    if frame.empty:
        raise InputFileError(path, "the file has a header but no data rows.")
    return frame


# ------------------------------------------------------------------ missing values


def _token_key(value) -> str:
    return " ".join(str(value).casefold().split())


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def match_missing_values(values: pd.Series, codes: Iterable) -> pd.Series:
    """The missing-value code each cell holds, or missing where it holds none.

    A cell matches a code when both are the same text, ignoring case and surrounding
    spaces (``na`` matches ``NA``), or when both are numbers of equal value (``-99.0``
    matches ``-99``). The empty code ``""`` matches nothing here: empty cells are already
    missing when a table is read.

    Parameters
    ----------
    values : pandas.Series
        Text cells, as :func:`read_table` returns them.
    codes : iterable of str or number
        The declared codes, in order; a cell matching two takes the first.

    Returns
    -------
    pandas.Series
        Same index; the code (as declared) for matching cells, missing elsewhere.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.io import match_missing_values
    >>> cells = pd.Series(["12", " na", "-99.0", None, "-9"])
    >>> match_missing_values(cells, ["NA", -99]).tolist()
    [None, 'NA', '-99', None, None]
    """
    by_text: dict[str, str] = {}
    by_number: dict[float, str] = {}
    for code in codes:
        text = str(code).strip()
        if not text:
            continue
        by_text.setdefault(_token_key(text), text)
        number = _as_number(text)
        if number is not None:
            by_number.setdefault(number, text)

    def code_of(cell):
        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
            return None
        found = by_text.get(_token_key(cell))
        if found is None and by_number:
            number = _as_number(str(cell).strip())
            found = None if number is None else by_number.get(number)
        return found

    if not by_text:
        return pd.Series(None, index=values.index, dtype=object)
    return pd.Series([code_of(cell) for cell in values.tolist()], index=values.index, dtype=object)


def apply_missing_values(
    frame: pd.DataFrame, codes: Mapping[str, Iterable]
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """Make the cells holding a declared missing-value code missing, column by column.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table of text cells (:func:`read_table`).
    codes : mapping
        Column -> the codes declared for it (see :func:`match_missing_values`); columns
        not listed are left as they are.

    Returns
    -------
    frame : pandas.DataFrame
        A copy with the matching cells missing.
    counts : dict
        Column -> {code: cells made missing}, only for codes that matched a cell.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.io import apply_missing_values
    >>> table = pd.DataFrame({"minutes": ["50", "-99", "NA", "45"], "id": ["NA"] * 4})
    >>> cleaned, counts = apply_missing_values(table, {"minutes": ["NA", "-99"]})
    >>> cleaned["minutes"].tolist(), cleaned["id"].tolist()[0], counts
    (['50', nan, nan, '45'], 'NA', {'minutes': {'-99': 1, 'NA': 1}})
    """
    frame = frame.copy()
    counts: dict[str, dict[str, int]] = {}
    for column, declared in codes.items():
        if column not in frame.columns:
            continue
        matched = match_missing_values(frame[column], declared)
        if matched.notna().any():
            frame[column] = frame[column].where(matched.isna())
            counts[column] = {
                str(code): int(n) for code, n in sorted(matched.value_counts().items())
            }
    return frame, counts


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically as Parquet or CSV, chosen by the extension.

    The table is written to a temporary file in the same directory, which then replaces
    ``path`` in one step, so a reader never sees a half-written file. Missing directories
    are created. The index is not written. CSV is UTF-8 with "\\n" line ends and floats
    at full precision; this is the package's one CSV writer.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    path : str or path-like
        Target file ending in ``.parquet`` or ``.csv``.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.io import write_table
    >>> write_table(pd.DataFrame({"client": ["001"]}), "results/clients.parquet")  # doctest: +SKIP
    PosixPath('results/clients.parquet')
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITE_SUFFIXES:
        raise ValueError(f"{path}: can only write .parquet or .csv tables, not {suffix!r}.")
    if suffix == ".parquet":
        return write_atomically(path, lambda temporary: df.to_parquet(temporary, index=False))
    return write_atomically(
        path, lambda temporary: df.to_csv(temporary, index=False, lineterminator="\n")
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike, write) -> Path:
    """Call ``write(temporary_path)`` in the target's folder, then rename it to ``path``.

    A failed write leaves neither a partial file nor the temporary one, so no result ever
    looks complete when it is not. The file gets the permissions of a newly created file
    (``0o666`` less the umask), not the temporary file's owner-only ones.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> _ = write_atomically(target, lambda tmp: pathlib.Path(tmp).write_text("ok"))
    >>> target.read_text()
    'ok'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text with ``\\n`` line endings atomically (see :func:`write_atomically`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "note.md"
    >>> write_text(target, "# Note\\n").read_text()
    '# Note\\n'
    """

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    return write_atomically(path, write)


def read_canonical(path: str | os.PathLike) -> pd.DataFrame:
    """Read a canonical table written by :func:`write_table` as Parquet, types included.

    Parameters
    ----------
    path : str or path-like
        A ``.parquet`` file.

    Returns
    -------
    pandas.DataFrame
        The table with the column types it was written with (identifiers as strings,
        counts as nullable integers, categories as categories).

    Examples
    --------
    >>> from resistance_outcomes.io import read_canonical
    >>> sessions = read_canonical("results/data/sessions.parquet")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() not in _PARQUET_SUFFIXES:
        raise InputFileError(
            path,
            "canonical tables are stored as Parquet, which keeps column types; "
            "use read_table for other files.",
        )
    if not path.is_file():
        raise InputFileError(path, "file not found. Run the ingest step first.")
    return pd.read_parquet(path)


def read_yaml(path: str | os.PathLike, what: str = "configuration file") -> dict:
    """Read a YAML file whose top level is a mapping.

    Parameters
    ----------
    path : str or path-like
        The file.
    what : str
        What the file is, for error messages (e.g. ``"framework map"``).

    Returns
    -------
    dict

    Raises
    ------
    resistance_outcomes.config.ConfigError
        The file is missing, is not valid YAML, or its top level is not a mapping.

    Examples
    --------
    >>> from resistance_outcomes.io import read_yaml
    >>> read_yaml("config/frameworks.yaml", "framework map")["unmapped"]  # doctest: +SKIP
    'error'
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found.")
    try:
        with path.open(encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: the {what} is not valid YAML ({error}).") from error
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: the {what} must be a YAML mapping (key: value lines).")
    return content
