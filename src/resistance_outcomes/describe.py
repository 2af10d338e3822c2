"""Descriptive statistics by therapeutic framework.

- :func:`table1`: sample description by framework (long, tidy), with small-cell
  suppression (:func:`suppress_small_counts`); :func:`format_table1` and
  :func:`table1_markdown` turn it into a publication table.
- :func:`rate_by_session`: a construct's mean per attended session at each session number.
- :func:`construct_profile`: the forms and types of the profiled composite (config
  ``descriptives.profile``) per attended session and per 60 minutes, by framework.
- :func:`rate_interval`: the rate estimate and confidence interval used by both.
- :func:`retention_curves`: proportion still in therapy after each session (discrete-time
  Kaplan-Meier with Greenwood intervals), by framework or by :func:`repair_tertile`.

Inputs are the tables made by :func:`resistance_outcomes.derive.client_table`,
:func:`resistance_outcomes.derive.session_table` and
:func:`resistance_outcomes.derive.person_period`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from resistance_outcomes.codebook import humanise
from resistance_outcomes.derive import (
    CLIENT_KEY,
    Constructs,
    DataError,
    as_float,
    attended_mask,
    constructs_present,
    require_columns,
)
from resistance_outcomes.vocabulary import Vocabulary

TOTAL = "Total"
LONG_COLUMNS = ["variable", "statistic", "framework", "value", "n"]
_MISSING = "\u2014"
#: Marker of counts hidden for any reason other than being small themselves.
WITHHELD = "s"


def framework_order(frameworks: pd.Series, order: Sequence[str] | None = None) -> list[str]:
    """Order in which frameworks are reported: the framework map's.

    The categories in their categorical order when the column is categorical (as
    :func:`resistance_outcomes.frameworks.map_frameworks` makes it, in the order of the
    framework map), else the names in ``order`` (the map's, e.g.
    :meth:`resistance_outcomes.vocabulary.Vocabulary.framework_names`), else the order of
    first appearance (a table written in reporting order and read back from CSV keeps it);
    only frameworks present, names not in ``order`` after those that are.

    Parameters
    ----------
    frameworks : pandas.Series
        The ``framework`` column.
    order : sequence of str, optional
        Framework names in reporting order, for a column that is not categorical.

    Returns
    -------
    list of str

    Examples
    --------
    >>> import pandas as pd
    >>> framework_order(pd.Series(["other", "systemic", "humanistic", "systemic"]))
    ['other', 'systemic', 'humanistic']
    >>> framework_order(pd.Series(["other", "systemic", "humanistic"]),
    ...                 order=["humanistic", "systemic", "other"])
    ['humanistic', 'systemic', 'other']
    """
    values = frameworks.dropna()
    if isinstance(frameworks.dtype, pd.CategoricalDtype):
        present = set(values.astype(str))
        return [str(c) for c in frameworks.cat.categories if str(c) in present]
    seen = list(dict.fromkeys(values.astype(str)))
    known = [str(f) for f in (order or ()) if str(f) in seen]
    return known + [f for f in seen if f not in known]


# --------------------------------------------------------------------------- intervals


def rate_interval(
    counts: Sequence[float], exposure: Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """Rate of events per unit of exposure with a cluster-robust confidence interval.

    Each element is one cluster (a client, or one session when every client contributes at
    most one). The rate is ``R = sum(counts) / sum(exposure)``, the maximum-likelihood rate
    of an intercept-only Poisson model with ``offset(log(exposure))``. Its standard error is
    the cluster-robust (sandwich) one with the ``G / (G - 1)`` small-sample factor,
    ``SE(R) = sqrt(G / (G - 1) * sum((y - R m)^2)) / sum(m)``, which does not assume
    Poisson variance and allows any correlation within a cluster. The interval is a Wald
    interval on the log scale, ``R * exp(+/- t * SE(R) / R)``, with a t quantile on
    ``G - 1`` degrees of freedom; it stays positive. With equal exposures of 1 the SE is the
    usual ``s / sqrt(G)``. The interval is NaN when there are fewer than 2 clusters or no
    events.

    Parameters
    ----------
    counts : sequence of float
        Event count per cluster.
    exposure : sequence of float
        Exposure per cluster (sessions, minutes...), each >= 0.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    tuple of float
        ``(rate, ci_low, ci_high)``.

    Examples
    --------
    >>> rate, low, high = rate_interval([0, 1, 2, 1, 1], [1, 1, 1, 1, 1])
    >>> round(rate, 3), round(low, 3), round(high, 3)
    (1.0, 0.416, 2.406)
    """
    y = np.asarray(counts, dtype=float)
    m = np.asarray(exposure, dtype=float)
    clusters, total_exposure = y.size, m.sum()
    if clusters == 0 or total_exposure <= 0:
        return np.nan, np.nan, np.nan
    rate = float(y.sum() / total_exposure)
    if clusters < 2 or rate == 0:
        return rate, np.nan, np.nan
    residual = y - rate * m
    se = np.sqrt(clusters / (clusters - 1) * np.sum(residual**2)) / total_exposure
    half_width = stats.t.ppf(0.5 + level / 2, clusters - 1) * se / rate
    return float(rate), float(rate * np.exp(-half_width)), float(rate * np.exp(half_width))


def _hide_small(table: pd.DataFrame, count: str, min_cell: int) -> pd.DataFrame:
    """Blank every number of rows whose ``count`` is between 1 and ``min_cell - 1``."""
    small = table[count].between(1, min_cell - 1)
    numbers = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    numbers = [c for c in numbers if c != "session"]
    for column in numbers:
        table[column] = table[column].astype("Int64" if column.startswith("n_") else float)
    table.loc[small, numbers] = np.nan
    table["suppressed"] = small.to_numpy()
    return table


# --------------------------------------------------------------------------- Table 1


def _row(variable, statistic, framework, value, n):
    return {
        "variable": variable,
        "statistic": statistic,
        "framework": framework,
        "value": float(value),
        "n": int(n),
    }


def _count_rows(variable, count, framework, denominator=None):
    rows = [_row(variable, "count", framework, count, count)]
    if denominator is not None:
        percent = 100 * count / denominator if denominator else np.nan
        rows.append(_row(variable, "percent", framework, percent, denominator))
    return rows


def _mean_sd_rows(variable, values, framework):
    values = pd.Series(values, dtype=float).dropna()
    sd = values.std(ddof=1) if len(values) > 1 else np.nan
    return [
        _row(variable, "mean", framework, values.mean() if len(values) else np.nan, len(values)),
        _row(variable, "sd", framework, sd, len(values)),
    ]


def _lower_first(label: str) -> str:
    """``"Arguing"`` -> ``"arguing"``; a label starting with an acronym stays as it is."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def _dropout_label(column: str, labels: Mapping[str, str]) -> str:
    if column in labels:
        return labels[column]
    if column == "dropout":
        return "Dropout"
    return f"Dropout: {humanise(column.removeprefix('dropout_')).lower()}"


