"""Tests of the example-study simulator (resistance_outcomes.simulate).

Expected values come from the generating model itself (the truth): each realised quantity
is compared with its generating value with a tolerance of Z standard errors, the standard
error written out in the test. Counts, ratings and events are re-derived here from the raw
files' columns, independently of the simulator's internals.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin
import pytest
import statsmodels.api as sm
from scipy.special import expit, logit

from resistance_outcomes.codebook import load_codebook
from resistance_outcomes.simulate import (
    CONFRONTATION_MARKERS,
    DEFAULT_PARAMS,
    FORM_OF,
    FRAMEWORKS,
    OUTPUT_FILES,
    PARAMETER_NOTES,
    REPAIR_STRATEGIES,
    RESISTANCE_CODES,
    RESISTANCE_FORMS,
    THERAPIST_RESPONSES,
    WITHDRAWAL_MARKERS,
    SimulationError,
    main,
    simulate_study,
    write_study,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "resources" / "example"
Z = 4.0  # tolerance, in standard errors, for realised-versus-generating comparisons
SMALL = {"n_therapists_per_framework": 2, "clients_per_therapist": 3}


@pytest.fixture(scope="module")
def study():
    """The default example study."""
    return simulate_study()


@pytest.fixture(scope="module")
def large():
    """A larger study (1,920 clients, about 18,000 attended sessions) for rate checks."""
    return simulate_study(seed=11, n_therapists_per_framework=80)


@pytest.fixture(scope="module")
def large_sessions(large):
    """Attended sessions of the larger study with primary-coder counts and random effects."""
    return session_table(large)


# --------------------------------------------------------------------------- helpers


def frameworks_of(study):
    """client_id -> framework through the label map stated in the truth."""
    labels = study.truth["treatment_labels"]
    return study.clients.set_index("client_id")["treatment"].map(labels)


def segment_table(codes):
    """One row per client x session x role x segment: rupture type, resolution, behaviours."""
    c = codes.assign(
        withdrawal=codes["code"].isin(WITHDRAWAL_MARKERS),
        confrontation=codes["code"].isin(CONFRONTATION_MARKERS),
        strategy=codes["code"].isin(REPAIR_STRATEGIES),
        response=codes["code"].isin(THERAPIST_RESPONSES.values()),
        rating=codes["value"].where(codes["code"] == "RES"),
        n_res=codes["code"] == "RES",
    )
    for kind, code in {**RESISTANCE_CODES, **THERAPIST_RESPONSES}.items():
        c[kind] = c["code"] == code
    keys = ["client_id", "session_no", "coder_role", "segment"]
    flags = [
        "withdrawal",
        "confrontation",
        "strategy",
        "response",
        *RESISTANCE_CODES,
        *THERAPIST_RESPONSES,
    ]
    seg = c.groupby(keys)[flags].any()
    seg["rating"] = c.groupby(keys)["rating"].max()
    seg["n_res"] = c.groupby(keys)["n_res"].sum()
    seg["rupture"] = seg["withdrawal"] | seg["confrontation"]
    return seg.reset_index()


def session_table(study, role="primary"):
    """Attended sessions with the role's construct counts (0 when no code), framework and
    the realised random effects."""
    seg = segment_table(study.codes)
    seg = seg[seg["coder_role"] == role]
    seg = seg.assign(
        repaired=seg["rupture"] & (seg["rating"] >= 4),
        unrepaired=seg["rupture"] & (seg["rating"] <= 3),
    )
    counts = seg.groupby(["client_id", "session_no"])[
        ["rupture", "withdrawal", "repaired", "unrepaired", *RESISTANCE_CODES, *THERAPIST_RESPONSES]
    ].sum()
    for form, types in RESISTANCE_FORMS.items():
        counts[form] = counts[list(types)].sum(axis=1)
    counts["all_resistance"] = counts[list(RESISTANCE_FORMS)].sum(axis=1)
    counts["all_responses"] = counts[list(THERAPIST_RESPONSES)].sum(axis=1)
    sessions = study.sessions[study.sessions["attended"] == "yes"]
    table = sessions.merge(counts, on=["client_id", "session_no"], how="left")
    count_columns = counts.columns.tolist()
    table[count_columns] = table[count_columns].fillna(0).astype(int)
    table["minutes"] = table["minutes"].astype(float)
    table["session_c"] = (table["session_no"] - 8.5) / 7.5  # truth: session_c definition
    table["framework"] = table["client_id"].map(frameworks_of(study))
    return table.merge(study.random_effects, on="client_id")


def by_framework(values, frameworks):
    return np.array([values[f] for f in frameworks])


def assert_same_value(stated, value):
    """Nested mappings with the same keys and numbers equal to 6 significant digits."""
    if isinstance(value, dict):
        assert stated.keys() == value.keys()
        for key in value:
            assert_same_value(stated[key], value[key])
    else:
        np.testing.assert_allclose(stated, value, rtol=1e-5)


def z_score(observed, expected, variance):
    """(sum observed - sum expected) / sqrt(sum variance)."""
    return (np.sum(observed) - np.sum(expected)) / math.sqrt(np.sum(variance))


def jackknife_se(statistic, sums):
    """Delete-one-cluster jackknife SE of ``statistic(sums)`` (rows: clusters)."""
    sums = np.asarray(sums, dtype=float)
    leave_one_out = sums.sum(axis=0) - sums
    values = np.array([statistic(row) for row in leave_one_out])
    n = len(values)
    return math.sqrt((n - 1) / n * np.sum((values - values.mean()) ** 2))


def icc_a1_from_sums(s):
    """Large-sample ICC(A,1) of two ratings from sums [n, x, y, x^2, y^2, xy]."""
    n, sx, sy, sxx, syy, sxy = s
    mx, my = sx / n, sy / n
    vx, vy, c = sxx / n - mx**2, syy / n - my**2, sxy / n - mx * my
    return 2 * c / (vx + vy + (mx - my) ** 2)


def kappa_from_sums(s):
    """Cohen's kappa from cell counts [both yes, x only, y only, both no]."""
    n11, n10, n01, n00 = s
    n = n11 + n10 + n01 + n00
    px, py = (n11 + n10) / n, (n11 + n01) / n
    chance = px * py + (1 - px) * (1 - py)
    return ((n11 + n00) / n - chance) / (1 - chance)


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path):
    first = write_study(simulate_study(seed=3, **SMALL), tmp_path / "a")
    second = write_study(simulate_study(seed=3, **SMALL), tmp_path / "b")
    other = write_study(simulate_study(seed=4, **SMALL), tmp_path / "c")
    assert [p.name for p in first] == list(OUTPUT_FILES)
    for a, b, c in zip(first, second, other, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
        assert b"\r" not in a.read_bytes()


def test_committed_example_equals_fresh_output(tmp_path, study):
    assert EXAMPLE.is_dir(), "resources/example/ is missing: run `make example`"
    for path in write_study(study, tmp_path):
        committed = EXAMPLE / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs from a fresh simulate_study() output: run `make example`"
        )
    readme = (EXAMPLE / "README.md").read_text()
    assert "SIMULATED" in readme
    assert "resistance-outcomes-simulate --out resources/example" in readme
    total = sum(p.stat().st_size for p in EXAMPLE.iterdir())
    assert total < 2_000_000


