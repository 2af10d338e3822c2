"""Tests of resistance_outcomes.summary: the summary page's sentences.

Contrast rows are made up for the tests; the ratios in the expected sentences are computed
by hand (calculator, six decimals) and rounded half-up to the decimals shown, e.g. a repair
slope of b = -2.1 per unit reported per 10 percentage points is exp(0.1 x -2.1) =
exp(-0.21) = 0.810584 -> "0.81".
"""

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from resistance_outcomes import summary
from resistance_outcomes.config import ConfigError
from resistance_outcomes.vocabulary import ConstructInfo, FrameworkInfo, Stage, Vocabulary

SLOPES = {
    "repair_rate": {"step": 0.1, "unit": "10 percentage points"},
    "unrepaired": {"step": 1, "unit": "unrepaired rupture per session"},
}


def _slope_row(level, estimate, se, low, high, p_adjusted, adjustment="holm", **extra):
    return {"kind": "simple_slope", "variable": "repair_rate_between", "level": level,
            "reference": "", "by": "", "estimate": estimate, "std_error": se, "ci_low": low,
            "ci_high": high, "p_value": p_adjusted / 3, "p_adjusted": p_adjusted,
            "adjustment": adjustment, **extra}  # fmt: skip


def _pair_row(level, reference, estimate, se, low, high, p_adjusted, **extra):
    return {"kind": "pairwise", "variable": "framework", "level": level,
            "reference": reference, "by": "", "estimate": estimate, "std_error": se,
            "ci_low": low, "ci_high": high, "p_value": p_adjusted / 3,
            "p_adjusted": p_adjusted, "adjustment": "holm", **extra}  # fmt: skip


def _analyses():
    retention = {
        "name": "repair_retention",
        "spec": {"family": "binomial", "description": "Dropout and repair",
                 "formula": "dropout ~ framework * repair_rate_between + (1 | therapist)"},
        "fit": {"flags": []},
        "contrasts": pd.DataFrame([
            _slope_row("psychoanalytic", -0.5, 0.9, -2.264, 1.264, 0.58),
            _slope_row("cognitive", -2.1, 0.75, -3.57, -0.63, 0.015),
        ]),
    }  # fmt: skip
    frequency = {
        "name": "rupture_frequency",
        "spec": {"family": "negative_binomial", "formula": "ruptures ~ framework + (1 | t)"},
        "fit": {"flags": []},
        "contrasts": pd.DataFrame([
            _pair_row("psychoanalytic", "cognitive", 0.5528, 0.1384, 0.2814, 0.8241, 0.000196),
        ]),
    }  # fmt: skip
    hazard = {
        "name": "dropout_hazard",
        "spec": {"family": "binomial", "formula": "event ~ framework * unrepaired_within"},
        "fit": {"flags": ["singular fit"]},
        "contrasts": pd.DataFrame([_slope_row("behavioral", 0.2, 0.3, -0.388, 0.788, 0.5,
                                              "bh", variable="unrepaired_within")]),
    }  # fmt: skip
    variant = {"name": "repair_retention_gee", "spec": {"variant_of": "repair_retention"},
               "fit": {"flags": ["not converged"]}, "contrasts": pd.DataFrame()}  # fmt: skip
    return [retention, frequency, hazard, variant]


VALIDATION = {
    "mode": "lenient",
    "tables": [
        {"table": "clients", "rows_read": 360, "rows_kept": 358, "rows_set_aside": 2},
        {"table": "sessions", "rows_read": 3784, "rows_kept": 3784, "rows_set_aside": 0},
    ],
    "problems": 3,
}
GATE = {
    "mode": "warn",
    "assessed": True,
    "reason": "",
    "below": [{"construct": "ruptures", "label": "Ruptures", "statistic": "ICC(A,1)",
               "value": 0.62, "minimum": 0.75, "message": "ruptures: ICC(A,1) = 0.620 is "
               "below the minimum 0.75."}],
}  # fmt: skip
RECOVERY = {
    "fixed_effects_with_truth": 45, "inside_ci": 37, "share_inside_ci": 37 / 45,
    "target": 0.9, "meets_target": False,
    "repair_effect": {"slope": "unrepaired_within", "signs_match": True,
                      "strongest_true": "cognitive", "strongest_estimated": "cognitive",
                      "pattern_matches": True},
}  # fmt: skip
LEADING = ["repair_retention", "rupture_frequency", "dropout_hazard"]


