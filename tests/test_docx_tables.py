"""Tests of the Word layout of resistance_outcomes.tables: column widths, page orientation,
font size, and the file as a word processor renders it.

The widths are read back from the XML of the written file (w:gridCol, w:tcW, w:tblW,
w:tblLayout) and checked against the page geometry written out by hand: US Letter is
8.5 x 11 in = 12240 x 15840 twips; with 1-inch (1440-twip) margins the text is 12240 - 2 x
1440 = 9360 twips wide in portrait and 15840 - 2 x 1440 = 12960 in landscape.

The rendering test converts the file with LibreOffice (``soffice --headless --convert-to
pdf``), extracts the text with ``pdftotext -layout`` and checks that every word of every
cell is printed whole; it is skipped when either program is missing.
"""

import re
import shutil
import subprocess

import pandas as pd
import pytest

docx = pytest.importorskip("docx")
pytest.importorskip("matplotlib")
from docx.oxml.ns import qn  # noqa: E402

from resistance_outcomes.tables import (  # noqa: E402
    CELL_MARGIN,
    MIN_FONT_SIZE,
    MINUS,
    ApaTable,
    docx_layout,
    text_width,
    to_docx,
)

PORTRAIT_TEXT = 12240 - 2 * 1440  # twips
LANDSCAPE_TEXT = 15840 - 2 * 1440
M = MINUS


# --------------------------------------------------------------------------------------
# Realistic tables: a wide table of three models side by side, a one-model table, Table 1
# --------------------------------------------------------------------------------------

TERMS = [
    "Intercept",
    "Behavioral",
    "Cognitive",
    "Unrepaired ruptures (within client)",
    "Unrepaired ruptures (between clients)",
    "Repair rate (between clients)",
    "Behavioral \u00d7 session (centred)",
    "Cognitive \u00d7 session (centred)",
    "Baseline severity",
    "Self-reported tension",
]
FIT_ROWS = [
    "Observations",
    "Clients",
    "Therapists",
    "ICC (adjusted)",
    "Marginal R\u00b2",
    "Conditional R\u00b2",
    "AIC",
]


def _estimate(i: int, j: int) -> str:
    value = 0.37 + 0.29 * i + 0.11 * j
    return f"{value:.2f} [{value - 0.21:.2f}, {value + 0.34:.2f}]"


def models_table(number: int = 2, n_models: int = 3) -> ApaTable:
    """Models side by side: per model "ratio [95% CI]" and p, as publish.combined_table."""
    ratios = ["IRR", "OR", "HR", "IRR", "OR", "IRR"][:n_models]
    names = ["Rupture frequency", "Repair retention", "Dropout hazard", "Sustain talk",
             "Session attendance", "Homework"]  # fmt: skip
    columns, spanners, rows = ["Term"], [("", 1)], []
    for ratio, name in zip(ratios, names, strict=False):
        columns += [f"{ratio} [95% CI]", "p"]
        spanners.append((name, 2))
    for i, term in enumerate(TERMS):
        row = [term]
        for j in range(n_models):
            row += [_estimate(i, j), "< .001" if (i + j) % 3 == 0 else f".{(i * 37 + j) % 900:03d}"]
        rows.append(row)
    fit = [
        ["1,314", "1,314", "402"],
        ["<5", "100", "100"],
        ["12", "12", "12"],
        [".14", ".09", ".21"],
        [".13", ".05", "\u2014"],
        [".25", ".19", "\u2014"],
        ["2,681.12", "948.30", "1,206.77"],
    ]
    for label, values in zip(FIT_ROWS, fit, strict=True):
        row = [label]
        for j in range(n_models):
            row += [values[j % 3], ""]
        rows.append(row)
    return ApaTable(
        number=number,
        title="Main Mixed-Effects Models Side by Side",
        columns=columns,
        rows=pd.DataFrame(rows, dtype=object),
        spanners=spanners,
        row_groups=[("Fixed effects", len(TERMS)), ("Model fit", len(FIT_ROWS))],
        note="Ratios are exponentiated coefficients; CI = confidence interval.",
        probability_note="p values are two-sided Wald tests.",
    )


def model_table(number: int = 3) -> ApaTable:
    """One model: b, SE, CI, OR, CI, p (as publish.model_table)."""
    rows = []
    for i, term in enumerate(TERMS[:8]):
        b = -1.23 + 0.31 * i
        sign = M if b < 0 else ""
        rows.append(
            [
                term,
                f"{sign}{abs(b):.2f}",
                "0.40",
                f"[{M}2.02, {M}0.45]",
                "1.65",
                "[0.98, 2.77]",
                f".{i * 111 % 1000:03d}",
            ]
        )
    return ApaTable(
        number=number,
        title="Repair Retention: Client-Level Dropout",
        columns=["Term", "b", "SE", "95% CI", "OR", "95% CI", "p"],
        rows=pd.DataFrame(rows, dtype=object),
        note="Binomial mixed model, logit link.",
    )


