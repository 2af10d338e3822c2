"""Configured models: entries, data levels and model frames on hand-made tables, clear
errors for bad entries, and outputs that refit to the same coefficients."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes import analysis, derive, estimability
from resistance_outcomes.analysis import (
    AnalysisTables,
    ModelEntryError,
    ModelSpec,
    data_level,
    derived_variables,
    fit_model,
    model_frame,
    parse_model_spec,
    read_model_frame,
    run_model,
)
from resistance_outcomes.models import fit_mixed, gee
from resistance_outcomes.pipeline import check_models_step
from resistance_outcomes.vocabulary import ConstructInfo, Vocabulary

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
DROPOUT = {
    "primary": "judged",
    "definitions": {
        "judged": {"rule": "end_status"},
        "fewer_than_3": {"rule": "min_attended", "sessions": 3},
    },
}
FILES = ["spec", "frame", "coefficients", "variance_components", "fit", "contrasts"]


def output_paths(folder):
    return {key: folder / f"{key}.{'json' if key in ('spec', 'fit') else 'csv'}" for key in FILES}


def hand_tables():
    """Four clients: C1 (T1, psychoanalytic) attends 1, 2, 3 of 3 and completes; C2 (T1)
    attends 1, misses 2 and drops out; C3 (T2, cognitive) attends 1, 2 of 4 and drops out;
    C4 (T2) attends 1 of 2, its session uncoded, and is ongoing."""
    clients = pd.DataFrame(
        {
            "study": "s",
            "client": ["C1", "C2", "C3", "C4"],
            "therapist": ["T1", "T1", "T2", "T2"],
            "framework": pd.Categorical(
                ["psychoanalytic", "psychoanalytic", "cognitive", "cognitive"],
                categories=FRAMEWORKS,
            ),
            "planned_sessions": [3, 3, 4, 2],
            "end_status": ["completed", "dropout", "dropout", "ongoing"],
        }
    )
    sessions = pd.DataFrame(
        {
            "study": "s",
            "client": ["C1", "C1", "C1", "C2", "C2", "C3", "C3", "C4"],
            "session": [1, 2, 3, 1, 2, 1, 2, 1],
            "attended": [True, True, True, True, False, True, True, True],
            "minutes": [50.0, 40.0, 50.0, 45.0, None, 50.0, 60.0, 50.0],
            "ruptures": pd.array([2, 0, 1, 3, None, 1, 2, None], dtype="Int64"),
            "repaired": pd.array([1, 0, 1, 1, None, 0, 2, None], dtype="Int64"),
            "resistance_arguing": pd.array([1, 0, 2, 0, None, 4, 1, None], dtype="Int64"),
            "resistance_denying": pd.array([0, 3, 0, 1, None, 0, 0, None], dtype="Int64"),
            "alliance": [5.0, 5.5, 6.0, 4.0, None, 4.5, None, 5.0],
        }
    )
    return AnalysisTables(
        clients=clients,
        sessions=sessions,
        session_table=derive.session_table(sessions, clients),
        client_table=derive.client_table(
            sessions, clients, DROPOUT["definitions"], primary="judged"
        ),
        dropout_definitions=DROPOUT["definitions"],
    )


def spec(name="m", **entry):
    entry = {
        "data": "sessions",
        "family": "poisson",
        "formula": "ruptures ~ framework + offset(log(minutes)) + (1 | client)",
        **entry,
    }
    return parse_model_spec(name, entry, DROPOUT)


# --- entries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"familly": "poisson"}, "model 'm': unknown key(s) familly"),
        ({"data": "segments"}, "data level 'segments' is not one of sessions, clients"),
        ({"family": "gamma"}, "family 'gamma' is not one of gaussian"),
        ({"formula": "ruptures framework"}, "must contain exactly one '~'"),
        ({"data": "clients", "dropout": "quick"}, "dropout definition 'quick' is not among"),
        ({"method": "gee", "family": "negative_binomial"}, "use family: poisson"),
        ({"method": "bayes"}, "method 'bayes' is not one of mixed, gee"),
        ({"min_attended": 0}, "min_attended must be a whole number >= 1, got 0"),
        ({"contrasts": {"slope": ["x"]}}, "unknown contrasts key(s) slope"),
    ],
)
def test_bad_entry_names_model_and_key(change, fragment):
    with pytest.raises(ModelEntryError) as err:
        spec(**change)
    assert fragment in str(err.value)
    assert str(err.value).startswith("model 'm':")


def test_entry_defaults_and_aliases():
    parsed = spec(data="person-period", family="nbinom2")
    assert (parsed.data, parsed.family, parsed.method, parsed.dropout) == (
        "person_period",
        "negative_binomial",
        "mixed",
        "judged",
    )
    assert spec().dropout is None  # sessions do not depend on a dropout definition


# --- data levels and model frames ---------------------------------------------------------


def test_sessions_level_keeps_attended_sessions_and_says_why():
    rows, why = data_level(spec(), hand_tables())
    assert len(rows) == 7
    assert why == [{"reason": "scheduled session not attended", "rows": 1}]


def test_clients_level_uses_the_models_dropout_definition():
    tables = hand_tables()
    judged, _ = data_level(spec(data="clients"), tables)
    fewer, _ = data_level(spec(data="clients", dropout="fewer_than_3"), tables)
    # end_status: C2, C3 dropped out, C4 ongoing (missing); fewer than 3 attended: C2, C3;
    # C4 ongoing with 1 < 3 attended: missing
    assert judged["dropout"].tolist() == [0, 1, 1, pd.NA]
    assert fewer["dropout"].tolist() == [0, 1, 1, pd.NA]
    assert fewer["dropout_judged"].tolist() == judged["dropout"].tolist()


def test_person_period_level_for_the_definition():
    rows, why = data_level(spec(data="person_period"), hand_tables())
    # C1 completer: sessions before the planned last (1, 2); C2 dropout: 1 (event);
    # C3 dropout: 1, 2 (event at 2); C4 ongoing, planned 2: session 1, censored
    assert list(zip(rows["client"], rows["time"], rows["event"], strict=True)) == [
        ("C1", 1, 0),
        ("C1", 2, 0),
        ("C2", 1, 1),
        ("C3", 1, 0),
        ("C3", 2, 1),
        ("C4", 1, 0),
    ]
    assert why == []


def test_min_attended_leaves_out_clients_and_counts_their_rows():
    rows, why = data_level(spec(min_attended=2), hand_tables())
    assert sorted(set(rows["client"])) == ["C1", "C3"]
    assert why == [
        {"reason": "scheduled session not attended", "rows": 1},
        {"reason": "client attended fewer than 2 sessions", "rows": 2},
    ]


def test_model_frame_keeps_exactly_the_rows_and_columns_fitted():
    model = spec(
        formula="alliance ~ framework + session_c + (1 | therapist/client)", family="gaussian"
    )
    rows, _ = data_level(model, hand_tables())
    frame, why = model_frame(model, rows)
    # attended sessions with an alliance rating: C1 1-3, C2 1, C3 1, C4 1 (C3's session 2
    # has none); session_c = session - mean attended session (1 + 2 + 3 + 1 + 1 + 2 + 1) / 7
    assert list(frame.columns) == [
        "study",
        "therapist",
        "client",
        "session",
        "alliance",
        "framework",
        "session_c",
    ]
    assert list(zip(frame["client"], frame["session"], strict=True)) == [
        ("C1", 1),
        ("C1", 2),
        ("C1", 3),
        ("C2", 1),
        ("C3", 1),
        ("C4", 1),
    ]
    np.testing.assert_allclose(frame["session_c"], frame["session"] - 11 / 7)
    assert why == [{"reason": "missing value in alliance", "rows": 1, "column": "alliance"}]


def test_missing_column_names_model_column_and_available_columns():
    model = spec(
        name="rupture_frequency",
        formula="ruptures ~ framework * sesion_c + offset(log(minutes)) + (1 | therapist/client)",
    )
    rows, _ = data_level(model, hand_tables())
    with pytest.raises(ModelEntryError) as err:
        model_frame(model, rows)
    message = str(err.value)
    assert message.startswith("model 'rupture_frequency': (data level sessions)")
    assert "'sesion_c'" in message and "available columns:" in message
    assert "session_c" in message.split("available columns:")[1]


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (
            {"formula": "alliance ~ framework + (1 | client)", "family": "poisson"},
            "family poisson needs whole counts >= 0, but column 'alliance' has the value 5.5 "
            "(study s, therapist T1, client C1, session 2)",
        ),
        (
            {"formula": "ruptures ~ framework + (1 | client)", "family": "binomial"},
            "family binomial needs a 0/1 response (or cbind(successes, failures)), but column "
            "'ruptures' has the value 2",
        ),
        (
            {
                "data": "clients",
                "formula": "dropout ~ framework + (1 | therapist)",
                "family": "gaussian",
            },
            "family gaussian does not fit the 0/1 response 'dropout'; use family: binomial",
        ),
    ],
)
def test_family_that_does_not_fit_the_response_stops_before_fitting(entry, fragment):
    model = spec(**entry)
    rows, _ = data_level(model, hand_tables())
    with pytest.raises(ModelEntryError) as err:
        model_frame(model, rows)
    assert str(err.value).startswith("model 'm': ")
    assert fragment in str(err.value)
    assert "available columns: " in str(err.value).lower()


def test_derived_variables_give_the_centring_constants():
    tables = hand_tables()
    model = spec(
        formula="alliance ~ session_c + unrepaired_within + unrepaired_between + (1 | client)",
        family="gaussian",
    )
    rows, _ = data_level(model, tables)
    frame, _ = model_frame(model, rows)
    derived = derived_variables(rows, frame)
    # attended sessions 1, 2, 3, 1, 1, 2, 1: mean 11 / 7. Unrepaired per client over coded
    # sessions: C1 (1, 0, 0) mean 1/3, C2 (2) 2, C3 (1, 0) 1/2; C4 uncoded. Grand mean of
    # the client means: (1/3 + 2 + 1/2) / 3
    assert derived["session_c"]["centre"] == pytest.approx(11 / 7)
    assert derived["unrepaired"]["grand_mean"] == pytest.approx((1 / 3 + 2 + 1 / 2) / 3)


# --- fitting and outputs ------------------------------------------------------------------


def synthetic_tables(seed=7, therapists=12, clients=6, sessions=8):
    """Canonical tables with Poisson ruptures, repairs, alliance and dropout, for fits."""
    rng = np.random.default_rng(seed)
    n = therapists * clients
    client_ids = [f"C{i:03d}" for i in range(n)]
    therapist = np.repeat([f"T{t:02d}" for t in range(therapists)], clients)
    framework = np.array(FRAMEWORKS)[np.repeat(np.arange(therapists) % 3, clients)]
    end = rng.choice(["completed", "dropout"], size=n, p=[0.75, 0.25])
    clients_df = pd.DataFrame(
        {
            "study": "s",
            "client": client_ids,
            "therapist": therapist,
            "framework": pd.Categorical(framework, categories=FRAMEWORKS),
            "planned_sessions": sessions,
            "end_status": end,
        }
    )
    rows = n * sessions
    ruptures = rng.poisson(0.8, rows)
    alliance = 5 + rng.normal(0, 0.5, n).repeat(sessions) + rng.normal(0, 0.4, rows)
    sessions_df = pd.DataFrame(
        {
            "study": "s",
            "client": np.repeat(client_ids, sessions),
            "session": np.tile(np.arange(1, sessions + 1), n),
            "attended": rng.uniform(size=rows) > 0.1,
            "minutes": 50.0,
            "ruptures": ruptures,
            "repaired": rng.binomial(ruptures, 0.6),
            "resistance_arguing": rng.poisson(0.5, rows),
            "resistance_denying": rng.poisson(0.7, rows),
            "alliance": alliance.round(2),
        }
    )
    return AnalysisTables(
        clients=clients_df,
        sessions=sessions_df,
        session_table=derive.session_table(sessions_df, clients_df),
        client_table=derive.client_table(
            sessions_df, clients_df, DROPOUT["definitions"], primary="judged"
        ),
        dropout_definitions=DROPOUT["definitions"],
        vocabulary=PROFILE_VOCABULARY,
    )


#: The synthetic study's constructs, with a composite whose two parts are profiled.
PROFILE_VOCABULARY = Vocabulary(
    constructs={
        "ruptures": ConstructInfo("ruptures", "Ruptures", "count", "any_of", stem="rupture"),
        "repaired": ConstructInfo("repaired", "Repaired", "count", "rated_at_least"),
        "resistance_arguing": ConstructInfo("resistance_arguing", "Arguing", "count", "codes"),
        "resistance_denying": ConstructInfo("resistance_denying", "Denying", "count", "codes"),
        "resistance": ConstructInfo(
            "resistance",
            "Resistance",
            "count",
            "sum_of",
            ("resistance_arguing", "resistance_denying"),
        ),
    },
    profile="resistance",
)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_tables()


MODELS = {
    "rupture_frequency": {
        "data": "sessions",
        "family": "poisson",
        "formula": "ruptures ~ framework * session_c + offset(log(minutes))"
        " + (1 | therapist/client)",
        "contrasts": {"slopes": ["session_c"]},
    },
    "resistance_profile": {
        "data": "profile_long",
        "family": "poisson",
        "formula": "profile_count ~ framework * profile_type"
        " + offset(log(minutes)) + (1 | therapist/client)",
        "contrasts": {"by": "profile_type"},
    },
    "repair_retention": {
        "data": "clients",
        "family": "binomial",
        "formula": "dropout ~ framework + repair_rate_between + (1 | therapist)",
    },
    "dropout_hazard": {
        "data": "person_period",
        "family": "binomial",
        "formula": "event ~ log_time + framework + unrepaired_within + (1 | therapist)",
        "method": "gee",
    },
    "alliance": {
        "data": "sessions",
        "family": "gaussian",
        "formula": "alliance ~ framework * session_c + (1 | therapist/client)",
        "contrasts": {"slopes": ["session_c"]},
    },
}


@pytest.mark.parametrize("name", list(MODELS))
def test_outputs_are_written_and_refit_from_the_model_frame(name, synthetic, tmp_path):
    model = parse_model_spec(name, MODELS[name], DROPOUT)
    outputs = run_model(model, synthetic)
    paths = output_paths(tmp_path)
    outputs.write(paths)
    written = json.loads(paths["spec"].read_text())
    fit = json.loads(paths["fit"].read_text())
    assert written["formula"] == MODELS[name]["formula"] and written["data"] == model.data
    assert fit["nobs"] == len(outputs.frame) and fit["fitted"] is True
    assert {"flags", "rows_excluded", "converged", "singular", "messages"} <= set(fit)
    frame = read_model_frame(paths["frame"], written)
    pd.testing.assert_frame_equal(frame, outputs.frame, check_dtype=False)
    refit = fit_model(ModelSpec.from_dict(written), frame)
    coefficients = pd.read_csv(paths["coefficients"])
    np.testing.assert_allclose(
        refit.coefficients["estimate"], coefficients["estimate"], rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        refit.coefficients["std_error"], coefficients["std_error"], rtol=1e-5
    )


def test_model_frame_holds_only_keys_and_analysis_variables(synthetic):
    outputs = run_model(parse_model_spec("m", MODELS["rupture_frequency"], DROPOUT), synthetic)
    assert list(outputs.frame.columns) == [
        "study",
        "therapist",
        "client",
        "session",
        "ruptures",
        "framework",
        "session_c",
        "minutes",
    ]


def test_gee_fit_matches_the_engines_gee(synthetic):
    model = parse_model_spec("m", MODELS["dropout_hazard"], DROPOUT)
    rows, _ = data_level(model, synthetic)
    frame, _ = model_frame(model, rows)
    fit = fit_model(model, frame)
    engine = gee(model.formula, frame, family="binomial")
    np.testing.assert_allclose(fit.coefficients["estimate"], engine["estimate"], rtol=1e-8)
    np.testing.assert_allclose(fit.coefficients["std_error"], engine["std_error"], rtol=1e-8)
    assert (fit.cluster, fit.n_clusters) == (engine.attrs["cluster"], engine.attrs["n_clusters"])


def test_singular_fit_still_writes_its_outputs_with_the_flag(synthetic, tmp_path):
    # ruptures were drawn without any therapist or client effect: both variances are 0
    model = parse_model_spec("m", MODELS["rupture_frequency"], DROPOUT)
    outputs = run_model(model, synthetic)
    assert outputs.fit["singular"] is True
    assert "singular fit" in outputs.fit["flags"]
    assert len(outputs.coefficients) == 6 and len(outputs.contrasts) == 6


def test_optional_model_without_its_response_is_reported_not_fitted(tmp_path):
    tables = hand_tables()
    tables.session_table = tables.session_table.drop(columns=["alliance"])
    model = spec(formula="alliance ~ framework + (1 | client)", family="gaussian", optional=True)
    outputs = run_model(model, tables)
    assert outputs.fit["fitted"] is False and outputs.fit["flags"] == ["not fitted"]
    assert "no values of the response 'alliance'" in outputs.fit["reason"]
    outputs.write(output_paths(tmp_path))
    assert json.loads((tmp_path / "fit.json").read_text())["fitted"] is False
    with pytest.raises(ModelEntryError, match="uses column"):
        run_model(spec(formula="alliance ~ framework + (1 | client)", family="gaussian"), tables)


# --- checks before any fit ---------------------------------------------------------------


def test_check_models_names_every_bad_model_column_and_config_file(monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("the check must not fit a model")

    monkeypatch.setattr(analysis, "fit_model", no_fit)
    monkeypatch.setattr(analysis, "fit_mixed", no_fit)
    specs = {
        "good": spec(name="good"),
        "typo": spec(name="typo", formula="ruptures ~ framwork + (1 | client)"),
        "family": spec(name="family", formula="alliance ~ framework + (1 | client)"),
    }
    with pytest.raises(ModelEntryError) as err:
        analysis.check_models(specs, hand_tables(), config_file="labs/ours.yaml")
    lines = str(err.value).splitlines()
    assert lines[0].startswith("model 'typo': (data level sessions)")
    assert "'framwork'" in lines[0] and "available columns:" in lines[0]
    assert "framework" in lines[0].split("available columns:")[1]
    assert lines[1].startswith("model 'family': family poisson needs whole counts")
    assert "labs/ours.yaml" in lines[2] and "no model was fitted" in lines[2]


def test_check_models_reports_rows_and_skips_optional_models_without_data():
    tables = hand_tables()
    tables.session_table = tables.session_table.drop(columns=["alliance"])
    specs = {
        "good": spec(name="good"),
        "alliance": spec(
            name="alliance",
            formula="alliance ~ framework + (1 | client)",
            family="gaussian",
            optional=True,
        ),
    }
    checked = analysis.check_models(specs, tables)["models"]
    # 7 attended sessions, C4's uncoded one has no ruptures: 6 rows
    assert checked["good"]["status"] == "ok" and checked["good"]["rows"] == 6
    assert checked["good"]["rows_excluded"] == [
        {"reason": "scheduled session not attended", "rows": 1},
        {"reason": "missing value in ruptures", "rows": 1, "column": "ruptures"},
    ]
    assert checked["alliance"] == {
        "data": "sessions",
        "status": "skipped",
        "reason": "the data have no values of the response 'alliance'",
    }


def test_check_models_step_writes_checked_json(tmp_path):
    tables = hand_tables()
    paths = {}
    for key in ("clients", "sessions", "session_table", "client_table"):
        paths[key] = tmp_path / f"{key}.parquet"
        getattr(tables, key).to_parquet(paths[key])
    entry = {"data": "sessions", "family": "poisson", "formula": "ruptures ~ 1"}
    paths["entries"] = [tmp_path / "entry.json"]
    settings = {"name": "m", "entry": entry, "dropout": DROPOUT, "adjust": "holm"}
    paths["entries"][0].write_text(json.dumps(settings))
    params = SimpleNamespace(config_file="config/config.yaml")
    out = SimpleNamespace(checked=tmp_path / "checked.json")
    check_models_step(input=SimpleNamespace(**paths), output=out, params=params)
    assert json.loads(out.checked.read_text())["models"]["m"]["rows"] == 6


# --- minutes are optional -----------------------------------------------------------------


def test_offset_model_leaves_out_sessions_without_minutes_and_counts_them():
    tables = hand_tables()
    sessions = tables.sessions.copy()
    sessions.loc[(sessions.client == "C1") & (sessions.session == 2), "minutes"] = np.nan
    sessions.loc[(sessions.client == "C3") & (sessions.session == 1), "minutes"] = np.nan
    tables.sessions = sessions
    tables.session_table = derive.session_table(sessions, tables.clients)
    outputs = run_model(spec(formula="ruptures ~ 1 + offset(log(minutes)) + (1 | client)"), tables)
    # 7 attended sessions; C4's is uncoded (no ruptures), C1 2 and C3 1 have no minutes
    assert outputs.fit["nobs"] == 4
    excluded = outputs.fit["rows_excluded"]
    assert {"reason": "missing value in minutes", "rows": 2, "column": "minutes"} in excluded
    assert {"reason": "missing value in ruptures", "rows": 1, "column": "ruptures"} in excluded
    kept = set(zip(outputs.frame["client"], outputs.frame["session"], strict=True))
    assert kept == {("C1", 1), ("C1", 3), ("C2", 1), ("C3", 2)}


# --- separation and estimates the data do not identify ----------------------------------


def client_tables_with_dropout(dropout_by_framework, seed=11):
    """12 therapists (4 per framework), 8 clients each, 4 attended sessions of 50 minutes;
    each client drops out with the framework's probability (0: nobody drops out)."""
    rng = np.random.default_rng(seed)
    therapist = np.repeat([f"T{t:02d}" for t in range(12)], 8)
    framework = np.array(FRAMEWORKS)[np.repeat(np.arange(12) % 3, 8)]
    p = np.array([dropout_by_framework[f] for f in framework])
    end = np.where(rng.uniform(size=96) < p, "dropout", "completed")
    client_ids = [f"C{i:03d}" for i in range(96)]
    clients = pd.DataFrame(
        {
            "study": "s",
            "client": client_ids,
            "therapist": therapist,
            "framework": pd.Categorical(framework, categories=FRAMEWORKS),
            "planned_sessions": 4,
            "end_status": end,
        }
    )
    sessions = pd.DataFrame(
        {
            "study": "s",
            "client": np.repeat(client_ids, 4),
            "session": np.tile([1, 2, 3, 4], 96),
            "attended": True,
            "minutes": 50.0,
            "ruptures": rng.poisson(1.0, 384),
            "repaired": 0,
        }
    )
    tables = AnalysisTables(
        clients=clients,
        sessions=sessions,
        session_table=derive.session_table(sessions, clients),
        client_table=derive.client_table(
            sessions, clients, DROPOUT["definitions"], primary="judged"
        ),
        dropout_definitions=DROPOUT["definitions"],
    )
    return tables, clients


