"""Configured models: from a named entry under ``models:`` to its fitted outputs.

A model entry names a data level, an lme4-style formula, a family and options::

    repair_retention:
      data: clients
      formula: dropout ~ framework * repair_rate_between + rupture_rate_between + (1 | therapist)
      family: binomial
      contrasts: {slopes: [repair_rate_between]}

- :func:`parse_model_spec` checks an entry and returns a :class:`ModelSpec`;
- :func:`data_level` builds the rows of its data level from the analysis tables;
- :func:`model_frame` checks the formula's columns and the family against the response,
  then keeps exactly the rows and columns to be fitted, saying which rows were left out
  and why;
- :func:`fit_model` fits the mixed model (or, with ``method: gee``, the population-averaged
  model) and :func:`run_model` does all of it and returns the :class:`ModelOutputs`
  written under ``results/models/<name>/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from . import derive, estimability
from .contrasts import ADJUSTMENTS, CONTRAST_COLUMNS, framework_contrasts
from .io import write_table, write_text
from .models import ModelSpecError, build_design, fit_mixed, get_family, parse_formula
from .models.families import family_names
from .models.gee import COV_STRUCTS, fit_gee
from .models.inference import wald_table
from .models.profile import INTERVAL_COLUMNS
from .models.residuals import (
    diagnostics_record,
    not_assessed_record,
    simulated_residuals,
    simulation_choice,
)
from .models.result import json_ready
from .vocabulary import Vocabulary

__all__ = [
    "DATA_LEVELS",
    "AnalysisTables",
    "ContrastSpec",
    "ModelEntryError",
    "ModelOutputs",
    "ModelSpec",
    "PopulationAveragedFit",
    "check_models",
    "data_level",
    "expand_placeholders",
    "fit_model",
    "model_frame",
    "model_job_entry",
    "model_specs",
    "parse_model_spec",
    "read_model_frame",
    "model_intervals",
    "run_model",
    "simulated_diagnostics",
    "write_json",
]

#: Data levels a model can be fitted on, and what one row is.
DATA_LEVELS = {
    "sessions": "one attended session",
    "clients": "one client",
    "person_period": "one attended session at risk of dropout (discrete-time survival)",
    "profile_long": "one attended session and type of the profiled composite",
    "profile_forms": "one attended session and form of the profiled composite",
    "rupture_segments": "one rupture unit (segment) of the analysis coder",
}
#: Placeholders of formulas and ``contrasts.slopes``: ``{responses}`` is the response
#: columns of the ``rupture_segments`` level (config ``rupture_responses:``).
PLACEHOLDERS = ("responses",)
_LEVEL_ALIASES = {"person-period": "person_period"}
METHODS = ("mixed", "gee")
_ENTRY_KEYS = (
    "description",
    "data",
    "formula",
    "family",
    "method",
    "dropout",
    "min_attended",
    "reml",
    "nagq",
    "cov_struct",
    "contrasts",
    "inference",
    "optional",
    "variant_of",
    "changes",
    "inference",
)
_CONTRAST_KEYS = ("factor", "pairwise", "slopes", "by")
#: Pseudonymous keys kept in every model frame (when the data level has them).
KEY_COLUMNS = ("study", "therapist", "client", "session")
_VARIANCE_COLUMNS = ["group", "term1", "term2", "variance", "sd", "corr"]


class ModelEntryError(ValueError):
    """A configured model cannot be fitted as written; the message names model and fix."""


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ContrastSpec:
    """Which theory-specific contrasts a model reports.

    Attributes
    ----------
    factor : str
        Factor whose levels are compared (``framework``).
    pairwise : bool
        Pairwise differences between the factor's levels.
    slopes : tuple of str
        Numeric predictors whose slope is estimated in each level of ``factor``.
    by : str or None
        A second factor: contrasts and slopes are made within each of its levels.
    """

    factor: str = "framework"
    pairwise: bool = True
    slopes: tuple[str, ...] = ()
    by: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A checked model entry.

    Attributes
    ----------
    name, data, formula, family : str
        ``data`` is a key of :data:`DATA_LEVELS`; ``family`` is canonical (``gaussian``,
        ``binomial``, ``poisson``, ``negative_binomial``).
    method : str
        ``mixed`` (conditional, random effects) or ``gee`` (population-averaged).
    dropout : str or None
        Dropout definition used by the ``clients`` and ``person_period`` levels.
    min_attended : int or None
        Leave out clients who attended fewer sessions.
    reml : bool
        REML (default) or ML for gaussian mixed models.
    nagq : int
        Quadrature points for generalised mixed models (1 = Laplace).
    cov_struct : str
        Working correlation of GEE fits.
    contrasts : ContrastSpec or None
    optional : bool
        When the response column is absent or empty, write outputs saying so instead of
        stopping the run (e.g. alliance models on data without alliance ratings).
    description : str
    variant_of : str or None
        For a sensitivity variant, the model it varies.
    changes : dict
        For a sensitivity variant, the keys it changes.
    inference : dict
        The entry's ``inference:`` (``profile``: profile-likelihood intervals, default
        true; ``bootstrap``, ``seed``); see :func:`model_intervals`.
    """

    name: str
    data: str
    formula: str
    family: str
    method: str = "mixed"
    dropout: str | None = None
    min_attended: int | None = None
    reml: bool = True
    nagq: int = 1
    cov_struct: str = "exchangeable"
    contrasts: ContrastSpec | None = None
    optional: bool = False
    description: str = ""
    variant_of: str | None = None
    changes: dict = field(default_factory=dict)
    inference: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The spec as JSON-ready data."""
        out = asdict(self)
        if self.contrasts is not None:
            out["contrasts"]["slopes"] = list(self.contrasts.slopes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> ModelSpec:
        """The spec written by :meth:`to_dict` (e.g. a model's ``spec.json``).

        Examples
        --------
        >>> spec = parse_model_spec("m", {"data": "sessions", "family": "poisson",
        ...                               "formula": "ruptures ~ 1 + (1 | client)"})
        >>> ModelSpec.from_dict(spec.to_dict()) == spec
        True
        """
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if fields.get("contrasts") is not None:
            contrasts = dict(fields["contrasts"])
            contrasts["slopes"] = tuple(contrasts.get("slopes", ()))
            fields["contrasts"] = ContrastSpec(**contrasts)
        return cls(**fields)


def _fail(name: str, message: str) -> None:
    raise ModelEntryError(f"model '{name}': {message}")


def parse_model_spec(name: str, entry: Mapping, dropout: Mapping | None = None) -> ModelSpec:
    """Check one configured model entry and return it as a :class:`ModelSpec`.

    Parameters
    ----------
    name : str
        The entry's name (its key under ``models:``).
    entry : mapping
        ``data``, ``formula``, ``family`` and options (see ``config/README.md``).
    dropout : mapping, optional
        The ``dropout:`` section of the configuration (``primary`` and ``definitions``);
        needed for the ``clients`` and ``person_period`` levels.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelEntryError
        Naming the model, the key and what is allowed.

    Examples
    --------
    >>> spec = parse_model_spec("rupture_frequency", {
    ...     "data": "sessions", "family": "nbinom2",
    ...     "formula": "ruptures ~ framework * session_c + offset(log(minutes))"
    ...                " + (1 | therapist/client)"})
    >>> spec.family, spec.method
    ('negative_binomial', 'mixed')
    """
    if not isinstance(entry, Mapping):
        _fail(name, "give a mapping with data, formula and family.")
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        _fail(name, f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_ENTRY_KEYS)}.")
    missing = [k for k in ("data", "formula", "family") if k not in entry]
    if missing:
        _fail(name, f"missing key(s) {', '.join(missing)}.")
    level = _LEVEL_ALIASES.get(entry["data"], entry["data"])
    if level not in DATA_LEVELS:
        _fail(name, f"data level {entry['data']!r} is not one of {', '.join(DATA_LEVELS)}.")
    try:
        family = get_family(entry["family"]).name
    except ModelSpecError:
        _fail(
            name,
            f"family {entry['family']!r} is not one of {', '.join(family_names())} (aliases: "
            f"{', '.join(n for n in family_names(aliases=True) if n not in family_names())}).",
        )
    try:
        parse_formula(entry["formula"])
    except ModelSpecError as err:
        _fail(name, str(err))
    method = entry.get("method", "mixed")
    if method not in METHODS:
        _fail(name, f"method {method!r} is not one of {', '.join(METHODS)}.")
    if method == "gee" and family == "negative_binomial":
        _fail(
            name,
            "population-averaged (gee) fits of counts use family: poisson; their "
            "robust standard errors already allow for overdispersion.",
        )
    cov_struct = entry.get("cov_struct", "exchangeable")
    if cov_struct not in COV_STRUCTS:
        _fail(name, f"cov_struct {cov_struct!r} is not one of {', '.join(COV_STRUCTS)}.")
    return ModelSpec(
        name=name,
        data=level,
        formula=entry["formula"],
        family=family,
        method=method,
        dropout=_dropout_definition(name, level, entry.get("dropout"), dropout),
        min_attended=_min_attended(name, entry.get("min_attended")),
        reml=bool(entry.get("reml", True)),
        nagq=int(entry.get("nagq", 1)),
        cov_struct=cov_struct,
        contrasts=_contrast_spec(name, entry.get("contrasts")),
        optional=bool(entry.get("optional", False)),
        description=str(entry.get("description", "")).strip(),
        variant_of=entry.get("variant_of"),
        changes=dict(entry.get("changes", {})),
        inference=_inference_spec(name, entry.get("inference")),
    )


def _dropout_definition(name, level, chosen, dropout) -> str | None:
    if level not in ("clients", "person_period"):
        return None
    dropout = dropout or {}
    definitions = dropout.get("definitions", {})
    chosen = chosen if chosen is not None else dropout.get("primary")
    if chosen not in definitions:
        _fail(
            name,
            f"dropout definition {chosen!r} is not among the configured ones "
            f"({', '.join(definitions) or 'none'}); see dropout.definitions.",
        )
    return chosen


def _min_attended(name, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(name, f"min_attended must be a whole number >= 1, got {value!r}.")
    return value


#: Keys of a model entry's ``inference:`` and the types they take.
INFERENCE_KEYS = {"profile": bool, "bootstrap": int, "seed": int}


def _inference_spec(name, entry) -> dict:
    """The checked ``inference:`` of a model entry (``{}`` when absent)."""
    if entry is None:
        return {}
    if not isinstance(entry, Mapping):
        _fail(name, "inference must be a mapping, e.g. {profile: true}.")
    unknown = sorted(set(entry) - set(INFERENCE_KEYS))
    if unknown:
        _fail(
            name,
            f"unknown inference key(s) {', '.join(unknown)}; known keys: "
            f"{', '.join(INFERENCE_KEYS)}.",
        )
    for key, kind in INFERENCE_KEYS.items():
        value = entry.get(key)
        if value is None:
            continue
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if wrong or (key == "bootstrap" and value < 1):
            what = "true or false" if kind is bool else "a whole number"
            what += " of at least 1" if key == "bootstrap" else ""
            _fail(name, f"inference.{key} must be {what}, not {value!r}.")
    return dict(entry)


#: Keys of ``inference:`` that only the bootstrap jobs read (not the model's own job).
BOOTSTRAP_KEYS = ("bootstrap", "seed")


def model_job_entry(entry: Mapping) -> dict:
    """A model entry as its model job needs it: without :data:`BOOTSTRAP_KEYS` (the number
    of bootstrap refits and their seed, which only the bootstrap jobs read), so that
    changing them reruns the bootstrap and not the fit. An ``inference:`` left empty is
    dropped, so that the entry is the same as one that never had a bootstrap.

    Examples
    --------
    >>> entry = {"formula": "y ~ 1 + (1 | g)", "inference": {"bootstrap": 1000, "seed": 7}}
    >>> model_job_entry(entry)
    {'formula': 'y ~ 1 + (1 | g)'}
    >>> model_job_entry({**entry, "inference": {"profile": False, "bootstrap": 100}})
    {'formula': 'y ~ 1 + (1 | g)', 'inference': {'profile': False}}
    """
    out = dict(entry)
    inference = out.pop("inference", None)
    if isinstance(inference, Mapping):
        inference = {k: v for k, v in inference.items() if k not in BOOTSTRAP_KEYS}
    if inference is not None and inference != {}:
        out["inference"] = inference  # a malformed one stays, for the check to name it
    return out


def _contrast_spec(name, entry) -> ContrastSpec | None:
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        _fail(name, "contrasts must be a mapping, e.g. {slopes: [repair_rate_between]}.")
    unknown = sorted(set(entry) - set(_CONTRAST_KEYS))
    if unknown:
        _fail(
            name,
            f"unknown contrasts key(s) {', '.join(unknown)}; known keys: "
            f"{', '.join(_CONTRAST_KEYS)}.",
        )
    slopes = entry.get("slopes", [])
    slopes = [slopes] if isinstance(slopes, str) else list(slopes)
    return ContrastSpec(
        factor=entry.get("factor", "framework"),
        pairwise=bool(entry.get("pairwise", True)),
        slopes=tuple(slopes),
        by=entry.get("by"),
    )


def model_specs(config: Mapping) -> dict[str, ModelSpec]:
    """Check every entry under ``models:`` of a run configuration.

    Examples
    --------
    >>> model_specs({"models": {}})
    {}
    """
    return {
        name: parse_model_spec(name, entry, config.get("dropout"))
        for name, entry in (config.get("models") or {}).items()
    }


# --------------------------------------------------------------------------- data levels


@dataclass
class AnalysisTables:
    """The tables a model's data level is built from.

    Attributes
    ----------
    clients, sessions : pandas.DataFrame
        Canonical tables (``results/data``).
    session_table, client_table : pandas.DataFrame
        Derived tables (``results/derived``).
    dropout_definitions : mapping
        ``dropout.definitions`` of the configuration.
    vocabulary : Vocabulary, optional
        The run's vocabulary (``results/data/vocabulary.json``): the declared constructs of
        the ``person_period`` level and the types and forms of the ``profile_long`` and
        ``profile_forms`` levels.
    rupture_segments : pandas.DataFrame, optional
        ``results/derived/rupture_segments.parquet``
        (:func:`resistance_outcomes.rupture_level.rupture_segments`).
    rupture_info : mapping, optional
        ``results/derived/rupture_segments.json``: its ``responses`` (the response
        columns, what ``{responses}`` expands to) and ``reason`` (why it has no rows).
    """

    clients: pd.DataFrame
    sessions: pd.DataFrame
    session_table: pd.DataFrame
    client_table: pd.DataFrame
    dropout_definitions: Mapping
    vocabulary: Vocabulary | None = None
    rupture_segments: pd.DataFrame | None = None
    rupture_info: Mapping | None = None


def _attended_sessions(tables: AnalysisTables) -> pd.DataFrame:
    table = tables.session_table
    return table[derive.attended_mask(table)].reset_index(drop=True)


def _level_rows(spec: ModelSpec, tables: AnalysisTables) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of the data level before any model-specific exclusion."""
    if spec.data == "sessions":
        rows = _attended_sessions(tables)
        not_attended = len(tables.session_table) - len(rows)
        return rows, [_exclusion("scheduled session not attended", not_attended)]
    if spec.data in ("profile_long", "profile_forms"):
        vocab = tables.vocabulary if tables.vocabulary is not None else Vocabulary()
        forms = {f: vocab.constructs[f].parts for f in vocab.profile_forms()}
        parts, composite = vocab.profile_parts(), vocab.profile
        if spec.data == "profile_forms":
            rows = derive.profile_forms(tables.session_table, list(forms), composite, parts)
            return rows, []
        return derive.profile_long(tables.session_table, parts, composite, forms), []
    if spec.data == "clients":
        rows = tables.client_table.copy()
        rows["dropout"] = rows[f"dropout_{spec.dropout}"]
        return rows, []
    if spec.data == "rupture_segments":
        return _rupture_rows(tables), []
    definition = tables.dropout_definitions[spec.dropout]
    rows = derive.person_period(
        tables.sessions, tables.clients, definition, spec.dropout, tables.vocabulary
    )
    return rows, []


def _rupture_rows(tables: AnalysisTables) -> pd.DataFrame:
    """The rupture-segment table; a DataError saying why when it has no rows."""
    rows, info = tables.rupture_segments, dict(tables.rupture_info or {})
    if rows is None:
        raise derive.DataError(
            "no rupture-segment table was given (results/derived/rupture_segments.parquet; "
            "configure rupture_responses:)."
        )
    if rows.empty:
        reason = info.get("reason") or "it has no rows"
        raise derive.DataError(f"the rupture-segment table is empty: {reason}.")
    return rows.reset_index(drop=True)


def expand_placeholders(
    spec: ModelSpec, rows: pd.DataFrame, tables: AnalysisTables
) -> tuple[ModelSpec, dict]:
    """Replace ``{responses}`` in the formula and ``contrasts.slopes`` by the response columns.

    ``{responses}`` stands for the response columns of the ``rupture_segments`` level
    (``rupture_info["responses"]``): ``a + b + c`` in the formula, the list in
    ``contrasts.slopes``. A response column with one value only in ``rows`` (a response
    never, or always, met with) cannot be estimated and is left out, with the reason.

    Parameters
    ----------
    spec : ModelSpec
    rows : pandas.DataFrame
        The model's data level.
    tables : AnalysisTables

    Returns
    -------
    spec : ModelSpec
        The spec with the placeholders replaced (the same spec without any).
    info : dict
        ``{"responses": [...], "left_out": {column: reason}}``; empty without placeholders.

    Raises
    ------
    ModelEntryError
        A placeholder in a model whose data level has no response columns.

    Examples
    --------
    >>> import pandas as pd
    >>> spec = parse_model_spec("m", {"data": "rupture_segments", "family": "binomial",
    ...     "formula": "repaired ~ framework * ({responses}) + (1 | therapist)",
    ...     "contrasts": {"slopes": ["{responses}"]}})
    >>> rows = pd.DataFrame({"a": [0, 1], "b": [1, 0], "c": [0, 0]})
    >>> tables = AnalysisTables(None, None, None, None, {},
    ...                         rupture_info={"responses": ["a", "b", "c"]})
    >>> new, info = expand_placeholders(spec, rows, tables)
    >>> new.formula, new.contrasts.slopes, info["left_out"]
    ('repaired ~ framework * (a + b) + (1 | therapist)', ('a', 'b'), {'c': 'always 0'})
    """
    token = "{responses}"
    slopes = spec.contrasts.slopes if spec.contrasts is not None else ()
    if token not in spec.formula and token not in slopes:
        return spec, {}
    declared = list((tables.rupture_info or {}).get("responses", []))
    if spec.data != "rupture_segments" or not declared:
        _fail(
            spec.name,
            f"{token} stands for the response columns of the rupture_segments data level "
            f"(config rupture_responses:); this model's data level {spec.data} has none.",
        )
    used, left_out = [], {}
    for column in declared:
        values = pd.to_numeric(rows[column], errors="coerce").dropna().unique()
        if len(values) > 1:
            used.append(column)
        else:
            left_out[column] = f"always {values[0]:g}" if len(values) else "no values"
    if not used:
        _fail(spec.name, f"no response column varies in the data ({left_out}).")
    formula = spec.formula.replace(token, " + ".join(used))
    contrasts = spec.contrasts
    if contrasts is not None:
        expanded = [s for slope in slopes for s in (used if slope == token else [slope])]
        contrasts = replace(contrasts, slopes=tuple(expanded))
    within = (tables.rupture_info or {}).get("within")
    return replace(spec, formula=formula, contrasts=contrasts), {
        "responses": used,
        "left_out": left_out,
        **({"within": within} if within else {}),
    }


def _exclusion(reason: str, rows: int, column: str | None = None) -> dict:
    """One entry of ``rows_excluded``; ``column`` names the variable whose value was missing
    (tables print its label)."""
    entry = {"reason": reason, "rows": int(rows)}
    return {**entry, "column": column} if column else entry


def data_level(spec: ModelSpec, tables: AnalysisTables) -> tuple[pd.DataFrame, list[dict]]:
    """Build the rows of a model's data level, with the rows left out and why.

    ``sessions``: attended sessions of the session table. ``clients``: the client table,
    with ``dropout`` set to the model's dropout definition. ``person_period``: built for
    the model's dropout definition (:func:`resistance_outcomes.derive.person_period`).
    ``profile_long``: :func:`resistance_outcomes.derive.profile_long`; ``profile_forms``:
    :func:`resistance_outcomes.derive.profile_forms` (no forms, or one: a
    :class:`~resistance_outcomes.derive.DataError`, so an ``optional`` model on it is
    skipped with the reason). ``rupture_segments``: ``tables.rupture_segments``
    (:func:`resistance_outcomes.rupture_level.rupture_segments`; an empty table is a
    DataError with its reason). With
    ``min_attended``, clients who attended fewer sessions are left out.

    Parameters
    ----------
    spec : ModelSpec
    tables : AnalysisTables

    Returns
    -------
    rows : pandas.DataFrame
    exclusions : list of dict
        ``{"reason": ..., "rows": n}`` for each reason with n > 0.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.derive import session_table
    >>> clients = pd.DataFrame({"study": "s", "client": ["C1"], "therapist": "T1",
    ...                         "framework": "cognitive", "planned_sessions": 2,
    ...                         "end_status": "completed"})
    >>> sessions = pd.DataFrame({"study": "s", "client": "C1", "session": [1, 2],
    ...                          "attended": [True, False]})
    >>> tables = AnalysisTables(clients, sessions, session_table(sessions, clients),
    ...                         clients, {})
    >>> spec = parse_model_spec("m", {"data": "sessions", "family": "gaussian",
    ...                               "formula": "alliance ~ 1 + (1 | client)"})
    >>> rows, why = data_level(spec, tables)
    >>> len(rows), why
    (1, [{'reason': 'scheduled session not attended', 'rows': 1}])
    """
    rows, exclusions = _level_rows(spec, tables)
    if spec.min_attended is not None:
        attended = tables.client_table.set_index(["study", "client"])["sessions_attended"]
        keys = pd.MultiIndex.from_frame(rows[["study", "client"]])
        few = attended.reindex(keys).to_numpy() < spec.min_attended
        exclusions.append(
            _exclusion(f"client attended fewer than {spec.min_attended} sessions", few.sum())
        )
        rows = rows[~few].reset_index(drop=True)
    return rows, [e for e in exclusions if e["rows"] > 0]


# --------------------------------------------------------------------------- model frame


def _response_column(spec: ModelSpec) -> str:
    return parse_formula(spec.formula).response


def _describe_row(rows: pd.DataFrame, index) -> str:
    row = rows.loc[index]
    return ", ".join(f"{k} {row[k]}" for k in KEY_COLUMNS if k in rows.columns)


def check_family(
    spec: ModelSpec, y: np.ndarray, rows: pd.DataFrame, weights: np.ndarray | None = None
) -> None:
    """Refuse a family that does not fit the response, before anything is fitted.

    The family's own check
    (:meth:`~resistance_outcomes.models.families.GlmmFamily.check_response`): binomial
    needs 0/1 (or whole successes out of the trials of ``cbind``), poisson and
    negative_binomial need whole counts >= 0, gaussian refuses a 0/1 response (use
    binomial).

    Parameters
    ----------
    spec : ModelSpec
    y : numpy.ndarray
        Response values of the complete rows.
    rows : pandas.DataFrame
        The complete rows (same order as ``y``), used to name the first offending row.
    weights : numpy.ndarray, optional
        Prior weights (the trials of a ``cbind`` response).

    Raises
    ------
    ModelEntryError
        Naming model, family, response column, the offending value and its row, and the
        available columns.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> spec = parse_model_spec("m", {"data": "clients", "family": "binomial",
    ...                               "formula": "dropout ~ 1 + (1 | therapist)"},
    ...                         {"primary": "d", "definitions": {"d": {}}})
    >>> check_family(spec, np.array([0.0, 1.0]), pd.DataFrame({"client": ["a", "b"]}))
    """
    try:
        get_family(spec.family).check_response(
            y, lambda i: _describe_row(rows, rows.index[i]), _response_column(spec), weights
        )
    except ModelSpecError as err:
        _fail(spec.name, f"{err} Available columns: {', '.join(map(str, rows.columns))}.")


def model_frame(spec: ModelSpec, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Check the formula against the data and keep exactly the rows and columns to fit.

    Parameters
    ----------
    spec : ModelSpec
    rows : pandas.DataFrame
        The data level (:func:`data_level`).

    Returns
    -------
    frame : pandas.DataFrame
        The pseudonymous keys present (study, therapist, client, session) and the columns
        the formula uses, for the rows without a missing value in them; index reset.
    exclusions : list of dict
        One ``{"reason": "missing value in <column>", "rows": n}`` per column with gaps
        (a row missing several values is counted under each).

    Raises
    ------
    ModelEntryError
        For a column the data level lacks (naming model, column and the available
        columns), a family that does not fit the response, or a formula that cannot be
        built (e.g. a rank-deficient fixed part).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"client": ["a", "a", "b", "b"], "therapist": "T1",
    ...                      "alliance": [5.0, None, 4.5, 4.0], "x": [0.0, 1.0, 0.0, 1.0]})
    >>> spec = parse_model_spec("m", {"data": "sessions", "family": "gaussian",
    ...                               "formula": "alliance ~ x + (1 | client)"})
    >>> frame, why = model_frame(spec, rows)
    >>> list(frame.columns)
    ['therapist', 'client', 'alliance', 'x']
    >>> why
    [{'reason': 'missing value in alliance', 'rows': 1, 'column': 'alliance'}]
    """
    try:
        design = build_design(spec.formula, rows)
    except ModelSpecError as err:
        _fail(spec.name, f"(data level {spec.data}) {err}")
    used = [str(c) for c in design.frame.columns]
    check_family(spec, design.y, rows.loc[design.frame.index], design.prior_weights)
    keys = [k for k in KEY_COLUMNS if k in rows.columns]
    columns = [*keys, *(c for c in used if c not in keys)]
    frame = rows.loc[design.frame.index, columns].reset_index(drop=True)
    exclusions = [
        _exclusion(f"missing value in {column}", n, column)
        for column, n in design.dropped_columns.items()
    ]
    return frame, exclusions


def derived_variables(rows: pd.DataFrame, frame: pd.DataFrame) -> dict:
    """Centring constants of the derived predictors the model uses.

    ``session_c`` = session - ``centre``. Session-level ``<x>_within`` = x - client mean
    and ``<x>_between`` = client mean - ``grand_mean`` (Curran & Bauer, 2011), so that
    ``x = x_within + x_between + grand_mean``; client-level ``<x>_between`` = x -
    ``grand_mean``. The constants come from the data level.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"session": [1, 2, 3], "session_c": [-1.0, 0.0, 1.0]})
    >>> derived_variables(rows, rows)
    {'session_c': {'definition': 'session - centre', 'centre': 2.0}}
    """
    out = {}
    if "session_c" in frame and "session" in rows:
        centre = float((rows["session"].astype(float) - rows["session_c"]).mean())
        out["session_c"] = {"definition": "session - centre", "centre": centre}
    for column in frame.columns:
        stem = column.removesuffix("_within").removesuffix("_between")
        if stem == column or stem not in rows or stem in out:
            continue
        parts = [f"{stem}_{p}" for p in ("within", "between") if f"{stem}_{p}" in rows]
        residual = derive.as_float(rows, stem, "model") - rows[parts].sum(axis=1, min_count=1)
        out[stem] = {
            "definition": f"{stem} = {' + '.join(parts)} + grand_mean",
            "grand_mean": float(residual.mean()),
        }
    return out


def factor_levels(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Levels, in order, of the factors of a model frame (keys excluded), for refitting.

    Categorical columns keep their order; text columns get their sorted values, as the
    engine uses them.

    Examples
    --------
    >>> import pandas as pd
    >>> factor_levels(pd.DataFrame({"client": ["b", "a"], "sex": ["m", "f"],
    ...                             "framework": pd.Categorical(["cognitive", "behavioral"],
    ...                                 categories=["behavioral", "cognitive"])}))
    {'sex': ['f', 'm'], 'framework': ['behavioral', 'cognitive']}
    """
    out = {}
    for column in (c for c in frame.columns if c not in KEY_COLUMNS):
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            out[str(column)] = [str(v) for v in values.cat.categories]
        elif pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
            out[str(column)] = sorted(map(str, values.dropna().unique()))
    return out