def test_summary_states_results_from_the_numbers():
    text = summary.summary_sentences(
        _analyses(), VALIDATION, GATE, RECOVERY, leading=LEADING, slopes=SLOPES
    )
    # Repair slope per 10 percentage points: exp(0.1 b). Cognitive: exp(-0.21) = 0.810584,
    # exp(-0.357) = 0.699772, exp(-0.063) = 0.938943; adjusted p .015 < .05: an association.
    assert (
        "In cognitive therapy, higher values of repair rate (between clients) were associated "
        "with lower odds of dropout (OR per 10 percentage points = 0.81, 95% CI [0.70, 0.94], "
        "Holm-adjusted *p* = .015)." in text
    )
    # Psychoanalytic: exp(-0.05) = 0.951229, exp(-0.2264) = 0.797399, exp(0.1264) = 1.134736
    assert (
        "In psychoanalytic therapy, the association of repair rate (between clients) with the "
        "odds of dropout was not significant (OR per 10 percentage points = 0.95, 95% CI "
        "[0.80, 1.13], Holm-adjusted *p* = .580)." in text
    )
    # Framework contrast as an IRR: exp(0.5528) = 1.738113, exp(0.2814) = 1.324983,
    # exp(0.8241) = 2.279828; adjusted p .000196 -> "< .001".
    assert (
        "Psychoanalytic therapy had a higher rate of ruptures than cognitive therapy "
        "(IRR = 1.74, 95% CI [1.32, 2.28], Holm-adjusted *p* < .001)." in text
    )
    # Hazard slope per unit (the stem's hint applies to the within part), BH-adjusted:
    # exp(0.2) = 1.221403, exp(-0.388) = 0.678412, exp(0.788) = 2.198995
    assert (
        "In behavioral therapy, the association of unrepaired ruptures (within client) with "
        "the odds of dropout after the session was not significant (OR per unrepaired rupture "
        "per session = 1.22, 95% CI [0.68, 2.20], Benjamini\u2013Hochberg-adjusted "
        "*p* = .500)." in text
    )
    assert "not show that one variable causes another" in text
    # the leading models in the configured order; nothing else leads
    order = [text.index(h) for h in ("### Dropout and repair", "### Rupture frequency",
                                     "### Dropout hazard")]  # fmt: skip
    assert order == sorted(order)
    assert "## Other models" not in text


def test_summary_flags_models_and_reports_validation_gate_and_recovery():
    text = summary.summary_sentences(_analyses(), VALIDATION, GATE, RECOVERY, leading=LEADING)
    assert "**Caution:** this model was flagged (singular fit)" in text
    assert "- Dropout hazard: singular fit" in text
    assert "- Repair retention gee: not converged" in text
    assert "The other 2 models and variants converged without a singular fit." in text
    # 360 + 3,784 = 4,144 rows; 2 rows set aside: suppressed below 5
    assert (
        "Validation (lenient mode) read 4,144 rows from 2 files (clients 360; sessions 3,784); "
        "3 problems were found and <5 rows were set aside in the quarantine table." in text
    )
    assert "Reliability gate (warn mode): 1 construct(s) below the configured minimum" in text
    assert "- Ruptures: ICC(A,1) = .62, below the minimum .75" in text
    # 37 / 45 = 82.2%
    assert "37 of 45 true fixed effects (82.2%) lay inside their 95% CIs (target 90%: not met)" \
        in text  # fmt: skip
    assert "the framework with the strongest true slope (cognitive) was also the strongest" in text


def test_summary_without_problems_or_flags():
    analyses = [{**a, "fit": {"flags": []}} for a in _analyses()[:2]]
    clean = {"tables": [{"table": "clients", "rows_read": 40, "rows_kept": 40,
                         "rows_set_aside": 0}], "problems": 0}  # fmt: skip
    gate = {"mode": "strict", "assessed": True, "reason": "", "below": []}
    text = summary.summary_sentences(analyses, clean, gate, None)
    assert "All 2 fitted models (sensitivity variants included) converged" in text
    assert "no problems were found and no rows were set aside" in text
    assert "Reliability gate (strict mode): every construct met its configured minimum." in text
    assert "Recovery" not in text


def test_validation_counts_cells_clients_missing_codes_and_identifiers():
    validation = {**VALIDATION, "quarantined": {"rows": 0, "cells": 21, "clients": 0},
                  "missing_values": [{"file": "s.csv", "column": "minutes", "code": "-99",
                                      "cells": 12, "source": "declared"},
                                     {"file": "s.csv", "column": "alliance", "code": "NA",
                                      "cells": 4, "source": "declared"}],
                  "dropped_identifier_columns": [{"file": "c.csv", "column": "name",
                                                  "reason": "looks like names"}]}  # fmt: skip
    text = summary.summary_sentences([], validation)
    assert (
        "3 problems were found and no rows were set aside. 21 bad cells were set to missing "
        "in rows that stayed usable; declared missing-value codes made 16 values missing; "
        "1 column was dropped as possible identifiers" in text
    )


