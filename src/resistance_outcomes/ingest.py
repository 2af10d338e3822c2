"""From the raw input files to the validated canonical tables.

:func:`ingest` reads the configured files, refuses (or drops) columns that look like
personal identifiers, renames columns through ``columns:``, fills ``study``, maps end
statuses and treatment labels, converts and checks every table against its schema and
against the others, marks the analysis coder, and makes the sessions' construct columns
from the codes through the codebook. :func:`format_validation_report` writes what was
found as Markdown.

Code tables come in two layouts, both read through ``columns: codes:`` alone:

- *long* (the default): one row per unit x code x coder, the code in the column mapped to
  ``code``;
- *wide*: one row per unit x coder (an utterance-level corpus such as AnnoMI), with one
  or more code columns named under ``code_columns:``; each filled cell becomes a code row
  (value 1). Every row is a coded unit, so the coding log is made from the rows when no
  coding log file is given.

The keys of ``columns: codes:`` besides the canonical column names:

``code_columns``
    List of columns whose cells are codes (wide layout; instead of ``code`` and
    ``value``). Each cell holds a code of the codebook or a no-code token.
``no_code``
    Cell values that mean "no code here" (matched ignoring case and surrounding spaces),
    e.g. ``["n/a", "none"]``; empty cells always do. In the long layout, rows with such a
    code are not code rows (the report counts them).
``unit_numbering``
    ``as_is`` (default): the unit column holds the unit numbers 1, 2, .... ``order``: it
    holds any numeric order (an utterance id from 0, a time in seconds) and units are
    numbered 1, 2, ... in that order within each session.

The ``session`` column of the codes and of the coding log may be left unmapped: every
client's (transcript's) coding is then session 1. A run may have codes (and a coding log)
without clients and sessions files (*codes-only*, for reliability): the sessions are then
the coded sessions, all attended, and the clients those coded.

Missing values: empty cells are always missing; the codes declared under
``missing_values:`` (default :data:`resistance_outcomes.io.DEFAULT_MISSING_VALUES`) are
made missing before any value is typed, and the report counts, per file and column, the
cells each code made missing. SPSS user-missing and Stata extended missing values are
declared by the file and counted the same way. A number that looks like an undeclared
code (``-99``, ``999`` far outside the range of the column's other values) is a problem
(``validation: undeclared_codes: keep`` accepts such values as real).

SPSS and Stata value labels are applied to the columns matched by a map or a list
(``treatment_label``, ``end_status``, ``role``, ``code``, the code columns of a wide
table, ``site``) and to yes/no columns whose labels are yes/no words; the report names
the labels used. Other columns keep their values (a number column stays numbers).

In ``strict`` mode any problem raises :class:`~resistance_outcomes.validate.ValidationFailed`
with every problem found. In ``lenient`` mode what is bad is set aside in a quarantine table
with its reason and what was done, and the rest goes on:

- a bad value in a column of the clients or sessions table that is neither a key nor
  required (minutes, ratings, covariates, construct columns) is set to missing ("cell set
  to missing"); the row stays;
- a bad key or required value of a clients or sessions row sets aside the client (its row,
  all its sessions and all its codes), because removing one session would leave a gap in
  the client's schedule; a row without a client id is set aside on its own;
- a bad row of the code table or coding log sets aside the codes and log rows of its
  session (every coder), and the session's construct values become missing: the session
  stays in the schedule, as not coded.

Problems with a whole file or column (unreadable file, missing column, identifier column
under ``refuse``) stop the run in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from resistance_outcomes.codebook import (
    CODER_KEY,
    SESSION_KEY,
    Codebook,
    aggregate_codes,
    composites_from_columns,
    load_codebook,
    select_analysis_codes,
)
from resistance_outcomes.frameworks import (
    FrameworkMap,
    UnmappedLabelError,
    label_key,
    load_framework_map,
    map_frameworks,
)
from resistance_outcomes.io import (
    DEFAULT_MISSING_VALUES,
    ConfigError,
    InputFileError,
    apply_missing_values,
    read_input,
)
from resistance_outcomes.validate import (
    FALSE_WORDS,
    TABLES,
    TRUE_WORDS,
    Problem,
    ValidationFailed,
    check_analysis_coders,
    check_code_values,
    check_coding_log,
    check_references,
    find_identifier_columns,
    find_suspect_missing_codes,
    group_problems,
    load_schemas,
    schema_with_constructs,
    validate_table,
)

__all__ = ["IngestResult", "SCHEMA_DIR", "format_validation_report", "ingest"]

#: The schemas of the canonical tables, ``workflow/schemas`` of this repository.
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
QUARANTINE_COLUMNS = ["file", "row", "column", "value", "problem", "action"]
CELL_SET_TO_MISSING = "cell set to missing"
END_STATUSES = ("completed", "dropout", "referred", "ongoing")
CLIENT_KEY = ["study", "client"]
#: Keys of ``columns: codes:`` that describe the code table's layout, not a column.
LAYOUT_KEYS = ("code_columns", "no_code", "unit_numbering")
UNIT_NUMBERINGS = ("as_is", "order")
ROLES = ("primary", "reliability")
#: Columns whose SPSS/Stata value labels are applied: those matched by a map or a list.
LABELLED_COLUMNS = ("treatment_label", "end_status", "role", "code", "site")
#: Tables whose rows hold separate facts, so one bad cell need not set aside the row.
CELL_TABLES = ("clients", "sessions")


@dataclass
class IngestResult:
    """The validated canonical tables and what validation found.

    Attributes
    ----------
    clients, sessions : pandas.DataFrame
        Canonical tables (``docs/data-dictionary.md``); sessions carry the construct
        columns made from the codes, or those supplied in the sessions file.
    codes : pandas.DataFrame
        Canonical code table, every coder, with the boolean ``analysis_coder`` marking the
        rows that made the construct columns (empty with the same columns when no code
        file is configured).
    coding_log : pandas.DataFrame
        Canonical coding log: from its file, or made from the rows of a wide code table;
        empty with the same columns otherwise.
    codes_only : bool
        The run has codes but no clients and sessions files; ``sessions`` are then the
        coded sessions (attended) and ``clients`` the coded clients (``study``,
        ``client``).
    problems : list of Problem
        Problems whose cells or rows were set aside (lenient mode; empty in strict mode).
    quarantine : pandas.DataFrame
        One row per cell set to missing and per row set aside: file, row, column, value,
        problem, action (``cell set to missing``, ``client ... set aside``, ...).
    missing_values : list of dict
        Cells read as missing through a missing-value code: ``file``, ``column``,
        ``code``, ``cells`` and ``source`` (``declared``, ``default``, ``SPSS
        user-missing``, ``Stata extended missing``).
    missing_codes : dict
        The codes in force: ``default`` (list), ``builtin`` (whether those are the
        built-in defaults) and ``per_file`` (table -> column or ``all`` -> list).
    set_aside : dict
        Lenient mode: ``cells`` set to missing, ``cell_rows`` (rows they are in),
        ``clients`` and ``sessions`` (whose codes were) set aside, ``rows`` set aside.
    dropped_identifier_columns : list of Problem
        Columns dropped because they looked like identifiers (``identifiers: drop``).
    unused_columns : dict
        File -> columns of the file that no ``columns:`` entry reads.
    rows_read : dict
        File -> data rows read.
    files : dict
        Table -> file, as configured.
    notes : list of str
        How the input was read where config chose for it (session 1 when the codes have
        no session column, rows without a code, the coding log made from the rows, ...).
    """

    clients: pd.DataFrame
    sessions: pd.DataFrame
    codes: pd.DataFrame
    coding_log: pd.DataFrame = field(default_factory=pd.DataFrame)
    codes_only: bool = False
    problems: list[Problem] = field(default_factory=list)
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    dropped_identifier_columns: list[Problem] = field(default_factory=list)
    unused_columns: dict[str, list[str]] = field(default_factory=dict)
    rows_read: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing_values: list[dict] = field(default_factory=list)
    missing_codes: dict = field(default_factory=dict)
    set_aside: dict = field(default_factory=dict)


@dataclass
class _Table:
    """One input table on its way through ingestion."""

    name: str
    file: str
    frame: pd.DataFrame
    rows: int = 0
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> column in file
    code_columns: dict[str, str] = field(default_factory=dict)  # internal name -> column
    unused: list[str] = field(default_factory=list)
    identifiers: dict[str, str] = field(default_factory=dict)  # column -> why it was left out
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # file column
    declared_missing: dict[str, dict[str, int]] = field(default_factory=dict)  # file column
    kind: str = "text"


def ingest(
    config: dict,
    base_dir: str | Path = ".",
    schema_dir: str | Path | None = None,
    config_file: str | None = None,
):
    """Read, map and validate the configured input files.

    Parameters
    ----------
    config : dict
        The run configuration. Keys used: ``study``; ``data`` (``clients``, ``sessions``
        and optional ``codes`` and ``coding_log``: a path, or ``{path: ..., sheet: ...}``
        for Excel; ``clients`` and ``sessions`` may both be left out when ``codes`` is
        given, for a codes-only run); ``columns`` (per table, ``canonical name: column in
        your file``; only these columns are read; ``columns: codes:`` also takes the
        layout keys ``code_columns``, ``no_code`` and ``unit_numbering``, see the module
        docstring); ``end_status_values`` (canonical status -> raw values,
        matched ignoring case and spaces; default: the canonical names);
        ``coder_role_values`` (``primary``/``reliability`` -> raw role words, the same
        way); ``missing_values`` (missing-value codes, see config/README.md); ``covariates``
        (client columns, each mapped under ``columns: clients``; numeric when every value
        is a number, text otherwise); ``codebook`` and ``frameworks`` (paths);
        ``validation: mode`` (``strict``/``lenient``), ``identifiers``
        (``refuse``/``drop``) and ``undeclared_codes`` (``error``/``keep``); ``coding:
        analysis_coder`` and ``repair_threshold``; ``config_file`` (the file the
        configuration came from, named in messages; the argument wins).
    base_dir : str or path-like
        Folder relative paths in ``config`` are read from (the workflow directory).
    schema_dir : str or path-like, optional
        Folder of the table schemas. Default: :data:`SCHEMA_DIR`.
    config_file : str, optional
        The configuration file of the run (the last ``--configfile``), named in messages.
        Default: ``config["config_file"]``, else ``config/config.yaml``.

    Returns
    -------
    IngestResult

    Raises
    ------
    resistance_outcomes.validate.ValidationFailed
        Strict mode: any problem, all listed. Lenient mode: problems with a whole file or
        column, which no row can be set aside for.
    resistance_outcomes.config.ConfigError
        The codebook, framework map or schemas cannot be read.

    Examples
    --------
    >>> import yaml
    >>> from resistance_outcomes.ingest import ingest, format_validation_report
    >>> config = yaml.safe_load(open("config/config.yaml"))  # doctest: +SKIP
    >>> result = ingest(config, base_dir=".")                # doctest: +SKIP
    >>> print(format_validation_report(result))              # doctest: +SKIP
    """
    base_dir = Path(base_dir)
    config_file = config_file or config.get("config_file") or "config/config.yaml"
    settings = _Settings.from_config(config, str(config_file))
    layout = _CodeLayout.from_config(config)
    codebook = load_codebook(base_dir / config["codebook"])
    fmap = load_framework_map(base_dir / config["frameworks"])
    schemas = load_schemas(schema_dir or SCHEMA_DIR)
    schemas["sessions"] = schema_with_constructs(schemas["sessions"], codebook)
    tables = _read_tables(config, base_dir, settings.config_file)
    files = {name: table.file for name, table in tables.items()}
    refused, dropped = _screen_identifiers(tables, settings.identifiers, settings.config_file)
    problems: list[Problem] = []
    notes: list[str] = []
    missing_counts: list[dict] = []
    for table in tables.values():
        _select_columns(
            table, config, schemas[table.name], settings, layout, problems, notes, codebook
        )
        missing_counts += _apply_missing_codes(table, settings)
        _apply_value_labels(table, schemas[table.name], notes)
    if "codes" in tables:
        _prepare_code_text(tables, layout, notes)
    typed = _validate_tables(tables, schemas, settings, fmap, problems)
    if "codes" in typed:
        _read_code_layout(
            typed, tables["codes"], files, codebook, layout, problems, notes, settings.config_file
        )
    if "sessions" in typed:  # composites from their parts' columns, checked like the rest
        typed["sessions"], formed = composites_from_columns(typed["sessions"], codebook)
        notes += formed
    problems += _cross_checks(typed, codebook, files)
    if "codes" in typed and "coding_log" in typed:
        typed["codes"] = _roles_from_log(typed["codes"], typed["coding_log"], notes)
    if "codes" in typed and set(CODER_KEY) <= set(typed["codes"].columns):
        typed["codes"] = select_analysis_codes(typed["codes"], settings.analysis_coder)
        problems += check_analysis_coders(
            typed["codes"], files["codes"], settings.analysis_coder, settings.config_file
        )
    canonical = _one_per_cell(problems, files)
    problems = _with_file_column_names(canonical, tables)
    if refused or any(p.row is None for p in problems) or (problems and settings.strict):
        raise ValidationFailed(refused + problems)
    typed, quarantine, uncoded = _set_aside(typed, canonical, files, schemas, problems)
    codes_only = "clients" not in tables
    if codes_only:
        typed["clients"], typed["sessions"] = _coded_clients_and_sessions(typed)
    elif "minutes" in typed["sessions"].columns:
        notes += _minutes_note(typed["sessions"], files["sessions"])
    rows_read = {table.file: table.rows for table in tables.values()}
    if "coding_log" in typed and "coding_log" not in tables:
        rows_read[files["coding_log"]] = len(typed["coding_log"])
    sessions = _sessions_with_constructs(typed, codebook, settings, uncoded)
    return IngestResult(
        clients=typed["clients"].reset_index(drop=True),
        sessions=sessions.reset_index(drop=True),
        codes=typed.get("codes", _empty_table(schemas["codes"])).reset_index(drop=True),
        coding_log=typed.get("coding_log", _empty_table(schemas["coding_log"])).reset_index(
            drop=True
        ),
        codes_only=codes_only,
        problems=problems,
        quarantine=quarantine,
        dropped_identifier_columns=dropped,
        unused_columns={table.file: table.unused for table in tables.values() if table.unused},
        rows_read=rows_read,
        files=files,
        notes=notes,
        missing_values=missing_counts,
        missing_codes=settings.missing_values.describe(),
        set_aside=_set_aside_counts(quarantine),
    )


def _set_aside_counts(quarantine: pd.DataFrame) -> dict:
    """What lenient mode set aside, counted from the quarantine table."""
    if "action" not in quarantine.columns:
        rows = quarantine.drop_duplicates(["file", "row"])
        return {"cells": 0, "cell_rows": 0, "clients": 0, "sessions": 0, "rows": len(rows)}
    action = quarantine["action"].astype(str)
    cells = quarantine[action == CELL_SET_TO_MISSING]
    removed = quarantine[action != CELL_SET_TO_MISSING].drop_duplicates(["file", "row"])
    return {
        "cells": len(cells),
        "cell_rows": len(cells.drop_duplicates(["file", "row"])),
        "clients": int(action.str.match(r"^client .* set aside$").sum()),
        "sessions": int(action.str.match(r"^codes of client .* set aside$").sum()),
        "rows": len(removed),
    }


def _minutes_note(sessions: pd.DataFrame, file: str) -> list[str]:
    """Attended sessions without minutes are valid (minutes are optional): say how many."""
    attended = sessions["attended"].eq(True).fillna(False).astype(bool)
    without = int((attended & sessions["minutes"].isna()).sum())
    if not without:
        return []
    return [
        f"{file}: {_count(without, 'attended session')} without minutes, kept; models with a "
        "minutes offset leave them out (counted in each model's notes)."
    ]


def _cross_checks(typed: dict, codebook: Codebook, files: dict) -> list[Problem]:
    """Checks across tables; a codes-only run has no sessions to check references against."""
    if "clients" in typed:
        return check_references(
            typed["clients"],
            typed["sessions"],
            typed.get("codes"),
            codebook,
            files,
            typed.get("coding_log"),
        )
    problems = check_code_values(typed["codes"], codebook, files["codes"])
    if "coding_log" in typed:
        problems += check_coding_log(typed["coding_log"], typed["codes"], files)
    return problems


@dataclass(frozen=True)
class _CodeLayout:
    """The layout keys of ``columns: codes:`` (see the module docstring)."""

    code_columns: tuple[str, ...] = ()
    no_code: frozenset[str] = frozenset()
    unit_numbering: str = "as_is"

    @classmethod
    def from_config(cls, config: dict) -> _CodeLayout:
        mapping = ((config.get("columns") or {}).get("codes")) or {}
        where = "config key columns.codes"
        columns = mapping.get("code_columns") or []
        tokens = mapping.get("no_code") or []
        numbering = mapping.get("unit_numbering", "as_is")
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise ConfigError(f"{where}.code_columns must be a list of column names.")
        if isinstance(tokens, str) or not all(isinstance(t, str | int) for t in tokens):
            raise ConfigError(f"{where}.no_code must be a list of values, e.g. [n/a, none].")
        if numbering not in UNIT_NUMBERINGS:
            raise ConfigError(
                f"{where}.unit_numbering must be one of {', '.join(UNIT_NUMBERINGS)} "
                f"(got {numbering!r})."
            )
        if columns and ({"code", "value"} & set(mapping)):
            raise ConfigError(
                f"{where}: code_columns (one code column per kind, wide layout) replaces "
                "the code and value columns (long layout); map one or the other."
            )
        return cls(tuple(columns), frozenset(label_key(t) for t in tokens), numbering)


@dataclass(frozen=True)
class _Settings:
    study: str | None
    strict: bool
    identifiers: str
    analysis_coder: str | list[str]
    repair_threshold: float
    end_status_values: dict[str, str]
    covariates: tuple[str, ...]
    config_file: str = "config/config.yaml"  # named in messages
    role_values: dict[str, str] = field(default_factory=dict)
    missing_values: _MissingValues | None = None
    undeclared_codes: str = "error"
    codebook_file: str = "config/codebook.yaml"

    @classmethod
    def from_config(cls, config: dict, config_file: str = "config/config.yaml") -> _Settings:
        validation = config.get("validation") or {}
        coding = config.get("coding") or {}
        mode = validation.get("mode", "strict")
        identifiers = validation.get("identifiers", "refuse")
        undeclared = validation.get("undeclared_codes", "error")
        if (
            mode not in ("strict", "lenient")
            or identifiers not in ("refuse", "drop")
            or undeclared not in ("error", "keep")
        ):
            raise ConfigError(
                f"{config_file}: validation: mode must be strict or lenient, identifiers "
                "refuse or drop and undeclared_codes error or keep (got "
                f"{mode!r}, {identifiers!r} and {undeclared!r})."
            )
        return cls(
            study=None if config.get("study") is None else str(config["study"]),
            strict=mode == "strict",
            identifiers=identifiers,
            analysis_coder=coding.get("analysis_coder", "primary"),
            repair_threshold=float(coding.get("repair_threshold", 4)),
            end_status_values=_value_lookup(
                config.get("end_status_values"), END_STATUSES, "end_status_values", config_file
            ),
            covariates=tuple(config.get("covariates") or ()),
            config_file=config_file,
            role_values=_value_lookup(
                config.get("coder_role_values"),
                ROLES,
                "coder_role_values",
                config_file,
                keep_canonical=True,
            ),
            missing_values=_MissingValues.from_config(config.get("missing_values"), config_file),
            undeclared_codes=undeclared,
            codebook_file=str(config.get("codebook", "config/codebook.yaml")),
        )


def _value_lookup(
    values: dict | None,
    canonical: tuple[str, ...],
    key: str,
    config_file: str,
    keep_canonical: bool = False,
) -> dict[str, str]:
    """Raw value (as :func:`label_key` writes it) -> canonical value.

    Without ``values``, each canonical value stands for itself; with ``keep_canonical``
    it does so also beside the listed values.
    """
    if values is not None and not isinstance(values, dict):
        raise ConfigError(
            f"{config_file}: {key} must map each of {', '.join(canonical)} to a list of values."
        )
    given = values or {}
    unknown = [name for name in given if name not in canonical]
    if unknown:
        raise ConfigError(
            f"{config_file}: {key}: {unknown[0]!r} is not one of {', '.join(canonical)}."
        )
    lookup: dict[str, str] = {}
    if not given or keep_canonical:
        lookup = {label_key(name): name for name in canonical}
    for name, raw_values in given.items():
        if isinstance(raw_values, str | int | float):
            raw_values = [raw_values]
        for raw in raw_values or []:
            raw_key = label_key(raw)
            if lookup.get(raw_key, name) != name:
                raise ConfigError(
                    f"{config_file}: {key}: {raw!r} is listed under both "
                    f"{lookup[raw_key]!r} and {name!r}."
                )
            lookup[raw_key] = name
    return lookup


@dataclass(frozen=True)
class _MissingValues:
    """``missing_values:`` of the configuration (config/README.md, "Missing values").

    ``default``: codes for every column of every file; ``per_table``: table -> column (or
    ``all``) -> codes added for that column (or every column of that file). ``builtin``:
    the default codes are :data:`DEFAULT_MISSING_VALUES` (nothing was declared).
    """

    default: tuple[str, ...] = DEFAULT_MISSING_VALUES
    per_table: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    builtin: bool = True

    @classmethod
    def from_config(cls, value, config_file: str) -> _MissingValues:
        where = f"{config_file}: missing_values"
        if value is None:
            return cls()
        if isinstance(value, list):
            return cls(_codes(value, where), {}, builtin=False)
        if not isinstance(value, dict):
            raise ConfigError(
                f'{where} must be a list of codes (e.g. ["", NA, -99]) or a mapping with '
                "`default:` and per-file entries (config/README.md)."
            )
        unknown = [key for key in value if key != "default" and key not in TABLES]
        if unknown:
            raise ConfigError(
                f"{where}: {unknown[0]!r} is neither `default` nor a file ({', '.join(TABLES)})."
            )
        per_table = {}
        for table in TABLES:
            entry = value.get(table)
            if entry is None:
                continue
            if isinstance(entry, list):  # a list for a file: every column of that file
                entry = {"all": entry}
            if not isinstance(entry, dict):
                raise ConfigError(
                    f"{where}.{table} must map columns (or `all`) to lists of codes, e.g. "
                    '{minutes: ["-99"]}.'
                )
            per_table[table] = {
                str(column): _codes(codes, f"{where}.{table}.{column}")
                for column, codes in entry.items()
            }
        if "default" in value:
            return cls(_codes(value["default"], f"{where}.default"), per_table, builtin=False)
        return cls(DEFAULT_MISSING_VALUES, per_table, builtin=True)

    def describe(self) -> dict:
        """The codes in force, for the report."""
        return {
            "default": list(self.default),
            "builtin": self.builtin,
            "per_file": {
                table: {column: list(codes) for column, codes in entry.items()}
                for table, entry in self.per_table.items()
            },
        }

    def codes(self, table: str, column: str) -> list[tuple[str, str]]:
        """(code, source) for one column: the default codes, the file's ``all`` codes,
        then the column's own."""
        source = "default" if self.builtin else "declared"
        found = [(code, source) for code in self.default]
        entry = self.per_table.get(table, {})
        found += [(code, "declared") for code in entry.get("all", ())]
        found += [(code, "declared") for code in entry.get(column, ())]
        return found


