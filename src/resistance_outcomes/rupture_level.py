"""The rupture-level data: one row per rupture unit, the responses met with and its repair.

Which therapist responses are followed by repair, and in which framework, is a question
about rupture units (segments), not sessions. Config ``rupture_responses:`` says what
makes the table:

- ``outcome``: a ``rated_at_least`` construct of the codebook (``repaired``). Its ``within``
  construct (``ruptures``) marks the rupture units, its ``rating`` construct
  (``resolution_mean``, the codes ``RES``) gives each unit's resolution rating, and
  ``coding.repair_threshold`` cuts the rating into repaired (1) or not (0);
- ``responses``: a composite whose parts are the response constructs
  (``therapist_responses``), or a list of constructs;
- ``window``: a response counts for a rupture when it is coded in the rupture unit or in
  one of the ``window`` units that follow it in the same session (units are numbered
  within the session; 0 = the rupture unit only).

:func:`response_settings` checks the section against the codebook, :func:`rupture_segments`
builds the table from the canonical code table (the analysis coder's codes, as the session
counts are made), and :func:`responses_stage` says whether the table can have rows, and why
not. The model data level ``rupture_segments`` (:mod:`resistance_outcomes.analysis`) reads
the table written by the workflow to ``results/derived/rupture_segments.parquet``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .codebook import SESSION_KEY, Codebook, unit_level_codes
from .config import ConfigError
from .derive import DataError

__all__ = [
    "RUPTURE_COLUMNS",
    "ResponseSettings",
    "RuptureSegments",
    "empty_table",
    "response_settings",
    "responses_stage",
    "rupture_segments",
]

#: Columns of every rupture-segment table, before the one column per response construct.
RUPTURE_COLUMNS = [
    "study",
    "client",
    "therapist",
    "framework",
    "session",
    "session_c",
    "unit",
    "coder",
    "rupture_type",
    "resolution",
    "repaired",
]
_UNIT_KEY = [*SESSION_KEY, "coder", "unit"]
_SECTION = "rupture_responses"


@dataclass(frozen=True)
class ResponseSettings:
    """The checked ``rupture_responses:`` section.

    Attributes
    ----------
    outcome : str
        The ``rated_at_least`` construct.
    within : str
        The construct whose units are the ruptures.
    rating : str
        The rating construct (the resolution rating).
    types : tuple of str
        The parts of ``within`` that mark a rupture's type (``within`` itself when it has
        no parts).
    responses : tuple of str
        The response constructs, in the order given.
    window : int
        Following units of the same session whose responses also count.
    threshold : float
        ``coding.repair_threshold``.
    group : str
        The composite the responses are the parts of (empty for a list).
    """

    outcome: str
    within: str
    rating: str
    types: tuple[str, ...]
    responses: tuple[str, ...]
    window: int = 0
    threshold: float = 4.0
    group: str = ""


@dataclass
class RuptureSegments:
    """A rupture-segment table and what the workflow says about it.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per rupture unit (columns :data:`RUPTURE_COLUMNS`, then one 0/1 column per
        response construct present in the code table).
    responses : list of str
        The response columns of ``table``.
    reason : str
        Why the table has no rows (empty when it has rows).
    unrated : int
        Rupture units without a resolution rating (``resolution`` and ``repaired``
        empty; a model of either leaves them out and says so).
    """

    table: pd.DataFrame
    responses: list[str] = field(default_factory=list)
    reason: str = ""
    unrated: int = 0

    def info(self, settings: ResponseSettings | None = None) -> dict:
        """JSON-ready facts (``results/derived/rupture_segments.json``)."""
        out = {
            "rows": int(len(self.table)),
            "responses": list(self.responses),
            "unrated": int(self.unrated),
            "reason": self.reason,
        }
        if settings is not None:
            out |= {
                "outcome": settings.outcome,
                "within": settings.within,
                "rating": settings.rating,
                "window": settings.window,
                "threshold": settings.threshold,
            }
        return out


def _fail(message: str, config_file: str) -> None:
    raise ConfigError(
        f"{config_file}, {_SECTION}: {message} Fix the section (config/README.md, "
        f"`{_SECTION}`), or leave it out to skip the rupture-level analysis."
    )


def response_settings(
    section: Mapping | None,
    codebook: Codebook,
    repair_threshold: float = 4,
    config_file: str = "config/config.yaml",
) -> ResponseSettings:
    """Check config ``rupture_responses:`` against the codebook.

    Parameters
    ----------
    section : mapping
        ``outcome`` (default ``repaired``), ``responses`` (a composite or a list of
        constructs) and ``window`` (default 0).
    codebook : Codebook
    repair_threshold : float
        ``coding.repair_threshold``.
    config_file : str
        Named in errors.

    Returns
    -------
    ResponseSettings

    Raises
    ------
    ConfigError
        Naming the key, the value and what is allowed.

    Examples
    --------
    >>> from resistance_outcomes.codebook import load_codebook
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> s = response_settings({"outcome": "repaired", "responses": "therapist_responses"},
    ...                       codebook)  # doctest: +SKIP
    >>> s.within, s.rating, len(s.responses)  # doctest: +SKIP
    ('ruptures', 'resolution_mean', 9)
    """
    section = dict(section or {})
    unknown = sorted(set(section) - {"outcome", "responses", "window"})
    if unknown:
        _fail(f"unknown key(s) {', '.join(unknown)}; known: outcome, responses, window.",
              config_file)  # fmt: skip
    constructs = codebook.constructs
    outcome = section.get("outcome", "repaired")
    rated = [n for n, c in constructs.items() if c.aggregate == "rated_at_least"]
    if outcome not in constructs or constructs[outcome].aggregate != "rated_at_least":
        _fail(
            f"outcome {outcome!r} is not a rated_at_least construct of {codebook.source} "
            f"(those are: {', '.join(rated) or 'none'}).",
            config_file,
        )
    construct = constructs[outcome]
    within, rating = construct.within, construct.rating
    types = tuple(constructs[within].of) or (within,)
    given = section.get("responses")
    if given is None:
        _fail("give `responses:`, a composite construct or a list of constructs.", config_file)
    if isinstance(given, str):
        if given not in constructs:
            _fail(f"responses {given!r} is not a construct of {codebook.source}.", config_file)
        responses = tuple(constructs[given].of) or (given,)
    else:
        responses = tuple(str(r) for r in given)
        missing = [r for r in responses if r not in constructs]
        if missing:
            _fail(f"responses {', '.join(missing)} are not constructs of {codebook.source}.",
                  config_file)  # fmt: skip
    if not responses:
        _fail("responses names no construct.", config_file)
    window = section.get("window", 0)
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        _fail(f"window must be a whole number >= 0, got {window!r}.", config_file)
    return ResponseSettings(
        outcome=outcome,
        within=within,
        rating=rating,
        types=types,
        responses=responses,
        window=window,
        threshold=float(repair_threshold),
        group=given if isinstance(given, str) else "",
    )


def _analysis_codes(codes: pd.DataFrame) -> pd.DataFrame:
    if "analysis_coder" in codes.columns:
        return codes[codes["analysis_coder"].astype(bool)]
    several = codes.groupby(SESSION_KEY, observed=True)["coder"].nunique() > 1
    if several.any():
        raise DataError(
            "code table: some sessions have several coders and no analysis_coder column "
            "marks whose codes are analysed (see codebook.select_analysis_codes)."
        )
    return codes


def _construct_order(settings: ResponseSettings, codebook: Codebook) -> list[str]:
    """The constructs to compute per unit, parts before the composites made of them."""
    wanted: list[str] = []

    def add(name: str) -> None:
        for part in codebook.constructs[name].parts():
            add(part)
        if name not in wanted:
            wanted.append(name)

    for name in (settings.within, settings.rating, *settings.responses):
        add(name)
    return wanted


def _numeric_units(codes: pd.DataFrame, codes_file: str) -> pd.Series:
    units = pd.to_numeric(codes["unit"], errors="coerce")
    bad = units.isna() & codes["unit"].notna()
    bad |= units.notna() & (units % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{codes_file}, row {row + 1}, column unit: the value {codes['unit'].iloc[row]!r} "
            "is not a unit number; rupture_responses.window counts the units that follow a "
            "rupture, so units must be numbered 1, 2, ... within each session (map a numeric "
            "order column with columns.codes.unit_numbering: order, or set window: 0)."
        )
    return units


def _responses_within_window(
    units: pd.DataFrame, ruptures: pd.DataFrame, responses: list[str], window: int
) -> pd.DataFrame:
    """0/1 per rupture and response: coded in the rupture unit or the ``window`` after."""
    used = units[_UNIT_KEY].copy()
    for name in responses:
        used[name] = (units[name] > 0).astype(int)
    result = ruptures[_UNIT_KEY].copy()
    for name in responses:
        result[name] = 0
    for offset in range(window + 1):
        shifted = used.assign(unit=used["unit"] - offset)
        matched = result[_UNIT_KEY].merge(shifted, how="left", on=_UNIT_KEY)
        for name in responses:
            result[name] = np.maximum(result[name].to_numpy(), matched[name].fillna(0).to_numpy())
    return result


def _rupture_type(units: pd.DataFrame, types: Sequence[str]) -> pd.Series:
    marked = pd.DataFrame({t: units[t] > 0 for t in types}, index=units.index)
    return marked.apply(lambda row: "+".join(t for t in types if row[t]), axis=1).astype(str)


def empty_table(responses: Sequence[str] = ()) -> pd.DataFrame:
    """A rupture-segment table without rows: the columns and their types.

    Examples
    --------
    >>> list(empty_table(["response_calm"]).columns)[-3:]
    ['resolution', 'repaired', 'response_calm']
    """
    table = pd.DataFrame({c: pd.Series(dtype=object) for c in RUPTURE_COLUMNS})
    table = table.astype({"session": "Int64", "unit": "Int64", "session_c": "float64",
                          "resolution": "float64", "repaired": "Int64"})  # fmt: skip
    for name in responses:
        table[name] = pd.Series(dtype="Int64")
    return table


def rupture_segments(
    codes: pd.DataFrame,
    clients: pd.DataFrame,
    codebook: Codebook,
    settings: ResponseSettings,
    session_table: pd.DataFrame | None = None,
    codes_file: str = "results/data/codes.parquet",
) -> RuptureSegments:
    """One row per rupture unit of the analysis coder, with its rating and the responses.

    Parameters
    ----------
    codes : pandas.DataFrame
        The canonical code table (``study``, ``client``, ``session``, ``unit``, ``coder``,
        ``code``, ``value`` and ``analysis_coder``; without ``analysis_coder`` one coder
        per session).
    clients : pandas.DataFrame
        The clients table (``therapist``, ``framework`` and any other client column).
    codebook : Codebook
    settings : ResponseSettings
        From :func:`response_settings`.
    session_table : pandas.DataFrame, optional
        The derived session table; its ``session_c`` is carried over.
    codes_file : str
        Named in errors.

    Returns
    -------
    RuptureSegments
        ``table``: study, client, therapist, framework, session, session_c, unit, coder,
        rupture_type (the parts of the ``within`` construct that marked the unit, joined
        with "+"), resolution (the unit's rating; empty when not rated), repaired (1 when
        resolution >= threshold, 0 below, empty when not rated), one 0/1 column per
        response construct with codes in the table (1 when coded in the unit or the
        ``window`` units after it), then the clients' other columns; sorted by study,
        client, session, unit. Without codes, rupture units, ratings or response codes the
        table has no rows and ``reason`` says why.

    Raises
    ------
    DataError
        Several coders per session without ``analysis_coder``; with ``window`` > 0, a unit
        that is not a whole number (naming the file, row, column and value).

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import load_codebook
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> settings = response_settings({"responses": ["response_calm"]}, codebook)
    ... # doctest: +SKIP
    >>> codes = pd.DataFrame({"study": "s", "client": "C1", "session": 1, "unit": [1, 1, 1],
    ...                       "coder": "A", "code": ["W_MIN", "RES", "T_CLM"],
    ...                       "value": [1, 4, 1]})
    >>> clients = pd.DataFrame({"study": "s", "client": ["C1"], "therapist": "T1",
    ...                         "framework": "cognitive"})
    >>> rupture_segments(codes, clients, codebook, settings).table[
    ...     ["unit", "rupture_type", "resolution", "repaired", "response_calm"]]
    ... # doctest: +SKIP
       unit        rupture_type  resolution  repaired  response_calm
    0     1  rupture_withdrawal         4.0         1              1
    """
    codes = _analysis_codes(codes)
    codes = codes.assign(code=codes["code"].astype(str))
    reason, coded = _what_is_missing(codes, codebook, settings)
    if reason:
        return RuptureSegments(empty_table(), reason=reason)
    if settings.window > 0:
        codes = codes.assign(unit=_numeric_units(codes, codes_file).astype("Int64"))
    units = unit_level_codes(
        codes.drop(columns=[c for c in ("role", "analysis_coder") if c in codes.columns]),
        codebook,
        settings.threshold,
        constructs=_construct_order(settings, codebook),
    )
    ruptures = units[units[settings.within] > 0].reset_index(drop=True)
    if ruptures.empty:  # only codes of value 0
        within = _words(codebook, settings.within)
        return RuptureSegments(empty_table(coded), reason=f"no units with {within}")
    used = _responses_within_window(units, ruptures, coded, settings.window)
    table = ruptures[_UNIT_KEY].copy()
    table["rupture_type"] = _rupture_type(ruptures, settings.types)
    table["resolution"] = ruptures[settings.rating].astype("float64")
    repaired = (table["resolution"] >= settings.threshold).astype("Int64")
    table["repaired"] = repaired.where(table["resolution"].notna(), pd.NA)
    for name in coded:
        table[name] = used[name].astype("Int64").to_numpy()
    table = _with_clients(table, clients, session_table)
    return RuptureSegments(
        table,
        responses=coded,
        unrated=int(table["resolution"].isna().sum()),
    )


def _with_clients(
    table: pd.DataFrame, clients: pd.DataFrame, session_table: pd.DataFrame | None
) -> pd.DataFrame:
    keys = ["study", "client"]
    joined = table.merge(clients, on=keys, how="left", validate="many_to_one")
    if session_table is not None and "session_c" in session_table:
        centred = session_table[[*SESSION_KEY, "session_c"]].astype({"session": "Int64"})
        joined = joined.astype({"session": "Int64"}).merge(centred, on=SESSION_KEY, how="left")
    else:
        joined["session_c"] = np.nan
    for column in ("therapist", "framework"):
        if column not in joined:
            joined[column] = pd.NA
    first = [c for c in RUPTURE_COLUMNS if c in joined]
    responses = [c for c in table.columns if c not in RUPTURE_COLUMNS]
    rest = [c for c in joined.columns if c not in first and c not in responses]
    joined = joined[[*first, *responses, *rest]]
    joined = joined.astype({"session": "Int64", "unit": "Int64"})
    return joined.sort_values(["study", "client", "session", "unit"], kind="stable").reset_index(
        drop=True
    )


def responses_stage(
    codes: pd.DataFrame | None,
    codebook: Codebook,
    section: Mapping | None,
    repair_threshold: float = 4,
    config_file: str = "config/config.yaml",
) -> tuple[bool, str]:
    """Whether the rupture-level analysis of responses can be made, and why not.

    Assessed when the analysis coder's codes hold rupture units, resolution ratings and
    codes of at least one response construct.

    Returns
    -------
    (bool, str)
        ``(True, "<responses present>")`` or ``(False, reason)``.

    Examples
    --------
    >>> responses_stage(None, codebook, None)  # doctest: +SKIP
    (False, 'not configured')
    """
    if not section:
        return False, "not configured"
    settings = response_settings(section, codebook, repair_threshold, config_file)
    if codes is None or codes.empty:
        return False, "no code table"
    reason, coded = _what_is_missing(_analysis_codes(codes), codebook, settings)
    if reason:
        return False, reason
    return True, ", ".join(_words(codebook, r) for r in coded)


def _words(codebook: Codebook, construct: str) -> str:
    """A construct's label for the middle of a sentence."""
    text = codebook.constructs[construct].printed
    return text if len(text) > 1 and text[1].isupper() else text[:1].lower() + text[1:]


def _what_is_missing(
    codes: pd.DataFrame, codebook: Codebook, settings: ResponseSettings
) -> tuple[str, list[str]]:
    """Why the analysis coder's codes make no rupture-segment table (in the constructs'
    labels; empty when they do), and the response constructs coded."""
    present = set(codes["code"].astype(str))
    coded = [r for r in settings.responses if codebook.codes_of(r) & present]
    within = _words(codebook, settings.within)
    if codes.empty:
        return "no codes of the analysis coder", coded
    if not codebook.codes_of(settings.within) & present:
        return f"no coding of {within}", coded
    if not codebook.codes_of(settings.rating) & present:
        return f"no {_words(codebook, settings.rating)} of the {within}", coded
    if not coded:
        if settings.group:
            return f"no coding of {_words(codebook, settings.group)}", coded
        names = [_words(codebook, r) for r in settings.responses]
        return f"no coding of the responses ({', '.join(names)})", coded
    return "", coded