FRAMEWORKS = ["Psychodynamic", "Behavioral", "Cognitive", "Humanistic", "Systemic"]


def table1(number: int = 1, n_frameworks: int = 3) -> ApaTable:
    """Table 1: sample by framework, some frameworks and the total."""
    labels = [
        "Clients, n",
        "Sessions, n",
        "Dropout (fewer than 4 sessions), n (%)",
        "Women, n (%)",
        "Age in years, M (SD)",
        "Baseline severity, M (SD)",
        "Ruptures per session, M (SD)",
        "Therapists, n",
    ]
    values = [
        "45",
        "612",
        "18 (40.0%)",
        "27 (60.0%)",
        "34.12 (11.09)",
        "2.31 (0.87)",
        "0.45 (0.31)",
        "4",
    ]
    rows = [
        [label, *([value] * (n_frameworks + 1))]
        for label, value in zip(labels, values, strict=True)
    ]
    return ApaTable(
        number=number,
        title="Sample Characteristics by Therapeutic Framework",
        columns=["Characteristic", *FRAMEWORKS[:n_frameworks], "Total"],
        rows=pd.DataFrame(rows, dtype=object),
        note="Counts are n or n (%); means are M (SD) of client-level values.",
    )


def narrow_table(number: int = 4) -> ApaTable:
    return ApaTable(
        number,
        "Sessions by Framework",
        ["Framework", "n (%)"],
        pd.DataFrame([["Behavioral", "18 (20.0%)"], ["Cognitive", "<5"]]),
        note="Percentages of all sessions.",
    )


# --------------------------------------------------------------------------------------
# Reading the layout back from the XML
# --------------------------------------------------------------------------------------


def _grid_widths(table) -> list[int]:
    return [int(col.get(qn("w:w"))) for col in table._tbl.tblGrid.findall(qn("w:gridCol"))]


def _sections_of_tables(document) -> list:
    """The section of each table: a section ends at the paragraph holding its w:sectPr."""
    body = document.element.body
    sections, current, out = list(document.sections), 0, []
    for child in body.iterchildren():
        if child.tag == qn("w:tbl"):
            out.append(sections[current])
        elif child.tag == qn("w:p") and child.find(f"{qn('w:pPr')}/{qn('w:sectPr')}") is not None:
            current += 1
    return out


def _text_width_twips(section) -> int:
    return section.page_width.twips - section.left_margin.twips - section.right_margin.twips


def _check_fixed_widths(table, section) -> list[int]:
    """The widths in every place a word processor reads them agree and fill the text width."""
    widths = _grid_widths(table)
    tbl_pr = table._tbl.tblPr
    assert tbl_pr.find(qn("w:tblLayout")).get(qn("w:type")) == "fixed"
    tbl_w = tbl_pr.find(qn("w:tblW"))
    assert tbl_w.get(qn("w:type")) == "dxa" and int(tbl_w.get(qn("w:w"))) == sum(widths)
    assert sum(widths) == _text_width_twips(section)
    for tr in table._tbl.tr_lst:
        position = 0
        for tc in tr.tc_lst:
            tc_w = tc.tcPr.find(qn("w:tcW"))
            assert tc_w.get(qn("w:type")) == "dxa"
            assert int(tc_w.get(qn("w:w"))) == sum(widths[position : position + tc.grid_span])
            position += tc.grid_span
        assert position == len(widths)
    return widths


def test_text_width_has_times_metrics():
    # Times New Roman advance widths (units per em 2048): "M" 1821 -> 0.889 em; digits 1024
    # -> 0.5 em; so at 12 pt "M" is 10.67 pt and "0123456789" 60 pt.
    assert text_width("M", "Times New Roman", 12) == pytest.approx(10.67, abs=0.02)
    assert text_width("0123456789", "Times New Roman", 12) == pytest.approx(60.0, abs=0.05)
    assert text_width("0123456789", "Times New Roman", 6) == pytest.approx(30.0, abs=0.03)
    # Unknown fonts are measured with a wide font, never narrower than Times.
    assert text_width("Observations", "Some Lab Font") > text_width("Observations")