def _codes(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(code, str | int | float) and not isinstance(code, bool) for code in value
    ):
        odd = (
            [code for code in value if code is None or isinstance(code, bool)]
            if isinstance(value, list)
            else []
        )
        quote = (
            f' YAML reads {odd[0]!r} there: put the code in quotes ("NULL", "yes").' if odd else ""
        )
        raise ConfigError(
            f"{where} must be a list of codes (text or numbers), e.g. [NA, -99].{quote}"
        )
    return tuple(_code_text(code) for code in value)


def _code_text(code) -> str:
    if isinstance(code, float) and code.is_integer():
        return str(int(code))
    return str(code).strip()


# ---------------------------------------------------------------- reading, columns


def _read_tables(config: dict, base_dir: Path, config_file: str) -> dict[str, _Table]:
    tables, problems = {}, []
    data = config.get("data") or {}
    codes_only = data.get("codes") is not None and all(
        data.get(name) is None for name in ("clients", "sessions")
    )
    for name in TABLES:
        entry = data.get(name)
        if entry is None:
            if name in ("clients", "sessions") and not codes_only:
                raise ConfigError(
                    f"config key data.{name}: the {name} file is required (a run for "
                    "reliability only may instead give codes without clients and sessions)."
                )
            continue
        file, sheet = (
            (entry["path"], entry.get("sheet")) if isinstance(entry, dict) else (entry, None)
        )
        label = str(file) if sheet is None else f"{file}, sheet {sheet}"
        try:
            read = read_input(base_dir / file, sheet)
        except InputFileError as error:
            problems.append(
                Problem(
                    label,
                    None,
                    None,
                    None,
                    error.reason,
                    f"Fix the file, or its path under `data: {name}:` in {config_file}.",
                )
            )
            continue
        tables[name] = _Table(
            name,
            label,
            read.frame,
            rows=len(read.frame),
            value_labels=read.value_labels,
            declared_missing=read.missing,
            kind=read.kind,
        )
    if problems:
        raise ValidationFailed(problems)
    return tables