DROPOUT_MODEL = {
    "data": "clients",
    "family": "binomial",
    "formula": "dropout ~ framework + (1 | therapist)",
    "contrasts": {"pairwise": True},
}


def test_framework_without_dropout_is_not_estimable_and_has_no_ratio(tmp_path):
    tables, clients = client_tables_with_dropout(
        {"psychoanalytic": 0.35, "behavioral": 0.0, "cognitive": 0.3}
    )
    # the hand-made table: no client of a behavioral therapist dropped out
    behavioral = clients[clients.framework == "behavioral"]
    assert (behavioral.end_status == "completed").all()
    assert (clients[clients.framework != "behavioral"].end_status == "dropout").sum() > 10
    outputs = run_model(parse_model_spec("m", DROPOUT_MODEL, DROPOUT), tables)
    outputs.write(output_paths(tmp_path))
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["not_estimable"] == [
        {"term": "frameworkbehavioral", "reason": "no dropout in behavioral (framework)"}
    ]
    assert "not estimable: no dropout in behavioral (framework)" in fit["flags"]
    assert fit["r2_marginal"] is None and fit["r2_conditional"] is None
    coefficients = pd.read_csv(tmp_path / "coefficients.csv")
    assert coefficients["estimable"].tolist() == [True, False, True]
    bad = coefficients.set_index("term").loc["frameworkbehavioral"]
    assert bad["note"] == "no dropout in behavioral (framework)"
    assert np.isnan([bad.exp_estimate, bad.exp_ci_low, bad.exp_ci_high]).all()
    assert bad["estimate"] < -5  # the optimiser ran off towards minus infinity
    good = coefficients.set_index("term").loc["frameworkcognitive"]
    assert good["exp_estimate"] == pytest.approx(np.exp(good["estimate"]))
    contrasts = pd.read_csv(tmp_path / "contrasts.csv")
    pairs = list(zip(contrasts["level"], contrasts["reference"], strict=True))
    assert pairs == [
        ("psychoanalytic", "behavioral"),
        ("psychoanalytic", "cognitive"),
        ("behavioral", "cognitive"),
    ]
    assert contrasts["estimable"].tolist() == [False, True, False]
    assert contrasts["ratio"].isna().tolist() == [True, False, True]
    assert (contrasts["note"][~contrasts["estimable"]] == bad["note"]).all()
    # the estimable contrast is what the data without the separated framework give
    others = clients.framework != "behavioral"
    frame = outputs.frame[outputs.frame["framework"] != "behavioral"].copy()
    frame["framework"] = frame["framework"].astype(str)
    assert others.sum() == len(frame)
    alone = fit_mixed(DROPOUT_MODEL["formula"], frame, family="binomial")
    # (levels sorted: cognitive is the reference there)
    log_or = alone.coefficients.set_index("term").loc["frameworkpsychoanalytic", "estimate"]
    assert contrasts.loc[1, "estimate"] == pytest.approx(log_or, abs=1e-3)


