"""The study vocabulary: constructs, frameworks, labels and stages from configuration."""

import pandas as pd
import pytest

from resistance_outcomes.codebook import Codebook, Construct, load_codebook
from resistance_outcomes.frameworks import FrameworkMap
from resistance_outcomes.vocabulary import (
    OTHER_COLOR,
    PALETTE,
    Vocabulary,
    build_vocabulary,
    double_coded_sessions,
    framework_infos,
)


def lab_codebook() -> Codebook:
    constructs = {
        "rupture_withdrawal": Construct("rupture_withdrawal", "units", label="Withdrawal"),
        "rupture_confrontation": Construct("rupture_confrontation", "units"),
        "ruptures": Construct(
            "ruptures",
            "any_of",
            of=("rupture_withdrawal", "rupture_confrontation"),
            label="Ruptures",
            stem="rupture",
        ),
        "sustain_talk": Construct("sustain_talk", "codes", label="Sustain talk"),
        "homework_noncompliance": Construct(
            "homework_noncompliance", "column", label="Homework not done", value_kind="count"
        ),
        "neutral": Construct("neutral", "none"),
    }
    return Codebook({}, constructs)


def sessions(**columns) -> pd.DataFrame:
    base = {"study": "s", "client": ["a", "a", "b"], "session": [1, 2, 1], "attended": True}
    return pd.DataFrame({**base, **columns})


FMAP = FrameworkMap(("humanistic", "psychodynamic", "systemic"), {}, "other", "other")


def test_only_constructs_with_values_are_present_in_codebook_order():
    vocab = build_vocabulary(
        lab_codebook(),
        FMAP,
        sessions(
            homework_noncompliance=[0, 2, 1],
            sustain_talk=[None, None, None],  # declared, column empty: not present
            ruptures=[1, 0, 2],
            neutral=[1, 1, 1],  # aggregate none: never a session construct
        ),
    )
    assert list(vocab.constructs) == ["ruptures", "homework_noncompliance"]
    assert vocab.constructs["ruptures"].rate_column == "rupture_rate"
    assert vocab.constructs["homework_noncompliance"].kind == "count"


def test_labels_follow_from_the_declaration_and_the_config():
    vocab = build_vocabulary(
        lab_codebook(),
        FMAP,
        sessions(sustain_talk=[1, 2, 3], ruptures=[0, 1, 0]),
        labels={"baseline_bdi": "Baseline BDI-II", "rupture_rate": "Rupture rate"},
    )
    assert vocab.label("sustain_talk") == "Sustain talk"
    assert vocab.label("sustain_talk_total") == "Sustain talk (total)"
    assert vocab.label("sustain_talk_rate") == "Sustain talk per session"
    assert vocab.label("sustain_talk_within") == "Sustain talk (within client)"
    assert vocab.label("sustain_talk_rate_between") == "Sustain talk per session (between clients)"
    # the config's labels win over the derived ones
    assert vocab.label("rupture_rate_between") == "Rupture rate (between clients)"
    assert vocab.label("baseline_bdi") == "Baseline BDI-II"
    # an unknown variable reads as words, never as its raw column name
    assert vocab.label("my_own_score") == "My own score"
    assert "_" not in vocab.label("some_new_variable_between")


def test_framework_colours_come_by_position_and_other_is_grey_and_last():
    infos = framework_infos(FMAP, ["systemic", "humanistic", "other"])
    assert [f.name for f in infos] == ["humanistic", "psychodynamic", "systemic", "other"]
    assert [f.color for f in infos] == [*PALETTE[:3], OTHER_COLOR]
    assert [f.present for f in infos] == [True, False, True, True]
    assert len({f.marker for f in infos}) == 4
    # the same name gets a different colour only if it moves in the map, never by name
    moved = framework_infos(FrameworkMap(("psychodynamic", "humanistic"), {}))
    assert moved[0].color == PALETTE[0] and moved[0].name == "psychodynamic"


