"""From the raw input files to the validated canonical tables.

:func:`ingest` reads the configured files, refuses (or drops) columns that look like
personal identifiers, renames columns through ``columns:``, fills ``study``, maps end
statuses and treatment labels, converts and checks every table against its schema and
against the others, marks the analysis coder, and makes the sessions' construct columns
from the codes through the codebook. :func:`format_validation_report` writes what was
found as Markdown.

In ``strict`` mode any problem raises :class:`~resistance_outcomes.validate.ValidationFailed`
with every problem found. In ``lenient`` mode rows with problems are set aside in a
quarantine table with their reasons and the rest goes on. The unit set aside is the client:
a bad row in any table sets aside the client's row, all its sessions and all its codes
(each listed with the reason), because the analyses need each client's complete sequence
of sessions. Problems with a whole file or column (unreadable file, missing column,
identifier column under ``refuse``) stop the run in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from resistance_outcomes.codebook import (
    Codebook,
    aggregate_codes,
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
from resistance_outcomes.io import ConfigError, InputFileError, read_table
from resistance_outcomes.validate import (
    TABLES,
    Problem,
    ValidationFailed,
    check_analysis_coders,
    check_references,
    find_identifier_columns,
    group_problems,
    load_schemas,
    validate_table,
)

__all__ = ["IngestResult", "SCHEMA_DIR", "format_validation_report", "ingest"]

#: The schemas of the canonical tables, ``workflow/schemas`` of this repository.
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
QUARANTINE_COLUMNS = ["file", "row", "column", "value", "problem"]
END_STATUSES = ("completed", "dropout", "referred", "ongoing")
CLIENT_KEY = ["study", "client"]
CODER_KEY = ["study", "client", "session", "coder"]


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
    problems : list of Problem
        Row problems whose rows were set aside (lenient mode; empty in strict mode).
    quarantine : pandas.DataFrame
        One row per row set aside: file, row, column, value, problem.
    dropped_identifier_columns : list of Problem
        Columns dropped because they looked like identifiers (``identifiers: drop``).
    unused_columns : dict
        File -> columns of the file that no ``columns:`` entry reads.
    rows_read : dict
        File -> data rows read.
    files : dict
        Table -> file, as configured.
    """

    clients: pd.DataFrame
    sessions: pd.DataFrame
    codes: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    dropped_identifier_columns: list[Problem] = field(default_factory=list)
    unused_columns: dict[str, list[str]] = field(default_factory=dict)
    rows_read: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class _Table:
    """One input table on its way through ingestion."""

    name: str
    file: str
    frame: pd.DataFrame
    rows: int = 0
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> column in file
    unused: list[str] = field(default_factory=list)
    identifiers: dict[str, str] = field(default_factory=dict)  # column -> why it was left out