def test_without_separation_nothing_is_flagged():
    tables, _ = client_tables_with_dropout(
        {"psychoanalytic": 0.35, "behavioral": 0.2, "cognitive": 0.3}
    )
    outputs = run_model(parse_model_spec("m", DROPOUT_MODEL, DROPOUT), tables)
    assert outputs.fit["not_estimable"] == []
    assert not any(f.startswith("not estimable") for f in outputs.fit["flags"])
    assert outputs.coefficients["estimable"].all() and outputs.contrasts["estimable"].all()
    assert (outputs.coefficients["note"] == "").all()
    np.testing.assert_allclose(
        outputs.coefficients["exp_estimate"], np.exp(outputs.coefficients["estimate"])
    )
    np.testing.assert_allclose(
        outputs.contrasts["ratio"], np.exp(outputs.contrasts["estimate"]), rtol=1e-10
    )
    assert 0 < outputs.fit["r2_marginal"] < 1


def test_count_cell_with_only_zeros_is_not_estimable():
    # framework x behaviour: behavioural clients never deny; every other cell has counts
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "client": np.repeat([f"C{i}" for i in range(24)], 10),
            "framework": np.repeat(["behavioral", "cognitive"], 120),
            "behaviour": np.tile(["arguing", "denying"], 120),
        }
    )
    df["count"] = rng.poisson(1.5, len(df))
    df.loc[(df.framework == "behavioral") & (df.behaviour == "denying"), "count"] = 0
    fit = fit_mixed("count ~ framework * behaviour + (1 | client)", df, family="poisson")
    result = estimability.assess(fit, "poisson")
    reason = "no count in behavioral (framework) x denying (behaviour) (every count is 0)"
    # treatment coding: reference cell behavioral x arguing; the cell behavioral x denying
    # is (Intercept) + behaviourdenying, so the behaviour main effect and the interaction
    # (which compares it with cognitive) are the coefficients it makes unidentified
    assert result.not_estimable == [
        {"term": "behaviourdenying", "reason": reason},
        {"term": "frameworkcognitive:behaviourdenying", "reason": reason},
    ]
    assert result.coefficients[0] == "" and result.coefficients[1] == ""


