"""Tests of resistance_outcomes.publish: the publication tables.

Inputs are small coefficient, variance-component and contrast frames made up for the tests.
Expected cells are written out by hand: rounding half-up to the decimals shown, and
exponentials computed by calculator to six decimals (e.g. exp(0.5) = 1.648721 -> "1.65").
APA 7 rules (Publication Manual, 7th ed., section 6.36): two decimals, p to three decimals
without a leading zero and "< .001" below .001; no leading zero for statistics that cannot
exceed 1 (R², ICC, r).
"""

import math
import re

import pandas as pd
import pytest

docx = pytest.importorskip("docx")

from resistance_outcomes import describe, publish  # noqa: E402
from resistance_outcomes.tables import MINUS, MISSING, ApaTable, to_latex, to_markdown  # noqa: E402
from resistance_outcomes.vocabulary import (  # noqa: E402
    ConstructInfo,
    FrameworkInfo,
    Stage,
    Vocabulary,
)

LEVELS = {"framework": ["psychoanalytic", "cognitive"]}
SPEC = {
    "name": "repair_retention",
    "family": "binomial",
    "formula": "dropout ~ framework * repair_rate_between + (1 | therapist) + (1 | client)",
    "factor_levels": LEVELS,
    "one_row_is": "one client",
    "description": "Client-level dropout by framework and repair rate",
}
COEFFICIENTS = pd.DataFrame(
    {
        "term": [
            "(Intercept)",
            "frameworkcognitive",
            "repair_rate_between",
            "frameworkcognitive:repair_rate_between",
        ],
        "estimate": [-1.2345, 0.5, -0.25, 0.0041],
        "std_error": [0.4, 0.3, 0.11, 0.0032],
        "statistic": [-3.09, 1.67, -2.27, 1.28],
        "df": [math.nan] * 4,
        "p_value": [0.0004, 0.0955, 0.023, 1.0],
        "ci_low": [-2.0185, -0.088, -0.4656, -0.0022],
        "ci_high": [-0.4505, 1.088, -0.0344, 0.0104],
    }
)
VARIANCE = pd.DataFrame(
    {
        "group": ["client", "client", "client", "therapist"],
        "term1": ["(Intercept)", "repair_rate_between", "(Intercept)", "(Intercept)"],
        "term2": [math.nan, math.nan, "repair_rate_between", math.nan],
        "variance": [0.2678, 0.000335, -0.00398, 0.5251],
        "sd": [0.5175, 0.0183, math.nan, 0.7246],
        "corr": [math.nan, math.nan, -0.42, math.nan],
    }
)
FIT = {
    "model": "repair_retention",
    "fitted": True,
    "method": "Laplace",
    "family": "binomial",
    "flags": [],
    "rows_excluded": [{"reason": "missing value in dropout", "rows": 3, "column": "dropout"}],
    "nobs": 1314,
    "groups": {"client": 1314, "therapist": 4},
    "aic": 268.1202,
    "converged": True,
    "singular": False,
    "r2_marginal": 0.1347,
    "r2_conditional": 0.2538,
    "icc": 0.1376,
}


def _rows(table: ApaTable) -> dict[str, list[str]]:
    """Body rows keyed by their stub."""
    return {row[0]: row[1:] for row in table.rows.to_numpy().tolist()}


def _parse(cell: str) -> list[tuple[float, int]]:
    """Numbers in a cell with their decimals: '[−2.02, −0.45]' -> [(-2.02, 2), (-0.45, 2)]."""
    found = re.findall(r"-?\d[\d,]*\.?\d*", cell.replace(MINUS, "-"))
    return [(float(x.replace(",", "")), len(x.split(".")[1]) if "." in x else 0) for x in found]


def _agrees(cell: str, *values: float) -> bool:
    """Every number printed in ``cell`` equals its source rounded to the decimals shown."""
    parsed = _parse(cell)
    assert len(parsed) == len(values), (cell, values)
    return all(
        abs(shown - value) <= 0.5 * 10.0**-decimals + 1e-9
        for (shown, decimals), value in zip(parsed, values, strict=True)
    )


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("(Intercept)", "Intercept"),
        ("frameworkcognitive", "Cognitive"),
        ("framework[T.cognitive]", "Cognitive"),  # patsy's spelling
        ("frameworkcognitive:session_c", "Cognitive \u00d7 Session (centred)"),
        ("repair_rate_between", "Repair rate (between clients)"),
        ("unrepaired_within", "Unrepaired ruptures (within client)"),
        ("log_time", "Log session number"),
        ("baseline_severity", "Baseline severity"),
        ("I(x ** 2)", "I(x ** 2)"),  # nothing to put in words
        ("mystery_between", "Mystery (between clients)"),  # unknown stem: in words
    ],
)
def test_term_label(term, expected):
    assert publish.term_label(term, LEVELS) == expected


def test_term_label_takes_extra_labels():
    assert publish.term_label("dose", labels={"dose": "Sessions per week"}) == "Sessions per week"


# --------------------------------------------------------------------------- model table