# --------------------------------------------------------------------------- structure


def test_raw_tables_have_the_lab_columns(study):
    assert list(study.clients.columns) == [
        "client_id",
        "therapist_id",
        "treatment",
        "planned_sessions",
        "end_status",
        "baseline_severity",
    ]
    assert list(study.sessions.columns) == [
        "client_id",
        "session_no",
        "attended",
        "minutes",
        "homework",
        "wai",
        "psq_tension",
        "psq_intensity",
        "psq_resolution",
    ]
    assert list(study.codes.columns) == [
        "client_id",
        "session_no",
        "segment",
        "coder",
        "coder_role",
        "code",
        "value",
    ]
    assert list(study.coding_log.columns) == [
        "client_id",
        "session_no",
        "coder",
        "coder_role",
        "segments",
    ]


def test_design_sizes_labels_and_therapists(study):
    clients = study.clients
    assert len(clients) == 360 and clients["client_id"].is_unique
    assert clients["therapist_id"].nunique() == 45
    assert (clients.groupby("therapist_id").size() == 8).all()
    framework = frameworks_of(study)
    assert framework.notna().all(), "every label maps to a framework in the truth"
    per_therapist = framework.groupby(clients.set_index("client_id")["therapist_id"]).nunique()
    assert (per_therapist == 1).all(), "each therapist practises one framework"
    assert (framework.value_counts() == 120).all()
    assert clients["planned_sessions"].between(8, 16).all()
    assert clients["baseline_severity"].between(5, 27).all()
    assert set(clients["end_status"]) <= {"completed", "dropout", "referred", "ongoing"}


def test_every_schedule_is_complete_and_ends_by_its_status(study):
    s = study.sessions.merge(study.clients, on="client_id")
    g = s.groupby("client_id")
    assert (g["session_no"].min() == 1).all()
    assert (g["session_no"].max() == g.size()).all(), "sessions numbered 1..k without gaps"
    assert not s.duplicated(["client_id", "session_no"]).any()
    last = s.loc[g["session_no"].idxmax()].set_index("client_id")
    assert (last["session_no"] <= last["planned_sessions"]).all()
    completed = last[last["end_status"] == "completed"]
    assert (completed["session_no"] == completed["planned_sessions"]).all()
    assert (completed["attended"] == "yes").all()
    dropout = last[last["end_status"] == "dropout"]
    assert len(dropout) > 0 and (dropout["attended"] == "no").all()
    before = s.set_index(["client_id", "session_no"]).loc[
        list(zip(dropout.index, dropout["session_no"] - 1, strict=True)), "attended"
    ]
    assert (before == "yes").all(), "a dropout leaves after an attended session"
    stopped = last[last["end_status"].isin(["referred", "ongoing"])]
    assert (stopped["attended"] == "yes").all()
    assert (stopped["session_no"] < stopped["planned_sessions"]).all()


def test_session_fields_are_filled_by_the_stated_rules(study):
    s = study.sessions
    attended = s["attended"] == "yes"
    assert set(s["attended"]) == {"yes", "no"}
    assert s["minutes"].notna().eq(attended).all()
    assert s.loc[attended, "minutes"].between(30, 60).all()
    assert s["wai"].notna().eq(attended).all()
    wai = s.loc[attended, "wai"]
    assert wai.between(1, 7).all() and np.allclose(wai, wai.round(2))
    assert s["psq_tension"].notna().eq(attended).all()
    tension = s["psq_tension"] == "yes"
    for item in ("psq_intensity", "psq_resolution"):
        assert s[item].notna().eq(tension).all()
        assert s.loc[tension, item].between(1, 5).all()
    assert set(s["homework"].dropna()) == {"yes", "no"}
    assert s.loc[~attended, "homework"].isna().all()
    psychoanalytic = s["client_id"].map(frameworks_of(study)) == "psychoanalytic"
    assert s.loc[psychoanalytic, "homework"].isna().all()


