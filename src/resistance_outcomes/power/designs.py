"""Planned study designs for a power simulation, without pilot data.

Three shapes, with the columns the workflow's data levels use
(:mod:`resistance_outcomes.derive`):

- :func:`session_design`: one row per planned session, sessions nested in clients nested
  in therapists nested in frameworks (``study, framework, therapist, client,
  planned_sessions, session, session_c, minutes``), for count models with
  ``offset(log(minutes))``;
- :func:`client_design`: one row per client, for a client-level dropout model;
- :func:`person_period_design`: one row per session at which a client can leave early
  (``session, time, log_time``), for the discrete-time dropout hazard, with
  :func:`apply_attrition` / :func:`attrition_mask` dropping a client's rows after the first
  simulated event.

``framework`` is a categorical column with the levels in the order given (the first is the
reference level of the model's treatment contrasts). Therapist and client labels are
unique across the study. Everything is deterministic; only session minutes may be drawn,
from a given seed.

With a pilot study, :func:`resample_pilot` builds a design point from the pilot's model
frame instead: therapists resampled within each framework (and clients within therapist),
relabelled so that every resampled therapist and client is a distinct unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DesignError",
    "apply_attrition",
    "attrition_mask",
    "client_design",
    "person_period_design",
    "resample_pilot",
    "session_design",
]


class DesignError(ValueError):
    """A planned design is given impossible sizes, or attrition is given unusable events."""


def _count(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise DesignError(f"{what} must be a whole number, got {value!r}")
    if value != int(value) or value < minimum:
        raise DesignError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _frameworks(frameworks) -> list[str]:
    if isinstance(frameworks, str) or not isinstance(frameworks, Sequence):
        raise DesignError(f"frameworks must be a list of names, got {frameworks!r}")
    names = [str(f) for f in frameworks]
    if not names:
        raise DesignError("frameworks must name at least one framework")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DesignError(f"frameworks must be distinct; repeated: {repeated}")
    return names


def _per_framework(value, names: list[str], what: str) -> dict[str, int]:
    if isinstance(value, Mapping):
        unknown = [k for k in value if str(k) not in names]
        missing = [n for n in names if n not in map(str, value)]
        if unknown or missing:
            raise DesignError(
                f"{what} by framework must name exactly the frameworks {names}; "
                f"unknown: {unknown}, missing: {missing}"
            )
        given = {str(k): v for k, v in value.items()}
        return {n: _count(given[n], f"{what}['{n}']") for n in names}
    return {n: _count(value, what) for n in names}


def client_design(
    frameworks: Sequence[str],
    therapists_per_framework: int | Mapping[str, int],
    clients_per_therapist: int,
    planned_sessions: int = 12,
    study: str = "planned",
) -> pd.DataFrame:
    """One row per client of a planned study: clients within therapists within frameworks.

    Parameters
    ----------
    frameworks : sequence of str
        Framework names; the first is the reference level.
    therapists_per_framework : int or mapping
        Therapists in each framework (a mapping framework -> number for unequal ones).
    clients_per_therapist : int
    planned_sessions : int, default 12
    study : str, default "planned"

    Returns
    -------
    pandas.DataFrame
        Columns study, framework (categorical, levels in the given order), therapist
        (``T001``...), client (``C0001``...), planned_sessions; one row per client,
        ``sum(therapists) * clients_per_therapist`` rows.

    Raises
    ------
    DesignError
        For an empty or repeated framework list or a size that is not a whole number >= 1.

    Examples
    --------
    >>> plan = client_design(["cognitive", "humanistic"], 2, 3)
    >>> len(plan), plan.therapist.nunique(), list(plan.framework.cat.categories)
    (12, 4, ['cognitive', 'humanistic'])
    """
    names = _frameworks(frameworks)
    therapists = _per_framework(therapists_per_framework, names, "therapists_per_framework")
    clients = _count(clients_per_therapist, "clients_per_therapist")
    sessions = _count(planned_sessions, "planned_sessions")
    framework = np.repeat(names, [therapists[n] for n in names])
    n_therapists = len(framework)
    width_t = max(3, len(str(n_therapists)))
    width_c = max(4, len(str(n_therapists * clients)))
    therapist = [f"T{i + 1:0{width_t}d}" for i in range(n_therapists)]
    return pd.DataFrame(
        {
            "study": str(study),
            "framework": pd.Categorical(np.repeat(framework, clients), categories=names),
            "therapist": np.repeat(therapist, clients),
            "client": [f"C{i + 1:0{width_c}d}" for i in range(n_therapists * clients)],
            "planned_sessions": sessions,
        }
    )


def _minutes(minutes, minutes_sd, n: int, seed) -> np.ndarray:
    mean = float(minutes)
    if not np.isfinite(mean) or mean <= 0:
        raise DesignError(f"minutes must be a positive number, got {minutes!r}")
    sd = float(minutes_sd)
    if not np.isfinite(sd) or sd < 0:
        raise DesignError(f"minutes_sd must be a number >= 0, got {minutes_sd!r}")
    if sd == 0:
        return np.full(n, mean)
    if seed is None:
        raise DesignError("minutes_sd > 0 draws session minutes: give a seed")
    draws = np.random.default_rng(seed).normal(mean, sd, size=n)
    return np.maximum(np.round(draws), 1.0)


def session_design(
    frameworks: Sequence[str],
    therapists_per_framework: int | Mapping[str, int],
    clients_per_therapist: int,
    planned_sessions: int,
    minutes: float = 50.0,
    minutes_sd: float = 0.0,
    seed: int | None = None,
    study: str = "planned",
) -> pd.DataFrame:
    """One row per planned session: sessions in clients in therapists in frameworks.

    Parameters
    ----------
    frameworks, therapists_per_framework, clients_per_therapist, study
        As :func:`client_design`.
    planned_sessions : int
        Sessions per client (every one attended: attrition is the hazard model's part).
    minutes : float, default 50
        Session length (the exposure of ``offset(log(minutes))``).
    minutes_sd : float, default 0
        With a value > 0, each session's minutes are drawn from ``Normal(minutes,
        minutes_sd)`` with ``numpy.random.default_rng(seed)``, rounded to the minute and at
        least 1.
    seed : int, optional
        Required when ``minutes_sd > 0``.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`client_design` plus ``session`` (1...planned_sessions),
        ``session_c`` (session minus the mean session, as
        :func:`resistance_outcomes.derive.session_table`) and ``minutes``; sorted by
        client and session.

    Examples
    --------
    >>> plan = session_design(["cognitive", "humanistic"], 2, 3, planned_sessions=4)
    >>> len(plan), plan.session_c.tolist()[:4]
    (48, [-1.5, -0.5, 0.5, 1.5])
    """
    clients = client_design(
        frameworks, therapists_per_framework, clients_per_therapist, planned_sessions, study
    )
    k = int(clients.planned_sessions.iloc[0])
    table = clients.loc[clients.index.repeat(k)].reset_index(drop=True)
    session = np.tile(np.arange(1, k + 1), len(clients))
    table["session"] = session
    table["session_c"] = session - session.mean()
    table["minutes"] = _minutes(minutes, minutes_sd, len(table), seed)
    return table


def person_period_design(
    frameworks: Sequence[str],
    therapists_per_framework: int | Mapping[str, int],
    clients_per_therapist: int,
    planned_sessions: int,
    study: str = "planned",
) -> pd.DataFrame:
    """Person-period rows of a planned study for the discrete-time dropout hazard.

    As :func:`resistance_outcomes.derive.person_period` for a client who attends until
    the end: one row per session at which the client can still leave early, sessions
    1...``planned_sessions - 1`` (at the planned final session a client no longer drops
    out). Simulate ``event`` on these rows, then keep the rows up to each client's first
    event with :func:`apply_attrition`.
    A dropout probability ``P`` over the plan is a per-row hazard
    ``resistance_outcomes.power.per_session_hazard(P, planned_sessions - 1)``.

    Parameters
    ----------
    frameworks, therapists_per_framework, clients_per_therapist, study
        As :func:`client_design`.
    planned_sessions : int
        At least 2.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`client_design` plus ``session``, ``time`` (= session) and
        ``log_time`` (its natural log); sorted by client and session.

    Examples
    --------
    >>> rows = person_period_design(["cognitive"], 2, 2, planned_sessions=4)
    >>> len(rows), rows.time.tolist()[:3]
    (12, [1, 2, 3])
    """
    k = _count(planned_sessions, "planned_sessions", minimum=2)
    clients = client_design(frameworks, therapists_per_framework, clients_per_therapist, k, study)
    table = clients.loc[clients.index.repeat(k - 1)].reset_index(drop=True)
    session = np.tile(np.arange(1, k), len(clients))
    table["session"] = session
    table["time"] = session
    table["log_time"] = np.log(session.astype(float))
    return table


def _event_values(data: pd.DataFrame, events) -> np.ndarray:
    if isinstance(events, str):
        if events not in data.columns:
            raise DesignError(
                f"no event column '{events}' in the data; columns: {', '.join(map(str, data))}"
            )
        values = data[events].to_numpy()
    elif isinstance(events, pd.DataFrame | pd.Series):
        if len(events) == len(data) and not events.index.equals(data.index):
            raise DesignError(
                "the events' index differs from the data's; give events for the rows of "
                "the data, in their order (e.g. simulate_responses on these rows)"
            )
        values = events.to_numpy()
    else:
        values = np.asarray(events)
    if values.shape[0] != len(data):
        raise DesignError(
            f"events have {values.shape[0]} rows but the data have {len(data)}; give one "
            "value (or one row of replicates) per data row"
        )
    if values.ndim not in (1, 2):
        raise DesignError(f"events must be one column or rows x replicates, not {values.ndim}-D")
    numeric = pd.DataFrame(values.reshape(len(data), -1)).apply(pd.to_numeric, errors="coerce")
    bad = ~numeric.isin([0, 1]).to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DesignError(
            f"events must be 0 or 1; row {row} (index {data.index[row]})"
            + (f", replicate {col}" if values.ndim == 2 else "")
            + f" has {values.reshape(len(data), -1)[row, col]}"
        )
    return numeric.to_numpy(dtype=float).reshape(values.shape)


def attrition_mask(
    data: pd.DataFrame,
    events,
    cluster: Sequence[str] = ("study", "client"),
    order: str = "session",
) -> np.ndarray:
    """Which rows remain when each client leaves after the first event.

    A row is kept when no earlier row of the same client (``cluster``), in the order of
    ``order``, has an event; the event row itself is kept, later rows are dropped.

    Parameters
    ----------
    data : pandas.DataFrame
        Person-period rows (any row order).
    events : str, array-like or DataFrame
        The name of a 0/1 column of ``data``, or one 0/1 value per row, or a rows x
        replicates array (one column per simulated replicate).
    cluster : sequence of str, default ("study", "client")
    order : str, default "session"

    Returns
    -------
    numpy.ndarray
        Boolean, the shape of ``events`` (rows in the order of ``data``).

    Raises
    ------
    DesignError
        For a missing column, a length mismatch, or an event value other than 0/1.

    Examples
    --------
    >>> rows = pd.DataFrame({"study": "s", "client": ["a", "a", "a", "b", "b"],
    ...                      "session": [1, 2, 3, 1, 2]})
    >>> attrition_mask(rows, [0, 1, 0, 0, 0]).tolist()
    [True, True, False, True, True]
    """
    cluster = list(cluster)
    missing = [c for c in [*cluster, order] if c not in data.columns]
    if missing:
        raise DesignError(
            f"attrition needs column(s) {missing}; columns: {', '.join(map(str, data))}"
        )
    values = _event_values(data, events)
    matrix = values.reshape(len(data), -1)
    if len(data) == 0:
        return np.zeros(values.shape, dtype=bool)
    codes = data.groupby(cluster, sort=False, dropna=False).ngroup().to_numpy()
    position = np.lexsort((data[order].to_numpy(), codes))
    sorted_events = matrix[position]
    sorted_codes = codes[position]
    total = np.cumsum(sorted_events, axis=0)
    starts = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    start_index = np.maximum.accumulate(np.where(starts, np.arange(len(data)), 0))
    before_cluster = np.where(start_index[:, None] > 0, total[np.maximum(start_index - 1, 0)], 0.0)
    earlier = total - sorted_events - before_cluster  # events in earlier rows of the client
    keep = np.empty_like(matrix, dtype=bool)
    keep[position] = earlier == 0
    return keep.reshape(values.shape)


def apply_attrition(
    data: pd.DataFrame,
    events="event",
    cluster: Sequence[str] = ("study", "client"),
    order: str = "session",
) -> pd.DataFrame:
    """The rows a replicate is fitted to: each client's rows up to and including the first
    event (see :func:`attrition_mask`).

    Parameters
    ----------
    data : pandas.DataFrame
    events : str or array-like, default "event"
        A 0/1 column of ``data``, or one 0/1 value per row (then written to ``data`` as
        column ``event``).
    cluster, order
        As :func:`attrition_mask`.

    Returns
    -------
    pandas.DataFrame
        The kept rows, in their original order, index reset.

    Examples
    --------
    >>> rows = person_period_design(["cognitive"], 1, 2, planned_sessions=4)
    >>> kept = apply_attrition(rows, [0, 1, 0, 0, 0, 0])
    >>> kept[["client", "session", "event"]].values.tolist()
    [['C0001', 1, 0], ['C0001', 2, 1], ['C0002', 1, 0], ['C0002', 2, 0], ['C0002', 3, 0]]
    """
    values = _event_values(data, events)
    if values.ndim != 1:
        raise DesignError(
            "apply_attrition takes one replicate's events; use attrition_mask for several"
        )
    table = data
    if not isinstance(events, str):
        table = data.assign(event=values.astype(int))
    keep = attrition_mask(table, values, cluster=cluster, order=order)
    return table[keep].reset_index(drop=True)


def resample_pilot(
    frame: pd.DataFrame,
    therapists_per_framework: int | Mapping[str, int],
    clients_per_therapist: int | None = None,
    seed: int = 0,
    framework: str = "framework",
    therapist: str = "therapist",
    client: str = "client",
) -> pd.DataFrame:
    """Rows of a design point resampled from a pilot study's model frame.

    Within each framework, ``therapists_per_framework`` therapists are drawn with
    replacement from the pilot's therapists of that framework; with
    ``clients_per_therapist``, that many clients are drawn with replacement from each drawn
    therapist's clients (otherwise each drawn therapist keeps all their clients). Every
    row of a drawn client comes along (a client's sessions or person-periods). Drawn
    therapists and clients get new labels (``<old>_r<k>``, k counting the draws), so a
    therapist or client drawn twice is two units of the new design.

    Parameters
    ----------
    frame : pandas.DataFrame
        The pilot's model frame (``results/models/<model>/model_frame.csv``).
    therapists_per_framework : int or mapping
        Therapists in each framework (a mapping framework -> number for unequal ones).
    clients_per_therapist : int, optional
    seed : int
        Seed of the draws (one per design point, so that points differ but repeat).
    framework, therapist, client : str
        The frame's grouping columns; ``client`` may be absent when
        ``clients_per_therapist`` is not given.

    Returns
    -------
    pandas.DataFrame
        The frame's columns, rows in draw order, index reset; ``framework`` keeps its
        categories (or its order of first appearance when it is not categorical).

    Raises
    ------
    DesignError
        For a missing column, a framework without therapists or a size that is not a
        whole number >= 1.

    Examples
    --------
    >>> pilot = pd.DataFrame({"framework": ["a", "a", "a", "b", "b"],
    ...                       "therapist": ["t1", "t1", "t2", "t3", "t3"],
    ...                       "client": ["c1", "c2", "c3", "c4", "c5"], "y": range(5)})
    >>> plan = resample_pilot(pilot, 3, seed=1)
    >>> plan.groupby("framework", observed=True).therapist.nunique().tolist()
    [3, 3]
    """
    needed = [framework, therapist] + ([client] if clients_per_therapist is not None else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DesignError(
            f"the pilot's model frame has no column(s) {missing}; it has {list(frame.columns)}"
        )
    levels = (
        list(frame[framework].cat.categories)
        if isinstance(frame[framework].dtype, pd.CategoricalDtype)
        else list(pd.unique(frame[framework].dropna().astype(str)))
    )
    present = [lv for lv in levels if (frame[framework].astype(str) == str(lv)).any()]
    sizes = _per_framework(
        therapists_per_framework, [str(lv) for lv in present], "therapists_per_framework"
    )
    n_clients = (
        None
        if clients_per_therapist is None
        else _count(clients_per_therapist, "clients_per_therapist")
    )
    rng = np.random.default_rng(seed)
    has_client = client in frame.columns
    parts = []
    by_framework = frame[framework].astype(str)
    for level in present:
        rows = frame[by_framework == str(level)]
        pool = list(pd.unique(rows[therapist]))
        drawn = rng.choice(len(pool), size=sizes[str(level)], replace=True)
        for index in drawn:
            own = rows[rows[therapist] == pool[index]]
            label_t = f"{pool[index]}_r{len(parts) + 1}"
            if n_clients is None:
                part = own.copy()
                if has_client:
                    part[client] = part[client].astype(str) + f"_r{len(parts) + 1}"
                part[therapist] = label_t
                parts.append(part)
                continue
            clients = list(pd.unique(own[client]))
            chosen = rng.choice(len(clients), size=n_clients, replace=True)
            t_parts = []
            for j, c in enumerate(chosen):
                part = own[own[client] == clients[c]].copy()
                part[client] = f"{clients[c]}_r{len(parts) + 1}_{j + 1}"
                t_parts.append(part)
            part = pd.concat(t_parts)
            part[therapist] = label_t
            parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    if isinstance(frame[framework].dtype, pd.CategoricalDtype):
        out[framework] = pd.Categorical(out[framework], categories=levels)
    return out
