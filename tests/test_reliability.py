"""Tests of resistance_outcomes.reliability against published and hand-computed values."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import yaml
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from resistance_outcomes.codebook import load_codebook
from resistance_outcomes.ingest import ingest
from resistance_outcomes.reliability import (
    ReliabilityGateError,
    ReliabilityInputError,
    ReliabilityWarning,
    cohen_kappa,
    fleiss_kappa_table,
    format_reliability_table,
    icc_table,
    kappa_table,
    koo_li_label,
    reliability_analysis,
    reliability_gate,
    reliability_markdown,
)

ANNOMI = Path(__file__).resolve().parents[1] / ".." / "shared" / "external" / "annomi"

# Fleiss (1971), Table 1: 30 patients, 6 psychiatrists, 5 diagnoses (1 depression,
# 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other); one row per patient,
# one column per rating. Transcribed from statsmodels' test_inter_rater.py (`diagnoses`),
# which is R irr's `diagnoses` data. Fleiss (1971) reports kappa = .430; irr::kappam.fleiss
# gives 0.4302445 (value quoted in statsmodels' test_fleiss_kappa_irr).
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ]
)  # fmt: skip

# Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed., p. 120; irrCAC's
# `cac.raw4raters`: 12 units, 4 raters, missing ratings (None). irrCAC vignette:
# fleiss.kappa.raw -> pa = 0.8181818, pe = 0.2387153, kappa = 0.76117, se = 0.15302.
GWET_RAW4RATERS = [
    [1, 1, None, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [None, 5, 5, 5], [None, None, 1, 1],
    [None, None, 3, None],
]  # fmt: skip


def _long(matrix, unit="unit_id", rater="coder", value="category"):
    """Units x raters matrix (None = not rated) -> tidy long frame."""
    rows = [
        {unit: i, rater: f"r{j}", value: v}
        for i, row in enumerate(matrix)
        for j, v in enumerate(row)
        if v is not None
    ]
    return pd.DataFrame(rows)


def _counts(matrix, categories):
    return np.array(
        [[sum(v == c for v in row if v is not None) for c in categories] for row in matrix]
    )


def _gwet_fleiss(counts):
    """Fleiss' generalised kappa and its linearisation SE, transcribed from irrCAC's
    fleiss.kappa.raw (unweighted; Gwet 2014). Used only to check the bootstrap SE."""
    m = np.asarray(counts, float)
    n, r_i = m.shape[0], m.sum(1)
    pairs = (m * (m - 1)).sum(1)
    two = r_i >= 2
    pa = (pairs[two] / (r_i[two] * (r_i[two] - 1))).mean()
    pi = (m / r_i[:, None]).mean(0)
    pe = (pi**2).sum()
    kappa = (pa - pe) / (1 - pe)
    den = np.where(r_i * (r_i - 1) == 0, -1, r_i * (r_i - 1))
    k_i = (n / two.sum()) * (pairs / den - pe * two) / (1 - pe)
    k_i = k_i - 2 * (1 - kappa) * ((m @ pi) / r_i - pe) / (1 - pe)
    return kappa, np.sqrt(((k_i - kappa) ** 2).sum() / (n * (n - 1)))


# --------------------------------------------------------------------------------------
# ICC
# --------------------------------------------------------------------------------------


def test_icc_wine_matches_published_values():
    # pingouin's `icc` dataset (8 wines x 4 judges). ICC(A,1) = .7277 and ICC(A,k) = .9145
    # (Koo & Li's two-way random, absolute agreement; R psych::ICC ICC2 / ICC2k on the same
    # data); 95% CIs [0.43, 0.93] and [0.75, 0.98] from pingouin's documentation, which is
    # validated against psych::ICC.
    wine = pg.read_dataset("icc")
    out = icc_table(wine, targets="Wine", raters="Judge", ratings_col="Scores", by=None)
    row = out.iloc[0]
    assert row["icc_a1"] == pytest.approx(0.7277, abs=5e-5)
    assert row["icc_ak"] == pytest.approx(0.9145, abs=5e-5)
    assert [round(row["icc_a1_ci_low"], 2), round(row["icc_a1_ci_high"], 2)] == [0.43, 0.93]
    assert [round(row["icc_ak_ci_low"], 2), round(row["icc_ak_ci_high"], 2)] == [0.75, 0.98]
    assert row["design"] == "crossed"
    assert (row["n_targets"], row["n_raters"], row["ratings_per_target"]) == (8, 4, 4)
    assert row["label"] == "moderate"
    # No wine got the same score from all four judges (see the data).
    assert row["pct_agreement"] == 0.0
    assert row["statistic"] == "ICC(A,1)"


def test_icc_mean_squares_by_hand_on_wine():
    # Independent path: McGraw & Wong (1996) Table 4, case 2A, from two-way ANOVA mean
    # squares computed here with numpy (not pingouin):
    # ICC(A,1) = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n); case 1 (one-way):
    # ICC(1,1) = (MSR - MSW) / (MSR + (k-1) MSW), MSW the within-target mean square.
    wine = pg.read_dataset("icc").pivot(index="Wine", columns="Judge", values="Scores")
    x = wine.to_numpy(float)
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(1, keepdims=True) - x.mean(0) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    msw = ((x - x.mean(1, keepdims=True)) ** 2).sum() / (n * (k - 1))
    long = pg.read_dataset("icc")
    out = icc_table(long, targets="Wine", raters="Judge", ratings_col="Scores", by=None)
    expected_a1 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    assert out.at[0, "icc_a1"] == pytest.approx(expected_a1, rel=1e-12)
    assert out.at[0, "icc_1_1"] == pytest.approx((msr - msw) / (msr + (k - 1) * msw), rel=1e-12)


def _rotating_pairs():
    # Six sessions, three coders in rotating pairs; "primary" is the first rating.
    # session: (primary coder, value), (reliability coder, value)
    design = [
        (("A", 1), ("B", 2)),
        (("B", 3), ("C", 3)),
        (("C", 5), ("A", 4)),
        (("A", 2), ("B", 3)),
        (("B", 6), ("C", 6)),
        (("A", 4), ("C", 6)),
    ]
    rows = []
    for session, pair in enumerate(design, start=1):
        for role, (coder, value) in zip(("primary", "reliability"), pair, strict=True):
            rows.append(
                {"study": "s1", "client": "c1", "session": session, "coder": coder,
                 "role": role, "construct": "ruptures", "value": value}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_rotating_pairs_use_rater_slots_hand_computed():
    # Slots by role: first rating = primary. Matrix (first, second):
    # (1,2) (3,3) (5,4) (2,3) (6,6) (4,6); n = 6 targets, k = 2 slots, grand mean 3.75.
    # Target means 1.5 3 4.5 2.5 6 5  -> SS_targets = 2 * sum((m - 3.75)^2) = 28.75
    # Slot means 3.5, 4.0            -> SS_slots  = 6 * (0.0625 + 0.0625) = 0.75
    # SS_total = 32.25               -> SS_error  = 32.25 - 28.75 - 0.75 = 2.75
    # MSR = 28.75/5 = 5.75; MSC = 0.75/1 = 0.75; MSE = 2.75/5 = 0.55;
    # MSW (one-way, within targets) = (0.75 + 2.75)/6 = 0.583333
    # ICC(A,1) = (5.75 - 0.55) / (5.75 + 0.55 + 2 (0.75 - 0.55)/6) = 5.2/6.366667 = 0.816754
    # ICC(A,k) = (5.75 - 0.55) / (5.75 + (0.75 - 0.55)/6)          = 5.2/5.783333 = 0.899135
    # ICC(1,1) = (5.75 - 0.583333) / (5.75 + 0.583333)             = 0.815789
    out = icc_table(_rotating_pairs(), targets=["study", "client", "session"], slot_by="role")
    row = out.iloc[0]
    assert row["construct"] == "ruptures"
    assert row["design"] == "rater slots"
    assert (row["n_targets"], row["n_raters"], row["ratings_per_target"]) == (6, 3, 2)
    assert row["icc_a1"] == pytest.approx(0.816754, abs=1e-6)
    assert row["icc_ak"] == pytest.approx(0.899135, abs=1e-6)
    assert row["icc_1_1"] == pytest.approx(0.815789, abs=1e-6)
    assert row["pct_agreement"] == pytest.approx(100 * 2 / 6)  # sessions 2 and 5
    assert row["label"] == "good"


def test_rotating_pairs_slot_order_moves_icc_a1_not_icc_1_1():
    # Default slot order is coder id: session 3 (primary C = 5, reliability A = 4) becomes
    # (4, 5). Slot means 20/6 and 25/6 -> SS_slots = 12 * (5/12)^2 = 2.083333;
    # SS_error = 32.25 - 28.75 - 2.083333 = 1.416667, MSE = 0.283333, MSC = 2.083333.
    # ICC(A,1) = (5.75 - 0.283333) / (5.75 + 0.283333 + 2 (2.083333 - 0.283333)/6)
    #          = 5.466667 / 6.633333 = 0.824121. ICC(1,1) does not depend on slots.
    out = icc_table(_rotating_pairs(), targets=["study", "client", "session"])
    assert out.at[0, "icc_a1"] == pytest.approx(0.824121, abs=1e-6)
    assert out.at[0, "icc_1_1"] == pytest.approx(0.815789, abs=1e-6)


def test_icc_table_per_construct_with_single_rated_targets_noted():
    wine = pg.read_dataset("icc").rename(
        columns={"Wine": "session", "Judge": "coder", "Scores": "value"}
    )
    other = wine.assign(construct="resistance", value=wine["value"] * 2)
    single = pd.DataFrame(
        {"session": [90, 91], "coder": ["A", "A"], "value": [3, 4], "construct": "ruptures"}
    )
    ratings = pd.concat([wine.assign(construct="ruptures"), other, single], ignore_index=True)
    out = icc_table(ratings, targets="session")
    assert list(out["construct"]) == ["resistance", "ruptures"]
    # An ICC is unchanged by multiplying all ratings by a constant.
    assert out["icc_a1"].tolist() == pytest.approx([0.7277, 0.7277], abs=5e-5)
    assert out.set_index("construct").at["ruptures", "note"] == (
        "2 targets with a single rating not used"
    )
    assert not {"session", "coder"} & set(out.columns)


def test_icc_zero_variance_is_nan_with_note():
    ratings = pd.DataFrame(
        {"target": np.repeat(range(6), 2), "coder": ["A", "B"] * 6, "value": 0,
         "construct": "discord"}
    )  # fmt: skip
    row = icc_table(ratings).iloc[0]
    assert np.isnan(row["icc_a1"]) and np.isnan(row["icc_ak"])
    assert row["note"] == "all 12 ratings equal 0: no variance, ICC undefined"
    assert row["label"] == "not estimable"
    assert row["pct_agreement"] == 100.0


def test_icc_fewer_than_five_targets_is_nan_with_note():
    ratings = pd.DataFrame(
        {"target": np.repeat(range(4), 2), "coder": ["A", "B"] * 4,
         "value": [1, 2, 3, 3, 5, 4, 0, 1], "construct": "ruptures"}
    )  # fmt: skip
    row = icc_table(ratings).iloc[0]
    assert np.isnan(row["icc_a1"])
    assert row["n_targets"] == 4
    assert row["note"] == "4 targets rated by two or more coders; at least 5 needed"


def test_icc_perfect_agreement_is_one_without_interval():
    ratings = pd.DataFrame(
        {"target": np.repeat(range(6), 2), "coder": ["A", "B"] * 6,
         "value": np.repeat([1, 2, 3, 4, 5, 6], 2), "construct": "ruptures"}
    )  # fmt: skip
    row = icc_table(ratings).iloc[0]
    assert row["icc_a1"] == 1.0 and row["icc_ak"] == 1.0
    assert np.isnan(row["icc_a1_ci_low"])
    assert "agree exactly" in row["note"]
    assert row["label"] == "excellent"


def test_icc_errors_name_row_column_and_value():
    ratings = pd.DataFrame(
        {"target": [1, 1, 2, 2], "coder": ["A", "B", "A", "B"], "value": [1, "x", 2, 3],
         "construct": "ruptures"}
    )  # fmt: skip
    with pytest.raises(ReliabilityInputError, match=r"row 1, column 'value': value 'x'"):
        icc_table(ratings)
    with pytest.raises(ReliabilityInputError, match=r"missing column\(s\) \['rater'\]"):
        icc_table(ratings, raters="rater")
    duplicated = pd.DataFrame(
        {"target": [1, 1, 1], "coder": ["A", "A", "B"], "value": [1, 2, 3],
         "construct": "ruptures"}
    )  # fmt: skip
    with pytest.raises(ReliabilityInputError, match=r"rows \[0, 1\] repeat"):
        icc_table(duplicated)
    empty = duplicated.assign(value=[1.0, np.nan, 3.0], coder=["A", "B", "C"])
    with pytest.raises(ReliabilityInputError, match=r"row 1, column 'value' is empty"):
        icc_table(empty)


def test_icc_rotating_coders_with_unequal_ratings_per_target_is_an_error():
    ratings = _rotating_pairs()
    extra = ratings.iloc[[0]].assign(coder="C", role="reliability", value=2)
    with pytest.raises(ReliabilityInputError, match=r"2 ratings: 5 targets, 3 ratings: 1"):
        icc_table(pd.concat([ratings, extra]), targets=["study", "client", "session"])


# --------------------------------------------------------------------------------------
# Kappa
# --------------------------------------------------------------------------------------


def test_cohen_kappa_hand_computed_2x2():
    # Coder a in rows, b in columns: [[20, 5], [10, 15]], n = 50.
    # p_o = (20 + 15)/50 = .70; rows .5/.5, columns .6/.4; p_e = .5*.6 + .5*.4 = .50;
    # kappa = (.70 - .50)/(1 - .50) = .40.
    # SE by Fleiss, Cohen & Everitt (1969), the formula statsmodels' cohens_kappa uses:
    # A = sum_i p_ii (1 - (p_i. + p_.i)(1 - k))^2 = .4(1 - 1.1*.6)^2 + .3(1 - .9*.6)^2
    #   = .4*.1156 + .3*.2116 = .10972
    # B = (1 - k)^2 sum_{i!=j} p_ij (p_.i + p_j.)^2 = .36 (.1*(.6+.5)^2 + .2*(.4+.5)^2)
    #   = .36 * .283 = .10188
    # C = (k - p_e (1 - k))^2 = (.4 - .3)^2 = .01
    # var = (A + B - C) / ((1 - p_e)^2 n) = .2016 / 12.5 = .016128; SE = .126996
    # (The simpler sqrt(p_o (1 - p_o) / (n (1 - p_e)^2)) = .129615 is not what is used.)
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    res = cohen_kappa(a, b)
    assert res["kappa"] == pytest.approx(0.40, abs=1e-12)
    assert res["se"] == pytest.approx(np.sqrt(0.016128), abs=1e-9)
    assert res["ci_low"] == pytest.approx(0.40 - 1.959964 * np.sqrt(0.016128), abs=1e-6)
    assert res["ci_high"] == pytest.approx(0.40 + 1.959964 * np.sqrt(0.016128), abs=1e-6)
    assert res["pct_agreement"] == pytest.approx(70.0)
    assert res["n"] == 50


def test_cohen_kappa_matches_r_irr_kappa2():
    # R irr::kappa2 on a 3 x 3 table (ramnathv/RExRepos, interRaterICC.md): rows
    # V: 53 5 2, N: 11 14 5, P: 1 6 3 -> Kappa = 0.429, %-agree (irr::agree) = 70.
    cells = {("V", "V"): 53, ("V", "N"): 5, ("V", "P"): 2, ("N", "V"): 11, ("N", "N"): 14,
             ("N", "P"): 5, ("P", "V"): 1, ("P", "N"): 6, ("P", "P"): 3}  # fmt: skip
    a = [r for (r, _), c in cells.items() for _ in range(c)]
    b = [s for (_, s), c in cells.items() for _ in range(c)]
    res = cohen_kappa(a, b)
    assert round(res["kappa"], 3) == 0.429
    assert res["pct_agreement"] == pytest.approx(70.0)


def test_cohen_kappa_single_category_and_bad_input():
    res = cohen_kappa(["a"] * 6, ["a"] * 6)
    assert np.isnan(res["kappa"]) and res["pct_agreement"] == 100.0
    assert "kappa undefined" in res["note"]
    with pytest.raises(ReliabilityInputError, match="different numbers of units"):
        cohen_kappa(["a", "b"], ["a"])
    with pytest.raises(ReliabilityInputError, match=r"b\[1\] is missing"):
        cohen_kappa(["a", "b"], ["a", None])


def test_fleiss_1971_from_counts_and_from_long_units():
    counts = _counts(FLEISS_1971, range(1, 6))
    res = fleiss_kappa_table(counts, n_boot=500, seed=1)
    assert res["kappa"] == pytest.approx(0.4302445, abs=1e-7)
    assert res["n"] == 30
    # Units 1, 4, 10, 21, 30 are the only ones with six identical diagnoses.
    assert res["pct_agreement"] == pytest.approx(100 * 5 / 30)

    out = kappa_table(_long(FLEISS_1971), n_boot=500, seed=1)
    row = out.iloc[0]
    assert row["statistic"] == "Fleiss' kappa"
    assert (row["n_units"], row["n_raters"]) == (30, 6)
    assert row["kappa"] == pytest.approx(0.4302445, abs=1e-7)


def test_fleiss_wikipedia_example():
    # Wikipedia "Fleiss' kappa" worked example (10 subjects, 14 raters, 5 categories),
    # kappa = 0.210; the table as in statsmodels' test_inter_rater.py (table1).
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]  # fmt: skip
    assert round(fleiss_kappa_table(table, n_boot=200)["kappa"], 3) == 0.210


def test_fleiss_unequal_raters_gwet_example_hand_computed():
    # Gwet's cac.raw4raters (see GWET_RAW4RATERS). Unit 12 has one rating and is left out.
    # Observed agreement over units with >= 2 ratings is unchanged: pa = 0.8181818 (irrCAC).
    # Chance agreement over the 11 units, pi_k = mean of n_ik / n_i:
    #   sums: cat1 1+.25+.75+1 = 3; cat2 .75+1+.25+.25+1 = 3.25; cat3 .25+1+1+.25 = 2.5;
    #         cat4 .25+1 = 1.25; cat5 1
    #   pe = (9 + 10.5625 + 6.25 + 1.5625 + 1) / 121 = 28.375/121 = 0.2345041
    #   (with unit 12's cat3 = 1 and /144 this is irrCAC's pe = 34.375/144 = 0.2387153)
    # kappa = (0.8181818 - 0.2345041) / (1 - 0.2345041) = 0.762483
    expected = (9 / 11 - 28.375 / 121) / (1 - 28.375 / 121)
    out = kappa_table(_long(GWET_RAW4RATERS), n_boot=500, seed=3)
    row = out.iloc[0]
    assert row["statistic"] == "Fleiss' kappa"
    assert row["kappa"] == pytest.approx(expected, abs=1e-9)
    assert row["kappa"] == pytest.approx(0.762483, abs=1e-6)
    assert row["n_units"] == 11
    assert row["note"] == "1 units with a single rating not used"
    # Units 3, 4, 5, 7, 9, 10, 11 and 1 show complete agreement: 8 of 11.
    assert row["pct_agreement"] == pytest.approx(100 * 8 / 11)


def test_gwet_helper_reproduces_irrcac():
    # The test's own transcription of irrCAC's variance formula reproduces the published
    # vignette output (kappa 0.76117, se 0.15302) before it is used as a yardstick below.
    kappa, se = _gwet_fleiss(_counts(GWET_RAW4RATERS, range(1, 6)))
    assert (round(kappa, 5), round(se, 5)) == (0.76117, 0.15302)


def test_fleiss_bootstrap_se_agrees_with_gwet_linearisation_and_is_seeded():
    counts = _counts(FLEISS_1971, range(1, 6))
    _, gwet_se = _gwet_fleiss(counts)  # 0.05420 for Fleiss (1971)
    res = fleiss_kappa_table(counts, n_boot=2000, seed=11)
    assert res["se"] == pytest.approx(gwet_se, rel=0.10)
    assert res["ci_low"] < res["kappa"] < res["ci_high"]
    # Percentile interval roughly kappa -/+ 1.96 SE for a near-symmetric distribution.
    assert res["ci_high"] - res["ci_low"] == pytest.approx(2 * 1.96 * gwet_se, rel=0.15)
    again = fleiss_kappa_table(counts, n_boot=2000, seed=11)
    other = fleiss_kappa_table(counts, n_boot=2000, seed=12)
    assert (again["ci_low"], again["ci_high"]) == (res["ci_low"], res["ci_high"])
    assert other["ci_low"] != res["ci_low"]


def test_fleiss_counts_bad_cell_is_named():
    with pytest.raises(ReliabilityInputError, match=r"row 1, column 0: -1 is not a count"):
        fleiss_kappa_table([[2, 0], [-1, 3]])
    with pytest.raises(ReliabilityInputError, match="n_boot"):
        fleiss_kappa_table([[2, 0], [1, 1], [0, 2]], n_boot=0)


def test_kappa_table_chooses_cohen_for_one_fixed_pair():
    # The 2 x 2 hand example as tidy units: Cohen's kappa .40 with the FCE standard error.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    units = pd.DataFrame(
        {"unit_id": list(range(50)) * 2, "coder": ["A"] * 50 + ["B"] * 50, "category": a + b}
    )
    row = kappa_table(units).iloc[0]
    assert row["statistic"] == "Cohen's kappa"
    assert row["kappa"] == pytest.approx(0.40)
    assert row["se"] == pytest.approx(np.sqrt(0.016128), abs=1e-9)
    assert (row["n_units"], row["n_raters"]) == (50, 2)


def test_kappa_table_uses_fleiss_for_rotating_pairs_by_construct():
    # Pairs rotate (A-B, B-C, A-C): Fleiss' kappa, not Cohen's. Each unit has two ratings;
    # 6 of 9 units agree. Hand computation (n_i = 2, so a unit agrees fully or not at all):
    # pa = 6/9; categories over the 18 ratings: x 9, y 9 -> pe = .5^2 + .5^2 = .5;
    # kappa = (0.666667 - 0.5)/(1 - 0.5) = 1/3
    pairs = [("A", "B"), ("B", "C"), ("A", "C")] * 3
    first = ["x", "x", "y", "y", "x", "y", "x", "y", "y"]
    second = ["x", "y", "y", "y", "x", "x", "x", "y", "x"]
    rows = []
    for i, ((c1, c2), v1, v2) in enumerate(zip(pairs, first, second, strict=True)):
        rows += [{"unit_id": i, "coder": c1, "category": v1}]
        rows += [{"unit_id": i, "coder": c2, "category": v2}]
    units = pd.DataFrame(rows)
    both = pd.concat([units.assign(construct="talk"), units.assign(construct="tiny")])
    both = both[(both["construct"] == "talk") | (both["unit_id"] < 3)]
    out = kappa_table(both, by="construct", n_boot=300, seed=5).set_index("construct")
    assert out.at["talk", "statistic"] == "Fleiss' kappa"
    assert out.at["talk", "kappa"] == pytest.approx(1 / 3, abs=1e-12)
    assert out.at["talk", "pct_agreement"] == pytest.approx(100 * 6 / 9)
    assert np.isnan(out.at["tiny", "kappa"])
    assert out.at["tiny", "note"] == "3 units rated by two or more coders; at least 5 needed"


def test_kappa_table_duplicate_rating_is_an_error():
    units = pd.DataFrame({"unit_id": [1, 1], "coder": ["A", "A"], "category": ["x", "y"]})
    with pytest.raises(ReliabilityInputError, match=r"rows \[0, 1\] repeat"):
        kappa_table(units)


@pytest.mark.skipif(not ANNOMI.exists(), reason="AnnoMI corpus not available")
def test_annomi_client_talk_matches_statsmodels_fleiss():
    # AnnoMI (Wu et al., 2022): 212 client utterances coded by ten annotators. With the
    # same ten raters on every utterance, Fleiss' kappa must equal statsmodels'
    # fleiss_kappa (an independent implementation) on the aggregated counts.
    cols = ["transcript_id", "utterance_id", "interlocutor", "annotator_id", "client_talk_type"]
    data = pd.read_csv(ANNOMI / "AnnoMI-full.csv", usecols=cols)
    client = data[data["interlocutor"] == "client"]
    out = kappa_table(
        client,
        unit=["transcript_id", "utterance_id"],
        rater="annotator_id",
        category="client_talk_type",
        n_boot=200,
    )
    row = out.iloc[0]
    wide = client.pivot_table(
        index=["transcript_id", "utterance_id"], columns="annotator_id",
        values="client_talk_type", aggfunc="first",
    ).dropna()  # fmt: skip
    counts, _ = aggregate_raters(wide.to_numpy())
    assert row["n_units"] == len(wide) == 212
    assert row["n_raters"] == 10
    assert row["kappa"] == pytest.approx(fleiss_kappa(counts), abs=1e-12)


# --------------------------------------------------------------------------------------
# Labels and gate
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (-0.2, "poor"),
        (0.4999, "poor"),
        (0.50, "moderate"),
        (0.7499, "moderate"),
        (0.75, "good"),
        (0.90, "good"),
        (0.9001, "excellent"),
        (1.0, "excellent"),
        (float("nan"), "not estimable"),
    ],
)
def test_koo_li_label_boundaries(value, label):
    # Koo & Li (2016): < .50 poor, .50-.75 moderate, .75-.90 good, > .90 excellent.
    assert koo_li_label(value) == label


def _gate_table():
    icc = pd.DataFrame(
        {"construct": ["ruptures", "repaired", "discord"], "statistic": "ICC(A,1)",
         "icc_a1": [0.91, 0.62, np.nan],
         "note": ["", "", "all 12 ratings equal 0: no variance, ICC undefined"]}
    )  # fmt: skip
    kappa = pd.DataFrame(
        {"construct": ["talk_type"], "statistic": ["Fleiss' kappa"], "kappa": [0.55],
         "note": [""]}
    )  # fmt: skip
    return pd.concat([icc, kappa], ignore_index=True)


def test_gate_warn_returns_messages_naming_construct_value_and_minimum():
    with pytest.warns(ReliabilityWarning, match="repaired"):
        messages = reliability_gate(_gate_table(), {"icc": 0.75, "kappa": 0.6})
    assert messages == [
        "repaired: ICC(A,1) = 0.620 is below the minimum 0.75.",
        "discord: ICC(A,1) could not be estimated (all 12 ratings equal 0: no variance, ICC "
        "undefined), so it cannot be shown to reach the minimum 0.75.",
        "talk_type: Fleiss' kappa = 0.550 is below the minimum 0.6.",
    ]


def test_gate_strict_raises_and_per_construct_overrides():
    with pytest.raises(ReliabilityGateError, match=r"repaired: ICC\(A,1\) = 0.620 .* 0.75"):
        reliability_gate(_gate_table(), {"icc": 0.75, "kappa": 0.6}, mode="strict")
    thresholds = {
        "icc": 0.75,
        "kappa": 0.6,
        "per_construct": {"repaired": 0.6, "discord": None, "talk_type": 0.5},
    }
    assert reliability_gate(_gate_table(), thresholds, mode="strict") == []
    with pytest.raises(ReliabilityGateError, match=r"ruptures: ICC\(A,1\) = 0.910 .* 0.95"):
        reliability_gate(
            _gate_table(), {**thresholds, "per_construct": {**thresholds["per_construct"],
                                                              "ruptures": 0.95}}, mode="strict"
        )  # fmt: skip


def test_gate_rejects_bad_configuration():
    table = _gate_table()
    with pytest.raises(ReliabilityInputError, match="mode"):
        reliability_gate(table, {"icc": 0.75, "kappa": 0.6}, mode="loud")
    with pytest.raises(ReliabilityInputError, match=r"unknown key\(s\) \['iccc'\]"):
        reliability_gate(table, {"iccc": 0.75})
    with pytest.raises(ReliabilityInputError, match=r"icc = 7.5 is not a number between"):
        reliability_gate(table, {"icc": 7.5, "kappa": 0.6})
    with pytest.raises(ReliabilityInputError, match=r"no minimum for 'kappa'"):
        reliability_gate(table, {"icc": 0.75})


def test_gate_runs_on_real_tables():
    wine = pg.read_dataset("icc")
    table = icc_table(wine, targets="Wine", raters="Judge", ratings_col="Scores", by=None)
    assert reliability_gate(table, {"icc": 0.70}, mode="strict") == []
    with pytest.raises(ReliabilityGateError, match=r"all units: ICC\(A,1\) = 0.728"):
        reliability_gate(table, {"icc": 0.75}, mode="strict")


# --------------------------------------------------------------------------------------
# The analysis of a coded study, with a coding log
# --------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "resources" / "example"
CODEBOOK = load_codebook(REPO / "config" / "codebook.yaml")
SESSION = ["study", "client", "session"]

# Hand-made study: coder A (primary) and B (reliability) code sessions 1-5; session 6 is
# coded by A only. Session 2 has one code (A: arguing) and no rupture; B coded it and
# found nothing. In session 4 A found nothing.
HAND_LOG = pd.DataFrame(
    {"study": "s", "client": "c1",
     "session": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6],
     "coder": ["A", "B"] * 5 + ["A"],
     "role": ["primary", "reliability"] * 5 + ["primary"],
     "units": [4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3]}
)  # fmt: skip
HAND_CODES = pd.DataFrame(
    [
        (1, 1, "A", "W_MIN", 1),
        (1, 1, "A", "RES", 4),
        (1, 1, "B", "W_DEN", 1),
        (1, 1, "B", "RES", 3),
        (1, 2, "B", "C_REJ", 1),
        (1, 2, "B", "RES", 2),
        (2, 2, "A", "M_ARG", 1),
        (3, 1, "A", "C_THE", 1),
        (3, 1, "A", "RES", 5),
        (3, 3, "A", "W_MIN", 1),
        (3, 3, "A", "RES", 4),
        (3, 1, "B", "C_REJ", 1),
        (3, 1, "B", "RES", 5),
        (3, 3, "B", "W_ABS", 1),
        (3, 3, "B", "RES", 4),
        (4, 2, "B", "W_SCH", 1),
        (4, 2, "B", "RES", 1),
        (5, 3, "A", "C_DEF", 1),
        (5, 3, "A", "RES", 2),
        (5, 3, "B", "C_DEF", 1),
        (5, 3, "B", "RES", 3),
        (6, 1, "A", "W_MIN", 1),
        (6, 1, "A", "RES", 3),
    ],
    columns=["session", "unit", "coder", "code", "value"],
).assign(study="s", client="c1")
HAND_CODES["role"] = HAND_CODES["coder"].map({"A": "primary", "B": "reliability"})


def _hand_result(log=HAND_LOG):
    return reliability_analysis(HAND_CODES, log, CODEBOOK, n_boot=200, seed=3)


def _row(table, construct, statistic):
    chosen = table[(table["construct"] == construct) & (table["statistic"] == statistic)]
    assert len(chosen) == 1, (construct, statistic)
    return chosen.iloc[0]


def test_coding_log_gives_zeros_for_coders_without_codes_hand_computed():
    # Ruptures per session (A, B): s1 (1, 2), s2 (0, 0) [no rupture code at all],
    # s3 (2, 2), s4 (0, 1) [A coded nothing], s5 (1, 1); s6 has one coder: not used.
    # n = 5, k = 2, grand mean 1.0; row means 1.5 0 2 .5 1 -> SS_rows = 2 * 2.5 = 5.0;
    # column means .8, 1.2 -> SS_cols = 5 * (.04 + .04) = .4; SS_total = 6 ->
    # SS_error = .6. MSR = 1.25, MSC = .4, MSE = .15.
    # ICC(A,1) = (1.25 - .15) / (1.25 + .15 + 2 (.4 - .15) / 5) = 1.1 / 1.5 = .733333
    # ICC(A,k) = (1.25 - .15) / (1.25 + (.4 - .15) / 5)          = 1.1 / 1.3 = .846154
    result = _hand_result()
    table = result.table
    a1 = _row(table, "ruptures", "ICC(A,1)")
    assert a1["estimate"] == pytest.approx(1.1 / 1.5, abs=1e-12)
    assert _row(table, "ruptures", "ICC(A,k)")["estimate"] == pytest.approx(1.1 / 1.3, abs=1e-12)
    assert (a1["level"], a1["n_targets"], a1["n_raters"]) == ("session", 5, 2)
    assert a1["pct_agreement"] == pytest.approx(60.0)  # s2, s3 and s5 agree
    assert a1["label"] == "moderate"
    assert result.sample == {
        "source": "coding log", "note": "", "coded_sessions": 6, "double_coded_sessions": 5,
        "coders": 2, "double_coded_units": 16, "n_boot": 200, "assessed": True, "reason": "",
        "skipped": ["Client talk type: not assessed (not coded in this study: Change talk, "
                    "Neutral talk, Sustain talk)"],
    }  # fmt: skip
    assert result.assessed and result.reason == ""


def test_coding_log_units_without_codes_are_none_hand_computed():
    # Rupture type per unit (A, B); n = no code:
    # s1: (w, w) (n, c) (n, n) (n, n)   s2: (n, n) x 3   s3: (c, c) (n, n) (w, w)
    # s4: (n, n) (n, w) (n, n)           s5: (n, n) (n, n) (c, c)
    # 16 units, 14 agree: p_o = .875. A: w 2, c 2, n 12; B: w 3, c 3, n 10.
    # p_e = (2*3 + 2*3 + 12*10) / 16^2 = 132/256; kappa = (224 - 132) / (256 - 132)
    #     = 92/124 = 23/31 = .741935 (Cohen's: the same two coders coded every unit).
    row = _row(_hand_result().table, "rupture_type", "Cohen's kappa")
    assert row["estimate"] == pytest.approx(23 / 31, abs=1e-12)
    assert (row["level"], row["n_targets"], row["n_raters"]) == ("unit", 16, 2)
    assert row["pct_agreement"] == pytest.approx(100 * 14 / 16)
    # The resolution rating is compared per unit where both coders rated: 4 units.
    res = _row(_hand_result().table, "resolution_mean", "ICC(A,1)")
    assert np.isnan(res["estimate"]) and res["n_targets"] == 4
    assert res["note"] == (
        "4 units rated by two or more coders; at least 5 needed; "
        "2 units with a single rating not used"
    )


def test_without_coding_log_the_silent_coders_are_lost():
    # Inferred from the codes: s2 has codes of A only and s4 of B only, so both drop out
    # and three double-coded sessions remain (fewer than the five an ICC needs); units
    # after a coder's last code are lost too.
    result = _hand_result(log=None)
    row = _row(result.table, "ruptures", "ICC(A,1)")
    assert row["n_targets"] == 3 and np.isnan(row["estimate"])
    assert result.sample["source"] == "codes"
    assert "coders who coded nothing" in result.sample["note"]


def test_codes_of_a_coder_missing_from_the_log_are_an_error():
    log = HAND_LOG[~((HAND_LOG["session"] == 3) & (HAND_LOG["coder"] == "B"))]
    other = {"study": "s", "client": "c1", "session": 3, "coder": "C", "role": "reliability"}
    log = pd.concat([log, pd.DataFrame([{**other, "units": 3}])])
    with pytest.raises(
        ReliabilityInputError, match=r"row 11 .*coder=.B.\): the coding log has no row"
    ):
        reliability_analysis(HAND_CODES, log, CODEBOOK)
    # A categorical comparison naming a construct the codebook does not declare is skipped
    # and named (a lab's codebook need not have the example's constructs).
    result = reliability_analysis(
        HAND_CODES, HAND_LOG, CODEBOOK,
        categorical={"x": {"categories": {"a": "no_such_construct"}}},
    )  # fmt: skip
    assert "x" not in set(result.table["construct"])
    assert result.skipped == [
        f"X: not assessed ('no_such_construct' not declared under `constructs:` in "
        f"{CODEBOOK.source})"
    ]
    with pytest.raises(ReliabilityInputError, match=r"categorical\['x'\]: units 'all'"):
        reliability_analysis(
            HAND_CODES, HAND_LOG, CODEBOOK,
            categorical={"x": {"categories": {"a": "ruptures"}, "units": "all"}},
        )  # fmt: skip


def test_reliability_table_in_markdown():
    result = _hand_result()
    text = reliability_markdown(result.table, number=3, sample=result.sample)
    assert text.startswith("**Table 3**")
    assert "| *Counts per session* |" in text and "| *Categorical codes per unit* |" in text
    # ruptures: ICC(A,1) .733333 prints .73; 60.0% agreement; 5 sessions; 2 coders
    assert "| Ruptures | ICC(A,1) | .73 |" in text
    assert "| 5 | 2 | 60.0 | moderate |" in text
    assert "| Rupture type | Cohen's kappa | .74 |" in text
    assert "5 of 6 coded sessions coded by two or more coders (from the coding log)" in text
    assert "Resolution rating: 4 units rated by two or more coders" in text
    assert "Client talk type: not assessed (not coded in this study: Change talk" in text
    apa = format_reliability_table(result.table)
    assert apa.columns[4] == "n" and apa.rows.shape[1] == 8


def test_gate_on_the_analysis_table_checks_icc_a1_and_kappa_only():
    table = _hand_result().table
    # ruptures ICC(A,1) .733 and rupture type kappa .742 pass .70; ICC(A,k) rows are not
    # gated; constructs that cannot be estimated (too few units) are named.
    thresholds = {"icc": 0.70, "kappa": 0.70, "per_construct": {
        c: None for c in table["construct"] if c not in ("ruptures", "rupture_type")}}  # fmt: skip
    assert reliability_gate(table, thresholds, mode="strict") == []
    with pytest.raises(ReliabilityGateError, match=r"rupture_type: Cohen's kappa = 0.742 .* 0.8"):
        reliability_gate(table, {**thresholds, "kappa": 0.8}, mode="strict")
    with pytest.warns(ReliabilityWarning):
        messages = reliability_gate(table, {**thresholds, "icc": 0.8}, mode="warn")
    assert messages == ["ruptures: ICC(A,1) = 0.733 is below the minimum 0.8."]


# --------------------------------------------------------------------------------------
# The embedded example against the coder agreement it was simulated with
# --------------------------------------------------------------------------------------

Z = 3.0  # tolerance in jackknife standard errors (clients as clusters)
EXAMPLE_LOG_COLUMNS = {
    "client": "client_id",
    "session": "session_no",
    "coder": "coder",
    "role": "coder_role",
    "units": "segments",
}
PRESENCE = {"rupture_presence": {"categories": {"rupture": "ruptures"}}}


def _example_config():
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    settings["data"]["coding_log"] = "resources/example/coding_log.csv"
    settings["columns"]["coding_log"] = EXAMPLE_LOG_COLUMNS
    return settings


@pytest.fixture(scope="module")
def example():
    """The example ingested with its coding log, analysed; and its raw files."""
    if not (EXAMPLE / "coding_log.csv").is_file():
        pytest.skip("example study absent")
    data = ingest(_example_config(), REPO)
    result = reliability_analysis(data.codes, data.coding_log, CODEBOOK, seed=7, n_boot=1000)
    presence = reliability_analysis(
        data.codes, data.coding_log, CODEBOOK, categorical=PRESENCE, seed=7, n_boot=200
    )
    raw = {
        name: pd.read_csv(EXAMPLE / f"{name}.csv", dtype={"client_id": str})
        for name in ("codes", "coding_log")
    }
    truth = json.loads((EXAMPLE / "truth.json").read_text())["coding"]["expected_agreement"]
    return result, presence, raw, truth


def _double_coded_log(log):
    return log[log.groupby(["client_id", "session_no"])["coder"].transform("nunique") >= 2]


def _session_pairs(raw, codes_mask):
    """Primary and reliability count per double-coded session, from the raw files only:
    segments with one of the codes, 0 for a logged coder without such a code."""
    codes = raw["codes"][codes_mask(raw["codes"])]
    keys = ["client_id", "session_no", "coder_role"]
    counts = codes.drop_duplicates([*keys, "segment"]).groupby(keys).size().rename("n")
    log = _double_coded_log(raw["coding_log"]).set_index(keys)
    return log.join(counts)["n"].fillna(0).unstack("coder_role")


def _anova_icc_a1(x):
    """ICC(A,1) from two-way ANOVA mean squares (McGraw & Wong 1996, case 2A), numpy only."""
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(1, keepdims=True) - x.mean(0) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)


def _icc_from_sums(s):
    """Large-sample ICC(A,1) = 2 cov / (var1 + var2 + (mean1 - mean2)^2), the formula of
    truth.json, from sums n, x, y, xx, yy, xy."""
    n, sx, sy, sxx, syy, sxy = s
    mx, my = sx / n, sy / n
    cov = sxy / n - mx * my
    return 2 * cov / (sxx / n - mx**2 + syy / n - my**2 + (mx - my) ** 2)


def _kappa_from_sums(s):
    """Cohen's kappa of a 2 x 2 table from the cell counts n11, n10, n01, n00."""
    n11, n10, n01, n00 = s
    n = n11 + n10 + n01 + n00
    px, py = (n11 + n10) / n, (n11 + n01) / n
    chance = px * py + (1 - px) * (1 - py)
    return ((n11 + n00) / n - chance) / (1 - chance)


