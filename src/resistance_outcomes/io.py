"""Reading and writing tables and YAML configuration files.

Input tables are read with every column as text, so that validation sees the values
exactly as they were typed (``"007"`` keeps its leading zeros, ``"3,5"`` can be reported
as a bad number). The index of a table read by :func:`read_table` is the row number a
spreadsheet shows for that record: the header is row 1, the first data row is row 2.

Input files are only ever opened for reading. Output tables are written atomically: to a
temporary file in the target directory, which is then renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from resistance_outcomes.config import ConfigError

__all__ = [
    "ConfigError",
    "InputFileError",
    "MISSING_VALUE_TOKENS",
    "read_canonical",
    "read_table",
    "read_yaml",
    "write_table",
]

#: Cell contents read as an empty (missing) value, after stripping surrounding spaces.
#: ``NA`` is what R writes, ``#N/A`` what Excel shows, ``.`` what SAS and Stata write.
MISSING_VALUE_TOKENS = frozenset(
    {"", "NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null", "#N/A", "."}
)

_TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
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


def read_table(path: str | os.PathLike, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a CSV, TSV, Excel or Parquet file with every column as text.

    Parameters
    ----------
    path : str or path-like
        The file. The type is taken from the extension: ``.csv`` (comma separated),
        ``.tsv`` or ``.txt`` (tab separated), ``.xlsx``/``.xlsm``/``.xls`` (Excel; ``.xls``
        needs the optional ``xlrd`` package), ``.parquet``/``.pq``. Text files are read as
        UTF-8 (a byte-order mark, as Excel writes, is allowed).
    sheet : str or int, optional
        Excel only: the sheet name or its 0-based position. Default: the first sheet.

    Returns
    -------
    pandas.DataFrame
        One column per header cell, every value a string or missing. Cells that are empty
        or hold one of :data:`MISSING_VALUE_TOKENS` are missing; other cells are kept as
        written, surrounding spaces included. Rows whose cells are all empty are left
        out. The index, named ``row``, is the spreadsheet row number (header = 1).

    Raises
    ------
    InputFileError
        The file does not exist, has an unknown extension, cannot be parsed, has no
        header or no data rows, or its header has an empty or repeated column name.

    Examples
    --------
    >>> from resistance_outcomes.io import read_table
    >>> clients = read_table("resources/example/clients.csv")  # doctest: +SKIP
    >>> clients.loc[2, "client_id"]  # row 2: the first data row      # doctest: +SKIP
    'C0001'
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(
            path,
            "file not found. Check the path under `data:` in config/config.yaml "
            "(relative paths are read from the workflow directory).",
        )
    suffix = path.suffix.lower()
    if sheet is not None and suffix not in _EXCEL_SUFFIXES:
        raise InputFileError(path, f"a sheet ({sheet!r}) was given for a file that is not Excel.")
    if suffix in _TEXT_SEPARATORS:
        grid = _read_text_grid(path, _TEXT_SEPARATORS[suffix])
    elif suffix in _EXCEL_SUFFIXES:
        grid = _read_excel_grid(path, sheet)
    elif suffix in _PARQUET_SUFFIXES:
        return _read_parquet(path)
    else:
        raise InputFileError(
            path,
            f"unknown file type {suffix!r}. Use .csv, .tsv, .txt (tab separated), "
            ".xlsx, .xls or .parquet.",
        )
    return _grid_to_table(grid, path)


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
    frame = frame.mask(frame.apply(lambda column: column.str.strip().isin(MISSING_VALUE_TOKENS)))
    frame = frame.dropna(how="all")
    if frame.empty:
        raise InputFileError(path, "the file has a header but no data rows.")
    return frame


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically as Parquet or CSV, chosen by the extension.

    The table is written to a temporary file in the same directory, which then replaces
    ``path`` in one step, so a reader never sees a half-written file. Missing directories
    are created. The index is not written.

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
    return write_atomically(path, lambda temporary: df.to_csv(temporary, index=False))


def write_atomically(path: str | os.PathLike, write) -> Path:
    """Call ``write(temporary_path)`` in the target's folder, then rename it to ``path``.

    A failed write leaves neither a partial file nor the temporary one, so no result ever
    looks complete when it is not.

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