def _profile_block(composite, by_name, client_tbl) -> list[tuple[str, str, str]]:
    """Table 1 rows of the profiled composite: each form present ("<form> per attended
    session"), then its types ("<form> per attended session: <type>"), then the composite
    ("...: all forms"); without forms its parts ("<composite> per attended session: <part>")
    and "...: all types"."""
    forms = [by_name[p] for p in composite.parts if p in by_name and by_name[p].parts]
    rows = []

    def add(label, info):
        if info.rate_column in client_tbl:
            rows.append(("rate", label, info.rate_column))

    if not forms:
        for part in (by_name[p] for p in composite.parts if p in by_name):
            add(f"{composite.label} per attended session: {_lower_first(part.label)}", part)
        add(f"{composite.label} per attended session: all types", composite)
        return rows
    for form in forms:
        add(f"{form.label} per attended session", form)
        for part in (by_name[p] for p in form.parts if p in by_name):
            add(f"{form.label} per attended session: {_lower_first(part.label)}", part)
    add(f"{composite.label} per attended session: all forms", composite)
    return rows


def _construct_rows(
    client_tbl: pd.DataFrame, constructs: Constructs, session_tbl: pd.DataFrame, profile
) -> list[tuple[str, str, str]]:
    """What Table 1 reports of the constructs: ``(kind, label, column)`` in codebook order.

    Every count construct with a client rate gets a rate row, except the parts of a
    composite present (the composite sums them up) and the pipeline's ``unrepaired``. The
    profiled composite gets its block where its first construct comes (:func:`_profile_block`):
    its forms, each followed by its types, or its parts when it has no forms. ``ruptures``
    adds the rupture rows (sessions and clients with any, repair rate when ``repaired``
    exists).
    """
    if isinstance(constructs, Vocabulary):
        profile = constructs.profile if profile is None else profile
    candidates = session_tbl.drop(columns=[c for c in client_tbl if c in session_tbl.columns])
    infos = constructs_present(candidates, constructs)
    by_name = {c.name: c for c in infos}
    composite = by_name.get(profile) if profile else None
    profiled = set()
    if composite is not None:
        profiled = {composite.name, *composite.parts}
        profiled |= {t for p in composite.parts if p in by_name for t in by_name[p].parts}
    summed = {p for c in infos for p in c.parts if p in by_name} - profiled
    rows, placed = [], False
    for c in infos:
        has_rate = c.kind == "count" and c.rule not in ("rated_at_least", "derived")
        if c.name in profiled:
            if not placed:
                rows += _profile_block(composite, by_name, client_tbl)
                placed = True
            continue
        if not has_rate or c.name in summed or c.rate_column not in client_tbl:
            continue
        rows.append(("rate", f"{c.label} per attended session", c.rate_column))
        if c.name == "ruptures" and "ruptures_total" in client_tbl:
            rows.append(("ruptures", "", ""))
    return rows


def _rupture_rows(clients, done, framework) -> list[dict]:
    """Sessions and clients with any rupture; repair rate when repairs were coded."""
    ruptures = as_float(done, "ruptures", "sessions").dropna()
    rows = _count_rows(
        "Sessions with any rupture", int((ruptures > 0).sum()), framework, len(ruptures)
    )
    coded = clients[clients["rupture_rate"].notna()]
    with_ruptures = coded[coded["ruptures_total"] > 0]
    rows += _count_rows("Clients with any rupture", len(with_ruptures), framework, len(coded))
    if "repaired_total" in clients:
        repair = with_ruptures["repaired_total"] / with_ruptures["ruptures_total"]
        rows += _mean_sd_rows("Repair rate (clients with ruptures)", repair, framework)
    return rows


def _group_rows(clients, sessions, dropout_columns, framework, spec, labels) -> list[dict]:
    """Table 1 rows for one framework (or the total)."""
    attended = attended_mask(sessions)
    done = sessions[attended]
    rows = _count_rows("Clients", len(clients), framework)
    therapists = clients[["study", "therapist"]].drop_duplicates()
    rows += _count_rows("Therapists", len(therapists), framework)
    rows += _count_rows("Sessions scheduled", len(sessions), framework)
    rows += _count_rows("Sessions attended", int(attended.sum()), framework, len(sessions))
    for column in dropout_columns:
        status = clients[column].dropna()
        rows += _count_rows(
            _dropout_label(column, labels), int((status == 1).sum()), framework, len(status)
        )
    for kind, label, column in spec:
        if kind == "rate":
            rows += _mean_sd_rows(label, clients[column], framework)
        elif "ruptures" in done:
            rows += _rupture_rows(clients, done, framework)
    if "homework_done" in done:
        homework = as_float(done, "homework_done", "sessions").dropna()
        rows += _count_rows(
            "Homework completed (sessions with homework set)",
            int(homework.sum()),
            framework,
            len(homework),
        )
    if "alliance_mean" in clients:
        rows += _mean_sd_rows("Alliance (client mean)", clients["alliance_mean"], framework)
    return rows


