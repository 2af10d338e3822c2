"""The codebook: instrument codes -> constructs, and the session-level construct columns
made from a code table.

``config/codebook.yaml`` lists, per instrument, its codes (construct, kind, value range,
label) and, per construct, how a session's value is aggregated from the units coded in
that session. The aggregation here is driven entirely by that file: adding an instrument
or a construct is editing the YAML.

Three tables come out of a code table (one row per unit x code x coder):

- :func:`unit_level_codes`: one row per unit x coder with one column per construct, the
  input of the reliability analysis; with a coding log, every logged unit has a row;
- :func:`session_values_by_coder`: the same summed (or averaged) per session and coder;
- :func:`aggregate_codes`: the sessions table with one column per construct, made from
  the analysis coder's codes (see :func:`select_analysis_codes`).

When the sessions file supplies the parts of a composite (``any_of``, ``sum_of``) as
columns instead, :func:`composites_from_columns` forms the composite from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from resistance_outcomes.io import ConfigError, read_yaml

__all__ = [
    "Code",
    "Codebook",
    "Construct",
    "aggregate_codes",
    "composites_from_columns",
    "humanise",
    "load_codebook",
    "logged_units",
    "select_analysis_codes",
    "session_values_by_coder",
    "split_coders",
    "unit_level_codes",
]

KINDS = ("marker", "strategy", "rating")
SESSION_KEY = ["study", "client", "session"]
CODER_KEY = [*SESSION_KEY, "coder"]
UNIT_KEY = [*SESSION_KEY, "unit", "coder"]
#: aggregate rule -> (code kinds it reads, construct fields it needs)
RULES = {
    "units": ({"marker", "strategy"}, ()),
    "codes": ({"marker", "strategy"}, ()),
    "none": ({"marker", "strategy"}, ()),
    "mean_rating": ({"rating"}, ("within",)),
    "any_of": (set(), ("of",)),
    "sum_of": (set(), ("of",)),
    "rated_at_least": (set(), ("rating", "within")),
    "column": (set(), ()),
}
#: aggregate rule -> what the construct's session value is (count, rating or boolean);
#: ``column`` constructs declare their own ``kind``.
VALUE_KINDS = {
    "units": "count",
    "codes": "count",
    "none": "count",
    "any_of": "count",
    "sum_of": "count",
    "rated_at_least": "count",
    "mean_rating": "rating",
}
COLUMN_KINDS = ("count", "rating", "boolean")


@dataclass(frozen=True)
class Code:
    """One instrument code.

    Examples
    --------
    >>> from resistance_outcomes.codebook import Code
    >>> res = Code("RES", "3RS", "resolution_mean", "rating", 1, 5, "resolution")
    >>> res.accepts(4.0), res.accepts(6.0), res.range_text()
    (True, False, 'a value from 1 to 5')
    """

    code: str
    instrument: str
    construct: str
    kind: str
    minimum: float
    maximum: float
    label: str = ""
    #: where the code is defined: its own ``citation:``, else its instrument's
    citation: str = ""

    def accepts(self, value: float) -> bool:
        """Whether ``value`` is allowed: in range, and 0 or 1 for markers and strategies."""
        in_range = self.minimum <= value <= self.maximum
        return in_range and (self.kind == "rating" or float(value).is_integer())

    def range_text(self) -> str:
        """The allowed values in words."""
        if self.kind == "rating":
            return f"a value from {_number(self.minimum)} to {_number(self.maximum)}"
        return f"the value {' or '.join(_number(v) for v in (self.maximum, self.minimum))}"


@dataclass(frozen=True)
class Construct:
    """One construct, declared once in ``config/codebook.yaml``.

    ``aggregate`` says how a session's value is made from codes (or ``column``: the
    sessions file supplies it); ``kind`` is what the value is (``count``, ``rating`` or
    ``boolean``); ``label`` is its printed name; ``stem`` names its client rates
    (``<stem>_rate``, default the construct's name); ``minimum``/``maximum`` bound a
    column construct's values.

    Examples
    --------
    >>> from resistance_outcomes.codebook import Construct
    >>> c = Construct("sustain_talk", "codes", label="Sustain talk")
    >>> c.kind, c.rate_stem, c.is_composite
    ('count', 'sustain_talk', False)
    """

    name: str
    aggregate: str
    of: tuple[str, ...] = ()
    within: str | None = None
    rating: str | None = None
    description: str = ""
    label: str = ""
    value_kind: str | None = None
    stem: str | None = None
    minimum: float | None = None
    maximum: float | None = None

    def parts(self) -> tuple[str, ...]:
        """The constructs this one is made from."""
        return tuple(self.of) + tuple(p for p in (self.within, self.rating) if p)

    @property
    def kind(self) -> str:
        """``count``, ``rating`` or ``boolean``."""
        return self.value_kind or VALUE_KINDS.get(self.aggregate, "count")

    @property
    def is_composite(self) -> bool:
        """Whether the construct is made of other constructs (``any_of``/``sum_of``)."""
        return self.aggregate in ("any_of", "sum_of")

    @property
    def rate_stem(self) -> str:
        """Stem of the client-level rate columns (``<stem>_rate``)."""
        return self.stem or self.name

    @property
    def printed(self) -> str:
        """The construct's label, or its name in words."""
        return self.label or humanise(self.name)


@dataclass(frozen=True)
class Codebook:
    """Codes by name, constructs in dependency order, and the instruments' documentation.

    Examples
    --------
    >>> from resistance_outcomes.codebook import load_codebook
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> codebook.canonical_code(" w_den")                 # doctest: +SKIP
    'W_DEN'
    >>> sorted(codebook.codes_of("ruptures"))[:2]         # doctest: +SKIP
    ['C_ACT', 'C_CTL']
    """

    codes: dict[str, Code]
    constructs: dict[str, Construct]
    instruments: dict[str, dict] = field(default_factory=dict)
    source: str = "config/codebook.yaml"
    #: Categorical comparisons of unit-level codes (kappa), from ``categorical:``: name ->
    #: ``{"label", "categories": {category: construct}, "units": "logged" | "coded"}``.
    categorical: dict[str, dict] = field(default_factory=dict)

    def canonical_code(self, code: str) -> str | None:
        """The codebook spelling of ``code`` (ignoring case and spaces), or None."""
        return self._by_key().get(str(code).strip().casefold())

    def _by_key(self) -> dict[str, str]:
        return {name.casefold(): name for name in self.codes}

    def codes_of(self, construct: str) -> set[str]:
        """Codes that feed ``construct``, through its parts for composites."""
        found = {name for name, code in self.codes.items() if code.construct == construct}
        for part in self.constructs[construct].of:
            found |= self.codes_of(part)
        return found

    def rating_scopes(self) -> dict[str, str]:
        """Rating construct -> the construct whose units it rates (``within``)."""
        return {
            name: c.within for name, c in self.constructs.items() if c.aggregate == "mean_rating"
        }

    def active_constructs(self, codes: Iterable[str]) -> list[str]:
        """Constructs (in codebook order) made from a table with ``codes``: those with
        codes of an instrument used there, and composites with a part made."""
        used = {self.codes[c].instrument for c in codes if c in self.codes}
        active: list[str] = []
        for name, construct in self.constructs.items():
            own = {code.instrument for code in self.codes.values() if code.construct == name}
            if own & used or any(part in active for part in construct.parts()):
                active.append(name)
        return active

    def session_columns(self, codes: Iterable[str]) -> list[str]:
        """The session columns :func:`aggregate_codes` makes from a table with ``codes``."""
        return [
            name
            for name in self.active_constructs(codes)
            if self.constructs[name].aggregate != "none"
        ]

    def code_table(self) -> pd.DataFrame:
        """One row per code: code, instrument, construct, kind, minimum, maximum, label."""
        return pd.DataFrame([vars(code) for code in self.codes.values()])


def humanise(name: str) -> str:
    """A readable default label: underscores as spaces, first letter upper case.

    Examples
    --------
    >>> humanise("sustain_talk_rate")
    'Sustain talk rate'
    """
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ------------------------------------------------------------------------- loading


def load_codebook(path: str | Path) -> Codebook:
    """Read and check ``config/codebook.yaml``.

    Parameters
    ----------
    path : str or path-like
        The codebook file (format documented at the top of ``config/codebook.yaml``).

    Returns
    -------
    Codebook

    Raises
    ------
    resistance_outcomes.io.ConfigError
        Unknown kind or aggregate rule, a code whose construct is not defined, a code
        listed twice (ignoring case), a range that is not [low, high], a construct that
        refers to one not defined above it, or a rule applied to the wrong kind of code.

    Examples
    --------
    >>> from resistance_outcomes.codebook import load_codebook
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> codebook.codes["RES"].kind                        # doctest: +SKIP
    'rating'
    """
    content = read_yaml(path, "codebook")
    where = str(path)
    instruments = content.get("instruments")
    if not isinstance(instruments, dict) or not isinstance(content.get("constructs"), dict):
        raise ConfigError(f"{where}: the codebook needs `instruments:` and `constructs:`.")
    constructs = _load_constructs(content["constructs"], where)
    codes: dict[str, Code] = {}
    for instrument, spec in instruments.items():
        for name, entry in (spec.get("codes") or {}).items():
            code = _load_code(str(name), str(instrument), entry, constructs, where)
            if not code.citation:
                code = replace(code, citation=str(spec.get("citation") or "").strip())
            clash = next((c for c in codes if c.casefold() == code.code.casefold()), None)
            if clash is not None:
                raise ConfigError(f"{where}: code {code.code!r} is listed twice ({clash!r}).")
            codes[code.code] = code
    _check_rule_kinds(constructs, codes, where)
    categorical = _load_categorical(content.get("categorical"), where)
    return Codebook(codes, constructs, instruments, where, categorical)


CATEGORICAL_UNITS = ("logged", "coded")


def _load_categorical(entries, where: str) -> dict[str, dict]:
    """The ``categorical:`` section: each comparison's label, categories and units.

    Constructs named there need not be declared: the reliability analysis skips a
    comparison whose constructs are not all declared and coded, and says so.
    """
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{where}: `categorical:` must map a name to its categories.")
    out = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("categories"), dict):
            raise ConfigError(
                f"{where}: categorical {name!r} needs `categories:` (category: construct)."
            )
        unknown = sorted(set(entry) - {"label", "categories", "units"})
        if unknown:
            raise ConfigError(
                f"{where}: categorical {name!r}: unknown key {unknown[0]!r}; use label, "
                "categories, units."
            )
        categories = entry["categories"]
        if not categories or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in categories.items()
        ):
            raise ConfigError(
                f"{where}: categorical {name!r}: `categories:` must map category names to "
                "construct names (e.g. {withdrawal: rupture_withdrawal})."
            )
        units = entry.get("units", "logged")
        if units not in CATEGORICAL_UNITS:
            raise ConfigError(
                f"{where}: categorical {name!r} has units {units!r}; use one of "
                f"{', '.join(CATEGORICAL_UNITS)}."
            )
        label = str(entry.get("label") or humanise(name))
        out[str(name)] = {"label": label, "categories": dict(categories), "units": units}
    return out