def _jackknife_se(statistic, sums):
    """Delete-one-client jackknife SE of a statistic of summed per-client parts."""
    total, g = sums.sum(axis=0), len(sums)
    replicates = np.array([statistic(total - part) for part in sums])
    return np.sqrt((g - 1) / g * ((replicates - replicates.mean()) ** 2).sum())


def _pair_sums(pairs):
    x, y = pairs["primary"].to_numpy(float), pairs["reliability"].to_numpy(float)
    parts = pd.DataFrame({"n": 1.0, "x": x, "y": y, "xx": x * x, "yy": y * y, "xy": x * y})
    return parts.groupby(pairs.index.get_level_values("client_id")).sum().to_numpy()


SESSION_CONSTRUCTS = [
    ("ruptures", "ruptures_per_session", lambda c: c["code"].str.match(r"[WC]_")),
    ("resistance_arguing", "resistance_arguing_per_session", lambda c: c["code"] == "M_ARG"),
    ("resistance_interrupting", "resistance_interrupting_per_session",
     lambda c: c["code"] == "M_INT"),
    ("resistance_denying", "resistance_denying_per_session", lambda c: c["code"] == "M_DEN"),
    ("resistance_ignoring", "resistance_ignoring_per_session", lambda c: c["code"] == "M_IGN"),
]  # fmt: skip