def read_model_frame(path: str | os.PathLike, spec: Mapping) -> pd.DataFrame:
    """Read a written ``model_frame.csv`` back with its factor levels in their order.

    Parameters
    ----------
    path : path-like
        ``results/models/<name>/model_frame.csv``.
    spec : mapping
        The model's ``spec.json`` (its ``factor_levels`` entry).

    Examples
    --------
    >>> frame = read_model_frame("results/models/repair_retention/model_frame.csv",
    ...                          spec)  # doctest: +SKIP
    """
    levels = spec.get("factor_levels", {})
    text = [k for k in KEY_COLUMNS if k != "session"] + list(levels)
    frame = pd.read_csv(path, dtype={k: str for k in text}, keep_default_na=False, na_values=[""])
    for column, order in levels.items():
        frame[column] = pd.Categorical(frame[column], categories=order)
    return frame


# --------------------------------------------------------------------------- fitting


@dataclass
class PopulationAveragedFit:
    """A population-averaged (GEE) fit with the attributes contrasts need.

    Attributes
    ----------
    design : MixedDesign
        The design of the formula (its random part only names the clusters).
    family : str
    beta, vcov : numpy.ndarray
        Estimates and their robust (sandwich) covariance.
    cluster : str
        The grouping factor whose levels are the clusters.
    n_clusters : int
    cov_struct : str
    working_correlation : float
    converged : bool
    messages : list of str
    """

    design: object
    family: str
    beta: np.ndarray
    vcov: np.ndarray
    cluster: str
    n_clusters: int
    cov_struct: str
    working_correlation: float
    converged: bool
    messages: list[str]
    df = None
    method = "GEE"
    singular = False

    @property
    def extra(self) -> dict:
        return {}

    @property
    def coefficients(self) -> pd.DataFrame:
        """Tidy table as ``MixedResult.coefficients`` (z tests, robust standard errors)."""
        return wald_table(
            self.design.fixed_names,
            self.beta,
            np.sqrt(np.diag(self.vcov)),
            exponentiate=get_family(self.family).exponentiate,
        )

    @property
    def variance_components(self) -> pd.DataFrame:
        """Empty: a population-averaged model has no random effects."""
        return pd.DataFrame(columns=_VARIANCE_COLUMNS)

    @property
    def fit_statistics(self) -> dict:
        return {
            "nobs": self.design.n,
            "cluster": self.cluster,
            "n_clusters": self.n_clusters,
            "cov_struct": self.cov_struct,
            "working_correlation": self.working_correlation,
            "converged": self.converged,
            "singular": False,
            "messages": list(self.messages),
        }