def _load_code(name: str, instrument: str, entry, constructs, where: str) -> Code:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: code {name!r} needs construct, kind and range.")
    kind, construct, bounds = entry.get("kind"), entry.get("construct"), entry.get("range")
    if kind not in KINDS:
        raise ConfigError(f"{where}: code {name!r} has kind {kind!r}; use one of {KINDS}.")
    if construct not in constructs:
        raise ConfigError(
            f"{where}: code {name!r} counts towards {construct!r}, which is not under "
            "`constructs:`."
        )
    valid_bounds = (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(b, int | float) for b in bounds)
        and bounds[0] <= bounds[1]
    )
    if not valid_bounds:
        raise ConfigError(f"{where}: code {name!r} needs `range: [lowest, highest]`.")
    return Code(
        name,
        instrument,
        construct,
        kind,
        float(bounds[0]),
        float(bounds[1]),
        str(entry.get("label", "")),
        str(entry.get("citation") or "").strip(),
    )


def _load_constructs(entries: dict, where: str) -> dict[str, Construct]:
    constructs: dict[str, Construct] = {}
    for name, entry in entries.items():
        entry = entry or {}
        rule = entry.get("aggregate")
        if rule not in RULES:
            raise ConfigError(
                f"{where}: construct {name!r} has aggregate {rule!r}; use one of "
                f"{', '.join(RULES)}."
            )
        kind = entry.get("kind")
        if rule == "column" and kind not in COLUMN_KINDS:
            raise ConfigError(
                f"{where}: construct {name!r} is a session column (aggregate: column) and "
                f"needs `kind:` {', '.join(COLUMN_KINDS)}."
            )
        if rule != "column" and kind is not None and kind != VALUE_KINDS[rule]:
            raise ConfigError(
                f"{where}: construct {name!r} ({rule}) is a {VALUE_KINDS[rule]}, not {kind!r}."
            )
        bounds = entry.get("range")
        if bounds is not None and not (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(b, int | float) for b in bounds)
            and bounds[0] <= bounds[1]
        ):
            raise ConfigError(f"{where}: construct {name!r}: `range:` must be [lowest, highest].")
        construct = Construct(
            str(name),
            rule,
            tuple(entry.get("of") or ()),
            entry.get("within"),
            entry.get("rating"),
            str(entry.get("description", "")),
            label=str(entry.get("label") or ""),
            value_kind=kind if rule == "column" else None,
            stem=entry.get("stem"),
            minimum=float(bounds[0]) if bounds else None,
            maximum=float(bounds[1]) if bounds else None,
        )
        missing = [key for key in RULES[rule][1] if not getattr(construct, key)]
        if missing:
            raise ConfigError(f"{where}: construct {name!r} ({rule}) needs `{missing[0]}:`.")
        undefined = [part for part in construct.parts() if part not in constructs]
        if undefined:
            raise ConfigError(
                f"{where}: construct {name!r} uses {undefined[0]!r}, which must be defined "
                "above it under `constructs:`."
            )
        constructs[str(name)] = construct
    return constructs


