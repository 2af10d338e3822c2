"""The rupture-segment table from hand-made code tables (two coders, window 0 and 1, an
unrated rupture, a rupture of both types), the checks of config ``rupture_responses:``, and
the rupture-level data level of the models with its ``{responses}`` placeholder."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes import analysis
from resistance_outcomes.codebook import load_codebook, select_analysis_codes
from resistance_outcomes.config import ConfigError
from resistance_outcomes.derive import DataError
from resistance_outcomes.pipeline import rupture_segments_step
from resistance_outcomes.rupture_level import (
    RUPTURE_COLUMNS,
    response_settings,
    responses_stage,
    rupture_segments,
)

CODEBOOK = load_codebook("config/codebook.yaml")
RESPONSES = {"outcome": "repaired", "responses": "therapist_responses"}
CLIENTS = pd.DataFrame(
    {
        "study": "s",
        "client": ["C1", "C2"],
        "therapist": ["T1", "T2"],
        "framework": pd.Categorical(["cognitive", "behavioral"]),
        "baseline_severity": [1.5, 2.5],
    }
)


def hand_codes() -> pd.DataFrame:
    """C1 session 1, primary coder A:
    unit 1 withdrawal (W_MIN), rated 4, staying calm (T_CLM) in the unit;
    unit 2 no rupture, empathy (T_EMP);
    unit 3 withdrawal and confrontation (W_DEN, C_REJ), rated 2, no response in the unit;
    unit 4 reframing (T_RFR);
    unit 6 confrontation (C_PRO), not rated, calm (T_CLM) in unit 7.
    Reliability coder B codes unit 1 of the same session differently (rating 1, T_PAT),
    which must not enter the table. C2 session 2 (coder A): unit 2 withdrawal rated 5,
    coded twice in the same unit with value 0 for T_EMP (coded absent).
    """
    rows = [
        ("C1", 1, 1, "A", "primary", "W_MIN", 1),
        ("C1", 1, 1, "A", "primary", "RES", 4),
        ("C1", 1, 1, "A", "primary", "T_CLM", 1),
        ("C1", 1, 2, "A", "primary", "T_EMP", 1),
        ("C1", 1, 3, "A", "primary", "W_DEN", 1),
        ("C1", 1, 3, "A", "primary", "C_REJ", 1),
        ("C1", 1, 3, "A", "primary", "RES", 2),
        ("C1", 1, 4, "A", "primary", "T_RFR", 1),
        ("C1", 1, 6, "A", "primary", "C_PRO", 1),
        ("C1", 1, 7, "A", "primary", "T_CLM", 1),
        ("C1", 1, 1, "B", "reliability", "W_MIN", 1),
        ("C1", 1, 1, "B", "reliability", "RES", 1),
        ("C1", 1, 1, "B", "reliability", "T_PAT", 1),
        ("C2", 2, 2, "A", "primary", "W_ABS", 1),
        ("C2", 2, 2, "A", "primary", "RES", 5),
        ("C2", 2, 2, "A", "primary", "T_EMP", 0),
    ]
    columns = ["client", "session", "unit", "coder", "role", "code", "value"]
    codes = pd.DataFrame(rows, columns=columns).assign(study="s")
    return select_analysis_codes(codes)


def built(window=0, **section):
    settings = response_settings({**RESPONSES, "window": window, **section}, CODEBOOK)
    return rupture_segments(hand_codes(), CLIENTS, CODEBOOK, settings)


def test_one_row_per_rupture_unit_of_the_analysis_coder():
    made = built()
    table = made.table
    assert list(table.columns[: len(RUPTURE_COLUMNS)]) == RUPTURE_COLUMNS
    assert table[["client", "session", "unit"]].values.tolist() == [
        ["C1", 1, 1],
        ["C1", 1, 3],
        ["C1", 1, 6],
        ["C2", 2, 2],
    ]
    assert set(table["coder"]) == {"A"}  # B's rating 1 and T_PAT stay out
    assert table["rupture_type"].tolist() == [
        "rupture_withdrawal",
        "rupture_withdrawal+rupture_confrontation",
        "rupture_confrontation",
        "rupture_withdrawal",
    ]
    assert table["therapist"].tolist() == ["T1", "T1", "T1", "T2"]
    assert table["framework"].astype(str).tolist() == ["cognitive"] * 3 + ["behavioral"]
    assert table["baseline_severity"].tolist() == [1.5, 1.5, 1.5, 2.5]


def test_resolution_repaired_and_unrated_rupture():
    made = built()
    table = made.table
    assert table["resolution"].tolist()[:2] == [4.0, 2.0]
    assert np.isnan(table["resolution"].iloc[2]) and table["resolution"].iloc[3] == 5.0
    assert table["repaired"].tolist()[:2] == [1, 0]  # threshold 4: 4 repaired, 2 not
    assert pd.isna(table["repaired"].iloc[2]) and table["repaired"].iloc[3] == 1
    assert made.unrated == 1
    assert made.info()["unrated"] == 1


def test_response_columns_with_window_0():
    """Responses coded in the rupture unit only; a response never coded (patience, coded by
    the reliability coder only) has no column; T_EMP with value 0 is not a use."""
    made = built(window=0)
    assert made.responses == ["response_calm", "response_empathy", "response_reframe"]
    table = made.table
    assert table["response_calm"].tolist() == [1, 0, 0, 0]
    assert table["response_empathy"].tolist() == [0, 0, 0, 0]
    assert table["response_reframe"].tolist() == [0, 0, 0, 0]
    assert "response_patience" not in table


def test_response_columns_with_window_1():
    """Unit 1 also gets empathy of unit 2; unit 3 reframing of unit 4; unit 6 calm of
    unit 7; nothing crosses into another session or client."""
    table = built(window=1).table
    assert table["response_calm"].tolist() == [1, 0, 1, 0]
    assert table["response_empathy"].tolist() == [1, 0, 0, 0]
    assert table["response_reframe"].tolist() == [0, 1, 0, 0]


def test_window_2_reaches_two_units_on():
    table = built(window=2).table
    assert table["response_empathy"].tolist() == [1, 0, 0, 0]
    assert table["response_reframe"].tolist() == [0, 1, 0, 0]  # unit 1 + 2 = 3 < 4


def test_a_list_of_responses_and_the_threshold():
    settings = response_settings(
        {"responses": ["response_reframe", "response_calm"], "window": 1}, CODEBOOK, 5
    )
    made = rupture_segments(hand_codes(), CLIENTS, CODEBOOK, settings)
    assert made.responses == ["response_reframe", "response_calm"]
    assert made.table["repaired"].tolist()[:2] == [0, 0]  # 4 < 5
    assert made.table["repaired"].iloc[3] == 1


def test_session_c_comes_from_the_session_table():
    settings = response_settings(RESPONSES, CODEBOOK)
    session_table = pd.DataFrame(
        {"study": "s", "client": ["C1", "C2"], "session": [1, 2], "session_c": [-0.5, 0.5]}
    )
    made = rupture_segments(hand_codes(), CLIENTS, CODEBOOK, settings, session_table)
    assert made.table["session_c"].tolist() == [-0.5, -0.5, -0.5, 0.5]


def test_empty_tables_say_why():
    settings = response_settings(RESPONSES, CODEBOOK)
    codes = hand_codes()
    no_codes = rupture_segments(codes.iloc[0:0], CLIENTS, CODEBOOK, settings)
    assert no_codes.table.empty and "no codes" in no_codes.reason
    assert list(no_codes.table.columns) == RUPTURE_COLUMNS
    unrated = rupture_segments(codes[codes["code"] != "RES"], CLIENTS, CODEBOOK, settings)
    assert unrated.table.empty and unrated.reason == "no resolution rating of the ruptures"
    silent = rupture_segments(codes[~codes["code"].str.startswith("T_")], CLIENTS, CODEBOOK,
                              settings)  # fmt: skip
    assert silent.table.empty and silent.reason == "no coding of therapist responses"
    calm = response_settings({"responses": ["response_calm"]}, CODEBOOK)
    listed = rupture_segments(codes[~codes["code"].str.startswith("T_")], CLIENTS, CODEBOOK, calm)
    assert listed.reason == "no coding of the responses (staying calm)"
    assert not responses_stage(codes[codes["code"] != "RES"], CODEBOOK, RESPONSES)[0]
    assert responses_stage(codes, CODEBOOK, RESPONSES) == (
        True,
        "staying calm, empathy and validation, reframing as information",
    )
    assert responses_stage(codes, CODEBOOK, None) == (False, "not configured")
    assert responses_stage(None, CODEBOOK, RESPONSES) == (False, "no code table")


def test_window_needs_unit_numbers():
    codes = hand_codes().astype({"unit": object})
    codes.loc[4, "unit"] = "3b"
    settings = response_settings({**RESPONSES, "window": 1}, CODEBOOK)
    with pytest.raises(DataError, match=r"codes.csv, row 5, column unit: the value '3b'"):
        rupture_segments(codes, CLIENTS, CODEBOOK, settings, codes_file="codes.csv")


@pytest.mark.parametrize(
    "section, fragment",
    [
        ({"outcome": "ruptures", "responses": "therapist_responses"},
         "'ruptures' is not a rated_at_least construct"),
        ({"responses": "calmness"}, "responses 'calmness' is not a construct"),
        ({"responses": ["response_calm", "nope"]}, "responses nope are not constructs"),
        ({"responses": "therapist_responses", "window": -1}, "window must be a whole number"),
        ({"responses": "therapist_responses", "lag": 1}, "unknown key(s) lag"),
        ({}, "give `responses:`"),
    ],
)  # fmt: skip
def test_bad_section_names_key_and_value(section, fragment):
    with pytest.raises(ConfigError, match="rupture_responses") as err:
        response_settings(section, CODEBOOK, config_file="my.yaml")
    assert fragment in str(err.value) and "my.yaml" in str(err.value)


def test_step_writes_table_and_facts(tmp_path):
    codes, clients = tmp_path / "codes.parquet", tmp_path / "clients.parquet"
    hand_codes().to_parquet(codes)
    CLIENTS.to_parquet(clients)
    sessions = tmp_path / "session_table.parquet"
    pd.DataFrame({"study": "s", "client": ["C1"], "session": [1], "session_c": [0.0]}).to_parquet(
        sessions
    )
    output = SimpleNamespace(table=tmp_path / "r.parquet", info=tmp_path / "r.json")
    run = SimpleNamespace(codes=codes, clients=clients, session_table=sessions,
                          codebook="config/codebook.yaml")  # fmt: skip
    params = SimpleNamespace(rupture_responses={**RESPONSES, "window": 1}, repair_threshold=4,
                             config_file="config/config.yaml")  # fmt: skip
    rupture_segments_step(input=run, output=output, params=params)
    table = pd.read_parquet(output.table)
    info = json.loads(output.info.read_text())
    assert len(table) == 4 and info["rows"] == 4 and info["unrated"] == 1
    assert info["responses"] == ["response_calm", "response_empathy", "response_reframe"]
    assert info["window"] == 1 and info["within"] == "ruptures"
    params.rupture_responses = None
    rupture_segments_step(input=run, output=output, params=params)
    assert pd.read_parquet(output.table).empty
    assert "no rupture_responses" in json.loads(output.info.read_text())["reason"]


# --------------------------------------------------------------------------- the data level


def level_tables(made) -> analysis.AnalysisTables:
    return analysis.AnalysisTables(
        None, None, None, None, {}, rupture_segments=made.table,
        rupture_info=made.info(response_settings(RESPONSES, CODEBOOK)),
    )  # fmt: skip


SPEC = {
    "data": "rupture_segments",
    "family": "binomial",
    "formula": "repaired ~ framework * ({responses}) + (1 | therapist/client)",
    "contrasts": {"slopes": ["{responses}", "session_c"]},
}


def test_placeholder_expands_to_the_response_columns_that_vary():
    made = built(window=1)
    spec = analysis.parse_model_spec("response_repair", SPEC)
    rows, why = analysis.data_level(spec, level_tables(made))
    assert len(rows) == 4 and why == []
    expanded, info = analysis.expand_placeholders(spec, rows, level_tables(made))
    assert expanded.formula == (
        "repaired ~ framework * (response_calm + response_empathy + response_reframe) "
        "+ (1 | therapist/client)"
    )
    assert expanded.contrasts.slopes == (
        "response_calm", "response_empathy", "response_reframe", "session_c",
    )  # fmt: skip
    assert info["left_out"] == {} and info["within"] == "ruptures"
    narrow = level_tables(built(window=0))
    rows = analysis.data_level(spec, narrow)[0]
    constant = analysis.expand_placeholders(spec, rows, narrow)
    assert constant[0].contrasts.slopes == ("response_calm", "session_c")
    assert constant[1]["left_out"] == {
        "response_empathy": "always 0",
        "response_reframe": "always 0",
    }


def test_placeholder_outside_the_rupture_level_is_refused():
    spec = analysis.parse_model_spec("m", {**SPEC, "data": "sessions"})
    with pytest.raises(analysis.ModelEntryError, match=r"model 'm': \{responses\} stands for"):
        analysis.expand_placeholders(spec, pd.DataFrame(), level_tables(built()))


def test_unrated_ruptures_are_counted_as_left_out_by_the_model_frame():
    made = built(window=1)
    spec = analysis.parse_model_spec(
        "m", {**SPEC, "formula": "repaired ~ response_calm + (1 | client)", "contrasts": None}
    )
    rows, _ = analysis.data_level(spec, level_tables(made))
    frame, why = analysis.model_frame(spec, rows)
    assert len(frame) == 3
    assert why == [{"reason": "missing value in repaired", "rows": 1, "column": "repaired"}]


def test_empty_rupture_level_skips_an_optional_model_with_the_reason():
    settings = response_settings(RESPONSES, CODEBOOK)
    made = rupture_segments(hand_codes().iloc[0:0], CLIENTS, CODEBOOK, settings)
    tables = analysis.AnalysisTables(None, None, None, None, {}, rupture_segments=made.table,
                                     rupture_info=made.info(settings))  # fmt: skip
    spec = analysis.parse_model_spec("m", {**SPEC, "optional": True})
    outputs = analysis.run_model(spec, tables)
    assert outputs.fit["fitted"] is False
    reason = outputs.fit["reason"]
    assert "the rupture-segment table is empty: no codes of the analysis coder" in reason
    checked = analysis.check_models({"m": spec}, tables)
    assert checked["models"]["m"]["status"] == "skipped"
    with pytest.raises(DataError, match="rupture-segment table is empty"):
        analysis.run_model(analysis.parse_model_spec("m", SPEC), tables)


# --------------------------------------------------------------------------- the example


def test_vocabulary_stage_responses():
    from resistance_outcomes.frameworks import load_framework_map
    from resistance_outcomes.vocabulary import build_vocabulary

    fmap = load_framework_map("config/frameworks.yaml")
    sessions = pd.DataFrame({"study": "s", "client": ["C1"], "session": [1], "attended": True})
    with_codes = build_vocabulary(CODEBOOK, fmap, sessions, CLIENTS, codes=hand_codes(),
                                  rupture_responses=RESPONSES)  # fmt: skip
    assert with_codes.stage("responses").assessed
    unrated = hand_codes()[lambda c: c["code"] != "RES"]
    without = build_vocabulary(CODEBOOK, fmap, sessions, CLIENTS, codes=unrated,
                               rupture_responses=RESPONSES)  # fmt: skip
    assert without.stage("responses").reason == "no resolution rating of the ruptures"
    unconfigured = build_vocabulary(CODEBOOK, fmap, sessions, CLIENTS, codes=hand_codes())
    assert "responses" not in unconfigured.stages  # the summary does not list it
    assert not unconfigured.stage("responses").assessed


@pytest.mark.slow
def test_example_response_model_recovers_the_simulated_truth():
    """The example's rupture segments (about 2,300, nine responses, three frameworks): the
    per-framework log odds ratios of the response model against truth.json's
    response_log_or, and the coverage of the fixed effects (recovery_table)."""
    from pathlib import Path

    import yaml

    from resistance_outcomes.ingest import ingest
    from resistance_outcomes.recovery import load_truth, recovery_table

    config = yaml.safe_load(Path("config/config.yaml").read_text(encoding="utf-8"))
    data = ingest(config, base_dir=Path("."))
    settings = response_settings(config["rupture_responses"], CODEBOOK,
                                 config["coding"]["repair_threshold"])  # fmt: skip
    made = rupture_segments(data.codes, data.clients, CODEBOOK, settings)
    assert len(made.table) > 2000 and len(made.responses) == 9 and made.unrated == 0
    tables = analysis.AnalysisTables(None, None, None, None, {}, rupture_segments=made.table,
                                     rupture_info=made.info(settings))  # fmt: skip
    spec = analysis.parse_model_spec("response_repair", config["models"]["response_repair"])
    outputs = analysis.run_model(spec, tables)
    truth = load_truth("resources/example/truth.json")
    log_or = truth["parameters"]["responses"]["response_log_or"]["value"]
    slopes = outputs.contrasts[outputs.contrasts["kind"] == "simple_slope"]
    true = np.array([log_or[r.level][r.variable] for r in slopes.itertuples()])
    inside = (slopes["ci_low"] <= true) & (true <= slopes["ci_high"])
    assert len(slopes) == 27 and inside.mean() >= 0.85
    strong = np.abs(true) >= 0.9  # strong true effects are found, in their direction
    assert (slopes["p_adjusted"][strong] < 0.05).all()
    assert (np.sign(slopes["estimate"][strong]) == np.sign(true[strong])).all()
    spec_json = json.loads(json.dumps(outputs.spec, default=str))
    fitted = {"process": "responses", "spec": spec_json, "fit": outputs.fit,
              "coefficients": outputs.coefficients}  # fmt: skip
    fits = {"response_repair": fitted}
    table = recovery_table(truth, fits)
    assert table["truth"].notna().all() and table["inside_ci"].mean() >= 0.85


def test_response_figure_step_draws_fitted_not_fitted_and_not_assessed(tmp_path):
    from resistance_outcomes.pipeline import figure_response_odds_step
    from resistance_outcomes.vocabulary import Stage, Vocabulary

    slopes = pd.DataFrame(
        {"kind": "simple_slope", "variable": "response_calm", "level": ["a", "b"],
         "ratio": [2.0, 1.1], "ratio_ci_low": [1.4, 0.8], "ratio_ci_high": [2.9, 1.5],
         "p_adjusted": [0.001, 0.6], "adjustment": "holm", "ratio_kind": "odds ratio"}
    )  # fmt: skip
    slopes.to_csv(tmp_path / "contrasts.csv", index=False)
    cases = {
        "fitted": ({"model": "m", "fitted": True}, Stage(True)),
        "not_fitted": ({"model": "m", "fitted": False, "reason": "no rows"}, Stage(True)),
        "not_assessed": ({"model": "m", "fitted": False}, Stage(False, "no response codes")),
    }
    for name, (fit, stage) in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(fit))
        vocab = tmp_path / f"{name}_vocabulary.json"
        vocab.write_text(Vocabulary(stages={"responses": stage}).to_json())
        run = SimpleNamespace(fit=tmp_path / f"{name}.json", contrasts=tmp_path / "contrasts.csv",
                              vocabulary=vocab)  # fmt: skip
        out = SimpleNamespace(pdf=tmp_path / f"{name}.pdf", png=tmp_path / f"{name}.png")
        figure_response_odds_step(input=run, output=out)
        assert out.pdf.stat().st_size > 0 and out.png.stat().st_size > 0, name