def fit_population_averaged(spec: ModelSpec, frame: pd.DataFrame) -> PopulationAveragedFit:
    """Fit the model's fixed part by GEE, clustered by its outermost grouping factor.

    Statsmodels' ``GEE`` with robust (sandwich) standard errors, as
    :func:`resistance_outcomes.models.gee`, which returns only the coefficient table;
    the covariance kept here is what framework contrasts and simple slopes need.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(2)
    >>> therapist = np.repeat(np.arange(30), 10)
    >>> x = rng.normal(size=300)
    >>> eta = -1 + 0.5 * x + rng.normal(0, 0.6, 30)[therapist]
    >>> df = pd.DataFrame({"dropout": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x,
    ...                    "therapist": therapist})
    >>> spec = parse_model_spec("m", {"data": "sessions", "family": "binomial",
    ...     "method": "gee", "formula": "dropout ~ x + (1 | therapist)"})
    >>> fit = fit_population_averaged(spec, df)
    >>> fit.cluster, fit.n_clusters
    ('therapist', 30)
    """
    design = build_design(spec.formula, frame)
    fit = fit_gee(design, spec.family, cov_struct=spec.cov_struct)
    return PopulationAveragedFit(
        design=design,
        family=spec.family,
        beta=np.asarray(fit.result.params),
        vcov=np.asarray(fit.result.cov_params()),
        cluster=fit.cluster,
        n_clusters=fit.n_clusters,
        cov_struct=spec.cov_struct,
        working_correlation=fit.working_correlation,
        converged=not fit.messages,
        messages=fit.messages,
    )