def test_estimable_functions_is_the_row_space_of_the_rows_left():
    # cell means of three levels a (reference), b, c: with a's rows left out, the
    # intercept (a's mean) and b - a are not estimable, b - c (= b-coef - c-coef) is
    X = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 1.0]])
    keep = np.array([False, False, True, True])
    L = np.array([[1, 0, 0], [0, 1, 0], [0, 1, -1], [1, 1, 0.0]])
    assert estimability.estimable_functions(X, keep, L).tolist() == [False, False, True, True]
    # columns in other units give the same answer
    assert estimability.estimable_functions(
        X * [1, 1000, 0.001], keep, L / [1, 1000, 0.001]
    ).tolist() == [False, False, True, True]


@pytest.mark.parametrize(
    ("estimate", "se", "scale", "intercept", "fragment"),
    [
        (-31.4, 2.0, 1.0, False, "estimate -31.4 on the link scale is beyond +-10"),
        (0.3, 12.0, 1.0, False, "standard error 12 on the link scale is above 5"),
        (2.0, 0.5, 6.0, False, "estimate 2 on the link scale per unit (x 6"),
        (-12.0, 0.2, 1.0, True, None),  # a rare event's intercept is fine
        (9.0, 4.9, 1.0, False, None),
        (0.1, float("nan"), 1.0, False, "no standard error"),
    ],
)
def test_runaway_rule(estimate, se, scale, intercept, fragment):
    note = estimability._runaway(estimate, se, scale, intercept)
    if fragment is None:
        assert note is None
    else:
        assert fragment in note


