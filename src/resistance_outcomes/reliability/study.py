"""The reliability analysis of a coded study, and its publication table.

:func:`reliability_analysis` takes the canonical code table, the coding log and the
codebook, and computes the inter-rater reliability of every construct the codebook
declares and the codes hold (ICCs of counts per session and of ratings per unit) and of
every categorical comparison the codebook declares under ``categorical:`` (kappas per
unit). Without double-coded sessions nothing is assessed: the result says so
(``assessed`` False, with the reason) and its table has no rows.
:func:`format_reliability_table` and :func:`reliability_markdown` print the result with
the constructs' labels from the codebook; :func:`resistance_outcomes.reliability.
reliability_gate` checks it; :func:`resistance_outcomes.figures.plot_agreement` draws it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from resistance_outcomes.codebook import (
    CATEGORICAL_UNITS,
    CODER_KEY,
    SESSION_KEY,
    Codebook,
    humanise,
    session_values_by_coder,
    unit_level_codes,
)
from resistance_outcomes.ingest import ROLES
from resistance_outcomes.io import write_text
from resistance_outcomes.tables import (
    MISSING,
    ApaTable,
    format_bounded,
    format_ci,
    format_number,
    to_markdown,
)

from .gate import not_assessed_sentence
from .statistics import (
    FLEISS_STATISTIC,
    ICC_K_STATISTIC,
    ICC_STATISTIC,
    ReliabilityInputError,
    _check_columns,
    _check_complete,
    icc_table,
    kappa_table,
    koo_li_label,
)

__all__ = [
    "NOT_DOUBLE_CODED",
    "TABLE_COLUMNS",
    "ReliabilityResult",
    "format_reliability_table",
    "reliability_analysis",
    "reliability_labels",
    "reliability_markdown",
]

NO_CATEGORY = "none"
#: Why nothing was assessed when no session was coded by two or more coders.
NOT_DOUBLE_CODED = "no double-coded sessions"
#: Columns of ``ReliabilityResult.table`` (and of ``results/reliability/reliability.csv``).
TABLE_COLUMNS = [
    "construct",
    "construct_label",
    "level",
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "n_targets",
    "n_raters",
    "pct_agreement",
    "label",
    "note",
]
#: The columns a table needs to be printed (``construct_label`` is optional).
_REQUIRED = [c for c in TABLE_COLUMNS if c != "construct_label"]
_UNIT_ID = [*SESSION_KEY, "unit"]
#: The data contract's coder roles, in rating-slot order (ingest maps a lab's role words
#: to these with ``coder_role_values:``).
_ROLE_ORDER = pd.CategoricalDtype(list(ROLES), ordered=True)


@dataclass
class ReliabilityResult:
    """Inter-rater reliability of every construct of a coded study.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per construct and statistic (tidy; columns :data:`TABLE_COLUMNS`):
        ``construct``, ``construct_label`` (its printed name), ``level`` (``"session"``:
        counts per session; ``"unit"``: ratings and categorical codes per segment or
        utterance), ``statistic`` (ICC(A,1), ICC(A,k), Cohen's kappa, Fleiss' kappa),
        ``estimate``, ``ci_low``, ``ci_high`` (95%), ``n_targets`` (sessions or units
        coded by two or more coders), ``n_raters`` (distinct coders), ``pct_agreement``
        (targets on which all coders gave the same value), ``label`` (Koo & Li, 2016)
        and ``note``. No identifiers. No rows when nothing was assessed.
    icc : pandas.DataFrame
        :func:`icc_table` output for the ICC rows (design, ratings per target, ICC(1,1)).
    kappa : pandas.DataFrame
        :func:`kappa_table` output for the kappa rows (standard errors).
    sample : dict
        The reliability sample: ``source`` (``"coding log"`` or ``"codes"``),
        ``coded_sessions``, ``double_coded_sessions``, ``coders``, ``double_coded_units``,
        ``n_boot``, ``note``, ``assessed``, ``reason`` (why not assessed) and ``skipped``
        (one sentence per categorical comparison not computed, and why).
    """

    table: pd.DataFrame
    icc: pd.DataFrame
    kappa: pd.DataFrame
    sample: dict = field(default_factory=dict)

    @property
    def assessed(self) -> bool:
        """Whether any coefficient was computed (double-coded sessions with codes)."""
        return bool(self.sample.get("assessed", True))

    @property
    def reason(self) -> str:
        """Why nothing was assessed ("" when something was)."""
        return str(self.sample.get("reason", ""))

    @property
    def skipped(self) -> list[str]:
        """Categorical comparisons not computed, each with its reason."""
        return list(self.sample.get("skipped", []))


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


def reliability_labels(
    codebook: Codebook,
    categorical: Mapping[str, Mapping] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Printed names of the rows of a reliability table: each construct's label from the
    codebook (:attr:`resistance_outcomes.codebook.Construct.printed`), each categorical
    comparison's ``label``, then ``labels`` (e.g. the config's ``labels:``) over both.

    Examples
    --------
    >>> from resistance_outcomes.codebook import Codebook, Construct
    >>> cb = Codebook({}, {"homework_refusal": Construct("homework_refusal", "units",
    ...                    label="Refused homework")})
    >>> reliability_labels(cb, {"refusal_kind": {"categories": {"x": "homework_refusal"}}})
    {'homework_refusal': 'Refused homework', 'refusal_kind': 'Refusal kind'}
    """
    categorical = codebook.categorical if categorical is None else categorical
    out = {name: c.printed for name, c in codebook.constructs.items()}
    out.update({name: spec["label"] for name, spec in _comparisons(categorical).items()})
    out.update({str(k): str(v) for k, v in (labels or {}).items()})
    return out