def test_order_puts_values_in_map_order_and_unknown_values_last():
    vocab = build_vocabulary(
        lab_codebook(), FMAP, sessions(), clients=pd.DataFrame({"framework": ["systemic"]})
    )
    assert vocab.order(["other", "zeta", "systemic", "humanistic", None]) == [
        "humanistic",
        "systemic",
        "other",
        "zeta",
    ]
    assert vocab.framework_names() == ["systemic"]
    assert vocab.framework_names(present_only=False) == [*FMAP.frameworks, "other"]


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (None, 0),
        (pd.DataFrame({"study": "s", "client": ["a"], "session": 1, "coder": ["x"]}), 0),
        (
            pd.DataFrame(
                {
                    "study": "s",
                    "client": ["a", "a", "a", "b", "b"],
                    "session": [1, 1, 2, 1, 1],
                    "coder": ["x", "y", "x", "x", "x"],
                }
            ),
            1,
        ),
    ],
)
def test_double_coded_sessions_counts_sessions_with_two_coders(log, expected):
    assert double_coded_sessions(None, log) == expected


def test_stages_say_why_they_have_nothing_to_do():
    vocab = build_vocabulary(lab_codebook(), FMAP, sessions(ruptures=[1, 0, 2]), profile="ruptures")
    assert not vocab.stage("reliability").assessed
    assert vocab.stage("reliability").reason == "no double-coded sessions"
    assert not vocab.stage("profile").assessed
    assert "fewer than two of its parts" in vocab.stage("profile").reason
    assert not vocab.stage("repair").assessed
    assert not vocab.stage("alliance").assessed and not vocab.stage("psq").assessed
    assert vocab.stage("ruptures").assessed
    assert vocab.stage("never_computed").reason == "not part of this run"


def test_profile_of_the_example_codebook_is_its_forms_and_their_types():
    codebook = load_codebook("config/codebook.yaml")
    parts = ["resistance_arguing", "resistance_interrupting", "resistance_denying"]
    covert = ["covert_distancing", "covert_withdrawal"]
    table = sessions(
        **{p: [1, 0, 2] for p in parts + covert},
        resistance_overt=[3, 0, 6],
        resistance_covert=[2, 0, 4],
        resistance=[5, 0, 10],
    )
    vocab = build_vocabulary(codebook, FMAP, table, profile="resistance")
    assert vocab.profile_forms() == ["resistance_overt", "resistance_covert"]
    assert vocab.profile_parts() == parts + covert
    assert vocab.form_of("covert_withdrawal") == "resistance_covert"
    assert vocab.stage("profile").assessed
    assert [vocab.label(p) for p in parts] == ["Arguing", "Interrupting", "Denying"]


def test_the_json_round_trip_keeps_everything(tmp_path):
    vocab = build_vocabulary(
        lab_codebook(),
        FMAP,
        sessions(ruptures=[1, 0, 2], sustain_talk=[0, 1, 1]),
        clients=pd.DataFrame({"framework": ["humanistic", "other"]}),
        labels={"x": "X"},
        config_file="lab.yaml",
    )
    path = tmp_path / "vocabulary.json"
    path.write_text(vocab.to_json())
    again = Vocabulary.load(path)
    assert again.to_dict() == vocab.to_dict()
    assert again.to_json() == vocab.to_json()
    assert again.config_file == "lab.yaml"


def test_ratings_label_their_client_mean_and_the_profile_labels_its_long_columns():
    from resistance_outcomes.vocabulary import ConstructInfo

    vocab = Vocabulary(
        constructs={
            "empathy": ConstructInfo("empathy", "Empathy", "rating", "column"),
            "a": ConstructInfo("a", "Part A", "count", "codes"),
            "b": ConstructInfo("b", "Part B", "count", "codes"),
            "both": ConstructInfo("both", "Opposition", "count", "sum_of", ("a", "b")),
        },
        profile="both",
    )
    assert vocab.label("empathy_mean") == "Empathy (client mean)"
    assert vocab.label("empathy_mean_between") == "Empathy (client mean) (between clients)"
    assert vocab.label("profile_type") == "Opposition type"
    assert vocab.label("profile_form") == "Opposition form"
    assert vocab.label("profile_count") == "Opposition count"
    assert vocab.label("a") == "Part A"  # the levels of profile_type are the parts' names
