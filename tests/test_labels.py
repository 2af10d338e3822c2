"""Tests of resistance_outcomes.labels: every printed name comes from the vocabulary."""

import pytest

from resistance_outcomes import labels
from resistance_outcomes.vocabulary import ConstructInfo, FrameworkInfo, Vocabulary

VOCAB = Vocabulary(
    constructs={
        "sustain_talk": ConstructInfo(
            "sustain_talk", "Sustain talk", "count", "column", stem="sustain_talk"
        ),
        "ruptures": ConstructInfo(
            "ruptures", "Alliance ruptures", "count", "any_of", stem="rupture"
        ),
    },
    frameworks=[
        FrameworkInfo("sys", "Systemic", "#0072B2", "o"),
        FrameworkInfo("psa", "PSA short-term", "#E69F00", "s"),
    ],
    labels={"sev0": "Baseline severity", "therapist": "Counsellor"},
    profile="ruptures",
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sustain_talk", "Sustain talk"),
        ("sustain_talk_rate_between", "Sustain talk per session (between clients)"),
        ("sustain_talk_within", "Sustain talk (within client)"),
        ("rupture_rate", "Alliance ruptures per session"),  # the construct's stem
        ("sev0", "Baseline severity"),  # config labels
        ("session_c", "Session (centred)"),  # the data contract's defaults
        ("never_declared", "Never declared"),  # in words, never raw
    ],
)
def test_variable_label_through_the_vocabulary(name, expected):
    assert labels.variable_label(name, vocab=VOCAB) == expected


def test_extra_labels_win_over_the_vocabulary():
    assert labels.variable_label("sev0", {"sev0": "Severity at intake"}, VOCAB) == (
        "Severity at intake"
    )


def test_levels_terms_and_groups():
    levels = {"framework": ["sys", "psa"]}
    assert labels.term_label("frameworkpsa", levels, vocab=VOCAB) == "PSA short-term"
    assert labels.term_label("framework[T.psa]:sev0", vocab=VOCAB) == (
        "PSA short-term \u00d7 Baseline severity"
    )
    assert labels.level_label(None, "sys", VOCAB) == "Systemic"  # a framework without factor
    assert labels.level_label("profile_part", "sustain_talk", VOCAB) == "Sustain talk"
    assert labels.framework_words("psa", VOCAB) == "PSA short-term"  # acronym kept
    assert labels.framework_words("sys", VOCAB) == "systemic"
    assert labels.group_label("therapist:client", VOCAB) == "Client within counsellor"


def test_stage_words_name_the_profiled_composite():
    assert labels.stage_words("profile", VOCAB) == "Profile of alliance ruptures"
    assert labels.stage_words("psq") == "Post-Session Questionnaire"
    assert labels.stage_words("new_stage") == "New stage"


# --- labels of tested estimates: power analyses and the influence figure --------------------

TESTED = ["frameworkpsa", "sustain_talk_rate_between", "psa - sys",
          "sustain_talk_rate_between in psa", "frameworkpsa:session_c"]  # fmt: skip
KINDS = ["coefficient", "coefficient", "pairwise", "simple_slope", "coefficient"]


def test_estimate_part_labels_name_frameworks_and_variables_with_underscores():
    assert labels.estimate_part_labels(TESTED, VOCAB) == {
        "sys": "Systemic",
        "psa": "PSA short-term",
        "frameworkpsa:session_c": "Frameworkpsa:session c",  # a name in words
        "sustain_talk_rate_between": "Sustain talk per session (between clients)",
    }
    assert labels.estimate_part_labels(TESTED, None) == {}


def test_effect_labels_read_factor_levels_as_differences_from_the_reference():
    parts = labels.estimate_part_labels(TESTED, VOCAB)
    assert labels.effect_labels(TESTED, parts, {"framework": ["sys", "psa"]}) == [
        "PSA short-term - Systemic",
        "Sustain talk per session (between clients)",
        "PSA short-term - Systemic",
        "Sustain talk per session (between clients) in PSA short-term",
        "Frameworkpsa:session c",  # its own label wins over the level's
    ]
    # without labels: the level in words; without levels: the terms as they are
    assert labels.effect_labels(["frameworkpsa_st"], None, {"framework": ["sys", "psa_st"]}) == [
        "Psa st - Sys"
    ]
    assert labels.effect_labels(TESTED) == TESTED


def test_estimate_labels_read_coefficients_as_terms_and_contrasts_by_their_parts():
    import pandas as pd

    table = pd.DataFrame({"term": TESTED + ["psa - sys"], "kind": KINDS + ["pairwise"]})
    assert labels.estimate_labels(table, {"framework": ["sys", "psa"]}, VOCAB) == {
        "frameworkpsa": "PSA short-term",
        "sustain_talk_rate_between": "Sustain talk per session (between clients)",
        "psa - sys": "PSA short-term - Systemic",
        "sustain_talk_rate_between in psa": (
            "Sustain talk per session (between clients) in PSA short-term"
        ),
        "frameworkpsa:session_c": "PSA short-term \u00d7 Session (centred)",
    }
    assert labels.estimate_labels(table, None, None) == {}


def test_power_report_and_pipeline_use_the_same_labels():
    import pandas as pd

    from resistance_outcomes import pipeline
    from resistance_outcomes.power import report

    table = pd.DataFrame({"term": TESTED, "kind": KINDS}, index=[5, 6, 7, 8, 9])
    parts = pipeline._power_labels(VOCAB, table)
    assert parts == labels.estimate_part_labels(TESTED, VOCAB)
    effect = report.effect_labels(table, parts, {"framework": ["sys", "psa"]})
    assert effect.name == "effect" and list(effect.index) == [5, 6, 7, 8, 9]
    assert effect.tolist() == labels.effect_labels(TESTED, parts, {"framework": ["sys", "psa"]})
    spec = {"factor_levels": {"framework": ["sys", "psa"]}}
    assert pipeline._estimate_labels(table, spec, VOCAB) == labels.estimate_labels(
        table, spec["factor_levels"], VOCAB
    )


def test_contrast_labels_name_every_part_by_the_vocabulary():
    import pandas as pd

    table = pd.DataFrame(
        {
            "kind": ["pairwise", "pairwise", "simple_slope", "simple_slope", "coefficient"],
            "term": ["psa - sys", "psa - sys | ruptures", "sustain_talk_within in sys",
                     "sev0 in psa | ruptures", "sev0"],
            "variable": ["framework", "framework", "sustain_talk_within", "sev0", ""],
            "level": ["psa", "psa", "sys", "psa", ""],
            "reference": ["sys", "sys", "", "", ""],
            "by": ["", "ruptures", "", "ruptures", ""],
        }
    )  # fmt: skip
    assert labels.contrast_labels(table, VOCAB) == {
        "psa - sys": "PSA short-term - Systemic",
        "psa - sys | ruptures": "PSA short-term - Systemic | Alliance ruptures",
        "sustain_talk_within in sys": "Sustain talk (within client) in Systemic",
        "sev0 in psa | ruptures": "Baseline severity in PSA short-term | Alliance ruptures",
    }
    # read back from a CSV, empty cells are missing: the same labels
    missing = table.replace("", float("nan"))
    assert labels.contrast_labels(missing, VOCAB) == labels.contrast_labels(table, VOCAB)