@pytest.mark.parametrize(("construct", "truth_key", "mask"), SESSION_CONSTRUCTS)
def test_example_session_counts_recover_the_simulated_agreement(example, construct, truth_key,
                                                                mask):  # fmt: skip
    result, _, raw, truth = example
    row = _row(result.table, construct, "ICC(A,1)")
    pairs = _session_pairs(raw, mask)
    # 1. Same number as a two-way ANOVA on the primary/reliability matrix built here from
    #    the raw files (every double-coded session of the log, zeros included).
    assert row["n_targets"] == len(pairs) == 668
    assert row["estimate"] == pytest.approx(_anova_icc_a1(pairs.to_numpy(float)), abs=1e-10)
    # 2. Near the agreement the simulator was given (truth.json, coding.expected_agreement),
    #    within Z jackknife SEs over clients (the F-based CI assumes normal ratings and is
    #    too narrow for these skewed counts).
    sums = _pair_sums(pairs)
    se = _jackknife_se(_icc_from_sums, sums)
    expected = truth[truth_key]["icc_a1"]
    assert abs(row["estimate"] - expected) < Z * se, (row["estimate"], expected, se)


def test_example_resolution_rating_recovers_the_simulated_agreement(example):
    result, _, raw, truth = example
    row = _row(result.table, "resolution_mean", "ICC(A,1)")
    res = raw["codes"][raw["codes"]["code"] == "RES"]
    pairs = res.pivot_table(
        index=["client_id", "session_no", "segment"], columns="coder_role", values="value"
    ).dropna()
    assert row["level"] == "unit" and row["n_targets"] == len(pairs)
    assert row["estimate"] == pytest.approx(_anova_icc_a1(pairs.to_numpy(float)), abs=1e-10)
    se = _jackknife_se(_icc_from_sums, _pair_sums(pairs))
    expected = truth["resolution_rating"]["icc_a1"]  # .937
    assert abs(row["estimate"] - expected) < Z * se, (row["estimate"], expected, se)


