"""Tests of resistance_outcomes.tables: APA 7 number formatting, suppression and writers.

Expected values are written out by hand from the rule they follow. "APA 7" is the
Publication Manual of the American Psychological Association, 7th edition (2020):
section 6.36 (decimal fractions: leading zeros, exact p to two or three decimals,
p < .001), 6.38 (commas in numbers of 1,000 or more), 6.44 (statistical symbols in
italics), 7.10-7.15 (table number, title, headings, body, notes, rules).
"""

import math
import os

import numpy as np
import pandas as pd
import pytest

docx = pytest.importorskip("docx")
from docx.oxml.ns import qn  # noqa: E402

from resistance_outcomes.tables import (  # noqa: E402
    MINUS,
    ApaTable,
    TableFormatError,
    format_bounded,
    format_ci,
    format_mean_sd,
    format_n_pct,
    format_number,
    format_p,
    probability_note,
    significance_stars,
    suppress_cells,
    suppress_count,
    title_case,
    to_csv,
    to_docx,
    to_latex,
    to_markdown,
)

NAN = float("nan")


# --------------------------------------------------------------------------------------
# p values (APA 7 section 6.36: exact p to three decimals, no leading zero; p < .001)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0004, "< .001"),  # below .001
        (0.0005, "< .001"),  # would round to .001, but is below .001: stays "< .001"
        (0.0009996, "< .001"),  # idem, just under the boundary
        (0.0, "< .001"),
        (0.001, ".001"),  # the boundary itself is not below .001
        (0.0014, ".001"),
        (0.0015, ".002"),  # half-up on the printed value
        (0.04, ".040"),  # three decimals, trailing zero kept
        (0.04999, ".050"),  # exact p rounded: .04999 -> .050
        (0.5, ".500"),
        (0.9994, ".999"),
        (0.9995, "> .999"),  # rounds to 1.000: p cannot be 1, so "> .999"
        (1.0, "> .999"),
        (np.float64(0.032), ".032"),
    ],
)
def test_format_p_follows_apa_rules(p, expected):
    assert format_p(p) == expected


def test_format_p_missing_and_errors():
    assert format_p(NAN) == "\u2014"
    assert format_p(None, missing="") == ""
    with pytest.raises(TableFormatError, match="between 0 and 1, got -0.1"):
        format_p(-0.1)
    with pytest.raises(TableFormatError, match="not a percentage"):
        format_p(4.5)
    with pytest.raises(TableFormatError, match="must be a number, got '0.03'"):
        format_p("0.03")


def test_significance_stars_use_the_unrounded_p():
    # .04999 prints as ".050" but is below .05, so it earns one star.
    assert significance_stars(0.04999) == "*"
    assert significance_stars(0.05) == ""  # not below .05
    assert significance_stars(0.001) == "**"  # below .01, not below .001
    assert significance_stars(0.0009) == "***"
    assert significance_stars(NAN) == ""
    assert significance_stars(0.09, levels=(0.10, 0.05)) == "*"
    with pytest.raises(TableFormatError, match="decreasing order"):
        significance_stars(0.01, levels=(0.01, 0.05))


def test_probability_note_in_apa_form():
    # APA 7 section 7.14: "*p < .05. **p < .01. ***p < .001." on one line.
    assert probability_note() == "*p < .05. **p < .01. ***p < .001."
    assert probability_note((0.10, 0.05)) == "*p < .1. **p < .05."


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((3.14159,), {}, "3.14"),
        ((0.125,), {}, "0.13"),  # half-up by hand; binary round-half-even would give 0.12
        ((2.675,), {}, "2.68"),  # printed 2.675 -> 2.68 (the double is 2.67499999...)
        ((0.75,), {}, "0.75"),  # can exceed 1: leading zero kept (APA 7 6.36)
        ((0.75,), {"leading_zero": False}, ".75"),
        ((-0.5,), {}, f"{MINUS}0.50"),  # true minus sign
        ((-0.5,), {"minus": "-"}, "-0.50"),
        ((-2.44,), {}, "\u22122.44"),
        ((-0.001,), {}, "0.00"),  # a rounded zero carries no sign
        ((1314.2, 0), {}, "1,314"),  # commas from 1,000 on (APA 7 6.38)
        ((1314.2, 0), {"thousands": False}, "1314"),  # degrees of freedom: no comma
        ((-12345.678, 1), {}, f"{MINUS}12,345.7"),
        ((999.996,), {}, "1,000.00"),
        ((7,), {}, "7.00"),
        ((np.int64(42), 0), {}, "42"),
        ((math.inf,), {}, "\u221e"),
        ((-math.inf,), {}, f"{MINUS}\u221e"),
        ((NAN,), {}, "\u2014"),
        ((None,), {"missing": ""}, ""),
    ],
)
def test_format_number(args, kwargs, expected):
    assert format_number(*args, **kwargs) == expected