def test_wide_models_table_goes_landscape_with_content_widths(tmp_path):
    tables = [table1(1, n_frameworks=2), models_table(2), narrow_table(3)]
    path = to_docx(tables, tmp_path / "t.docx")
    document = docx.Document(str(path))
    sections = _sections_of_tables(document)
    assert [s.orientation for s in sections] == [0, 1, 0]  # portrait, landscape, portrait
    landscape = sections[1]
    assert (landscape.page_width.twips, landscape.page_height.twips) == (15840, 12240)
    assert (sections[0].page_width.twips, sections[0].page_height.twips) == (12240, 15840)
    assert len(document.sections) == 3  # the landscape table has a section of its own

    first, wide, narrow = document.tables
    widths = _check_fixed_widths(wide, landscape)
    assert sum(widths) == LANDSCAPE_TEXT
    assert widths[0] == max(widths)  # the term column has the most room
    # Each column holds its longest cell on one line: text at 12 pt plus 5% and margins.
    longest_term = max(TERMS, key=text_width)
    assert widths[0] * 1 >= text_width(longest_term) * 20 * 1.05 + 2 * CELL_MARGIN
    estimate = max((c for c in wide.columns[1].cells if "[" in c.text), key=lambda c: len(c.text))
    assert widths[1] >= text_width(estimate.text) * 20 + 2 * CELL_MARGIN
    assert all(
        r.font.size is None for c in wide.rows[3].cells for p in c.paragraphs for r in p.runs
    )  # fmt: skip  (12 pt from the Normal style: not reduced)

    assert _check_fixed_widths(first, sections[0])[0] == max(_grid_widths(first))
    assert sum(_check_fixed_widths(narrow, sections[2])) == PORTRAIT_TEXT
    assert _grid_widths(narrow)[0] > _grid_widths(narrow)[1]


def test_layout_decisions():
    portrait = docx_layout(table1(n_frameworks=2))
    assert (portrait.orientation, portrait.size, portrait.wrapping) == ("portrait", 12, "none")
    assert sum(portrait.widths) == portrait.text_width == PORTRAIT_TEXT
    assert portrait.widths[0] == max(portrait.widths)

    # One model's table: its terms wrap at their spaces on a portrait page, the stub
    # keeping at least a third of the width, rather than turning the page.
    single = docx_layout(model_table())
    assert (single.orientation, single.size, single.wrapping) == ("portrait", 12, "labels")
    assert single.widths[0] >= PORTRAIT_TEXT / 3 and single.widths[0] == max(single.widths)

    # Three frameworks and the total at 12 pt need more than 6.5 in: landscape, same size.
    wider = docx_layout(table1(n_frameworks=3))
    assert (wider.orientation, wider.size, wider.wrapping) == ("landscape", 12, "none")
    assert sum(wider.widths) == LANDSCAPE_TEXT
    # Five frameworks do not fit landscape at 12 pt: 1 pt smaller, still on one line.
    widest = docx_layout(table1(n_frameworks=5))
    assert (widest.orientation, widest.size, widest.wrapping) == ("landscape", 11, "none")

    landscape = docx_layout(models_table())
    assert (landscape.orientation, landscape.size, landscape.wrapping) == ("landscape", 12, "none")
    assert sum(landscape.widths) == LANDSCAPE_TEXT
    assert landscape.widths[0] == max(landscape.widths)

    a4 = docx_layout(narrow_table(), paper="a4")
    assert sum(a4.widths) == 11906 - 2 * 1440

    # Four models side by side do not fit landscape even 2 pt smaller: at 10 pt the labels
    # wrap at their spaces; the stub keeps the most room.
    four = docx_layout(models_table(n_models=4))
    assert (four.orientation, four.size, four.wrapping) == ("landscape", 10, "labels")
    assert sum(four.widths) == LANDSCAPE_TEXT
    assert four.widths[0] == max(four.widths)
    # Six need the smallest size; each column still holds its longest word.
    six = docx_layout(models_table(n_models=6))
    assert (six.orientation, six.size, six.wrapping) == ("landscape", MIN_FONT_SIZE, "all")
    assert sum(six.widths) == LANDSCAPE_TEXT
    longest_word = max((w for term in TERMS for w in term.split()), key=text_width)
    assert six.widths[0] >= text_width(longest_word, size=8) * 20 + 2 * CELL_MARGIN


def test_reduced_font_is_written_to_every_cell(tmp_path):
    path = to_docx(models_table(n_models=6), tmp_path / "six.docx")
    document = docx.Document(str(path))
    layout = docx_layout(models_table(n_models=6))
    table = document.tables[0]
    sizes = {
        r.font.size.pt
        for row in table.rows
        for c in row.cells
        for p in c.paragraphs
        for r in p.runs
    }
    assert sizes == {layout.size}
    assert _check_fixed_widths(table, document.sections[0]) == list(layout.widths)
    # Title and notes keep the document size.
    assert document.styles["Normal"].font.size.pt == 12
    assert all(r.font.size is None for p in document.paragraphs for r in p.runs)