def _segment_categories(raw):
    """Rupture category of every logged segment of the double-coded sessions, by role."""
    log = _double_coded_log(raw["coding_log"])
    grid = log.loc[log.index.repeat(log["segments"]), ["client_id", "session_no", "coder_role"]]
    grid["segment"] = grid.groupby(["client_id", "session_no", "coder_role"]).cumcount() + 1
    codes = raw["codes"]
    kind = np.select(
        [codes["code"].str.startswith("W_"), codes["code"].str.startswith("C_")],
        ["withdrawal", "confrontation"],
        "",
    )
    marked = codes.assign(kind=kind)[kind != ""]
    marked = marked.groupby(["client_id", "session_no", "coder_role", "segment"])["kind"]
    grid = grid.merge(marked.agg(lambda k: "+".join(sorted(set(k)))).reset_index(), how="left")
    grid["kind"] = grid["kind"].fillna("none")
    return grid.pivot(index=["client_id", "session_no", "segment"], columns="coder_role",
                      values="kind")  # fmt: skip


def test_example_segment_codes_recover_the_simulated_agreement(example):
    result, presence, raw, truth = example
    wide = _segment_categories(raw)
    # Default categorical code: none / withdrawal / confrontation per segment; statsmodels'
    # fleiss_kappa on the count table built here from the raw files.
    row = _row(result.table, "rupture_type", "Fleiss' kappa")
    counts, _ = aggregate_raters(wide.to_numpy())
    assert row["n_targets"] == len(wide) == 6430  # every logged segment
    assert row["estimate"] == pytest.approx(fleiss_kappa(counts), abs=1e-12)
    # Presence of any rupture marker per segment: truth.json gives Cohen's kappa .885.
    rupture = wide != "none"
    row = _row(presence.table, "rupture_presence", "Fleiss' kappa")
    counts, _ = aggregate_raters(rupture.to_numpy())
    assert row["estimate"] == pytest.approx(fleiss_kappa(counts), abs=1e-12)
    p, r = rupture["primary"], rupture["reliability"]
    cells = pd.DataFrame({"11": p & r, "10": p & ~r, "01": ~p & r, "00": ~p & ~r}).astype(float)
    sums = cells.groupby(level="client_id").sum().to_numpy()
    se = _jackknife_se(_kappa_from_sums, sums)
    expected = truth["rupture_segment_presence"]["cohen_kappa"]
    assert abs(_kappa_from_sums(sums.sum(axis=0)) - expected) < Z * se
    assert abs(row["estimate"] - expected) < Z * se, (row["estimate"], expected, se)