def test_summary_linear_slope_uses_b():
    row = {**_slope_row("cognitive", 0.0305, 0.003, 0.0246, 0.0364, 0.001), "variable": "session_c"}
    model = {"name": "alliance", "spec": {"family": "gaussian", "formula": "alliance ~ x"},
             "fit": {"flags": []}, "contrasts": pd.DataFrame([row])}  # fmt: skip
    text = summary.summary_sentences([model], slopes={"session_c": {"step": 1, "unit": "session"}})
    assert (
        "In cognitive therapy, higher values of session (centred) were associated with a higher "
        "mean alliance (*b* per session = 0.031, 95% CI [0.025, 0.036], Holm-adjusted "
        "*p* = .001)." in text
    )


# --------------------------------------------------------------------------- a lab's own study

LAB = Vocabulary(
    constructs={
        "sustain_talk": ConstructInfo(
            "sustain_talk", "Sustain talk", "count", "column", stem="sustain_talk"
        ),
        "homework_noncompliance": ConstructInfo(
            "homework_noncompliance",
            "Homework not done",
            "count",
            "column",
            stem="homework_noncompliance",
        ),
    },  # fmt: skip
    frameworks=[
        FrameworkInfo("systemic", "Systemic", "#0072B2", "o"),
        FrameworkInfo("humanistic", "Humanistic", "#E69F00", "s"),
        FrameworkInfo("cbt_group", "CBT in groups", "#009E73", "^"),
        FrameworkInfo("mbt", "Mentalization-based treatment", "#CC79A7", "v"),
    ],
    labels={"wai_total": "Working alliance"},
    stages={
        "reliability": Stage(False, "no double-coded sessions"),
        "profile": Stage(False, "no composite construct chosen for the profile"),
        "repair": Stage(False, "no coding of ruptures and their repair"),
        "ruptures": Stage(False, "no coding of ruptures"),
        "alliance": Stage(True),
        "psq": Stage(False, "no Post-Session Questionnaire items"),
    },
)


def _lab_models():
    """Three of the lab's own models: its names, its variables, its four frameworks."""
    st_counts = {
        "name": "st_by_family",
        "spec": {"family": "poisson", "description": "Sustain talk by treatment family",
                 "formula": "sustain_talk ~ framework * session_c + (1 | therapist/client)"},
        "fit": {"flags": []},
        "contrasts": pd.DataFrame([
            _pair_row("humanistic", "systemic", 0.405465, 0.15, 0.111469, 0.699461, 0.02),
            _pair_row("cbt_group", "systemic", -0.1, 0.2, -0.492, 0.292, 0.62),
            _pair_row("mbt", "cbt_group", 0.3, 0.1, 0.104, 0.496, 0.009),
            _slope_row("mbt", -0.05, 0.01, -0.0696, -0.0304, 0.0001, variable="session_c"),
        ]),
    }  # fmt: skip
    st_dropout = {
        "name": "st_dropout",
        "spec": {"family": "binomial",
                 "formula": "dropout ~ framework * sustain_talk_rate_between + (1 | therapist)"},
        "fit": {"flags": ["not estimable"],
                "not_estimable": [{"term": "frameworkhumanistic",
                                   "reason": "no dropout in humanistic therapy"}]},
        "contrasts": pd.DataFrame([
            _pair_row("humanistic", "systemic", -21.6, 9000.0, -17661.6, 17618.4, 0.99,
                      estimable=False, note="no dropout in humanistic therapy"),
            _slope_row("systemic", 0.4, 0.1, 0.204, 0.596, 0.0004,
                       variable="sustain_talk_rate_between"),
            _slope_row("humanistic", 0.0, 50.0, -98.0, 98.0, 1.0, estimable=False,
                       variable="sustain_talk_rate_between"),
        ]),
    }  # fmt: skip
    hw_hazard = {
        "name": "hw_hazard",
        "spec": {"family": "binomial",
                 "formula": "event ~ framework * homework_noncompliance_within + (1 | therapist)"},
        "fit": {"flags": []},
        "contrasts": pd.DataFrame([
            _slope_row("cbt_group", 0.693147, 0.2, 0.301154, 1.085140, 0.003,
                       variable="homework_noncompliance_within"),
        ]),
    }  # fmt: skip
    wai = {
        "name": "wai_course",
        "spec": {"family": "gaussian", "formula": "wai_total ~ session_c + (1 | client)"},
        "fit": {"flags": []},
        "contrasts": pd.DataFrame(),
    }
    return [st_counts, st_dropout, hw_hazard, wai]


