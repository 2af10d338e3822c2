"""Derived analysis tables built from the canonical ``clients`` and ``sessions`` tables.

- :func:`dropout_indicators`: one 0/1 column per configured dropout definition
  (Swift & Greenberg, 2012).
- :func:`within_between`: within-client and between-client parts of session-level
  predictors (Curran & Bauer, 2011).
- :func:`session_table`: sessions with client attributes, centred session number and
  within/between splits (data level ``sessions``).
- :func:`client_table`: one row per client with attendance, construct totals, rates and
  means, repair and homework summaries and the dropout indicators (data level
  ``clients``).
- :func:`person_period`: discrete-time survival data, one row per attended session at risk
  of dropout (data level ``person-period``).
- :func:`profile_long`: the types of the profiled composite in long form, one row per
  attended session and type, with its form (data level ``profile_long``).
- :func:`profile_forms`: the forms of the profiled composite in long form, one row per
  attended session and form (data level ``profile_forms``).

No list of constructs lives here: the tables are built for the constructs declared in the
codebook and present in the sessions table (:func:`constructs_present`, from the run's
:class:`~resistance_outcomes.vocabulary.Vocabulary`), and every column follows from the
declaration: count constructs get ``<name>_total``, ``<stem>_rate``, ``<stem>_rate_hour``
and ``<stem>_rate_between`` at the client level; ratings get ``<name>_mean`` and
``<name>_mean_between``; every construct gets ``<name>_within`` and ``<name>_between`` at
the session level. The pipeline's own variables (``unrepaired``, ``repair_rate``,
``session_c``, ``log_time``, ``homework_rate``, ``alliance_mean``) exist when their
inputs do. Column names follow ``docs/data-dictionary.md``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from resistance_outcomes.codebook import humanise
from resistance_outcomes.config import ConfigError
from resistance_outcomes.vocabulary import DEFAULT_LABELS, ConstructInfo, Vocabulary

__all__ = [
    "ConfigError",
    "DataError",
    "as_float",
    "attended_mask",
    "check_tables",
    "client_table",
    "constructs_present",
    "dropout_indicators",
    "dropout_labels",
    "infer_constructs",
    "person_period",
    "profile_forms",
    "profile_long",
    "require_columns",
    "session_table",
    "within_between",
]

CLIENT_KEY = ["study", "client"]
SESSION_KEY = ["study", "client", "session"]
END_STATUSES = ("completed", "dropout", "referred", "ongoing")

#: Dropout rules and the parameters each accepts (required ones have no default); every
#: definition may also carry a ``description`` (its printed label in tables).
DROPOUT_RULES = {
    "end_status": {"dropout": ["dropout"]},
    "min_attended": {"sessions": None},
    "missed_last_scheduled": {},
    "protocol_incomplete": {},
}

REPAIR_NO_RUPTURE_RULES = ("nan", "zero", "one", "exclude")

#: Columns of the data contract (and of the derived tables) that are never taken for
#: constructs when the constructs are inferred from the columns (:func:`infer_constructs`).
NOT_CONSTRUCTS = frozenset(
    {
        "study",
        "site",
        "therapist",
        "client",
        "session",
        "attended",
        "minutes",
        "homework_done",
        "psq_tension",
        "psq_intensity",
        "psq_resolution",
        "unrepaired",
        "session_c",
        "time",
        "log_time",
        "event",
        "framework",
        "treatment_label",
        "planned_sessions",
        "end_status",
    }
)
#: Rate stems of the data contract's constructs when inferred without a codebook.
_CONTRACT_STEMS = {"ruptures": "rupture"}
#: Client-level columns of the pipeline itself, which no construct's columns may take.
_RESERVED = (
    "sessions_scheduled",
    "sessions_attended",
    "attendance_rate",
    "minutes_total",
    "repair_rate",
    "homework_rate",
)

_REQUIRED = {
    "clients": ("study", "client", "therapist", "framework", "planned_sessions", "end_status"),
    "sessions": ("study", "client", "session", "attended"),
}


class DataError(ValueError):
    """The canonical tables handed to a derive or describe function are inconsistent."""


# --------------------------------------------------------------------------- checks


def _describe_row(frame: pd.DataFrame, position: int, key: Sequence[str]) -> str:
    row = frame.iloc[position]
    return ", ".join(f"{k} '{row[k]}'" for k in key if k in frame.columns)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    """Raise :class:`DataError` when ``frame`` lacks any of ``columns``.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table to check.
    columns : sequence of str
        Column names that must be present.
    table : str
        Name of the table, used in the message.

    Examples
    --------
    >>> import pandas as pd
    >>> require_columns(pd.DataFrame({"client": ["C1"]}), ["client"], "clients")
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{table} table: missing column(s) {', '.join(missing)}; available columns are "
            f"{', '.join(map(str, frame.columns))}. Build the table with the ingest step so it "
            "follows docs/data-dictionary.md."
        )


def attended_mask(sessions: pd.DataFrame) -> np.ndarray:
    """Return ``sessions["attended"]`` as a bool array; refuse missing or non-boolean values.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Canonical sessions table.

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"study": ["s"], "client": ["C1"], "session": [1], "attended": [True]})
    >>> attended_mask(s)
    array([ True])
    """
    values = sessions["attended"]
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        where = _describe_row(sessions, int(missing[0]), SESSION_KEY)
        raise DataError(
            f"sessions table: {missing.size} row(s) with an empty 'attended' value, first at "
            f"{where}. Record whether every scheduled session was attended (true/false)."
        )
    try:
        return values.astype("boolean").to_numpy(dtype=bool)
    except (TypeError, ValueError):
        first = int(np.flatnonzero(~values.isin([True, False, 0, 1]).to_numpy())[0])
        where = _describe_row(sessions, first, SESSION_KEY)
        raise DataError(
            f"sessions table: column 'attended' has value '{values.iloc[first]}' at {where}; "
            "expected true or false. Validate the sessions file with the ingest step first."
        ) from None