def test_model_table_fixed_effects_by_hand():
    table = publish.model_table(SPEC, COEFFICIENTS, VARIANCE, FIT, number=3)
    assert table.columns == ["Term", "b", "SE", "95% CI", "OR", "95% CI", "p"]
    assert table.spanners == [("", 1), ("Log odds", 3), ("Odds ratio", 2), ("", 1)]
    rows = _rows(table)
    # exp(-1.2345) = 0.290980, exp(-2.0185) = 0.132855, exp(-0.4505) = 0.637309;
    # p = .0004 -> "< .001"; negative numbers with the minus sign U+2212.
    assert rows["Intercept"] == [
        "\u22121.23", "0.40", "[\u22122.02, \u22120.45]", "0.29", "[0.13, 0.64]", "< .001"
    ]  # fmt: skip
    # exp(0.5) = 1.648721, exp(-0.088) = 0.915761, exp(1.088) = 2.968331; p .0955 -> .096
    assert rows["Cognitive"] == [
        "0.50",
        "0.30",
        "[\u22120.09, 1.09]",
        "1.65",
        "[0.92, 2.97]",
        ".096",
    ]
    # exp(-0.25) = 0.778801, exp(-0.4656) = 0.627758, exp(-0.0344) = 0.966185
    assert rows["Repair rate (between clients)"] == [
        "\u22120.25", "0.11", "[\u22120.47, \u22120.03]", "0.78", "[0.63, 0.97]", ".023"
    ]  # fmt: skip
    # SE 0.0032 prints 0.00 at two decimals, so the row has three; p = 1 -> "> .999";
    # exp(0.0041) = 1.004108, exp(-0.0022) = 0.997802, exp(0.0104) = 1.010454.
    assert rows["Cognitive \u00d7 Repair rate (between clients)"] == [
        "0.004", "0.003", "[\u22120.002, 0.010]", "1.004", "[0.998, 1.010]", "> .999"
    ]  # fmt: skip


def test_every_number_in_the_model_table_equals_coefficients_after_rounding():
    table = publish.model_table(SPEC, COEFFICIENTS, VARIANCE, FIT, number=3)
    fixed = table.rows.iloc[: len(COEFFICIENTS)].to_numpy().tolist()
    for cells, source in zip(fixed, COEFFICIENTS.itertuples(index=False), strict=True):
        _, b, se, ci, ratio, ratio_ci, _p = cells
        assert _agrees(b, source.estimate)
        assert _agrees(se, source.std_error)
        assert _agrees(ci, source.ci_low, source.ci_high)
        assert _agrees(ratio, math.exp(source.estimate))  # OR = exp(b)
        assert _agrees(ratio_ci, math.exp(source.ci_low), math.exp(source.ci_high))


def test_model_table_random_effects_and_fit_rows():
    table = publish.model_table(SPEC, COEFFICIENTS, VARIANCE, FIT, number=3)
    assert table.row_groups == [("Fixed effects", 4), ("Random effects", 5), ("Model fit", 6)]
    values = {label: cells[0] for label, cells in _rows(table).items()}
    assert values["Client: SD of intercept"] == "0.52"
    assert values["Client: SD of Repair rate (between clients)"] == "0.02"
    assert values["Client: r(intercept, Repair rate (between clients))"] == "\u2212.42"
    assert values["Therapist: SD of intercept"] == "0.72"
    assert values["ICC (adjusted)"] == ".14"  # no leading zero: cannot exceed 1
    assert values["Observations"] == "1,314"
    assert values["Groups: Client"] == "1,314"
    assert values["Groups: Therapist"] == "<5"  # 4 therapists: suppressed
    assert values["Marginal R\u00b2"] == ".13"
    assert values["Conditional R\u00b2"] == ".25"
    assert values["AIC"] == "268.12"


def test_model_table_note_names_formula_family_method_and_exclusions():
    table = publish.model_table(SPEC, COEFFICIENTS, VARIANCE, FIT, number=3)
    assert table.number == 3
    assert table.title == (
        "Client-Level Dropout by Framework and Repair Rate: Logistic Mixed-Effects Model"
    )
    assert SPEC["formula"] in table.note
    assert "binomial with logit link" in table.note
    assert "maximum likelihood (Laplace approximation)" in table.note
    assert "Reference levels: framework psychoanalytic." in table.note
    assert "Counts from 1 to 4 are shown as <5." in table.note
    assert "Rows left out: missing value in dropout (<5)." in table.note  # 3 rows: suppressed
    assert "Flags" not in table.note
    assert "Wald z tests" in table.probability_note


def test_model_table_names_flags_in_the_note():
    fit = {**FIT, "flags": ["not converged", "singular fit"], "converged": False}
    table = publish.model_table(SPEC, COEFFICIENTS, VARIANCE, fit, number=1)
    assert "Flags: not converged; singular fit." in table.note


def test_model_table_data_holds_full_precision_and_blanks_small_counts():
    data = publish.model_table_data(SPEC, COEFFICIENTS, VARIANCE, FIT, min_cell=5)
    fixed = data[data["section"] == "fixed"]
    assert fixed["estimate"].tolist() == COEFFICIENTS["estimate"].tolist()
    assert fixed["ratio"].tolist() == pytest.approx([0.290980, 1.648721, 0.778801, 1.004108])
    therapists = data[data["term"] == "groups:therapist"].iloc[0]
    assert math.isnan(therapists["estimate"]) and bool(therapists["suppressed"])
    assert data.loc[data["term"] == "nobs", "estimate"].item() == 1314