def _comparisons(categorical: Mapping[str, Mapping]) -> dict[str, dict]:
    """Categorical comparisons with label, categories and units filled in and checked."""
    if not isinstance(categorical, Mapping):
        raise ReliabilityInputError(
            "categorical must map a name to {categories: {category: construct}, units: "
            f"logged | coded}}, got {type(categorical)!r}."
        )
    out = {}
    for name, spec in categorical.items():
        categories = spec.get("categories") if isinstance(spec, Mapping) else None
        if not isinstance(categories, Mapping) or not categories:
            raise ReliabilityInputError(
                f"categorical[{name!r}] needs `categories:` (category: construct)."
            )
        units = spec.get("units", "logged")
        if units not in CATEGORICAL_UNITS:
            raise ReliabilityInputError(
                f"categorical[{name!r}]: units {units!r} is not one of "
                f"{', '.join(CATEGORICAL_UNITS)}."
            )
        label = str(spec.get("label") or humanise(name))
        out[str(name)] = {"label": label, "categories": dict(categories), "units": units}
    return out


# --------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------


def reliability_analysis(
    codes: pd.DataFrame,
    coding_log: pd.DataFrame | None,
    codebook: Codebook,
    *,
    repair_threshold: float = 4,
    categorical: Mapping[str, Mapping] | None = None,
    labels: Mapping[str, str] | None = None,
    seed: int = 0,
    n_boot: int = 2000,
) -> ReliabilityResult:
    """Inter-rater reliability of every construct, from the double-coded sessions.

    The reliability sample is every session with two or more coders in the coding log.
    Each coder's codes of those sessions are made into the constructs of the codebook
    the same way the analysis makes them (:func:`resistance_outcomes.codebook.
    unit_level_codes`), over every unit the coder logged: a logged unit without codes
    is coded "nothing found", and a logged coder without any code in a session has 0 for
    every count. Then:

    - counts per session (every count construct the codes make): ICC(A,1) and ICC(A,k)
      over the double-coded sessions;
    - ratings (``mean_rating`` constructs): ICC(A,1) and ICC(A,k) per unit, over units
      every coder of the session rated (a rating belongs to a unit, and a session mean
      would lose sessions where one coder saw no unit to rate);
    - categorical comparisons per unit (the codebook's ``categorical:``): Cohen's kappa
      when one pair of coders coded every unit, Fleiss' kappa otherwise (bootstrap CI
      over units).

    Without a session coded by two or more coders (or without any code in them) nothing
    is assessed: the result's table has no rows and ``sample`` says why; this is not an
    error.

    Parameters
    ----------
    codes : pandas.DataFrame
        Canonical code table (``study``, ``client``, ``session``, ``unit``, ``coder``,
        ``code``, optionally ``value`` and ``role``), codes as in the codebook. May be
        empty (construct counts given as session columns).
    coding_log : pandas.DataFrame or None
        Canonical coding log (``study``, ``client``, ``session``, ``coder``, ``units``,
        optionally ``role``). None or empty: the sample is inferred from the codes (each
        coder with codes in a session, units 1 .. the highest unit coded), which misses
        coders who coded nothing and units after the last code.
    codebook : Codebook
    repair_threshold : float
        Rating at or above which a unit counts for ``rated_at_least`` constructs.
    categorical : mapping, optional
        Categorical comparisons per unit: name -> ``{"label", "categories": {category:
        construct}, "units": "logged" | "coded"}`` (see ``config/codebook.yaml``);
        default the codebook's ``categorical:`` section. A comparison whose constructs are
        not all declared in the codebook, or not all made from the codes (their
        instrument is not in the code table), is skipped and named in
        ``sample["skipped"]``. A unit whose coder gave two of the categories gets both,
        joined by "+".
    labels : mapping, optional
        Construct -> printed name over the codebook's labels (e.g. the config's
        ``labels:``); see :func:`reliability_labels`.
    seed : int
        Seed of the bootstrap of Fleiss' kappa.
    n_boot : int
        Bootstrap resamples for Fleiss' kappa.

    Returns
    -------
    ReliabilityResult

    Raises
    ------
    ReliabilityInputError
        A column is missing; a coder has codes in a double-coded session without being
        logged for it; a categorical comparison is malformed.

    Notes
    -----
    With roles given (``role`` in the coding log, or in the codes), the primary coder's
    rating is the first rating of a session in rotating designs (see :func:`icc_table`),
    so a systematic difference between primary and reliability coders counts against
    absolute agreement. Labels follow Koo & Li (2016) for ICCs and, with the same cut-offs,
    for kappas (for two categories kappa is an ICC; Fleiss & Cohen, 1973).

    References
    ----------
    Fleiss, J. L., & Cohen, J. (1973). The equivalence of weighted kappa and the intraclass
    correlation coefficient as measures of reliability. Educational and Psychological
    Measurement, 33(3), 613-619.

    Examples
    --------
    Two coders, five sessions of one unit each, one count construct of a lab's own
    instrument:

    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import Code, Codebook, Construct
    >>> cb = Codebook({"HWR": Code("HWR", "LAB", "homework_refusal", "marker", 0, 1)},
    ...               {"homework_refusal": Construct("homework_refusal", "codes",
    ...                                              label="Refused homework")})
    >>> log = pd.DataFrame({"study": "s", "client": "1", "session": [1, 1, 2, 2, 3, 3,
    ...     4, 4, 5, 5], "coder": ["A", "B"] * 5, "units": 1})
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": [1, 1, 2, 3, 3, 5],
    ...     "unit": 1, "coder": ["A", "B", "A", "A", "B", "B"], "code": "HWR"})
    >>> result = reliability_analysis(codes, log, cb)
    >>> result.table[["construct_label", "statistic", "n_targets", "pct_agreement"]]
        construct_label statistic  n_targets  pct_agreement
    0  Refused homework  ICC(A,1)          5           60.0
    1  Refused homework  ICC(A,k)          5           60.0
    >>> reliability_analysis(codes.iloc[:0], log.iloc[:0], cb).reason
    'no double-coded sessions'
    """
    comparisons = _comparisons(codebook.categorical if categorical is None else categorical)
    printed = reliability_labels(codebook, comparisons, labels)
    if codes is not None and codes.empty:
        codes = codes.reindex(columns=list(dict.fromkeys([*codes.columns, *_UNIT_ID,
                                                          "coder", "code"])))  # fmt: skip
    _check_columns(codes, [*_UNIT_ID, "coder", "code"], "codes")
    log, sample = _reliability_log(codes, coding_log)
    _check_logged_coders(codes, log)
    double = log.groupby(SESSION_KEY, observed=True)["coder"].transform("nunique") >= 2
    log = log[double.to_numpy()]
    sample.update(
        double_coded_sessions=int(log[SESSION_KEY].drop_duplicates().shape[0]),
        coders=int(log["coder"].nunique()),
        double_coded_units=0,
        n_boot=n_boot,
    )
    if log.empty:
        return _not_assessed(sample, NOT_DOUBLE_CODED)
    in_sample = _in_log(codes, log, SESSION_KEY)
    present = codes["code"].dropna().unique()
    constructs = codebook.active_constructs(present)
    if not constructs or not in_sample.any():
        return _not_assessed(sample, "no codes in the double-coded sessions")
    units = unit_level_codes(
        codes[in_sample], codebook, repair_threshold, constructs, coding_log=log
    )
    units = units[[c for c in units.columns if c != "analysis_coder"]]
    slot_by = None
    if "role" in units.columns and units["role"].notna().all():
        if units["role"].astype(str).isin(ROLES).all():
            slot_by = "role"
            units["role"] = units["role"].astype(str).astype(_ROLE_ORDER)
    icc = _icc_rows(units, codebook, present, constructs, slot_by)
    kappa, skipped = _kappa_rows(units, codebook, constructs, comparisons, printed, n_boot, seed)
    sample.update(
        double_coded_units=int(units[_UNIT_ID].drop_duplicates().shape[0]),
        assessed=True,
        reason="",
        skipped=skipped,
    )
    return ReliabilityResult(_tidy(icc, kappa, printed), icc, kappa, sample)