def test_lab_models_get_their_own_sentences_with_labels():
    gate = {"mode": "warn", "assessed": False, "reason": "no double-coded sessions", "below": []}
    text = summary.summary_sentences(
        _lab_models(), VALIDATION, gate, leading=["st_dropout"], vocab=LAB
    )
    assert "None of the models" not in text
    # exp(0.405465) = 1.5, exp(0.111469) = 1.117919, exp(0.699461) = 2.012676
    assert (
        "Humanistic therapy had a higher rate of sustain talk than systemic therapy "
        "(IRR = 1.50, 95% CI [1.12, 2.01], Holm-adjusted *p* = .020)." in text
    )
    # exp(-0.1) = 0.904837, exp(-0.492) = 0.611402, exp(0.292) = 1.339101; acronym kept
    assert (
        "The rate of sustain talk did not differ significantly between CBT in groups and "
        "systemic therapy (IRR = 0.90, 95% CI [0.61, 1.34], Holm-adjusted *p* = .620)." in text
    )
    # a framework label that says "treatment" gets no "therapy" after it
    assert "Mentalization-based treatment had a higher rate of sustain talk than CBT in groups" \
        " therapy" in text  # fmt: skip
    # per one unit by default: exp(-0.05) = 0.951229, exp(-0.0696) = 0.932767,
    # exp(-0.0304) = 0.970057
    assert (
        "In mentalization-based treatment, higher values of session (centred) were associated "
        "with a lower rate of sustain talk (IRR per unit = 0.95, 95% CI [0.93, 0.97], "
        "Holm-adjusted *p* < .001)." in text
    )
    # the lab's own variable, labelled from its construct: exp(0.4) = 1.491825,
    # exp(0.204) = 1.226300, exp(0.596) = 1.814842
    assert (
        "In systemic therapy, higher values of sustain talk per session (between clients) were "
        "associated with higher odds of dropout (OR per unit = 1.49, 95% CI [1.23, 1.81], "
        "Holm-adjusted *p* < .001)." in text
    )
    # exp(0.693147) = 2, exp(0.301154) = 1.351413, exp(1.085140) = 2.959809
    assert (
        "In CBT in groups therapy, higher values of homework not done (within client) were "
        "associated with higher odds of dropout after the session (OR per unit = 2.00, "
        "95% CI [1.35, 2.96], Holm-adjusted *p* = .003)." in text
    )
    # a model without contrasts still gets a sentence
    assert "### Wai course\n\nThis model has no framework contrasts" in text


def test_lab_summary_leads_with_the_configured_models_and_lists_the_others():
    text = summary.summary_sentences(_lab_models(), leading=["hw_hazard", "st_dropout"], vocab=LAB)
    main, others = text.split("## Other models")
    assert main.index("### Hw hazard") < main.index("### St dropout")
    assert "### Sustain talk by treatment family" in others and "### Wai course" in others
    assert "### St dropout" not in others
    # default: every model leads, in the order given
    text = summary.summary_sentences(_lab_models(), vocab=LAB)
    assert "## Other models" not in text
    assert text.index("### Sustain talk by treatment family") < text.index("### Wai course")


def test_not_estimable_says_so_with_its_reason_never_a_ratio():
    text = summary.summary_sentences(_lab_models(), vocab=LAB)
    assert (
        "- Humanistic therapy compared with systemic therapy, the odds of dropout: "
        "not estimable: no dropout in humanistic therapy." in text
    )
    # no note column entry: the reason recorded in fit.json
    assert (
        "- In humanistic therapy, the association of sustain talk per session (between "
        "clients) with the odds of dropout: not estimable: no dropout in humanistic therapy."
        in text
    )
    assert "**Caution:** this model was flagged (not estimable)" in text
    for astronomical in ("17,618", "9,000", "e+"):
        assert astronomical not in text
    assert not re.search(r"\binf\b", text)  # the word, not "influence"


def test_not_assessed_reliability_is_never_met():
    gate = {"mode": "warn", "assessed": False, "reason": "no double-coded sessions", "below": []}
    text = summary.summary_sentences(_lab_models(), VALIDATION, gate, vocab=LAB)
    assert "Inter-rater reliability: not assessed (no double-coded sessions)." in text
    assert "met its configured minimum" not in text
    # the vocabulary's stage alone says so too (no gate given)
    text = summary.summary_sentences(_lab_models(), VALIDATION, None, vocab=LAB)
    assert "Inter-rater reliability: not assessed (no double-coded sessions)." in text
    assert "met its configured minimum" not in text
    # the other parts without data, each with its reason; alliance had data
    assert "- Rupture repair: not assessed (no coding of ruptures and their repair)." in text
    assert "- Profile of a composite construct: not assessed" in text
    assert "- Post-Session Questionnaire: not assessed" in text
    assert "Alliance: not assessed" not in text


def test_lab_summary_prints_no_raw_names():
    gate = {"mode": "warn", "assessed": False, "reason": "no double-coded sessions", "below": []}
    text = summary.summary_sentences(
        _lab_models(), VALIDATION, gate, leading=["st_dropout"], vocab=LAB
    )
    assert "_" not in text
    # backticks only around config keys (the influence section's says how to switch it on)
    assert "`" not in re.sub(r"`(contrasts:|influence[.:][^`]*|models: all)`", "", text)