def test_format_number_rejects_non_numbers_and_bad_decimals():
    with pytest.raises(TableFormatError, match="must be a number, got '1.5'"):
        format_number("1.5")
    with pytest.raises(TableFormatError, match="must be a number, got True"):
        format_number(True)
    with pytest.raises(TableFormatError, match="decimals must be a whole number >= 0"):
        format_number(1.5, decimals=-1)


@pytest.mark.parametrize(
    ("x", "decimals", "expected"),
    [
        (0.4321, 2, ".43"),  # r = .43 (APA 7 6.36: no leading zero when |x| <= 1)
        (-0.118, 2, f"{MINUS}.12"),
        (0.856, 3, ".856"),
        (1, 2, "1.00"),  # 1 itself keeps its digit
        (-1.0, 2, f"{MINUS}1.00"),
        (0.996, 2, "1.00"),
        (-0.004, 2, ".00"),  # rounded zero, no sign
        (1 + 1e-15, 2, "1.00"),  # floating-point slack above 1
        (NAN, 2, "\u2014"),
    ],
)
def test_format_bounded(x, decimals, expected):
    assert format_bounded(x, decimals) == expected


def test_format_bounded_refuses_values_beyond_one():
    with pytest.raises(TableFormatError, match=r"1\.2 lies outside \[-1, 1\]"):
        format_bounded(1.2)


def test_format_ci():
    assert format_ci(0.123, 0.449) == "[0.12, 0.45]"
    # APA Style blog examples: [0.62, 1.12], [-2.44, 4.30], [-3.19, -2.39]
    assert format_ci(0.62, 1.12) == "[0.62, 1.12]"
    assert format_ci(-2.44, 4.3) == f"[{MINUS}2.44, 4.30]"
    assert format_ci(-3.19, -2.39, minus="-") == "[-3.19, -2.39]"
    assert format_ci(0.12, 0.45, bounded=True) == "[.12, .45]"
    assert format_ci(-0.051, 0.3, 3, bounded=True) == f"[{MINUS}.051, .300]"
    assert format_ci(1.0, 1.0, 1) == "[1.0, 1.0]"
    assert format_ci(NAN, NAN) == "\u2014"
    assert format_ci(0.5, math.inf) == "[0.50, \u221e]"
    assert format_ci(NAN, 0.45) == "[\u2014, 0.45]"
    with pytest.raises(TableFormatError, match="lower limit 0.5 exceeds the upper 0.2"):
        format_ci(0.5, 0.2)


def test_format_mean_sd():
    assert format_mean_sd(3.414, 1.2) == "3.41 (1.20)"
    assert format_mean_sd(-0.25, 0.25, 1) == f"{MINUS}0.3 (0.3)"  # half-up: 0.25 -> 0.3
    assert format_mean_sd(3.0, NAN) == "3.00 (\u2014)"  # one observation: no SD
    assert format_mean_sd(NAN, 1.0) == "\u2014"
    with pytest.raises(TableFormatError, match="standard deviation -1.0 is negative"):
        format_mean_sd(2.0, -1.0)