def test_linear_model_has_no_ratio_columns_and_names_satterthwaite():
    spec = {"name": "alliance", "family": "gaussian", "formula": "alliance ~ session_c + (1 | c)"}
    coefs = pd.DataFrame(
        {
            "term": ["(Intercept)", "session_c"],
            "estimate": [4.5458, -0.0305],
            "std_error": [0.0627, 0.0030],
            "df": [41.3, 320.8],
            "p_value": [0.0, 2.6e-24],
            "ci_low": [4.4191, -0.0364],
            "ci_high": [4.6725, -0.0246],
        }
    )
    vc = pd.DataFrame(
        {
            "group": ["c", "Residual"],
            "term1": ["(Intercept)", math.nan],
            "term2": [math.nan, math.nan],
            "variance": [0.27, 0.123],
            "sd": [0.52, 0.3507],
            "corr": [math.nan, math.nan],
        }
    )
    fit = {"method": "REML", "nobs": 300, "groups": {"c": 60}, "aic": 3661.2630}
    table = publish.model_table(spec, coefs, vc, fit, number=2)
    assert table.columns == ["Term", "b", "SE", "95% CI", "p"]
    assert table.spanners is None
    rows = _rows(table)
    assert rows["Session (centred)"] == [
        "\u22120.031",
        "0.003",
        "[\u22120.036, \u22120.025]",
        "< .001",
    ]
    assert rows["Residual SD"][0] == "0.35"
    assert rows["AIC"][0] == "3,661.26"
    assert "Satterthwaite" in table.probability_note
    assert "AIC from the REML criterion" in table.note


def test_small_ratios_get_more_decimals_and_gee_rows():
    spec = {"name": "profile_gee", "family": "poisson", "formula": "y ~ 1 + (1 | therapist)"}
    coefs = pd.DataFrame(
        {
            "term": ["(Intercept)"],
            "estimate": [-5.24],
            "std_error": [0.09],
            "p_value": [0.0],
            "ci_low": [-5.42],
            "ci_high": [-5.07],
        }
    )
    fit = {"method": "GEE", "nobs": 334, "cluster": "therapist", "n_clusters": 45,
           "cov_struct": "exchangeable", "working_correlation": 0.0289}  # fmt: skip
    table = publish.model_table(spec, coefs, pd.DataFrame(), fit, number=1)
    rows = _rows(table)
    # exp(-5.24) = 0.005300, exp(-5.42) = 0.004427, exp(-5.07) = 0.006282: the lower limit
    # would print 0.00 at two decimals, so the ratio and its CI get three.
    assert rows["Intercept"] == ["\u22125.24", "0.09", "[\u22125.42, \u22125.07]", "0.005",
                                 "[0.004, 0.006]", "< .001"]  # fmt: skip
    assert table.row_groups == [("Fixed effects", 1), ("Model fit", 3)]
    assert rows["Clusters: Therapist"][0] == "45"
    assert rows["Working correlation"][0] == ".03"
    assert "exchangeable working correlation within therapists" in table.note
    assert "generalized estimating equations" in table.note
    assert table.title == "Profile Gee: GEE Model"


def test_unfitted_model_gives_a_table_saying_why():
    fit = {"fitted": False, "reason": "the data have no values of the response 'alliance'"}
    table = publish.model_table({"name": "alliance_trajectory"}, pd.DataFrame(), None, fit, 7)
    assert table.rows.to_numpy().tolist() == [["Alliance trajectory", "not fitted"]]
    assert "no values of the response 'alliance'" in table.note


def test_bad_coefficient_names_row_column_and_value():
    bad = COEFFICIENTS.astype({"estimate": object})
    bad.loc[2, "estimate"] = "n/a?"
    with pytest.raises(publish.PublishError) as err:
        publish.model_table(SPEC, bad, VARIANCE, FIT, number=1)
    message = str(err.value)
    assert "coefficients.csv of model 'repair_retention'" in message
    assert "row 4" in message and "'estimate'" in message and "'n/a?'" in message
    with pytest.raises(publish.PublishError, match="column\\(s\\) std_error missing"):
        publish.model_table(SPEC, COEFFICIENTS.drop(columns="std_error"), VARIANCE, FIT, 1)
    with pytest.raises(publish.PublishError, match="family 'weibull'"):
        publish.model_table({**SPEC, "family": "weibull"}, COEFFICIENTS, VARIANCE, FIT, 1)


# --------------------------------------------------------------------------- combined


def _alliance_model():
    spec = {"name": "alliance", "family": "gaussian", "formula": "alliance ~ session_c"}
    coefs = pd.DataFrame(
        {
            "term": ["(Intercept)", "session_c"],
            "estimate": [4.5458, 0.0305],
            "std_error": [0.0627, 0.0030],
            "p_value": [0.0, 0.03],
            "ci_low": [4.4230, 0.0247],
            "ci_high": [4.6686, 0.0364],
        }
    )
    fit = {"nobs": 3372, "groups": {"client": 360, "therapist": 45}, "aic": 3661.26}
    return ("alliance", spec, coefs, pd.DataFrame(), fit)