def _screen_identifiers(tables: dict[str, _Table], rule: str, config_file: str):
    """Take identifier-like columns out of every table before anything else reads them.

    Returns the problems (``refuse``: they stop the run) and the dropped columns (``drop``).
    """
    refused, dropped = [], []
    for table in tables.values():
        found = find_identifier_columns(table.frame, table.file, config_file)
        table.identifiers = {problem.column: problem.message for problem in found}
        table.frame = table.frame.drop(columns=list(table.identifiers))
        (dropped if rule == "drop" else refused).extend(found)
    return refused, dropped


def _select_columns(
    table: _Table,
    config: dict,
    schema: dict,
    settings: _Settings,
    layout: _CodeLayout,
    problems: list[Problem],
    notes: list[str],
    codebook: Codebook | None = None,
) -> None:
    """Keep the mapped columns under their canonical names (code columns under internal
    names); add ``study`` if absent, and ``session`` = 1 for codes and coding log.

    A sessions column may be any column of the schema or any construct of the codebook
    (typed by the construct's kind, see
    :func:`resistance_outcomes.validate.schema_with_constructs`)."""
    mapping = ((config.get("columns") or {}).get(table.name)) or {}
    if table.name == "codes":
        mapping = {key: value for key, value in mapping.items() if key not in LAYOUT_KEYS}
        mapping |= {f"code column {column}": column for column in layout.code_columns}
    known = set(schema["properties"]) | (
        set(settings.covariates) if table.name == "clients" else set()
    )
    where = f"`columns: {table.name}:` in {settings.config_file}"
    selected: dict[str, str] = {}
    for canonical, column in mapping.items():
        code_column = canonical.startswith("code column ")
        message = (
            _column_problem(str(column), "a code column", table, selected)
            if code_column
            else _mapping_problem(
                canonical, str(column), table, schema, known, selected, settings.codebook_file
            )
        )
        if message:
            entry = f"code_columns: [{column}]" if code_column else f"{canonical}: {column}"
            hint = f"Correct the entry {entry} under {where}."
            if not code_column and canonical not in known and table.name == "sessions":
                hint = (
                    f"Correct the entry {entry} under {where}, or, if {canonical!r} is a "
                    f"construct of your study, declare it in {settings.codebook_file} under "
                    f"`constructs:` (e.g. `{canonical}: {{aggregate: column, kind: count, "
                    "label: ...}`)."
                )
            problems.append(Problem(table.file, None, str(column), None, message, hint))
            continue
        if code_column:
            table.code_columns[canonical] = str(column)
        selected[canonical] = str(column)
    table.columns = {k: v for k, v in selected.items() if k not in table.code_columns}
    table.unused = [c for c in table.frame.columns if c not in selected.values()]
    table.unused = [c for c in table.unused if c not in table.identifiers]
    table.frame = table.frame[list(selected.values())].set_axis(list(selected), axis=1)
    if table.name in ("codes", "coding_log") and "session" not in table.frame.columns:
        table.frame.insert(0, "session", "1")
        notes.append(
            f"{table.file} has no session column: each client's coding is taken as session 1."
        )
    if "study" not in table.frame.columns:
        if settings.study is None:
            problems.append(
                Problem(
                    table.file,
                    None,
                    "study",
                    None,
                    "no study column",
                    f"Set `study:` in {settings.config_file} or map a study column.",
                )
            )
        else:
            table.frame.insert(0, "study", settings.study)
    if table.name == "clients":
        for covariate in settings.covariates:
            if covariate not in selected:
                problems.append(
                    Problem(
                        table.file,
                        None,
                        covariate,
                        None,
                        "covariate is not a mapped column",
                        f"Map it under {where}, or remove it from `covariates:`.",
                    )
                )


