"""Sensitivity variants: expansion of the configuration, and the side-by-side table."""

from pathlib import Path

import pandas as pd
import pytest

from resistance_outcomes.analysis import ModelEntryError
from resistance_outcomes.config import load_yaml
from resistance_outcomes.contrasts import CONTRAST_COLUMNS
from resistance_outcomes.sensitivity import (
    TABLE_COLUMNS,
    sensitivity_markdown,
    sensitivity_table,
    variant_entries,
)

ROOT = Path(__file__).resolve().parents[1]
RETENTION = {
    "data": "clients",
    "family": "binomial",
    "formula": "dropout ~ framework * repair_rate_between + (1 | therapist)",
}
RUPTURES = {
    "data": "sessions",
    "family": "negative_binomial",
    "formula": "ruptures ~ framework + offset(log(minutes)) + (1 | therapist/client)",
}


def config(**sensitivity):
    return {
        "models": {"repair_retention": RETENTION, "rupture_frequency": RUPTURES},
        "dropout": {
            "primary": "judged",
            "definitions": {
                "judged": {"rule": "end_status"},
                "fewer_than_4": {"rule": "min_attended", "sessions": 4},
                "missed_last": {"rule": "missed_last_scheduled"},
            },
        },
        "sensitivity": sensitivity,
    }


def test_every_other_dropout_definition_becomes_a_variant():
    variants = variant_entries(config(dropout_definitions=["repair_retention"]))
    assert list(variants) == [
        "repair_retention_dropout_fewer_than_4",
        "repair_retention_dropout_missed_last",
    ]
    entry = variants["repair_retention_dropout_missed_last"]
    assert entry == {
        **RETENTION,
        "dropout": "missed_last",
        "variant_of": "repair_retention",
        "changes": {"dropout": "missed_last"},
    }


def test_configured_variants_change_only_their_keys():
    variants = variant_entries(
        config(
            variants={
                "rupture_frequency_poisson": {"model": "rupture_frequency", "family": "poisson"},
                "rupture_frequency_gee": {
                    "model": "rupture_frequency",
                    "method": "gee",
                    "family": "poisson",
                },
                "repair_retention_min2": {"model": "repair_retention", "min_attended": 2},
            }
        )
    )
    assert variants["rupture_frequency_poisson"] == {
        **RUPTURES,
        "family": "poisson",
        "variant_of": "rupture_frequency",
        "changes": {"family": "poisson"},
    }
    assert variants["repair_retention_min2"]["formula"] == RETENTION["formula"]
    assert variants["repair_retention_min2"]["min_attended"] == 2


@pytest.mark.parametrize(
    ("sensitivity", "fragment"),
    [
        (
            {"variants": {"v": {"model": "alliance"}}},
            "sensitivity variant 'v': model 'alliance' is not one of the configured models",
        ),
        (
            {"variants": {"v": {"model": "rupture_frequency", "familly": "poisson"}}},
            "sensitivity variant 'v': unknown key(s) familly",
        ),
        ({"variants": {"v": {"family": "poisson"}}}, "give the model it varies"),
        (
            {"variants": {"repair_retention": {"model": "rupture_frequency"}}},
            "the name is already used",
        ),
        (
            {"variants": {"v": {"model": "rupture_frequency", "method": "gee"}}},
            "model 'v': population-averaged (gee) fits of counts use family: poisson",
        ),
        ({"dropout_definitions": ["dropout_hazard"]}, "model 'dropout_hazard' is not one"),
    ],
)
def test_bad_variants_are_named(sensitivity, fragment):
    with pytest.raises(ModelEntryError) as err:
        variant_entries(config(**sensitivity))
    assert fragment in str(err.value)


def test_default_configuration_expands_to_the_documented_variants():
    variants = variant_entries(load_yaml(ROOT / "config" / "config.yaml"))
    bases = {entry["variant_of"] for entry in variants.values()}
    assert {
        "repair_retention",
        "dropout_hazard",
        "rupture_frequency",
        "resistance_profile",
    } <= bases
    changes = [entry["changes"] for entry in variants.values()]
    assert {"dropout": "fewer_than_4"} in changes and {"dropout": "missed_last"} in changes
    assert {"family": "poisson"} in changes and {"min_attended": 2} in changes
    assert {"method": "gee"} in changes


