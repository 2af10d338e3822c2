"""Tests for resistance_outcomes.describe.

Table 1 is checked against an independent pandas computation on the raw canonical frames;
suppression and formatting against hand-made tables; intervals against hand computations
and statsmodels' cluster-robust Poisson GLM; retention curves against a hand-computed
Kaplan-Meier case and statsmodels' SurvfuncRight.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight

from resistance_outcomes.derive import (
    DataError,
    client_table,
    dropout_labels,
    person_period,
    session_table,
)
from resistance_outcomes.describe import (
    PROFILE_COLUMNS,
    RATE_COLUMNS,
    REPAIR_GROUPS,
    construct_profile,
    format_table1,
    rate_by_session,
    rate_interval,
    repair_tertile,
    retention_curves,
    suppress_small_counts,
    table1,
    table1_markdown,
)
from resistance_outcomes.vocabulary import ConstructInfo, Vocabulary

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
TYPES = ["arguing", "interrupting", "denying", "ignoring"]
PARTS = [f"resistance_{t}" for t in TYPES]
#: The simulated study's declared constructs: ruptures and repair, four behaviours and
#: their sum, which is profiled.
VOCABULARY = Vocabulary(
    constructs={
        "ruptures": ConstructInfo("ruptures", "Ruptures", "count", "any_of", stem="rupture"),
        "repaired": ConstructInfo("repaired", "Repaired ruptures", "count", "rated_at_least"),
        **{
            p: ConstructInfo(p, t.capitalize(), "count", "codes")
            for p, t in zip(PARTS, TYPES, strict=True)
        },
        "resistance": ConstructInfo("resistance", "Resistance", "count", "sum_of", tuple(PARTS)),
    },
    profile="resistance",
)


def simulate_canonical(seed=11, clients_per_framework=30):
    """Small canonical clients/sessions frames drawn at random (for descriptive checks)."""
    rng = np.random.default_rng(seed)
    n = clients_per_framework * len(FRAMEWORKS)
    framework = np.repeat(FRAMEWORKS, clients_per_framework)
    clients = pd.DataFrame(
        {
            "study": "sim",
            "client": [f"C{i:03d}" for i in range(n)],
            "therapist": [f"T{f[:2]}{i % 5}" for i, f in enumerate(framework)],
            "framework": pd.Categorical(framework, categories=FRAMEWORKS),
            "treatment_label": "x",
            "planned_sessions": rng.integers(6, 13, n),
            "end_status": rng.choice(
                ["completed", "dropout", "referred", "ongoing"], n, p=[0.7, 0.2, 0.05, 0.05]
            ),
        }
    )
    rows = []
    for client, planned, status in clients[["client", "planned_sessions", "end_status"]].values:
        length = planned if status == "completed" else rng.integers(1, planned)
        for session in range(1, length + 1):
            attended = bool(rng.random() < 0.85)
            ruptures = rng.poisson(0.7)
            row = {"study": "sim", "client": client, "session": session, "attended": attended}
            if attended:
                row |= {
                    "minutes": float(rng.integers(40, 61)),
                    "ruptures": ruptures,
                    "repaired": rng.binomial(ruptures, 0.6),
                    "homework_done": (pd.NA if rng.random() < 0.4 else bool(rng.random() < 0.6)),
                    "alliance": float(np.clip(rng.normal(5, 1), 1, 7)),
                    **{f"resistance_{t}": rng.poisson(0.4) for t in TYPES},
                }
            rows.append(row)
    sessions = pd.DataFrame(rows)
    counts = ["ruptures", "repaired", *(f"resistance_{t}" for t in TYPES)]
    sessions[counts] = sessions[counts].astype("Int64")
    sessions["resistance"] = sessions[[f"resistance_{t}" for t in TYPES]].sum(axis=1, skipna=False)
    sessions["homework_done"] = sessions["homework_done"].astype("boolean")
    return clients, sessions


DEFINITIONS = {
    "end_status": {"rule": "end_status"},
    "fewer_than_4": {"rule": "min_attended", "sessions": 4},
}


@pytest.fixture(scope="module")
def simulated():
    clients, sessions = simulate_canonical()
    client_tbl = client_table(sessions, clients, DEFINITIONS)
    session_tbl = session_table(sessions, clients)
    return clients, sessions, client_tbl, session_tbl


def cell(long, variable, statistic, framework):
    hit = long[
        (long.variable == variable) & (long.statistic == statistic) & (long.framework == framework)
    ]
    assert len(hit) == 1, (variable, statistic, framework)
    return hit.iloc[0]


# --------------------------------------------------------------------------- Table 1


def expected_by_framework(clients, sessions):
    """Table 1 quantities recomputed from the raw frames with plain groupby."""
    fw = clients.set_index("client")["framework"].astype(str)
    s = sessions.assign(framework=sessions["client"].map(fw))
    att = s[s["attended"]].copy()
    att["ruptures"] = att["ruptures"].astype(float)
    per_client = att.groupby("client").agg(
        rate=("ruptures", "mean"),
        ruptures=("ruptures", "sum"),
        repaired=("repaired", "sum"),
        alliance=("alliance", "mean"),
        arguing=("resistance_arguing", "mean"),
    )
    per_client["framework"] = per_client.index.map(fw)
    repair = per_client[per_client["ruptures"] > 0]
    repair = (repair["repaired"] / repair["ruptures"]).groupby(repair["framework"])
    homework = att.dropna(subset=["homework_done"])
    closed = clients[clients["end_status"] != "ongoing"]
    return {
        ("Clients", "count"): clients.groupby("framework", observed=True).size(),
        ("Therapists", "count"): clients.groupby("framework", observed=True)["therapist"].nunique(),
        ("Sessions scheduled", "count"): s.groupby("framework").size(),
        ("Sessions attended", "count"): att.groupby("framework").size(),
        ("Sessions attended", "percent"): 100 * s.groupby("framework")["attended"].mean(),
        ("Dropout: end status dropout", "count"): closed["end_status"]
        .eq("dropout")
        .groupby(closed["framework"], observed=True)
        .sum(),
        ("Dropout: end status dropout", "percent"): 100
        * closed["end_status"].eq("dropout").groupby(closed["framework"], observed=True).mean(),
        ("Ruptures per attended session", "mean"): per_client.groupby("framework")["rate"].mean(),
        ("Ruptures per attended session", "sd"): per_client.groupby("framework")["rate"].std(),
        ("Sessions with any rupture", "percent"): 100
        * att["ruptures"].gt(0).groupby(att["framework"]).mean(),
        ("Clients with any rupture", "count"): per_client["ruptures"]
        .gt(0)
        .groupby(per_client["framework"])
        .sum(),
        ("Repair rate (clients with ruptures)", "mean"): repair.mean(),
        ("Repair rate (clients with ruptures)", "sd"): repair.std(),
        ("Resistance per attended session: arguing", "mean"): per_client.groupby("framework")[
            "arguing"
        ].mean(),
        ("Homework completed (sessions with homework set)", "percent"): 100
        * homework["homework_done"].astype(bool).groupby(homework["framework"]).mean(),
        ("Alliance (client mean)", "mean"): per_client.groupby("framework")["alliance"].mean(),
        ("Alliance (client mean)", "sd"): per_client.groupby("framework")["alliance"].std(),
    }


def test_table1_matches_independent_groupby(simulated):
    clients, sessions, client_tbl, session_tbl = simulated
    long = table1(
        client_tbl,
        session_tbl,
        ["dropout_end_status", "dropout_fewer_than_4"],
        min_cell=1,
        constructs=VOCABULARY,
        dropout_labels=dropout_labels(DEFINITIONS),
    )
    assert not long["suppressed"].any()
    assert list(dict.fromkeys(long["framework"])) == [*FRAMEWORKS, "Total"]
    for (variable, statistic), values in expected_by_framework(clients, sessions).items():
        for framework in FRAMEWORKS:
            got = cell(long, variable, statistic, framework)["value"]
            assert got == pytest.approx(values[framework], rel=1e-12), (variable, framework)
    # Totals: clients and therapists over the whole sample
    assert cell(long, "Clients", "count", "Total")["value"] == len(clients)
    assert cell(long, "Therapists", "count", "Total")["value"] == clients["therapist"].nunique()
    all_rates = client_tbl["rupture_rate"].dropna()
    assert cell(long, "Ruptures per attended session", "mean", "Total")["value"] == (
        pytest.approx(all_rates.sum() / len(all_rates))
    )
    # n of the repair-rate row = clients with any rupture
    for framework in FRAMEWORKS:
        assert (
            cell(long, "Repair rate (clients with ruptures)", "mean", framework)["n"]
            == (cell(long, "Clients with any rupture", "count", framework)["value"])
        )


def test_table1_with_default_threshold_keeps_large_cells(simulated):
    _, _, client_tbl, session_tbl = simulated
    long = table1(client_tbl, session_tbl, ["dropout_end_status"])
    assert cell(long, "Clients", "count", "cognitive")["value"] == 30
    shown = long[~long["suppressed"] & (long["statistic"] == "count")]
    assert not shown["value"].between(1, 4).any()


def test_table1_missing_dropout_column_is_named(simulated):
    _, _, client_tbl, session_tbl = simulated
    with pytest.raises(DataError, match="missing column\\(s\\) dropout_judged"):
        table1(client_tbl, session_tbl, ["dropout_judged"])


def lab_study(seed=3):
    """A lab's study: own constructs as session columns, ruptures from their two kinds, no
    repair coding, no resistance coding, two frameworks of its own."""
    rng = np.random.default_rng(seed)
    frameworks = ["humanistic", "systemic"]
    clients = pd.DataFrame(
        {
            "study": "lab",
            "client": [f"L{i}" for i in range(12)],
            "therapist": [f"T{i % 4}" for i in range(12)],
            "framework": pd.Categorical(np.repeat(frameworks, 6), categories=frameworks),
            "planned_sessions": 4,
            "end_status": "completed",
        }
    )
    sessions = clients[["study", "client"]].merge(pd.DataFrame({"session": [1, 2, 3, 4]}), "cross")
    n = len(sessions)
    attended = rng.random(n) < 0.85
    counts = {c: rng.poisson(lam, n) for c, lam in [
        ("sustain_talk", 1.5), ("homework_noncompliance", 0.5),
        ("rupture_withdrawal", 0.4), ("rupture_confrontation", 0.3)]}  # fmt: skip
    for column, values in counts.items():
        sessions[column] = pd.array(np.where(attended, values, 0), dtype="Int64")
        sessions.loc[~attended, column] = pd.NA
    sessions["ruptures"] = sessions["rupture_withdrawal"] + sessions["rupture_confrontation"]
    sessions["attended"] = attended
    sessions["minutes"] = np.where(attended, 50.0, np.nan)
    vocabulary = Vocabulary(
        constructs={
            "rupture_withdrawal": ConstructInfo(
                "rupture_withdrawal", "Withdrawal", "count", "column"
            ),
            "rupture_confrontation": ConstructInfo(
                "rupture_confrontation", "Confrontation", "count", "column"
            ),
            "ruptures": ConstructInfo(
                "ruptures", "Ruptures", "count", "any_of",
                ("rupture_withdrawal", "rupture_confrontation"), "rupture",
            ),
            "sustain_talk": ConstructInfo("sustain_talk", "Sustain talk", "count", "column"),
            "homework_noncompliance": ConstructInfo(
                "homework_noncompliance", "Homework not done", "count", "column"
            ),
        },
        profile="resistance",  # configured, but the study has no resistance coding
    )  # fmt: skip
    return clients, sessions, vocabulary


def test_table1_rows_follow_the_declared_constructs_with_their_labels():
    clients, sessions, vocabulary = lab_study()
    client_tbl = client_table(sessions, clients, constructs=vocabulary)
    session_tbl = session_table(sessions, clients, constructs=vocabulary)
    long = table1(client_tbl, session_tbl, min_cell=1, constructs=vocabulary)
    assert list(dict.fromkeys(long["variable"])) == [
        "Clients",
        "Therapists",
        "Sessions scheduled",
        "Sessions attended",
        "Ruptures per attended session",
        "Sessions with any rupture",
        "Clients with any rupture",
        "Sustain talk per attended session",
        "Homework not done per attended session",
    ]  # no repair, resistance or profile rows; the parts of ruptures are summed up by it
    done = sessions[sessions["attended"]].merge(clients[["client", "framework"]])
    for column, label in [
        ("sustain_talk", "Sustain talk per attended session"),
        ("homework_noncompliance", "Homework not done per attended session"),
        ("ruptures", "Ruptures per attended session"),
    ]:
        rate = done[column].astype(float).groupby(done["client"]).mean()
        framework = clients.set_index("client")["framework"].astype(str)
        for name, group in rate.groupby(framework.reindex(rate.index)):
            assert cell(long, label, "mean", name)["value"] == pytest.approx(group.mean())
            assert cell(long, label, "sd", name)["value"] == pytest.approx(group.std(ddof=1))
            assert cell(long, label, "mean", name)["n"] == len(group)
        assert cell(long, label, "mean", "Total")["value"] == pytest.approx(rate.mean())
    any_rupture = done["ruptures"].astype(float).gt(0)
    assert cell(long, "Sessions with any rupture", "count", "Total")["value"] == any_rupture.sum()
    text = table1_markdown(format_table1(long))
    assert "Sustain talk per attended session, M (SD)" in text and "_" not in text


def test_table1_without_rupture_or_resistance_coding_has_no_such_rows():
    clients, sessions, vocabulary = lab_study()
    sessions = sessions.drop(columns=["ruptures", "rupture_withdrawal", "rupture_confrontation"])
    client_tbl = client_table(sessions, clients, constructs=vocabulary)
    session_tbl = session_table(sessions, clients, constructs=vocabulary)
    long = table1(client_tbl, session_tbl, min_cell=1, constructs=vocabulary)
    variables = set(long["variable"])
    assert not any("upture" in v or "esistance" in v or "epair" in v for v in variables)
    assert "Sustain talk per attended session" in variables


def test_table1_dropout_rows_never_show_the_definition_key():
    clients, sessions, vocabulary = lab_study()
    definitions = {"fewer_than_3": {"rule": "min_attended", "sessions": 3}}
    client_tbl = client_table(sessions, clients, definitions, constructs=vocabulary)
    session_tbl = session_table(sessions, clients, constructs=vocabulary)
    labelled = table1(
        client_tbl,
        session_tbl,
        ["dropout_fewer_than_3"],
        constructs=vocabulary,
        dropout_labels=dropout_labels(definitions),
    )
    assert "Dropout: fewer than 3 sessions attended" in set(labelled["variable"])
    plain = table1(client_tbl, session_tbl, ["dropout_fewer_than_3"], constructs=vocabulary)
    assert "Dropout: fewer than 3" in set(plain["variable"])


# --------------------------------------------------------------------------- suppression


def long_counts(values, variable="Dropout", percents=True):
    """A count row (and percent row) per framework a, b, c and Total."""
    frameworks = ["a", "b", "c", "Total"]
    rows = [(variable, "count", f, float(v), v) for f, v in zip(frameworks, values, strict=True)]
    if percents:
        rows += [(variable, "percent", f, 10.0, 50) for f in frameworks]
    return pd.DataFrame(rows, columns=["variable", "statistic", "framework", "value", "n"])


def hidden(out, statistic="count"):
    return out.loc[(out.statistic == statistic) & out.suppressed, "framework"].tolist()


def test_zero_is_shown_small_counts_and_their_percents_hidden():
    out = suppress_small_counts(long_counts([0, 4, 5, 9]))
    # b = 4 is primary; alone it could be recovered as 9 - 0 - 5, so c (smallest shown > 0)
    # is hidden too; a = 0 stays
    assert hidden(out) == ["b", "c"]
    assert hidden(out, "percent") == ["b", "c"]
    assert out.loc[out.suppressed, "value"].isna().all()
    assert out.loc[out.suppressed, "n"].isna().all()
    assert out.loc[(out.framework == "a") & (out.statistic == "count"), "value"].item() == 0


def test_threshold_boundary_and_no_complement_when_nothing_small():
    out = suppress_small_counts(long_counts([5, 6, 0, 11]))
    assert not out["suppressed"].any()
    out = suppress_small_counts(long_counts([1, 6, 7, 14]), min_cell=2)
    assert hidden(out) == ["a", "b"]  # 1 is below 2; complement: smallest shown, 6


def test_complement_until_hidden_cells_reach_min_cell():
    # a = 2 and b = 2 add up to 4 < 5: c (30) must go as well
    out = suppress_small_counts(long_counts([2, 2, 30, 34]))
    assert hidden(out) == ["a", "b", "c"]
    assert hidden(out, "percent") == ["a", "b", "c"]
    # a = 3 and b = 4 add up to 7 >= 5: no complement
    assert hidden(suppress_small_counts(long_counts([3, 4, 30, 37]))) == ["a", "b"]


def test_small_complement_is_withheld():
    # 29 of 30 clients with a rupture reveals the 1 client without one
    long = long_counts([29, 29, 30, 88]).assign(n=[29, 29, 30, 88, 30, 30, 30, 90])
    out = suppress_small_counts(long)
    assert hidden(out) == ["a", "b", "Total"]
    assert out.loc[out.statistic == "count", "reason"].tolist() == [
        "complement",
        "complement",
        "",
        "complement",
    ]
    assert hidden(out, "percent") == ["a", "b", "Total"]
    # complements 1, 10, 10 (total 21): a alone could be recovered as 21 - 10 - 10
    long = long_counts([29, 20, 20, 69]).assign(n=[29, 20, 20, 69, 30, 30, 30, 90])
    out = suppress_small_counts(long)
    assert out.loc[out.statistic == "count", "reason"].tolist() == [
        "complement",
        "secondary",
        "",
        "",
    ]


def test_total_hidden_when_no_other_cell_can_protect():
    out = suppress_small_counts(long_counts([3, 0, 0, 7], variable="Therapists"))
    assert hidden(out) == ["a", "Total"]
    out = suppress_small_counts(long_counts([3, 0, 0, 3]))
    assert hidden(out) == ["a", "Total"]  # total itself is small


def test_means_on_few_units_hidden():
    long = pd.DataFrame(
        [
            ("Alliance", "mean", "a", 5.0, 4),
            ("Alliance", "sd", "a", 1.0, 4),
            ("Alliance", "mean", "b", 5.5, 5),
            ("Alliance", "sd", "b", 0.9, 5),
            ("Repair", "mean", "a", np.nan, 0),
            ("Repair", "sd", "a", np.nan, 0),
        ],
        columns=["variable", "statistic", "framework", "value", "n"],
    )
    out = suppress_small_counts(long)
    assert out["suppressed"].tolist() == [True, True, False, False, False, False]
    assert out.attrs["min_cell"] == 5


# --------------------------------------------------------------------------- formatting


def test_format_table1_strings():
    long = pd.concat(
        [
            long_counts([18, 0, 3, 21]).assign(
                value=[18, 0, 3, 21, 20.0, 0.0, 2.5, 9.25], n=[18, 0, 3, 21, 90, 40, 120, 250]
            ),
            pd.DataFrame(
                [
                    ("Alliance", "mean", "a", 12.3, 10),
                    ("Alliance", "sd", "a", 4.5, 10),
                    ("Alliance", "mean", "b", 1.0, 3),
                    ("Alliance", "sd", "b", 0.0, 3),
                    ("Alliance", "mean", "c", np.nan, 0),
                    ("Alliance", "sd", "c", np.nan, 0),
                    ("Alliance", "mean", "Total", 1234.5, 13),
                    ("Alliance", "sd", "Total", np.nan, 13),
                ],
                columns=["variable", "statistic", "framework", "value", "n"],
            ),
            # no homework set in framework a: a percentage of nothing
            long_counts([0, 40, 50, 90], variable="Homework").assign(
                value=[0, 40, 50, 90, np.nan, 50.0, 50.0, 50.0],
                n=[0, 40, 50, 90, 0, 80, 100, 180],
            ),
        ]
    )
    wide = format_table1(suppress_small_counts(long))
    assert wide.columns.tolist() == ["Characteristic", "A", "B", "C", "Total"]
    # c = 3 is small; a = 18 is withheld ("s") so that c cannot be found as 21 - 18 - 0
    assert wide.iloc[0].tolist() == ["Dropout, n (%)", "s", "0 (0.0%)", "<5", "21 (9.2%)"]
    assert wide.iloc[1].tolist() == [
        "Alliance, M (SD)",
        "12.30 (4.50)",
        "n<5",
        "\u2014",
        "1,234.50",
    ]
    assert wide.iloc[2].tolist() == [
        "Homework, n (%)",
        "\u2014",
        "40 (50.0%)",
        "50 (50.0%)",
        "90 (50.0%)",
    ]
    assert "shown as <5" in wide.attrs["note"]
    assert table1_markdown(wide).endswith(wide.attrs["note"])


def test_format_table1_needs_threshold_when_read_from_file(tmp_path):
    long = suppress_small_counts(long_counts([10, 20, 30, 60]), min_cell=10)
    path = tmp_path / "table1.csv"
    long.to_csv(path, index=False)
    again = pd.read_csv(path)
    with pytest.raises(ValueError, match="pass min_cell="):
        format_table1(again)
    assert format_table1(again, min_cell=10).iloc[0, 1] == "10 (10.0%)"
    assert "note" not in format_table1(again, min_cell=10).attrs


def test_table1_markdown_layout():
    wide = pd.DataFrame({"Characteristic": ["Clients, n", "A | B, n"], "Total": ["45", "<5"]})
    text = table1_markdown(wide, note="Counts from 1 to 4 are shown as <5.")
    assert text.splitlines() == [
        "| Characteristic | Total |",
        "| :--- | ---: |",
        "| Clients, n | 45 |",
        "| A \\| B, n | <5 |",
        "",
        "*Note.* Counts from 1 to 4 are shown as <5.",
    ]


# --------------------------------------------------------------------------- rates


def test_rate_interval_by_hand():
    # values 0, 1, 2, 1, 1: mean 1, s = sqrt(2 / 4), SE = s / sqrt(5) = 0.316228;
    # t(0.975, 4) = 2.776445 (tables); log-scale half-width = 2.776445 * 0.316228 / 1
    rate, low, high = rate_interval([0, 1, 2, 1, 1], np.ones(5))
    half = 2.776445105 * np.sqrt(0.5) / np.sqrt(5)
    assert rate == 1.0
    assert (low, high) == pytest.approx((np.exp(-half), np.exp(half)), rel=1e-9)
    assert np.isnan(rate_interval([0, 0, 0], [1, 1, 1])[1])  # no events: no interval
    assert np.isnan(rate_interval([3], [1])[2])  # one cluster: no interval


def test_rate_interval_matches_cluster_robust_poisson_glm():
    rng = np.random.default_rng(3)
    y = rng.poisson(4, 15).astype(float)
    m = rng.uniform(1, 6, 15)
    fit = sm.GLM(y, np.ones((15, 1)), family=sm.families.Poisson(), offset=np.log(m)).fit(
        cov_type="cluster", cov_kwds={"groups": np.arange(15)}
    )
    t = stats.t.ppf(0.975, 14)
    rate, low, high = rate_interval(y, m)
    assert rate == pytest.approx(np.exp(fit.params[0]), rel=1e-10)
    assert low == pytest.approx(np.exp(fit.params[0] - t * fit.bse[0]), rel=1e-8)
    assert high == pytest.approx(np.exp(fit.params[0] + t * fit.bse[0]), rel=1e-8)


def session_rows(framework, session, values, first_client=0):
    return pd.DataFrame(
        {
            "study": "s",
            "client": [f"{framework}{first_client + i}" for i in range(len(values))],
            "framework": framework,
            "session": session,
            "attended": True,
            "ruptures": values,
        }
    )


def test_rate_by_session_hand_case():
    table = pd.concat(
        [
            session_rows("cognitive", 1, [0, 1, 2, 1, 1]),
            session_rows("cognitive", 2, [0, 0, 0, 0, 0]),
            session_rows("behavioral", 1, [3, 1, 2]),
            session_rows("behavioral", 2, [np.nan, 1]).assign(attended=[False, True]),
        ],
        ignore_index=True,
    )
    # frameworks in the map's order (categorical, as map_frameworks makes them)
    table["framework"] = pd.Categorical(table["framework"], ["behavioral", "cognitive"])
    out = rate_by_session(table)
    assert out[["framework", "session"]].astype(str).values.tolist() == [
        ["behavioral", "1"],
        ["behavioral", "2"],
        ["cognitive", "1"],
        ["cognitive", "2"],
    ]
    cognitive = out[out["framework"] == "cognitive"].set_index("session")
    half = 2.776445105 * np.sqrt(0.5) / np.sqrt(5)
    assert cognitive.loc[1, ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [1.0, np.exp(-half), np.exp(half)]
    )
    assert cognitive.loc[2, "mean"] == 0 and np.isnan(cognitive.loc[2, "ci_high"])
    assert cognitive["n_sessions"].tolist() == [5, 5]
    behavioral = out[out["framework"] == "behavioral"]
    assert behavioral["suppressed"].all()  # 3 and 1 sessions (the missed one not counted)
    assert behavioral[["n_sessions", "mean", "ci_low"]].isna().all(axis=None)
    assert not rate_by_session(table, min_cell=1)["suppressed"].any()


def test_resistance_profile_matches_clustered_poisson_glm():
    rng = np.random.default_rng(5)
    rows = []
    for i in range(12):
        for session in range(1, rng.integers(3, 9)):
            rows.append(
                {
                    "study": "s",
                    "client": f"C{i}",
                    "framework": "cognitive",
                    "session": session,
                    "attended": True,
                    "minutes": float(rng.integers(30, 70)),
                    "resistance_arguing": rng.poisson(0.3 + 0.2 * (i % 3)),
                    "resistance_ignoring": rng.poisson(0.5),
                }
            )
    table = pd.DataFrame(rows)
    table.loc[len(table)] = {
        "study": "s",
        "client": "C0",
        "framework": "cognitive",
        "session": 9,
        "attended": False,
        "minutes": np.nan,
        "resistance_arguing": np.nan,
        "resistance_ignoring": np.nan,
    }
    parts = ["resistance_arguing", "resistance_ignoring"]
    out = construct_profile(table, parts, labels={"resistance_arguing": "Arguing"})
    assert out.columns.tolist() == PROFILE_COLUMNS
    assert out["label"].tolist() == ["Arguing", "Resistance ignoring"]  # default: in words
    out = out.set_index("construct")
    assert out.index.tolist() == parts
    done = table[table["attended"]]
    t = stats.t.ppf(0.975, 11)
    for behaviour in parts:
        y = done[behaviour].astype(float)
        for per, exposure in [
            ("per_session", np.ones(len(done))),
            ("per_hour", done["minutes"] / 60),
        ]:
            fit = sm.GLM(
                y, np.ones((len(done), 1)), family=sm.families.Poisson(), offset=np.log(exposure)
            ).fit(cov_type="cluster", cov_kwds={"groups": done["client"]})
            b, se = fit.params.iloc[0], fit.bse.iloc[0]
            got = out.loc[behaviour, [per, f"{per}_ci_low", f"{per}_ci_high"]].tolist()
            assert got == pytest.approx(
                [np.exp(b), np.exp(b - t * se), np.exp(b + t * se)], rel=1e-8
            )
        assert out.loc[behaviour, "n_clients"] == 12
        assert out.loc[behaviour, "n_sessions"] == len(done)
    few = construct_profile(table[table["client"].isin(["C1", "C2", "C3"])], parts)
    assert few["suppressed"].all() and few["per_session"].isna().all()


def test_profile_without_its_parts_is_an_empty_table_not_an_error():
    # no resistance coding: the stage is not assessed; the caller writes the empty table
    table = session_rows("cognitive", 1, [1, 2]).assign(minutes=50.0)
    for parts in ([], ["resistance_arguing", "resistance_denying"]):
        out = construct_profile(table, parts)
        assert out.empty and out.columns.tolist() == PROFILE_COLUMNS


def test_profile_per_hour_uses_only_sessions_with_minutes():
    table = pd.concat([session_rows("cognitive", s, [1, 2, 0, 1, 3]) for s in (1, 2)])
    table = table.rename(columns={"ruptures": "sustain_talk"}).reset_index(drop=True)
    table["minutes"] = [60.0, 30.0, 60.0, 60.0, 60.0, np.nan, 30.0, 60.0, 60.0, 60.0]
    out = construct_profile(table, ["sustain_talk"], min_cell=1).iloc[0]
    done = table.dropna(subset=["minutes"])
    assert out["per_session"] == pytest.approx(table["sustain_talk"].mean())
    assert out["per_hour"] == pytest.approx(
        done["sustain_talk"].sum() / (done["minutes"].sum() / 60)
    )


def test_profile_without_minutes_has_no_hourly_rates():
    table = session_rows("cognitive", 1, [1, 2, 0, 1, 3])
    out = construct_profile(table, ["ruptures"], min_cell=1)
    assert out["per_session"].iloc[0] == pytest.approx(1.4)
    assert out["per_hour"].isna().all()


def test_rate_by_session_without_its_construct_is_an_empty_table():
    out = rate_by_session(session_rows("cognitive", 1, [1, 2]), construct=None)
    assert out.empty and out.columns.tolist() == RATE_COLUMNS


# --------------------------------------------------------------------------- retention


def person_period_rows(spells, framework="cognitive"):
    """Person-period rows from {client: (last session at risk, dropped out)}, no gaps."""
    rows = [
        (framework, client, t, int(dropped and t == last))
        for client, (last, dropped) in spells.items()
        for t in range(1, last + 1)
    ]
    return pd.DataFrame(rows, columns=["framework", "client", "time", "event"])


# A at risk at sessions 1-2 and drops out after 2; B drops out after 1; C is censored after
# 2; D drops out after 3; E is censored after 3.
HAND_SPELLS = {"A": (2, True), "B": (1, True), "C": (2, False), "D": (3, True), "E": (3, False)}


def test_retention_curve_matches_hand_computation():
    curve = retention_curves(person_period_rows(HAND_SPELLS), min_cell=1)
    # Worked by hand (z = 1.959964):
    # t=1: n=5, d=1: S = 4/5 = 0.8; Greenwood sum 1/(5*4) = 0.05; SE = 0.8 sqrt(0.05) = 0.178885;
    #      log(-log) SE = sqrt(0.05)/|ln 0.8| = 1.002076; CI = 0.8^exp(+-z*1.002076)
    #      = (0.8^7.127657, 0.8^0.140298) = (0.203809, 0.969180)
    # t=2: n=4 (A, C, D, E), d=1: S = 0.8 * 3/4 = 0.6; sum 0.05 + 1/12 = 0.133333;
    #      SE = 0.6 sqrt(0.133333) = 0.219089; CI = (0.125730, 0.881756)
    # t=3: n=2 (D, E), d=1: S = 0.6 * 1/2 = 0.3; sum 0.133333 + 1/2 = 0.633333;
    #      SE = 0.3 sqrt(0.633333) = 0.238747; CI = (0.012302, 0.719218)
    # (R: survfit(Surv(c(2, 1, 2, 3, 3), c(1, 1, 0, 1, 0)) ~ 1, conf.type = "log-log"))
    assert curve["session"].tolist() == [1, 2, 3]
    assert curve["n_risk"].tolist() == [5, 4, 2]
    assert curve["n_events"].tolist() == [1, 1, 1]
    assert curve["survival"].tolist() == pytest.approx([0.8, 0.6, 0.3], abs=1e-12)
    assert curve["se"].tolist() == pytest.approx([0.178885, 0.219089, 0.238747], abs=1e-6)
    assert curve["ci_low"].tolist() == pytest.approx([0.203809, 0.125730, 0.012302], abs=1e-6)
    assert curve["ci_high"].tolist() == pytest.approx([0.969180, 0.881756, 0.719218], abs=1e-6)
    assert not curve["suppressed"].any()
    assert list(curve.columns) == [
        "framework", "session", "n_risk", "n_events", "survival", "se", "ci_low", "ci_high",
        "suppressed",
    ]  # fmt: skip


def test_retention_curves_agree_with_statsmodels_kaplan_meier():
    rng = np.random.default_rng(5)
    frames, spells = [], {}
    for framework in FRAMEWORKS:
        last = rng.integers(1, 13, 40)
        dropped = rng.random(40) < 0.4
        spells[framework] = (last, dropped)
        frames.append(
            person_period_rows(
                {
                    f"{framework}{i}": (int(t), bool(e))
                    for i, (t, e) in enumerate(zip(last, dropped, strict=True))
                },
                framework,
            )
        )
    curves = retention_curves(pd.concat(frames), min_cell=1, level=0.9)
    assert [str(f) for f in curves["framework"].unique()] == FRAMEWORKS
    z = stats.norm.ppf(0.95)
    for framework, (last, dropped) in spells.items():
        reference = SurvfuncRight(last, dropped.astype(float))  # independent implementation
        mine = curves[curves["framework"] == framework].set_index("session")
        at = reference.surv_times.astype(int)
        assert mine.loc[at, "survival"].to_numpy() == pytest.approx(reference.surv_prob)
        assert mine.loc[at, "se"].to_numpy() == pytest.approx(reference.surv_prob_se)
        assert mine.loc[at, "n_risk"].to_numpy(float) == pytest.approx(reference.n_risk)
        assert mine.loc[at, "n_events"].to_numpy(float) == pytest.approx(reference.n_events)
        # log(-log) interval from statsmodels' Greenwood SE (delta method)
        s, se = reference.surv_prob, reference.surv_prob_se
        ok = s > 0
        width = z * se[ok] / (s[ok] * np.abs(np.log(s[ok])))
        assert mine.loc[at[ok], "ci_low"].to_numpy() == pytest.approx(s[ok] ** np.exp(width))
        assert mine.loc[at[ok], "ci_high"].to_numpy() == pytest.approx(s[ok] ** np.exp(-width))
        # sessions without a dropout keep the survival of the session before
        quiet = mine[mine["n_events"] == 0]
        for session in quiet.index[quiet.index > 1]:
            assert mine.loc[session, "survival"] == mine.loc[: session - 1, "survival"].iloc[-1]


def test_retention_curves_from_person_period_data():
    clients = pd.DataFrame(
        {
            "study": "s",
            "client": ["C1", "C2", "C3"],
            "therapist": "T1",
            "framework": "cognitive",
            "planned_sessions": 4,
            "end_status": ["dropout", "completed", "dropout"],
        }
    )
    sessions = pd.DataFrame(
        {
            "study": "s",
            "client": ["C1"] * 3 + ["C2"] * 4 + ["C3"] * 3,
            "session": [1, 2, 3, 1, 2, 3, 4, 1, 2, 3],
            "attended": [True, True, False, True, True, True, True, True, False, True],
            "ruptures": [0, 1, None, 0, 0, 1, 0, 1, None, 0],
            "repaired": [0, 1, None, 0, 0, 1, 0, 0, None, 0],
        }
    )
    pp = person_period(sessions, clients, {"rule": "end_status"})
    curve = retention_curves(pp, min_cell=1)
    # session 1: C1, C2, C3 at risk, none leaves; session 2: C1 (leaves: its last attended
    # session) and C2 (C3 missed session 2, so is not at risk there); session 3: C2 and C3
    # (leaves). S = 1, 1/2, 1/2 * 1/2.
    assert curve["n_risk"].tolist() == [3, 2, 2]
    assert curve["n_events"].tolist() == [0, 1, 1]
    assert curve["survival"].tolist() == pytest.approx([1.0, 0.5, 0.25])
    # no dropout yet: no uncertainty
    assert curve.loc[0, ["se", "ci_low", "ci_high"]].tolist() == [0.0, 1.0, 1.0]


def test_retention_curves_suppress_small_risk_sets_and_empty_curves():
    # C0 drops out after session 1; C1-C4 stay to session 3; C5, C6 finish after session 1
    spells = {"C0": (1, True), **{f"C{i}": (3 if i < 5 else 1, False) for i in range(1, 7)}}
    curve = retention_curves(person_period_rows(spells), min_cell=5)
    assert curve["suppressed"].tolist() == [False, True, True]  # 7, then 4 and 4 at risk
    assert curve.loc[1:, ["n_risk", "n_events", "survival", "ci_low"]].isna().all().all()
    assert curve.loc[0, "survival"] == pytest.approx(1 - 1 / 7)
    everyone = retention_curves(person_period_rows({"A": (1, True), "B": (1, True)}), min_cell=1)
    # S = 0: Greenwood's sum is infinite, so no SE and no interval
    assert everyone.loc[0, "survival"] == 0
    assert everyone[["se", "ci_low", "ci_high"]].isna().all().all()


def test_retention_curves_by_two_columns_in_reporting_order():
    pp = pd.concat(
        [
            person_period_rows({"A": (2, True), "B": (3, False)}, "cognitive"),
            person_period_rows({"C": (2, False), "D": (1, True)}, "psychoanalytic"),
        ]
    )
    pp["repair_tertile"] = pd.Categorical(
        pp["client"].map({"A": "High repair", "B": "Low repair", "C": "Low repair",
                          "D": "Low repair"}),
        categories=REPAIR_GROUPS,
    )  # fmt: skip
    pp["framework"] = pd.Categorical(pp["framework"], ["psychoanalytic", "cognitive"])  # map order
    curves = retention_curves(pp, by=["framework", "repair_tertile"], min_cell=1)
    keys = curves[["framework", "repair_tertile"]].astype(str).drop_duplicates()
    assert keys.values.tolist() == [
        ["psychoanalytic", "Low repair"],
        ["cognitive", "Low repair"],
        ["cognitive", "High repair"],
    ]
    low = curves[(curves["framework"] == "psychoanalytic")]
    assert low["n_risk"].tolist() == [2, 1] and low["survival"].tolist() == [0.5, 0.5]


def test_retention_curves_reject_bad_rows():
    pp = person_period_rows(HAND_SPELLS)
    with pytest.raises(
        DataError, match=r"row 2 \(client 'A', time '2'\): column 'event' has the value '2'"
    ):
        retention_curves(pp.assign(event=pp["event"].replace(1, 2)))
    with pytest.raises(DataError, match="column 'time' has the value '0'"):
        retention_curves(pp.assign(time=pp["time"] - 1))
    with pytest.raises(DataError, match="row 1 .*column 'framework' is empty; it must be a group"):
        retention_curves(pp.assign(framework=[None] + ["cognitive"] * (len(pp) - 1)))
    with pytest.raises(DataError, match="missing column"):
        retention_curves(pp, by="repair_tertile")


def test_repair_tertile_cuts_pooled_rates_and_keeps_clients_without_ruptures():
    rates = [0.0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.0]
    tbl = pd.DataFrame(
        {
            "study": "s",
            "client": [f"C{i}" for i in range(11)],
            "framework": ["cognitive", "behavioral"] * 5 + ["cognitive"],
            "ruptures_total": [10] * 9 + [0, 0],
            "repaired_total": [10 * r for r in rates] + [0, 0],
            "rupture_rate": [1.0] * 9 + [0.0, np.nan],
        }
    )
    out = repair_tertile(tbl)
    # Cut points over the 9 pooled rates (type 7 quantiles): 1/3 -> 0.2 + (0.4 - 0.2) * 2/3
    # = 0.333 (position 8/3 between 0.2 and 0.4), 2/3 -> 0.6 + (0.8 - 0.6) * 1/3 = 0.667.
    assert out["repair_tertile"].astype(str).tolist() == [
        *["Low repair"] * 3, *["Middle repair"] * 3, *["High repair"] * 3,
        "No ruptures", "Not coded",
    ]  # fmt: skip
    assert out["repair_tertile"].cat.ordered
    assert list(out.columns) == ["study", "client", "repair_tertile"]
    ties = repair_tertile(tbl.assign(repaired_total=[5] * 9 + [0, 0]))
    # all rates 0.5: both cut points are 0.5, so every client is "Low repair"
    assert (ties["repair_tertile"].iloc[:9] == "Low repair").all()


def test_table1_headers_are_the_frameworks_labels():
    long = pd.DataFrame(
        {
            "variable": "Clients",
            "statistic": "count",
            "framework": ["cognitive_behavioural", "other", "Total"],
            "value": [10.0, 6.0, 16.0],
            "n": [10, 6, 16],
            "suppressed": False,
            "reason": "",
        }
    )
    wide = format_table1(long, min_cell=5)
    assert wide.columns.tolist() == ["Characteristic", "Cognitive behavioural", "Other", "Total"]
    wide = format_table1(long, min_cell=5, framework_labels={"cognitive_behavioural": "CBT"})
    assert wide.columns.tolist() == ["Characteristic", "CBT", "Other", "Total"]


# --------------------------------------------------------------------------- forms

#: A composite of forms written out by hand: overt (types a, b) and covert (type c).
FORMS = {"overt": ["type_a", "type_b"], "covert": ["type_c"]}


def forms_vocabulary(forms=FORMS):
    infos = {
        t: ConstructInfo(t, f"Type {t[-1]}", "count", "codes")
        for types in forms.values()
        for t in types
    }
    for form, types in forms.items():
        infos[form] = ConstructInfo(form, f"{form.capitalize()} resistance", "count",
                                    "sum_of", tuple(types), stem=form)  # fmt: skip
    infos["resistance"] = ConstructInfo("resistance", "Resistance", "count", "sum_of",
                                        tuple(forms))  # fmt: skip
    return Vocabulary(constructs=infos, profile="resistance")


def forms_study(coded=("type_a", "type_b", "type_c")):
    """Two frameworks x 5 clients x 2 attended sessions (and one missed) with counts of the
    coded types; forms and the composite are the sums of the types coded."""
    rng = np.random.default_rng(3)
    clients = pd.DataFrame({
        "study": "s", "client": [f"C{i}" for i in range(10)],
        "therapist": [f"T{i % 4}" for i in range(10)],
        "framework": ["cognitive"] * 5 + ["behavioral"] * 5,
        "planned_sessions": 3, "end_status": "completed",
    })  # fmt: skip
    rows = []
    for client, framework in clients[["client", "framework"]].values:
        for session in (1, 2, 3):
            row = {"study": "s", "client": client, "session": session, "attended": session < 3}
            if session < 3:
                scale = 2 if framework == "cognitive" else 1
                row["minutes"] = float(rng.integers(40, 61))
                row |= {t: int(rng.poisson(0.5 * scale)) for t in coded}
            rows.append(row)
    sessions = pd.DataFrame(rows)
    sessions[list(coded)] = sessions[list(coded)].astype("Int64")
    present = {f: [t for t in types if t in coded] for f, types in FORMS.items()}
    present = {f: t for f, t in present.items() if t}
    for form, types in present.items():
        sessions[form] = sessions[types].sum(axis=1, skipna=False)
    sessions["resistance"] = sessions[list(present)].sum(axis=1, skipna=False)
    return clients, sessions, forms_vocabulary(present)


def test_profile_by_form_has_each_form_then_its_types():
    clients, sessions, vocab = forms_study()
    session_tbl = session_table(sessions, clients, constructs=vocab)
    out = construct_profile(session_tbl, vocab.profile_parts(), labels=vocab.all_labels(),
                            min_cell=1, forms=FORMS)  # fmt: skip
    assert out.columns.tolist() == PROFILE_COLUMNS
    cognitive = out[out["framework"] == "cognitive"]
    assert cognitive[["kind", "form", "construct"]].values.tolist() == [
        ["form", "overt", "overt"], ["type", "overt", "type_a"], ["type", "overt", "type_b"],
        ["form", "covert", "covert"], ["type", "covert", "type_c"],
    ]  # fmt: skip
    assert cognitive["label"].tolist()[:2] == ["Overt resistance", "Type a"]
    done = sessions[sessions["attended"]].merge(clients[["client", "framework"]])
    for framework, group in done.groupby("framework"):
        rows = out[out["framework"] == framework].set_index("construct")
        # a form's rate is its count per attended session: the sum of its types' rates
        overt = group["type_a"].astype(float) + group["type_b"].astype(float)
        assert rows.loc["overt", "per_session"] == pytest.approx(overt.mean())
        assert rows.loc["overt", "per_session"] == pytest.approx(
            rows.loc["type_a", "per_session"] + rows.loc["type_b", "per_session"]
        )
        hours = group["minutes"].sum() / 60
        assert rows.loc["covert", "per_hour"] == pytest.approx(group["type_c"].sum() / hours)
        # the interval is rate_interval's, clients as clusters
        per_client = group.assign(y=overt).groupby("client")["y"].agg(["sum", "size"])
        expected = rate_interval(per_client["sum"], per_client["size"])
        got = rows.loc["overt", ["per_session", "per_session_ci_low", "per_session_ci_high"]]
        assert got.tolist() == pytest.approx(list(expected))
        assert rows.loc["overt", "n_clients"] == 5 and rows.loc["overt", "n_sessions"] == 10


def test_profile_of_a_lab_coding_one_form_has_only_its_rows():
    clients, sessions, vocab = forms_study(coded=("type_a", "type_b"))
    assert vocab.profile_forms() == ["overt"]
    session_tbl = session_table(sessions, clients, constructs=vocab)
    forms = {f: vocab.constructs[f].parts for f in vocab.profile_forms()}
    out = construct_profile(session_tbl, vocab.profile_parts(), min_cell=1, forms=forms)
    assert set(out["construct"]) == {"overt", "type_a", "type_b"}  # no covert rows, no 0s
    # the forms table of a composite without forms: every row a type of no form
    plain = construct_profile(session_tbl, ["type_a", "type_b"], min_cell=1)
    assert set(plain["kind"]) == {"type"} and set(plain["form"]) == {""}


def test_table1_has_each_form_and_under_it_its_types():
    clients, sessions, vocab = forms_study()
    client_tbl = client_table(sessions, clients, constructs=vocab)
    session_tbl = session_table(sessions, clients, constructs=vocab)
    long = table1(client_tbl, session_tbl, min_cell=1, constructs=vocab)
    rows = [v for v in dict.fromkeys(long["variable"]) if "per attended session" in v]
    assert rows == [
        "Overt resistance per attended session",
        "Overt resistance per attended session: type a",
        "Overt resistance per attended session: type b",
        "Covert resistance per attended session",
        "Covert resistance per attended session: type c",
        "Resistance per attended session: all forms",
    ]
    done = sessions[sessions["attended"]].merge(clients[["client", "framework"]])
    done["overt"] = done["overt"].astype(float)
    rate = done.groupby("client")["overt"].mean()
    framework = clients.set_index("client")["framework"]
    for name, group in rate.groupby(framework.reindex(rate.index)):
        got = cell(long, "Overt resistance per attended session", "mean", name)
        assert got["value"] == pytest.approx(group.mean())
        got = cell(long, "Overt resistance per attended session", "sd", name)
        assert got["value"] == pytest.approx(group.std(ddof=1))
    # a lab coding one form gets that form's rows only
    clients, sessions, vocab = forms_study(coded=("type_c",))
    client_tbl = client_table(sessions, clients, constructs=vocab)
    session_tbl = session_table(sessions, clients, constructs=vocab)
    long = table1(client_tbl, session_tbl, min_cell=1, constructs=vocab)
    rows = [v for v in dict.fromkeys(long["variable"]) if "per attended session" in v]
    assert rows == [
        "Covert resistance per attended session",
        "Covert resistance per attended session: type c",
        "Resistance per attended session: all forms",
    ]