def _apply_missing_codes(table: _Table, settings: _Settings) -> list[dict]:
    """Make the declared missing-value codes missing in the mapped columns; count them,
    with the file's own declared missing values (SPSS, Stata)."""
    spec = settings.missing_values or _MissingValues()
    by_file_name = {file_column: canonical for canonical, file_column in table.columns.items()}
    by_file_name |= {column: internal for internal, column in table.code_columns.items()}
    entry = spec.per_table.get(table.name, {})
    for key in entry:
        if key != "all" and key not in table.columns and key not in by_file_name:
            mapped = ", ".join(table.columns) or "none"
            raise ConfigError(
                f"{settings.config_file}: missing_values.{table.name}.{key}: not a column "
                f"mapped under `columns: {table.name}:` (mapped: {mapped}). Use the canonical "
                "name (or `all` for every column of the file)."
            )
    renamed = {by_file_name.get(key, key): codes for key, codes in entry.items()}
    spec = replace(spec, per_table={**spec.per_table, table.name: renamed})
    selected = {**table.columns, **table.code_columns}  # name in frame -> column in file
    codes_of = {name: spec.codes(table.name, name) for name in selected}
    table.frame, counts = apply_missing_values(
        table.frame, {name: [code for code, _ in found] for name, found in codes_of.items()}
    )
    records = []
    for name, file_column in selected.items():
        shown = (
            file_column
            if file_column == name or name in table.code_columns
            else (f"{file_column} ({name})")
        )
        source = {code: origin for code, origin in reversed(codes_of[name])}
        for code, cells in (table.declared_missing.get(file_column) or {}).items():
            origin = "SPSS user-missing" if table.kind == "SPSS" else "Stata extended missing"
            records.append(
                {
                    "file": table.file,
                    "column": shown,
                    "code": code,
                    "cells": cells,
                    "source": origin,
                }
            )
        for code, cells in (counts.get(name) or {}).items():
            records.append(
                {
                    "file": table.file,
                    "column": shown,
                    "code": code,
                    "cells": cells,
                    "source": source.get(code, "declared"),
                }
            )
    return records