def fit_model(spec: ModelSpec, frame: pd.DataFrame):
    """Fit a model to its model frame.

    Parameters
    ----------
    spec : ModelSpec
    frame : pandas.DataFrame
        From :func:`model_frame` (or :func:`read_model_frame`).

    Returns
    -------
    MixedResult or PopulationAveragedFit

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> spec = parse_model_spec("m", {"data": "sessions", "family": "gaussian",
    ...                               "formula": "y ~ x + (1 | g)"})
    >>> fit_model(spec, df).fit_statistics["nobs"]
    48
    """
    try:
        if spec.method == "gee":
            return fit_population_averaged(spec, frame)
        return fit_mixed(spec.formula, frame, family=spec.family, reml=spec.reml, nagq=spec.nagq)
    except ModelSpecError as err:
        _fail(spec.name, str(err))


# --------------------------------------------------------------------------- outputs

#: Columns of ``simulated_residuals.csv``.
SIMULATED_RESIDUAL_COLUMNS = ["row", "fitted", "residual"]


@dataclass
class ModelOutputs:
    """Everything written under ``results/models/<name>/``.

    Attributes
    ----------
    spec : dict
        ``spec.json``: the entry, its data level, factor levels and derived variables.
    frame : pandas.DataFrame
        ``model_frame.csv``.
    coefficients, variance_components, contrasts : pandas.DataFrame
    fit : dict
        ``fit.json``: fit statistics, flags, rows used and rows left out and why.
    predictions, residuals, random_effects : pandas.DataFrame
        ``predictions.csv``, ``residuals.csv``, ``random_effects.csv``: what the figures
        draw (see :mod:`resistance_outcomes.predictions`); empty for a model not fitted,
        ``random_effects`` has its header only for a population-averaged (GEE) fit.
    intervals : pandas.DataFrame
        ``intervals.csv``: profile-likelihood intervals (:func:`model_intervals`); the
        header only when there are none (``fit["intervals"]`` says why).
    """

    spec: dict
    frame: pd.DataFrame
    coefficients: pd.DataFrame
    variance_components: pd.DataFrame
    fit: dict
    contrasts: pd.DataFrame
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    residuals: pd.DataFrame = field(default_factory=pd.DataFrame)
    random_effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    intervals: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=INTERVAL_COLUMNS))
    #: ``simulated_residuals.csv`` (row, fitted, residual) and ``diagnostics.json``: the
    #: simulated-residual tests (:func:`simulated_diagnostics`); written only when
    #: ``paths`` has them.
    simulated_residuals: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=SIMULATED_RESIDUAL_COLUMNS)
    )
    diagnostics: dict = field(default_factory=dict)

    #: The tables written, by key of ``paths`` (spec and fit are JSON).
    TABLES = (
        "frame",
        "coefficients",
        "variance_components",
        "contrasts",
        "predictions",
        "residuals",
        "random_effects",
        "intervals",
    )
    #: The tables written only when ``paths`` has them.
    OPTIONAL_TABLES = ("predictions", "residuals", "random_effects", "intervals")

    def write(self, paths: Mapping) -> None:
        """Write the files to ``paths`` (keys spec, fit and those of :attr:`TABLES`;
        those of :attr:`OPTIONAL_TABLES` only when ``paths`` has them)."""
        write_json(self.spec, paths["spec"])
        write_json(self.fit, paths["fit"])
        given = set(paths.keys())  # a dict or Snakemake's output (a list with keys)
        for key in self.TABLES:
            if key in given or key not in self.OPTIONAL_TABLES:
                write_table(getattr(self, key), paths[key])
        if "simulated_residuals" in given:
            write_table(self.simulated_residuals, paths["simulated_residuals"])
        if "diagnostics" in given:
            write_json(self.diagnostics, paths["diagnostics"])