def as_float(frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    """Return a numeric or boolean column as float64 with NaN for missing values.

    Parameters
    ----------
    frame : pandas.DataFrame
        Table holding the column.
    column : str
        Column to convert (numeric, nullable integer or boolean).
    table : str
        Name of the table, used in the error message.

    Returns
    -------
    pandas.Series of float64

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"homework_done": pd.array([True, None, False], dtype="boolean")})
    >>> as_float(df, "homework_done", "sessions").tolist()
    [1.0, nan, 0.0]
    """
    series = frame[column]
    try:
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        numeric = pd.to_numeric(series, errors="coerce")
        bad = series[numeric.isna() & series.notna()]
        raise DataError(
            f"{table} table: column '{column}' has the non-numeric value '{bad.iloc[0]}' "
            f"(first of {len(bad)}). Validate the table with the ingest step first."
        ) from None
    return pd.Series(values, index=series.index, name=column)


def check_tables(clients: pd.DataFrame, sessions: pd.DataFrame) -> None:
    """Check that ``clients`` and ``sessions`` fit together before anything is derived.

    Checks required columns, unique client and session keys, known ``end_status`` values,
    complete ``attended`` values and that every session belongs to a listed client.

    Parameters
    ----------
    clients, sessions : pandas.DataFrame
        Canonical tables (see ``docs/data-dictionary.md``).

    Raises
    ------
    DataError
        Naming the table, the key of the first offending row, the column and the value.

    Examples
    --------
    >>> import pandas as pd
    >>> clients = pd.DataFrame({"study": ["s"], "client": ["C1"], "therapist": ["T1"],
    ...                         "framework": ["cognitive"], "planned_sessions": [2],
    ...                         "end_status": ["completed"]})
    >>> sessions = pd.DataFrame({"study": "s", "client": "C1", "session": [1, 2],
    ...                          "attended": [True, True]})
    >>> check_tables(clients, sessions)
    """
    require_columns(clients, _REQUIRED["clients"], "clients")
    require_columns(sessions, _REQUIRED["sessions"], "sessions")
    for table, frame, key in (
        ("clients", clients, CLIENT_KEY),
        ("sessions", sessions, SESSION_KEY),
    ):
        blank = np.flatnonzero(frame[key].isna().any(axis=1).to_numpy())
        if blank.size:
            raise DataError(
                f"{table} table: empty key value ({', '.join(key)}) at row position "
                f"{int(blank[0])}. Every row needs {', '.join(key)}."
            )
        duplicated = np.flatnonzero(frame.duplicated(key).to_numpy())
        if duplicated.size:
            where = _describe_row(frame, int(duplicated[0]), key)
            raise DataError(
                f"{table} table: {duplicated.size} duplicated key(s), first {where}. "
                "Each key must appear once; remove or renumber the duplicates."
            )
    status = clients["end_status"]
    unknown = np.flatnonzero((status.isna() | ~status.astype(str).isin(END_STATUSES)).to_numpy())
    if unknown.size:
        where = _describe_row(clients, int(unknown[0]), CLIENT_KEY)
        raise DataError(
            f"clients table: column 'end_status' has value '{status.iloc[unknown[0]]}' at "
            f"{where}; expected one of {', '.join(END_STATUSES)}. Map it under "
            "end_status_values in the run's config file."
        )
    known = pd.MultiIndex.from_frame(clients[CLIENT_KEY].astype(str))
    orphan = np.flatnonzero(~pd.MultiIndex.from_frame(sessions[CLIENT_KEY].astype(str)).isin(known))
    if orphan.size:
        where = _describe_row(sessions, int(orphan[0]), SESSION_KEY)
        raise DataError(
            f"sessions table: {orphan.size} row(s) belong to clients missing from the clients "
            f"table, first {where}. Add the client to the clients file or remove its sessions."
        )
    attended_mask(sessions)


# ------------------------------------------------------------------------ constructs

#: What :func:`constructs_present` accepts: the run's vocabulary, its constructs (a list,
#: or a mapping name -> construct), or None (inferred from the columns).
Constructs = Vocabulary | Sequence[ConstructInfo] | Mapping[str, ConstructInfo] | None


def infer_constructs(sessions: pd.DataFrame) -> list[ConstructInfo]:
    """Constructs read off the columns of a sessions table, for use without a codebook.

    Every column that is not part of the data contract (:data:`NOT_CONSTRUCTS`, and no
    ``_within``/``_between`` split) is a construct: boolean columns are ``boolean``,
    numeric columns whose values are all whole numbers of at least 0 are ``count``, other
    numeric columns ``rating``; text columns are not constructs. Labels are the names in
    words. The workflow does not rely on this: it passes the declared constructs
    (``results/data/vocabulary.json``).

    Parameters
    ----------
    sessions : pandas.DataFrame
        Canonical sessions table.

    Returns
    -------
    list of ConstructInfo
        In column order.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"study": "s", "client": "a", "session": [1, 2],
    ...                   "attended": True, "sustain_talk": [2, 0], "empathy": [3.5, 4.0]})
    >>> [(c.name, c.kind) for c in infer_constructs(s)]
    [('sustain_talk', 'count'), ('empathy', 'rating')]
    """
    infos = []
    for column in sessions.columns:
        name = str(column)
        if name in NOT_CONSTRUCTS or name.endswith(("_within", "_between")):
            continue
        series = sessions[column]
        if pd.api.types.is_bool_dtype(series.dtype):
            kind = "boolean"
        elif pd.api.types.is_numeric_dtype(series.dtype):
            values = series.dropna().astype("float64")
            kind = "count" if ((values % 1 == 0) & (values >= 0)).all() else "rating"
        else:
            continue
        rule = "rated_at_least" if name == "repaired" else "column"
        infos.append(
            ConstructInfo(name, humanise(name), kind, rule, stem=_CONTRACT_STEMS.get(name, name))
        )
    return infos


def constructs_present(
    sessions: pd.DataFrame, constructs: Constructs = None
) -> list[ConstructInfo]:
    """The constructs the derived tables are built for: declared and in ``sessions``.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Canonical sessions table.
    constructs : Vocabulary, list or mapping of ConstructInfo, optional
        The declared constructs (``Vocabulary.constructs``, in codebook order). Default:
        :func:`infer_constructs`.

    Returns
    -------
    list of ConstructInfo
        The declared constructs with a column in ``sessions`` (``homework_done`` excepted:
        it becomes ``homework_rate``), then the pipeline's own: ``alliance`` (a rating)
        when it is a column and not declared, and ``unrepaired`` (``ruptures -
        repaired``, a count) right after ``repaired`` when ``ruptures`` and ``repaired``
        are both present.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.vocabulary import ConstructInfo
    >>> s = pd.DataFrame({"attended": [True], "ruptures": [2], "repaired": [1]})
    >>> declared = [ConstructInfo("ruptures", "Ruptures", "count", "any_of", stem="rupture"),
    ...             ConstructInfo("repaired", "Repaired", "count", "rated_at_least"),
    ...             ConstructInfo("sustain_talk", "Sustain talk", "count", "column")]
    >>> [c.name for c in constructs_present(s, declared)]
    ['ruptures', 'repaired', 'unrepaired']
    """
    if constructs is None:
        infos = infer_constructs(sessions)
    elif isinstance(constructs, Vocabulary):
        infos = list(constructs.constructs.values())
    elif isinstance(constructs, Mapping):
        infos = list(constructs.values())
    else:
        infos = list(constructs)
    infos = [
        c
        for c in infos
        if c.name in sessions.columns and c.name not in ("homework_done", "unrepaired")
    ]
    names = [c.name for c in infos]
    if "alliance" in sessions.columns and "alliance" not in names:
        infos.append(ConstructInfo("alliance", DEFAULT_LABELS["alliance"], "rating", "column"))
    if {"ruptures", "repaired"} <= set(names):
        unrepaired = ConstructInfo("unrepaired", DEFAULT_LABELS["unrepaired"], "count", "derived")
        infos.insert(names.index("repaired") + 1, unrepaired)
    _check_column_names(infos)
    return infos


def _has_rate(construct: ConstructInfo) -> bool:
    """Counts and booleans have client rates; a count within another (``rated_at_least``)
    and the data contract's ``repaired`` have their total only: their share of the other
    (``repair_rate``) is the rate that matters."""
    return (
        construct.kind in ("count", "boolean")
        and construct.rule != "rated_at_least"
        and construct.name != "repaired"
    )


def _client_columns(construct: ConstructInfo) -> list[str]:
    """The client-level columns a construct gets (see :func:`client_table`)."""
    if construct.kind == "rating":
        return [f"{construct.name}_mean", f"{construct.name}_mean_between"]
    columns = [f"{construct.name}_total"]
    if _has_rate(construct):
        rate = construct.rate_column
        columns += [rate, f"{rate}_between"]
        if construct.kind == "count":
            columns.append(f"{rate}_hour")
    return columns


def _check_column_names(infos: Sequence[ConstructInfo]) -> None:
    """Refuse two constructs (or a construct and the pipeline) making the same column."""
    owner: dict[str, str] = {column: "the pipeline" for column in _RESERVED}
    for construct in infos:
        for column in _client_columns(construct):
            if column in owner:
                raise ConfigError(
                    f"construct {construct.name!r}: its client column {column!r} is already "
                    f"made by {owner[column]}; give the construct another `stem:` in the "
                    "codebook."
                )
            owner[column] = f"construct {construct.name!r}"


# --------------------------------------------------------------------------- dropout


def _validated_definitions(definitions: Mapping) -> dict[str, tuple[str, dict]]:
    """Check dropout definitions and fill in default parameters."""
    if not isinstance(definitions, Mapping):
        raise ConfigError(
            "dropout definitions must be a mapping of name -> {rule: ..., ...}; got "
            f"{type(definitions).__name__}."
        )
    checked = {}
    for name, spec in definitions.items():
        where = f"dropout definition '{name}'"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ConfigError(
                f"{where}: names must start with a letter and use only letters, digits and "
                "underscores (they become column names dropout_<name>)."
            )
        if not isinstance(spec, Mapping) or "rule" not in spec:
            raise ConfigError(
                f"{where}: give a mapping with a 'rule' key, e.g. {{rule: end_status}}."
            )
        rule = spec["rule"]
        if rule not in DROPOUT_RULES:
            raise ConfigError(
                f"{where}: unknown rule '{rule}'; known rules are {', '.join(DROPOUT_RULES)}."
            )
        allowed = DROPOUT_RULES[rule]
        extra = sorted(set(spec) - set(allowed) - {"rule", "description"})
        if extra:
            accepted = ", ".join([*allowed, "description"])
            raise ConfigError(
                f"{where}: unknown parameter(s) {', '.join(extra)} for rule '{rule}' "
                f"(it accepts {accepted})."
            )
        description = spec.get("description")
        if description is not None and (not isinstance(description, str) or not description):
            raise ConfigError(
                f"{where}: 'description' must be a short text, e.g. "
                f"'fewer than 4 sessions attended'; got {description!r}."
            )
        params = {key: spec.get(key, default) for key, default in allowed.items()}
        _check_rule_parameters(rule, params, where)
        checked[name] = (rule, params)
    return checked


def _check_rule_parameters(rule: str, params: dict, where: str) -> None:
    if rule == "min_attended":
        n = params["sessions"]
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(
                f"{where}: rule min_attended needs 'sessions', a whole number >= 1; got {n!r}."
            )
    if rule == "end_status":
        statuses = params["dropout"]
        classifiable = [s for s in END_STATUSES if s != "ongoing"]
        if (
            isinstance(statuses, str)
            or not isinstance(statuses, Sequence)
            or not statuses
            or any(s not in classifiable for s in statuses)
        ):
            raise ConfigError(
                f"{where}: 'dropout' must be a non-empty list drawn from "
                f"{', '.join(classifiable)} (ongoing clients are never classified); "
                f"got {statuses!r}."
            )


def _client_summary(clients: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Per-client schedule facts used by the dropout rules, in ``clients`` row order."""
    frame = sessions[SESSION_KEY].assign(attended=attended_mask(sessions))
    frame = frame.sort_values(SESSION_KEY)
    grouped = frame.groupby(CLIENT_KEY, sort=False)
    summary = pd.DataFrame(
        {
            "sessions_scheduled": grouped.size(),
            "sessions_attended": grouped["attended"].sum(),
            "last_scheduled_attended": grouped["attended"].last(),
        }
    ).reset_index()
    out = clients[[*CLIENT_KEY, "end_status", "planned_sessions"]].merge(
        summary, on=CLIENT_KEY, how="left", validate="one_to_one"
    )
    out["end_status"] = out["end_status"].astype(str)
    out["sessions_scheduled"] = out["sessions_scheduled"].fillna(0).astype(int)
    out["sessions_attended"] = out["sessions_attended"].fillna(0).astype(int)
    out["planned_sessions"] = as_float(out, "planned_sessions", "clients")
    return out


def _classify(summary: pd.DataFrame, rule: str, params: dict) -> pd.Series:
    """Apply one dropout rule; returns float 1/0 with NaN where it cannot classify."""
    ongoing = summary["end_status"].eq("ongoing").to_numpy()
    attended = summary["sessions_attended"].to_numpy()
    if rule == "end_status":
        result = summary["end_status"].isin(params["dropout"]).to_numpy(dtype=float)
        result[ongoing] = np.nan
    elif rule == "min_attended":
        result = (attended < params["sessions"]).astype(float)
        result[ongoing & (result == 1)] = np.nan
    elif rule == "missed_last_scheduled":
        last = summary["last_scheduled_attended"]
        result = np.where(last.isna(), np.nan, last.eq(False).to_numpy(dtype=float))
        result[ongoing] = np.nan
    else:  # protocol_incomplete
        planned = summary["planned_sessions"].to_numpy()
        result = np.where(np.isnan(planned), np.nan, (attended < planned).astype(float))
        result[ongoing & (result == 1)] = np.nan
    return pd.Series(result, index=summary.index)


def dropout_indicators(
    clients: pd.DataFrame, sessions: pd.DataFrame, definitions: Mapping
) -> pd.DataFrame:
    """Classify every client as dropout (1), not dropout (0) or unclassifiable (NA).

    Dropout rates depend on the definition (Swift & Greenberg, 2012), so several can be
    computed side by side. Rules:

    ``end_status`` (parameter ``dropout``, default ``[dropout]``)
        Therapist judgement: 1 when ``end_status`` is listed, else 0 (``referred`` counts as
        not dropout unless listed); ``ongoing`` -> NA.
    ``min_attended`` (parameter ``sessions``, required)
        1 when the client attended fewer than ``sessions`` sessions, else 0. Ongoing clients
        below the threshold so far -> NA (they may still reach it); ongoing clients at or
        above it -> 0. Planned length is ignored, as in the literature's definition.
    ``missed_last_scheduled``
        1 when the client's last scheduled session was not attended, else 0; ongoing clients
        and clients without any scheduled session -> NA.
    ``protocol_incomplete``
        1 when the client attended fewer than ``planned_sessions``, else 0; ongoing clients
        below that number so far -> NA; missing ``planned_sessions`` -> NA.

    Parameters
    ----------
    clients, sessions : pandas.DataFrame
        Canonical tables (see ``docs/data-dictionary.md``).
    definitions : mapping
        ``{name: {"rule": rule, **parameters}}``, as under ``dropout.definitions`` in the
        configuration.

    Returns
    -------
    pandas.DataFrame
        ``study``, ``client`` and one nullable ``Int64`` column ``dropout_<name>`` per
        definition, in the row order of ``clients``.

    Raises
    ------
    ConfigError
        Unknown rule, unknown or invalid parameter; the message names the definition.
    DataError
        Inconsistent input tables.

    Examples
    --------
    >>> import pandas as pd
    >>> clients = pd.DataFrame({"study": "s", "client": ["C1", "C2"], "therapist": "T1",
    ...                         "framework": "cognitive", "planned_sessions": 3,
    ...                         "end_status": ["completed", "dropout"]})
    >>> sessions = pd.DataFrame({"study": "s", "client": ["C1"] * 3 + ["C2"] * 2,
    ...                          "session": [1, 2, 3, 1, 2],
    ...                          "attended": [True, True, True, True, False]})
    >>> dropout_indicators(clients, sessions, {"judged": {"rule": "end_status"},
    ...                                         "missed": {"rule": "missed_last_scheduled"}})
      study client  dropout_judged  dropout_missed
    0     s     C1               0               0
    1     s     C2               1               1
    """
    checked = _validated_definitions(definitions)
    check_tables(clients, sessions)
    summary = _client_summary(clients, sessions)
    out = clients[CLIENT_KEY].reset_index(drop=True)
    for name, (rule, params) in checked.items():
        out[f"dropout_{name}"] = _classify(summary, rule, params).astype("Int64")
    return out


def _rule_sentence(rule: str, params: Mapping) -> str:
    """A definition's rule in words, for a definition without a ``description``."""
    if rule == "end_status":
        return f"end status {' or '.join(map(str, params['dropout']))}"
    if rule == "min_attended":
        n = params["sessions"]
        return "no session attended" if n == 1 else f"fewer than {n} sessions attended"
    if rule == "missed_last_scheduled":
        return "last scheduled session not attended"
    return "fewer sessions attended than planned"


def dropout_labels(definitions: Mapping) -> dict[str, str]:
    """Printed label of each dropout definition's column, for tables.

    The definition's ``description`` (config ``dropout.definitions.<name>.description``)
    or, without one, its rule in words; never the definition's key.

    Parameters
    ----------
    definitions : mapping
        ``dropout.definitions`` of the configuration.

    Returns
    -------
    dict
        ``dropout_<name>`` -> ``"Dropout: <description>"``, and ``dropout`` -> ``"Dropout"``.

    Examples
    --------
    >>> labels = dropout_labels({
    ...     "judged": {"rule": "end_status", "description": "judged by the therapist"},
    ...     "fewer_than_4": {"rule": "min_attended", "sessions": 4}})
    >>> labels["dropout_judged"], labels["dropout_fewer_than_4"]
    ('Dropout: judged by the therapist', 'Dropout: fewer than 4 sessions attended')
    """
    labels = {"dropout": DEFAULT_LABELS["dropout"]}
    for name, (rule, params) in _validated_definitions(definitions).items():
        description = definitions[name].get("description") or _rule_sentence(rule, params)
        labels[f"dropout_{name}"] = f"{DEFAULT_LABELS['dropout']}: {description}"
    return labels


# --------------------------------------------------------------------------- centring


def within_between(
    df: pd.DataFrame, columns: Sequence[str], cluster: str | Sequence[str] = "client"
) -> pd.DataFrame:
    """Split predictors into within-cluster and between-cluster parts.

    Following Curran & Bauer (2011), for each column ``x``:

    - ``x_between`` = the cluster's mean of ``x`` over its rows with a value, minus the grand
      mean of those cluster means (each cluster weighted equally). It is repeated on every
      row of the cluster, including rows without a value.
    - ``x_within`` = ``x`` minus the cluster's mean (NaN where ``x`` is missing).

    So ``x = x_within + x_between + grand mean`` on every row with a value. In the sessions
    table construct columns are empty for sessions not attended, so the client means are
    means over attended sessions. Boolean columns are treated as 0/1. Existing
    ``x_within``/``x_between`` columns are overwritten.

    Parameters
    ----------
    df : pandas.DataFrame
        Long table, one row per observation.
    columns : sequence of str
        Numeric or boolean columns to split.
    cluster : str or sequence of str, default "client"
        Column(s) identifying the cluster. Use ``["study", "client"]`` when client ids
        repeat across studies.

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with ``<x>_within`` and ``<x>_between`` added for each column.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"client": ["A", "A", "B", "B"], "ruptures": [0, 2, 3, 5]})
    >>> within_between(df, ["ruptures"])
      client  ruptures  ruptures_within  ruptures_between
    0      A         0             -1.0              -1.5
    1      A         2              1.0              -1.5
    2      B         3             -1.0               1.5
    3      B         5              1.0               1.5
    """
    keys = [cluster] if isinstance(cluster, str) else list(cluster)
    require_columns(df, [*keys, *columns], "input")
    if df[keys].isna().any(axis=None):
        raise DataError(f"input table: empty cluster id in column(s) {', '.join(keys)}.")
    out = df.copy()
    groups = [out[k] for k in keys]
    for column in columns:
        values = as_float(out, column, "input")
        cluster_mean = values.groupby(groups, observed=True).transform("mean")
        grand_mean = values.groupby(groups, observed=True).mean().mean()
        out[f"{column}_within"] = values - cluster_mean
        out[f"{column}_between"] = cluster_mean - grand_mean
    return out


def _with_unrepaired(sessions: pd.DataFrame) -> pd.DataFrame:
    """Add ``unrepaired = ruptures - repaired`` when both columns exist."""
    if {"ruptures", "repaired"} <= set(sessions.columns) and "unrepaired" not in sessions:
        sessions = sessions.assign(
            unrepaired=as_float(sessions, "ruptures", "sessions")
            - as_float(sessions, "repaired", "sessions")
        )
    return sessions


def _join_clients(sessions: pd.DataFrame, clients: pd.DataFrame) -> pd.DataFrame:
    """Sessions (sorted by key) with every client column, client columns first."""
    client_cols = list(clients.columns)
    session_cols = [c for c in sessions.columns if c not in client_cols]
    joined = sessions[[*CLIENT_KEY, *session_cols]].merge(
        clients, on=CLIENT_KEY, how="left", validate="many_to_one"
    )
    joined = joined[[*client_cols, *session_cols]]
    return joined.sort_values(SESSION_KEY, kind="stable").reset_index(drop=True)


def session_table(
    sessions: pd.DataFrame,
    clients: pd.DataFrame,
    predictors: Sequence[str] | None = None,
    constructs: Constructs = None,
) -> pd.DataFrame:
    """Build the session-level analysis table.

    Every scheduled session with the client's columns (therapist, site, framework,
    treatment_label, covariates...), plus:

    - ``unrepaired`` = ``ruptures - repaired`` (when both are present);
    - ``session_c`` = ``session`` minus the mean session number of the attended sessions in
      the table, so that it averages 0 over the sessions a rupture model is fitted on and
      the intercept refers to the average attended session;
    - ``<x>_within`` and ``<x>_between`` for each construct present (see
      :func:`constructs_present`: counts, ratings and booleans, ``unrepaired`` and
      ``alliance`` included) or each of ``predictors``, with clients identified by study
      and client (see :func:`within_between`).

    Parameters
    ----------
    sessions, clients : pandas.DataFrame
        Canonical tables.
    predictors : sequence of str, optional
        Columns to split. Default: every construct present.
    constructs : Vocabulary, list or mapping of ConstructInfo, optional
        The declared constructs (see :func:`constructs_present`); default inferred from
        the columns.

    Returns
    -------
    pandas.DataFrame
        One row per scheduled session, sorted by study, client, session.

    Examples
    --------
    >>> import pandas as pd
    >>> clients = pd.DataFrame({"study": "s", "client": ["C1"], "therapist": "T1",
    ...                         "framework": "behavioral", "planned_sessions": 3,
    ...                         "end_status": "completed"})
    >>> sessions = pd.DataFrame({"study": "s", "client": "C1", "session": [1, 2, 3],
    ...                          "attended": [True, False, True],
    ...                          "sustain_talk": [3, None, 1]})
    >>> session_table(sessions, clients)[["session", "session_c", "sustain_talk_within"]]
       session  session_c  sustain_talk_within
    0        1       -1.0                  1.0
    1        2        0.0                  NaN
    2        3        1.0                 -1.0
    """
    check_tables(clients, sessions)
    infos = constructs_present(sessions, constructs)
    table = _join_clients(_with_unrepaired(sessions), clients)
    attended = attended_mask(table)
    session = as_float(table, "session", "sessions")
    centred = session - session[attended].mean()
    table.insert(table.columns.get_loc("session") + 1, "session_c", centred)
    if predictors is None:
        predictors = [c.name for c in infos]
    return within_between(table, predictors, cluster=CLIENT_KEY)


# --------------------------------------------------------------------------- clients


def _construct_totals(frame: pd.DataFrame, construct: str) -> pd.DataFrame:
    """Per-client total, coded sessions and their minutes for one count construct."""
    values = as_float(frame, construct, "sessions")
    coded = values.notna()
    minutes = as_float(frame, "minutes", "sessions") if "minutes" in frame else np.nan
    parts = pd.DataFrame(
        {
            "total": values.fillna(0.0),
            "coded": coded.astype(float),
            "minutes": pd.Series(minutes, index=frame.index).where(coded, 0.0),
        }
    )
    return parts.groupby([frame[k] for k in CLIENT_KEY]).sum()


def _session_aggregates(sessions: pd.DataFrame, infos: Sequence[ConstructInfo]) -> pd.DataFrame:
    """Client-level aggregates of the attended sessions, indexed by study and client."""
    attended = attended_mask(sessions)
    keys = [sessions[k] for k in CLIENT_KEY]
    columns = {
        "sessions_scheduled": pd.Series(1.0, index=sessions.index).groupby(keys).sum(),
        "sessions_attended": pd.Series(attended.astype(float), index=sessions.index)
        .groupby(keys)
        .sum(),
    }
    done = sessions[attended]
    done_keys = [done[k] for k in CLIENT_KEY]
    if "minutes" in done:
        columns["minutes_total"] = as_float(done, "minutes", "sessions").groupby(done_keys).sum()
    for construct in infos:
        name = construct.name
        if construct.kind == "rating":
            columns[f"{name}_mean"] = as_float(done, name, "sessions").groupby(done_keys).mean()
            continue
        parts = _construct_totals(done, name)
        columns[f"{name}_total"] = parts["total"]
        if not _has_rate(construct):
            continue
        stem = construct.rate_column
        coded, minutes = parts["coded"], parts["minutes"]
        columns[stem] = parts["total"] / coded.where(coded > 0)
        if construct.kind == "count" and "minutes" in done:
            columns[f"{stem}_hour"] = 60.0 * parts["total"] / minutes.where(minutes > 0)
    if "homework_done" in done:
        homework = as_float(done, "homework_done", "sessions")
        columns["homework_rate"] = homework.groupby(done_keys).mean()
    return pd.DataFrame(columns)


def _apply_repair_rule(table: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Add ``repair_rate``; clients who attended but had no ruptures follow ``rule``."""
    ruptures = table["ruptures_total"]
    table["repair_rate"] = table["repaired_total"] / ruptures.where(ruptures > 0)
    no_ruptures = ruptures.eq(0) & table["rupture_rate"].notna()
    if rule in ("zero", "one"):
        table.loc[no_ruptures, "repair_rate"] = 0.0 if rule == "zero" else 1.0
    elif rule == "exclude" and no_ruptures.any():
        warnings.warn(
            f"client_table: {int(no_ruptures.sum())} client(s) without ruptures were excluded "
            "(repair_no_ruptures='exclude').",
            UserWarning,
            stacklevel=3,
        )
        table = table[~no_ruptures].reset_index(drop=True)
    return table


def _add_between(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Add grand-mean-centred copies ``<x>_between`` of client-level rates (clients equal)."""
    for column in (c for c in columns if c in table):
        table[f"{column}_between"] = table[column] - table[column].mean()
    return table


def client_table(
    sessions: pd.DataFrame,
    clients: pd.DataFrame,
    definitions: Mapping | None = None,
    repair_no_ruptures: str = "nan",
    primary: str | None = None,
    constructs: Constructs = None,
) -> pd.DataFrame:
    """Build the client-level analysis table, one row per client.

    Columns, after every column of ``clients``:

    - ``sessions_scheduled``, ``sessions_attended``, ``attendance_rate`` (attended /
      scheduled), ``minutes_total`` (minutes of attended sessions);
    - for each count construct present (see :func:`constructs_present`): ``<c>_total`` (sum
      over attended sessions, 0 when there are none), ``<stem>_rate`` (total per attended
      session with a value) and ``<stem>_rate_hour`` (total per 60 minutes of those
      sessions), where the stem is the construct's declared ``stem`` (``rupture`` for
      ``ruptures``: ``rupture_rate``) or its name; a count made within another
      (``rated_at_least``) and ``repaired`` have a total only. Boolean constructs get
      ``<c>_total`` (sessions where true) and ``<stem>_rate`` (their share). Rating
      constructs get ``<c>_mean``, the mean over attended sessions with a value
      (``alliance_mean`` for ``alliance``);
    - ``repair_rate`` = ``repaired_total / ruptures_total``. Clients who attended sessions
      but had no ruptures get, by ``repair_no_ruptures``: ``"nan"`` (default; models using
      ``repair_rate`` then leave them out), ``"zero"``, ``"one"``, or ``"exclude"`` (their
      rows are removed, with a warning giving the count). Clients who attended nothing get NaN;
    - ``homework_rate`` (share of attended sessions with homework set where it was done);
    - ``<stem>_rate_between``, ``repair_rate_between`` and ``<c>_mean_between``: the rate or
      mean minus its mean over clients, for client-level models;
    - ``dropout_<name>`` per definition (see :func:`dropout_indicators`) and, when
      ``primary`` is given, ``dropout`` as a copy of ``dropout_<primary>``.

    Parameters
    ----------
    sessions, clients : pandas.DataFrame
        Canonical tables.
    definitions : mapping, optional
        Dropout definitions, as for :func:`dropout_indicators`.
    repair_no_ruptures : {"nan", "zero", "one", "exclude"}, default "nan"
        Repair rate of clients without ruptures.
    primary : str, optional
        Name of the definition copied to the ``dropout`` column.
    constructs : Vocabulary, list or mapping of ConstructInfo, optional
        The declared constructs (see :func:`constructs_present`); default inferred from
        the columns.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> clients = pd.DataFrame({"study": "s", "client": ["C1"], "therapist": "T1",
    ...                         "framework": "cognitive", "planned_sessions": 2,
    ...                         "end_status": "completed"})
    >>> sessions = pd.DataFrame({"study": "s", "client": "C1", "session": [1, 2],
    ...                          "attended": True, "minutes": [50.0, 40.0],
    ...                          "ruptures": [2, 1], "repaired": [1, 1]})
    >>> table = client_table(sessions, clients)
    >>> table[["ruptures_total", "rupture_rate", "rupture_rate_hour", "repair_rate"]].round(3)
       ruptures_total  rupture_rate  rupture_rate_hour  repair_rate
    0             3.0           1.5                2.0        0.667
    """
    definitions = definitions or {}
    if repair_no_ruptures not in REPAIR_NO_RUPTURE_RULES:
        raise ConfigError(
            f"repair_no_ruptures: unknown value {repair_no_ruptures!r}; use one of "
            f"{', '.join(REPAIR_NO_RUPTURE_RULES)}."
        )
    if primary is not None and primary not in definitions:
        raise ConfigError(
            f"dropout primary '{primary}' is not among the dropout definitions "
            f"({', '.join(definitions) or 'none given'})."
        )
    indicators = dropout_indicators(clients, sessions, definitions)
    infos = constructs_present(sessions, constructs)
    aggregates = _session_aggregates(_with_unrepaired(sessions), infos).reset_index()
    table = clients.reset_index(drop=True).merge(
        aggregates, on=CLIENT_KEY, how="left", validate="one_to_one"
    )
    table[["sessions_scheduled", "sessions_attended"]] = (
        table[["sessions_scheduled", "sessions_attended"]].fillna(0).astype(int)
    )
    for total in [c for c in table.columns if c.endswith("_total") and c not in clients]:
        table[total] = table[total].fillna(0.0)
    scheduled = table["sessions_scheduled"]
    table.insert(
        table.columns.get_loc("sessions_attended") + 1,
        "attendance_rate",
        table["sessions_attended"] / scheduled.where(scheduled > 0),
    )
    if {"ruptures_total", "repaired_total", "rupture_rate"} <= set(table.columns):
        table = _apply_repair_rule(table, repair_no_ruptures)
    between = [c.rate_column for c in infos if _has_rate(c)] + ["repair_rate"]
    between += [f"{c.name}_mean" for c in infos if c.kind == "rating"]
    table = _add_between(table, between)
    table = table.merge(indicators, on=CLIENT_KEY, how="left", validate="one_to_one")
    if primary is not None:
        table["dropout"] = table[f"dropout_{primary}"]
    return table


# --------------------------------------------------------------------------- survival


def person_period(
    sessions: pd.DataFrame,
    clients: pd.DataFrame,
    definition: Mapping,
    name: str = "dropout",
    constructs: Constructs = None,
) -> pd.DataFrame:
    """Build discrete-time survival (person-period) data for the hazard of dropping out.

    One row per attended session at which the client is at risk of leaving early:

    - a client classified as dropout by ``definition`` contributes every attended session up
      to the last one attended, with ``event = 1`` on that last row;
    - every other client (completed, referred, not dropout under the definition, and
      unclassifiable ones such as ongoing clients, who are censored) contributes attended
      sessions before the planned final session (``session < planned_sessions``; all
      attended sessions when ``planned_sessions`` is missing), with ``event = 0``: at or
      after the planned end a client can no longer leave early;
    - clients who attended no session contribute no rows.

    Columns: every client column, ``session``, ``time`` (= session number), ``log_time``,
    every construct present (see :func:`constructs_present`; ``unrepaired`` included) with
    its ``_within`` and ``_between`` parts computed over the client's person-period rows,
    and ``event``.

    Parameters
    ----------
    sessions, clients : pandas.DataFrame
        Canonical tables.
    definition : mapping
        One dropout definition, e.g. ``{"rule": "end_status", "dropout": ["dropout"]}``.
    name : str, default "dropout"
        Name of the definition, used in error messages.
    constructs : Vocabulary, list or mapping of ConstructInfo, optional
        The declared constructs; default inferred from the columns.

    Returns
    -------
    pandas.DataFrame
        Sorted by study, client, session.

    Examples
    --------
    >>> import pandas as pd
    >>> clients = pd.DataFrame({"study": "s", "client": ["C1"], "therapist": "T1",
    ...                         "framework": "cognitive", "planned_sessions": 4,
    ...                         "end_status": "dropout"})
    >>> sessions = pd.DataFrame({"study": "s", "client": "C1", "session": [1, 2, 3],
    ...                          "attended": [True, True, False], "ruptures": [0, 2, None],
    ...                          "repaired": [0, 1, None]})
    >>> person_period(sessions, clients, {"rule": "end_status"})[["time", "unrepaired", "event"]]
       time  unrepaired  event
    0     1         0.0      0
    1     2         1.0      1
    """
    indicator = dropout_indicators(clients, sessions, {name: definition})
    dropped = indicator.set_index(CLIENT_KEY)[f"dropout_{name}"].fillna(0).eq(1)
    infos = constructs_present(sessions, constructs)
    table = _join_clients(_with_unrepaired(sessions), clients)
    table = table[attended_mask(table)].reset_index(drop=True)
    index = pd.MultiIndex.from_frame(table[CLIENT_KEY])
    is_dropout = dropped.reindex(index).to_numpy(dtype=bool)
    last = table.groupby(CLIENT_KEY)["session"].transform("max").to_numpy()
    session = as_float(table, "session", "sessions").to_numpy().astype(int)
    planned = as_float(table, "planned_sessions", "clients").to_numpy()
    at_risk = is_dropout | np.isnan(planned) | (session < planned)
    table["time"] = session
    table["log_time"] = np.log(session.astype(float))
    table["event"] = (is_dropout & (session == last)).astype(int)
    table = table[at_risk].reset_index(drop=True)
    counts = [c.name for c in infos if c.name not in clients.columns]
    keep = [*clients.columns, "session", "time", "log_time", *counts, "event"]
    return within_between(table[keep], counts, cluster=CLIENT_KEY)


# --------------------------------------------------------------------------- long form

#: Columns of :func:`profile_long` and :func:`profile_forms`: the type, its form and the
#: count.
PROFILE_TYPE, PROFILE_FORM, PROFILE_COUNT = "profile_type", "profile_form", "profile_count"


def _profile_columns(attended: pd.DataFrame, own: Sequence[str]) -> list[str]:
    """The session columns a long profile row repeats: all but the profile's own columns
    (the types', the forms', the composite's and their ``<name>_...`` derived columns)."""

    def belongs(column) -> bool:
        return any(str(column) == n or str(column).startswith(f"{n}_") for n in own)

    return [c for c in attended.columns if not belongs(c)]


def profile_long(
    session_tbl: pd.DataFrame,
    parts: Sequence[str],
    composite: str | None = None,
    forms: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """The types of a composite in long form: one row per attended session and type.

    The sessions table has one count column per type of the profiled composite (config
    ``descriptives.profile``; :meth:`Vocabulary.profile_parts`: every type of every form
    present, form by form). Models of the profile (framework x type) need one row per
    session and type instead, with the session's other columns (therapist, framework,
    ``session_c``, ``minutes``...) repeated on each row. A type the lab did not code has
    no column and so no rows: it is absent, never counted as 0.

    Parameters
    ----------
    session_tbl : pandas.DataFrame
        Output of :func:`session_table` (or any table with ``study``, ``client``,
        ``session``, ``attended`` and the parts' columns).
    parts : sequence of str
        The types, in the order their levels should take; types without a column are left
        out.
    composite : str, optional
        The composite itself; its columns are left out like the parts'.
    forms : mapping of str to sequence of str, optional
        Form -> its types (:meth:`Vocabulary.profile_forms`), when the composite is made of
        forms; their columns are left out too. Without it (a composite of plain parts)
        every row's form is the composite itself.

    Returns
    -------
    pandas.DataFrame
        The attended sessions' columns except the parts', the forms' and the composite's
        (and their ``<name>_...`` derived columns), plus ``profile_type`` (categorical, the
        type's construct name, levels in the order of ``parts``), ``profile_form``
        (categorical, the type's form; the composite's name, or empty, without forms) and
        ``profile_count`` (empty where the session was attended but not coded), sorted by
        study, client, session and type.

    Raises
    ------
    DataError
        When none of ``parts`` is a column of the table.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"study": "s", "client": "C1", "session": [1, 2],
    ...                   "attended": [True, False], "minutes": [50.0, None],
    ...                   "sustain": [2, None], "discord": [0, None]})
    >>> long = profile_long(s, ["sustain", "discord"], "talk")
    >>> long[["session", "profile_type", "profile_form", "profile_count"]]
       session profile_type profile_form  profile_count
    0        1      sustain         talk            2.0
    1        1      discord         talk            0.0
    """
    present = [p for p in parts if p in session_tbl.columns]
    if not present:
        wanted = ", ".join(parts) or "none: no composite chosen (descriptives.profile)"
        raise DataError(
            f"sessions table: no part of the profiled composite is present (parts: {wanted}); "
            f"available columns are {', '.join(map(str, session_tbl.columns))}. Set "
            "descriptives.profile to a composite whose parts are coded, or leave out the "
            "models on the profile_long data level."
        )
    require_columns(session_tbl, [*SESSION_KEY, "attended"], "sessions")
    attended = session_tbl[attended_mask(session_tbl)]
    forms = {f: list(t) for f, t in (forms or {}).items()}
    form_of = {t: f for f, types in forms.items() for t in types}
    own = [*present, *forms, *([composite] if composite else [])]
    keep = _profile_columns(attended, own)
    long = attended.melt(
        id_vars=keep, value_vars=present, var_name=PROFILE_TYPE, value_name=PROFILE_COUNT
    )
    long[PROFILE_COUNT] = long[PROFILE_COUNT].astype("float64")
    whole = composite or ""
    long[PROFILE_FORM] = long[PROFILE_TYPE].map(lambda t: form_of.get(t, whole))
    levels = [f for f in forms if f in set(long[PROFILE_FORM])]
    levels += [f for f in dict.fromkeys(long[PROFILE_FORM]) if f not in levels]
    long[PROFILE_FORM] = pd.Categorical(long[PROFILE_FORM], categories=levels)
    long[PROFILE_TYPE] = pd.Categorical(long[PROFILE_TYPE], categories=present)
    long = long.sort_values([*SESSION_KEY, PROFILE_TYPE], kind="stable")
    columns = [*keep, PROFILE_TYPE, PROFILE_FORM, PROFILE_COUNT]
    return long[columns].reset_index(drop=True)


def profile_forms(
    session_tbl: pd.DataFrame,
    forms: Sequence[str],
    composite: str | None = None,
    types: Sequence[str] = (),
) -> pd.DataFrame:
    """The forms of a composite in long form: one row per attended session and form.

    The profiled composite (config ``descriptives.profile``) may be made of forms, each a
    composite of types (resistance = overt + covert + ...; :meth:`Vocabulary.profile_forms`).
    Models of the forms (framework x form) need one row per session and form, whose count
    is the form's session value (the sum of its types coded in the session). A form the lab
    did not code has no column and so no rows: it is absent, never counted as 0.

    Parameters
    ----------
    session_tbl : pandas.DataFrame
        Output of :func:`session_table`.
    forms : sequence of str
        The forms, in the order their levels should take; forms without a column are left
        out.
    composite : str, optional
        The composite itself (its columns are left out, as are the forms').
    types : sequence of str
        The forms' types (their columns are left out too).

    Returns
    -------
    pandas.DataFrame
        The attended sessions' columns except the profile's own, plus ``profile_form``
        (categorical, levels in the order of ``forms``) and ``profile_count`` (the form's
        count; empty where the session was attended but not coded), sorted by study,
        client, session and form.

    Raises
    ------
    DataError
        When fewer than two forms are columns of the table (a composite of plain parts has
        no forms; with one form there is nothing to compare).

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"study": "s", "client": "C1", "session": [1, 2],
    ...                   "attended": [True, True], "overt": [2, 0], "covert": [1, 4]})
    >>> profile_forms(s, ["overt", "covert"])[["session", "profile_form", "profile_count"]]
       session profile_form  profile_count
    0        1        overt            2.0
    1        1       covert            1.0
    2        2        overt            0.0
    3        2       covert            4.0
    """
    present = [f for f in forms if f in session_tbl.columns]
    if len(present) < 2:
        what = composite or "the profiled composite"
        if not forms:
            why = f"{what} has no forms (its parts are types without forms of their own)"
        else:
            coded = ", ".join(present) or "none"
            why = (
                f"fewer than two forms of {what} were coded (forms: {', '.join(forms)}; "
                f"coded: {coded}), so there is no form to compare"
            )
        raise DataError(f"sessions table: {why}.")
    require_columns(session_tbl, [*SESSION_KEY, "attended"], "sessions")
    attended = session_tbl[attended_mask(session_tbl)]
    own = [*present, *types, *([composite] if composite else [])]
    keep = _profile_columns(attended, own)
    long = attended.melt(
        id_vars=keep, value_vars=present, var_name=PROFILE_FORM, value_name=PROFILE_COUNT
    )
    long[PROFILE_COUNT] = long[PROFILE_COUNT].astype("float64")
    long[PROFILE_FORM] = pd.Categorical(long[PROFILE_FORM], categories=present)
    long = long.sort_values([*SESSION_KEY, PROFILE_FORM], kind="stable")
    return long.reset_index(drop=True)