def test_codes_sit_on_attended_sessions_within_their_segments(study):
    codes = study.codes.merge(study.sessions, on=["client_id", "session_no"], how="left")
    assert (codes["attended"] == "yes").all()
    assert (codes["segment"] >= 1).all()
    assert (codes["segment"] <= codes["minutes"] // 5).all()
    known = {*WITHDRAWAL_MARKERS, *CONFRONTATION_MARKERS, *REPAIR_STRATEGIES, "RES"}
    known |= {*RESISTANCE_CODES.values(), *THERAPIST_RESPONSES.values()}
    assert set(codes["code"]) == known, "every code of every form and response occurs"
    res = codes["code"] == "RES"
    assert codes.loc[res, "value"].between(1, 5).all()
    assert (codes.loc[~res, "value"] == 1).all()
    key = ["client_id", "session_no", "segment", "coder", "code"]
    assert not study.codes.duplicated(key).any()


def test_one_resolution_rating_per_rupture_segment(study):
    seg = segment_table(study.codes)
    assert (seg.loc[seg["rupture"], "n_res"] == 1).all()
    assert (seg.loc[~seg["rupture"], "n_res"] == 0).all()
    assert not seg.loc[~seg["rupture"], "strategy"].any()
    assert not seg.loc[~seg["rupture"], "response"].any(), "responses only in rupture segments"
    primary = seg[seg["coder_role"] == "primary"]
    assert not (primary["withdrawal"] & primary["confrontation"]).any()
    rupture = primary[primary["rupture"]]
    # resolved ruptures (rating 4-5) get 1-2 strategies, unresolved ones none
    assert rupture.loc[rupture["rating"] >= 4, "strategy"].all()
    assert not rupture.loc[rupture["rating"] <= 3, "strategy"].any()


def test_coders_and_double_coded_share(study):
    codes = study.codes
    roles = codes.groupby(["client_id", "session_no", "coder_role"])["coder"].nunique()
    assert (roles == 1).all(), "one coder per role and session"
    wide = codes.groupby(["client_id", "session_no", "coder_role"])["coder"].first().unstack()
    both = wide.dropna()
    assert (both["primary"] != both["reliability"]).all()

    listed = pd.DataFrame(study.truth["coding"]["double_coded_sessions"])
    assert (listed["primary_coder"] != listed["reliability_coder"]).all()
    listed_keys = set(zip(listed["client_id"], listed["session_no"], strict=True))
    rel_keys = set(wide["reliability"].dropna().index)
    assert rel_keys <= listed_keys
    # each attended session is double coded with probability 0.2 (the generating value)
    n_attended = (study.sessions["attended"] == "yes").sum()
    share = len(listed) / n_attended
    se = math.sqrt(0.2 * 0.8 / n_attended)  # binomial SE
    assert abs(share - 0.2) < Z * se


def test_coding_log_lists_every_coded_session_and_coder(study):
    log = study.coding_log
    assert not log.duplicated(["client_id", "session_no", "coder"]).any()
    attended = study.sessions[study.sessions["attended"] == "yes"]
    primary = log[log["coder_role"] == "primary"].merge(attended, on=["client_id", "session_no"])
    assert len(primary) == len(attended) == (log["coder_role"] == "primary").sum()
    # segments are the 5-minute segments of the session (the rule in truth.json)
    assert (primary["segments"] == primary["minutes"] // 5).all()
    listed = pd.DataFrame(study.truth["coding"]["double_coded_sessions"])
    reliability = log[log["coder_role"] == "reliability"]
    assert sorted(zip(reliability["client_id"], reliability["session_no"], strict=True)) == sorted(
        zip(listed["client_id"], listed["session_no"], strict=True)
    )
    assert reliability["coder"].tolist() == listed["reliability_coder"].tolist()
    # every code row belongs to a logged session and coder, within the logged segments
    joined = study.codes.merge(log, on=["client_id", "session_no", "coder", "coder_role"])
    assert len(joined) == len(study.codes)
    assert (joined["segment"] <= joined["segments"]).all()
    # the log keeps double-coded sessions where a coder coded nothing
    coded = study.codes[["client_id", "session_no", "coder"]].drop_duplicates()
    silent = log.merge(coded, how="left", indicator=True)
    assert (silent["_merge"] == "left_only").any()


def test_truth_states_every_parameter_and_the_realised_summary(study):
    truth = study.truth
    assert truth["simulated"] is True and "SIMULATED" in truth["notice"]
    assert truth["seed"] == 20261126
    assert set(PARAMETER_NOTES) == set(DEFAULT_PARAMS)
    sections = [*truth["parameters"].values(), truth["coding"]["parameters"]]
    stated = {name: entry for section in sections for name, entry in section.items()}
    for name, value in DEFAULT_PARAMS.items():
        assert stated[name]["description"]
        assert_same_value(stated[name]["value"], value)
    realised = truth["realised"]
    status = study.clients["end_status"]
    assert realised["dropout_share"] == pytest.approx((status == "dropout").mean(), abs=1e-6)
    assert sum(realised["end_status_counts"].values()) == len(status)
    assert set(truth["treatment_labels"].values()) == set(FRAMEWORKS)
    assert truth["session_c"]["definition"] == "(session_no - 8.5) / 7.5"


def test_simulated_codes_are_the_shipped_codebook_constructs():
    codebook = load_codebook(REPO / "config" / "codebook.yaml")
    for construct, code in {**RESISTANCE_CODES, **THERAPIST_RESPONSES}.items():
        assert codebook.codes[code].construct == construct, code
    for form, types in RESISTANCE_FORMS.items():
        assert list(codebook.constructs[form].of) == list(types), form
    assert list(codebook.constructs["resistance"].of) == list(RESISTANCE_FORMS)
    assert list(codebook.constructs["therapist_responses"].of) == list(THERAPIST_RESPONSES)
    assert {codebook.codes[code].kind for code in THERAPIST_RESPONSES.values()} == {"strategy"}


def test_truth_states_the_forms_and_the_response_scheme(study):
    truth = study.truth
    assert truth["codes"]["resistance"] == RESISTANCE_CODES
    assert truth["codes"]["resistance_forms"] == {f: list(t) for f, t in RESISTANCE_FORMS.items()}
    assert truth["codes"]["therapist_responses"] == THERAPIST_RESPONSES
    resistance = truth["parameters"]["resistance"]
    g = resistance["resistance_log_rate"]["value"]
    assert all(set(g[f]) == set(RESISTANCE_CODES) for f in FRAMEWORKS), "construct names"
    assert resistance["form_of"]["value"] == FORM_OF
    assert FORM_OF["covert_distancing"] == "resistance_covert"
    per_50 = resistance["form_rate_per_50_minutes"]["value"]
    for framework in FRAMEWORKS:
        for form, types in RESISTANCE_FORMS.items():
            total = sum(50 * math.exp(g[framework][kind]) for kind in types)
            assert per_50[framework][form] == pytest.approx(total, rel=1e-5)
            log_rate = resistance["form_log_rate"]["value"][framework][form]
            assert log_rate == pytest.approx(math.log(total / 50), rel=1e-5)
    # by hand from the table in simulate.py: 0.50 + 0.60 + 0.35 covert signs per 50 minutes
    assert per_50["psychoanalytic"]["resistance_covert"] == pytest.approx(1.45, rel=1e-5)

    responses = truth["parameters"]["responses"]
    q0 = responses["response_use_prob"]["value"]
    q1 = responses["response_use_prob_resolved"]["value"]
    b = responses["response_log_or"]["value"]
    repair = truth["parameters"]["repair"]["repair_logit"]["value"]
    for framework in FRAMEWORKS:
        assert set(q0[framework]) == set(THERAPIST_RESPONSES)
        c = 0.0
        for response in THERAPIST_RESPONSES:
            x0, x1 = q0[framework][response], q1[framework][response]
            assert logit(x1) - logit(x0) == pytest.approx(b[framework][response], abs=1e-4)
            c += math.log((1 - x1) / (1 - x0))
        intercept = responses["rupture_model_intercept"]["value"][framework]
        assert intercept == pytest.approx(repair[framework] + c, abs=1e-4)
    sd = responses["rupture_model_random_effect_sd"]["value"]
    assert sd == {"client": DEFAULT_PARAMS["repair_client_sd"], "therapist": 0.0}
    assert "responses" in truth["models"]
    assert any("Therapist responses" in rule for rule in truth["rules"])


def test_each_framework_has_its_signature_form_of_resistance(study):
    stated = study.truth["parameters"]["resistance"]
    forms = stated["form_rate_per_50_minutes"]["value"]
    types = stated["rate_per_50_minutes"]["value"]

    def ratio(rates, name, high, low):
        return rates[high][name] / rates[low][name]

    signatures = [
        (forms, "resistance_covert", "psychoanalytic", ("behavioral", "cognitive")),
        (forms, "resistance_collusive", "psychoanalytic", ("behavioral", "cognitive")),
        (forms, "resistance_disengagement", "behavioral", ("psychoanalytic",)),
        (types, "realistic_technique", "behavioral", ("psychoanalytic", "cognitive")),
        (types, "disengagement_action_plan", "behavioral", ("psychoanalytic",)),
        (types, "resistance_arguing", "cognitive", ("psychoanalytic", "behavioral")),
        (types, "realistic_approach", "cognitive", ("psychoanalytic", "behavioral")),
        (types, "realistic_terms", "cognitive", ("psychoanalytic", "behavioral")),
    ]
    for rates, name, high, lows in signatures:
        for low in lows:
            assert 1.8 <= ratio(rates, name, high, low) <= 3.5, (name, high, low)
    for framework in FRAMEWORKS:
        assert 4.0 <= sum(forms[framework].values()) <= 6.5, "modest totals per session"
    # the realised example shows the same order for the clearest signatures
    realised = {f: v["resistance_form_per_attended_session"]
                for f, v in study.truth["realised"]["by_framework"].items()}  # fmt: skip
    covert = {f: realised[f]["resistance_covert"] for f in FRAMEWORKS}
    assert max(covert, key=covert.get) == "psychoanalytic"
    disengagement = {f: realised[f]["resistance_disengagement"] for f in FRAMEWORKS}
    assert max(disengagement, key=disengagement.get) == "behavioral"


def test_forms_and_responses_leave_the_other_draws_unchanged():
    base = simulate_study(seed=3, **SMALL)
    changed = simulate_study(
        seed=3,
        **SMALL,
        params={
            "response_log_or": {"cognitive": {"response_calm": -1.0}},
            "resistance_log_rate": {"behavioral": {"covert_distancing": -3.0}},
        },
    )
    overt = set(RESISTANCE_FORMS["resistance_overt"].values())
    own = (set(RESISTANCE_CODES.values()) - overt) | set(THERAPIST_RESPONSES.values())

    def others(codes):
        return codes[~codes["code"].isin(own)].reset_index(drop=True)

    pd.testing.assert_frame_equal(others(base.codes), others(changed.codes))
    pd.testing.assert_frame_equal(base.sessions, changed.sessions)
    assert not base.codes.equals(changed.codes)


# --------------------------------------------------------------------------- realised vs truth


def test_missed_sessions_match_the_generating_probability(large):
    s = large.sessions.copy()
    s["framework"] = s["client_id"].map(frameworks_of(large))
    # a client's last row is fixed by the ending rules, so only earlier rows are free draws
    last = s.groupby("client_id")["session_no"].transform("max")
    free = s[s["session_no"] < last]
    for framework, rows in free.groupby("framework"):
        p = DEFAULT_PARAMS["miss_prob"][framework]
        observed = (rows["attended"] == "no").mean()
        assert abs(observed - p) < Z * math.sqrt(p * (1 - p) / len(rows)), framework


def test_withdrawal_share_matches_the_generating_probability(large):
    seg = segment_table(large.codes)
    seg = seg[(seg["coder_role"] == "primary") & seg["rupture"]]
    seg["framework"] = seg["client_id"].map(frameworks_of(large))
    for framework, rows in seg.groupby("framework"):
        p = DEFAULT_PARAMS["withdrawal_prob"][framework]
        assert abs(rows["withdrawal"].mean() - p) < Z * math.sqrt(p * (1 - p) / len(rows))


def test_rupture_counts_follow_the_negative_binomial_model(large_sessions):
    t = large_sessions.copy()
    p = DEFAULT_PARAMS
    # truth: log mu = b0_f + b_time_f * session_c + u + w + log(minutes); Var = mu + mu^2/size
    mu = np.exp(
        by_framework(p["rupture_log_rate"], t["framework"])
        + by_framework(p["rupture_session_slope"], t["framework"]) * t["session_c"]
        + t["rupture_therapist"]
        + t["rupture_client"]
        + np.log(t["minutes"])
    )
    variance = mu + mu**2 / p["rupture_nb_size"]
    for framework in FRAMEWORKS:
        rows = (t["framework"] == framework).to_numpy()
        z = z_score(t["rupture"][rows], mu[rows], variance[rows])
        assert abs(z) < Z, (framework, z)
    early, late = t["session_c"] < 0, t["session_c"] >= 0
    for rows in (early, late):
        assert abs(z_score(t["rupture"][rows], mu[rows], variance[rows])) < Z


def test_repair_follows_the_logistic_model(large_sessions):
    t = large_sessions.copy()
    # truth: each rupture resolved w.p. logistic(a_f + r_client); resolved <=> RES >= 4
    prob = expit(by_framework(DEFAULT_PARAMS["repair_logit"], t["framework"]) + t["repair_client"])
    assert (t["repaired"] + t["unrepaired"] == t["rupture"]).all()
    for framework in FRAMEWORKS:
        rows = (t["framework"] == framework).to_numpy()
        expected = t["rupture"][rows] * prob[rows]
        variance = t["rupture"][rows] * prob[rows] * (1 - prob[rows])
        assert abs(z_score(t["repaired"][rows], expected, variance)) < Z, framework


def test_dropout_follows_the_discrete_time_hazard(large, large_sessions):
    t = large_sessions.copy()
    last = large.sessions.groupby("client_id")["session_no"].max()
    status = large.clients.set_index("client_id")["end_status"]
    t["last"] = t["client_id"].map(last)
    # person-period rows: attended sessions before the client's last scheduled row
    pp = t[t["session_no"] < t["last"]]
    event = (pp["client_id"].map(status) == "dropout") & (pp["session_no"] == pp["last"] - 1)
    p = DEFAULT_PARAMS
    hazard = expit(
        by_framework(p["dropout_logit"], pp["framework"])
        + p["dropout_log_session"] * np.log(pp["session_no"])
        + pp["dropout_therapist"]
        + by_framework(p["dropout_per_unrepaired"], pp["framework"]) * pp["unrepaired"]
    )
    assert event.sum() == (status == "dropout").sum()
    for framework in FRAMEWORKS:
        rows = (pp["framework"] == framework).to_numpy()
        z = z_score(event[rows], hazard[rows], hazard[rows] * (1 - hazard[rows]))
        assert abs(z) < Z, (framework, z)
    with_unrepaired = (pp["unrepaired"] > 0).to_numpy()
    h = hazard[with_unrepaired]
    assert abs(z_score(event[with_unrepaired], h, h * (1 - h))) < Z


def test_resistance_counts_follow_the_poisson_model(large_sessions):
    t = large_sessions.copy()
    for framework in FRAMEWORKS:
        rows = t[t["framework"] == framework]
        for kind in RESISTANCE_CODES:
            # truth: log mu = g_fk + u' + w' + log(minutes)
            mu = np.exp(
                DEFAULT_PARAMS["resistance_log_rate"][framework][kind]
                + rows["resistance_therapist"]
                + rows["resistance_client"]
                + np.log(rows["minutes"])
            )
            assert abs(z_score(rows[kind], mu, mu)) < Z, (framework, kind)


def test_resistance_forms_follow_the_poisson_sum_of_their_types(large, large_sessions):
    t = large_sessions.copy()
    stated = large.truth["parameters"]["resistance"]["form_log_rate"]["value"]
    for framework in FRAMEWORKS:
        rows = t[t["framework"] == framework]
        for form, types in RESISTANCE_FORMS.items():
            # truth: a sum of Poisson types sharing u', w' is Poisson with
            # log mu = log(sum_k exp(g_fk)) + u' + w' + log(minutes)
            g = DEFAULT_PARAMS["resistance_log_rate"][framework]
            log_rate = math.log(sum(math.exp(g[kind]) for kind in types))
            assert stated[framework][form] == pytest.approx(log_rate, rel=1e-5)
            mu = np.exp(
                log_rate
                + rows["resistance_therapist"]
                + rows["resistance_client"]
                + np.log(rows["minutes"])
            )
            count = rows[list(types)].sum(axis=1)
            assert abs(z_score(count, mu, mu)) < Z, (framework, form)


def rupture_segments(study):
    """Primary rupture segments: framework, resolved (RES >= 4) and each response used."""
    seg = segment_table(study.codes)
    seg = seg[(seg["coder_role"] == "primary") & seg["rupture"]].copy()
    seg["framework"] = seg["client_id"].map(frameworks_of(study))
    seg["resolved"] = seg["rating"] >= 4
    return seg


def test_responses_are_used_with_the_stated_probabilities_given_resolution(large):
    seg = rupture_segments(large)
    q0 = DEFAULT_PARAMS["response_use_prob"]
    b = DEFAULT_PARAMS["response_log_or"]
    for (framework, resolved), rows in seg.groupby(["framework", "resolved"]):
        for response in THERAPIST_RESPONSES:
            # truth: P(used | resolved) = q1 = logistic(logit q0 + b); P(used | not) = q0
            p = q0[framework][response]
            if resolved:
                p = expit(logit(p) + b[framework][response])
            observed = rows[response].mean()
            se = math.sqrt(p * (1 - p) / len(rows))  # independent Bernoulli draws
            assert abs(observed - p) < Z * se, (framework, resolved, response, observed, p)


def test_rupture_level_logistic_model_recovers_the_response_log_odds_ratios():
    """With no client effect on repair the rupture-level model is an ordinary logistic
    regression; fitted by framework it is the framework x responses model."""
    study = simulate_study(
        seed=17,
        n_therapists_per_framework=100,
        double_coded_share=0.0,
        params={"repair_client_sd": 0.0},
    )
    seg = rupture_segments(study)
    stated = study.truth["parameters"]["responses"]
    names = list(THERAPIST_RESPONSES)
    for framework in FRAMEWORKS:
        rows = seg[seg["framework"] == framework]
        assert len(rows) > 3500  # rupture segments
        design = sm.add_constant(rows[names].astype(float))
        fit = sm.Logit(rows["resolved"].astype(float), design).fit(disp=0)
        truth = {
            "const": stated["rupture_model_intercept"]["value"][framework],
            **stated["response_log_or"]["value"][framework],
        }
        for term, value in truth.items():
            z = (fit.params[term] - value) / fit.bse[term]
            assert abs(z) < Z, (framework, term, fit.params[term], value)


def test_alliance_residuals_have_the_generating_mean_and_sd(large_sessions):
    t = large_sessions.copy()
    p = DEFAULT_PARAMS
    predicted = (
        by_framework(p["alliance_intercept"], t["framework"])
        + by_framework(p["alliance_session_slope"], t["framework"]) * t["session_c"]
        + t["alliance_therapist"]
        + t["alliance_client"]
        + t["alliance_client_slope"] * t["session_c"]
        - p["alliance_unrepaired_penalty"] * t["unrepaired"]
    )
    residual = t["wai"] - predicted
    sd = p["alliance_residual_sd"]
    n = len(residual)
    assert abs(residual.mean()) < Z * sd / math.sqrt(n)
    # SE of a normal sample SD is about sd / sqrt(2n); rounding to 2 decimals adds 0.01^2/12
    assert abs(residual.std() - math.hypot(sd, 0.01 / math.sqrt(12))) < Z * sd / math.sqrt(2 * n)


def test_psq_tension_and_homework_follow_their_models(large_sessions):
    t = large_sessions.copy()
    p = DEFAULT_PARAMS
    prob = expit(
        p["psq_tension_logit"] + p["psq_tension_per_rupture"] * t["rupture"] + t["psq_client"]
    )
    tension = t["psq_tension"] == "yes"
    assert abs(z_score(tension, prob, prob * (1 - prob))) < Z
    share = tension.mean()
    assert 0.19 <= share <= 0.42, "client-reported tension in 19-42% of sessions (reviews)"

    hw = t[t["homework"].notna()]
    assert set(hw["framework"]) == {"behavioral", "cognitive"}
    prob = expit(by_framework(p["homework_logit"], hw["framework"]) + hw["homework_client"])
    assert abs(z_score(hw["homework"] == "yes", prob, prob * (1 - prob))) < Z


def test_default_study_is_in_the_literature_ranges(study):
    realised = study.truth["realised"]
    assert 0.35 <= realised["sessions_with_rupture_share"] <= 0.50
    assert 0.50 <= realised["repair_share"] <= 0.60
    assert 0.14 <= realised["dropout_share"] <= 0.26  # Swift & Greenberg 2012: 19.7%
    rates = {f: v["ruptures_per_attended_session"] for f, v in realised["by_framework"].items()}
    assert rates["psychoanalytic"] > rates["behavioral"] > rates["cognitive"]
    assert realised["capped_rupture_sessions"] <= 2
    assert realised["alliance_clipped"] <= 5
    assert realised["capped_resistance_sessions"] <= 2
    assert len(study.codes) < 60_000, "a code table of reasonable size"


# --------------------------------------------------------------------------- agreement


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside pingouin 0.7.0
def test_expected_agreement_matches_a_fully_double_coded_study():
    study = simulate_study(seed=5, double_coded_share=1.0)
    expected = study.truth["coding"]["expected_agreement"]
    primary, reliability = session_table(study, "primary"), session_table(study, "reliability")
    pair = primary.merge(reliability, on=["client_id", "session_no"], suffixes=("_p", "_r"))
    assert len(pair) == len(primary), "every attended session has both ratings"

    for column, name in (
        ("rupture", "ruptures_per_session"),
        ("resistance_arguing", "resistance_arguing_per_session"),
        ("covert_distancing", "covert_distancing_per_session"),
        ("disengagement_homework", "disengagement_homework_per_session"),
        ("resistance_covert", "resistance_covert_per_session"),
        ("all_resistance", "resistance_per_session"),
        ("response_empathy", "response_empathy_per_session"),
        ("response_end_refer", "response_end_refer_per_session"),
        ("all_responses", "therapist_responses_per_session"),
    ):
        x, y = pair[f"{column}_p"].astype(float), pair[f"{column}_r"].astype(float)
        parts = pd.DataFrame({"n": 1.0, "x": x, "y": y, "xx": x * x, "yy": y * y, "xy": x * y})
        sums = parts.groupby(pair["client_id"]).sum().to_numpy()
        observed = icc_a1_from_sums(sums.sum(axis=0))
        se = jackknife_se(icc_a1_from_sums, sums)
        assert abs(observed - expected[name]["icc_a1"]) < Z * se, (name, observed, se)
        # the large-sample formula agrees with the two-way ANOVA estimator (pingouin ICC(A,1))
        long = pd.concat(
            [
                pd.DataFrame({"target": pair.index, "rater": "p", "score": x}),
                pd.DataFrame({"target": pair.index, "rater": "r", "score": y}),
            ]
        )
        icc = pingouin.intraclass_corr(long, targets="target", raters="rater", ratings="score")
        assert icc.set_index("Type").loc["ICC(A,1)", "ICC"] == pytest.approx(observed, abs=0.005)

    seg = segment_table(study.codes)
    grid = study.sessions[study.sessions["attended"] == "yes"]
    grid = grid.loc[
        grid.index.repeat(grid["minutes"].astype(int) // 5), ["client_id", "session_no"]
    ]
    grid["segment"] = grid.groupby(["client_id", "session_no"]).cumcount() + 1
    key = pd.MultiIndex.from_frame(grid)
    for role in ("primary", "reliability"):
        flags = seg[seg["coder_role"] == role].set_index(["client_id", "session_no", "segment"])
        grid[role] = flags["rupture"].reindex(key, fill_value=False).to_numpy(dtype=bool)
    p, r = grid["primary"], grid["reliability"]
    cells = pd.DataFrame({"11": p & r, "10": p & ~r, "01": ~p & r, "00": ~p & ~r}).astype(float)
    sums = cells.groupby(grid["client_id"].to_numpy()).sum().to_numpy()
    observed = kappa_from_sums(sums.sum(axis=0))
    se = jackknife_se(kappa_from_sums, sums)
    assert abs(observed - expected["rupture_segment_presence"]["cohen_kappa"]) < Z * se

    both = (
        seg[seg["rupture"]]
        .pivot_table(
            index=["client_id", "session_no", "segment"], columns="coder_role", values="rating"
        )
        .dropna()
    )
    # therapist responses: the reliability coder reproduces each response of a rupture
    # segment it also rated with probability coding_sensitivity and adds none
    keys = ["client_id", "session_no", "segment"]
    rated = seg[seg["coder_role"] == "reliability"].set_index(keys)
    rated = rated[rated["rupture"]]
    primary = seg[(seg["coder_role"] == "primary") & seg["rupture"]].set_index(keys)
    for response in THERAPIST_RESPONSES:
        used = primary.loc[primary[response]].index
        seen = used[used.isin(rated.index)]
        kept = rated.loc[seen, response].mean()
        sens = DEFAULT_PARAMS["coding_sensitivity"]
        assert abs(kept - sens) < Z * math.sqrt(sens * (1 - sens) / len(seen)), response
        added = rated.index[rated[response]].difference(used)
        assert len(added) == 0, response

    equal = (both["primary"] == both["reliability"]).mean()
    p_equal = expected["resolution_rating"]["exact_agreement"]
    assert p_equal == DEFAULT_PARAMS["coding_resolution_equal_prob"]
    assert abs(equal - p_equal) < Z * math.sqrt(p_equal * (1 - p_equal) / len(both))
    assert (both["primary"] - both["reliability"]).abs().max() == 1


# --------------------------------------------------------------------------- settings


def test_params_override_changes_the_truth_and_the_data():
    study = simulate_study(seed=2, **SMALL, params={"withdrawal_prob": {"cognitive": 1.0}})
    stated = study.truth["parameters"]["ruptures"]["withdrawal_prob"]["value"]
    assert stated == {"psychoanalytic": 0.75, "behavioral": 0.6, "cognitive": 1.0}
    seg = segment_table(study.codes)
    seg = seg[seg["rupture"]]
    cognitive = seg["client_id"].map(frameworks_of(study)) == "cognitive"
    assert cognitive.any() and seg.loc[cognitive, "withdrawal"].all()


@pytest.mark.filterwarnings("error")
def test_study_without_ruptures_writes_strict_json(tmp_path):
    no_ruptures = {f: -30.0 for f in FRAMEWORKS}
    study = simulate_study(seed=2, **SMALL, params={"rupture_log_rate": no_ruptures})
    assert not study.codes["code"].isin(["RES", *WITHDRAWAL_MARKERS]).any()
    path = write_study(study, tmp_path)[-1]

    def refuse(constant):
        raise ValueError(f"{constant} in truth.json")

    truth = json.loads(path.read_text(), parse_constant=refuse)
    assert truth["realised"]["repair_share"] is None
    assert truth["coding"]["expected_agreement"]["resolution_rating"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"rupture_rate": 1.0}}, "Unknown simulation parameter 'rupture_rate'"),
        ({"params": {"miss_prob": {"humanistic": 0.1}}}, "has no entry 'humanistic'"),
        ({"params": {"referred_prob": 1.5}}, "'referred_prob' must lie in [0, 1]"),
        ({"params": {"rupture_client_sd": -1}}, "'rupture_client_sd' is an SD"),
        ({"params": {"strategy_count_probs": [0.5, 0.6]}}, "summing to 1"),
        (
            {"params": {"response_use_prob": {"behavioral": {"response_calm": 0.0}}}},
            "'response_use_prob.behavioral.response_calm' must lie strictly between 0 and 1",
        ),
        ({"max_sessions": 5}, "max_sessions must be an integer >= 8"),
        ({"double_coded_share": 1.2}, "double_coded_share must be a number in [0, 1]"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_settings_raise_a_readable_error(kwargs, message):
    with pytest.raises(SimulationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        simulate_study(**{**SMALL, **kwargs})


def test_command_line_writes_the_same_files(tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "--out",
        str(out),
        "--seed",
        "3",
        "--therapists-per-framework",
        "2",
        "--clients-per-therapist",
        "3",
    ]
    assert main(args) == 0
    assert "SIMULATED" in capsys.readouterr().out
    for path in write_study(simulate_study(seed=3, **SMALL), tmp_path / "api"):
        assert (out / path.name).read_bytes() == path.read_bytes()
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--max-sessions", "4"])
    assert "max_sessions must be an integer >= 8" in capsys.readouterr().err


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_marginal_rupture_rate_and_repair_share_recover_the_truth():
    """Marginal quantities with exact expectations (dropout made independent of ruptures)."""
    no_link = {f: 0.0 for f in FRAMEWORKS}
    study = simulate_study(
        seed=13,
        n_therapists_per_framework=300,
        double_coded_share=0.0,
        params={"dropout_per_unrepaired": no_link},
    )
    t = session_table(study)
    p = DEFAULT_PARAMS
    # E[ruptures | minutes, session] = minutes * exp(b0_f + b_time_f * session_c)
    #   * exp((sd_u^2 + sd_w^2) / 2)   (mean of a lognormal), within therapist-cluster SE
    factor = math.exp((p["rupture_therapist_sd"] ** 2 + p["rupture_client_sd"] ** 2) / 2)
    # E[share resolved] = E[logistic(a_f + r)], r ~ N(0, sd_r^2), by Gauss-Hermite quadrature
    nodes, weights = np.polynomial.hermite.hermgauss(60)
    for framework in FRAMEWORKS:
        rows = t[t["framework"] == framework]
        exposure = rows["minutes"] * np.exp(
            p["rupture_session_slope"][framework] * rows["session_c"]
        )
        ratio = rows["rupture"].sum() / exposure.sum()
        clusters = (
            pd.DataFrame({"y": rows["rupture"], "x": exposure}).groupby(rows["therapist_id"]).sum()
        )
        g = len(clusters)
        se = math.sqrt(g / (g - 1) * ((clusters["y"] - ratio * clusters["x"]) ** 2).sum())
        se /= exposure.sum()
        truth = math.exp(p["rupture_log_rate"][framework]) * factor
        assert abs(ratio - truth) < Z * se, (framework, ratio, truth, se)

        a, sd = p["repair_logit"][framework], p["repair_client_sd"]
        truth = np.sum(weights * expit(a + math.sqrt(2) * sd * nodes)) / math.sqrt(math.pi)
        share = rows["repaired"].sum() / rows["rupture"].sum()
        clusters = (
            pd.DataFrame({"y": rows["repaired"], "x": rows["rupture"]})
            .groupby(rows["client_id"])
            .sum()
        )
        g = len(clusters)
        se = math.sqrt(g / (g - 1) * ((clusters["y"] - share * clusters["x"]) ** 2).sum())
        se /= rows["rupture"].sum()
        assert abs(share - truth) < Z * se, (framework, share, truth, se)
