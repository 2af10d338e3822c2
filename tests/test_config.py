"""The run configuration is checked against its schema, with every problem listed at once."""

import copy
from pathlib import Path

import pytest

from resistance_outcomes.config import ConfigError, check_config, config_problems, load_yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture()
def config():
    return load_yaml(ROOT / "config" / "config.yaml")


def test_default_config_is_valid(config):
    assert config_problems(config, SCHEMA) == []


def test_every_problem_is_listed_with_its_key(config):
    bad = copy.deepcopy(config)
    bad["validation"]["mode"] = "strct"
    bad["tables"]["min_cel"] = 3
    del bad["seed"]
    bad["dropout"]["primary"] = "therapist_says"
    problems = config_problems(bad, SCHEMA)
    assert len(problems) == 4
    text = "\n".join(problems)
    assert "validation.mode: 'strct' is not one of 'strict', 'lenient'" in text
    assert (
        "config key tables: unknown key(s) 'min_cel'. Known keys here: intervals, main_models, "
        "min_cell"
    ) in text
    assert "'seed' is a required property" in text
    assert "dropout.primary: 'therapist_says' is not one of the defined dropout" in text


def test_min_attended_needs_a_session_count(config):
    bad = copy.deepcopy(config)
    bad["dropout"]["definitions"]["fewer_than_4"] = {"rule": "min_attended"}
    assert config_problems(bad, SCHEMA) == [
        "config key dropout.definitions.fewer_than_4: rule min_attended needs 'sessions: N' "
        "(dropout = fewer than N attended sessions)."
    ]


def test_unknown_dropout_rule_is_refused(config):
    bad = copy.deepcopy(config)
    bad["dropout"]["definitions"]["judged"] = {"rule": "therapist_judgement"}
    (problem,) = config_problems(bad, SCHEMA)
    assert problem.startswith("config key dropout.definitions.judged.rule: 'therapist_judgement'")


def test_check_config_raises_one_readable_error(config):
    bad = copy.deepcopy(config)
    bad["study"] = ""
    bad["validation"]["identifiers"] = "keep"
    with pytest.raises(ConfigError) as err:
        check_config(bad, SCHEMA)
    message = str(err.value)
    assert message.startswith("The configuration has 2 problem(s):")
    assert "validation.identifiers: 'keep' is not one of 'refuse', 'drop'" in message
    assert "config/README.md" in message


def test_missing_or_malformed_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("study: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_yaml(broken)