def write_json(data, path: str | os.PathLike) -> None:
    """Write JSON atomically (NaN and infinities as null), creating folders.

    Examples
    --------
    >>> write_json({"converged": True}, "results/models/m/fit.json")  # doctest: +SKIP
    """
    write_text(path, json.dumps(json_ready(data), indent=2) + "\n")


def _flags(statistics: dict) -> list[str]:
    flags = []
    if not statistics.get("converged", True):
        flags.append("not converged")
    if statistics.get("singular", False):
        flags.append("singular fit")
    return flags


def fit_summary(
    spec: ModelSpec,
    fit,
    rows_in_data: int,
    exclusions: list[dict],
    assessment: estimability.Estimability | None = None,
) -> dict:
    """The content of ``fit.json``: fit statistics, flags and the rows left out and why.

    With an ``assessment`` (:func:`resistance_outcomes.estimability.assess`),
    ``not_estimable`` lists ``{"term", "reason"}`` for each coefficient the data do not
    identify, ``flags`` gains ``"not estimable: <reasons>"``, and the R² values, which
    such coefficients would inflate towards 1, are left empty.
    """
    statistics = fit.fit_statistics
    for key in ("n_dropped", "dropped_columns"):  # always empty: see rows_excluded
        statistics.pop(key, None)
    flags = _flags(statistics)
    not_estimable = assessment.not_estimable if assessment is not None else []
    if not_estimable:
        flags.append(assessment.flag)
        for key in ("r2_marginal", "r2_conditional"):
            if key in statistics:
                statistics[key] = None
    return {
        "model": spec.name,
        "fitted": True,
        "method": fit.method,
        "family": spec.family,
        "formula": spec.formula,
        "flags": flags,
        "not_estimable": not_estimable,
        "rows_in_data_level": rows_in_data,
        "rows_excluded": exclusions,
        **statistics,
    }