def test_optional_model_whose_data_level_cannot_be_built_is_skipped_with_the_reason():
    # the hand-made tables have no vocabulary, so no profiled composite: no profile_long
    entry = {"data": "profile_long", "formula": "profile_count ~ framework + (1 | client)"}
    optional = spec(name="profile", optional=True, **entry)
    outputs = run_model(optional, hand_tables())
    assert outputs.fit["fitted"] is False and outputs.fit["not_estimable"] == []
    assert outputs.fit["reason"].startswith(
        "its data level profile_long cannot be built from these data: sessions table: no "
        "part of the profiled composite is present"
    )
    checked = analysis.check_models({"profile": optional}, hand_tables())["models"]
    assert checked["profile"]["status"] == "skipped"
    assert checked["profile"]["reason"] == outputs.fit["reason"]
    with pytest.raises(ModelEntryError, match=r"^model 'profile': \(data level profile_long\)"):
        analysis.check_models({"profile": spec(name="profile", **entry)}, hand_tables())


# --------------------------------------------------------------------------- rupture level

RESPONSE_MODEL = {
    "data": "rupture_segments",
    "family": "binomial",
    "formula": "repaired ~ framework * ({responses}) + (1 | therapist/client)",
    "contrasts": {"slopes": ["{responses}"]},
}
TWO_RESPONSES = ["response_calm", "response_reframe"]