def table1(
    client_tbl: pd.DataFrame,
    session_tbl: pd.DataFrame,
    dropout_columns: Sequence[str] = (),
    min_cell: int = 5,
    constructs: Constructs = None,
    dropout_labels: Mapping[str, str] | None = None,
    profile: str | None = None,
) -> pd.DataFrame:
    """Describe the sample by framework (Table 1), with small cells suppressed.

    Rows (``variable``), each for every framework and the total:

    - Clients, Therapists (distinct study x therapist), Sessions scheduled: counts;
    - Sessions attended: count and percent of scheduled sessions;
    - one row per dropout column, labelled by ``dropout_labels`` (the definition's
      configured description, see :func:`resistance_outcomes.derive.dropout_labels`):
      count of dropouts and percent of the clients the definition classifies (``n`` of the
      percent row is that denominator);
    - per count construct present, in codebook order: "<label> per attended session",
      mean and SD of the client rates (``<stem>_rate``). Parts of a composite that is
      present are summed up by it and get no row of their own, except those of the
      profiled composite (``profile``). Made of forms (resistance = overt + covert + ...),
      it gets for each form coded "<form> per attended session", then one row per type of
      the form coded, "<form> per attended session: <type>", and at the end
      "<composite> per attended session: all forms"; made of plain parts,
      "<composite> per attended session: <part>", then "<composite> per attended
      session: all types";
    - after the ruptures row, when ``ruptures`` is present: Sessions with any rupture
      (count and percent of attended sessions coded), Clients with any rupture (count and
      percent of clients with coded sessions) and, when ``repaired`` is present, Repair rate
      (clients with ruptures): mean and SD of repaired / ruptures over the clients with at
      least one rupture (``n`` says how many);
    - Homework completed: count and percent of attended sessions with homework set;
    - Alliance (client mean): mean and SD of client means.

    Rows appear only when their columns exist: a study without resistance coding has no
    resistance rows, one without ruptures no rupture rows. SDs use ``n - 1``. Small cells
    are then suppressed by :func:`suppress_small_counts`.

    Parameters
    ----------
    client_tbl : pandas.DataFrame
        Output of :func:`resistance_outcomes.derive.client_table`.
    session_tbl : pandas.DataFrame
        Output of :func:`resistance_outcomes.derive.session_table`.
    dropout_columns : sequence of str
        Dropout columns of ``client_tbl`` to report, e.g. ``["dropout_end_status"]``.
    min_cell : int, default 5
        Counts from 1 to ``min_cell - 1`` are suppressed.
    constructs : Vocabulary, list or mapping of ConstructInfo, optional
        The declared constructs (their labels and parts); default inferred from the
        session table's columns (:func:`resistance_outcomes.derive.constructs_present`).
    dropout_labels : mapping, optional
        Dropout column -> printed label; default the definition's name in words.
    profile : str, optional
        The profiled composite; default the vocabulary's (``descriptives.profile``).

    Returns
    -------
    pandas.DataFrame
        Long table with columns ``variable``, ``statistic`` (count, percent, mean, sd),
        ``framework`` (frameworks in :func:`framework_order`, then "Total"), ``value``,
        ``n`` (units the value is based on: the count itself, the percent's denominator, or
        the number of clients averaged) and ``suppressed``.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.derive import client_table, dropout_labels, session_table
    >>> clients = pd.DataFrame({"study": "s", "client": [f"C{i}" for i in range(6)],
    ...                         "therapist": ["T1", "T2"] * 3, "framework": "cognitive",
    ...                         "planned_sessions": 1, "end_status": ["completed"] * 6})
    >>> sessions = clients[["study", "client"]].assign(
    ...     session=1, attended=True, minutes=50.0, ruptures=[0, 1, 2, 1, 0, 3],
    ...     repaired=[0, 1, 1, 1, 0, 0])
    >>> definitions = {"judged": {"rule": "end_status", "description": "judged by therapist"}}
    >>> client_tbl = client_table(sessions, clients, definitions)
    >>> long = table1(client_tbl, session_table(sessions, clients), ["dropout_judged"],
    ...               dropout_labels=dropout_labels(definitions))
    >>> print(table1_markdown(format_table1(long)))  # doctest: +ELLIPSIS
    | Characteristic | Cognitive | Total |
    | :--- | ---: | ---: |
    | Clients, n | 6 | 6 |
    | Therapists, n | <5 | <5 |
    | Sessions scheduled, n | 6 | 6 |
    | Sessions attended, n (%) | 6 (100.0%) | 6 (100.0%) |
    | Dropout: judged by therapist, n (%) | 0 (0.0%) | 0 (0.0%) |
    | Ruptures per attended session, M (SD) | 1.17 (1.17) | 1.17 (1.17) |
    | Sessions with any rupture, n (%) | <5 | <5 |
    | Clients with any rupture, n (%) | <5 | <5 |
    | Repair rate (clients with ruptures), M (SD) | n<5 | n<5 |
    <BLANKLINE>
    *Note.* Counts from 1 to 4 are shown as <5 ...
    """
    require_columns(client_tbl, ["study", "therapist", "framework", *dropout_columns], "client")
    require_columns(session_tbl, ["study", "client", "framework", "attended"], "session")
    spec = _construct_rows(client_tbl, constructs, session_tbl, profile)
    labels = dict(dropout_labels or {})
    rows = []
    for framework in framework_order(client_tbl["framework"]):
        rows += _group_rows(
            client_tbl[client_tbl["framework"] == framework],
            session_tbl[session_tbl["framework"] == framework],
            dropout_columns,
            framework,
            spec,
            labels,
        )
    rows += _group_rows(client_tbl, session_tbl, dropout_columns, TOTAL, spec, labels)
    long = pd.DataFrame(rows, columns=LONG_COLUMNS)
    long["n"] = long["n"].astype("Int64")
    return suppress_small_counts(long, min_cell=min_cell)


def _protect_totals(
    long: pd.DataFrame, values: pd.Series, reason: pd.Series, min_cell: int, total: str
) -> None:
    """Secondary suppression of count rows (in place on ``reason``), judged on ``values``."""
    rows = long[long["statistic"].eq("count") & values.notna()]
    for _, row in rows.groupby("variable", sort=False):
        totals = row.index[row["framework"] == total]
        cells = values[row.index[row["framework"] != total]]
        if totals.empty or (reason[totals] != "").any():
            continue
        while True:
            hidden = reason[cells.index] != ""
            if not hidden.any() or cells[hidden].sum() >= min_cell:
                break
            candidates = cells[~hidden & (cells > 0)]
            target = totals if candidates.empty else [candidates.idxmin()]
            reason[target] = "secondary"
            if candidates.empty:
                break