def test_leading_models_checks_the_names():
    assert summary.leading_models(None, ["a", "b"]) == ["a", "b"]
    assert summary.leading_models(["b", "a", "b"], ["a", "b"]) == ["b", "a"]
    with pytest.raises(ConfigError) as err:
        summary.leading_models(["x", "y"], ["a"], "tables.main_models", "lab.yaml")
    message = str(err.value)
    assert "tables.main_models in lab.yaml" in message
    assert "'x', 'y' are not configured models (models: a)" in message


# --------------------------------------------------------------------------- the workflow step


def _write_folder(folder: Path, model: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps({**model["spec"], "name": model["name"]}))
    (folder / "fit.json").write_text(json.dumps(model["fit"]))
    coefficients = pd.DataFrame(
        {"term": ["(Intercept)"], "estimate": [0.1], "std_error": [0.05], "p_value": [0.04],
         "ci_low": [0.002], "ci_high": [0.198]}
    )  # fmt: skip
    coefficients.to_csv(folder / "coefficients.csv", index=False)
    (folder / "variance_components.csv").write_text("")
    contrasts = model["contrasts"]
    if contrasts.empty:
        (folder / "contrasts.csv").write_text("")
    else:
        contrasts.to_csv(folder / "contrasts.csv", index=False)


def test_summary_and_publication_steps_read_json_hand_overs(tmp_path):
    from resistance_outcomes.pipeline import publication_tables_step, summary_step

    specs = []
    for model in _lab_models():
        folder = tmp_path / "models" / model["name"]
        _write_folder(folder, model)
        specs.append(folder / "spec.json")
    (tmp_path / "vocabulary.json").write_text(LAB.to_json())
    (tmp_path / "report.json").write_text(json.dumps(VALIDATION))
    gate = {"mode": "warn", "assessed": False, "reason": "no double-coded sessions",
            "below": []}  # fmt: skip
    (tmp_path / "gate.json").write_text(json.dumps(gate))
    (tmp_path / "table1.csv").write_text("")
    (tmp_path / "reliability.csv").write_text("")
    names = ["validation", "gate", "vocabulary", "model_specs"]
    inputs = SimpleNamespace(
        validation=tmp_path / "report.json", gate=tmp_path / "gate.json",
        vocabulary=tmp_path / "vocabulary.json", model_specs=specs, keys=lambda: names,
    )  # fmt: skip
    output = SimpleNamespace(md=tmp_path / "summary.md")
    params = SimpleNamespace(leading=["st_dropout"], slopes={}, min_cell=5)
    summary_step(input=inputs, output=output, params=params)
    text = output.md.read_text(encoding="utf-8")
    assert "### St dropout" in text.split("## Other models")[0]
    assert "Inter-rater reliability: not assessed (no double-coded sessions)." in text
    assert "_" not in text

    table_inputs = SimpleNamespace(
        table1=tmp_path / "table1.csv", reliability=tmp_path / "reliability.csv",
        gate=tmp_path / "gate.json", vocabulary=tmp_path / "vocabulary.json",
        model_specs=specs,
        keys=lambda: ["table1", "reliability", "gate", "vocabulary", "model_specs"],
    )  # fmt: skip
    out = SimpleNamespace(docx=tmp_path / "publication" / "tables.docx")
    publication_tables_step(
        input=table_inputs, output=out, params=SimpleNamespace(main_models=[], min_cell=5)
    )
    written = sorted(p.stem for p in (tmp_path / "publication").glob("*.md"))
    assert written == sorted(
        ["table1", "reliability", "contrasts"] + [f"model_{m['name']}" for m in _lab_models()]
    )
    reliability = (tmp_path / "publication" / "reliability.md").read_text(encoding="utf-8")
    assert "not assessed: no double-coded sessions" in reliability
    assert math.isclose(
        pd.read_csv(tmp_path / "publication" / "model_st_dropout.csv")["estimate"].iloc[0], 0.1
    )


def test_a_slope_equal_in_every_framework_is_stated_once():
    """Without a framework interaction the per-framework slopes are one estimate: the
    summary states it once, not once per framework."""
    rows = [
        _slope_row(level, 0.6466, 0.2466, 0.1633, 1.1300, 0.0087, adjustment="bh")
        for level in ("psychoanalytic", "behavioral", "cognitive")
    ]
    model = {"name": "hazard", "spec": {"family": "binomial", "formula": "event ~ x"},
             "fit": {"flags": []}, "contrasts": pd.DataFrame(rows)}  # fmt: skip
    text = summary.summary_sentences([model], slopes=SLOPES)
    assert text.count("repair rate (between clients)") == 1
    # OR per 10 percentage points = exp(0.1 * 0.6466) = 1.07, CI exp(0.1 * [0.1633, 1.13])
    assert (
        "In every framework (the model has no framework interaction for it), higher values of "
        "repair rate (between clients) were associated with higher odds of dropout after the "
        "session (OR per 10 "
        "percentage points = 1.07, 95% CI [1.02, 1.12]" in text
    )
    # slopes that differ keep one sentence per framework
    rows[1] = {**rows[1], "estimate": 0.2}
    model["contrasts"] = pd.DataFrame(rows)
    assert summary.summary_sentences([model], slopes=SLOPES).count("In every framework") == 0