def test_spanner_is_given_room():
    # A long spanner over two narrow columns widens them so that it fits on one line.
    table = ApaTable(
        1,
        "T",
        ["Group", "M", "SD"],
        pd.DataFrame([["A", "1.00", "0.50"]]),
        spanners=[("", 1), ("Resistance per session (client mean)", 2)],
    )
    layout = docx_layout(table)
    spanner = text_width("Resistance per session (client mean)") * 20 + 2 * CELL_MARGIN
    assert layout.widths[1] + layout.widths[2] >= spanner


def test_hyphens_in_cells_do_not_break_and_read_back(tmp_path):
    path = to_docx(model_table(), tmp_path / "h.docx")
    table = docx.Document(str(path)).tables[0]
    cell = next(
        c for c in table.columns[0].cells if c.text == "Behavioral \u00d7 session (centred)"
    )
    assert cell.text  # found
    path = to_docx(models_table(), tmp_path / "h2.docx")
    table = docx.Document(str(path)).tables[0]
    cell = next(c for c in table.columns[0].cells if c.text.startswith("Self"))
    assert cell.text == "Self-reported tension"
    assert cell._tc.xpath(".//w:noBreakHyphen")


def test_unknown_paper_is_refused():
    with pytest.raises(ValueError, match="paper 'legal' is not one of a4, letter"):
        docx_layout(narrow_table(), paper="legal")


# --------------------------------------------------------------------------------------
# Rendered by LibreOffice
# --------------------------------------------------------------------------------------

_TIMES_METRIC = (
    "times new roman",
    "liberation serif",
    "tinos",
    "tex gyre termes",
    "nimbus roman",
    "times",
)


def _programs() -> tuple[str, str]:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) not installed: the rendered layout is not checked")
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None or shutil.which("pdfinfo") is None:
        pytest.skip(
            "pdftotext/pdfinfo (poppler-utils) not installed: the rendered text is not read"
        )
    return soffice, pdftotext


def _font_for_rendering() -> str:
    """Times New Roman when the system renders it with Times metrics, else DejaVu Serif
    (measured with the very font), so that the test checks the layout, not a substitute."""
    fc_match = shutil.which("fc-match")
    if fc_match is not None:
        family = subprocess.run(
            [fc_match, "-f", "%{family}", "Times New Roman"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if any(name in family.lower() for name in _TIMES_METRIC):
            return "Times New Roman"
        family = subprocess.run(
            [fc_match, "-f", "%{family}", "DejaVu Serif"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if "dejavu serif" in family.lower():
            return "DejaVu Serif"
    pytest.skip(
        "neither Times New Roman (or a font with its metrics) nor DejaVu Serif is "
        "installed, so LibreOffice would render with unknown metrics"
    )


def _render(path, tmp_path) -> tuple[str, list[tuple[float, float]]]:
    soffice, pdftotext = _programs()
    profile = (tmp_path / "lo-profile").as_uri()  # own profile: runs beside other soffice
    result = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    pdf = tmp_path / (path.stem + ".pdf")
    assert pdf.exists(), f"soffice did not convert {path}: {result.stdout} {result.stderr}"
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pdfinfo = shutil.which("pdfinfo")
    info = subprocess.run(
        [pdfinfo, "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    sizes = [
        (float(w), float(h))
        for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info)
    ]
    return text, sizes


def test_rendered_tables_break_no_word(tmp_path):
    _programs()
    font = _font_for_rendering()
    tables = [
        table1(1, n_frameworks=2),
        models_table(2),
        model_table(3),
        narrow_table(4),
        table1(5, n_frameworks=5),
        models_table(6, n_models=4),
        models_table(7, n_models=6),
    ]
    path = to_docx(tables, tmp_path / "tables.docx", font=font)
    text, sizes = _render(path, tmp_path)
    printed = set(text.replace("\u2011", "-").split())
    missing = {}
    for table in tables:
        cells = [*table.columns, *(label for label, _ in table.spanners or [])]
        cells += [cell for _, row in table.body() for cell in row]
        for cell in cells:
            for word in cell.split():
                if word not in printed:
                    missing.setdefault(table.number, set()).add(word)
    assert not missing, f"words broken or lost in the rendered tables ({font}): {missing}"
    # Each table's page (where its number is printed; pdftotext ends pages with a form
    # feed) has the orientation of its layout. With Times metrics: Table 1 of two frameworks
    # and the narrow table on portrait pages (612 x 792 pt), the others on landscape ones.
    pages = text.split("\f")
    orientation = []
    for table in tables:
        page = next(i for i, p in enumerate(pages) if f"Table {table.number}" in p.splitlines())
        width, height = sizes[page]
        orientation.append("landscape" if width > height else "portrait")
    assert orientation == [docx_layout(t, font=font).orientation for t in tables]
    if font == "Times New Roman":
        # the single-model table keeps its portrait page, its terms wrapping at spaces
        assert [o[0] for o in orientation] == ["p", "l", "p", "p", "l", "l", "l"]