def _complements(long: pd.DataFrame) -> pd.Series:
    """For count rows with a percent row: denominator minus count (else NaN)."""
    percent = long[long["statistic"] == "percent"].set_index(["variable", "framework"])["n"]
    keys = pd.MultiIndex.from_frame(long[["variable", "framework"]])
    denominator = percent.astype(float).reindex(keys).to_numpy()
    complement = pd.Series(denominator - long["value"].to_numpy(), index=long.index)
    return complement.where(long["statistic"].eq("count"))


def suppress_small_counts(
    long: pd.DataFrame, min_cell: int = 5, total_label: str = TOTAL
) -> pd.DataFrame:
    """Suppress small cells in a long descriptive table so no small group can be identified.

    Rules, applied in this order (``reason`` in brackets):

    1. Primary (``small``): a ``count`` from 1 to ``min_cell - 1`` (0 is shown), and any
       ``mean``/``sd`` (or other statistic) based on 1 to ``min_cell - 1`` units.
    2. Complement (``complement``): a count whose complement (the percent's denominator
       minus the count, e.g. clients who did not drop out) is from 1 to ``min_cell - 1``.
    3. Secondary (``secondary``): within a variable, when the hidden framework counts add up
       to less than ``min_cell`` and the total is shown, a hidden count could be recovered
       by subtraction; the smallest shown non-zero framework count is hidden as well,
       repeatedly, until the hidden counts add up to at least ``min_cell``; when no non-zero
       count is left, the total is hidden instead. The same is done on the complements.
    4. The ``percent`` of every hidden count is hidden (same reason).

    Means and SDs are protected by rule 1 only. Hidden rows keep their labels and get
    ``value`` and ``n`` blanked, ``suppressed = True`` and their ``reason``. The threshold
    is stored in ``attrs["min_cell"]`` for :func:`format_table1`.

    Parameters
    ----------
    long : pandas.DataFrame
        Columns ``variable``, ``statistic``, ``framework``, ``value``, ``n`` (for percent
        rows, ``n`` is the denominator).
    min_cell : int, default 5
        Smallest count shown (besides 0).
    total_label : str, default "Total"
        ``framework`` value of the total column.

    Returns
    -------
    pandas.DataFrame
        A copy with ``suppressed`` (bool) and ``reason`` ("" when shown) added.

    Examples
    --------
    >>> import pandas as pd
    >>> long = pd.DataFrame({"variable": "Dropout", "statistic": "count",
    ...                      "framework": ["a", "b", "c", "Total"],
    ...                      "value": [0.0, 3.0, 20.0, 23.0], "n": [0, 3, 20, 23]})
    >>> out = suppress_small_counts(long)
    >>> out["value"].tolist()
    [0.0, nan, nan, 23.0]
    >>> out["reason"].tolist()
    ['', 'small', 'secondary', '']
    """
    require_columns(long, LONG_COLUMNS, "descriptive")
    out = long.reset_index(drop=True).copy()
    out["value"] = out["value"].astype(float)
    out["n"] = out["n"].astype("Int64")
    statistic = out["statistic"]
    is_count = statistic.eq("count")
    complement = _complements(out)
    reason = pd.Series("", index=out.index, dtype=object)
    reason[is_count & complement.between(1, min_cell - 1)] = "complement"
    reason[is_count & out["value"].between(1, min_cell - 1)] = "small"
    summary = ~statistic.isin(["count", "percent"])
    reason[summary & out["n"].between(1, min_cell - 1).fillna(False)] = "small"
    for values in (out["value"].where(is_count), complement):
        _protect_totals(out, values, reason, min_cell, total_label)
    counts = out[is_count].set_index(["variable", "framework"])
    partner = reason[is_count].set_axis(counts.index)
    keys = pd.MultiIndex.from_frame(out[["variable", "framework"]])
    is_percent = statistic.eq("percent").to_numpy()
    reason[is_percent] = partner.reindex(keys[is_percent]).fillna("").to_numpy()
    hide = reason != ""
    out.loc[hide, "value"] = np.nan
    out.loc[hide, "n"] = pd.NA
    out["suppressed"] = hide.to_numpy()
    out["reason"] = reason.to_numpy()
    out.attrs["min_cell"] = min_cell
    return out


# --------------------------------------------------------------------------- formatting


def _format_cell(stats_: dict, min_cell: int, decimals: int) -> str:
    """Format one (variable, framework) cell from ``{statistic: (value, reason)}``."""
    if "mean" in stats_:
        (mean, reason), (sd, _) = stats_["mean"], stats_.get("sd", (np.nan, ""))
        if reason:
            return f"n<{min_cell}"
        if np.isnan(mean):
            return _MISSING
        return f"{mean:,.{decimals}f}" + ("" if np.isnan(sd) else f" ({sd:,.{decimals}f})")
    count, reason = stats_["count"]
    if reason:
        return f"<{min_cell}" if reason == "small" else WITHHELD
    if "percent" not in stats_:
        return f"{count:,.0f}"
    percent = stats_["percent"][0]
    return _MISSING if np.isnan(percent) else f"{count:,.0f} ({percent:.1f}%)"


def suppression_note(min_cell: int) -> str:
    """Table note explaining the suppression markers of :func:`format_table1`.

    Examples
    --------
    >>> suppression_note(5)[:40]
    'Counts from 1 to 4 are shown as <5 and m'
    """
    return (
        f"Counts from 1 to {min_cell - 1} are shown as <{min_cell} and means based on fewer "
        f"than {min_cell} clients as n<{min_cell}; {WITHHELD} marks a count withheld so that "
        "a small count cannot be recovered by subtraction. Percentages of hidden counts are "
        "not shown."
    )


def _row_label(variable: str, statistics: set) -> str:
    if "mean" in statistics:
        return f"{variable}, M (SD)"
    return f"{variable}, n (%)" if "percent" in statistics else f"{variable}, n"