def _response_row(variable, level, estimate, se, p_adjusted, **extra):
    low, high = estimate - 1.959964 * se, estimate + 1.959964 * se
    return {**_slope_row(level, estimate, se, low, high, p_adjusted), "variable": variable,
            **extra}  # fmt: skip


def test_response_model_sentences_name_responses_by_framework():
    """exp(0.8755) = 2.400 -> "2.40"; CI exp(0.8755 -/+ 1.959964 x 0.2) = exp(0.483507) =
    1.621719 -> "1.62", exp(1.267493) = 3.551693 -> "3.55". exp(-0.9) = 0.406570 -> "0.41"
    (CI exp(-1.683986) = 0.185609 -> "0.19", exp(-0.116014) = 0.890463 -> "0.89")."""
    vocab = Vocabulary(
        constructs={
            name: ConstructInfo(name, label, "count", "codes")
            for name, label in [
                ("response_reframe", "Reframing as information"),
                ("response_calm", "Staying calm"),
                ("response_refer", "Ending and referring"),
                ("ruptures", "Ruptures"),
                ("repaired", "Repaired ruptures"),
            ]
        },
        frameworks=[FrameworkInfo("psychoanalytic", "Psychoanalytic", "#0072B2", "o"),
                    FrameworkInfo("cognitive", "Cognitive", "#E69F00", "s")],
        stages={"responses": Stage(False, "no response codes")},
    )  # fmt: skip
    rows = [
        _pair_row("psychoanalytic", "cognitive", 0.1, 0.2, -0.29, 0.49, 0.6),
        _response_row("response_reframe", "psychoanalytic", 0.8755, 0.2, 0.0004),
        _response_row("response_reframe", "cognitive", 0.1, 0.2, 0.62),
        _response_row("response_calm", "psychoanalytic", 0.2, 0.2, 0.64),
        _response_row("response_calm", "cognitive", -0.9, 0.4, 0.049),
        _response_row("response_refer", "psychoanalytic", 0.3, 0.3, 0.5),
        _response_row("response_refer", "cognitive", 0.0, 0.0, 1.0, estimable=False,
                      note="only repaired in cognitive"),
    ]  # fmt: skip
    analysis = {
        "name": "response_repair",
        "spec": {
            "family": "binomial",
            "description": "Repair by the responses used",
            "formula": "repaired ~ framework * (response_reframe + response_calm + "
            "response_refer) + (1 | therapist/client)",
            "placeholders": {
                "responses": ["response_reframe", "response_calm", "response_refer"],
                "within": "ruptures",
            },
        },
        "fit": {"flags": []},
        "contrasts": pd.DataFrame(rows),
    }
    text = summary.summary_sentences([analysis], vocab=vocab)
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines[0].startswith("- The odds of repaired ruptures did not differ significantly")
    assert lines[1:] == [
        "- In psychoanalytic therapy, ruptures met with reframing as information had higher "
        "odds of repaired ruptures (OR = 2.40, 95% CI [1.62, 3.55], Holm-adjusted *p* < .001).",
        "- In psychoanalytic therapy, staying calm and ending and referring showed no clear "
        "association with the odds of repaired ruptures (adjusted *p* >= .05).",
        "- In cognitive therapy, ruptures met with staying calm had lower odds of repaired "
        "ruptures (OR = 0.41, 95% CI [0.19, 0.89], Holm-adjusted *p* = .049).",
        "- In cognitive therapy, the association of ending and referring with the odds of "
        "repaired ruptures: not estimable: only repaired in cognitive.",
        "- In cognitive therapy, reframing as information showed no clear association with "
        "the odds of repaired ruptures (adjusted *p* >= .05).",
        "- Responses followed by repair (rupture level): not assessed (no response codes).",
    ]


# --------------------------------------------------------------------------- profile