def _apply_value_labels(table: _Table, schema: dict, notes: list[str]) -> None:
    """SPSS/Stata value labels -> values, in the columns matched by maps and in yes/no
    columns labelled with yes/no words; the report names the labels used."""
    if not table.value_labels:
        return
    selected = {**table.columns, **table.code_columns}
    for name, file_column in selected.items():
        labels = table.value_labels.get(file_column)
        if not labels:
            continue
        values = table.frame[name]
        present = values.dropna().str.strip()
        used = {value: label for value, label in labels.items() if value in set(present)}
        if not used:
            continue
        spec = schema["properties"].get(name, {})
        yes_no = "boolean" in (
            spec.get("type") if isinstance(spec.get("type"), list) else [spec.get("type")]
        ) and all(label_key(label) in TRUE_WORDS | FALSE_WORDS for label in used.values())
        shown = ", ".join(f"{value} = {label}" for value, label in used.items())
        if name in LABELLED_COLUMNS or name in table.code_columns or yes_no:
            table.frame[name] = values.map(
                lambda cell, used=used: used.get(str(cell).strip(), cell), na_action="ignore"
            )
            notes.append(
                f"{table.file}: {file_column}: {_count(len(used), 'value label')} used ({shown})."
            )
        else:
            notes.append(
                f"{table.file}: {file_column}: {_count(len(used), 'value label')} not applied "
                f"({shown}): the column is read as its values."
            )


def _mapping_problem(
    canonical, column, table, schema, known, selected, codebook_file="config/codebook.yaml"
) -> str | None:
    if canonical not in known and table.name == "sessions":
        return (
            f"{canonical!r} is neither a canonical column of the sessions table (see "
            f"docs/data-dictionary.md) nor a construct of the codebook ({codebook_file})"
        )
    if canonical not in known:
        return (
            f"{canonical!r} is not a column of the {table.name} table (see "
            "docs/data-dictionary.md) nor a listed covariate"
        )
    if schema["properties"].get(canonical, {}).get("readOnly"):
        return f"{canonical!r} is made by the pipeline and cannot be read from a file"
    return _column_problem(column, f"mapped to {canonical}", table, selected)


def _column_problem(column, role, table, selected) -> str | None:
    if column in table.identifiers:
        return f"column {column!r} is not read: {table.identifiers[column]}"
    if column in selected.values():
        return f"column {column!r} is mapped twice"
    if column not in table.frame.columns:
        available = ", ".join(map(str, table.frame.columns))
        return f"column {column!r} ({role}) is not in the file; its columns are: {available}"
    return None


def _one_per_cell(problems: list[Problem], files: dict[str, str]) -> list[Problem]:
    """The first problem found for each file, row and column, in file and row order.

    A later check of a cell that already failed (an attended session whose minutes were
    not a number is also "without minutes"; a column whose mapping is wrong is also
    missing) would only repeat it.
    """
    order = {file: position for position, file in enumerate(files.values())}
    seen, kept = set(), []
    for problem in problems:
        cell = (problem.file, problem.row, problem.column)
        if cell not in seen:
            seen.add(cell)
            kept.append(problem)
    return sorted(kept, key=lambda p: (order.get(p.file, -1), p.row is not None, p.row or 0))


def _with_file_column_names(problems: list[Problem], tables: dict[str, _Table]):
    """Name columns as the file does (``session_no``), with the canonical name if different."""
    by_file = {table.file: table.columns for table in tables.values()}
    renamed = []
    for problem in problems:
        column = by_file.get(problem.file, {}).get(problem.column)
        if column is not None and column != problem.column:
            problem = replace(problem, column=f"{column} ({problem.column})")
        renamed.append(problem)
    return renamed


# ---------------------------------------------------------------------- validation


def _validate_tables(tables, schemas, settings, fmap, problems) -> dict[str, pd.DataFrame]:
    typed = {}
    for name, table in tables.items():
        frame = table.frame
        if name == "clients" and "end_status" in frame.columns:
            frame = frame.assign(end_status=_map_end_status(frame["end_status"], settings))
        if name in ("codes", "coding_log") and "role" in frame.columns:
            frame = frame.assign(role=_map_values(frame["role"], settings.role_values))
        schema = _wide_code_schema(schemas[name]) if table.code_columns else schemas[name]
        typed[name], found = validate_table(
            frame, name, table.file, schema, config_file=settings.config_file
        )
        if name == "clients":
            found = [_end_status_advice(p, settings.config_file) for p in found]
        if name in ("codes", "coding_log"):
            found = [_role_advice(p, settings.config_file) for p in found]
        problems += found
    if "clients" in typed:
        clients = _add_frameworks(typed["clients"], fmap, tables["clients"].file, problems)
        typed["clients"] = _convert_covariates(clients, settings, schemas["clients"])
    if settings.undeclared_codes == "error":
        for name in CELL_TABLES:
            if name in typed:
                problems += _suspect_codes(typed, tables[name], schemas[name], settings)
    return typed


def _suspect_codes(typed, table: _Table, schema: dict, settings: _Settings) -> list[Problem]:
    """Numbers that look like undeclared missing-value codes, in the non-key numeric
    columns; the cells are set to missing at once (as cells of the wrong type are), so
    that nothing formed from them (composites) carries them."""
    frame = typed[table.name]
    keys = set(schema.get("primary_key", [])) | {"unit"}
    columns = [column for column in frame.columns if column not in keys]
    found = find_suspect_missing_codes(
        frame, table.frame, table.file, columns, settings.config_file
    )
    for problem in found:
        frame.loc[problem.row, problem.column] = pd.NA
    return found


def _map_values(values: pd.Series, lookup: dict[str, str]) -> pd.Series:
    """Raw words -> canonical values (ignoring case and spaces); unlisted words stay, to be
    reported."""
    mapped = values.map(lambda raw: lookup.get(label_key(raw)), na_action="ignore")
    return mapped.where(mapped.notna(), values)