def format_table1(
    long: pd.DataFrame,
    min_cell: int | None = None,
    decimals: int = 2,
    framework_labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Format the long Table 1 as a wide table of strings, one column per framework.

    Counts read ``"18"`` or ``"18 (20.0%)"``, means ``"0.45 (0.31)"``. Small counts read
    ``"<5"``, means on few clients ``"n<5"``, counts withheld to protect another cell
    ``"s"`` (see :func:`suppress_small_counts`), and values that cannot be computed (no
    clients with ruptures, a percentage of nothing, say) an em dash. When anything is
    hidden, the explanation from :func:`suppression_note` is stored in ``attrs["note"]``
    for :func:`table1_markdown`.

    Parameters
    ----------
    long : pandas.DataFrame
        Output of :func:`table1`.
    min_cell : int, optional
        Threshold used for suppression; read from ``long.attrs`` when not given (pass it
        when the table was read back from a file).
    decimals : int, default 2
        Decimals of means and SDs (percentages have 1).
    framework_labels : mapping, optional
        Framework name -> column header (``Vocabulary.framework_label``); default the name
        in words (``cognitive_behavioural`` -> ``Cognitive behavioural``).

    Returns
    -------
    pandas.DataFrame
        Columns ``Characteristic`` and one per framework (its label), then ``Total``.

    Examples
    --------
    >>> import pandas as pd
    >>> long = pd.DataFrame({"variable": ["Dropout", "Dropout", "Alliance", "Alliance"],
    ...                      "statistic": ["count", "percent", "mean", "sd"],
    ...                      "framework": "Total", "value": [18, 20.0, 5.123, 0.8],
    ...                      "n": [18, 90, 90, 90], "suppressed": False, "reason": ""})
    >>> format_table1(long, min_cell=5)
         Characteristic        Total
    0    Dropout, n (%)   18 (20.0%)
    1  Alliance, M (SD)  5.12 (0.80)
    """
    min_cell = min_cell if min_cell is not None else long.attrs.get("min_cell")
    if min_cell is None:
        raise ValueError(
            "format_table1: the suppression threshold is unknown; pass min_cell= (the value "
            "given to table1)."
        )
    require_columns(long, [*LONG_COLUMNS, "suppressed", "reason"], "Table 1")
    frameworks = list(dict.fromkeys(long["framework"].astype(str)))
    labels = dict(framework_labels or {})
    cells: dict[str, dict[str, dict]] = {}
    for row in long.itertuples(index=False):
        by_framework = cells.setdefault(row.variable, {})
        reason = row.reason if isinstance(row.reason, str) else ""
        by_framework.setdefault(str(row.framework), {})[row.statistic] = (float(row.value), reason)
    records = []
    for variable, by_framework in cells.items():
        statistics = set().union(*by_framework.values())
        record = {"Characteristic": _row_label(variable, statistics)}
        for framework in frameworks:
            header = framework if framework == TOTAL else labels.get(framework, humanise(framework))
            stats_ = by_framework.get(framework)
            record[header] = _format_cell(stats_, min_cell, decimals) if stats_ else _MISSING
        records.append(record)
    wide = pd.DataFrame(records)
    if long["suppressed"].astype(bool).any():
        wide.attrs["note"] = suppression_note(min_cell)
    return wide


def table1_markdown(wide: pd.DataFrame, note: str | None = None) -> str:
    """Render a formatted Table 1 as a Markdown pipe table.

    Parameters
    ----------
    wide : pandas.DataFrame
        Output of :func:`format_table1`.
    note : str, optional
        Text added below the table after "*Note.*"; default ``wide.attrs["note"]`` (the
        suppression note set by :func:`format_table1`), if any.

    Returns
    -------
    str

    Examples
    --------
    >>> import pandas as pd
    >>> wide = pd.DataFrame({"Characteristic": ["Clients, n"], "Total": ["45"]})
    >>> print(table1_markdown(wide))
    | Characteristic | Total |
    | :--- | ---: |
    | Clients, n | 45 |
    """

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    note = note if note is not None else wide.attrs.get("note")
    align = [":---"] + ["---:"] * (wide.shape[1] - 1)
    lines = [line(wide.columns), line(align), *(line(r) for r in wide.itertuples(index=False))]
    if note:
        lines += ["", f"*Note.* {note}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- rates


def _attended_sessions(session_tbl: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    require_columns(
        session_tbl, [*CLIENT_KEY, "framework", "session", "attended", *columns], "session"
    )
    return session_tbl[attended_mask(session_tbl)]


def _ordered_frameworks(table: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    table["framework"] = pd.Categorical(table["framework"], categories=order, ordered=True)
    return table


#: Columns of :func:`rate_by_session`.
RATE_COLUMNS = ["framework", "session", "n_sessions", "mean", "ci_low", "ci_high", "suppressed"]


def rate_by_session(
    session_tbl: pd.DataFrame,
    construct: str | None = "ruptures",
    min_cell: int = 5,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean of a construct per attended session at each session number, by framework.

    At a given session number every client contributes at most one session, so the
    sessions are independent across clients (therapist clustering is ignored in this
    description). The interval is :func:`rate_interval` with exposure 1 per session: the
    t-based standard error ``s / sqrt(n)``, applied on the log scale so it stays positive.
    Cells with 1 to ``min_cell - 1`` sessions are suppressed (all numbers blank).

    Parameters
    ----------
    session_tbl : pandas.DataFrame
        Output of :func:`resistance_outcomes.derive.session_table`.
    construct : str or None, default "ruptures"
        Session-level count or rating column. None (the study did not code it): an empty
        table with the columns below, for the caller to write with the reason.
    min_cell : int, default 5
        Smallest number of sessions shown.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``framework``, ``session``, ``n_sessions``, ``mean``, ``ci_low``, ``ci_high``,
        ``suppressed``; sorted by framework then session.

    Examples
    --------
    >>> import pandas as pd
    >>> tbl = pd.DataFrame({"study": "s", "client": list("ABCDE"), "framework": "cognitive",
    ...                     "session": 1, "attended": True, "ruptures": [0, 1, 2, 1, 1]})
    >>> rate_by_session(tbl).round(3)
       framework  session  n_sessions  mean  ci_low  ci_high  suppressed
    0  cognitive        1           5   1.0   0.416    2.406       False
    >>> rate_by_session(tbl, construct=None).columns.tolist() == RATE_COLUMNS
    True
    """
    if construct is None:
        return _empty(RATE_COLUMNS)
    done = _attended_sessions(session_tbl, [construct])
    values = pd.DataFrame(
        {
            "framework": done["framework"].astype(str),
            "session": done["session"].to_numpy(),
            "y": as_float(done, construct, "session"),
        }
    ).dropna(subset=["y"])
    rows = []
    for (framework, session), group in values.groupby(["framework", "session"]):
        rate, low, high = rate_interval(group["y"], np.ones(len(group)), level)
        rows.append((framework, session, len(group), rate, low, high))
    table = pd.DataFrame(rows, columns=RATE_COLUMNS[:-1])
    table = _ordered_frameworks(table, framework_order(done["framework"]))
    table = table.sort_values(["framework", "session"]).reset_index(drop=True)
    return _hide_small(table, "n_sessions", min_cell)


#: Columns of :func:`construct_profile`.
PROFILE_COLUMNS = [
    "framework",
    "kind",
    "form",
    "construct",
    "label",
    "n_clients",
    "n_sessions",
    "per_session",
    "per_session_ci_low",
    "per_session_ci_high",
    "per_hour",
    "per_hour_ci_low",
    "per_hour_ci_high",
    "suppressed",
]


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=bool if c == "suppressed" else object) for c in columns}
    )