def _not_assessed(sample: dict, reason: str) -> ReliabilityResult:
    sample.update(assessed=False, reason=reason, skipped=[])
    empty = pd.DataFrame(columns=TABLE_COLUMNS)
    return ReliabilityResult(_typed(empty), pd.DataFrame(), pd.DataFrame(), sample)


def _reliability_log(codes: pd.DataFrame, coding_log: pd.DataFrame | None):
    """The coding log, or one inferred from the codes; and the sample description."""
    if coding_log is not None and not coding_log.empty:
        _check_columns(coding_log, [*CODER_KEY, "units"], "coding_log")
        _check_complete(coding_log, [*CODER_KEY, "units"], "coding_log")
        log = coding_log.reset_index(drop=True)
        sample = {"source": "coding log", "note": ""}
    else:
        frame = codes.dropna(subset=[*CODER_KEY, "unit"])
        aggregations = {"units": ("unit", "max")}
        if "role" in frame.columns:
            aggregations["role"] = ("role", "first")
        log = frame.groupby(CODER_KEY, observed=True).agg(**aggregations).reset_index()
        log = log.reindex(columns=list(dict.fromkeys([*CODER_KEY, "units", *log.columns])))
        sample = {
            "source": "codes",
            "note": "No coding log: the reliability sample is inferred from the codes, so "
            "coders who coded nothing in a session and units after a coder's last code are "
            "not counted."
            if len(frame)
            else "",
        }
    sample["coded_sessions"] = int(log[SESSION_KEY].drop_duplicates().shape[0])
    return log, sample