def _role_advice(problem: Problem, config_file: str) -> Problem:
    if problem.column != "role" or problem.value is None:
        return problem
    return replace(
        problem,
        message=f"coder role {problem.value!r} is not listed",
        hint=f"List the word under primary or reliability in `coder_role_values:` in "
        f"{config_file} (e.g. `coder_role_values: {{primary: [main], reliability: [second]}}`).",
    )


def _wide_code_schema(schema: dict) -> dict:
    """The codes schema for a wide table: one row per unit and coder, codes in columns."""
    return {
        **schema,
        "required": [column for column in schema["required"] if column != "code"],
        "primary_key": [*SESSION_KEY, "unit", "coder"],
    }


def _map_end_status(values: pd.Series, settings: _Settings) -> pd.Series:
    mapped = values.map(
        lambda raw: settings.end_status_values.get(label_key(raw)), na_action="ignore"
    )
    return mapped.where(mapped.notna(), values)  # unmapped values stay, to be reported


def _end_status_advice(problem: Problem, config_file: str) -> Problem:
    if problem.column != "end_status" or problem.value is None:
        return problem
    return replace(
        problem,
        message=f"end status {problem.value!r} is not listed",
        hint="List the value under its status (completed, dropout, referred, "
        f"ongoing) in `end_status_values:` in {config_file}.",
    )


def _add_frameworks(
    clients: pd.DataFrame, fmap: FrameworkMap, file: str, problems: list[Problem]
) -> pd.DataFrame:
    if "treatment_label" not in clients.columns:
        return clients
    labels = clients["treatment_label"]
    try:
        framework = map_frameworks(labels, fmap, file)
    except UnmappedLabelError as error:
        problems += error.problems
        unmapped = [problem.row for problem in error.problems]
        framework = map_frameworks(labels.where(~labels.index.isin(unmapped)), fmap, file)
    clients = clients.copy()
    clients.insert(clients.columns.get_loc("treatment_label") + 1, "framework", framework)
    return clients


def _convert_covariates(clients: pd.DataFrame, settings: _Settings, schema: dict):
    for covariate in settings.covariates:
        if covariate in clients.columns and covariate not in schema["properties"]:
            numbers = pd.to_numeric(clients[covariate].str.strip(), errors="coerce")
            if numbers.notna().sum() == clients[covariate].notna().sum():
                clients[covariate] = numbers.astype("float64")
    return clients


def _prepare_code_text(tables: dict[str, _Table], layout: _CodeLayout, notes: list[str]):
    """Before validation: leave out long-layout rows whose code means "no code"; number
    units by their order when ``unit_numbering: order``."""
    table = tables["codes"]
    if layout.no_code and "code" in table.frame.columns:
        none = table.frame["code"].map(label_key, na_action="ignore").isin(layout.no_code)
        if none.any():
            table.frame = table.frame[~none]
            notes.append(
                f"{table.file}: {_count(int(none.sum()), 'row')} whose code is a no-code "
                "value (`columns: codes: no_code:`) not read as codes."
            )
    if layout.unit_numbering == "order" and "unit" in table.frame.columns:
        table.frame = table.frame.assign(unit=_units_in_order(table.frame))
        notes.append(
            f"{table.file}: units numbered 1, 2, ... within each session in the order of "
            f"column {table.columns['unit']!r} (`unit_numbering: order`)."
        )


def _units_in_order(frame: pd.DataFrame) -> pd.Series:
    """Units 1, 2, ... within each session by a numeric order column; other values kept,
    for validation to report."""
    order = pd.to_numeric(frame["unit"].str.strip(), errors="coerce")
    keys = frame[SESSION_KEY].apply(lambda column: column.str.strip())
    usable = order.notna() & keys.notna().all(axis=1)
    ranks = order[usable].groupby([keys.loc[usable, k] for k in SESSION_KEY]).rank("dense")
    return frame["unit"].where(~usable, ranks.reindex(frame.index).astype("Int64").astype(str))


def _read_code_layout(
    typed, table: _Table, files, codebook, layout, problems, notes, config_file: str
) -> None:
    """Codes in codebook spelling; a wide table melted into code rows, its coding log made
    from its rows when no coding log file is given."""
    if table.code_columns:
        wide = typed["codes"]
        typed["codes"] = _melt_code_columns(wide, table, codebook, layout, problems)
        notes.append(
            f"{table.file}: {_count(len(typed['codes']), 'code row')} from the filled cells of "
            f"{', '.join(table.code_columns.values())} in {_count(len(wide), 'row')} (one row "
            "per unit and coder)."
        )
        if "coding_log" not in typed:
            files["coding_log"] = f"{table.file} (coding log made from its rows)"
            typed["coding_log"] = _coding_log_from_rows(wide)
            notes.append(
                f"{table.file}: every row is a coded unit, so the coding log is made from "
                "the rows (units = the highest unit number of each session and coder)."
            )
    typed["codes"] = _prepare_codes(typed["codes"], codebook, table.file, problems, config_file)


def _melt_code_columns(wide, table: _Table, codebook, layout, problems) -> pd.DataFrame:
    """One code row (value 1) per filled code cell, in file order; the row keeps its file
    row number, so a row with codes in two columns gives two rows with the same number."""
    keys = [column for column in wide.columns if column not in table.code_columns]
    parts = []
    for internal, column in table.code_columns.items():
        cells = wide[internal].str.strip()
        cells = cells.where(~cells.map(label_key, na_action="ignore").isin(layout.no_code))
        codes = cells.map(codebook.canonical_code, na_action="ignore")
        kinds = codes.map(lambda code: codebook.codes[code].kind, na_action="ignore")
        for row in cells.index[cells.notna() & (codes.isna() | (kinds == "rating"))]:
            problems.append(_code_cell_problem(table.file, row, column, wide.at[row, internal]))
        found = codes.notna() & (kinds != "rating")
        parts.append(wide.loc[found, keys].assign(code=codes[found], value=1.0))
    return pd.concat(parts).sort_index(kind="stable")


def _code_cell_problem(file, row, column, value) -> Problem:
    return Problem(
        file,
        row,
        column,
        value,
        f"{value!r} is not a marker or strategy code of the codebook",
        "Correct the code, list it under its instrument in config/codebook.yaml, or add the "
        "value to `columns: codes: no_code:` if it means no code. Ratings need the long "
        "layout with a value column.",
    )


def _coding_log_from_rows(wide: pd.DataFrame) -> pd.DataFrame:
    """One log row per session and coder of a wide code table; units = highest unit."""
    frame = wide.dropna(subset=[*CODER_KEY, "unit"]).assign(_row=lambda f: f.index)
    aggregations = {"_row": ("_row", "first"), "units": ("unit", "max")}
    if "role" in frame.columns:
        aggregations["role"] = ("role", "first")
    log = frame.groupby(CODER_KEY, sort=False, observed=True).agg(**aggregations)
    return log.reset_index().set_index("_row").rename_axis(wide.index.name)