def _check_rule_kinds(constructs: dict[str, Construct], codes: dict[str, Code], where: str):
    for name, construct in constructs.items():
        kinds = {code.kind for code in codes.values() if code.construct == name}
        allowed = RULES[construct.aggregate][0]
        if kinds - allowed:
            raise ConfigError(
                f"{where}: construct {name!r} ({construct.aggregate}) cannot take "
                f"{', '.join(sorted(kinds - allowed))} codes."
            )
        if construct.rating and constructs[construct.rating].aggregate != "mean_rating":
            raise ConfigError(f"{where}: {name!r}: `rating:` must name a mean_rating construct.")


# ------------------------------------------------------------------ analysis coder


def select_analysis_codes(codes: pd.DataFrame, rule: str | list[str] = "primary") -> pd.DataFrame:
    """Mark the rows of the coder whose codes make each session's construct columns.

    Parameters
    ----------
    codes : pandas.DataFrame
        Code table with ``study``, ``client``, ``session``, ``coder`` and optionally
        ``role``, in file order.
    rule : "primary" or list of str
        ``coding.analysis_coder`` in config. ``"primary"``: rows whose ``role`` is
        ``primary``; without a ``role`` column, the first coder listed for the session
        in file order. A list of coder ids: per session, the first of them who coded it.
        Any other string is taken as a list of one coder id.

    Returns
    -------
    pandas.DataFrame
        ``codes`` with a boolean column ``analysis_coder``. The rows not marked are the
        other coders' codes: the reliability sample. Under ``primary`` with a ``role``
        column, a session with only reliability rows has no marked rows: its primary coder
        found nothing to code. Sessions with two primary coders, or (under a list) coded
        only by unlisted coders, are reported by
        :func:`resistance_outcomes.validate.check_analysis_coders`.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import select_analysis_codes
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": 1,
    ...                       "coder": ["B", "A", "B"], "code": ["W_MIN", "W_MIN", "RES"]})
    >>> select_analysis_codes(codes)["analysis_coder"].tolist()
    [True, False, True]
    >>> select_analysis_codes(codes, ["A", "B"])["analysis_coder"].tolist()
    [False, True, False]
    """
    result = codes.copy()
    if rule == "primary" and "role" in codes.columns and codes["role"].notna().any():
        flag = codes["role"].astype(object).eq("primary")
    else:
        order = None if rule == "primary" else ([rule] if isinstance(rule, str) else list(rule))
        chosen = codes.groupby(SESSION_KEY, sort=False, observed=True, dropna=False)[
            "coder"
        ].transform(lambda coders: _first_coder(coders, order))
        flag = codes["coder"].astype(object).eq(chosen.astype(object))
    result["analysis_coder"] = flag.fillna(False).astype(bool)
    return result


