"""Tests for resistance_outcomes.frameworks: the label -> framework map is configuration."""

from pathlib import Path

import pandas as pd
import pytest

from resistance_outcomes.config import ConfigError
from resistance_outcomes.frameworks import (
    UnmappedLabelError,
    label_key,
    load_framework_map,
    map_frameworks,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MAP = REPO / "config" / "frameworks.yaml"

# The raw labels of the example study and where the documented default map puts them
# (config/frameworks.yaml; CBT -> cognitive by the documented default).
EXAMPLE_LABELS = {
    "CBT": "cognitive",
    "psychodynamic": "psychoanalytic",
    "Psychoanalytic ": "psychoanalytic",
    "ERP": "behavioral",
    "BA": "behavioral",
    "REBT": "cognitive",
    "STPP": "psychoanalytic",
    "PDT": "psychoanalytic",
    "CT": "cognitive",
    " cognitive therapy": "cognitive",
    "behaviour therapy": "behavioral",
    "Exposure": "behavioral",
    "DBT": "behavioral",
    "MBT": "psychoanalytic",
    "TFP": "psychoanalytic",
    "CPT": "cognitive",
    "Cognitive-Behavioural Therapy": "cognitive",
}


def write_map(tmp_path, text: str) -> Path:
    path = tmp_path / "frameworks.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_map_places_the_common_labels():
    fmap = load_framework_map(DEFAULT_MAP)
    assert fmap.frameworks == ("psychoanalytic", "behavioral", "cognitive")
    labels = pd.Series(list(EXAMPLE_LABELS))
    assert map_frameworks(labels, fmap).tolist() == list(EXAMPLE_LABELS.values())


def test_default_map_documents_that_cbt_is_ambiguous():
    text = DEFAULT_MAP.read_text(encoding="utf-8")
    assert "CBT (cognitive-behavioural therapy) combines" in text
    assert "mapped to cognitive" in text


def test_matching_ignores_case_spacing_hyphens_and_underscores():
    assert label_key("  COGNITIVE_behavioural\t therapy ") == "cognitive behavioural therapy"
    fmap = load_framework_map(DEFAULT_MAP)
    result = map_frameworks(pd.Series([" cbt", "Behavior  Therapy", "pdt\n"]), fmap)
    assert result.tolist() == ["cognitive", "behavioral", "psychoanalytic"]


def test_result_is_categorical_in_map_order_and_keeps_index_and_missing():
    fmap = load_framework_map(DEFAULT_MAP)
    labels = pd.Series(["CBT", None, "ERP"], index=[5, 6, 7])
    result = map_frameworks(labels, fmap)
    assert list(result.cat.categories) == ["psychoanalytic", "behavioral", "cognitive"]
    assert result.index.tolist() == [5, 6, 7]
    assert pd.isna(result[6])


def test_unmapped_labels_are_listed_with_counts_and_first_rows():
    fmap = load_framework_map(DEFAULT_MAP)
    labels = pd.Series(["IPT", "CBT", "ipt ", "Schema therapy", "IPT"], index=[2, 3, 4, 5, 6])
    with pytest.raises(UnmappedLabelError) as caught:
        map_frameworks(labels, fmap, file="clients.csv")
    error = caught.value
    assert [(p.file, p.row, p.column, p.value) for p in error.problems] == [
        ("clients.csv", 2, "treatment_label", "IPT"),
        ("clients.csv", 4, "treatment_label", "ipt "),
        ("clients.csv", 5, "treatment_label", "Schema therapy"),
        ("clients.csv", 6, "treatment_label", "IPT"),
    ]
    text = str(error)
    assert "2 treatment labels in clients.csv are not in" in text
    assert "'IPT': 3 rows (rows 2, 4, 6)" in text
    assert "'Schema therapy': 1 row (row 5)" in text
    assert "frameworks.yaml" in text


def test_rows_argument_overrides_the_index():
    fmap = load_framework_map(DEFAULT_MAP)
    with pytest.raises(UnmappedLabelError) as caught:
        map_frameworks(pd.Series(["IPT"]), fmap, rows=[17])
    assert caught.value.problems[0].row == 17


def test_other_group_collects_unlisted_labels(tmp_path):
    path = write_map(
        tmp_path,
        """
frameworks:
  psychoanalytic: [PDT]
  cognitive: [CBT]
other:
  name: other
  labels: [IPT]
unmapped: other
""",
    )
    fmap = load_framework_map(path)
    assert fmap.categories == ("psychoanalytic", "cognitive", "other")
    result = map_frameworks(pd.Series(["PDT", "IPT", "humanistic", "cbt"]), fmap)
    assert result.tolist() == ["psychoanalytic", "other", "other", "cognitive"]


def test_other_group_without_unmapped_other_still_refuses_unlisted_labels(tmp_path):
    path = write_map(
        tmp_path,
        """
frameworks: {cognitive: [CBT], behavioral: [BA]}
other: {name: other, labels: [IPT]}
""",
    )
    fmap = load_framework_map(path)
    assert map_frameworks(pd.Series(["IPT"]), fmap).tolist() == ["other"]
    with pytest.raises(UnmappedLabelError):
        map_frameworks(pd.Series(["humanistic"]), fmap)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frameworks: {cognitive: [CBT], behavioral: [cbt]}", "listed under both"),
        ("frameworks: {cognitive: [CBT]}\nunmapped: other", "needs an `other:` group"),
        ("frameworks: {cognitive: [CBT]}\nunmapped: ignore", "use error or other"),
        ("frameworks: {cognitive: CBT}", "needs a list of labels"),
        ("labels: [CBT]", "needs `frameworks:`"),
        ("frameworks: {cognitive: [CBT]}\nother: {name: cognitive}", "also a framework"),
    ],
)
def test_bad_maps_are_refused_with_a_readable_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_framework_map(write_map(tmp_path, text))


@pytest.mark.parametrize("count", [2, 5, 8])
def test_any_names_two_to_eight_frameworks_keep_their_order(tmp_path, count):
    names = [f"school_{chr(ord('a') + k)}" for k in reversed(range(count))]
    text = "frameworks:\n" + "".join(f"  {name}: [{name} therapy]\n" for name in names)
    fmap = load_framework_map(write_map(tmp_path, text + "other: {name: rest}\n"))
    assert fmap.frameworks == tuple(names)  # the file's order, not sorted
    assert fmap.categories == (*names, "rest")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["cognitive"], r"lists 1 framework \(cognitive\); list at least 2"),
        ([f"f{k}" for k in range(9)], r"lists 9 frameworks \(f0, f1, .*f8\); at most 8"),
    ],
)
def test_fewer_than_two_or_more_than_eight_frameworks_are_refused(tmp_path, names, message):
    text = "frameworks:\n" + "".join(f"  {name}: [{name}]\n" for name in names)
    path = write_map(tmp_path, text + "other: {name: other}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_framework_map(path)
    assert str(caught.value).startswith(str(path))  # names the file