def _forms_vocabulary():
    constructs = {
        "resistance_covert": ConstructInfo("resistance_covert", "Covert resistance", "count",
                                           "sum_of"),
        "resistance_overt": ConstructInfo("resistance_overt", "Overt resistance", "count",
                                          "sum_of"),
        "form_c": ConstructInfo("form_c", "Disengagement", "count", "sum_of"),
    }  # fmt: skip
    frameworks = [FrameworkInfo("psychoanalytic", "Psychoanalytic", "#0072B2", "o"),
                  FrameworkInfo("behavioral", "Behavioral", "#E69F00", "s"),
                  FrameworkInfo("cognitive", "Cognitive", "#009E73", "^")]  # fmt: skip
    return Vocabulary(constructs=constructs, frameworks=frameworks, profile="resistance")


def _forms_model(rows, family="poisson"):
    return {
        "name": "resistance_forms",
        "spec": {"family": family, "description": "Forms of resistance by framework",
                 "formula": "profile_count ~ framework * profile_form + offset(log(minutes))"},
        "fit": {"flags": []},
        "contrasts": pd.DataFrame(rows),
    }  # fmt: skip


def test_forms_model_says_how_many_times_as_often_a_form_occurred():
    rows = [
        # covert: cognitive vs psychoanalytic b = -0.5878 -> psychoanalytic 1.8 times as
        # often: exp(0.5878) = 1.800 (CI exp(0.3918) = 1.480, exp(0.7838) = 2.190)
        _pair_row("cognitive", "psychoanalytic", -0.5878, 0.1, -0.7838, -0.3918, 0.0004,
                  by="resistance_covert"),
        # covert: behavioral vs psychoanalytic, the larger difference: exp(0.9163) = 2.500
        _pair_row("behavioral", "psychoanalytic", -0.9163, 0.1, -1.1123, -0.7203, 0.0002,
                  by="resistance_covert"),
        _pair_row("behavioral", "cognitive", -0.3285, 0.12, -0.5637, -0.0933, 0.07,
                  by="resistance_covert"),
        # overt: nothing significant
        _pair_row("cognitive", "psychoanalytic", 0.1, 0.1, -0.096, 0.296, 0.6,
                  by="resistance_overt"),
        _pair_row("behavioral", "psychoanalytic", 0.05, 0.1, -0.146, 0.246, 0.6,
                  by="resistance_overt"),
        # the third form: one comparison not estimable
        _pair_row("behavioral", "psychoanalytic", 0.0, float("nan"), float("nan"),
                  float("nan"), float("nan"), by="form_c", estimable=False,
                  note="no events in a framework"),
    ]  # fmt: skip
    text = summary.summary_sentences([_forms_model(rows)], vocab=_forms_vocabulary())
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines[0] == (
        "- Covert resistance occurred 2.50 times as often in psychoanalytic as in behavioral "
        "therapy (IRR = 2.50, 95% CI [2.06, 3.04], Holm-adjusted *p* < .001) and 1.80 times "
        "as often in psychoanalytic as in cognitive therapy (IRR = 1.80, 95% CI [1.48, "
        "2.19], Holm-adjusted *p* < .001)."
    )  # exp(0.7203) = 2.055, exp(1.1123) = 3.041; the p = .07 comparison is not stated
    assert lines[1] == (
        "- Disengagement, behavioral compared with psychoanalytic therapy: not estimable: "
        "no events in a framework."
    )
    assert lines[2] == (
        "- No framework difference was significant for overt resistance (every adjusted "
        "*p* >= .05)."
    )
    assert len(lines) == 3
    assert "resistance_" not in text and "form_c" not in text  # labels, never raw names


def test_by_contrasts_of_a_model_that_is_not_a_rate_keep_their_sentences():
    row = _pair_row("cognitive", "psychoanalytic", 0.5, 0.2, 0.108, 0.892, 0.03,
                    by="resistance_covert")  # fmt: skip
    text = summary.summary_sentences(
        [_forms_model([row], family="binomial")], vocab=_forms_vocabulary()
    )
    assert "- For covert resistance, cognitive therapy had higher odds of" in text
    assert "times as often" not in text


def test_a_forms_model_not_fitted_says_why():
    model = _forms_model([])
    model["fit"] = {"fitted": False, "reason": "its data level profile_forms cannot be built "
                    "from these data: sessions table: resistance has no forms (its parts are "
                    "types without forms of their own)."}  # fmt: skip
    text = summary.summary_sentences([model], vocab=_forms_vocabulary())
    assert "This model was not fitted: its data level profile_forms cannot be built" in text
    assert "types without forms of their own).\n" in text  # one full stop