# --- the table ---------------------------------------------------------------------------


def contrasts(odds_ratio: float) -> pd.DataFrame:
    rows = [
        {
            "kind": "pairwise",
            "variable": "framework",
            "level": "psychoanalytic",
            "reference": "cognitive",
            "by": "",
        },
        {
            "kind": "simple_slope",
            "variable": "repair_rate_between",
            "level": "cognitive",
            "reference": "",
            "by": "",
        },
    ]
    table = pd.DataFrame(rows).reindex(columns=CONTRAST_COLUMNS)
    table["estimate"] = [0.5, -1.0]
    table[["ci_low", "ci_high"]] = [[0.1, 0.9], [-2.0, 0.0]]
    table[["ratio", "ratio_ci_low", "ratio_ci_high"]] = [
        [odds_ratio, 1.105, 2.46],
        [0.368, 0.135, 1.0],
    ]
    table["ratio_kind"] = "odds ratio"
    return table


def analysis(name, base=None, changes=None, flags=(), fitted=True, odds_ratio=1.65):
    spec = {"variant_of": base, "changes": changes or {}, "method": "mixed", "family": "binomial"}
    return {
        "name": name,
        "spec": spec,
        "fit": {"flags": list(flags), "fitted": fitted},
        "contrasts": contrasts(odds_ratio) if fitted else pd.DataFrame(),
    }


def test_table_has_the_main_analysis_first_then_each_variant():
    table = sensitivity_table(
        [
            analysis("repair_retention"),
            analysis("rupture_frequency"),  # no variants: left out
            analysis("repair_retention_gee", "repair_retention", {"method": "gee"}, odds_ratio=1.5),
            analysis(
                "repair_retention_min2",
                "repair_retention",
                {"min_attended": 2},
                flags=["singular fit"],
            ),
            analysis(
                "repair_retention_x",
                "repair_retention",
                {"dropout": "x"},
                flags=["not fitted"],
                fitted=False,
            ),
        ]
    )
    assert list(table.columns) == TABLE_COLUMNS
    assert table["analysis"].tolist() == [
        "repair_retention",
        "repair_retention",
        "repair_retention_gee",
        "repair_retention_gee",
        "repair_retention_min2",
        "repair_retention_min2",
        "repair_retention_x",
    ]
    assert set(table["model"]) == {"repair_retention"}
    assert table["changes"].tolist()[::2] == [
        "main analysis",
        "method: gee",
        "min_attended: 2",
        "dropout: x",
    ]
    assert table["flags"].tolist()[-3:] == ["singular fit", "singular fit", "not fitted"]
    assert table["ratio"].tolist()[:4] == [1.65, 0.368, 1.5, 0.368]


def test_markdown_lays_the_analyses_side_by_side_and_marks_flags():
    table = sensitivity_table(
        [
            analysis("repair_retention"),
            analysis(
                "repair_retention_min2",
                "repair_retention",
                {"min_attended": 2},
                flags=["singular fit"],
            ),
            analysis(
                "repair_retention_x",
                "repair_retention",
                {"dropout": "x"},
                flags=["not fitted"],
                fitted=False,
            ),
        ]
    )
    text = sensitivity_markdown(table)
    assert "## repair_retention (odds ratios, 95% CI)" in text
    assert "| contrast | repair_retention | repair_retention_min2 | repair_retention_x |" in text
    assert (
        "| psychoanalytic vs cognitive | 1.65 [1.10, 2.46] | 1.65 [1.10, 2.46] † | not available |"
    ) in text
    assert "| slope of repair_rate_between: cognitive | 0.37 [0.14, 1.00] |" in text
    assert "- repair_retention_min2: min_attended: 2 († singular fit)" in text
    assert "- repair_retention_x: dropout: x († not fitted)" in text