def _skip_reason(spec: ModelSpec, rows: pd.DataFrame) -> str | None:
    """Why an ``optional`` model is not fitted (its response is absent or empty), or None."""
    response = _response_column(spec)
    if spec.optional and (response not in rows or rows[response].isna().all()):
        return f"the data have no values of the response '{response}'"
    return None


def _level_reason(spec: ModelSpec, err: Exception) -> str:
    """Why an ``optional`` model's data level could not be built."""
    return f"its data level {spec.data} cannot be built from these data: {err}"


def _not_fitted(spec: ModelSpec, reason: str, rows: int, exclusions: list[dict]) -> ModelOutputs:
    fit = {
        "model": spec.name,
        "fitted": False,
        "reason": reason,
        "method": spec.method,
        "family": spec.family,
        "formula": spec.formula,
        "flags": ["not fitted"],
        "not_estimable": [],
        "rows_in_data_level": rows,
        "rows_excluded": exclusions,
        "intervals": {"profile": False, "reason": "the model was not fitted"},
    }
    empty = pd.DataFrame()
    return ModelOutputs(
        spec=spec.to_dict(),
        frame=empty,
        coefficients=empty,
        variance_components=pd.DataFrame(columns=_VARIANCE_COLUMNS),
        fit=fit,
        contrasts=empty,
        diagnostics=not_assessed_record(f"the model was not fitted: {reason}"),
    )


