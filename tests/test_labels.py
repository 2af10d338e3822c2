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