def _first_coder(coders: pd.Series, order: list[str] | None):
    present = list(dict.fromkeys(coders.dropna()))
    if order is None:
        return present[0] if present else None
    return next((coder for coder in order if coder in present), None)


def split_coders(
    codes: pd.DataFrame, rule: str | list[str] = "primary"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a code table into the analysis coder's rows and the reliability coders' rows.

    Parameters
    ----------
    codes : pandas.DataFrame
        Code table (see :func:`select_analysis_codes`).
    rule : "primary" or list of str
        ``coding.analysis_coder``.

    Returns
    -------
    analysis, reliability : pandas.DataFrame
        The marked rows and the others, both with the ``analysis_coder`` column.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import split_coders
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": 1,
    ...                       "coder": ["A", "B"], "role": ["primary", "reliability"]})
    >>> analysis, reliability = split_coders(codes)
    >>> analysis["coder"].tolist(), reliability["coder"].tolist()
    (['A'], ['B'])
    """
    marked = select_analysis_codes(codes, rule)
    return marked[marked["analysis_coder"]], marked[~marked["analysis_coder"]]


# --------------------------------------------------------------------- aggregation


def unit_level_codes(
    codes: pd.DataFrame,
    codebook: Codebook,
    repair_threshold: float = 4,
    constructs: list[str] | None = None,
    coding_log: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per coded unit and coder, one column per construct.

    This is what the reliability analysis compares between coders. Without a coding log,
    a coder is taken to have coded the units for which they have at least one row; a
    unit with no row from a coder does not appear for that coder (long code tables do
    not record "coded, nothing found" unless a marker is written with value 0). With a
    coding log, every logged unit (1 .. ``units`` of each logged session and coder) has a
    row; a logged unit without codes has 0 for every count and no rating.

    Parameters
    ----------
    codes : pandas.DataFrame
        Code table with ``study``, ``client``, ``session``, ``unit``, ``coder``, ``code``
        (codebook spelling) and optionally ``value`` (1 when absent), ``role`` and
        ``analysis_coder``, which are carried over.
    codebook : Codebook
    repair_threshold : float
        Rating at or above which a unit counts for ``rated_at_least`` constructs.
    constructs : list of str, optional
        Constructs to compute, in codebook order. Default: those of the instruments
        present in ``codes`` (:meth:`Codebook.active_constructs`).
    coding_log : pandas.DataFrame, optional
        Coding log with ``study``, ``client``, ``session``, ``coder``, ``units`` and
        optionally ``role`` (which then fills ``role`` for units without codes).

    Returns
    -------
    pandas.DataFrame
        Keys, carried columns, then per construct:
        ``units`` and ``any_of`` -> 0/1; ``codes``, ``none`` and ``sum_of`` -> number of
        codes; ``mean_rating`` -> the unit's rating (mean if rated twice; NaN if unrated);
        ``rated_at_least`` -> 1 when the unit has the ``within`` construct and its rating
        is at least ``repair_threshold``.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import load_codebook, unit_level_codes
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": 1, "unit": 1,
    ...                       "coder": "A", "code": ["W_MIN", "C_REJ", "RES"],
    ...                       "value": [1, 1, 4]})
    >>> unit_level_codes(codes, codebook)[["ruptures", "resolution_mean", "repaired"]]
    ... # doctest: +SKIP
       ruptures  resolution_mean  repaired
    0         1              4.0         1
    """
    unknown = sorted(set(codes["code"].dropna()) - set(codebook.codes))
    if unknown:
        raise ValueError(f"codes not in the codebook ({codebook.source}): {', '.join(unknown)}")
    codes = codes.reset_index(drop=True)
    values = codes["value"] if "value" in codes.columns else pd.Series(1.0, index=codes.index)
    values = values.astype("float64")
    keys = codes[UNIT_KEY].dropna()
    if coding_log is not None:
        keys = pd.concat([keys, logged_units(coding_log)[UNIT_KEY]], ignore_index=True)
    index = pd.MultiIndex.from_frame(keys.drop_duplicates()).sort_values()
    carried = [column for column in ("role", "analysis_coder") if column in codes.columns]
    units = pd.DataFrame(index=index)
    if carried:
        units = codes.groupby(UNIT_KEY, observed=True)[carried].first().reindex(index)
    if coding_log is not None and "role" in coding_log.columns:
        units["role"] = _logged_roles(coding_log, index, units.get("role"))
    of_code = codes["code"].map(lambda code: codebook.codes[code].construct)
    if constructs is None:
        constructs = codebook.active_constructs(codes["code"].unique())
    for name in constructs:
        units[name] = _unit_values(
            codebook.constructs[name], units, codes, values, of_code, repair_threshold
        )
    return units.reset_index()