def test_combined_table_cells_by_hand():
    models = [("repair_retention", SPEC, COEFFICIENTS, VARIANCE, FIT), _alliance_model()]
    table = publish.combined_table(models, number=4)
    assert table.columns == ["Term", "OR [95% CI]", "p", "b [95% CI]", "p"]
    assert table.spanners == [("", 1), ("Repair retention", 2), ("Alliance", 2)]
    rows = _rows(table)
    assert rows["Intercept"] == ["0.29 [0.13, 0.64]", "< .001", "4.55 [4.42, 4.67]", "< .001"]
    assert rows["Cognitive"] == ["1.65 [0.92, 2.97]", ".096", MISSING, MISSING]
    assert rows["Session (centred)"] == [MISSING, MISSING, "0.031 [0.025, 0.036]", ".030"]
    # fit rows at the bottom: counts first, suppressed below 5
    labels = table.rows[0].tolist()
    assert labels[-7:] == [
        "Observations", "Groups: Client", "Groups: Therapist", "ICC (adjusted)",
        "Marginal R\u00b2", "Conditional R\u00b2", "AIC",
    ]  # fmt: skip
    assert rows["Observations"] == ["1,314", "", "3,372", ""]
    assert rows["Groups: Therapist"] == ["<5", "", "45", ""]
    assert rows["ICC (adjusted)"] == [".14", "", MISSING, ""]
    assert rows["AIC"] == ["268.12", "", "3,661.26", ""]
    assert table.row_groups == [("Fixed effects", 5), ("Model fit", 7)]


def test_combined_table_leaves_out_unfitted_models_and_names_them():
    unfitted = ("rupture_withdrawal", {"family": "poisson"}, pd.DataFrame(), None,
                {"fitted": False, "flags": ["not fitted"]})  # fmt: skip
    flagged = ("repair_retention", SPEC, COEFFICIENTS, VARIANCE, {**FIT, "flags": ["singular fit"]})
    table = publish.combined_table([flagged, unfitted], number=2)
    assert table.columns == ["Term", "OR [95% CI]", "p"]
    assert "Not fitted: Rupture withdrawal." in table.note
    assert "Repair retention (singular fit)" in table.note


# --------------------------------------------------------------------------- contrasts


def _contrasts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": ["pairwise", "simple_slope"],
            "variable": ["framework", "session_c"],
            "level": ["psychoanalytic", "cognitive"],
            "reference": ["cognitive", math.nan],
            "by": [math.nan, math.nan],
            "estimate": [0.5528, -0.0294],
            "std_error": [0.1384, 0.0125],
            "df": [math.nan, math.nan],
            "p_value": [0.0000653, 0.0178],
            "p_adjusted": [0.000196, 0.0534],
            "adjustment": ["holm", "holm"],
            "ci_low": [0.2814, -0.0537],
            "ci_high": [0.8241, -0.0051],
        }
    )


def test_contrasts_table_cells_and_adjustment_named():
    spec = {"family": "negative_binomial"}
    table = publish.contrasts_table([("rupture_frequency", spec, _contrasts())], number=5)
    assert table.columns == ["Contrast", "b", "95% CI", "Ratio", "95% CI", "p", "Adjusted p"]
    assert table.row_groups == [("Rupture frequency (incidence-rate ratios)", 2)]
    rows = _rows(table)
    # exp(0.5528) = 1.738113, exp(0.2814) = 1.324983 (-> 1.32), exp(0.8241) = 2.279828
    assert rows["Psychoanalytic vs. cognitive"] == [
        "0.55", "[0.28, 0.82]", "1.74", "[1.32, 2.28]", "< .001", "< .001"
    ]  # fmt: skip
    # exp(-0.0294) = 0.971028, exp(-0.0537) = 0.947716, exp(-0.0051) = 0.994913
    assert rows["Session (centred): cognitive"] == [
        "\u22120.03", "[\u22120.05, \u22120.01]", "0.97", "[0.95, 0.99]", ".018", ".053"
    ]  # fmt: skip
    assert "Holm's (1979) step-down procedure" in table.note
    assert "not adjusted for multiplicity" in table.note


def test_contrasts_table_data_recomputes_ratios_at_full_precision():
    data = publish.contrasts_table_data([("m", {"family": "poisson"}, _contrasts())])
    assert data["model"].tolist() == ["m", "m"]
    assert data["ratio"].tolist() == pytest.approx([1.738113, 0.971028], abs=1e-6)
    assert data["ratio_ci_high"].tolist() == pytest.approx([2.279828, 0.994913], abs=1e-6)


# --------------------------------------------------------------------------- sensitivity