def test_format_n_pct():
    assert format_n_pct(18, 20.0) == "18 (20.0%)"
    assert format_n_pct(18, 19.96) == "18 (20.0%)"
    assert format_n_pct(np.int64(1314), 55.55, 0) == "1,314 (56%)"
    assert format_n_pct(0, 0.0, min_cell=5) == "0 (0.0%)"  # zero identifies no one
    assert format_n_pct(3, 3.3, min_cell=5) == "<5"  # count and percentage hidden
    assert format_n_pct(5, 5.6, min_cell=5) == "5 (5.6%)"
    assert format_n_pct(4, NAN) == "4 (\u2014)"
    assert format_n_pct(NAN, NAN) == "\u2014"
    with pytest.raises(TableFormatError, match="whole number >= 0, got 2.5"):
        format_n_pct(2.5, 10.0)
    with pytest.raises(TableFormatError, match="between 0 and 100, got 120"):
        format_n_pct(12, 120)


# --------------------------------------------------------------------------------------
# Small-cell suppression
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "0"), (1, "<5"), (2, "<5"), (4, "<5"), (5, "5"), (12, "12"), (4.0, "<5"), (1500, "1,500")],
)
def test_suppress_count_at_min_cell_5(n, expected):
    assert suppress_count(n, min_cell=5) == expected


def test_suppress_count_edge_cases():
    assert suppress_count(1, min_cell=1) == "1"  # min_cell 1 shows every count
    assert suppress_count(10, min_cell=11) == "<11"
    assert suppress_count(NAN) == "\u2014"
    with pytest.raises(TableFormatError, match="whole number >= 0, got -1"):
        suppress_count(-1)
    with pytest.raises(TableFormatError, match="whole number >= 0, got 2.5"):
        suppress_count(2.5)
    with pytest.raises(TableFormatError, match="min_cell must be a whole number >= 1, got 0"):
        suppress_count(3, min_cell=0)


def test_suppress_cells_hides_percentages_of_suppressed_counts():
    df = pd.DataFrame(
        {
            "framework": ["psychoanalytic", "behavioral", "cognitive", "total"],
            "n": [0, 3, 5, 8],
            "pct": ["0.0", "37.5", "62.5", "100.0"],
            "dropouts": [4, 0, 12, 16],
            "dropout_pct": ["50.0", "0.0", "60.0", "55.0"],
        }
    )
    out = suppress_cells(
        df,
        ["n", "dropouts"],
        min_cell=5,
        dependent_columns={"n": "pct", "dropouts": ["dropout_pct"]},
    )
    assert out["n"].tolist() == ["0", "<5", "5", "8"]
    assert out["pct"].tolist() == ["0.0", "", "62.5", "100.0"]
    assert out["dropouts"].tolist() == ["<5", "0", "12", "16"]
    assert out["dropout_pct"].tolist() == ["", "0.0", "60.0", "55.0"]
    assert out["framework"].tolist() == df["framework"].tolist()
    assert df["n"].tolist() == [0, 3, 5, 8]  # input untouched


def test_suppress_cells_sequence_of_dependents_follows_any_count():
    df = pd.DataFrame({"a": [1, 6], "b": [7, 8], "share": [0.1, 0.9]})
    out = suppress_cells(df, ["a", "b"], min_cell=5, dependent_columns=["share"], hidden="n/a")
    assert out["share"].tolist() == ["n/a", 0.9]
    assert out["a"].tolist() == ["<5", "6"]


def test_suppress_cells_names_column_index_and_value():
    df = pd.DataFrame({"n": [3, 2.5]}, index=["c1", "c2"])
    with pytest.raises(TableFormatError, match=r"column 'n', index 'c2'.*got 2.5"):
        suppress_cells(df, "n")
    with pytest.raises(TableFormatError, match=r"count column\(s\) \['m'\]"):
        suppress_cells(df, "m")
    with pytest.raises(TableFormatError, match=r"dependent column\(s\) \['pct'\]"):
        suppress_cells(df, "n", dependent_columns={"n": "pct"})


