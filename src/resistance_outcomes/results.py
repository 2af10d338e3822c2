"""Reading what earlier steps wrote, in one place: model folders and machine-readable reports.

The publication tables and the summary page never parse Markdown; they read the files the
steps hand forward:

- :func:`read_model_folder`: ``results/models/<name>/`` (or ``results/sensitivity/<v>/``):
  ``spec.json``, ``fit.json``, ``coefficients.csv``, ``variance_components.csv``,
  ``contrasts.csv``; the one reader of a model folder in the package;
- :func:`validation_summary` / :func:`read_validation_summary`: the counts of the
  validation (``results/validation/report.json``);
- :func:`estimable` and :func:`not_estimable_reasons`: which estimates a model could
  identify (columns ``estimable``/``note`` of the model's tables, ``not_estimable`` of
  ``fit.json``; an absent column means every estimate is estimable);
- :func:`family_facts`: a model family's link, ratio and words.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .ingest import CELL_SET_TO_MISSING as _CELL_SET_TO_MISSING
from .models.families import family_names, get_family
from .models.formula import ModelSpecError

__all__ = [
    "ResultsError",
    "estimable",
    "family_facts",
    "not_estimable_reasons",
    "read_csv_or_empty",
    "read_model_folder",
    "read_validation_summary",
    "validation_summary",
]


class ResultsError(ValueError):
    """A result file of an earlier step is missing or malformed; the message says which."""


# --------------------------------------------------------------------------- families


def family_facts(name: str):
    """The link, ratio and words of a model family (its canonical name in ``spec.json``):
    the engine's family object (:func:`resistance_outcomes.models.families.get_family`).

    Examples
    --------
    >>> facts = family_facts("binomial")
    >>> facts.link_name, facts.ratio, facts.model_words
    ('logit', 'OR', 'logistic')
    """
    try:
        return get_family(name)
    except ModelSpecError:
        raise ResultsError(
            f"family {name!r} is not one of {', '.join(family_names())}; spec.json should hold "
            "the canonical family name written by the model step."
        ) from None


# --------------------------------------------------------------------------- model folders


def read_csv_or_empty(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV table written by a step; an empty file (a stage with nothing to write) reads as
    an empty table.

    Examples
    --------
    >>> read_csv_or_empty("results/reliability/reliability.csv")  # doctest: +SKIP
    Empty DataFrame
    """
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ResultsError(f"{path}: missing; run the model step for '{path.parent.name}' first.")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a model that was not fitted, or has no contrasts
        return pd.DataFrame()


def read_model_folder(folder: str | os.PathLike) -> dict:
    """Read a model folder written by the model step.

    Parameters
    ----------
    folder : str or path-like
        ``results/models/<name>`` or ``results/sensitivity/<variant>`` (a path to a file
        in it, such as its ``spec.json``, is taken as its folder).

    Returns
    -------
    dict
        ``name``, ``spec``, ``fit``, ``coefficients``, ``variance_components`` and
        ``contrasts`` (empty frames for a model that was not fitted), and
        ``intervals`` (``intervals.csv``: profile-likelihood intervals), ``bootstrap``
        (``bootstrap.csv``: parametric-bootstrap intervals) and
        ``diagnostics`` (``diagnostics.json``: the simulated-residual tests) when the
        folder has it.

    Raises
    ------
    ResultsError
        When a file of the folder is missing, naming it.

    Examples
    --------
    >>> model = read_model_folder("results/models/m")  # doctest: +SKIP
    >>> model["fit"]["flags"]  # doctest: +SKIP
    []
    """
    folder = Path(folder)
    if folder.suffix in (".json", ".csv"):
        folder = folder.parent
    out = {"name": folder.name}
    for key in ("spec", "fit"):
        path = folder / f"{key}.json"
        if not path.is_file():
            raise ResultsError(f"{path}: missing; run the model step for '{folder.name}' first.")
        out[key] = json.loads(path.read_text(encoding="utf-8"))
    for key in ("coefficients", "variance_components", "contrasts"):
        out[key] = _table(folder / f"{key}.csv")
    for key in ("intervals", "bootstrap"):  # profile and bootstrap intervals (models only)
        if (folder / f"{key}.csv").is_file():
            out[key] = _table(folder / f"{key}.csv")
    diagnostics = folder / "diagnostics.json"  # simulated-residual tests (models only)
    if diagnostics.is_file():
        out["diagnostics"] = json.loads(diagnostics.read_text(encoding="utf-8"))
    return out


# --------------------------------------------------------------------------- estimability


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    if pd.isna(value):
        return True
    return bool(value)


def estimable(frame: pd.DataFrame | None) -> pd.Series:
    """Per row, whether its estimate is identified (column ``estimable``; absent: all).

    Examples
    --------
    >>> import pandas as pd
    >>> estimable(pd.DataFrame({"estimable": [True, "False"]})).tolist()
    [True, False]
    >>> estimable(pd.DataFrame({"term": ["a"]})).tolist()
    [True]
    """
    if frame is None:
        return pd.Series(dtype=bool)
    if "estimable" not in frame.columns:
        return pd.Series(True, index=frame.index, dtype=bool)
    return frame["estimable"].map(_truthy).astype(bool)