def _unit_values(
    construct: Construct,
    units: pd.DataFrame,
    codes: pd.DataFrame,
    values: pd.Series,
    of_code: pd.Series,
    threshold: float,
) -> pd.Series:
    rule = construct.aggregate
    mine = of_code == construct.name
    if rule in ("units", "codes", "none"):
        present = (values > 0) & mine
        counts = present.groupby([codes[k] for k in UNIT_KEY], observed=True).sum()
        counts = counts.reindex(units.index, fill_value=0)
        return (counts > 0).astype(int) if rule == "units" else counts.astype(int)
    if rule == "mean_rating":
        rated = values.where(mine)
        return (
            rated.groupby([codes[k] for k in UNIT_KEY], observed=True).mean().reindex(units.index)
        )
    parts = units.reindex(columns=list(construct.of), fill_value=0)  # parts not coded: 0
    if rule == "any_of":
        return (parts.sum(axis=1) > 0).astype(int)
    if rule == "sum_of":
        return parts.sum(axis=1).astype(int)
    # rated_at_least
    within = units.get(construct.within, 0) > 0
    return (within & (units.get(construct.rating, np.nan) >= threshold)).astype(int)


def logged_units(coding_log: pd.DataFrame) -> pd.DataFrame:
    """Every unit a coding log says was coded: one row per session, coder and unit.

    Parameters
    ----------
    coding_log : pandas.DataFrame
        One row per coded session and coder with ``study``, ``client``, ``session``,
        ``coder`` and ``units`` (the coder coded units 1 .. ``units``).

    Returns
    -------
    pandas.DataFrame
        ``study``, ``client``, ``session``, ``unit``, ``coder`` (and ``role`` when the log
        has it), in log order.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import logged_units
    >>> log = pd.DataFrame({"study": "s", "client": "1", "session": 1,
    ...                     "coder": ["A", "B"], "units": [2, 1]})
    >>> logged_units(log)
      study client  session  unit coder
    0     s      1        1     1     A
    1     s      1        1     2     A
    2     s      1        1     1     B
    """
    log = coding_log.dropna(subset=[*CODER_KEY, "units"]).reset_index(drop=True)
    counts = log["units"].to_numpy(dtype="int64")
    expanded = log.loc[np.repeat(log.index.to_numpy(), counts)].reset_index(drop=True)
    expanded["unit"] = (
        expanded.groupby(np.repeat(np.arange(len(log)), counts), sort=False).cumcount() + 1
    )
    columns = [*SESSION_KEY, "unit", "coder", *(["role"] if "role" in log.columns else [])]
    return expanded[columns].astype({"session": "int64", "unit": "int64"})