def _roles_from_log(codes: pd.DataFrame, log: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Codes without a role column take each coder's role from the coding log, so that
    ``analysis_coder: primary`` finds the primary coder even where another coder's codes
    come first."""
    if "role" in codes.columns or "role" not in log.columns or log["role"].isna().all():
        return codes
    complete = log.dropna(subset=CODER_KEY).drop_duplicates(CODER_KEY)
    keys = pd.MultiIndex.from_frame(complete[CODER_KEY].astype(object))
    roles = pd.Series(complete["role"].astype(object).to_numpy(), index=keys)
    wanted = pd.MultiIndex.from_frame(codes[CODER_KEY].astype(object))
    notes.append("The coders' roles (primary, reliability) are taken from the coding log.")
    role = pd.Categorical(roles.reindex(wanted).to_numpy(), categories=ROLES)
    return codes.assign(role=role)


def _coded_clients_and_sessions(typed: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Codes-only run: the coded clients, and the coded sessions (all attended)."""
    frames = [typed[name][SESSION_KEY] for name in ("codes", "coding_log") if name in typed]
    sessions = pd.concat(frames).dropna().drop_duplicates().sort_values(SESSION_KEY)
    sessions = sessions.reset_index(drop=True).assign(attended=True)
    sessions["attended"] = sessions["attended"].astype("boolean")
    clients = sessions[CLIENT_KEY].drop_duplicates().reset_index(drop=True)
    return clients, sessions


def _prepare_codes(
    codes: pd.DataFrame,
    codebook: Codebook,
    file: str,
    problems: list[Problem],
    config_file: str = "config/config.yaml",
) -> pd.DataFrame:
    """Write codes as the codebook does; without a value column, markers count 1."""
    if "code" not in codes.columns:
        return codes
    codes = codes.copy()
    spelling = {code: codebook.canonical_code(code) or code for code in codes["code"].dropna()}
    codes["code"] = codes["code"].map(spelling, na_action="ignore")
    if "value" not in codes.columns:
        kinds = codes["code"].map(lambda c: getattr(codebook.codes.get(c), "kind", None))
        codes["value"] = (kinds != "rating").astype("float64").where(kinds != "rating")
        for row in codes.index[kinds == "rating"]:
            problems.append(
                Problem(
                    file,
                    row,
                    "code",
                    codes.at[row, "code"],
                    "a rating code needs a value, and the file has no value column",
                    "Add a value column and map it under "
                    f"`columns: codes: value:` in {config_file}.",
                )
            )
    return codes


# ---------------------------------------------------------------------- quarantine


def _set_aside(
    typed: dict[str, pd.DataFrame],
    problems: list[Problem],
    files: dict,
    schemas: dict,
    shown: list[Problem] | None = None,
):
    """Lenient mode: set bad cells to missing where the row stays usable, set aside rows,
    clients and sessions' codes where not (see the module docstring); list each.

    ``problems`` name canonical columns; ``shown`` are the same problems with the
    columns named as in the files, for the quarantine table.

    Returns the kept tables, the quarantine table and the session keys whose codes were
    set aside (their construct values are made missing after aggregation).
    """
    table_of = {file: table for table, file in files.items()}
    typed = {table: frame.copy() for table, frame in typed.items()}
    client_keys = {table: _client_keys(frame) for table, frame in typed.items()}
    session_keys = {table: _session_keys(frame) for table, frame in typed.items()}
    records: list[list] = []
    bad_rows: set[tuple] = set()
    clients: dict[tuple, str] = {}  # client key -> first reason
    sessions: dict[tuple, str] = {}  # session key -> first reason (code table, coding log)
    for problem in problems:  # the clients set aside first: their codes go with them
        table = table_of[problem.file]
        if table in CELL_TABLES and not _cell_level(problem, table, schemas):
            key = client_keys[table].get(problem.row)
            if key is not None:
                clients.setdefault(key, f"{problem.message} ({problem.file} row {problem.row})")
    for problem, named in zip(problems, shown or problems, strict=True):
        table = table_of[problem.file]
        reason = f"{problem.message} ({problem.file} row {problem.row})"
        record = [problem.file, problem.row, named.column, problem.value, problem.message]
        if _cell_level(problem, table, schemas):
            frame = typed[table]
            if problem.row in frame.index and problem.column in frame.columns:
                frame.loc[problem.row, problem.column] = pd.NA
            records.append([*record, CELL_SET_TO_MISSING])
            continue
        bad_rows.add((table, problem.row))
        if table in CELL_TABLES:
            key = client_keys[table].get(problem.row)
            if key is None:
                records.append([*record, "row set aside"])
            else:
                clients.setdefault(key, reason)
                records.append([*record, f"client {key[1]} set aside"])
        else:
            key = session_keys[table].get(problem.row)
            client = client_keys[table].get(problem.row)
            if client in clients:  # often a consequence of the client's own problem
                records.append([*record, f"set aside with client {client[1]}"])
            elif key is None:
                records.append([*record, "row set aside"])
            else:
                sessions.setdefault(key, reason)
                records.append([*record, f"codes of client {key[1]}, session {key[2]} set aside"])
    kept = {}
    for table, frame in typed.items():
        drop = pd.Series(False, index=frame.index, dtype=bool)
        for row in frame.index:
            if (table, row) in bad_rows:
                drop[row] = True
                continue
            client, session = client_keys[table].get(row), session_keys[table].get(row)
            if client in clients:
                action = f"set aside with client {client[1]}"
                records.append(
                    [files[table], row, "client", client[1], f"{action}: {clients[client]}", action]
                )
                drop[row] = True
            elif table not in CELL_TABLES and session in sessions:
                action = f"set aside with the codes of client {session[1]}, session {session[2]}"
                records.append(
                    [
                        files[table],
                        row,
                        "session",
                        str(session[2]),
                        f"{action}: {sessions[session]}",
                        action,
                    ]
                )
                drop[row] = True
        kept[table] = frame[~drop]
    quarantine = pd.DataFrame(records, columns=QUARANTINE_COLUMNS)
    quarantine["row"] = quarantine["row"].astype("Int64")
    quarantine = quarantine.sort_values(["file", "row"], kind="stable").reset_index(drop=True)
    return kept, quarantine, set(sessions)


def _cell_level(problem: Problem, table: str, schemas: dict) -> bool:
    """Whether a problem is one bad value the row can do without: a cell, in the clients
    or sessions table, of a column that is neither a key nor required."""
    if table not in CELL_TABLES or problem.row is None or problem.column is None:
        return False
    schema = schemas[table]
    essential = set(schema.get("primary_key", [])) | set(schema.get("required", []))
    return problem.column not in essential


def _session_keys(frame: pd.DataFrame) -> dict[int, tuple]:
    """Row -> (study, client, session) for rows with all three."""
    if not set(SESSION_KEY) <= set(frame.columns):
        return {}
    complete = frame[SESSION_KEY].dropna()
    return dict(
        zip(
            complete.index,
            (tuple(row) for row in complete.astype(object).itertuples(index=False)),
            strict=True,
        )
    )


def _client_keys(frame: pd.DataFrame) -> dict[int, tuple]:
    """Row -> (study, client) for rows with both."""
    if not set(CLIENT_KEY) <= set(frame.columns):
        return {}
    complete = frame[CLIENT_KEY].dropna()
    return dict(
        zip(complete.index, zip(complete["study"], complete["client"], strict=True), strict=True)
    )


def _sessions_with_constructs(
    typed, codebook: Codebook, settings: _Settings, uncoded: set | frozenset = frozenset()
) -> pd.DataFrame:
    """The sessions with the construct columns made from the codes; sessions whose codes
    were set aside (lenient mode) have them missing, as sessions not coded."""
    codes = typed.get("codes")
    if codes is None or codes.empty:
        return typed["sessions"]
    before = set(typed["sessions"].columns)
    sessions = aggregate_codes(
        codes, typed["sessions"], codebook, settings.repair_threshold, typed.get("coding_log")
    )
    made = [column for column in sessions.columns if column not in before]
    if uncoded and made:
        keys = _session_keys(sessions)
        rows = [row for row, key in keys.items() if key in uncoded]
        sessions.loc[rows, made] = pd.NA
    return sessions


def _empty_table(schema: dict) -> pd.DataFrame:
    dtypes = {"string": "str", "integer": "Int64", "number": "float64", "boolean": "boolean"}
    columns = {}
    for column, spec in schema["properties"].items():
        kind = spec.get("type", "string")
        kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
        dtype = pd.CategoricalDtype(spec["enum"]) if "enum" in spec else dtypes[kind]
        columns[column] = pd.Series(dtype=bool if column == "analysis_coder" else dtype)
    return pd.DataFrame(columns)


# ------------------------------------------------------------------------- report


def format_validation_report(
    result_or_problems: IngestResult | list[Problem], max_rows: int = 20
) -> str:
    """The validation report as Markdown.

    Parameters
    ----------
    result_or_problems : IngestResult or list of Problem
        A finished ingestion, or the problems of a failed one
        (``ValidationFailed.problems``).
    max_rows : int
        Rows shown per kind of problem; the quarantine file lists them all.

    Returns
    -------
    str
        Summary counts per table (rows read, kept, set aside), problems grouped by file,
        column and kind with row, value and what to do, the quarantine count, dropped
        identifier columns and columns not read.

    Examples
    --------
    >>> from resistance_outcomes.ingest import format_validation_report
    >>> from resistance_outcomes.validate import Problem
    >>> report = format_validation_report(
    ...     [Problem("s.csv", 4, "minutes", "x", "not a number", "Write a number.")])
    >>> print(report.splitlines()[2])
    Validation failed: 1 problem. Nothing was analysed.
    """
    if isinstance(result_or_problems, IngestResult):
        return _result_report(result_or_problems, max_rows)
    problems = list(result_or_problems)
    lines = [
        "# Validation report",
        "",
        f"Validation failed: {_count(len(problems), 'problem')}. Nothing was analysed.",
        "",
        "| file | problems |",
        "| --- | --- |",
    ]
    per_file = pd.Series([p.file for p in problems], dtype=object).value_counts(sort=False)
    lines += [f"| {_cell(file)} | {count} |" for file, count in per_file.items()]
    return "\n".join(lines + _problem_sections(problems, max_rows)) + "\n"


def _result_report(result: IngestResult, max_rows: int) -> str:
    quarantine = result.quarantine
    if "action" in quarantine.columns:
        quarantine = quarantine[quarantine["action"].astype(str) != CELL_SET_TO_MISSING]
    set_aside = quarantine.drop_duplicates(["file", "row"])["file"].value_counts()
    kept = {result.files[t]: len(getattr(result, t)) for t in TABLES if t in result.files}
    lines = [
        "# Validation report",
        "",
        "| table | file | rows read | rows kept | rows set aside |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for table, file in result.files.items():
        lines.append(
            f"| {table} | {_cell(file)} | {result.rows_read[file]} | {kept[file]} | "
            f"{int(set_aside.get(file, 0))} |"
        )
    lines += [
        "",
        f"{_count(len(result.problems), 'problem')} found."
        if result.problems
        else "No problems found.",
    ]
    if result.notes:
        lines += ["", "## How the input was read", ""]
        lines += [f"- {_cell(note)}" for note in result.notes]
    lines += _missing_value_section(result)
    lines += _problem_sections(result.problems, max_rows)
    if len(result.quarantine):
        lines += ["", "## Quarantine", "", _quarantine_sentence(result)]
    if result.dropped_identifier_columns:
        lines += [
            "",
            "## Columns dropped as possible identifiers",
            "",
            "| file | column | reason |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {_cell(p.file)} | {_cell(p.column)} | {_cell(p.message)} |"
            for p in result.dropped_identifier_columns
        ]
    if result.unused_columns:
        lines += [
            "",
            "## Columns not read (not listed under `columns:`)",
            "",
            "| file | columns |",
            "| --- | --- |",
        ]
        lines += [
            f"| {_cell(file)} | {_cell(', '.join(map(str, columns)))} |"
            for file, columns in result.unused_columns.items()
        ]
    return "\n".join(lines) + "\n"


def _quarantine_sentence(result: IngestResult) -> str:
    """E.g. "21 cells set to missing in 17 rows; 2 clients set aside; 30 rows set aside"."""
    counts = result.set_aside or _set_aside_counts(result.quarantine)
    parts = []
    if counts.get("cells"):
        parts.append(
            f"{_count(counts['cells'], 'cell')} set to missing in "
            f"{_count(counts['cell_rows'], 'row')}"
        )
    if counts.get("clients"):
        parts.append(f"{_count(counts['clients'], 'client')} set aside")
    if counts.get("sessions"):
        parts.append(f"the codes of {_count(counts['sessions'], 'session')} set aside")
    parts.append(f"{_count(counts.get('rows', 0), 'row')} set aside")
    return (
        "; ".join(parts) + ". Each is listed with its reason and what was done in the "
        "quarantine table (quarantine.csv next to this report). A bad value in a column "
        "that is neither a key nor required is set to missing and its row kept; a bad key "
        "or required value sets aside the client (all its rows in every file), and a bad "
        "row of the codes or coding log the codes of its session."
    )


def _missing_value_section(result: IngestResult) -> list[str]:
    """Which codes were read as missing, per file and column, and the codes in force."""
    codes = result.missing_codes or {}
    lines = ["", "## Missing values", ""]
    if codes:
        listed = [code for code in codes.get("default", []) if code]  # "": empty, always
        shown = ", ".join(f"`{code}`" for code in listed) or "none besides empty cells"
        origin = (
            "the defaults; declare your own under `missing_values:`"
            if codes.get("builtin")
            else "declared under `missing_values:`"
        )
        lines.append(
            f"Empty cells are missing. Codes read as missing in every column: {shown} ({origin})."
        )
        for table, entry in (codes.get("per_file") or {}).items():
            for column, added in entry.items():
                added = [code for code in added if code]
                if not added:
                    continue
                where = "every column" if column == "all" else f"column {column}"
                lines.append(f"Also in {table}, {where}: {', '.join(f'`{c}`' for c in added)}.")
    if not result.missing_values:
        return lines + ["", "No cell held a missing-value code."]
    lines += [
        "",
        "| file | column | code | cells read as missing | declared by |",
        "| --- | --- | --- | ---: | --- |",
    ]
    declared_by = {
        "declared": "`missing_values:`",
        "default": "default codes",
        "SPSS user-missing": "the SPSS file (user-missing)",
        "Stata extended missing": "the Stata file (extended missing)",
    }
    for record in result.missing_values:
        lines.append(
            f"| {_cell(record['file'])} | {_cell(record['column'])} | `{_cell(record['code'])}` "
            f"| {record['cells']} | {declared_by.get(record['source'], record['source'])} |"
        )
    return lines


def _problem_sections(problems: list[Problem], max_rows: int) -> list[str]:
    if not problems:
        return []
    lines = ["", "## Problems"]
    for (file, column, hint), group in group_problems(problems).items():
        where = _cell(file) if column is None else f"{_cell(file)}, column `{column}`"
        lines += [
            "",
            f"### {where} ({_count(len(group), 'problem')})",
            "",
            f"What to do: {hint}",
            "",
            "| row | value | problem |",
            "| ---: | --- | --- |",
        ]
        for problem in group[:max_rows]:
            row = "" if problem.row is None else problem.row
            value = "" if problem.value is None else f"`{_cell(problem.value)}`"
            lines.append(f"| {row} | {value} | {_cell(problem.message)} |")
        if len(group) > max_rows:
            lines.append(f"| | | ... and {len(group) - max_rows} more |")
    return lines


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"
