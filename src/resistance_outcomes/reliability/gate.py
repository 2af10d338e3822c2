"""The reliability gate: each construct's coefficient against its configured minimum.

:func:`reliability_gate` checks a table of coefficients and returns (warn mode) or raises
(strict mode) one message per construct below its minimum. :func:`gate_outcome` gives the
same check as a machine-readable record, which the workflow writes to
``results/reliability/gate.json`` (read back with :func:`read_gate`) and renders as
``gate.md`` with :func:`gate_markdown`:

``{"mode": "warn", "assessed": true, "reason": "", "below": [{"construct", "label",
"statistic", "value", "minimum", "message"}, ...]}``

Without double-coded sessions nothing is assessed (``assessed`` false, with the reason):
the gate then neither passes nor fails, and a strict gate does not stop the run.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .statistics import (
    COHEN_STATISTIC,
    FLEISS_STATISTIC,
    ICC_K_STATISTIC,
    ICC_STATISTIC,
    ReliabilityInputError,
    _check_columns,
)

__all__ = [
    "GATE_MODES",
    "ReliabilityGateError",
    "ReliabilityWarning",
    "gate_json",
    "gate_markdown",
    "gate_outcome",
    "not_assessed_sentence",
    "read_gate",
    "reliability_gate",
    "stop_if_strict",
]

GATE_MODES = ("warn", "strict")
#: statistic -> (threshold key, value column of icc_table/kappa_table); None: not gated
#: (the gate judges one coder's reliability, ICC(A,1), not that of the mean of k coders).
_GATED = {
    ICC_STATISTIC: ("icc", "icc_a1"),
    ICC_K_STATISTIC: None,
    COHEN_STATISTIC: ("kappa", "kappa"),
    FLEISS_STATISTIC: ("kappa", "kappa"),
}
_THRESHOLD_KEYS = {"icc", "kappa", "per_construct"}
_GATE_KEYS = ("mode", "assessed", "reason", "below")


class ReliabilityGateError(RuntimeError):
    """One or more constructs fall below their minimum reliability in strict mode."""


class ReliabilityWarning(UserWarning):
    """One or more constructs fall below their minimum reliability in warn mode."""


def not_assessed_sentence(reason: str) -> str:
    """The sentence every output shows when reliability could not be assessed.

    Examples
    --------
    >>> not_assessed_sentence("no double-coded sessions")
    'Inter-rater reliability: not assessed (no double-coded sessions).'
    """
    return f"Inter-rater reliability: not assessed ({reason})."


# --------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------


def gate_outcome(
    table: pd.DataFrame,
    thresholds: dict,
    mode: str = "warn",
    *,
    assessed: bool = True,
    reason: str = "",
    labels: Mapping[str, str] | None = None,
    by: str = "construct",
) -> dict:
    """The gate's outcome as a record: mode, whether anything was assessed, and what is
    below its minimum. Never raises or warns for a construct below its minimum (see
    :func:`stop_if_strict` and :func:`reliability_gate`).

    Parameters
    ----------
    table : pandas.DataFrame
        A table of coefficients, as for :func:`reliability_gate`.
    thresholds : dict
        The minimums, as for :func:`reliability_gate` (checked also when nothing was
        assessed, so that a bad configuration is found on every run).
    mode : {"warn", "strict"}
    assessed : bool
        False when there was nothing to assess (no double-coded sessions): ``below`` is
        then empty and ``reason`` says why.
    reason : str
        Why nothing was assessed.
    labels : mapping, optional
        Construct -> printed name, for ``label`` and the messages; default: the
        ``construct_label`` column of the table, else the construct's name.
    by : str
        Column naming the construct.

    Returns
    -------
    dict
        ``mode``, ``assessed``, ``reason`` and ``below``: one entry per construct and
        statistic below its minimum or without an estimate, with ``construct``, ``label``,
        ``statistic``, ``value`` (None when not estimable), ``minimum`` and ``message``.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures", "repaired"],
    ...                       "statistic": ["ICC(A,1)", "ICC(A,1)"],
    ...                       "estimate": [0.91, 0.62]})
    >>> out = gate_outcome(table, {"icc": 0.75}, labels={"repaired": "Repaired ruptures"})
    >>> out["assessed"], out["below"][0]["message"]
    (True, 'Repaired ruptures: ICC(A,1) = 0.620 is below the minimum 0.75.')
    >>> gate_outcome(table.iloc[:0], {"icc": 0.75}, assessed=False,
    ...              reason="no double-coded sessions")["below"]
    []
    """
    if mode not in GATE_MODES:
        raise ReliabilityInputError(f"mode must be 'warn' or 'strict', got {mode!r}.")
    _check_thresholds(thresholds)
    below = _below(table, thresholds, by, labels) if assessed else []
    return {"mode": mode, "assessed": bool(assessed), "reason": "" if assessed else reason,
            "below": below}  # fmt: skip


def stop_if_strict(outcome: Mapping) -> None:
    """Raise :class:`ReliabilityGateError` when a strict gate assessed something below its
    minimum; otherwise do nothing.

    Examples
    --------
    >>> stop_if_strict({"mode": "strict", "assessed": False, "reason": "none", "below": []})
    """
    if outcome["mode"] == "strict" and outcome["assessed"] and outcome["below"]:
        raise ReliabilityGateError(
            "Inter-rater reliability below the minimum:\n"
            + "\n".join(entry["message"] for entry in outcome["below"])
        )


def reliability_gate(
    table: pd.DataFrame,
    thresholds: dict,
    mode: str = "warn",
    by: str = "construct",
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """Check each construct's reliability against its minimum.

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table`` from
        :func:`resistance_outcomes.reliability.reliability_analysis` (values in
        ``estimate``), or the output of :func:`icc_table`, :func:`kappa_table`, or both
        concatenated (values in ``icc_a1`` for ICC rows, ``kappa`` for kappa rows). The
        ``statistic`` column says which rows are checked: ICC(A,1) against the ICC minimum,
        Cohen's and Fleiss' kappa against the kappa minimum; ICC(A,k) rows are not gated.
    thresholds : dict
        ``{"icc": 0.75, "kappa": 0.6, "per_construct": {"repaired": 0.8, ...}}``. A
        ``per_construct`` entry overrides the general minimum for that construct; None
        there exempts the construct.
    mode : {"warn", "strict"}
        ``"warn"`` returns the messages and issues one :class:`ReliabilityWarning`;
        ``"strict"`` raises :class:`ReliabilityGateError` if there is any message.
    by : str
        Column naming the construct; when absent, rows are called "all units".
    labels : mapping, optional
        Construct -> printed name used in the messages (default: the construct's name).

    Returns
    -------
    list of str
        One message per construct below its minimum or without an estimate (a construct
        whose reliability cannot be estimated cannot show that it meets the minimum).
        Empty when all pass.

    Raises
    ------
    ReliabilityGateError
        In strict mode, naming each failing construct, its value and its minimum.
    ReliabilityInputError
        Unknown mode or threshold key, a minimum outside [-1, 1], or no minimum for a
        statistic present in the table.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures", "repaired"],
    ...                       "statistic": ["ICC(A,1)", "ICC(A,1)"],
    ...                       "icc_a1": [0.91, 0.62]})
    >>> reliability_gate(table, {"icc": 0.75})
    ['repaired: ICC(A,1) = 0.620 is below the minimum 0.75.']
    """
    outcome = gate_outcome(table, thresholds, mode, labels=labels or {}, by=by)
    stop_if_strict(outcome)
    messages = [entry["message"] for entry in outcome["below"]]
    if messages:
        warnings.warn("\n".join(messages), ReliabilityWarning, stacklevel=2)
    return messages


def _below(table, thresholds, by, labels) -> list[dict]:
    _check_columns(table, ["statistic"], "table")
    per_construct = thresholds.get("per_construct", {})
    printed = dict(labels) if labels is not None else _table_labels(table, by)
    entries = []
    for index, row in table.iterrows():
        construct = row[by] if by in table.columns else "all units"
        gated = _gated_statistic(row["statistic"], index)
        if gated is None:
            continue
        kind, value_col = gated
        value_col = "estimate" if "estimate" in table.columns else value_col
        if construct in per_construct:
            minimum = per_construct[construct]
        elif kind in thresholds:
            minimum = thresholds[kind]
        else:
            raise ReliabilityInputError(
                f"thresholds: no minimum for {kind!r} (needed for {construct!r}); add "
                f"thresholds[{kind!r}] or a per_construct entry."
            )
        if minimum is None:
            continue
        label = str(printed.get(construct, construct))
        message = _gate_message(label, row, value_col, minimum)
        if message:
            value = row[value_col]
            entries.append(
                {
                    "construct": str(construct),
                    "label": label,
                    "statistic": str(row["statistic"]),
                    "value": None if pd.isna(value) else float(value),
                    "minimum": float(minimum),
                    "message": message,
                }
            )
    return entries


def _table_labels(table: pd.DataFrame, by: str) -> dict:
    if "construct_label" not in table.columns or by not in table.columns:
        return {}
    labelled = table.dropna(subset=["construct_label"])
    return dict(zip(labelled[by], labelled["construct_label"].astype(str), strict=True))


def _check_thresholds(thresholds: dict) -> None:
    if not isinstance(thresholds, dict):
        raise ReliabilityInputError(f"thresholds must be a dict, got {type(thresholds)!r}.")
    unknown = set(thresholds) - _THRESHOLD_KEYS
    if unknown:
        raise ReliabilityInputError(
            f"thresholds: unknown key(s) {sorted(unknown)}; use {sorted(_THRESHOLD_KEYS)}."
        )
    per_construct = thresholds.get("per_construct", {})
    if not isinstance(per_construct, dict):
        raise ReliabilityInputError("thresholds['per_construct'] must map construct -> minimum.")
    named = [(k, thresholds[k]) for k in ("icc", "kappa") if k in thresholds]
    named += [(f"per_construct[{c!r}]", v) for c, v in per_construct.items() if v is not None]
    for key, value in named:
        if not isinstance(value, int | float) or not -1.0 <= value <= 1.0:
            raise ReliabilityInputError(
                f"thresholds: {key} = {value!r} is not a number between -1 and 1."
            )


def _gated_statistic(statistic: str, index) -> tuple[str, str] | None:
    if statistic not in _GATED:
        raise ReliabilityInputError(
            f"table: row {index!r}, column 'statistic': {statistic!r} is not one of "
            f"{sorted(_GATED)}; pass a table made by icc_table or kappa_table."
        )
    return _GATED[statistic]


def _gate_message(construct, row: pd.Series, value_col: str, minimum: float) -> str:
    value = row[value_col]
    statistic = row["statistic"]
    if pd.isna(value):
        reason = f" ({row['note']})" if "note" in row.index and _text(row["note"]) else ""
        return (
            f"{construct}: {statistic} could not be estimated{reason}, so it cannot be shown "
            f"to reach the minimum {minimum:g}."
        )
    if value < minimum:
        return f"{construct}: {statistic} = {value:.3f} is below the minimum {minimum:g}."
    return ""


def _text(value) -> str:
    """A note cell as text: empty for NaN (a CSV read back gives NaN for empty notes)."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def gate_markdown(outcome: Mapping) -> str:
    """The gate's outcome as a short Markdown section for the report (``gate.md``).

    Examples
    --------
    >>> print(gate_markdown({"mode": "warn", "assessed": False,
    ...                      "reason": "no double-coded sessions", "below": []}), end="")
    # Reliability gate (warn mode)
    <BLANKLINE>
    Inter-rater reliability: not assessed (no double-coded sessions).
    """
    lines = [f"# Reliability gate ({outcome['mode']} mode)", ""]
    if not outcome["assessed"]:
        lines.append(not_assessed_sentence(outcome["reason"]))
    elif not outcome["below"]:
        lines.append("Every construct meets its configured minimum.")
    else:
        went_on = "the analysis went on; interpret with care"
        if outcome["mode"] == "strict":
            went_on = "the run stopped"
        lines.append(f"Below the configured minimum ({went_on}):")
        lines.append("")
        lines += [f"- {entry['message']}" for entry in outcome["below"]]
    return "\n".join(lines) + "\n"


def gate_json(outcome: Mapping) -> str:
    """The outcome as JSON text (sorted keys, so reruns write identical files).

    Examples
    --------
    >>> gate_json({"mode": "warn", "assessed": True, "reason": "", "below": []})[:20]
    '{\\n  "assessed": true'
    """
    return json.dumps(dict(outcome), indent=2, sort_keys=True, allow_nan=False) + "\n"


def read_gate(path: str | Path) -> dict:
    """Read ``results/reliability/gate.json`` (see :func:`gate_outcome`).

    Raises
    ------
    ReliabilityInputError
        The file is not a gate outcome (a key is missing).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "gate.json"
    >>> _ = path.write_text(gate_json({"mode": "warn", "assessed": False,
    ...                                "reason": "no double-coded sessions", "below": []}))
    >>> read_gate(path)["assessed"]
    False
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [key for key in _GATE_KEYS if key not in data]
    if missing:
        raise ReliabilityInputError(
            f"{path}: not a reliability gate outcome (no {missing[0]!r}); pass "
            "results/reliability/gate.json."
        )
    return data
