"""Sensitivity analyses: configured variants of the models, and a table comparing them.

A variant is a model entry with some keys changed, e.g. another dropout definition, the
Poisson instead of the negative-binomial family, a population-averaged (GEE) fit, or only
clients who attended at least two sessions::

    sensitivity:
      dropout_definitions: [repair_retention, dropout_hazard]
      variants:
        rupture_frequency_poisson: {model: rupture_frequency, family: poisson}

- :func:`variant_entries` expands the ``sensitivity:`` section into full model entries,
  one per variant (``dropout_definitions`` adds one variant per configured dropout
  definition other than the model's own, named ``<model>_dropout_<definition>``);
- :func:`sensitivity_table` gathers the key estimates (framework contrasts and simple
  slopes) of each model and its variants in one long table;
- :func:`sensitivity_markdown` lays them side by side, one column per analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .analysis import ModelEntryError, parse_model_spec

__all__ = ["sensitivity_markdown", "sensitivity_table", "variant_entries"]

#: Keys of a model entry a variant may change.
VARIANT_KEYS = (
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
    "description",
)

TABLE_COLUMNS = [
    "model",
    "analysis",
    "changes",
    "method",
    "family",
    "flags",
    "kind",
    "variable",
    "level",
    "reference",
    "by",
    "estimate",
    "ci_low",
    "ci_high",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "ratio_kind",
    "p_value",
    "p_adjusted",
    "adjustment",
]


def _variant(name: str, base: str, models: Mapping, changes: Mapping) -> dict:
    if base not in models:
        raise ModelEntryError(
            f"sensitivity variant '{name}': model {base!r} is not one of the configured "
            f"models ({', '.join(models) or 'none'})."
        )
    unknown = sorted(set(changes) - set(VARIANT_KEYS))
    if unknown:
        raise ModelEntryError(
            f"sensitivity variant '{name}': unknown key(s) {', '.join(unknown)}; a variant "
            f"names its model and changes some of {', '.join(VARIANT_KEYS)}."
        )
    return {**models[base], **changes, "variant_of": base, "changes": dict(changes)}


def variant_entries(config: Mapping) -> dict[str, dict]:
    """Expand the ``sensitivity:`` section into one full model entry per variant.

    Parameters
    ----------
    config : mapping
        The run configuration (``models``, ``dropout`` and ``sensitivity``).

    Returns
    -------
    dict
        Variant name -> model entry (the base entry updated with the variant's changes,
        plus ``variant_of`` and ``changes``), generated dropout variants first.

    Raises
    ------
    ModelEntryError
        For an unknown base model or key, a name used twice, or a variant entry that
        :func:`resistance_outcomes.analysis.parse_model_spec` refuses.

    Examples
    --------
    >>> config = {"models": {"m": {"data": "clients", "family": "binomial",
    ...                            "formula": "dropout ~ framework + (1 | therapist)"}},
    ...           "dropout": {"primary": "judged",
    ...                       "definitions": {"judged": {}, "missed_last": {}}},
    ...           "sensitivity": {"dropout_definitions": ["m"],
    ...                           "variants": {"m_gee": {"model": "m", "method": "gee"}}}}
    >>> {name: entry["changes"] for name, entry in variant_entries(config).items()}
    {'m_dropout_missed_last': {'dropout': 'missed_last'}, 'm_gee': {'method': 'gee'}}
    """
    models = config.get("models") or {}
    section = config.get("sensitivity") or {}
    dropout = config.get("dropout") or {}
    out: dict[str, dict] = {}

    def add(name: str, entry: dict) -> None:
        if name in out or name in models:
            raise ModelEntryError(
                f"sensitivity variant '{name}': the name is already used by a model or "
                "another variant; rename the variant."
            )
        out[name] = entry

    for base in section.get("dropout_definitions") or []:
        own = (models.get(base) or {}).get("dropout", dropout.get("primary"))
        for definition in dropout.get("definitions", {}):
            if definition != own:
                add(
                    f"{base}_dropout_{definition}",
                    _variant(base, base, models, {"dropout": definition}),
                )
    for name, spec in (section.get("variants") or {}).items():
        if not isinstance(spec, Mapping) or "model" not in spec:
            raise ModelEntryError(
                f"sensitivity variant '{name}': give the model it varies, e.g. "
                "{model: rupture_frequency, family: poisson}."
            )
        changes = {k: v for k, v in spec.items() if k != "model"}
        add(name, _variant(name, spec["model"], models, changes))
    for name, entry in out.items():
        parse_model_spec(name, entry, dropout)
    return out


def _describe_changes(changes: Mapping) -> str:
    return "; ".join(f"{key}: {value}" for key, value in changes.items()) or "main analysis"


def sensitivity_table(analyses: Sequence[Mapping]) -> pd.DataFrame:
    """The key estimates of every model that has variants, for each of its analyses.

    Parameters
    ----------
    analyses : sequence of mapping
        One per fitted model or variant, each with ``name``, ``spec`` (the content of
        ``spec.json``), ``fit`` (of ``fit.json``) and ``contrasts`` (``contrasts.csv`` as
        a DataFrame). Models without any variant are left out.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: one row per analysis and contrast, the main
        analysis first, then the variants in the order given; ``flags`` lists
        non-convergence, singular fits or a model that could not be fitted.

    Examples
    --------
    >>> import pandas as pd
    >>> row = {"kind": "pairwise", "variable": "framework", "level": "a", "reference": "b",
    ...        "by": "", "estimate": 0.5, "ci_low": 0.1, "ci_high": 0.9, "ratio": 1.65,
    ...        "ratio_ci_low": 1.11, "ratio_ci_high": 2.46, "ratio_kind": "odds ratio",
    ...        "p_value": 0.01, "p_adjusted": 0.03, "adjustment": "holm"}
    >>> main = {"name": "m", "spec": {"variant_of": None, "changes": {}, "method": "mixed",
    ...         "family": "binomial"}, "fit": {"flags": []}, "contrasts": pd.DataFrame([row])}
    >>> gee = {"name": "m_gee", "spec": {"variant_of": "m", "changes": {"method": "gee"},
    ...        "method": "gee", "family": "binomial"}, "fit": {"flags": []},
    ...        "contrasts": pd.DataFrame([row])}
    >>> sensitivity_table([main, gee])[["model", "analysis", "changes"]]
      model analysis        changes
    0     m        m  main analysis
    1     m    m_gee    method: gee
    """
    bases = {a["spec"].get("variant_of") for a in analyses} - {None}
    rows = []
    for base in (a["name"] for a in analyses if a["name"] in bases):
        members = [a for a in analyses if a["name"] == base or a["spec"].get("variant_of") == base]
        for analysis in members:
            spec = analysis["spec"]
            contrasts = analysis["contrasts"]
            if contrasts is None or contrasts.empty:
                contrasts = pd.DataFrame([{}])  # one row showing the analysis and its flags
            frame = contrasts.assign(
                model=base,
                analysis=analysis["name"],
                changes=_describe_changes(spec.get("changes") or {}),
                method=spec.get("method"),
                family=spec.get("family"),
                flags="; ".join(analysis["fit"].get("flags", [])),
            )
            rows.append(frame.reindex(columns=TABLE_COLUMNS))
    if not rows:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    table = pd.concat(rows, ignore_index=True)
    text = ["variable", "level", "reference", "by", "ratio_kind"]
    table[text] = table[text].fillna("").astype(str)
    return table


def _cell(row: pd.Series) -> str:
    if pd.isna(row["estimate"]):
        return "not available"
    use_ratio = bool(row["ratio_kind"])
    keys = (
        ("ratio", "ratio_ci_low", "ratio_ci_high")
        if use_ratio
        else ("estimate", "ci_low", "ci_high")
    )
    value, low, high = (float(row[k]) for k in keys)
    mark = " †" if row["flags"] else ""
    return f"{value:.2f} [{low:.2f}, {high:.2f}]{mark}"


def _label(row: pd.Series) -> str:
    if row["kind"] == "pairwise":
        text = f"{row['level']} vs {row['reference']}"
    else:
        text = f"slope of {row['variable']}: {row['level']}"
    return f"{text} ({row['by']})" if row["by"] else text


def sensitivity_markdown(table: pd.DataFrame) -> str:
    """Lay the sensitivity table out side by side: one section per model, one column per
    analysis (main analysis first), one row per contrast.

    Cells are rate or odds ratios (or, for linear models, differences) with 95% CIs; †
    marks an analysis with a flag (not converged, singular fit, not fitted), listed under
    the section.

    Examples
    --------
    >>> print(sensitivity_markdown(sensitivity_table([])))
    # Sensitivity analyses
    <BLANKLINE>
    No model has a sensitivity variant.
    """
    lines = ["# Sensitivity analyses", ""]
    if table.empty:
        return "\n".join([*lines, "No model has a sensitivity variant."])
    for model, group in table.groupby("model", sort=False):
        analyses = list(dict.fromkeys(group["analysis"]))
        kind = group["ratio_kind"].replace("", np.nan).dropna()
        scale = f"{kind.iloc[0]}s" if len(kind) else "differences"
        lines += [
            f"## {model} ({scale}, 95% CI)",
            "",
            "| contrast | " + " | ".join(analyses) + " |",
            "| --- |" + " --- |" * len(analyses),
        ]
        estimates = group.dropna(subset=["kind"])
        for _, rows in estimates.groupby(
            ["kind", "variable", "level", "reference", "by"], sort=False
        ):
            cells = {r["analysis"]: _cell(r) for _, r in rows.iterrows()}
            label = _label(rows.iloc[0])
            lines.append(
                f"| {label} | " + " | ".join(cells.get(a, "not available") for a in analyses) + " |"
            )
        lines.append("")
        for analysis in analyses:
            first = group[group["analysis"] == analysis].iloc[0]
            lines.append(
                f"- {analysis}: {first['changes']}"
                + (f" († {first['flags']})" if first["flags"] else "")
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