def not_estimable_reasons(fit: Mapping) -> dict[str, str]:
    """Term -> reason, from ``fit.json``'s ``not_estimable`` list (empty when absent).

    Examples
    --------
    >>> not_estimable_reasons({"not_estimable": [{"term": "frameworkb", "reason": "no events"}]})
    {'frameworkb': 'no events'}
    """
    out = {}
    for entry in fit.get("not_estimable") or []:
        if isinstance(entry, Mapping):
            out[str(entry.get("term", ""))] = str(entry.get("reason", "")).strip()
        else:
            out[str(entry)] = ""
    return out


# --------------------------------------------------------------------------- validation


def _problem_dict(problem) -> dict:
    return {
        "file": str(getattr(problem, "file", "")),
        "column": getattr(problem, "column", None),
        "reason": str(getattr(problem, "message", "")),
    }


def validation_summary(result, mode: str | None = None) -> dict:
    """The counts of a finished validation, for ``results/validation/report.json``.

    Parameters
    ----------
    result : resistance_outcomes.ingest.IngestResult
        A finished ingestion.
    mode : str, optional
        The validation mode (``strict`` or ``lenient``).

    Returns
    -------
    dict
        ``mode``; ``tables``: per table ``{table, file, rows_read, rows_kept,
        rows_set_aside}``; ``problems`` (count); ``quarantined``: ``{rows, cells, cell_rows,
        clients, sessions}`` (lenient mode: rows set aside, cells set to missing and the rows
        they are in, clients set aside, sessions whose codes were set aside);
        ``missing_values``: ``[{file, column, code, cells, source}]`` (cells read as
        missing through a missing-value code); ``missing_codes``: the codes in force;
        ``dropped_identifier_columns``: ``[{file, column, reason}]``; ``notes``.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.ingest import IngestResult
    >>> result = IngestResult(clients=pd.DataFrame({"client": ["a", "b"]}),
    ...     sessions=pd.DataFrame({"client": ["a"]}), codes=pd.DataFrame(),
    ...     rows_read={"c.csv": 2, "s.csv": 1}, files={"clients": "c.csv", "sessions": "s.csv"})
    >>> validation_summary(result, "strict")["tables"][0]
    {'table': 'clients', 'file': 'c.csv', 'rows_read': 2, 'rows_kept': 2, 'rows_set_aside': 0}
    """
    quarantine = getattr(result, "quarantine", None)
    if quarantine is None or not {"file", "row"} <= set(quarantine.columns):
        quarantine = pd.DataFrame(columns=["file", "row"])
    removed = quarantine
    if "action" in quarantine.columns:
        removed = quarantine[quarantine["action"].astype(str) != _CELL_SET_TO_MISSING]
    removed = removed.drop_duplicates(["file", "row"])
    per_file = removed["file"].value_counts()
    tables = []
    for table, file in (getattr(result, "files", None) or {}).items():
        frame = getattr(result, table, None)
        tables.append(
            {
                "table": str(table),
                "file": str(file),
                "rows_read": int((getattr(result, "rows_read", None) or {}).get(file, 0)),
                "rows_kept": int(len(frame)) if isinstance(frame, pd.DataFrame) else None,
                "rows_set_aside": int(per_file.get(file, 0)),
            }
        )
    counts = {"rows": len(removed), "cells": 0, "cell_rows": 0, "clients": 0, "sessions": 0}
    counts.update({k: int(v) for k, v in (getattr(result, "set_aside", None) or {}).items()})
    return {
        "mode": mode,
        "tables": tables,
        "problems": len(getattr(result, "problems", None) or []),
        "quarantined": counts,
        "missing_values": _json_ready(list(getattr(result, "missing_values", None) or [])),
        "missing_codes": _json_ready(getattr(result, "missing_codes", None) or {}),
        "dropped_identifier_columns": [
            _problem_dict(p) for p in getattr(result, "dropped_identifier_columns", None) or []
        ],
        "notes": [str(n) for n in getattr(result, "notes", None) or []],
    }


def _json_ready(value):
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _read_json(path: str | os.PathLike, what: str, step: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: missing; the {what} is written by the {step} step.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ResultsError(
            f"{path}: not valid JSON ({err.msg}, line {err.lineno}); re-run the {step} step."
        ) from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object; re-run the {step} step.")
    return data


def read_validation_summary(path: str | os.PathLike) -> dict:
    """``results/validation/report.json`` (see :func:`validation_summary`).

    Examples
    --------
    >>> read_validation_summary("results/validation/report.json")["problems"]  # doctest: +SKIP
    0
    """
    data = _read_json(path, "validation summary", "ingest")
    if not isinstance(data.get("tables"), list):
        raise ResultsError(f"{path}: no 'tables' list; re-run the ingest step.")
    return data