def rupture_tables(rows, responses=TWO_RESPONSES):
    info = {"responses": list(responses), "within": "ruptures"}
    return AnalysisTables(None, None, None, None, {}, rupture_segments=rows, rupture_info=info)


def identical_clients():
    """Rupture rows where every client of a framework has the same 40 rows (responses and
    repair drawn once per framework), so that neither therapists nor clients vary: the
    random-effect variances are estimated at 0 and the fixed effects are those of a
    logistic regression of the same rows (statsmodels GLM Binomial)."""
    rng = np.random.default_rng(7)
    log_or = {"psychoanalytic": (-0.3, 1.2), "behavioral": (0.4, -0.2), "cognitive": (1.0, 0.3)}
    drawn = {}
    for framework in FRAMEWORKS:
        x = rng.binomial(1, 0.4, (40, 2))
        p = 1 / (1 + np.exp(-(-0.2 + x @ np.array(log_or[framework]))))
        drawn[framework] = (x, rng.binomial(1, p))
    rows = []
    for t, framework in enumerate(FRAMEWORKS * 2):  # two therapists, two clients each
        x, y = drawn[framework]
        for c in range(2):
            rows.append(
                pd.DataFrame(x, columns=TWO_RESPONSES).assign(
                    study="s", therapist=f"T{t}", client=f"C{t}{c}", session=1, repaired=y,
                    framework=framework,
                )
            )  # fmt: skip
    rows = pd.concat(rows, ignore_index=True)
    rows["framework"] = pd.Categorical(rows["framework"], categories=FRAMEWORKS)
    return rows


