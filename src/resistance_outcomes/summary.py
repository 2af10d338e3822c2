"""The report's summary page: the results of the lab's own models, stated in sentences.

Every configured model gets its sentences from its own results: one per framework
contrast and per simple slope of its ``contrasts.csv``, named by the study's labels (the
outcome by the label of the model's response, predictors and frameworks by theirs; see
:mod:`resistance_outcomes.labels`). Config ``summary.models`` says which models lead the
page (default: every configured model, in config order); the others follow under "Other
models". A simple slope is reported per one unit of its predictor unless config
``summary.slopes`` gives a step and its unit (``repair_rate_between: {step: 0.1, unit: 10
percentage points}`` reports exp(0.1 b) "per 10 percentage points").

Then: flagged models, the influence of single therapists (the models' ``influence.csv``;
or that it was not computed, and for which mixed models), the validation outcome
(``results/validation/report.json``), the reliability gate
(``results/reliability/gate.json``; "not assessed" when there were no double-coded
sessions, never "met"), the optional parts of the analysis that had no data
(``results/data/vocabulary.json``'s stages) and, for simulated data, the recovery of the
truth. Nothing here parses Markdown.

A contrast its model could not identify (``estimable`` false) reads "not estimable" with
its reason, never a ratio.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .config import ConfigError
from .labels import (
    framework_words,
    group_label,
    level_label,
    lower_first,
    model_title,
    stage_words,
    variable_label,
    vocabulary_or_default,
)
from .power.report import power_section
from .publish import (
    _clean_contrasts,
    _decimals,
    _exp,
    _family,
    _flags,
    _p_phrase,
    _ratio_decimals,
    _reason_text,
)
from .tables import format_bounded, format_ci, format_number, format_p, suppress_count
from .vocabulary import Vocabulary, not_assessed_text

__all__ = ["influence_section", "leading_models", "summary_sentences"]

#: Optional parts of the analysis listed when they had no data (reliability has its own
#: section).
_PARTS = ("ruptures", "repair", "profile", "responses", "alliance", "psq")
_THERAPY_WORDS = ("therapy", "therapies", "treatment", "treatments")


def leading_models(
    requested: Sequence[str] | None,
    models: Sequence[str],
    key: str = "summary.models",
    config_file: str = "config/config.yaml",
) -> list[str]:
    """The models named by a config key (default: every configured model, in order).

    Raises
    ------
    ConfigError
        When a name is not a configured model, naming the key, the file and the models.

    Examples
    --------
    >>> leading_models(None, ["a", "b"]), leading_models(["b"], ["a", "b"])
    (['a', 'b'], ['b'])
    >>> leading_models(["c"], ["a", "b"])
    Traceback (most recent call last):
    ...
    resistance_outcomes.config.ConfigError: summary.models in config/config.yaml: 'c' is not \
a configured model (models: a, b). Name models of `models:`, or leave the key out for all.
    """
    if requested is None:
        return list(models)
    unknown = [name for name in requested if name not in models]
    if unknown:
        verb = "is not a configured model" if len(unknown) == 1 else "are not configured models"
        raise ConfigError(
            f"{key} in {config_file}: {', '.join(repr(n) for n in unknown)} {verb} "
            f"(models: {', '.join(models) or 'none'}). Name models of `models:`, or leave the "
            "key out for all."
        )
    return list(dict.fromkeys(requested))


# --------------------------------------------------------------------------- words


def _response(spec: Mapping) -> str:
    left = str(spec.get("formula", "")).split("~")[0].strip()
    inner = re.fullmatch(r"cbind\(\s*([^,]+),.*\)", left)
    return (inner[1] if inner else left).strip()


def _outcome(spec: Mapping, vocab: Vocabulary) -> str:
    response = _response(spec)
    return lower_first(vocab.label(response)) if response else "the response"


def _therapy(label: str) -> str:
    """A framework's words with "therapy" unless they already say it."""
    return label if label.lower().endswith(_THERAPY_WORDS) else f"{label} therapy"


def _slope_step(variable: str, slopes: Mapping) -> tuple[float, str]:
    """(step, unit) of a simple slope: config ``summary.slopes`` by the variable, or by its
    stem without ``_within``/``_between``; else one unit."""
    for key in (variable, re.sub(r"_(within|between)$", "", variable)):
        hint = slopes.get(key)
        if hint:
            step = float(hint.get("step", 1.0))
            unit = str(
                hint.get("unit") or ("unit" if step == 1 else f"{format_number(step)} units")
            )
            return step, unit
    return 1.0, "unit"


def _statistic_phrase(row: Mapping, facts, step: float = 1.0, per: str = "") -> tuple[str, float]:
    """ "OR = 0.83, 95% CI [0.65, 1.05], Holm-adjusted *p* = .331" and the value shown;
    with ``per``, "OR per <per> = ..."."""
    decimals = _decimals(step * row["std_error"])
    estimates = np.array([row["estimate"], row["ci_low"], row["ci_high"]], dtype=float) * step
    if facts.exponentiate:
        symbol, values = facts.ratio, _exp(estimates)
        decimals = _ratio_decimals(decimals, values[1])
    else:
        symbol, values = "*b*", estimates
    symbol += f" per {per}" if per else ""
    text = (
        f"{symbol} = {format_number(values[0], decimals)}, 95% CI "
        f"{format_ci(values[1], values[2], decimals)}, "
        f"{_p_phrase(row['p_adjusted'], row['adjustment'])}"
    )
    return text, float(values[0])


def _direction(value: float, facts) -> str:
    neutral = 1.0 if facts.exponentiate else 0.0
    return "higher" if value > neutral else "lower"


def _quantity(facts, outcome: str, direction: str | None = None) -> str:
    """'higher odds of dropout', 'a lower rate of ruptures', 'the mean alliance rating'."""
    if facts.link_name == "logit":
        return f"{direction} odds of {outcome}" if direction else f"the odds of {outcome}"
    noun = f"rate of {outcome}" if facts.link_name == "log" else f"mean {outcome}"
    return f"a {direction} {noun}" if direction else f"the {noun}"