def ingest(config: dict, base_dir: str | Path = ".", schema_dir: str | Path | None = None):
    """Read, map and validate the configured input files.

    Parameters
    ----------
    config : dict
        The run configuration. Keys used: ``study``; ``data`` (``clients``, ``sessions``
        and optional ``codes``: a path, or ``{path: ..., sheet: ...}`` for Excel);
        ``columns`` (per table, ``canonical name: column in your file``; only these
        columns are read); ``end_status_values`` (canonical status -> raw values,
        matched ignoring case and spaces; default: the canonical names); ``covariates``
        (client columns, each mapped under ``columns: clients``; numeric when every value
        is a number, text otherwise); ``codebook`` and ``frameworks`` (paths);
        ``validation: mode`` (``strict``/``lenient``) and ``identifiers``
        (``refuse``/``drop``); ``coding: analysis_coder`` and ``repair_threshold``.
    base_dir : str or path-like
        Folder relative paths in ``config`` are read from (the workflow directory).
    schema_dir : str or path-like, optional
        Folder of the table schemas. Default: :data:`SCHEMA_DIR`.

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
    settings = _Settings.from_config(config)
    codebook = load_codebook(base_dir / config["codebook"])
    fmap = load_framework_map(base_dir / config["frameworks"])
    schemas = load_schemas(schema_dir or SCHEMA_DIR)
    tables = _read_tables(config, base_dir)
    files = {name: table.file for name, table in tables.items()}
    refused, dropped = _screen_identifiers(tables, settings.identifiers)
    problems: list[Problem] = []
    for table in tables.values():
        _select_columns(table, config, schemas[table.name], settings, problems)
    typed = _validate_tables(tables, schemas, settings, fmap, problems)
    if "codes" in typed:
        typed["codes"] = _prepare_codes(typed["codes"], codebook, files["codes"], problems)
    problems += check_references(
        typed["clients"], typed["sessions"], typed.get("codes"), codebook, files
    )
    if "codes" in typed and set(CODER_KEY) <= set(typed["codes"].columns):
        typed["codes"] = select_analysis_codes(typed["codes"], settings.analysis_coder)
        problems += check_analysis_coders(typed["codes"], files["codes"], settings.analysis_coder)
    problems = _with_file_column_names(_one_per_cell(problems, files), tables)
    if refused or any(p.row is None for p in problems) or (problems and settings.strict):
        raise ValidationFailed(refused + problems)
    typed, quarantine = _set_aside(typed, problems, files)
    return IngestResult(
        clients=typed["clients"].reset_index(drop=True),
        sessions=_sessions_with_constructs(typed, codebook, settings).reset_index(drop=True),
        codes=(typed["codes"] if "codes" in typed else _empty_codes(schemas["codes"])).reset_index(
            drop=True
        ),
        problems=problems,
        quarantine=quarantine,
        dropped_identifier_columns=dropped,
        unused_columns={table.file: table.unused for table in tables.values() if table.unused},
        rows_read={table.file: table.rows for table in tables.values()},
        files=files,
    )


@dataclass(frozen=True)
class _Settings:
    study: str | None
    strict: bool
    identifiers: str
    analysis_coder: str | list[str]
    repair_threshold: float
    end_status_values: dict[str, str]
    covariates: tuple[str, ...]

    @classmethod
    def from_config(cls, config: dict) -> _Settings:
        validation = config.get("validation") or {}
        coding = config.get("coding") or {}
        mode = validation.get("mode", "strict")
        identifiers = validation.get("identifiers", "refuse")
        if mode not in ("strict", "lenient") or identifiers not in ("refuse", "drop"):
            raise ConfigError(
                "config key validation: mode must be strict or lenient and identifiers "
                f"refuse or drop (got {mode!r} and {identifiers!r})."
            )
        return cls(
            study=None if config.get("study") is None else str(config["study"]),
            strict=mode == "strict",
            identifiers=identifiers,
            analysis_coder=coding.get("analysis_coder", "primary"),
            repair_threshold=float(coding.get("repair_threshold", 4)),
            end_status_values=_end_status_lookup(config.get("end_status_values")),
            covariates=tuple(config.get("covariates") or ()),
        )


def _end_status_lookup(values: dict | None) -> dict[str, str]:
    values = values or {status: [status] for status in END_STATUSES}
    lookup: dict[str, str] = {}
    for status, raw_values in values.items():
        for raw in raw_values or []:
            key = label_key(raw)
            if lookup.get(key, status) != status:
                raise ConfigError(
                    f"config key end_status_values: {raw!r} is listed under both "
                    f"{lookup[key]!r} and {status!r}."
                )
            lookup[key] = status
    return lookup


# ---------------------------------------------------------------- reading, columns


def _read_tables(config: dict, base_dir: Path) -> dict[str, _Table]:
    tables, problems = {}, []
    for name in TABLES:
        entry = (config.get("data") or {}).get(name)
        if entry is None:
            if name != "codes":
                raise ConfigError(f"config key data.{name}: the {name} file is required.")
            continue
        file, sheet = (
            (entry["path"], entry.get("sheet")) if isinstance(entry, dict) else (entry, None)
        )
        label = str(file) if sheet is None else f"{file}, sheet {sheet}"
        try:
            frame = read_table(base_dir / file, sheet)
        except InputFileError as error:
            problems.append(
                Problem(
                    label,
                    None,
                    None,
                    None,
                    error.reason,
                    f"Fix the file, or its path under `data: {name}:` in config/config.yaml.",
                )
            )
            continue
        tables[name] = _Table(name, label, frame, rows=len(frame))
    if problems:
        raise ValidationFailed(problems)
    return tables


def _screen_identifiers(tables: dict[str, _Table], rule: str):
    """Take identifier-like columns out of every table before anything else reads them.

    Returns the problems (``refuse``: they stop the run) and the dropped columns (``drop``).
    """
    refused, dropped = [], []
    for table in tables.values():
        found = find_identifier_columns(table.frame, table.file)
        table.identifiers = {problem.column: problem.message for problem in found}
        table.frame = table.frame.drop(columns=list(table.identifiers))
        (dropped if rule == "drop" else refused).extend(found)
    return refused, dropped


def _select_columns(
    table: _Table, config: dict, schema: dict, settings: _Settings, problems: list[Problem]
) -> None:
    """Keep the mapped columns under their canonical names; add ``study`` if absent."""
    mapping = ((config.get("columns") or {}).get(table.name)) or {}
    known = set(schema["properties"]) | (
        set(settings.covariates) if table.name == "clients" else set()
    )
    where = f"`columns: {table.name}:` in config/config.yaml"
    selected: dict[str, str] = {}
    for canonical, column in mapping.items():
        message = _mapping_problem(canonical, str(column), table, schema, known, selected)
        if message:
            problems.append(
                Problem(
                    table.file,
                    None,
                    str(column),
                    None,
                    message,
                    f"Correct the entry {canonical}: {column} under {where}.",
                )
            )
        else:
            selected[canonical] = str(column)
    table.columns = selected
    table.unused = [c for c in table.frame.columns if c not in selected.values()]
    table.unused = [c for c in table.unused if c not in table.identifiers]
    table.frame = table.frame[list(selected.values())].set_axis(list(selected), axis=1)
    if "study" not in table.frame.columns:
        if settings.study is None:
            problems.append(
                Problem(
                    table.file,
                    None,
                    "study",
                    None,
                    "no study column",
                    "Set `study:` in config/config.yaml or map a study column.",
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


def _mapping_problem(canonical, column, table, schema, known, selected) -> str | None:
    if column in table.identifiers:
        return f"column {column!r} is not read: {table.identifiers[column]}"
    if canonical not in known:
        return (
            f"{canonical!r} is not a column of the {table.name} table (see "
            "docs/data-dictionary.md) nor a listed covariate"
        )
    if schema["properties"].get(canonical, {}).get("readOnly"):
        return f"{canonical!r} is made by the pipeline and cannot be read from a file"
    if column in selected.values():
        return f"column {column!r} is mapped twice"
    if column not in table.frame.columns:
        available = ", ".join(map(str, table.frame.columns))
        return (
            f"column {column!r} (mapped to {canonical}) is not in the file; its columns "
            f"are: {available}"
        )
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
        typed[name], found = validate_table(frame, name, table.file, schemas[name])
        problems += [_end_status_advice(p) for p in found] if name == "clients" else found
    typed["clients"] = _add_frameworks(typed["clients"], fmap, tables["clients"].file, problems)
    typed["clients"] = _convert_covariates(typed["clients"], settings, schemas["clients"])
    return typed


def _map_end_status(values: pd.Series, settings: _Settings) -> pd.Series:
    mapped = values.map(
        lambda raw: settings.end_status_values.get(label_key(raw)), na_action="ignore"
    )
    return mapped.where(mapped.notna(), values)  # unmapped values stay, to be reported


def _end_status_advice(problem: Problem) -> Problem:
    if problem.column != "end_status" or problem.value is None:
        return problem
    return replace(
        problem,
        message=f"end status {problem.value!r} is not listed",
        hint="List the value under its status (completed, dropout, referred, "
        "ongoing) in `end_status_values:` in config/config.yaml.",
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


def _prepare_codes(
    codes: pd.DataFrame, codebook: Codebook, file: str, problems: list[Problem]
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
                    "`columns: codes: value:` in config/config.yaml.",
                )
            )
    return codes


# ---------------------------------------------------------------------- quarantine


def _set_aside(typed: dict[str, pd.DataFrame], problems: list[Problem], files: dict):
    """Remove problem rows and every row of their clients; list each with its reason."""
    table_of = {file: table for table, file in files.items()}
    keys = {table: _client_keys(frame) for table, frame in typed.items()}
    bad_rows = {(table_of[p.file], p.row) for p in problems}
    records = [[p.file, p.row, p.column, p.value, p.message] for p in problems]
    reasons: dict[tuple, str] = {}
    for problem in problems:
        key = keys[table_of[problem.file]].get(problem.row)
        if key is not None:
            reasons.setdefault(key, f"{problem.message} ({problem.file} row {problem.row})")
    kept = {}
    for table, frame in typed.items():
        drop = []
        for row in frame.index:
            key = keys[table].get(row)
            bad = (table, row) in bad_rows
            if key in reasons and not bad:
                records.append(
                    [
                        files[table],
                        row,
                        "client",
                        key[1],
                        f"set aside with client {key[1]}: {reasons[key]}",
                    ]
                )
            drop.append(bad or key in reasons)
        kept[table] = frame[~pd.Series(drop, index=frame.index, dtype=bool)]
    quarantine = pd.DataFrame(records, columns=QUARANTINE_COLUMNS)
    quarantine["row"] = quarantine["row"].astype("Int64")
    return kept, quarantine.sort_values(["file", "row"], kind="stable").reset_index(drop=True)


def _client_keys(frame: pd.DataFrame) -> dict[int, tuple]:
    """Row -> (study, client) for rows with both."""
    if not set(CLIENT_KEY) <= set(frame.columns):
        return {}
    complete = frame[CLIENT_KEY].dropna()
    return dict(
        zip(complete.index, zip(complete["study"], complete["client"], strict=True), strict=True)
    )


def _sessions_with_constructs(typed, codebook: Codebook, settings: _Settings) -> pd.DataFrame:
    codes = typed.get("codes")
    if codes is None or codes.empty:
        return typed["sessions"]
    return aggregate_codes(codes, typed["sessions"], codebook, settings.repair_threshold)


def _empty_codes(schema: dict) -> pd.DataFrame:
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
    set_aside = result.quarantine.drop_duplicates(["file", "row"])["file"].value_counts()
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
    lines += _problem_sections(result.problems, max_rows)
    if len(result.quarantine):
        lines += [
            "",
            "## Quarantine",
            "",
            f"{_count(len(result.quarantine), 'row')} set aside, each listed with its reason "
            "in the quarantine table (quarantine.csv next to this report). The rows of a "
            "client with a problem in any file are set aside together.",
        ]
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