def run_model(
    spec: ModelSpec,
    tables: AnalysisTables,
    adjust: str = "holm",
    diagnostics: Mapping | None = None,
    intervals: bool = False,
) -> ModelOutputs:
    """Build the data level and model frame, fit, and compute the configured contrasts.

    A fit that did not converge or is singular is returned like any other, with
    ``fit["flags"]`` saying so, and coefficients and contrasts the data do not identify
    are marked (:mod:`resistance_outcomes.estimability`). An ``optional`` model whose
    response column is absent or empty, or whose data level cannot be built from the data,
    is returned unfitted, with the reason in ``fit["reason"]``.

    Parameters
    ----------
    spec : ModelSpec
    tables : AnalysisTables
    adjust : {"holm", "bh", "none"}
        Multiplicity adjustment of the contrasts.
    diagnostics : mapping, optional
        ``nsim``, ``seed``, ``conditional`` and optionally ``at_risk_rows`` of the
        simulated residuals and their tests (:func:`simulated_diagnostics`); without it
        they are not computed.
    intervals : bool
        Compute the profile-likelihood intervals (:func:`model_intervals`); off for
        sensitivity variants.

    Returns
    -------
    ModelOutputs

    Examples
    --------
    >>> outputs = run_model(spec, tables)  # doctest: +SKIP
    >>> outputs.write(paths)  # doctest: +SKIP
    """
    if adjust not in ADJUSTMENTS:
        raise ModelEntryError(
            f"contrasts.adjust: {adjust!r} is not one of {', '.join(ADJUSTMENTS)}."
        )
    try:
        rows, exclusions = data_level(spec, tables)
    except derive.DataError as err:
        if not spec.optional:
            raise
        return _not_fitted(spec, _level_reason(spec, err), 0, [])
    spec, expanded = expand_placeholders(spec, rows, tables)
    reason = _skip_reason(spec, rows)
    if reason:
        return _not_fitted(spec, reason, len(rows), exclusions)
    frame, dropped = model_frame(spec, rows)
    fit = fit_model(spec, frame)
    contrasts = pd.DataFrame(columns=CONTRAST_COLUMNS)
    if spec.contrasts is not None:
        try:
            contrasts = framework_contrasts(fit, spec.contrasts, adjust=adjust)
        except ModelSpecError as err:
            _fail(spec.name, str(err))
    assessment = estimability.assess(fit, spec.family, contrasts, spec.contrasts)
    coefficients, contrasts = estimability.mark_tables(fit.coefficients, contrasts, assessment)
    spec_json = {
        **spec.to_dict(),
        "one_row_is": DATA_LEVELS[spec.data],
        "factor_levels": factor_levels(frame),
        "derived_variables": derived_variables(rows, frame),
        **({"placeholders": expanded} if expanded else {}),
    }
    summary = fit_summary(spec, fit, len(rows), exclusions + dropped, assessment)
    interval_table = pd.DataFrame(columns=INTERVAL_COLUMNS)
    if intervals:
        interval_table, summary["intervals"] = model_intervals(spec, fit)
    drawn = _figure_tables(spec, spec_json, fit, frame)
    if not hasattr(fit, "b"):  # population-averaged: random_effects.csv has its header only
        summary["random_effects"] = "none: a population-averaged (GEE) fit has no random effects"
    if diagnostics is not None:
        drawn.update(simulated_diagnostics(fit, frame, **diagnostics))
    return ModelOutputs(
        spec=spec_json,
        frame=frame,
        coefficients=coefficients,
        variance_components=fit.variance_components,
        fit=summary,
        contrasts=contrasts,
        intervals=interval_table,
        **drawn,
    )