def test_example_gate_warns_by_default_and_stops_in_strict_mode(example):
    result = example[0]
    # The example's lowest ICC(A,1) is interrupting (about .86; truth .85): a minimum of
    # .90 names it in both modes; .75 (Koo & Li's "good") passes everything.
    assert reliability_gate(result.table, {"icc": 0.75, "kappa": 0.75}, mode="strict") == []
    with pytest.warns(ReliabilityWarning, match="resistance_interrupting: ICC"):
        messages = reliability_gate(result.table, {"icc": 0.90, "kappa": 0.75})
    assert any(m.startswith("resistance_interrupting: ICC(A,1) = 0.86") for m in messages)
    with pytest.raises(ReliabilityGateError, match=r"resistance_interrupting: ICC\(A,1\)"):
        reliability_gate(result.table, {"icc": 0.90, "kappa": 0.75}, mode="strict")
    assert not set(result.table.columns) & {"client", "session", "coder", "unit"}


def test_a_unit_with_both_rupture_types_is_its_own_category():
    # Five one-segment sessions; A codes a withdrawal marker in each; B does too, and in
    # session 1 also a confrontation marker: categories A w w w w w, B w+c w w w w.
    # p_o = 4/5; p_e = 1 * 4/5 = 4/5 (A uses one category) -> kappa = 0.
    log = pd.DataFrame(
        {"study": "s", "client": "c", "session": np.repeat(range(1, 6), 2),
         "coder": ["A", "B"] * 5, "units": 1}
    )  # fmt: skip
    codes = pd.DataFrame(
        {"study": "s", "client": "c", "session": [*range(1, 6), *range(1, 6), 1], "unit": 1,
         "coder": ["A"] * 5 + ["B"] * 6, "code": ["W_MIN"] * 10 + ["C_REJ"]}
    )  # fmt: skip
    row = _row(reliability_analysis(codes, log, CODEBOOK).table, "rupture_type", "Cohen's kappa")
    assert row["pct_agreement"] == pytest.approx(80.0)
    assert row["estimate"] == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------