# --------------------------------------------------------------------------------------
# Titles and the table object
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # APA 7 6.17: major words and words of four letters or more capitalised; short
        # conjunctions, articles and prepositions lower case except first or after a colon;
        # both parts of a hyphenated compound capitalised.
        ("rupture repair and retention by framework", "Rupture Repair and Retention by Framework"),
        (
            "self-reported tension: an overview of the 3RS markers",
            "Self-Reported Tension: An Overview of the 3RS Markers",
        ),
        ("dropout with and without ruptures", "Dropout With and Without Ruptures"),
        ("the ICC(A,1) of coders", "The ICC(A,1) of Coders"),
    ],
)
def test_title_case(text, expected):
    assert title_case(text) == expected


def _example_table(**overrides) -> ApaTable:
    rows = pd.DataFrame(
        [
            ["Arguing", "1.20", "0.40", "2.10", f"{MINUS}0.30"],
            ["Denying", "0.90", "0.35", "<5", ""],
            ["Ruptures", "3.05", "1.10", "2.80", "0.95"],
        ]
    )
    spec = dict(
        number=2,
        title="Resistance and Ruptures by Framework",
        columns=["Construct", "M", "SD", "M", "SD"],
        rows=rows,
        spanners=[("", 1), ("Psychoanalytic", 2), ("Cognitive", 2)],
        row_groups=[("Resistance", 2), ("Ruptures", 1)],
        note="Counts per 50-min session.\naCoded with the 3RS.",
        probability_note=probability_note((0.05,)),
    )
    spec.update(overrides)
    return ApaTable(**spec)


def test_apa_table_refuses_unformatted_cells_naming_column_and_index():
    rows = pd.DataFrame({"label": ["Arguing"], "mean": [0.4312]}, index=[7])
    with pytest.raises(TableFormatError, match=r"column 'mean', index 7 holds 0.4312 \(float\)"):
        ApaTable(1, "Means", ["Construct", "M"], rows)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"columns": ["Construct", "M"]}, "2 column headings for a body of 5 columns"),
        ({"spanners": [("Psychoanalytic", 2)]}, "spanners: the sizes add up to 2, but there are 5"),
        ({"row_groups": [("Resistance", 2)]}, "row_groups: the sizes add up to 2, but there are 3"),
        ({"row_groups": [("", 3)]}, "every panel needs a heading"),
        ({"number": 0}, "number must be a whole number >= 1"),
        ({"title": " "}, "title must be non-empty"),
        ({"columns": ["A\nB", "M", "SD", "M", "SD"]}, "contains a line break"),
    ],
)
def test_apa_table_checks_its_layout(overrides, message):
    with pytest.raises(TableFormatError, match=message):
        _example_table(**overrides)


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------


def test_markdown_structure():
    table = ApaTable(
        1,
        "Sessions by Framework",
        ["Framework", "n (%)"],
        pd.DataFrame([["Behavioral", "18 (20.0%)"], ["Cognitive", "<5"]]),
        note="Percentages of all sessions.",
        probability_note="*p < .05.",
    )
    expected = (
        "**Table 1**\n"
        "\n"
        "*Sessions by Framework*\n"
        "\n"
        "| Framework | *n* (%) |\n"  # statistical symbol n in italics (APA 7 6.44)
        "| :--- | :---: |\n"  # header separator: stub left, other columns centred
        "| Behavioral | 18 (20.0%) |\n"
        "| Cognitive | <5 |\n"
        "\n"
        "*Note.* Percentages of all sessions.\n"
        "\n"
        "\\**p* < .05.\n"  # the star escaped, the p in italics
    )
    assert to_markdown(table) == expected


def test_markdown_spanners_groups_and_escaping():
    md = to_markdown(_example_table())
    lines = md.splitlines()
    assert lines[4] == (
        "| Construct | Psychoanalytic: *M* | Psychoanalytic: *SD* "
        "| Cognitive: *M* | Cognitive: *SD* |"
    )
    assert lines[5] == "| :--- | :---: | :---: | :---: | :---: |"
    assert lines[6] == "| *Resistance* |  |  |  |  |"
    assert lines[7] == f"| Arguing | 1.20 | 0.40 | 2.10 | {MINUS}0.30 |"
    assert "*Note.* Counts per 50-min session." in lines
    assert "aCoded with the 3RS." in lines
    row = ApaTable(3, "T", ["A", "B"], pd.DataFrame([["x|y_z*", "<b>"]]))
    assert "| x\\|y\\_z\\* | \\<b> |" in to_markdown(row)