def test_response_model_without_random_variance_matches_statsmodels_glm():
    import patsy
    import statsmodels.api as sm
    from statsmodels.stats.multitest import multipletests

    rows = identical_clients()
    outputs = run_model(parse_model_spec("response_repair", RESPONSE_MODEL), rupture_tables(rows))
    assert outputs.variance_components["variance"].tolist() == [0.0, 0.0]
    assert outputs.fit["flags"] == ["singular fit"]
    assert outputs.spec["formula"] == (
        "repaired ~ framework * (response_calm + response_reframe) + (1 | therapist/client)"
    )
    # the independent fit: statsmodels' GLM of the same rows, same coding
    fixed = "repaired ~ framework * (response_calm + response_reframe)"
    y, x = patsy.dmatrices(fixed, rows, return_type="dataframe")
    glm = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    coefficients = outputs.coefficients
    np.testing.assert_allclose(coefficients["estimate"], glm.params, atol=1e-5)
    np.testing.assert_allclose(coefficients["std_error"], glm.bse, rtol=1e-4)
    # per-framework odds ratios: b_response + b_framework:response, Holm over frameworks
    slopes = outputs.contrasts[outputs.contrasts["kind"] == "simple_slope"]
    assert slopes["variable"].tolist() == [r for r in TWO_RESPONSES for _ in FRAMEWORKS]
    names = list(x.columns)
    for response in TWO_RESPONSES:
        mine = slopes[slopes["variable"] == response]
        weights = np.zeros((3, len(names)))
        for i, framework in enumerate(FRAMEWORKS):
            weights[i, names.index(response)] = 1
            if i:
                weights[i, names.index(f"framework[T.{framework}]:{response}")] = 1
        test = glm.t_test(weights)
        np.testing.assert_allclose(mine["estimate"], test.effect, atol=1e-5)
        np.testing.assert_allclose(mine["std_error"], test.sd, rtol=1e-4)
        np.testing.assert_allclose(mine["ratio"], np.exp(test.effect), rtol=1e-4)
        holm = multipletests(test.pvalue.ravel(), method="holm")[1]
        np.testing.assert_allclose(mine["p_adjusted"], holm, rtol=1e-3)
    assert outputs.contrasts["estimable"].all()


def test_response_always_followed_by_repair_in_a_framework_is_not_estimable():
    rows = identical_clients()
    cognitive_calm = (rows["framework"] == "cognitive") & (rows["response_calm"] == 1)
    rows.loc[cognitive_calm, "repaired"] = 1  # every cognitive rupture met calmly is repaired
    outputs = run_model(parse_model_spec("response_repair", RESPONSE_MODEL), rupture_tables(rows))
    slopes = outputs.contrasts.set_index(["variable", "level"])
    assert not slopes.loc[("response_calm", "cognitive"), "estimable"]
    assert np.isnan(slopes.loc[("response_calm", "cognitive"), "ratio"])
    assert slopes.loc[("response_calm", "psychoanalytic"), "estimable"]
    assert slopes.loc[("response_reframe", "cognitive"), "estimable"]
    assert any(f.startswith("not estimable") for f in outputs.fit["flags"])