def _profile_rates(done, column, minutes, order, level) -> list[tuple]:
    """``(framework, n_clients, n_sessions, per-session rate and CI, per-hour rate and CI)``
    of one count column, clients as clusters."""
    values = as_float(done, column, "session")
    coded = values.notna()
    timed = coded & minutes.notna()
    per_client = (
        pd.DataFrame(
            {
                "framework": done["framework"].astype(str),
                "y": values.fillna(0.0),
                "sessions": coded.astype(float),
                "y_timed": values.where(timed, 0.0),
                "hours": minutes.where(timed, 0.0) / 60.0,
            }
        )
        .groupby([done[k] for k in CLIENT_KEY])
        .agg({"framework": "first", **dict.fromkeys(("y", "sessions", "y_timed", "hours"), "sum")})
    )
    per_client = per_client[per_client["sessions"] > 0]
    rows = []
    for framework in order:
        group = per_client[per_client["framework"] == framework]
        per_session = rate_interval(group["y"], group["sessions"], level)
        per_hour = rate_interval(group["y_timed"], group["hours"], level)
        rows.append((framework, len(group), int(group["sessions"].sum()), *per_session, *per_hour))
    return rows


def _profile_entries(
    columns, parts: Sequence[str], forms: Mapping[str, Sequence[str]]
) -> list[tuple[str, str, str]]:
    """``(kind, form, construct)`` in reporting order: each form present, then its types;
    then the types of no form (all of them, without forms)."""
    parts = [p for p in parts if p in columns]
    entries, placed = [], set()
    for form, types in forms.items():
        inner = [t for t in parts if t in set(types)]
        if form in columns:
            entries.append(("form", form, form))
        entries += [("type", form, t) for t in inner]
        placed |= set(inner)
    return entries + [("type", "", t) for t in parts if t not in placed]