# Without double coding: every output, "not assessed", never "met"
# --------------------------------------------------------------------------------------

CODE_COLUMNS = ["study", "client", "session", "unit", "coder", "role", "code", "value"]
LOG_COLUMNS = ["study", "client", "session", "coder", "role", "units"]
NOT_ASSESSED = "Inter-rater reliability: not assessed (no double-coded sessions)."


def _step(tmp_path, codes, log, codebook=REPO / "config" / "codebook.yaml", gate="warn",
          thresholds=None, vocabulary=None):  # fmt: skip
    """Run pipeline.reliability_step on the given tables; return the output paths."""
    from types import SimpleNamespace

    from resistance_outcomes.pipeline import reliability_step

    codes.to_parquet(tmp_path / "codes.parquet")
    log.to_parquet(tmp_path / "coding_log.parquet")
    inputs = SimpleNamespace(
        codes=tmp_path / "codes.parquet", coding_log=tmp_path / "coding_log.parquet",
        codebook=str(codebook), vocabulary=vocabulary,
    )  # fmt: skip
    out = tmp_path / "out"
    output = SimpleNamespace(
        table=out / "reliability.csv", md=out / "reliability.md", gate=out / "gate.md",
        gate_json=out / "gate.json", pdf=out / "agreement.pdf", png=out / "agreement.png",
    )  # fmt: skip
    thresholds = thresholds or {"icc": 0.75, "kappa": 0.6, "per_construct": {}}
    params = SimpleNamespace(
        reliability={"gate": gate, "thresholds": thresholds, "n_boot": 200},
        repair_threshold=4, seed=1,
    )  # fmt: skip
    reliability_step(input=inputs, output=output, params=params)
    return output


