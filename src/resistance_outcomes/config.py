"""Checking a run's configuration against its JSON-Schema, reporting every problem at once."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration that cannot be run; the message lists every problem found."""


def load_yaml(path: str | Path) -> dict:
    """Read a YAML file into a dict, with a clear error when it is missing or malformed.

    Examples
    --------
    >>> cfg = load_yaml("config/config.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}).") from None
    return loaded if loaded is not None else {}


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f" Known keys here: {', '.join(allowed)}." if allowed else ""
        return f"config key {where}: unknown key(s) {', '.join(map(repr, extra))}.{hint}"
    if error.validator == "required":
        return f"config key {where}: {error.message}; add it (see config/README.md)."
    if error.validator == "enum":
        allowed = ", ".join(map(repr, error.validator_value))
        return f"config key {where}: {error.instance!r} is not one of {allowed}."
    return f"config key {where}: {error.message}."


def config_problems(config: dict, schema: dict | str | Path) -> list[str]:
    """List every way ``config`` breaks ``schema`` plus the cross-key rules a schema cannot say.

    Parameters
    ----------
    config : dict
        The run configuration, as Snakemake loaded it.
    schema : dict or path
        The JSON-Schema (``workflow/schemas/config.schema.yaml``) or its path.

    Returns
    -------
    list of str
        One readable message per problem, naming the key and what is allowed; empty when
        the configuration is valid.

    Examples
    --------
    >>> config_problems({"study": 1}, {"properties": {"study": {"type": "string"}}})
    ["config key study: 1 is not of type 'string'."]
    """
    if not isinstance(schema, dict):
        schema = load_yaml(schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e) for e in errors]
    dropout = config.get("dropout") if isinstance(config, dict) else None
    if isinstance(dropout, dict) and isinstance(dropout.get("definitions"), dict):
        primary = dropout.get("primary")
        if primary not in dropout["definitions"]:
            known = ", ".join(sorted(dropout["definitions"]))
            problems.append(
                f"config key dropout.primary: {primary!r} is not one of the defined dropout "
                f"definitions ({known})."
            )
        for name, spec in dropout["definitions"].items():
            needs_count = isinstance(spec, dict) and spec.get("rule") == "min_attended"
            if needs_count and "sessions" not in spec:
                problems.append(
                    f"config key dropout.definitions.{name}: rule min_attended needs "
                    "'sessions: N' (dropout = fewer than N attended sessions)."
                )
    models = config.get("models") if isinstance(config, dict) else None
    figures = config.get("figures") if isinstance(config, dict) else None
    if isinstance(figures, dict):
        known = set(models or {})
        named = [figures.get("rupture_rate_model"), figures.get("dropout_model")]
        named += list(figures.get("forest_models") or [])
        for name in named:
            if isinstance(name, str) and name not in known:
                problems.append(
                    f"config key figures: model {name!r} is not one of the configured "
                    f"models ({', '.join(sorted(known))})."
                )
    return problems


def check_config(config: dict, schema: dict | str | Path) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config``; return quietly if none.

    Examples
    --------
    >>> check_config({"study": "x"}, {"properties": {"study": {"type": "string"}}})
    """
    problems = config_problems(config, schema)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"The configuration has {len(problems)} problem(s):\n{lines}\n"
            "Fix them in your config file (keys are described in config/README.md)."
        )