def construct_profile(
    session_tbl: pd.DataFrame,
    parts: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    min_cell: int = 5,
    level: float = 0.95,
    forms: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """The forms and types of a composite per attended session and per 60 minutes, by
    framework.

    The profile compares the parts of the composite named by config
    ``descriptives.profile``: its types (:meth:`Vocabulary.profile_parts`) and, when the
    composite is made of forms (resistance = overt + covert + ...,
    :meth:`Vocabulary.profile_forms`), each form (its session count, the sum of its types)
    before its types. For each framework and row the rate is total count / total exposure
    over the attended sessions coded for it (exposure: sessions, or the minutes / 60 of
    those of them with minutes), with a client-clustered interval from
    :func:`rate_interval` (each client one cluster), so that repeated sessions of a client
    are not treated as independent. Rows based on 1 to ``min_cell - 1`` clients are
    suppressed (all numbers blank). A form or type without a column (not coded) has no
    rows.

    Parameters
    ----------
    session_tbl : pandas.DataFrame
        Output of :func:`resistance_outcomes.derive.session_table`; ``minutes`` is
        optional (without it the per-hour rates are empty).
    parts : sequence of str
        The types' count columns, in reporting order; types without a column are left
        out. None present (the stage is not assessed): an empty table with the columns
        below, for the caller to write with the reason.
    labels : mapping, optional
        Form or type -> printed label (``Vocabulary.all_labels``); default the name in
        words.
    min_cell : int, default 5
        Smallest number of clients shown.
    level : float, default 0.95
        Confidence level.
    forms : mapping of str to sequence of str, optional
        Form -> its types, in reporting order (the forms' count columns are the forms'
        names). Without it every row is a type.

    Returns
    -------
    pandas.DataFrame
        ``framework``, ``kind`` ("form" or "type"), ``form`` (the row's form; empty for a
        type of no form), ``construct`` (the row's count column), ``label``,
        ``n_clients``, ``n_sessions``, ``per_session``, ``per_session_ci_low``,
        ``per_session_ci_high``, ``per_hour``, ``per_hour_ci_low``, ``per_hour_ci_high``,
        ``suppressed``; the rows of each form (the form, then its types) together.

    Examples
    --------
    >>> import pandas as pd
    >>> tbl = pd.DataFrame({"study": "s", "client": list("ABCDE"), "framework": "cognitive",
    ...                     "session": 1, "attended": True, "minutes": 60.0,
    ...                     "sustain_talk": [0, 1, 2, 1, 1]})
    >>> construct_profile(tbl, ["sustain_talk"])[["label", "n_clients", "per_session",
    ...                                            "per_hour"]]
              label  n_clients  per_session  per_hour
    0  Sustain talk          5          1.0       1.0
    >>> tbl = tbl.assign(discord=[1, 0, 0, 1, 0], talk=[1, 1, 2, 2, 1])
    >>> out = construct_profile(tbl, ["sustain_talk", "discord"],
    ...                         forms={"talk": ["sustain_talk", "discord"]})
    >>> out[["kind", "form", "construct", "per_session"]]
       kind  form     construct  per_session
    0  form  talk          talk          1.4
    1  type  talk  sustain_talk          1.0
    2  type  talk       discord          0.4
    >>> construct_profile(tbl, []).columns.tolist() == PROFILE_COLUMNS
    True
    """
    entries = _profile_entries(session_tbl.columns, parts, dict(forms or {}))
    if not any(kind == "type" for kind, _, _ in entries):
        return _empty(PROFILE_COLUMNS)
    labels = dict(labels or {})
    done = _attended_sessions(session_tbl, [c for _, _, c in entries])
    if "minutes" in done:
        minutes = as_float(done, "minutes", "session")
    else:
        minutes = pd.Series(np.nan, index=done.index)
    order = framework_order(done["framework"])
    rows = []
    for kind, form, column in entries:
        label = labels.get(column) or humanise(column)
        for framework, *numbers in _profile_rates(done, column, minutes, order, level):
            rows.append((framework, kind, form, column, label, *numbers))
    table = pd.DataFrame(rows, columns=PROFILE_COLUMNS[:-1])
    table = _ordered_frameworks(table, order)
    return _hide_small(table, "n_clients", min_cell)


# --------------------------------------------------------------------------- retention

#: Groups of :func:`repair_tertile`, in reporting order.
REPAIR_GROUPS = ("Low repair", "Middle repair", "High repair", "No ruptures", "Not coded")
RETENTION_COLUMNS = [
    "session", "n_risk", "n_events", "survival", "se", "ci_low", "ci_high", "suppressed",
]  # fmt: skip


def repair_tertile(client_tbl: pd.DataFrame) -> pd.DataFrame:
    """Group clients by the tertile of their repair rate (repaired / ruptures).

    The repair rate ``repaired_total / ruptures_total`` is defined for clients with at least
    one rupture. Their cut points are the 1/3 and 2/3 quantiles of that rate over all such
    clients pooled across frameworks (linear interpolation, R's default type 7), so "low
    repair" means the same in every framework: "Low repair" up to the first cut point,
    "Middle repair" up to the second, "High repair" above it. Ties stay together, so the
    groups are equal in size only when the rates are distinct. Clients without ruptures get
    their own group, "No ruptures" (they take no part in the cut points), and clients with
    no session coded for ruptures (``rupture_rate`` missing, e.g. no attended session) are
    "Not coded".

    The rate covers the whole of a client's therapy, so retention curves by these groups
    describe; they do not estimate an effect of repair: a client who leaves early has had
    fewer sessions in which to rupture and repair (early leavers are often in "No
    ruptures"). The dropout-hazard model, with ruptures up to each session, is the
    analysis of that effect.

    Parameters
    ----------
    client_tbl : pandas.DataFrame
        Output of :func:`resistance_outcomes.derive.client_table` (``study``, ``client``,
        ``ruptures_total``, ``repaired_total``, ``rupture_rate``).

    Returns
    -------
    pandas.DataFrame
        ``study``, ``client`` and ``repair_tertile``, an ordered categorical with the
        categories :data:`REPAIR_GROUPS`; to be merged into person-period data for
        :func:`retention_curves`.

    Examples
    --------
    >>> import pandas as pd
    >>> tbl = pd.DataFrame({"study": "s", "client": list("ABCDEFG"),
    ...                     "ruptures_total": [4, 4, 4, 4, 4, 0, 0],
    ...                     "repaired_total": [0, 1, 2, 3, 4, 0, 0],
    ...                     "rupture_rate": [1, 1, 1, 1, 1, 0, None]})
    >>> repair_tertile(tbl)["repair_tertile"].tolist()
    ['Low repair', 'Low repair', 'Middle repair', 'High repair', 'High repair', \
'No ruptures', 'Not coded']
    """
    require_columns(
        client_tbl, [*CLIENT_KEY, "ruptures_total", "repaired_total", "rupture_rate"], "client"
    )
    ruptures = as_float(client_tbl, "ruptures_total", "client").to_numpy()
    repaired = as_float(client_tbl, "repaired_total", "client").to_numpy()
    coded = as_float(client_tbl, "rupture_rate", "client").notna().to_numpy()
    with_ruptures = coded & (ruptures > 0)
    rate = np.divide(repaired, ruptures, out=np.full(ruptures.shape, np.nan), where=with_ruptures)
    labels = np.full(len(client_tbl), REPAIR_GROUPS[4], dtype=object)
    labels[coded & ~with_ruptures] = REPAIR_GROUPS[3]
    if with_ruptures.any():
        low, high = np.quantile(rate[with_ruptures], [1 / 3, 2 / 3])
        tertile = np.where(rate <= low, 0, np.where(rate <= high, 1, 2))
        labels[with_ruptures] = np.take(REPAIR_GROUPS, tertile[with_ruptures])
    out = client_tbl[CLIENT_KEY].reset_index(drop=True).copy()
    out["repair_tertile"] = pd.Categorical(labels, categories=REPAIR_GROUPS, ordered=True)
    return out


def _group_order(values: pd.Series, column: str) -> list:
    """Reporting order of one grouping column's values."""
    if column == "framework":
        return framework_order(values)
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.dropna())
        return [c for c in values.cat.categories if c in present]
    return sorted(values.dropna().unique(), key=str)