def _single_coded():
    """The hand study's primary coder only: codes and a coding log, nobody double-codes."""
    codes = HAND_CODES[HAND_CODES["coder"] == "A"].reset_index(drop=True)
    log = HAND_LOG[HAND_LOG["coder"] == "A"].reset_index(drop=True)
    return codes[CODE_COLUMNS], log[LOG_COLUMNS]


def _no_codes():
    """Construct counts given as session columns: empty code table and coding log."""
    return (
        pd.DataFrame({c: pd.Series(dtype=object) for c in CODE_COLUMNS}),
        pd.DataFrame({c: pd.Series(dtype=object) for c in LOG_COLUMNS}),
    )


@pytest.mark.parametrize("tables", [_no_codes, _single_coded], ids=["no codes", "single"])
def test_without_double_coding_every_output_says_not_assessed(tmp_path, tables):
    from resistance_outcomes.reliability import TABLE_COLUMNS, read_gate

    codes, log = tables()
    # strict: a gate with nothing assessed does not stop the run (and does not pass)
    out = _step(tmp_path, codes, log, gate="strict")
    table = pd.read_csv(out.table)
    assert list(table.columns) == TABLE_COLUMNS and table.empty
    assert NOT_ASSESSED in out.md.read_text()
    gate_md = out.gate.read_text()
    assert gate_md.startswith("# Reliability gate (strict mode)")
    assert NOT_ASSESSED in gate_md
    assert "meet" not in gate_md and "met" not in gate_md.split()
    gate = read_gate(out.gate_json)
    assert {k: gate[k] for k in ("mode", "assessed", "reason", "below")} == {
        "mode": "strict", "assessed": False, "reason": "no double-coded sessions", "below": [],
    }  # fmt: skip
    assert gate["sample"]["double_coded_sessions"] == 0
    assert gate["sample"]["coded_sessions"] == (0 if codes.empty else 6)
    for figure in (out.pdf, out.png):
        assert figure.stat().st_size > 0


def test_not_assessed_result_and_table():
    codes, log = _single_coded()
    result = reliability_analysis(codes, log, CODEBOOK)
    assert not result.assessed and result.reason == "no double-coded sessions"
    assert result.table.empty and result.skipped == []
    # the gate neither passes nor fails; a strict gate does not stop
    from resistance_outcomes.reliability import gate_outcome, stop_if_strict

    outcome = gate_outcome(result.table, {"icc": 0.75, "kappa": 0.6}, "strict",
                           assessed=result.assessed, reason=result.reason)  # fmt: skip
    assert outcome == {"mode": "strict", "assessed": False,
                       "reason": "no double-coded sessions", "below": []}  # fmt: skip
    stop_if_strict(outcome)
    apa = format_reliability_table(result.table, 2, result.sample)
    assert apa.rows.empty and apa.columns[0] == "Construct"
    assert apa.note.startswith(NOT_ASSESSED)
    assert "6 coded sessions, 0 of them coded by two or more coders" in apa.note
    assert reliability_markdown(result.table, sample=result.sample).startswith(NOT_ASSESSED)


def test_double_coded_sessions_without_any_code_are_not_assessed():
    # Two coders logged five sessions each and found nothing: no construct was coded.
    codes = _no_codes()[0]
    result = reliability_analysis(codes, HAND_LOG, CODEBOOK)
    assert not result.assessed
    assert result.reason == "no codes in the double-coded sessions"
    assert result.sample["double_coded_sessions"] == 5