def _logged_roles(coding_log: pd.DataFrame, index: pd.MultiIndex, roles: pd.Series | None):
    """Each unit's role: from the codes where given, else from the coding log."""
    log = coding_log.dropna(subset=CODER_KEY).drop_duplicates(CODER_KEY)
    by_coder = pd.Series(
        log["role"].astype(object).to_numpy(),
        index=pd.MultiIndex.from_frame(log[CODER_KEY].astype(object)),
    )
    keys = pd.MultiIndex.from_arrays([index.get_level_values(k).astype(object) for k in CODER_KEY])
    from_log = pd.Series(by_coder.reindex(keys).to_numpy(), index=index, dtype=object)
    return from_log if roles is None else roles.astype(object).fillna(from_log)


def session_values_by_coder(
    units: pd.DataFrame, codebook: Codebook, constructs: list[str]
) -> pd.DataFrame:
    """Each coder's construct values per session, from :func:`unit_level_codes`.

    The same aggregation as :func:`aggregate_codes`, kept apart by coder: counts summed
    over the session's units, ``mean_rating`` constructs averaged over the session's
    ``within`` units (empty without such a unit). A coder with units but no codes in a
    session (a logged unit without codes) gets 0 counts.

    Parameters
    ----------
    units : pandas.DataFrame
        Output of :func:`unit_level_codes`.
    codebook : Codebook
    constructs : list of str
        Construct columns of ``units`` to aggregate.

    Returns
    -------
    pandas.DataFrame
        One row per session and coder: ``study``, ``client``, ``session``, ``coder``
        (and ``role`` when ``units`` has it), then one column per construct.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import load_codebook, session_values_by_coder
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> units = pd.DataFrame({"study": "s", "client": "1", "session": 1, "unit": [1, 2, 1],
    ...                       "coder": ["A", "A", "B"], "ruptures": [1, 1, 0]})
    >>> session_values_by_coder(units, codebook, ["ruptures"])  # doctest: +SKIP
      study client  session coder  ruptures
    0     s      1        1     A         2
    1     s      1        1     B         0
    """
    values = _session_values(units, constructs, codebook, CODER_KEY)
    if "role" in units.columns:
        values.insert(0, "role", units.groupby(CODER_KEY, observed=True)["role"].first())
    return values.reset_index()