# --------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------


def test_latex_escapes_special_characters():
    cells = pd.DataFrame([["50% & more_x #1 $5 {a} ~b ^c \\d", "<5", f"{MINUS}0.30", "\u2014"]])
    latex = to_latex(ApaTable(4, "Escaping", ["Text", "n", "b", "p"], cells))
    expected_row = (
        r"50\% \& more\_x \#1 \$5 \{a\} \textasciitilde{}b \textasciicircum{}c "
        r"\textbackslash{}d & \textless{}5 & $-$0.30 & --- \\"
    )
    assert expected_row in latex.splitlines()


def test_latex_booktabs_layout():
    latex = to_latex(_example_table())
    lines = latex.splitlines()
    assert lines[0] == r"\begin{table}[htbp]"
    assert r"\textbf{Table 2}\par" in lines
    assert r"\textit{Resistance and Ruptures by Framework}\par" in lines
    assert r"\begin{tabular}{lcccc}" in lines
    top, mid, bottom = (lines.index(rule) for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert top < mid < bottom
    assert lines[top + 1] == (
        r" & \multicolumn{2}{c}{Psychoanalytic} & \multicolumn{2}{c}{Cognitive} \\"
    )
    assert lines[top + 2] == r"\cmidrule(lr){2-3} \cmidrule(lr){4-5}"
    assert lines[mid - 1] == (
        r"\multicolumn{1}{c}{Construct} & \textit{M} & \textit{SD} & \textit{M} & \textit{SD} \\"
    )
    assert lines[mid + 1] == r"\multicolumn{5}{c}{Resistance} \\"
    assert lines[mid + 2] == r"Arguing & 1.20 & 0.40 & 2.10 & $-$0.30 \\"
    assert lines[mid + 3] == r"Denying & 0.90 & 0.35 & \textless{}5 &  \\"
    assert lines[bottom + 1] == r"\end{tabular}"
    assert r"\emph{Note.} Counts per 50-min session.\par" in lines
    assert r"*\textit{p} \textless{} .05.\par" in lines
    assert lines[-1] == r"\end{table}"
    assert "|" not in latex.split(r"\begin{tabular}")[1].split("}")[0]  # no vertical rules


# --------------------------------------------------------------------------------------
# Word
# --------------------------------------------------------------------------------------


def _border(cell, side):
    borders = cell._tc.tcPr.find(qn("w:tcBorders")) if cell._tc.tcPr is not None else None
    element = None if borders is None else borders.find(qn(f"w:{side}"))
    return None if element is None else element.get(qn("w:val"))


def test_docx_holds_apa_tables(tmp_path):
    simple = ApaTable(
        1,
        "Sessions by Framework",
        ["Framework", "n (%)"],
        pd.DataFrame([["Behavioral", "18 (20.0%)"], ["Cognitive", "<5"]]),
        note="Percentages of all sessions.",
    )
    path = to_docx([simple, _example_table()], tmp_path / "out" / "tables.docx")
    document = docx.Document(str(path))

    texts = [p.text for p in document.paragraphs if p.text]
    assert texts[:3] == ["Table 1", "Sessions by Framework", "Note. Percentages of all sessions."]
    number, title, note = (p for p in document.paragraphs if p.text in texts[:3])
    assert number.runs[0].bold is True
    assert title.runs[0].italic is True
    assert note.runs[0].text == "Note." and note.runs[0].italic is True
    assert "Table 2" in texts and "*p < .05." in texts
    assert document.styles["Normal"].font.name == "Times New Roman"
    assert document.styles["Normal"].font.size.pt == 12

    assert len(document.tables) == 2
    first = document.tables[0]
    assert [c.text for c in first.rows[0].cells] == ["Framework", "n (%)"]
    assert [[c.text for c in r.cells] for r in first.rows[1:]] == [
        ["Behavioral", "18 (20.0%)"],
        ["Cognitive", "<5"],
    ]
    n_run = [r for r in first.rows[0].cells[1].paragraphs[0].runs if r.text == "n"][0]
    assert n_run.italic is True  # statistical symbol in italics (APA 7 6.44)

    # Rules (APA 7 7.15): top of table, under the headings, bottom; nothing else.
    for cell in first.rows[0].cells:
        assert _border(cell, "top") == "single"
        assert _border(cell, "bottom") == "single"
    for cell in first.rows[-1].cells:
        assert _border(cell, "bottom") == "single"
        assert _border(cell, "left") is None and _border(cell, "right") is None
    assert _border(first.rows[1].cells[0], "bottom") is None
    table_borders = first._tbl.tblPr.find(qn("w:tblBorders"))
    sides = {child.tag.split("}")[1]: child.get(qn("w:val")) for child in table_borders}
    assert sides == dict.fromkeys(["top", "left", "bottom", "right", "insideH", "insideV"], "nil")


def test_docx_spanners_and_panels(tmp_path):
    path = to_docx(_example_table(), tmp_path / "t.docx", font="Arial", size=10)
    document = docx.Document(str(path))
    grid = document.tables[0]
    spanner_row = grid.rows[0]
    assert [c.text for c in spanner_row.cells] == [
        "",
        "Psychoanalytic",
        "Psychoanalytic",
        "Cognitive",
        "Cognitive",
    ]
    assert spanner_row.cells[1]._tc is spanner_row.cells[2]._tc  # merged over two columns
    assert _border(spanner_row.cells[1], "bottom") == "single"  # rule under the spanner
    assert _border(spanner_row.cells[0], "bottom") is None  # no spanner, no rule
    assert _border(spanner_row.cells[0], "top") == "single"
    assert [c.text for c in grid.rows[1].cells] == ["Construct", "M", "SD", "M", "SD"]
    assert all(_border(c, "bottom") == "single" for c in grid.rows[1].cells)
    assert [c.text for c in grid.rows[2].cells] == ["Resistance"] * 5  # panel heading
    assert [c.text for c in grid.rows[3].cells] == ["Arguing", "1.20", "0.40", "2.10", "\u22120.30"]
    assert len(grid.rows) == 2 + 3 + 2
    assert all(_border(c, "bottom") == "single" for c in grid.rows[-1].cells)
    assert document.styles["Normal"].font.name == "Arial"
    header_flags = [
        r._tr.trPr is not None and r._tr.trPr.find(qn("w:tblHeader")) is not None for r in grid.rows
    ]
    assert header_flags[:3] == [True, True, False]


# --------------------------------------------------------------------------------------
# CSV and atomic writes
# --------------------------------------------------------------------------------------


def test_csv_keeps_full_precision(tmp_path):
    df = pd.DataFrame(
        {"term": ["(Intercept)", "framework"], "estimate": [0.1 + 0.2, -1 / 3], "p": [1e-12, NAN]}
    )
    path = to_csv(df, tmp_path / "coef.csv")
    text = path.read_text()
    assert text.splitlines() == [
        "term,estimate,p",
        "(Intercept),0.30000000000000004,1e-12",
        "framework,-0.3333333333333333,",
    ]
    back = pd.read_csv(path)
    assert back["estimate"].tolist() == df["estimate"].tolist()  # exact round trip


def test_writers_write_atomically(tmp_path, monkeypatch):
    table = _example_table()
    md_path, tex_path = tmp_path / "t.md", tmp_path / "t.tex"
    assert to_markdown(table, md_path) == md_path.read_text(encoding="utf-8")
    assert to_latex(table, tex_path) == tex_path.read_text(encoding="utf-8")

    csv_path = tmp_path / "t.csv"
    to_csv(pd.DataFrame({"x": [1]}), csv_path)

    def fail(self, path, **kwargs):
        with open(path, "w") as handle:
            handle.write("partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    with pytest.raises(OSError, match="disk full"):
        to_csv(pd.DataFrame({"x": [2]}), csv_path)
    monkeypatch.undo()
    assert csv_path.read_text() == "x\n1\n"  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["t.csv", "t.md", "t.tex"]  # no temporary left