def test_gate_json_names_construct_label_value_and_minimum(tmp_path):
    from resistance_outcomes.reliability import read_gate

    table = _hand_result().table
    others = {c: None for c in table["construct"] if c not in ("ruptures", "rupture_type")}
    thresholds = {"icc": 0.8, "kappa": 0.8, "per_construct": others}
    codes, log = HAND_CODES[CODE_COLUMNS], HAND_LOG[LOG_COLUMNS]
    out = _step(tmp_path, codes, log, thresholds=thresholds)
    gate = read_gate(out.gate_json)
    assert (gate["mode"], gate["assessed"], gate["reason"]) == ("warn", True, "")
    # hand values: ruptures ICC(A,1) = 1.1 / 1.5; rupture type Cohen's kappa = 23 / 31
    assert [(b["construct"], b["label"], b["statistic"], b["minimum"]) for b in gate["below"]] == [
        ("ruptures", "Ruptures", "ICC(A,1)", 0.8),
        ("rupture_type", "Rupture type", "Cohen's kappa", 0.8),
    ]
    assert gate["below"][0]["value"] == pytest.approx(1.1 / 1.5, abs=1e-12)
    assert gate["below"][1]["value"] == pytest.approx(23 / 31, abs=1e-12)
    assert gate["below"][0]["message"] == "Ruptures: ICC(A,1) = 0.733 is below the minimum 0.8."
    assert "- Rupture type: Cohen's kappa = 0.742 is below the minimum 0.8." in out.gate.read_text()
    # the CSV carries the printed names for the figure and the publication table
    assert pd.read_csv(out.table).set_index("construct").loc["rupture_type", "construct_label"] \
        == "Rupture type"  # fmt: skip
    # strict: the outputs are written, then the run stops
    with pytest.raises(ReliabilityGateError, match=r"Ruptures: ICC\(A,1\) = 0.733"):
        _step(tmp_path, codes, log, gate="strict", thresholds=thresholds)
    assert read_gate(out.gate_json)["mode"] == "strict"
    # everything passes: "meets", with the values assessed
    passing = {"icc": 0.7, "kappa": 0.7, "per_construct": others}
    out = _step(tmp_path, codes, log, gate="strict", thresholds=passing)
    assert read_gate(out.gate_json)["below"] == []
    assert "Every construct meets its configured minimum." in out.gate.read_text()


# --------------------------------------------------------------------------------------
# A lab's own codebook: its constructs, its labels, no rupture or client-talk codes
# --------------------------------------------------------------------------------------

LAB_CODEBOOK = """
instruments:
  LAB:
    title: The lab's session coding
    unit: utterance
    codes:
      HW_REF: {construct: homework_refusal, kind: marker, range: [0, 1], label: refuses homework}
      ST: {construct: sustain_talk, kind: marker, range: [0, 1], label: talk against change}
constructs:
  homework_refusal: {aggregate: units, label: Refused homework}
  sustain_talk: {aggregate: codes, label: Talk against change}
# copied from the example's codebook: none of these constructs is declared here
categorical:
  rupture_type:
    label: Rupture type
    categories: {withdrawal: rupture_withdrawal, confrontation: rupture_confrontation}
  client_talk_type:
    label: Client talk type
    categories: {change: change_talk, neutral: neutral_talk, sustain: sustain_talk}
    units: coded
"""
# Per session (1-6), coder A then coder B: utterances with HW_REF, and ST codes.
LAB_COUNTS = {
    "HW_REF": ([2, 0, 1, 3, 1, 0], [2, 1, 1, 2, 1, 0]),
    "ST": ([1, 0, 2, 0, 3, 1], [1, 0, 2, 1, 3, 0]),
}


def _lab_tables(roles=("primary", "reliability")):
    rows = []
    for code, by_coder in LAB_COUNTS.items():
        for coder, counts in zip("AB", by_coder, strict=True):
            for session, n in enumerate(counts, start=1):
                rows += [(session, unit, coder, code) for unit in range(1, n + 1)]
    codes = pd.DataFrame(rows, columns=["session", "unit", "coder", "code"])
    codes = codes.assign(study="lab", client="k1", value=1.0)
    codes["role"] = codes["coder"].map(dict(zip("AB", roles, strict=True)))
    log = pd.DataFrame(
        {"study": "lab", "client": "k1", "session": np.repeat(range(1, 7), 2),
         "coder": ["A", "B"] * 6, "role": list(roles) * 6, "units": 4}
    )  # fmt: skip
    return codes[CODE_COLUMNS], log[LOG_COLUMNS]


@pytest.fixture
def lab_codebook(tmp_path):
    path = tmp_path / "lab_codebook.yaml"
    path.write_text(LAB_CODEBOOK, encoding="utf-8")
    return path


def test_a_labs_own_constructs_get_icc_rows_with_their_labels(lab_codebook):
    codebook = load_codebook(lab_codebook)
    codes, log = _lab_tables()
    result = reliability_analysis(codes, log, codebook, n_boot=200)
    table = result.table
    assert list(dict.fromkeys(table["construct"])) == ["homework_refusal", "sustain_talk"]
    assert set(table["statistic"]) == {"ICC(A,1)", "ICC(A,k)"}
    for construct, label in (("homework_refusal", "Refused homework"),
                             ("sustain_talk", "Talk against change")):  # fmt: skip
        row = _row(table, construct, "ICC(A,1)")
        pairs = np.column_stack(LAB_COUNTS["HW_REF" if construct == "homework_refusal" else "ST"])
        assert row["construct_label"] == label
        assert row["estimate"] == pytest.approx(_anova_icc_a1(pairs.astype(float)), abs=1e-10)
        assert (row["n_targets"], row["n_raters"]) == (6, 2)
    # homework refusal: sessions 1, 3, 5 and 6 agree
    assert _row(table, "homework_refusal", "ICC(A,1)")["pct_agreement"] == pytest.approx(400 / 6)
    # the example's categorical comparisons are skipped, with the reason, never an error
    assert result.skipped == [
        "Rupture type: not assessed ('rupture_withdrawal', 'rupture_confrontation' not "
        f"declared under `constructs:` in {lab_codebook})",
        # (the lab declares sustain_talk, not the other two)
        "Client talk type: not assessed ('change_talk', 'neutral_talk' not declared under "
        f"`constructs:` in {lab_codebook})",
    ]
    text = reliability_markdown(table, sample=result.sample)
    assert "| Refused homework | ICC(A,1) |" in text
    assert "| Talk against change | ICC(A,1) |" in text
    assert "Rupture type: not assessed (" in text
    assert "*Categorical codes per unit*" not in text
    # config labels (labels:) override the codebook's
    relabelled = reliability_analysis(codes, log, codebook, labels={"sustain_talk": "ST"})
    assert _row(relabelled.table, "sustain_talk", "ICC(A,1)")["construct_label"] == "ST"


def test_a_labs_study_through_the_step(tmp_path, lab_codebook):
    codes, log = _lab_tables()
    out = _step(tmp_path, codes, log, codebook=lab_codebook,
                thresholds={"icc": 0.99, "kappa": 0.6})  # fmt: skip
    gate = json.loads(out.gate_json.read_text())
    assert gate["assessed"] is True
    assert [b["label"] for b in gate["below"]] == ["Refused homework", "Talk against change"]
    assert gate["sample"]["skipped"][0].startswith("Rupture type: not assessed")
    assert "Refused homework" in out.md.read_text()


def test_role_words_outside_the_data_contract_do_not_order_slots(lab_codebook):
    # Same coders on every session (crossed design): roles do not matter for the ICC.
    codebook = load_codebook(lab_codebook)
    canonical = reliability_analysis(*_lab_tables(), codebook).table
    other = reliability_analysis(*_lab_tables(("main", "check")), codebook).table
    pd.testing.assert_series_equal(canonical["estimate"], other["estimate"])


def test_categorical_section_of_the_codebook(tmp_path):
    from resistance_outcomes.io import ConfigError

    assert set(CODEBOOK.categorical) == {"rupture_type", "client_talk_type"}
    assert CODEBOOK.categorical["client_talk_type"]["units"] == "coded"
    assert CODEBOOK.categorical["rupture_type"]["label"] == "Rupture type"
    bad = LAB_CODEBOOK.replace("    units: coded", "    units: every")
    path = tmp_path / "bad.yaml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: categorical 'client_talk_type' has units"):
        load_codebook(path)
    path.write_text(LAB_CODEBOOK.split("# copied")[0], encoding="utf-8")
    assert load_codebook(path).categorical == {}