def test_sensitivity_table_one_row_per_analysis_under_each_contrast():
    base = {
        "model": "m", "kind": "pairwise", "variable": "framework", "level": "behavioral",
        "reference": "cognitive", "by": "", "estimate": 0.2, "ci_low": -0.1, "ci_high": 0.5,
        "ratio": 1.221403, "ratio_ci_low": 0.904837, "ratio_ci_high": 1.648721,
        "ratio_kind": "odds ratio", "p_value": 0.19, "p_adjusted": 0.38, "adjustment": "holm",
    }  # fmt: skip
    rows = [
        {**base, "analysis": "m", "changes": "main analysis", "flags": ""},
        {
            **base,
            "analysis": "m_gee",
            "changes": "method: gee; family: poisson",
            "flags": "",
            "ratio": 1.105171,
        },  # fmt: skip
        {**base, "analysis": "m_min2", "changes": "min_attended: 2", "flags": "not converged"},
    ]
    table = publish.sensitivity_publication_table(pd.DataFrame(rows), number=6)
    assert table.row_groups == [("M (odds ratios)", 3)]
    # exp(0.2) = 1.221403, exp(-0.1) = 0.904837, exp(0.5) = 1.648721
    assert table.rows.to_numpy().tolist() == [
        ["Behavioral vs. cognitive", "Main analysis", "1.22 [0.90, 1.65]", ".190", ".380"],
        ["", "Population-averaged (GEE); Poisson family", "1.11 [0.90, 1.65]", ".190", ".380"],
        [
            "",
            "Clients with at least 2 attended sessions \u2020",
            "1.22 [0.90, 1.65]",
            ".190",
            ".380",
        ],  # fmt: skip
    ]
    assert "\u2020 M, clients with at least 2 attended sessions: not converged." in table.note


# --------------------------------------------------------------------------- Table 1, reliability


def test_table1_publication_uses_describe_formatting_and_suppression():
    long = pd.DataFrame(
        {
            "variable": ["Clients", "Clients", "Dropout", "Dropout", "Dropout", "Dropout"],
            "statistic": ["count", "count", "count", "percent", "count", "percent"],
            "framework": ["cognitive", "Total", "cognitive", "cognitive", "Total", "Total"],
            "value": [40.0, 40.0, 12.0, 30.0, 12.0, 30.0],
            "n": [40, 40, 12, 40, 12, 40],
        }
    )
    long = describe.suppress_small_counts(long, min_cell=5)
    table = publish.table1_publication(long, number=1, min_cell=5)
    assert table.columns == ["Characteristic", "Cognitive", "Total"]
    assert table.rows.to_numpy().tolist() == [
        ["Clients, n", "40", "40"],
        ["Dropout, n (%)", "12 (30.0%)", "12 (30.0%)"],
    ]
    small = describe.suppress_small_counts(
        long.assign(value=[40.0, 40.0, 3, 7.5, 3, 7.5], n=[40, 40, 3, 40, 3, 40]), min_cell=5
    )
    rows = publish.table1_publication(small, number=1, min_cell=5).rows.to_numpy().tolist()
    assert rows[1] == ["Dropout, n (%)", "<5", "<5"]


def test_reliability_publication_suppresses_small_n():
    table = pd.DataFrame(
        {
            "construct": ["ruptures", "rupture_withdrawal"],
            "level": ["session", "session"],
            "statistic": ["ICC(A,1)", "ICC(A,1)"],
            "estimate": [0.912, 0.8],
            "ci_low": [0.88, 0.41],
            "ci_high": [0.94, 0.95],
            "n_targets": [120, 4],
            "n_raters": [2, 2],
            "pct_agreement": [71.7, 50.0],
            "label": ["excellent", "good"],
            "note": ["", ""],
        }
    )
    apa = publish.reliability_publication(table, number=2, min_cell=5)
    assert apa.rows.iloc[:, 4].tolist() == ["120", "<5"]
    assert apa.rows.iloc[:, 5].tolist() == ["2", "2"]  # coders are shown
    assert "Counts from 1 to 4 are shown as <5." in apa.note.splitlines()[0]


# --------------------------------------------------------------------------- writers


def test_write_table_formats_and_docx(tmp_path):
    model = publish.model_table(SPEC, COEFFICIENTS, VARIANCE, FIT, number=1)
    raw = publish.model_table_data(SPEC, COEFFICIENTS, VARIANCE, FIT)
    contrasts = publish.contrasts_table([("rupture_frequency", {"family": "poisson"},
                                          _contrasts())], number=2)  # fmt: skip
    paths = publish.write_table_formats(model, raw, tmp_path / "tables" / "model_m")
    assert [p.name for p in paths] == ["model_m.csv", "model_m.tex", "model_m.md"]
    back = pd.read_csv(paths[0])
    assert back.loc[back["section"] == "fixed", "estimate"].tolist() == [
        -1.2345,
        0.5,
        -0.25,
        0.0041,
    ]
    assert paths[1].read_text(encoding="utf-8") == to_latex(model)
    assert r"\toprule" in paths[1].read_text(encoding="utf-8")
    assert paths[2].read_text(encoding="utf-8") == to_markdown(model)
    first = paths[0].read_bytes()
    publish.write_table_formats(model, raw, tmp_path / "tables" / "model_m")
    assert paths[0].read_bytes() == first  # byte-identical on a rerun

    path = publish.write_docx([model, contrasts], tmp_path / "tables" / "tables.docx")
    document = docx.Document(str(path))
    assert len(document.tables) == 2
    grid = document.tables[0]
    assert [c.text for c in grid.rows[1].cells] == ["Term", "b", "SE", "95% CI", "OR", "95% CI",
                                                    "p"]  # fmt: skip
    assert grid.rows[2].cells[0].text == "Fixed effects"
    assert [c.text for c in grid.rows[3].cells][:4] == [
        "Intercept", "\u22121.23", "0.40", "[\u22122.02, \u22120.45]"
    ]  # fmt: skip
    second = document.tables[1]
    assert [c.text for c in second.rows[0].cells][0] == "Contrast"
    assert second.rows[2].cells[0].text == "Psychoanalytic vs. cognitive"
    texts = [p.text for p in document.paragraphs]
    assert "Table 1" in texts and "Table 2" in texts