def model_intervals(spec: ModelSpec, fit, level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Profile-likelihood intervals of a fitted model, for ``intervals.csv``.

    Every random-effect SD and correlation, the residual SD (linear models), NB2's size,
    every fixed effect, the ICC and, with several grouping factors, each factor's share of
    variance (:meth:`~resistance_outcomes.models.MixedResult.confint` with
    ``method="profile"``).
    A population-averaged (GEE) fit, an entry with ``inference: {profile: false}`` and a
    profile that fails give the header only.

    Returns
    -------
    intervals : pandas.DataFrame
        The columns of :data:`~resistance_outcomes.models.profile.INTERVAL_COLUMNS`.
    info : dict
        For ``fit.json``: ``profile`` (whether intervals were computed), ``level``, and
        ``reason`` when there are none or ``notes`` (what the profiles met).
    """
    empty = pd.DataFrame(columns=INTERVAL_COLUMNS)
    if spec.method != "mixed" or not hasattr(fit, "confint"):
        return empty, {
            "profile": False,
            "reason": "a population-averaged (GEE) fit has no likelihood to profile",
        }
    if not spec.inference.get("profile", True):
        return empty, {"profile": False, "reason": "inference.profile is false"}
    try:
        table = fit.confint(method="profile", level=level)
    except (ModelSpecError, np.linalg.LinAlgError, ValueError) as err:
        return empty, {"profile": False, "reason": f"the profile failed: {err}"}
    notes = sorted({n for note in table["note"] for n in str(note).split("; ") if n})
    info = {"profile": True, "level": level}
    if notes:
        info["notes"] = notes
    return table, info


def simulated_diagnostics(
    fit,
    frame: pd.DataFrame | None = None,
    nsim: int = 250,
    seed: int | None = None,
    conditional: bool = False,
    alpha: float = 0.05,
    at_risk_rows: bool = False,
) -> dict:
    """Simulated scaled residuals of a fit and their four tests, as the model step writes
    them (:mod:`resistance_outcomes.models.residuals`).

    ``conditional`` keeps the random effects' conditional modes; ``at_risk_rows`` (rows
    that exist only while at risk, as person-period rows) always does
    (:func:`~resistance_outcomes.models.residuals.simulation_choice`), and the record
    says which simulation was used and why (``conditional``, ``random_effects``,
    ``simulation_reason``).

    Returns
    -------
    dict
        ``simulated_residuals``: ``row`` (1-based row of ``frame``, the model frame),
        ``fitted`` (population-level predicted mean) and ``residual``, no identifiers;
        ``diagnostics``: :func:`~resistance_outcomes.models.residuals.diagnostics_record`
        (``flagged`` tests at ``alpha``), or a record with ``assessed: false`` and the
        reason for a population-averaged fit or a model that cannot be simulated.
    """
    empty = pd.DataFrame(columns=SIMULATED_RESIDUAL_COLUMNS)
    if not hasattr(fit, "simulate"):
        reason = "a population-averaged (GEE) fit defines no distribution to simulate from"
        return {"simulated_residuals": empty, "diagnostics": not_assessed_record(reason)}
    try:
        conditional, why = simulation_choice(conditional, at_risk_rows=at_risk_rows)
        res = simulated_residuals(fit, nsim, seed=seed, conditional=conditional)
    except ModelSpecError as err:
        return {"simulated_residuals": empty, "diagnostics": not_assessed_record(str(err))}
    table = res.table[SIMULATED_RESIDUAL_COLUMNS].copy()
    index = fit.design.frame.index
    if frame is not None and len(frame) and index.isin(frame.index).all():
        table["row"] = frame.index.get_indexer(index) + 1
    return {
        "simulated_residuals": table.reset_index(drop=True),
        "diagnostics": diagnostics_record(res, alpha=alpha, simulation_reason=why),
    }


def _figure_tables(spec: ModelSpec, spec_json: dict, fit, frame: pd.DataFrame) -> dict:
    """predictions, residuals and random effects of a fit, as the figures draw them."""
    from . import predictions

    factor = spec.contrasts.factor if spec.contrasts is not None else "framework"
    try:
        predicted = predictions.population_predictions(spec_json, fit, frame)
    except (ModelSpecError, ValueError, KeyError) as err:
        _fail(spec.name, f"the population-level predictions cannot be computed: {err}")
    return {
        "predictions": predicted,
        "residuals": predictions.residual_table(fit, frame, factor=factor),
        "random_effects": predictions.random_effects_table(fit),
    }


# --------------------------------------------------------------------------- checks


def check_models(
    specs: Mapping[str, ModelSpec],
    tables: AnalysisTables,
    config_file: str = "config/config.yaml",
) -> dict:
    """Check every model's formula and family against its data level, fitting nothing.

    Each spec gets the checks :func:`run_model` makes before it fits: its data level is
    built (:func:`data_level`), an ``optional`` model without values of its response is
    noted as skipped, and :func:`model_frame` checks that every column of the formula
    exists there and that the family fits the response. Every problem is collected, so
    one run names all of them.

    Parameters
    ----------
    specs : mapping of str to ModelSpec
        The configured models and sensitivity variants.
    tables : AnalysisTables
    config_file : str
        The configuration file of the run, named in the error.

    Returns
    -------
    dict
        ``{"models": {name: {"data", "status" ("ok" or "skipped"), "rows", "columns",
        "rows_excluded" or "reason"}}}``, the content of ``results/models/checked.json``.

    Raises
    ------
    ModelEntryError
        One line per model that cannot be fitted (as :func:`model_frame` words it: the
        model, the column and the available columns), then where to fix them.

    Examples
    --------
    >>> check_models({}, tables)  # doctest: +SKIP
    {'models': {}}
    """
    checked, problems = {}, []
    for name, spec in specs.items():
        try:
            rows, exclusions = data_level(spec, tables)
        except derive.DataError as err:
            if spec.optional:
                reason = _level_reason(spec, err)
                checked[name] = {"data": spec.data, "status": "skipped", "reason": reason}
            else:
                problems.append(f"model '{name}': (data level {spec.data}) {err}")
            continue
        try:
            spec, expanded = expand_placeholders(spec, rows, tables)
        except ModelEntryError as err:
            problems.append(str(err))
            continue
        reason = _skip_reason(spec, rows)
        if reason:
            checked[name] = {"data": spec.data, "status": "skipped", "reason": reason}
            continue
        try:
            frame, dropped = model_frame(spec, rows)
        except ModelEntryError as err:
            problems.append(str(err))
            continue
        checked[name] = {
            "data": spec.data,
            "status": "ok",
            "rows": len(frame),
            "columns": [str(c) for c in frame.columns],
            "rows_excluded": exclusions + dropped,
            **({"formula": spec.formula, "placeholders": expanded} if expanded else {}),
        }
    if problems:
        raise ModelEntryError(
            "\n".join(problems) + f"\nFix these entries under `models:` (or the "
            f"`sensitivity:` variants built from them) in {config_file}; no model was fitted."
        )
    return {"models": checked}