def test_response_resolution_model_matches_statsmodels_mixedlm():
    """The rating as a linear outcome with one grouping factor (clients): REML estimates
    against statsmodels' MixedLM of the same rows."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(11)
    n, clients = 600, 40
    client = rng.integers(0, clients, n)
    rows = pd.DataFrame(rng.binomial(1, 0.35, (n, 2)), columns=TWO_RESPONSES)
    rows["framework"] = pd.Categorical(np.array(FRAMEWORKS)[client % 3], categories=FRAMEWORKS)
    rows["client"] = [f"C{c}" for c in client]
    rows["therapist"] = [f"T{c // 2}" for c in client]
    rows["study"], rows["session"] = "s", 1
    effect = np.where(rows["framework"] == "cognitive", 0.8, 0.3)
    rows["resolution"] = (
        2.5 + effect * rows["response_calm"] + 0.5 * rows["response_reframe"]
        + rng.normal(0, 0.5, clients)[client] + rng.normal(0, 1.0, n)
    )  # fmt: skip
    entry = {**RESPONSE_MODEL, "family": "gaussian",
             "formula": "resolution ~ framework * ({responses}) + (1 | client)"}  # fmt: skip
    outputs = run_model(parse_model_spec("response_resolution", entry), rupture_tables(rows))
    reference = smf.mixedlm(
        "resolution ~ framework * (response_calm + response_reframe)", rows, groups="client"
    ).fit(reml=True)
    np.testing.assert_allclose(
        outputs.coefficients["estimate"], reference.fe_params.to_numpy(), atol=1e-4
    )
    variance = outputs.variance_components.set_index("group")["variance"]
    assert variance["client"] == pytest.approx(float(reference.cov_re.iloc[0, 0]), rel=1e-3)


def lme4_rupture_rows():
    """600 rupture rows, 12 therapists (4 per framework), 48 clients, two responses with
    framework-specific log odds ratios, therapist SD 0.5 and client SD 0.7 (logit)."""
    rng = np.random.default_rng(20261202)
    therapist = np.repeat(np.arange(12), 50)
    client = therapist * 4 + rng.integers(0, 4, 600)
    x = rng.binomial(1, 0.4, (600, 2))
    log_or = np.array([[1.0, 0.2], [0.3, 0.9], [0.6, -0.4]])[therapist % 3]
    eta = -0.3 + (x * log_or).sum(axis=1) + rng.normal(0, 0.5, 12)[therapist]
    eta += rng.normal(0, 0.7, 48)[client]
    rows = pd.DataFrame(
        {
            "study": "s",
            "therapist": [f"T{t}" for t in therapist],
            "client": [f"C{c}" for c in client],
            "session": 1,
            "framework": pd.Categorical(np.array(FRAMEWORKS)[therapist % 3], FRAMEWORKS),
            "response_calm": x[:, 0],
            "response_reframe": x[:, 1],
            "repaired": rng.binomial(1, 1 / (1 + np.exp(-eta))),
        }
    )
    return rows


#: lme4 1.1.31 (R 4.2), Laplace, on lme4_rupture_rows() written to rows.csv:
#:   d$framework <- factor(d$framework, levels = c("psychoanalytic", "behavioral",
#:                                                 "cognitive"))
#:   m <- glmer(repaired ~ framework * (response_calm + response_reframe)
#:              + (1 | therapist/client), data = d, family = binomial,
#:              control = glmerControl(optimizer = "bobyqa"))
#:   fixef(m); sqrt(diag(vcov(m))); as.data.frame(VarCorr(m)); logLik(m)
LME4_RESPONSES = {
    "(Intercept)": (-0.2412365327636, 0.2904470474),
    "frameworkbehavioral": (0.0004082135792, 0.4092043160),
    "frameworkcognitive": (0.4502213018140, 0.4076126841),
    "response_calm": (0.9701795899736, 0.3209165441),
    "response_reframe": (-0.1300441213003, 0.3099376715),
    "frameworkbehavioral:response_calm": (-0.5887833017113, 0.4458527500),
    "frameworkcognitive:response_calm": (-0.1690041657796, 0.4535626055),
    "frameworkbehavioral:response_reframe": (0.8684188121624, 0.4409429244),
    "frameworkcognitive:response_reframe": (-0.8584806406098, 0.4439683684),
}
LME4_VARIANCES = {"therapist:client": 0.22559355380, "therapist": 0.05967307015}
LME4_LOGLIK = -394.4685947


def test_response_model_matches_lme4():
    outputs = run_model(
        parse_model_spec("response_repair", RESPONSE_MODEL), rupture_tables(lme4_rupture_rows())
    )
    coefficients = outputs.coefficients.set_index("term")
    assert sorted(coefficients.index) == sorted(LME4_RESPONSES)
    for term, (estimate, se) in LME4_RESPONSES.items():
        assert coefficients.loc[term, "estimate"] == pytest.approx(estimate, abs=2e-4), term
        assert coefficients.loc[term, "std_error"] == pytest.approx(se, rel=2e-3), term
    variance = outputs.variance_components.set_index("group")["variance"]
    for group, value in LME4_VARIANCES.items():
        assert variance[group] == pytest.approx(value, rel=1e-2, abs=1e-4)
    assert outputs.fit["loglik"] == pytest.approx(LME4_LOGLIK, abs=1e-3)
    # per-framework log odds ratios of calm: b_calm + b_framework:calm
    slopes = outputs.contrasts.set_index(["variable", "level"])["estimate"]
    calm = LME4_RESPONSES["response_calm"][0]
    assert slopes[("response_calm", "psychoanalytic")] == pytest.approx(calm, abs=2e-4)
    behavioral = calm + LME4_RESPONSES["frameworkbehavioral:response_calm"][0]
    assert slopes[("response_calm", "behavioral")] == pytest.approx(behavioral, abs=3e-4)