def test_publication_tables_numbers_in_order(tmp_path):
    model = {"name": "repair_retention", "spec": SPEC, "fit": FIT, "coefficients": COEFFICIENTS,
             "variance_components": VARIANCE, "contrasts": _contrasts()}  # fmt: skip
    tables = publish.publication_tables([model], main_models=["repair_retention"])
    # Table 1 and the reliability table exist in every case (here: placeholders)
    assert list(tables) == [
        "table1", "reliability", "models_combined", "contrasts", "model_repair_retention"
    ]  # fmt: skip
    assert [t.number for t, _ in tables.values()] == [1, 2, 3, 4, 5]
    # no main model asked for: no combined table
    assert "models_combined" not in publish.publication_tables([model])


# --------------------------------------------------------------------------- a lab's own study

# A study unlike the example: its own construct, four frameworks with their own labels.
LAB = Vocabulary(
    constructs={
        "sustain_talk": ConstructInfo(
            "sustain_talk", "Sustain talk", "count", "column", stem="sustain_talk"
        )
    },
    frameworks=[
        FrameworkInfo("systemic", "Systemic", "#0072B2", "o"),
        FrameworkInfo("humanistic", "Humanistic", "#E69F00", "s"),
        FrameworkInfo("cbt_group", "CBT in groups", "#009E73", "^"),
        FrameworkInfo("mbt", "Mentalization-based", "#CC79A7", "v"),
    ],
    labels={"baseline_severity": "Baseline severity"},
    stages={
        "reliability": Stage(False, "no double-coded sessions"),
        "alliance": Stage(False, "no alliance ratings"),
        "repair": Stage(False, "no coding of ruptures and their repair"),
    },
)
LAB_LEVELS = {"framework": ["systemic", "humanistic", "cbt_group", "mbt"]}
LAB_SPEC = {
    "name": "st_dropout",
    "family": "binomial",
    "formula": "dropout ~ framework + sustain_talk_rate_between + (1 | therapist)",
    "factor_levels": LAB_LEVELS,
}
LAB_COEFFICIENTS = pd.DataFrame(
    {
        "term": ["(Intercept)", "frameworkhumanistic", "frameworkcbt_group", "frameworkmbt",
                 "sustain_talk_rate_between"],
        "estimate": [-1.5, -21.58, 0.2, 0.3, 0.4],
        "std_error": [0.3, 9000.0, 0.2, 0.25, 0.1],
        "p_value": [1e-6, 0.998, 0.32, 0.23, 0.0001],
        "ci_low": [-2.088, -17661.5, -0.192, -0.19, 0.204],
        "ci_high": [-0.912, 17618.4, 0.592, 0.79, 0.596],
        "estimable": [True, False, True, True, True],
        "note": ["", "no dropout in humanistic therapy", "", "", ""],
    }
)  # fmt: skip
LAB_FIT = {"nobs": 100, "groups": {"therapist": 12}, "flags": ["not estimable"],
           "not_estimable": [{"term": "frameworkhumanistic",
                              "reason": "no dropout in humanistic therapy"}]}  # fmt: skip


def test_lab_labels_come_from_the_vocabulary():
    assert publish.term_label("sustain_talk_rate_between", vocab=LAB) == (
        "Sustain talk per session (between clients)"
    )
    assert publish.term_label("frameworkcbt_group", LAB_LEVELS, vocab=LAB) == "CBT in groups"
    assert publish.term_label("frameworkmbt:sustain_talk_within", LAB_LEVELS, vocab=LAB) == (
        "Mentalization-based \u00d7 Sustain talk (within client)"
    )


def test_not_estimable_coefficient_prints_words_not_numbers():
    table = publish.model_table(LAB_SPEC, LAB_COEFFICIENTS, None, LAB_FIT, 1, vocab=LAB)
    rows = _rows(table)
    assert rows["Humanistic"] == ["not estimable", "", "", "", "", ""]
    # the estimable rows keep their numbers: exp(0.4) = 1.491825, exp(0.204) = 1.226300,
    # exp(0.596) = 1.814842
    assert rows["Sustain talk per session (between clients)"] == [
        "0.40", "0.10", "[0.20, 0.60]", "1.49", "[1.23, 1.81]", "< .001"
    ]  # fmt: skip
    assert "Not estimable: Humanistic (no dropout in humanistic therapy)." in table.note
    assert "17" not in "".join(table.rows.to_numpy().ravel())  # no astronomical numbers
    data = publish.model_table_data(LAB_SPEC, LAB_COEFFICIENTS, None, LAB_FIT, vocab=LAB)
    fixed = data[data["section"] == "fixed"]
    assert fixed["estimable"].tolist() == [True, False, True, True, True]
    assert fixed["note"].tolist()[1] == "no dropout in humanistic therapy"