def _checked_survival_data(person_period: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``time`` (whole sessions >= 1) and ``event`` (0/1) with the group columns, checked."""
    require_columns(person_period, [*by, "time", "event"], "person-period")
    time = as_float(person_period, "time", "person-period")
    event = as_float(person_period, "event", "person-period")
    rebuild = "build the table with derive.person_period"
    checks = [
        ("time", ~(time >= 1) | (time % 1 != 0), "a whole session number of at least 1", rebuild),
        ("event", ~event.isin([0.0, 1.0]), "0 (still in therapy) or 1 (dropped out)", rebuild),
    ]
    checks += [
        (c, person_period[c].isna(), "a group", "give every row a group or leave it out")
        for c in by
    ]
    for column, bad, rule, advice in checks:
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            row = person_period.iloc[position]
            where = ", ".join(f"{k} '{row[k]}'" for k in ("client", "time") if k in row)
            value = "is empty" if pd.isna(row[column]) else f"has the value '{row[column]}'"
            raise DataError(
                f"person-period table, row {position + 1} ({where}): column '{column}' "
                f"{value}; it must be {rule}. Check the table or {advice}."
            )
    data = person_period[by].copy()
    data["time"], data["event"] = time.astype(int), event
    return data


def _kaplan_meier(time: pd.Series, event: pd.Series, z: float) -> pd.DataFrame:
    """Discrete-time Kaplan-Meier estimate with Greenwood SE and log(-log) interval."""
    table = event.groupby(time).agg(["size", "sum"]).set_axis(["n_risk", "n_events"], axis=1)
    n, d = table["n_risk"].to_numpy(float), table["n_events"].to_numpy(float)
    survival = np.cumprod(1 - d / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(np.where(d > 0, d / (n * (n - d)), 0.0))
        se_loglog = np.sqrt(greenwood) / np.abs(np.log(survival))
        low = survival ** np.exp(z * se_loglog)
        high = survival ** np.exp(-z * se_loglog)
        se = np.where(survival > 0, survival * np.sqrt(greenwood), np.nan)
    no_events_yet = greenwood == 0
    low[no_events_yet], high[no_events_yet] = 1.0, 1.0
    low[survival == 0], high[survival == 0] = np.nan, np.nan
    return pd.DataFrame(
        {
            "session": table.index.to_numpy(),
            "n_risk": n.astype(int),
            "n_events": d.astype(int),
            "survival": survival,
            "se": se,
            "ci_low": low,
            "ci_high": high,
        }
    )


def retention_curves(
    person_period: pd.DataFrame,
    by: str | Sequence[str] = "framework",
    level: float = 0.95,
    min_cell: int = 5,
) -> pd.DataFrame:
    """Proportion of clients still in therapy after each session, one curve per group.

    The discrete-time Kaplan-Meier estimate from person-period rows: at session ``t``,
    ``n_t`` is the number of rows with ``time == t`` (clients at risk of leaving early at
    that session) and ``d_t`` the number of those with ``event == 1``; the proportion still
    in therapy after session ``t`` is ``S(t) = prod_{s <= t} (1 - d_s / n_s)``. The standard
    error is Greenwood's, ``SE(S(t)) = S(t) sqrt(sum_{s <= t} d_s / (n_s (n_s - d_s)))``,
    and the interval is built on the log(-log) scale, ``S(t) ** exp(-/+ z SE(S) / (S(t)
    |log S(t)|))``, so it stays within 0 and 1 (R's ``survfit(conf.type = "log-log")``).
    Before the first dropout the interval is (1, 1); once ``S(t) = 0`` (every client at
    risk left) the SE and interval are missing.

    A client who missed a session does not count as at risk at that session (there is no
    person-period row), and clients leave the risk set after their last row (completers at
    their planned final session, censored clients at their last attended one). Without
    missed sessions this is the ordinary right-censored Kaplan-Meier estimate on (last
    session, dropped out). Sessions at which 1 to ``min_cell - 1`` clients of a group are
    at risk are suppressed (all numbers blank); the event counts of the sessions shown are
    not hidden separately, as the curve itself determines them.

    Parameters
    ----------
    person_period : pandas.DataFrame
        Output of :func:`resistance_outcomes.derive.person_period` (``time``, ``event``
        and the grouping columns), e.g. merged with :func:`repair_tertile`.
    by : str or sequence of str, default "framework"
        Grouping column(s): one curve per combination present.
    level : float, default 0.95
        Confidence level.
    min_cell : int, default 5
        Smallest number of clients at risk shown.

    Returns
    -------
    pandas.DataFrame
        The grouping columns, ``session``, ``n_risk``, ``n_events``, ``survival``, ``se``,
        ``ci_low``, ``ci_high``, ``suppressed``; groups in reporting order (frameworks by
        :func:`framework_order`), sessions ascending.

    Examples
    --------
    >>> import pandas as pd
    >>> pp = pd.DataFrame({"framework": "cognitive", "client": list("AABCCDDDEEE"),
    ...                    "time": [1, 2, 1, 1, 2, 1, 2, 3, 1, 2, 3],
    ...                    "event": [0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0]})
    >>> curves = retention_curves(pp, min_cell=1)
    >>> curves[["session", "n_risk", "n_events", "survival"]]
       session  n_risk  n_events  survival
    0        1       5         1       0.8
    1        2       4         1       0.6
    2        3       2         1       0.3

    Curves by framework and repair tertile:

    >>> from resistance_outcomes.derive import client_table, person_period
    >>> pp = person_period(sessions, clients, {"rule": "end_status"})  # doctest: +SKIP
    >>> pp = pp.merge(repair_tertile(client_table(sessions, clients)))  # doctest: +SKIP
    >>> retention_curves(pp, by=["framework", "repair_tertile"])  # doctest: +SKIP
    """
    by = [by] if isinstance(by, str) else list(by)
    data = _checked_survival_data(person_period, by)
    z = stats.norm.ppf(0.5 + level / 2)
    orders = [_group_order(person_period[c], c) for c in by]
    pieces = []
    for key, rows in data.groupby(by, observed=True, sort=False):
        curve = _kaplan_meier(rows["time"], rows["event"], z)
        for column, value in zip(by, key, strict=True):
            curve[column] = value
        pieces.append(curve)
    curves = pd.concat(pieces, ignore_index=True)[[*by, *RETENTION_COLUMNS[:-1]]]
    for column, order in zip(by, orders, strict=True):
        curves[column] = pd.Categorical(curves[column], categories=order, ordered=True)
    curves = curves.sort_values([*by, "session"]).reset_index(drop=True)
    small = curves["n_risk"].between(1, min_cell - 1)
    numbers = RETENTION_COLUMNS[1:-1]
    curves[["n_risk", "n_events"]] = curves[["n_risk", "n_events"]].astype("Int64")
    curves.loc[small, numbers] = pd.NA
    curves["suppressed"] = small.to_numpy()
    return curves