def _capital(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _by(row: Mapping, vocab: Vocabulary) -> str:
    return lower_first(level_label(None, row["by"], vocab)) if row["by"] else ""


def _pairwise_sentence(row: Mapping, facts, outcome: str, alpha: float, vocab) -> str:
    factor = row["variable"] or None
    level = _therapy(lower_first(level_label(factor, row["level"], vocab)))
    reference = _therapy(lower_first(level_label(factor, row["reference"], vocab)))
    prefix = f"For {_by(row, vocab)}, " if row["by"] else ""
    if not row["estimable"]:
        return (
            f"{_capital(prefix + level)} compared with {reference}, "
            f"{_quantity(facts, outcome)}: not estimable: {_reason_text([row['note']])}."
        )
    stats, value = _statistic_phrase(row, facts)
    if row["p_adjusted"] < alpha:
        body = f"{level} had {_quantity(facts, outcome, _direction(value, facts))} than {reference}"
    else:
        body = (
            f"{_quantity(facts, outcome)} did not differ significantly between "
            f"{level.removesuffix(' therapy')} and {reference}"
        )
    return f"{_capital(prefix + body)} ({stats})."


def _slope_sentence(row: Mapping, facts, outcome: str, alpha: float, vocab, slopes) -> str:
    step, unit = _slope_step(row["variable"], slopes)
    label = lower_first(variable_label(row["variable"], vocab=vocab))
    if row.get("every_level"):
        where = "In every framework (the model has no framework interaction for it)"
    else:
        where = f"In {_therapy(framework_words(row['level'], vocab))}"
    if row["by"]:
        where += f" ({_by(row, vocab)})"
    if not row["estimable"]:
        return (
            f"{where}, the association of {label} with {_quantity(facts, outcome)}: "
            f"not estimable: {_reason_text([row['note']])}."
        )
    stats, value = _statistic_phrase(row, facts, step, per=unit)
    if row["p_adjusted"] < alpha:
        return (
            f"{where}, higher values of {label} were associated with "
            f"{_quantity(facts, outcome, _direction(value, facts))} ({stats})."
        )
    return (
        f"{where}, the association of {label} with {_quantity(facts, outcome)} was not "
        f"significant ({stats})."
    )


def _model_section(
    analysis: Mapping, alpha: float, vocab: Vocabulary, slopes: Mapping
) -> list[str]:
    spec, fit = analysis["spec"], analysis["fit"]
    name = analysis["name"]
    lines = [f"### {model_title(name, spec)}", ""]
    if fit.get("fitted") is False:
        return lines + [
            f"This model was not fitted: {fit.get('reason', 'no reason recorded').rstrip('.')}.",
            "",
        ]
    flags = _flags(fit)
    if flags:
        lines += [
            f"**Caution:** this model was flagged ({'; '.join(flags)}); its estimates may be "
            "unreliable.",
            "",
        ]
    contrasts = analysis.get("contrasts")
    if contrasts is None or contrasts.empty:
        return lines + [
            "This model has no framework contrasts or simple slopes (configure them under "
            "its `contrasts:` key); its estimates are in its publication table.",
            "",
        ]
    data = _clean_contrasts(contrasts, f"contrasts.csv of model '{name}'", fit)
    facts, outcome = _family(spec.get("family", "")), _outcome(spec, vocab)
    responses = list((spec.get("placeholders") or {}).get("responses", []))
    rows = data.to_dict("records")
    if responses:
        chosen = [r for r in rows if r["kind"] == "simple_slope" and r["variable"] in responses]
        rows = [r for r in rows if not any(r is c for c in chosen)]
    by_level = [r for r in rows if _rate_by_level(r, facts)]
    if by_level:
        rows = [r for r in rows if not _rate_by_level(r, facts)]
        lines += [f"- {s}" for s in _by_level_sentences(by_level, facts, alpha, vocab)]
    for row in _one_row_per_distinct_slope(rows):
        if row["kind"] == "pairwise":
            sentence = _pairwise_sentence(row, facts, outcome, alpha, vocab)
        else:
            sentence = _slope_sentence(row, facts, outcome, alpha, vocab, slopes)
        lines.append(f"- {sentence}")
    if responses:
        within = (spec.get("placeholders") or {}).get("within")
        units = lower_first(vocab.label(within)) if within else "rupture segments"
        said = _response_sentences(chosen, facts, outcome, units, alpha, vocab)
        lines += [f"- {sentence}" for sentence in said]
    variation = _variation_sentence(analysis.get("intervals"), facts, vocab)
    if variation:
        lines.append(f"- {variation}")
    return lines + [""]


def _variation_sentence(intervals, facts, vocab: Vocabulary) -> str:
    """The random intercepts' SDs, the ICC and each grouping factor's share of variance
    with their profile-likelihood intervals (intervals.csv), in one sentence; empty
    without them.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.publish import _family
    >>> rows = pd.DataFrame({
    ...     "parameter": [".sig01", ".sig02", "ICC", "VPC (therapist:client)", "VPC (therapist)"],
    ...     "group": ["therapist:client", "therapist", "", "therapist:client", "therapist"],
    ...     "term": ["sd (Intercept)"] * 2 + ["ICC", "share", "share"],
    ...     "estimate": [0.42, 0.30, 0.19, 0.12, 0.07], "ci_low": [0.35, 0.21, 0.15, 0.09, 0.04],
    ...     "ci_high": [0.50, 0.41, 0.24, 0.16, 0.12]})
    >>> print(_variation_sentence(rows, _family("negative_binomial"),
    ...                           vocabulary_or_default(None)))  # doctest: +NORMALIZE_WHITESPACE
    Variation of the intercepts (log-rate scale) between clients within therapists, SD 0.42,
      95% CI [0.35, 0.50] and therapists, SD 0.30, 95% CI [0.21, 0.41]; latent-scale ICC
      .19, 95% CI [.15, .24], of which between therapists .07, 95% CI [.04, .12] and
      between clients within therapists .12, 95% CI [.09, .16] (profile-likelihood
      intervals).
    """
    if intervals is None or intervals.empty:
        return ""
    rows = intervals.to_dict("records")
    sds = [
        r for r in rows
        if str(r["parameter"]).startswith(".sig") and str(r["term"]) == "sd (Intercept)"
    ]  # fmt: skip
    if not sds:
        return ""
    scale = f" ({facts.estimate_scale} scale)" if facts.estimate_scale else ""
    parts = []
    for r in sds:
        decimals = 2 if r["estimate"] >= 0.1 or r["estimate"] == 0 else 3
        parts.append(
            f"{_units_between(r['group'], vocab)}, SD "
            f"{format_number(r['estimate'], decimals)}, 95% CI "
            f"{format_ci(r['ci_low'], r['ci_high'], decimals)}"
        )
    text = f"Variation of the intercepts{scale} between {_and_list(parts)}"
    icc = [r for r in rows if str(r["parameter"]).startswith("ICC")]
    if len(icc) == 1:
        latent = "latent-scale " if facts.estimate_scale else ""
        text += f"; {latent}ICC {_bounded_with_ci(icc[0])}"
        shares = [r for r in rows if str(r["parameter"]).startswith("VPC")]
        shares.sort(key=lambda r: str(r["group"]).count(":"))  # outermost factor first
        if shares:
            text += ", of which " + _and_list(
                [f"between {_units_between(r['group'], vocab)} {_bounded_with_ci(r)}"
                 for r in shares]
            )  # fmt: skip
    return text + " (profile-likelihood intervals)."


def _units_between(group, vocab: Vocabulary) -> str:
    """``therapists`` or ``clients within therapists``: a grouping factor in a sentence."""
    units = lower_first(group_label(str(group), vocab))
    inner, _, outer = units.partition(" within ")
    return f"{inner}s within {outer}s" if outer else f"{units}s"


def _bounded_with_ci(row) -> str:
    return (
        f"{format_bounded(row['estimate'])}, 95% CI "
        f"[{format_bounded(row['ci_low'])}, {format_bounded(row['ci_high'])}]"
    )


def _response_sentences(
    rows: list[dict], facts, outcome: str, units: str, alpha: float, vocab: Vocabulary
) -> list[str]:
    """The per-framework slopes of 0/1 response predictors (a model on the
    ``rupture_segments`` level), framework by framework: one sentence per response with an
    adjusted p below ``alpha``, one per response not estimable, then one naming the
    responses without a clear association.

    Examples
    --------
    >>> from resistance_outcomes.publish import _family
    >>> row = {"kind": "simple_slope", "variable": "response_reframe", "level": "cognitive",
    ...        "by": "", "estimable": True, "estimate": 0.88, "std_error": 0.2,
    ...        "ci_low": 0.49, "ci_high": 1.27, "p_adjusted": 0.0001, "adjustment": "holm"}
    >>> calm = {**row, "variable": "response_calm", "estimate": 0.1, "ci_low": -0.3,
    ...         "ci_high": 0.5, "p_adjusted": 0.6}
    >>> for s in _response_sentences([row, calm], _family("binomial"), "repaired ruptures",
    ...                              "ruptures", 0.05, vocabulary_or_default(None)):
    ...     print(s)  # doctest: +NORMALIZE_WHITESPACE
    In cognitive therapy, ruptures met with response reframe had higher odds of repaired
      ruptures (OR = 2.41, 95% CI [1.63, 3.56], Holm-adjusted *p* < .001).
    In cognitive therapy, response calm showed no clear association with the odds of
      repaired ruptures (adjusted *p* >= .05).
    """
    out = []
    rows = _one_row_per_distinct_slope(rows)  # no framework interaction: stated once
    frameworks = vocab.order(dict.fromkeys(str(r["level"]) for r in rows))
    groups = [
        (
            f"In {_therapy(framework_words(framework, vocab))}",
            [r for r in rows if str(r["level"]) == framework and not r.get("every_level")],
        )
        for framework in frameworks
    ]
    every = [r for r in rows if r.get("every_level")]
    if every:
        groups.append(("In every framework (no framework interaction in the model)", every))
    for where, mine in groups:
        unclear = []
        for row in mine:
            label = lower_first(variable_label(row["variable"], vocab=vocab))
            if not row["estimable"]:
                out.append(
                    f"{where}, the association of {label} with {_quantity(facts, outcome)}: "
                    f"not estimable: {_reason_text([row['note']])}."
                )
            elif row["p_adjusted"] < alpha:
                stats, value = _statistic_phrase(row, facts)
                direction = _direction(value, facts)
                out.append(
                    f"{where}, {units} met with {label} had "
                    f"{_quantity(facts, outcome, direction)} ({stats})."
                )
            else:
                unclear.append(label)
        if unclear:
            out.append(
                f"{where}, {_and_list(unclear)} showed no clear association with "
                f"{_quantity(facts, outcome)} (adjusted *p* >= {format_bounded(alpha)})."
            )
    return out


def _and_list(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _rate_by_level(row: Mapping, facts) -> bool:
    """A framework comparison of a rate within a level of a second factor (a form or type
    of the profile, ``contrasts: {by: ...}``)."""
    return row["kind"] == "pairwise" and bool(row["by"]) and facts.link_name == "log"


def _as_more_frequent(row: Mapping) -> dict:
    """The comparison turned so that its rate ratio is at least 1 (the more frequent side
    first)."""
    if row["estimate"] >= 0:
        return dict(row)
    return {
        **row,
        "level": row["reference"],
        "reference": row["level"],
        "estimate": -row["estimate"],
        "ci_low": -row["ci_high"],
        "ci_high": -row["ci_low"],
    }


def _by_level_sentences(rows: list[dict], facts, alpha: float, vocab: Vocabulary) -> list[str]:
    """Framework comparisons of a rate within each level of a second factor (the forms or
    types of the profile), labelled from the vocabulary: one sentence per level with its
    significant differences, largest first, "<level> occurred 1.8 times as often in
    <framework> as in <framework> therapy (IRR = ...) and 1.5 times as often in ...";
    then one sentence naming the levels without a significant difference. A comparison
    that is not estimable says so.

    Examples
    --------
    >>> from resistance_outcomes.publish import _family
    >>> from resistance_outcomes.vocabulary import ConstructInfo
    >>> vocab = Vocabulary(constructs={"covert": ConstructInfo(
    ...     "covert", "Covert resistance", "count", "sum_of")})
    >>> row = {"kind": "pairwise", "variable": "framework", "level": "cognitive",
    ...        "reference": "psychoanalytic", "by": "covert", "estimable": True,
    ...        "estimate": -0.59, "std_error": 0.1, "ci_low": -0.79, "ci_high": -0.39,
    ...        "p_adjusted": 0.0001, "adjustment": "holm"}
    >>> overt = {**row, "by": "overt", "estimate": 0.05, "ci_low": -0.15, "ci_high": 0.25,
    ...          "p_adjusted": 0.6}
    >>> behavioral = {**row, "level": "behavioral", "estimate": -0.3, "ci_low": -0.5,
    ...               "ci_high": -0.1, "p_adjusted": 0.01}
    >>> for s in _by_level_sentences([row, overt, behavioral], _family("poisson"), 0.05,
    ...                              vocab):
    ...     print(s)  # doctest: +NORMALIZE_WHITESPACE
    Covert resistance occurred 1.80 times as often in psychoanalytic as in cognitive
      therapy (IRR = 1.80, 95% CI [1.48, 2.20], Holm-adjusted *p* < .001) and 1.35 times as
      often in psychoanalytic as in behavioral therapy (IRR = 1.35, 95% CI [1.11, 1.65],
      Holm-adjusted *p* = .010).
    No framework difference was significant for overt (every adjusted *p* >= .05).
    """
    levels = list(dict.fromkeys(str(r["by"]) for r in rows))
    out, alike = [], []
    for level in levels:
        label = level_label(None, level, vocab)
        mine = [r for r in rows if str(r["by"]) == level]
        for row in mine:
            if not row["estimable"]:
                level_words = framework_words(row["level"], vocab)
                reference = _therapy(framework_words(row["reference"], vocab))
                out.append(
                    f"{label}, {level_words} compared with {reference}: not estimable: "
                    f"{_reason_text([row['note']])}."
                )
        shown = [_as_more_frequent(r) for r in mine if r["estimable"] and r["p_adjusted"] < alpha]
        if not shown and all(r["estimable"] for r in mine):
            alike.append(lower_first(label))
            continue
        phrases = []
        for row in sorted(shown, key=lambda r: -abs(r["estimate"])):
            stats, _ = _statistic_phrase(row, facts)
            times = stats.split(" = ", 1)[1].split(",", 1)[0]
            more = framework_words(row["level"], vocab)
            less = _therapy(framework_words(row["reference"], vocab))
            phrases.append(f"{times} times as often in {more} as in {less} ({stats})")
        if phrases:
            out.append(f"{label} occurred {_and_list(phrases)}.")
    if alike:
        out.append(
            f"No framework difference was significant for {_and_list(alike)} (every "
            f"adjusted *p* >= {format_bounded(alpha)})."
        )
    return out


def _one_row_per_distinct_slope(rows: list[dict]) -> list[dict]:
    """Slopes equal in every framework (no framework interaction) as one row, marked
    ``every_level``; other rows as they are.

    Examples
    --------
    >>> rows = [{"kind": "simple_slope", "variable": "x", "by": "", "level": lv,
    ...          "estimate": 0.5, "std_error": 0.1} for lv in ("a", "b")]
    >>> [(r["level"], r.get("every_level")) for r in _one_row_per_distinct_slope(rows)]
    [('a', True)]
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["kind"] == "simple_slope":
            groups.setdefault((row["variable"], row["by"]), []).append(row)
    out, done = [], set()
    for row in rows:
        key = (row.get("variable"), row.get("by"))
        if row["kind"] != "simple_slope" or key in done:
            if row["kind"] != "simple_slope":
                out.append(row)
            continue
        group = groups[key]
        same = len(group) > 1 and all(
            np.isclose(r["estimate"], group[0]["estimate"], rtol=1e-10, atol=1e-12)
            and np.isclose(r["std_error"], group[0]["std_error"], rtol=1e-10, atol=1e-12)
            for r in group
        )
        if same:
            out.append({**group[0], "every_level": True})
            done.add(key)
        else:
            out.append(row)
    return out


# --------------------------------------------------------------------------- other sections


def _residual_check_lines(analyses: Sequence[Mapping]) -> list[str]:
    """The simulated-residual tests that failed, one line per model (models whose
    folder has ``diagnostics.json``)."""
    from .models.residuals import TEST_NAMES

    checked = [a for a in analyses if (a.get("diagnostics") or {}).get("assessed")]
    if not checked:
        return []
    failed = []
    for a in checked:
        tests = [t for t in a["diagnostics"].get("tests", []) if t.get("flagged")]
        if tests:
            parts = ", ".join(
                f"{TEST_NAMES.get(t['test'], t['test'])} {_p_phrase(t['p_value'])}" for t in tests
            )
            failed.append(f"- {model_title(a['name'])}: {parts} (simulated residuals)")
    nsim = checked[0]["diagnostics"].get("nsim")
    how = f"{nsim} simulations per observation" if nsim else "simulations"
    if not failed:
        every = "the one model checked" if len(checked) == 1 else f"all {len(checked)} models"
        return [
            f"Simulated residuals ({how}): no uniformity, dispersion, zero-inflation or "
            f"outlier test at p < .05 in {every}. {_simulation_sentence(checked)}",
            "",
        ]
    return [
        f"Models whose simulated residuals ({how}) fail a test at p < .05 (check the "
        "family, the random part or missing predictors; see their diagnostics figures):",
        "",
        *failed,
        "",
        _simulation_sentence(checked),
        "",
    ]


def _simulation_sentence(checked: Sequence[Mapping]) -> str:
    """How the checked models' simulations drew the random effects (``diagnostics.json``:
    ``conditional``, ``simulation_reason``), naming the models whose conditional modes
    were kept for a reason of their own (rows that exist only while at risk)."""
    kept = [a for a in checked if a["diagnostics"].get("conditional")]
    if not kept:
        return "Each simulation draws new random effects."
    if len(kept) == len(checked):
        return "The simulations keep the random effects' conditional modes."
    names = _and_list([model_title(a["name"]) for a in kept])
    own = all(a["diagnostics"].get("simulation_reason", "as requested") != "as requested"
              for a in kept)  # fmt: skip
    why = ", whose rows exist only while a client is at risk" if own else ""
    return (
        f"Each simulation draws new random effects, except for {names}{why}: there the "
        "conditional modes are kept."
    )


def _flag_section(analyses: Sequence[Mapping]) -> list[str]:
    return _convergence_lines(analyses) + _residual_check_lines(analyses)


def _convergence_lines(analyses: Sequence[Mapping]) -> list[str]:
    lines = ["## Model checks", ""]
    if not analyses:
        return lines + ["No model was part of this run.", ""]
    flagged = [
        (model_title(a["name"]), _flags(a["fit"]), a["fit"].get("reason"))
        for a in analyses
        if _flags(a["fit"])
    ]
    if not flagged:
        every = (
            "The one fitted model"
            if len(analyses) == 1
            else f"All {len(analyses)} fitted models (sensitivity variants included)"
        )
        return lines + [f"{every} converged without a singular fit.", ""]
    lines += ["Flagged models (read their estimates with caution):", ""]
    for title, flags, reason in flagged:
        why = f": {reason}" if reason else ""
        lines.append(f"- {title}: {'; '.join(flags)}{why}")
    others = len(analyses) - len(flagged)
    if not others:
        return lines + [""]
    rest = "The other model" if others == 1 else f"The other {others} models and variants"
    return lines + ["", f"{rest} converged without a singular fit.", ""]


def _count_words(n: int, one: str, many: str, min_cell: int | None = None) -> str:
    shown = suppress_count(n, min_cell) if min_cell else format_number(n, 0)
    return f"{shown} {one if n == 1 else many}"


def _validation_section(validation: Mapping | None, min_cell: int) -> list[str]:
    lines = ["## Data validation", ""]
    if not validation:
        return lines + ["No validation outcome was given.", ""]
    tables = validation.get("tables", [])
    read = sum(int(t.get("rows_read") or 0) for t in tables)
    quarantined = validation.get("quarantined") or {}
    set_aside = quarantined.get("rows")
    if set_aside is None:
        set_aside = sum(int(t.get("rows_set_aside") or 0) for t in tables)
    per_table = "; ".join(
        f"{lower_first(str(t['table']).replace('_', ' '))} "
        f"{suppress_count(int(t.get('rows_read') or 0), min_cell)}"
        for t in tables
    )
    mode = f" ({validation['mode']} mode)" if validation.get("mode") else ""
    problems = int(validation.get("problems", 0))
    found = (
        "no problems were found"
        if not problems
        else f"{_count_words(problems, 'problem was', 'problems were')} found"
    )
    aside = (
        "no rows were set aside"
        if not set_aside
        else f"{suppress_count(set_aside, min_cell)} rows were set aside in the quarantine table"
    )
    lines.append(
        f"Validation{mode} read {suppress_count(read, min_cell)} rows from {len(tables)} "
        f"files ({per_table}); {found} and {aside}."
    )
    extra = []
    if quarantined.get("cells"):
        extra.append(
            f"{_count_words(quarantined['cells'], 'bad cell was', 'bad cells were')} set to "
            "missing in rows that stayed usable"
        )
    if quarantined.get("clients"):
        extra.append(
            f"{_count_words(quarantined['clients'], 'client was', 'clients were', min_cell)} "
            "set aside as a whole"
        )
    missing = sum(int(m.get("cells") or 0) for m in validation.get("missing_values") or [])
    if missing:
        extra.append(
            f"declared missing-value codes made {_count_words(missing, 'value', 'values')} missing"
        )
    dropped = validation.get("dropped_identifier_columns") or []
    if dropped:
        extra.append(
            f"{_count_words(len(dropped), 'column was', 'columns were')} dropped as possible "
            "identifiers (named in the validation report)"
        )
    if extra:
        lines[-1] += " " + _capital("; ".join(extra)) + "."
    return lines + [""]


def _gate_entry(entry: Mapping) -> str:
    label, statistic = entry.get("label"), entry.get("statistic")
    value, minimum = entry.get("value"), entry.get("minimum")
    if label and statistic and value is not None and minimum is not None:
        return (
            f"{label}: {statistic} = {format_bounded(float(value))}, below the minimum "
            f"{format_bounded(float(minimum))}"
        )
    return str(entry.get("message", "")).rstrip(".")


def _gate_section(gate: Mapping | None, vocab: Vocabulary) -> list[str]:
    lines = ["## Reliability", ""]
    stage = vocab.stages.get("reliability")
    what = stage_words("reliability", vocab)
    if gate is not None and gate.get("assessed") is False:
        reason = gate.get("reason") or (stage.reason if stage else "") or "nothing to assess"
        return lines + [f"{what}: not assessed ({reason}).", ""]
    if stage is not None and not stage.assessed:
        return lines + [not_assessed_text(stage, what), ""]
    if not gate:
        return lines + ["No reliability analysis was part of this run.", ""]
    below = [b if isinstance(b, Mapping) else {"message": str(b)} for b in gate.get("below", [])]
    mode = gate.get("mode", "warn")
    if not below:
        return lines + [
            f"Reliability gate ({mode} mode): every construct met its configured minimum.",
            "",
        ]
    went_on = "the run went on" if mode == "warn" else "the run stopped"
    lines += [
        f"Reliability gate ({mode} mode): {len(below)} construct(s) below the configured "
        f"minimum ({went_on}; interpret them with care):",
        "",
    ]
    return lines + [f"- {_gate_entry(entry)}" for entry in below] + [""]


def _parts_section(vocab: Vocabulary) -> list[str]:
    missing = [
        not_assessed_text(vocab.stages[name], stage_words(name, vocab))
        for name in _PARTS
        if name in vocab.stages and not vocab.stages[name].assessed
    ]
    if not missing:
        return []
    return ["## Parts of the analysis without data", "", *[f"- {m}" for m in missing], ""]


def _recovery_section(recovery: Mapping | None, vocab: Vocabulary) -> list[str]:
    if not recovery:
        return []
    inside, total = recovery["inside_ci"], recovery["fixed_effects_with_truth"]
    share = format_number(100 * recovery["share_inside_ci"], 1)
    target = format_number(100 * recovery["target"], 0)
    met = "met" if recovery["meets_target"] else "not met"
    lines = [
        "## Recovery of the simulated truth",
        "",
        f"The example data are simulated. {inside} of {total} true fixed effects "
        f"({share}%) lay inside their 95% CIs (target {target}%: {met}).",
    ]
    pattern = recovery.get("repair_effect")
    if pattern:
        slope = lower_first(variable_label(pattern["slope"], vocab=vocab))
        signs = "matched" if pattern["signs_match"] else "did not all match"
        strongest = (
            "was also the strongest estimated"
            if pattern["pattern_matches"]
            else f"was not; the strongest estimated was "
            f"{framework_words(pattern['strongest_estimated'], vocab)}"
        )
        lines[-1] += (
            f" The signs of the per-framework slopes of {slope} {signs} the truth; "
            f"the framework with the strongest true slope "
            f"({framework_words(pattern['strongest_true'], vocab)}) {strongest}."
        )
    return lines + [""]


# --------------------------------------------------------------------------- influence


def _influence_target(row: Mapping, vocab: Vocabulary) -> str:
    """'the difference between psychoanalytic and cognitive therapy', 'the slope of repair
    rate (between clients) in behavioral therapy' (with ' (for <by level>)'); a slope with
    ``every_level`` is common to all frameworks."""
    by = f" (for {lower_first(level_label(None, row['by'], vocab))})" if row["by"] else ""
    if row["kind"] == "pairwise":
        factor = row["variable"] or None
        level = _therapy(lower_first(level_label(factor, row["level"], vocab)))
        reference = _therapy(lower_first(level_label(factor, row["reference"], vocab)))
        return f"the difference between {level.removesuffix(' therapy')} and {reference}{by}"
    label = lower_first(variable_label(row["variable"], vocab=vocab))
    if row.get("every_level"):
        return (
            f"the slope of {label}{by}, common to all frameworks (the model has no framework "
            "interaction for it),"
        )
    return f"the slope of {label} in {_therapy(framework_words(row['level'], vocab))}{by}"


def _common_slopes_once(changes, table):
    """``changes`` with each slope that is the same in every framework (the model has no
    framework interaction for it: :func:`_one_row_per_distinct_slope` on the full fit's
    estimates) kept at one framework only, marked ``every_level``; other rows as they are."""
    first = table[table["left_out"] == table["left_out"].iloc[0]]
    slopes = [
        {**r, "estimate": r["estimate_full"], "std_error": r["std_error_full"]}
        for r in first[first["kind"] == "simple_slope"].to_dict("records")
    ]
    common = {
        (r["variable"], r["by"]): r["level"]
        for r in _one_row_per_distinct_slope(slopes)
        if r.get("every_level")
    }
    if not common:
        return changes.assign(every_level=False)
    keys = list(zip(changes["variable"], changes["by"], strict=True))
    shared = (changes["kind"] == "simple_slope").to_numpy() & np.array(
        [k in common for k in keys], dtype=bool
    )
    first_level = changes["level"].to_numpy() == np.array(
        [common.get(k) for k in keys], dtype=object
    )
    kept = ~shared | first_level
    return changes[kept].assign(every_level=shared[kept])


def _influence_sentence(rows: list[dict], title: str, n_levels: int, vocab: Vocabulary) -> str:
    """The left-out groups that change one main result the same way, in words: one group
    with its p value, several with the range of theirs (up to 10 named)."""
    first = rows[0]
    group = first["group"]
    target = _influence_target(first, vocab)
    labels = [str(r["left_out"]) for r in rows]
    p_values = [float(r["p_value"]) for r in rows]
    if len(rows) == 1:
        who = f"{group} {labels[0]}"
        adjusted = _p_phrase(p_values[0], first["adjustment"])
    else:
        named = labels if len(labels) <= 10 else [*labels[:10], f"{len(labels) - 10} others"]
        who = f"any one of {group}s {_and_list(named)} ({len(labels)} of {n_levels})"
        low, high = _p_phrase(min(p_values), first["adjustment"]), format_p(max(p_values))
        adjusted = f"{low} to {high} without one of them"
    full = f"{adjusted}; with every {group}: {format_p(first['p_full'])}"
    if first["significance_changed"] == "lost":
        change = f"from significant to not ({full})"
    elif first["significance_changed"] == "gained":
        change = f"from not significant to significant ({full})"
    else:
        estimates = _and_list([format_number(r["estimate"], 3) for r in rows])
        change = (
            f"in sign: the estimate turns from {format_number(first['estimate_full'], 3)} to "
            f"{estimates} on the model's scale ({adjusted})"
        )
    return f"Leaving out {who} changes {target} in the model of {lower_first(title)} {change}."


def influence_section(
    influence: Sequence[Mapping],
    alpha: float = 0.05,
    vocab: Vocabulary | None = None,
    models: Sequence[Mapping] | None = None,
) -> list[str]:
    """The summary's lines on single groups (therapists): one sentence per left-out group
    that moves a main result (a framework contrast or simple slope) across ``alpha`` or
    reverses the sign of a significant one
    (:func:`resistance_outcomes.influence.influential_changes`), and one saying plainly
    which models no single group changes; failed refits are counted. A slope the model has
    no framework interaction for (the same in every framework) is stated once. Without
    influence tables: one sentence saying it was not computed and how to switch it on
    (config ``influence:``); with ``models``, the fitted mixed models without a table are
    named (config ``influence.models``).

    Parameters
    ----------
    influence : sequence of mapping
        Per model: ``name``, ``spec`` (its spec.json) and ``table`` (its influence.csv).
    alpha : float
    vocab : Vocabulary, optional
    models : sequence of mapping, optional
        The run's models (``name``, ``spec``, ``fit``), to name the mixed models that were
        not refitted; without them nothing is said of models without a table, and an empty
        ``influence`` gives no section.

    Examples
    --------
    >>> import pandas as pd
    >>> row = {"group": "therapist", "left_out": "T07", "kind": "pairwise", "term": "p - c",
    ...        "variable": "framework", "level": "psychoanalytic", "reference": "cognitive",
    ...        "by": "", "main": True, "p_full": 0.03, "p_value": 0.08, "adjustment": "holm",
    ...        "estimate_full": 0.5, "estimate": 0.3, "sign_changed": False,
    ...        "significance_changed": "lost", "failed": False}
    >>> lines = influence_section([{"name": "m", "spec": {"description": "Dropout"},
    ...                             "table": pd.DataFrame([row])}])
    >>> print(lines[2])  # doctest: +NORMALIZE_WHITESPACE
    - Leaving out therapist T07 changes the difference between psychoanalytic and cognitive
      therapy in the model of dropout from significant to not (Holm-adjusted *p* = .080;
      with every therapist: .030).
    """
    from .influence import influential_changes

    vocab = vocabulary_or_default(vocab)
    tables = [e for e in influence if e.get("table") is not None and not e["table"].empty]
    refittable = _refittable(models or [])
    if not tables:
        if not influence and (models is None or not refittable):
            return []
        return ["## Influence of single therapists", "", *_influence_left_out(
            influence, refittable, models or []
        ), ""]  # fmt: skip
    groups = {str(e["table"]["group"].iloc[0]) for e in tables}
    group = groups.pop() if len(groups) == 1 else "group"
    heading = f"## Influence of single {group}s"
    sentences, quiet, failed = [], [], 0
    for entry in tables:
        table = entry["table"]
        title = model_title(entry["name"], entry.get("spec"))
        failed += int(table.loc[table["failed"].astype(bool), "left_out"].nunique())
        changes = influential_changes(table, alpha).fillna({"by": "", "reference": ""})
        changes = _common_slopes_once(changes, table.fillna({"by": ""}))
        if changes.empty:
            quiet.append(f"{lower_first(title)} ({table['left_out'].nunique()} refits)")
        n_levels = table["left_out"].nunique()
        how = changes["significance_changed"].where(changes["significance_changed"] != "", "sign")
        for _, same in changes.assign(_how=how).groupby(["term", "_how"], sort=False):
            rows = same.to_dict("records")
            sentences.append(f"- {_influence_sentence(rows, title, n_levels, vocab)}")
    lines = [heading, "", *sentences]
    if quiet:
        lines += [""] if sentences else []
        lines.append(
            f"No single {group} left out moves a framework contrast or slope of the "
            f"model{'s' if len(quiet) > 1 else ''} of {_and_list(quiet)} across the "
            f"significance threshold ({format_bounded(alpha)}) or reverses the sign of a "
            "significant one."
        )
    if failed:
        lines += [
            "",
            f"{_count_words(failed, 'refit', 'refits')} without one {group} failed (named, "
            "with the reason, in the models' influence.csv).",
        ]
    left_out = _influence_left_out(influence, refittable, models or [])
    if left_out:
        lines += ["", *left_out]
    return lines + [""]


def _refittable(models: Sequence[Mapping]) -> list[str]:
    """Names of the fitted mixed models (not sensitivity variants): those leaving one
    therapist out can refit."""
    return [
        m["name"]
        for m in models
        if not (m.get("spec") or {}).get("variant_of")
        and (m.get("spec") or {}).get("method", "mixed") == "mixed"
        and (m.get("fit") or {}).get("fitted") is not False
    ]


def _influence_left_out(
    influence: Sequence[Mapping], refittable: Sequence[str], models: Sequence[Mapping]
) -> list[str]:
    """What the influence section says of models without leave-one-out refits: that none
    was computed and how to switch it on, or which models were left out (not under
    ``influence.models``, or with an empty table), by their names in words (as the model
    checks name them; their descriptions are long)."""
    entries = {e["name"]: e for e in influence}
    if not entries:
        return [
            "The influence of single therapists was not computed in this run; add "
            "`influence: {group: therapist}` to the config to refit the summary's models "
            "once without each therapist (`models: all` for every mixed model; "
            "config/README.md)."
        ]
    by_name = {m["name"]: m for m in models}

    def title(name: str) -> str:  # the name in words, as the model checks list them
        return lower_first(model_title(name))

    out = []
    empty = [name for name, e in entries.items() if e.get("table") is None or e["table"].empty]
    if empty:
        why = [
            f"{title(name)} (not fitted)"
            if ((by_name.get(name) or {}).get("fit") or {}).get("fitted") is False
            else f"{title(name)} (see results/logs/influence/{name}.log)"
            for name in empty
        ]
        plural = "s" if len(empty) > 1 else ""
        out.append(f"No leave-one-out refits for the model{plural} {_and_list(why)}.")
    others = [name for name in refittable if name not in entries]
    if others:
        plural = len(others) > 1
        out.append(
            f"Not computed for the model{'s' if plural else ''} "
            f"{_and_list([title(n) for n in others])}; name {'them' if plural else 'it'} "
            "under `influence.models`, or give `models: all`."
        )
    return out


# --------------------------------------------------------------------------- the page


def summary_sentences(
    analyses: Sequence[Mapping],
    validation: Mapping | None = None,
    reliability_gate: Mapping | None = None,
    recovery: Mapping | None = None,
    *,
    leading: Iterable[str] | None = None,
    slopes: Mapping[str, Mapping] | None = None,
    vocab: Vocabulary | None = None,
    alpha: float = 0.05,
    min_cell: int = 5,
    power: Sequence[Mapping] | None = None,
    power_elsewhere: Sequence[str] = (),
    influence: Sequence[Mapping] | None = None,
) -> str:
    """The report's summary page: every model's results in sentences made from the numbers.

    For each model (the ``leading`` ones under "Main results", the others under "Other
    models"), one sentence per contrast of its ``contrasts.csv``: framework comparisons and
    simple slopes with the ratio (odds or incidence-rate ratio; b for linear models), its
    95% CI and the adjusted p. A contrast is called an association ("were associated with
    lower odds") only when its adjusted p is below ``alpha``; otherwise the sentence says it
    was not significant. A contrast that is not estimable says so, with its reason.

    Parameters
    ----------
    analyses : sequence of mapping
        Every fitted model and sensitivity variant, each with ``name``, ``spec``, ``fit``
        and ``contrasts`` (as :func:`resistance_outcomes.results.read_model_folder`
        returns). Variants (with ``spec["variant_of"]``) enter the model checks only.
    validation : mapping, optional
        ``results/validation/report.json``
        (:func:`resistance_outcomes.results.validation_summary`).
    reliability_gate : mapping, optional
        ``results/reliability/gate.json``: ``mode``, ``assessed``, ``reason``, ``below``.
    recovery : mapping, optional
        ``results/recovery/summary.json``.
    leading : iterable of str, optional
        Models under "Main results", in order (config ``summary.models``); default every
        model, in the order given.
    slopes : mapping, optional
        Variable (or its stem without ``_within``/``_between``) -> ``{step, unit}``: report
        its slopes per ``step`` units, named ``unit`` (config ``summary.slopes``).
    vocab : Vocabulary, optional
        The study's vocabulary: labels, framework names and which stages had data.
    alpha : float, default 0.05
        Level for calling an adjusted p significant.
    min_cell : int, default 5
        Smallest count shown.
    power : sequence of mapping, optional
        Power analyses of the run, as
        :func:`resistance_outcomes.power.report.power_section` takes them.
    power_elsewhere : sequence of str
        Names of configured power analyses that are not part of the run (``make power``);
        the summary says where their results are.
    influence : sequence of mapping, optional
        Leave-one-therapist-out results per model (:func:`influence_section`).

    Returns
    -------
    str
        Markdown.

    Examples
    --------
    >>> import pandas as pd
    >>> row = {"kind": "simple_slope", "variable": "repair_rate_between",
    ...        "level": "humanistic", "reference": "", "by": "", "estimate": -2.1,
    ...        "std_error": 0.75, "ci_low": -3.57, "ci_high": -0.63, "p_value": 0.005,
    ...        "p_adjusted": 0.015, "adjustment": "holm"}
    >>> model = {"name": "m", "fit": {"flags": []}, "contrasts": pd.DataFrame([row]),
    ...          "spec": {"family": "binomial", "formula": "dropout ~ framework * "
    ...                   "repair_rate_between + (1 | therapist)"}}
    >>> text = summary_sentences([model], slopes={"repair_rate": {"step": 0.1,
    ...                          "unit": "10 percentage points"}})
    >>> print(text.splitlines()[8])  # doctest: +NORMALIZE_WHITESPACE
    - In humanistic therapy, higher values of repair rate (between clients) were
      associated with lower odds of dropout (OR per 10 percentage points = 0.81, 95% CI
      [0.70, 0.94], Holm-adjusted *p* = .015).
    """
    vocab = vocabulary_or_default(vocab)
    slopes = dict(slopes or {})
    models = [a for a in analyses if not a["spec"].get("variant_of")]
    by_name = {a["name"]: a for a in models}
    leading = list(by_name) if leading is None else list(dict.fromkeys(leading))
    lines = [
        "# Summary of results",
        "",
        "The models estimate associations in observational data; they do not show that "
        "one variable causes another. Confidence intervals are 95% Wald intervals, not "
        "adjusted for multiplicity; p values are adjusted within each family of contrasts, "
        f"as named, and called significant below {format_bounded(alpha)}. Framework "
        "contrasts and slopes are evaluated with the other numeric predictors at 0 (their "
        "mean, for centred predictors).",
        "",
        "## Main results",
        "",
    ]
    stated = [name for name in leading if name in by_name]
    if not stated:
        named = ", ".join(model_title(n) for n in leading)
        lines += [
            f"None of the models named for the summary ({named}) was part of this run."
            if leading
            else "No model was part of this run.",
            "",
        ]
    for name in stated:
        lines += _model_section(by_name[name], alpha, vocab, slopes)
    others = [name for name in by_name if name not in stated]
    if others:
        lines += ["## Other models", ""]
        for name in others:
            lines += _model_section(by_name[name], alpha, vocab, slopes)
    lines += _flag_section(analyses)
    lines += influence_section(influence or [], alpha, vocab, models=models)
    lines += _validation_section(validation, min_cell)
    lines += _gate_section(reliability_gate, vocab)
    lines += _parts_section(vocab)
    lines += _recovery_section(recovery, vocab)
    if power:
        lines += power_section(power)
    elif power_elsewhere:
        lines += [
            "## Power analyses",
            "",
            f"The configured power analyses ({', '.join(power_elsewhere)}) are not part of "
            "this run: `make power` runs them and writes their sentences to "
            "results/power/summary.md.",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