def _in_log(frame: pd.DataFrame, log: pd.DataFrame, keys: list[str]) -> np.ndarray:
    if frame.empty or log.empty:
        return np.zeros(len(frame), dtype=bool)
    logged = pd.MultiIndex.from_frame(log[keys].astype(object))
    return pd.MultiIndex.from_frame(frame[keys].astype(object)).isin(logged)


def _check_logged_coders(codes: pd.DataFrame, log: pd.DataFrame) -> None:
    complete = codes.dropna(subset=CODER_KEY)
    unlogged = ~_in_log(complete, log, CODER_KEY)
    if unlogged.any():
        row = complete.index[unlogged][0]
        key = ", ".join(f"{k}={complete.at[row, k]!r}" for k in CODER_KEY)
        raise ReliabilityInputError(
            f"codes: row {row!r} ({key}): the coding log has no row for this coder in this "
            "session. Add the coder to the coding log (resistance_outcomes.validate."
            "check_coding_log lists every such row)."
        )


def _icc_rows(units, codebook, present, constructs, slot_by) -> pd.DataFrame:
    """ICCs of the per-session counts and of the per-unit ratings."""
    rated = {c for c in constructs if codebook.constructs[c].aggregate == "mean_rating"}
    counts = [c for c in codebook.session_columns(present) if c not in rated]
    keep = [*CODER_KEY, *([slot_by] if slot_by else [])]
    parts = []
    if counts:
        per_session = session_values_by_coder(units, codebook, counts)
        ratings = per_session.melt(keep, counts, var_name="construct", value_name="value")
        parts.append(_ordered_icc(ratings, SESSION_KEY, counts, slot_by).assign(level="session"))
    rating_rows = []
    for name in [c for c in constructs if c in rated]:
        within = units.get(codebook.constructs[name].within, 0) > 0
        scoped = units[within & units[name].notna()]
        rating_rows.append(scoped[[*keep, "unit", name]].rename(columns={name: "value"}))
        rating_rows[-1]["construct"] = name
    if rating_rows:
        long = pd.concat(rating_rows, ignore_index=True)
        ordered = [c for c in constructs if c in rated]
        parts.append(_ordered_icc(long, _UNIT_ID, ordered, slot_by).assign(level="unit"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _ordered_icc(ratings, targets, order, slot_by) -> pd.DataFrame:
    """ICCs in codebook order; a construct without ratings gets a row saying so."""
    ratings = ratings.assign(construct=pd.Categorical(ratings["construct"], categories=order))
    name = "sessions" if targets == SESSION_KEY else "units"
    out = icc_table(ratings, targets, "coder", "value", "construct", slot_by, name)
    out = out.assign(construct=out["construct"].astype(str)).set_index("construct")
    out = out.reindex(order)
    unrated = out["statistic"].isna()
    out.loc[unrated, ["statistic", "design", "label"]] = [ICC_STATISTIC, "none", "not estimable"]
    out.loc[unrated, ["n_targets", "n_raters", "ratings_per_target"]] = 0
    out.loc[unrated, "note"] = f"no {name[:-1]} rated by two or more coders"
    return out.reset_index()


def _kappa_rows(units, codebook, constructs, comparisons, printed, n_boot, seed):
    """Kappa of each categorical comparison whose constructs are all made from the codes;
    and one sentence per comparison skipped."""
    parts, skipped = [], []
    for name, spec in comparisons.items():
        categories = spec["categories"]
        undeclared = [c for c in categories.values() if c not in codebook.constructs]
        uncoded = [c for c in categories.values() if c not in constructs]
        if undeclared:
            listed = ", ".join(repr(c) for c in undeclared)
            skipped.append(
                f"{spec['label']}: not assessed ({listed} not declared under `constructs:` "
                f"in {codebook.source})"
            )
            continue
        if uncoded:
            listed = ", ".join(printed.get(c, c) for c in uncoded)
            skipped.append(f"{spec['label']}: not assessed (not coded in this study: {listed})")
            continue
        frame = units[[*_UNIT_ID, "coder"]].assign(
            category=_unit_categories(units, categories), construct=name
        )
        if spec["units"] == "coded":
            coded = (
                frame["category"]
                .ne(NO_CATEGORY)
                .groupby([frame[k] for k in _UNIT_ID], observed=True)
                .transform("any")
            )
            frame = frame[coded.to_numpy()]
        parts.append(frame)
    columns = ["construct", "statistic", "n_units", "n_raters", "kappa", "se", "ci_low",
               "ci_high", "pct_agreement", "note"]  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=[*columns, "level"]), skipped
    frame = pd.concat(parts, ignore_index=True)
    frame["construct"] = pd.Categorical(frame["construct"], categories=list(comparisons))
    out = kappa_table(frame, _UNIT_ID, "coder", "category", "construct", n_boot, seed)
    computed = out["construct"].astype(str).isin(frame["construct"].astype(str).unique())
    out = out[computed.to_numpy()]
    return out.assign(construct=out["construct"].astype(str), level="unit"), skipped


def _unit_categories(units: pd.DataFrame, categories: dict[str, str]) -> pd.Series:
    """Each unit's category: the labels of the constructs present joined by "+", or
    "none"."""
    joined = pd.Series("", index=units.index, dtype=object)
    for label, construct in categories.items():
        if construct not in units.columns:
            continue
        separator = np.where(joined.ne(""), "+", "")
        joined = joined.where(~units[construct].gt(0), joined + separator + label)
    return joined.where(joined.ne(""), NO_CATEGORY)


def _tidy(icc: pd.DataFrame, kappa: pd.DataFrame, printed: Mapping[str, str]) -> pd.DataFrame:
    """One row per construct and statistic, in the order of the analysis."""
    rows = []
    for _, row in icc.iterrows():
        for statistic, prefix in ((ICC_STATISTIC, "icc_a1"), (ICC_K_STATISTIC, "icc_ak")):
            estimate = row[prefix]
            rows.append(
                {
                    "construct": row["construct"],
                    "level": row["level"],
                    "statistic": statistic,
                    "estimate": estimate,
                    "ci_low": row[f"{prefix}_ci_low"],
                    "ci_high": row[f"{prefix}_ci_high"],
                    "n_targets": row["n_targets"],
                    "n_raters": row["n_raters"],
                    "pct_agreement": row["pct_agreement"],
                    "label": koo_li_label(estimate),
                    "note": row["note"],
                }
            )
    for _, row in kappa.iterrows():
        rows.append(
            {
                **{key: row[key] for key in ("construct", "level", "statistic")},
                "estimate": row["kappa"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "n_targets": row["n_units"],
                "n_raters": row["n_raters"],
                "pct_agreement": row["pct_agreement"],
                "label": koo_li_label(row["kappa"]),
                "note": row["note"],
            }
        )
    for row in rows:
        row["construct_label"] = printed.get(row["construct"], humanise(row["construct"]))
    return _typed(pd.DataFrame(rows, columns=TABLE_COLUMNS))


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype({"estimate": float, "ci_low": float, "ci_high": float,
                         "pct_agreement": float})  # fmt: skip


# --------------------------------------------------------------------------------------
# Publication table
# --------------------------------------------------------------------------------------

_GROUPS = {
    "session": "Counts per session",
    "unit ICC": "Ratings per unit",
    "unit kappa": "Categorical codes per unit",
}
_COLUMNS = ["Construct", "Statistic", "Estimate", "95% CI", "n", "Coders", "% agreement",
            "Interpretation"]  # fmt: skip
_TITLE = "Inter-Rater Reliability of the Coded Constructs"


def _group_of(row: pd.Series) -> str:
    if row["level"] == "session":
        return "session"
    return "unit ICC" if str(row["statistic"]).startswith("ICC") else "unit kappa"


def _printed_names(table: pd.DataFrame, labels: Mapping[str, str] | None) -> dict[str, str]:
    """Construct -> printed name: ``labels``, else the table's ``construct_label``, else
    the name in words."""
    names = {}
    if "construct_label" in table.columns:
        given = table.dropna(subset=["construct_label"])
        names = dict(zip(given["construct"].astype(str), given["construct_label"].astype(str),
                         strict=True))  # fmt: skip
    names.update({str(k): str(v) for k, v in (labels or {}).items()})
    for construct in table["construct"].astype(str):
        names.setdefault(construct, humanise(construct))
    return names


def format_reliability_table(
    table: pd.DataFrame,
    number: int = 1,
    sample: dict | None = None,
    labels: Mapping[str, str] | None = None,
) -> ApaTable:
    """The reliability table in APA style, ready for :func:`resistance_outcomes.tables.
    to_markdown`, ``to_latex`` or ``to_docx``.

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table`` (also as read back from CSV).
    number : int
        Table number.
    sample : dict, optional
        ``ReliabilityResult.sample``; adds the size of the reliability sample, the
        bootstrap resamples of Fleiss' kappa and the comparisons skipped to the note, and,
        when nothing was assessed, the reason.
    labels : mapping, optional
        Construct -> printed name; default the table's ``construct_label`` column, else
        the construct's name in words.

    Returns
    -------
    resistance_outcomes.tables.ApaTable
        Panels by kind (counts per session, ratings per unit, categorical codes per unit);
        columns construct, statistic, estimate, 95% CI, *n*, coders, % agreement and
        interpretation. Each construct's notes (why a value is missing, targets left out)
        follow the general note. A table without rows (nothing assessed) has no rows and
        a note that says "Inter-rater reliability: not assessed (reason)."

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures"], "level": ["session"],
    ...     "statistic": ["ICC(A,1)"], "estimate": [0.912], "ci_low": [0.88],
    ...     "ci_high": [0.94], "n_targets": [120], "n_raters": [4],
    ...     "pct_agreement": [71.7], "label": ["excellent"], "note": [""]})
    >>> format_reliability_table(table).rows.iloc[0].tolist()
    ['Ruptures', 'ICC(A,1)', '.91', '[.88, .94]', '120', '4', '71.7', 'excellent']
    >>> format_reliability_table(table.iloc[:0],
    ...     sample={"assessed": False, "reason": "no double-coded sessions"}).note
    'Inter-rater reliability: not assessed (no double-coded sessions).'
    """
    _check_columns(table, _REQUIRED, "table")
    names = _printed_names(table, labels)
    if table.empty:
        return ApaTable(
            number=number,
            title=_TITLE,
            columns=list(_COLUMNS),
            rows=pd.DataFrame([], columns=range(len(_COLUMNS)), dtype=object),
            note=_not_assessed_note(sample),
        )
    groups = table.apply(_group_of, axis=1)
    order = [g for g in _GROUPS if (groups == g).any()]
    ordered = pd.concat([table[groups == g] for g in order])
    cells = [
        [
            names[str(row["construct"])],
            str(row["statistic"]),
            format_bounded(row["estimate"]),
            format_ci(*np.clip([row["ci_low"], row["ci_high"]], -1, 1), bounded=True),
            str(int(row["n_targets"])),
            str(int(row["n_raters"])),
            format_number(row["pct_agreement"], 1),
            row["label"] if row["label"] != "not estimable" else MISSING,
        ]
        for _, row in ordered.iterrows()
    ]
    return ApaTable(
        number=number,
        title=_TITLE,
        columns=list(_COLUMNS),
        rows=pd.DataFrame(cells, columns=range(len(_COLUMNS)), dtype=object),
        row_groups=[(_GROUPS[g], int((groups == g).sum())) for g in order],
        note=_reliability_note(ordered, sample, names),
    )


def _not_assessed_note(sample: dict | None) -> str:
    sample = sample or {}
    reason = sample.get("reason") or NOT_DOUBLE_CODED
    lines = [not_assessed_sentence(reason)]
    if sample.get("coded_sessions"):
        lines[0] += (
            f" {sample['coded_sessions']} coded sessions, "
            f"{sample.get('double_coded_sessions', 0)} of them coded by two or more coders."
        )
    return "\n".join([*lines, *(f"{s}." for s in sample.get("skipped", []))])


def _reliability_note(table: pd.DataFrame, sample: dict | None, names: dict) -> str:
    general = (
        "ICC(A,1) = two-way random-effects, absolute-agreement intraclass correlation of a "
        "single coder; ICC(A,k) = of the mean of the k coders (McGraw & Wong, 1996), with "
        "F-based 95% CIs. Cohen's kappa for one pair of coders (large-sample CI), Fleiss' "
        "kappa for several or rotating coders (bootstrap CI over units). n = sessions or "
        "units coded by two or more coders; % agreement = share of them on which all "
        "coders gave the same value. Interpretation after Koo and Li (2016): below .50 "
        "poor, .50 to .75 moderate, .75 to .90 good, above .90 excellent."
    )
    if (table["ci_low"] < -1).any():
        general += " CI limits below \u22121 (few targets) are shown as \u22121.00."
    if sample:
        general += (
            f" Reliability sample: {sample.get('double_coded_sessions', 0)} of "
            f"{sample.get('coded_sessions', 0)} coded sessions coded by two or more coders "
            f"(from the {sample.get('source', 'coding log')})."
        )
        if sample.get("n_boot") and table["statistic"].eq(FLEISS_STATISTIC).any():
            general += f" Bootstrap: {sample['n_boot']} resamples."
        if sample.get("note"):
            general += f" {sample['note']}"
    specific = []
    for construct, rows in table.groupby("construct", sort=False):
        for note in dict.fromkeys(n for n in rows["note"].fillna("") if n):
            specific.append(f"{names[str(construct)]}: {note}.")
    specific += [f"{s}." for s in (sample or {}).get("skipped", [])]
    return "\n".join([general, *specific])


def reliability_markdown(
    table: pd.DataFrame,
    number: int = 1,
    sample: dict | None = None,
    path=None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The reliability table as Markdown (see :func:`format_reliability_table`); when
    nothing was assessed, the sentence that says so.

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table``.
    number : int
        Table number.
    sample : dict, optional
        ``ReliabilityResult.sample``.
    path : str or path-like, optional
        When given, the Markdown is also written there (atomically).
    labels : mapping, optional
        Construct -> printed name (see :func:`format_reliability_table`).

    Returns
    -------
    str

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures"], "level": ["session"],
    ...     "statistic": ["ICC(A,1)"], "estimate": [0.912], "ci_low": [0.88],
    ...     "ci_high": [0.94], "n_targets": [120], "n_raters": [4],
    ...     "pct_agreement": [71.7], "label": ["excellent"], "note": [""]})
    >>> print(reliability_markdown(table).splitlines()[6])
    | *Counts per session* |  |  |  |  |  |  |  |
    >>> print(reliability_markdown(table.iloc[:0]), end="")
    Inter-rater reliability: not assessed (no double-coded sessions).
    """
    if table.empty:
        text = "\n\n".join(_not_assessed_note(sample).split("\n")) + "\n"
        if path is not None:
            write_text(path, text)
        return text
    return to_markdown(format_reliability_table(table, number, sample, labels), path)