def test_responses_without_a_framework_interaction_are_stated_once():
    """repaired ~ framework + response_calm: the slope of calm is the same in every
    framework; exp(0.5) = 1.648721 -> "1.65" (CI exp(0.5 -/+ 0.391993) = exp(0.108007) =
    1.114056 -> "1.11", exp(0.891993) = 2.440000 -> "2.44")."""
    rows = [_response_row("response_calm", f, 0.5, 0.2, 0.012) for f in ("a", "b")]
    analysis = {
        "name": "m",
        "spec": {"family": "binomial", "formula": "repaired ~ framework + response_calm",
                 "placeholders": {"responses": ["response_calm"]}},
        "fit": {"flags": []},
        "contrasts": pd.DataFrame(rows),
    }  # fmt: skip
    lines = [line for line in summary.summary_sentences([analysis]).splitlines() if "calm" in line]
    assert lines == [
        "- In every framework (no framework interaction in the model), rupture segments met "
        "with response calm had higher odds of repaired (OR = 1.65, 95% CI [1.11, 2.44], "
        "Holm-adjusted *p* = .012)."
    ]


def test_power_analyses_of_the_run_get_their_sentences_and_others_say_where_they_are():
    power = pd.DataFrame(
        {
            "point": [0, 1, 0, 1],
            "therapists_per_framework": [6, 15, 6, 15],
            "term": ["cognitive - behavioral"] * 2 + ["x in cognitive"] * 2,
            "kind": ["pairwise"] * 2 + ["simple_slope"] * 2,
            "power": [0.55, 0.83, 0.3, 0.6],
            "power_ci_low": [0.45, 0.8, 0.2, 0.5],
            "power_ci_high": [0.65, 0.85, 0.4, 0.7],
            "replicates": 1000,
            "failed": [0, 4, 0, 0],
        }
    )
    analysis = {
        "name": "dropout_power",
        "description": "Dropout by framework",
        "model": "dropout",
        "truth": {"from": "results/models/dropout"},
        "adjust": "holm",
        "power": power,
        "labels": {"cognitive": "Cognitive", "behavioral": "Behavioral", "x": "Repair"},
    }
    text = summary.summary_sentences([], power=[analysis])
    section = text[text.index("## Power analyses") :]
    assert "### Dropout by framework" in section
    assert "from the fit in `results/models/dropout`; 1,000 replicates" in section
    # the wording: size, power, Wilson CI, replicates, failed share
    assert (
        "- With 15 therapists per framework, power to detect the difference between "
        "cognitive and behavioral therapy was .83, 95% CI [.80, .85], 1,000 replicates, "
        "0.4% of fits failed." in section
    )
    assert "the slope of repair in cognitive therapy was .60" in section
    assert "80% power was not reached at the sizes tried" in section
    assert "Holm-adjusted within each replicate" in section
    elsewhere = summary.summary_sentences([], power_elsewhere=["dropout_power"])
    assert "(dropout_power) are not part of this run: `make power`" in elsewhere
    assert "Power analyses" not in summary.summary_sentences([])


def test_model_sections_give_the_profile_intervals_of_the_intercept_sds_and_the_icc():
    retention, frequency = _analyses()[:2]
    intervals = pd.DataFrame(
        {
            "parameter": [".sig01", "(Intercept)", "ICC (therapist)"],
            "group": ["therapist", "", "therapist"],
            "term": ["sd (Intercept)", "(Intercept)", "ICC (adjusted, latent scale)"],
            "estimate": [0.7246, -2.6, 0.1376],
            "ci_low": [0.0, -3.6, 0.0],
            "ci_high": [1.3378, -1.8, 0.3523],
        }
    )
    nested = pd.DataFrame(
        {
            "parameter": [".sig01", ".sig02", ".nb_size", "ICC", "VPC (therapist:client)",
                          "VPC (therapist)"],
            "group": ["therapist:client", "therapist", "NB2", "", "therapist:client",
                      "therapist"],
            "term": ["sd (Intercept)", "sd (Intercept)", "size", "ICC", "share", "share"],
            "estimate": [0.4238, 0.0, 3.6, 0.12, 0.12, 0.0],
            "ci_low": [0.3522, 0.0, 2.7, 0.09, 0.08, 0.0],
            "ci_high": [0.5003, 0.2561, 5.3, 0.16, 0.15, 0.04],
        }
    )  # fmt: skip
    text = summary.summary_sentences(
        [{**retention, "intervals": intervals}, {**frequency, "intervals": nested}]
    )
    assert (
        "- Variation of the intercepts (log-odds scale) between therapists, SD 0.72, 95% CI "
        "[0.00, 1.34]; latent-scale ICC .14, 95% CI [.00, .35] (profile-likelihood "
        "intervals)." in text
    )
    assert (
        "between clients within therapists, SD 0.42, 95% CI [0.35, 0.50] and therapists, "
        "SD 0.00, 95% CI [0.00, 0.26]; latent-scale ICC .12, 95% CI [.09, .16], of which "
        "between therapists .00, 95% CI [.00, .04] and between clients within therapists "
        ".12, 95% CI [.08, .15] (profile-likelihood intervals)." in text
    )
    assert "Variation" not in summary.summary_sentences([retention])  # no intervals.csv