def test_not_estimable_from_fit_json_alone_and_absent_columns_mean_estimable():
    coefs = LAB_COEFFICIENTS.drop(columns=["estimable", "note"])
    data = publish.model_table_data(LAB_SPEC, coefs, None, LAB_FIT)
    assert data.loc[data["section"] == "fixed", "estimable"].tolist() == [
        True, False, True, True, True
    ]  # fmt: skip
    data = publish.model_table_data(LAB_SPEC, coefs, None, {"nobs": 100})
    assert data["estimable"].all()


def test_not_estimable_in_combined_and_contrasts_tables():
    combined = publish.combined_table(
        [("st_dropout", LAB_SPEC, LAB_COEFFICIENTS, None, LAB_FIT)], 2, vocab=LAB
    )
    assert _rows(combined)["Humanistic"] == ["not estimable", ""]
    assert "St dropout, Humanistic (no dropout in humanistic therapy)" in combined.note
    contrasts = pd.DataFrame(
        {
            "kind": ["pairwise", "pairwise"], "variable": ["framework", "framework"],
            "level": ["humanistic", "cbt_group"], "reference": ["systemic", "systemic"],
            "by": ["", ""], "estimate": [-21.58, 0.2], "std_error": [9000.0, 0.2],
            "ci_low": [-17661.5, -0.192], "ci_high": [17618.4, 0.592],
            "p_value": [0.998, 0.32], "p_adjusted": [0.998, 0.64],
            "adjustment": ["holm", "holm"], "estimable": [False, True],
        }
    )  # fmt: skip
    table = publish.contrasts_table([("st_dropout", LAB_SPEC, contrasts, LAB_FIT)], 3, vocab=LAB)
    rows = _rows(table)
    assert rows["Humanistic vs. systemic"] == ["not estimable", "", "", "", "", ""]
    # exp(0.2) = 1.221403
    assert rows["CBT in groups vs. systemic"][:3] == ["0.20", "[\u22120.19, 0.59]", "1.22"]
    # the reason comes from fit.json when contrasts.csv has no note column
    assert "Humanistic vs. systemic (no dropout in humanistic therapy)" in table.note


def test_reliability_table_exists_when_not_assessed():
    tables = publish.publication_tables([], vocab=LAB)
    assert list(tables) == ["table1", "reliability", "contrasts"]
    table, raw = tables["reliability"]
    assert table.rows.to_numpy().tolist() == [
        ["Inter-rater reliability", "not assessed: no double-coded sessions"]
    ]
    assert "met" not in table.note and "not assessed (no double-coded sessions)" in table.note
    assert raw.to_dict("records") == [
        {"table": "reliability", "assessed": False, "reason": "no double-coded sessions"}
    ]
    # a reliability table given but the stage recorded as not assessed: still the placeholder
    given = pd.DataFrame({"construct": ["x"], "n_targets": [3]})
    assert publish.publication_tables([], reliability=given, vocab=LAB)["reliability"][
        0
    ].columns == ["Part of the analysis", "Result"]
    # every placeholder renders in every format
    assert "not assessed" in to_markdown(table) and "not assessed" in to_latex(table)


def test_table1_note_names_the_parts_not_assessed():
    long = pd.DataFrame({"variable": ["Clients"], "statistic": ["count"],
                         "framework": ["Total"], "value": [100.0], "n": [100],
                         "suppressed": [False], "reason": [""]})  # fmt: skip
    table, _ = publish.publication_tables([], table1_long=long, vocab=LAB)["table1"]
    assert "Rupture repair: not assessed (no coding of ruptures and their repair)." in table.note
    assert "Alliance: not assessed (no alliance ratings)." in table.note


def test_lab_tables_in_markdown_print_no_raw_names(tmp_path):
    model = {"name": "st_dropout", "spec": LAB_SPEC, "fit": LAB_FIT,
             "coefficients": LAB_COEFFICIENTS, "variance_components": pd.DataFrame(),
             "contrasts": pd.DataFrame()}  # fmt: skip
    tables = publish.publication_tables([model], main_models=["st_dropout"], vocab=LAB)
    for name, (table, raw) in tables.items():
        paths = publish.write_table_formats(table, raw, tmp_path / name)
        # the note quotes the formula as configured; nothing else may show a raw name
        formula = LAB_SPEC["formula"].replace("_", "\\_").replace("|", "\\|")
        text = paths[2].read_text(encoding="utf-8").replace(formula, "")
        assert "_" not in text, (name, text)