def aggregate_codes(
    codes: pd.DataFrame,
    sessions: pd.DataFrame,
    codebook: Codebook,
    repair_threshold: float = 4,
    coding_log: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add the construct columns made from the analysis coder's codes to the sessions.

    Parameters
    ----------
    codes : pandas.DataFrame
        Code table. When it has an ``analysis_coder`` column (see
        :func:`select_analysis_codes`) only the marked rows are used; otherwise it must
        hold one coder per session.
    sessions : pandas.DataFrame
        Sessions table with ``study``, ``client``, ``session`` and ``attended``.
    codebook : Codebook
    repair_threshold : float
        ``coding.repair_threshold``: resolution rating at or above which a rupture unit
        counts as repaired.
    coding_log : pandas.DataFrame, optional
        Coding log (``study``, ``client``, ``session``, ...): the sessions that were coded.

    Returns
    -------
    pandas.DataFrame
        ``sessions`` (same rows, order and index) with one column per construct of the
        instruments present in ``codes``, any coder (``aggregate: none`` constructs
        excepted). Units and codes are summed over the session's units; ``mean_rating``
        constructs are the mean rating over the session's ``within`` units. Attended
        sessions without codes get 0 (ratings stay empty); with a coding log, only the
        logged ones do, and attended sessions not in the log (not coded) stay empty, like
        sessions not attended. Counts are Int64, rating means float64.

    Raises
    ------
    ValueError
        Without an ``analysis_coder`` column, when a session has more than one coder; a
        code not in the codebook.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import aggregate_codes, load_codebook
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> sessions = pd.DataFrame({"study": "s", "client": "1", "session": [1, 2],
    ...                          "attended": [True, False]})
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": 1, "unit": [1, 2],
    ...                       "coder": "A", "code": ["W_MIN", "M_ARG"], "value": 1})
    >>> aggregate_codes(codes, sessions, codebook)[["ruptures", "resistance"]]
    ... # doctest: +SKIP
       ruptures  resistance
    0         1           1
    1      <NA>        <NA>
    """
    present = codes["code"].unique()
    if "analysis_coder" in codes.columns:
        codes = codes[codes["analysis_coder"].astype(bool)]
    elif (codes.groupby(SESSION_KEY, observed=True)["coder"].nunique() > 1).any():
        raise ValueError(
            "aggregate_codes: some sessions have several coders; mark the analysis coder's "
            "rows first with select_analysis_codes."
        )
    units = unit_level_codes(codes, codebook, repair_threshold, codebook.active_constructs(present))
    columns = codebook.session_columns(present)
    per_session = _session_values(units, columns, codebook, SESSION_KEY)
    return _attach(sessions, per_session, columns, codebook, coding_log)


def _session_values(units: pd.DataFrame, columns: list[str], codebook: Codebook, keys):
    grouped = units.groupby(keys, observed=True)
    result = pd.DataFrame(index=grouped.size().index)
    for name in columns:
        construct = codebook.constructs[name]
        if construct.aggregate == "mean_rating":
            scoped = units[name].where(units.get(construct.within, 0) > 0)
            result[name] = scoped.groupby([units[k] for k in keys], observed=True).mean()
        else:
            result[name] = grouped[name].sum()
    return result


def _attach(sessions, per_session, columns, codebook, coding_log=None) -> pd.DataFrame:
    matched = sessions[SESSION_KEY].merge(per_session.reset_index(), how="left", on=SESSION_KEY)
    coded = sessions["attended"].eq(True).fillna(False).to_numpy(dtype=bool)
    if coding_log is not None:
        logged = pd.MultiIndex.from_frame(coding_log[SESSION_KEY].astype(object))
        coded &= pd.MultiIndex.from_frame(sessions[SESSION_KEY].astype(object)).isin(logged)
    result = sessions.copy()
    for name in columns:
        values = matched[name].to_numpy(dtype="float64", na_value=np.nan)
        if codebook.constructs[name].aggregate == "mean_rating":
            result[name] = np.where(coded, values, np.nan)
        else:
            filled = np.where(coded, np.nan_to_num(values, nan=0.0), np.nan)
            result[name] = pd.array(filled, dtype="Float64").astype("Int64")
    return result


def _of_composites(construct: Construct, codebook: Codebook) -> bool:
    """Whether every part of ``construct`` is itself a composite (a sum of forms)."""
    return all(codebook.constructs[p].is_composite for p in construct.of)


def composites_from_columns(
    sessions: pd.DataFrame, codebook: Codebook
) -> tuple[pd.DataFrame, list[str]]:
    """Form the composites whose parts the sessions table holds as columns.

    A composite (``aggregate: any_of`` or ``sum_of``) that is not a column of ``sessions``
    but whose parts (``of:``) all are is made as the sum of its parts, session by session;
    a session where any part is missing (not attended, not coded) gets a missing value.
    For ``any_of`` the sum is an upper bound of the units with any of the parts: counts per
    session cannot show a unit coded with two of them, which a code table would count
    once. Composites are formed in codebook order, so a composite of composites works; such
    a composite (resistance as the sum of its forms) is the sum of the forms present, as
    from a code table where a form not coded is absent. A composite already present (from
    the file or from codes) is left as it is.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Sessions table, construct columns as counts per session.
    codebook : Codebook

    Returns
    -------
    sessions : pandas.DataFrame
        A copy with the formed composites added (nullable ``Int64``).
    notes : list of str
        One sentence per composite formed, and per composite of which only some parts
        are columns (not formed), for the validation report.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import Codebook, Construct
    >>> codebook = Codebook({}, {
    ...     "withdrawal": Construct("withdrawal", "column", value_kind="count"),
    ...     "confrontation": Construct("confrontation", "column", value_kind="count"),
    ...     "ruptures": Construct("ruptures", "any_of", of=("withdrawal", "confrontation"))})
    >>> sessions = pd.DataFrame({"withdrawal": pd.array([1, 0, None], dtype="Int64"),
    ...                          "confrontation": pd.array([2, 0, None], dtype="Int64")})
    >>> formed, notes = composites_from_columns(sessions, codebook)
    >>> formed["ruptures"].tolist()
    [3, 0, <NA>]
    >>> print(notes[0])  # doctest: +ELLIPSIS
    ruptures: formed from the sessions columns withdrawal + confrontation (their sum; ...
    """
    result = sessions.copy()
    notes: list[str] = []
    for name, construct in codebook.constructs.items():
        if not construct.is_composite or name in result.columns:
            continue
        parts = list(construct.of)
        present = [p for p in parts if p in result.columns]
        if not present:
            continue
        if len(present) < len(parts) and _of_composites(construct, codebook):
            # a composite of forms is the sum of the forms coded, as from codes
            notes.append(
                f"{name}: formed from {', '.join(present)} only; "
                f"{', '.join(p for p in parts if p not in present)} not in the sessions table "
                "(not coded)."
            )
            parts = present
        elif len(present) < len(parts):
            missing = ", ".join(p for p in parts if p not in present)
            notes.append(
                f"{name}: not formed; the sessions table has {', '.join(present)} but not "
                f"{missing}. Supply every part, or the {name} column itself."
            )
            continue
        values = pd.DataFrame(
            {p: pd.to_numeric(result[p], errors="coerce").astype("float64") for p in parts},
            index=result.index,
        )
        total = values.sum(axis=1, min_count=len(parts)).where(values.notna().all(axis=1))
        whole = total.dropna()
        if (whole % 1 == 0).all():
            result[name] = pd.array(total.to_numpy(), dtype="Float64").astype("Int64")
        else:
            result[name] = total
        how = (
            "their sum; an upper bound of the units with any of them, since session counts "
            "cannot show a unit with two"
            if construct.aggregate == "any_of"
            else "their sum"
        )
        notes.append(
            f"{name}: formed from the sessions columns {' + '.join(parts)} ({how}); "
            "sessions with a part missing have no value."
        )
    return result, notes