def test_model_table_shows_the_profile_intervals_of_the_random_effects_and_optionally_fixed():
    coefs = pd.DataFrame(
        {
            "term": ["(Intercept)", "frameworkcognitive"],
            "estimate": [-2.0, 0.5],
            "std_error": [0.4, 0.3],
            "p_value": [1e-6, 0.0955],
            "ci_low": [-2.78, -0.09],
            "ci_high": [-1.22, 1.09],
        }
    )
    vc = pd.DataFrame(
        {
            "group": ["therapist"],
            "term1": ["(Intercept)"],
            "term2": [""],
            "variance": [0.49],
            "sd": [0.7],
            "corr": [math.nan],
        }  # fmt: skip
    )
    intervals = pd.DataFrame(
        {
            "parameter": [".sig01", "(Intercept)", "frameworkcognitive", "ICC (therapist)"],
            "group": ["therapist", "", "", "therapist"],
            "term": ["sd (Intercept)", "(Intercept)", "frameworkcognitive", "ICC"],
            "estimate": [0.7, -2.0, 0.5, 0.13],
            "ci_low": [0.0, -2.9, -0.12, 0.0],
            "ci_high": [1.31, -1.25, 1.15, 0.34],
            "method": "profile",
        }
    )
    spec = {"name": "m", "family": "binomial", "formula": "y ~ framework + (1 | therapist)",
            "factor_levels": {"framework": ["psychoanalytic", "cognitive"]}}  # fmt: skip
    fit = {"nobs": 120, "method": "Laplace", "icc": 0.13}
    table = publish.model_table(spec, coefs, vc, fit, 2, intervals=intervals)
    rows = table.rows
    sd = rows[rows[0] == "Therapist: SD of intercept"].iloc[0].tolist()
    assert sd[1:4] == ["0.70", "", "[0.00, 1.31]"]
    icc = rows[rows[0] == "ICC (adjusted)"].iloc[0].tolist()
    assert icc[1:4] == [".13", "", "[.00, .34]"]
    assert rows.iloc[1].tolist()[3] == "[−0.09, 1.09]"  # fixed effects: Wald by default
    assert "CI = Wald confidence interval" in table.note
    assert "random-effect SDs, correlations and the ICC are profile-likelihood" in table.note
    profiled = publish.model_table(
        spec, coefs, vc, fit, 2, intervals=intervals, fixed_intervals="profile"
    )
    assert profiled.rows.iloc[1].tolist()[3] == "[−0.12, 1.15]"
    assert profiled.rows.iloc[1].tolist()[5] == "[0.89, 3.16]"  # exp of the profile limits
    assert "CI = profile-likelihood confidence interval" in profiled.note
    # without intervals.csv the table is as before
    plain = publish.model_table(spec, coefs, vc, fit, 2)
    assert plain.rows[plain.rows[0] == "Therapist: SD of intercept"].iloc[0].tolist()[3] == ""


def test_model_table_with_bootstrap_intervals_shows_them_for_fixed_and_random_effects():
    coefs = pd.DataFrame(
        {"term": ["(Intercept)", "x"], "estimate": [-2.0, 0.5], "std_error": [0.4, 0.3],
         "p_value": [1e-6, 0.0955], "ci_low": [-2.78, -0.09], "ci_high": [-1.22, 1.09]}
    )  # fmt: skip
    vc = pd.DataFrame(
        {"group": ["g", "g", "g"], "term1": ["(Intercept)", "x", "(Intercept)"],
         "term2": ["", "", "x"], "variance": [0.49, 0.04, 0.0],
         "sd": [0.7, 0.2, math.nan], "corr": [math.nan, math.nan, -0.3]}
    )  # fmt: skip
    # bootstrap.csv's names, groups and terms, as models.bootstrap writes them
    boot = pd.DataFrame(
        {
            "parameter": ["(Intercept)", "x", "sd_(Intercept)|g", "sd_x|g",
                          "cor_x.(Intercept)|g", "r2_marginal"],
            "group": ["", "", "g", "g", "g", ""],
            "term": ["(Intercept)", "x", "sd (Intercept)", "sd x", "cor (Intercept), x",
                     "R2 (marginal)"],
            "kind": ["fixed", "fixed", "sd", "sd", "cor", "r2"],
            "ci_low": [-2.9, -0.15, 0.31, 0.05, -0.8, 0.01],
            "ci_high": [-1.3, 1.2, 1.05, 0.33, 0.4, 0.2],
            "replicates": [998, 998, 998, 998, 998, 998],
        }
    )  # fmt: skip
    spec = {"name": "m", "family": "gaussian", "formula": "y ~ x + (1 + x | g)"}
    table = publish.model_table(spec, coefs, vc, {"nobs": 80}, 3, fixed_intervals="boot",
                                bootstrap=boot)  # fmt: skip
    cells = table.rows.set_index(0)
    assert cells.loc["X", 3] == "[−0.15, 1.20]"
    assert cells.loc["G: SD of intercept", 3] == "[0.31, 1.05]"
    assert cells.loc["G: SD of X", 3] == "[0.05, 0.33]"
    assert cells.loc["G: r(intercept, X)", 3] == "[−.80, .40]"
    assert "CI = parametric-bootstrap percentile (998 refits) confidence interval" in table.note
    # a model without bootstrap.csv keeps its Wald intervals and says so
    plain = publish.model_table(spec, coefs, vc, {"nobs": 80}, 3, fixed_intervals="boot")
    assert "CI = Wald confidence interval" in plain.note
