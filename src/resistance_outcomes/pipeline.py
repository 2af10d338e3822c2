"""The workflow's steps: one function per Snakemake rule, reading and writing files.

Each script under ``scripts/`` unpacks the ``snakemake`` object and calls :func:`run_step`
with one of these functions, so every step can also be run and tested without Snakemake.
Known, user-facing errors (bad input, bad configuration) are written to the step's log and
to the terminal as a readable message, without a traceback, and the step fails.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from . import (
    analysis,
    derive,
    describe,
    figures,
    predictions,
    provenance,
    publish,
    recovery,
    reliability,
    results,
    rupture_level,
    sensitivity,
    summary,
    vocabulary,
)
from .codebook import load_codebook
from .config import ConfigError
from .frameworks import load_framework_map
from .ingest import format_validation_report, ingest
from .io import InputFileError, write_table, write_text
from .power import report as power_report
from .validate import ValidationFailed

log = logging.getLogger("resistance_outcomes")

#: Errors that describe a problem with the user's input or configuration.
USER_ERRORS: tuple[type[Exception], ...] = (
    ValidationFailed,
    ConfigError,
    InputFileError,
    derive.DataError,
    analysis.ModelEntryError,
    recovery.RecoveryError,
    results.ResultsError,
    reliability.ReliabilityGateError,
    reliability.ReliabilityInputError,
)


def ingest_step(input, output, params, **_) -> None:
    """Read, map and validate the raw files; write canonical tables and the validation report.

    In strict mode a problem stops here: the readable report goes to the log and the
    terminal, and no canonical table is written. ``params``: ``config`` (the parts of the
    configuration ingest reads) and ``config_file`` (named in messages).
    """
    config_file = getattr(params, "config_file", "config/config.yaml")
    try:
        result = ingest(params.config, base_dir=Path.cwd(), config_file=config_file)
    except ValidationFailed as failed:
        log.error(format_validation_report(failed.problems))
        raise
    write_table(result.clients, output.clients)
    write_table(result.sessions, output.sessions)
    write_table(result.codes, output.codes)
    write_table(result.coding_log, output.coding_log)
    write_table(result.quarantine, output.quarantine)
    report = format_validation_report(result)
    log.info(report)
    write_text(output.report, report)
    if "json" in output.keys():
        mode = (params.config.get("validation") or {}).get("mode")
        counts = results.validation_summary(result, mode)
        write_text(output.json, json.dumps(counts, indent=2, sort_keys=True) + "\n")


def vocabulary_step(input, output, params, **_) -> None:
    """The study's vocabulary (constructs, frameworks, labels, stages) for every later step."""
    vocab = vocabulary.build_vocabulary(
        load_codebook(input.codebook),
        load_framework_map(input.frameworks),
        sessions=pd.read_parquet(input.sessions),
        clients=pd.read_parquet(input.clients),
        codes=pd.read_parquet(input.codes),
        coding_log=pd.read_parquet(input.coding_log),
        labels=params.labels,
        profile=params.profile,
        config_file=params.config_file,
        rupture_responses=getattr(params, "rupture_responses", None),
        repair_threshold=getattr(params, "repair_threshold", 4),
    )
    write_text(output.json, vocab.to_json())
    for name, stage in vocab.stages.items():
        log.info("%s: %s", name, "assessed" if stage.assessed else f"not assessed ({stage.reason})")


def derive_step(input, output, params, **_) -> None:
    """Build the analysis tables: sessions with framework and centring, clients, person-period."""
    clients = pd.read_parquet(input.clients)
    sessions = pd.read_parquet(input.sessions)
    vocab = vocabulary.Vocabulary.load(input.vocabulary)
    definitions = params.dropout["definitions"]
    session_tbl = derive.session_table(sessions, clients, constructs=vocab)
    client_tbl = derive.client_table(
        sessions,
        clients,
        definitions,
        repair_no_ruptures=params.repair_rate_without_ruptures,
        primary=params.dropout["primary"],
        constructs=vocab,
    )
    person_period = derive.person_period(
        sessions, clients, definitions[params.dropout["primary"]], constructs=vocab
    )
    write_table(session_tbl, output.sessions)
    write_table(client_tbl, output.clients)
    write_table(person_period, output.person_period)
    log.info(
        "%d clients, %d scheduled sessions, %d person-period rows",
        len(client_tbl),
        len(session_tbl),
        len(person_period),
    )


def rupture_segments_step(input, output, params, **_) -> None:
    """The rupture-segment table (one row per rupture unit, its resolution rating and the
    responses met with) and its facts (rows, response columns, unrated ruptures, why empty).

    ``params``: ``rupture_responses`` (the config section), ``repair_threshold`` and
    ``config_file``.
    """
    codebook = load_codebook(input.codebook)
    if not params.rupture_responses:
        made = rupture_level.RuptureSegments(
            rupture_level.empty_table(), reason="no rupture_responses section in the configuration"
        )
        write_table(made.table, output.table)
        analysis.write_json(made.info(), output.info)
        log.info("rupture segments: none (%s)", made.reason)
        return
    settings = rupture_level.response_settings(
        params.rupture_responses, codebook, params.repair_threshold, params.config_file
    )
    made = rupture_level.rupture_segments(
        pd.read_parquet(input.codes),
        pd.read_parquet(input.clients),
        codebook,
        settings,
        session_table=pd.read_parquet(input.session_table),
        codes_file=input.codes,
    )
    write_table(made.table, output.table)
    analysis.write_json(made.info(settings), output.info)
    if made.reason:
        log.info("rupture segments: none (%s)", made.reason)
        return
    log.info(
        "%d rupture segments (%d without a resolution rating); responses: %s",
        len(made.table),
        made.unrated,
        ", ".join(made.responses),
    )


def table1_step(input, output, params, **_) -> None:
    """Table 1 by framework, as CSV (long, full precision) and Markdown (formatted)."""
    client_tbl = pd.read_parquet(input.clients)
    session_tbl = pd.read_parquet(input.sessions)
    vocab = vocabulary.Vocabulary.load(input.vocabulary)
    definitions = params.dropout["definitions"]
    dropout_columns = [f"dropout_{name}" for name in definitions]
    long = describe.table1(
        client_tbl,
        session_tbl,
        dropout_columns,
        min_cell=params.min_cell,
        constructs=vocab,
        dropout_labels=derive.dropout_labels(definitions),
    )
    write_table(long, output.csv)
    headers = {f.name: f.label for f in vocab.frameworks}
    wide = describe.format_table1(long, framework_labels=headers)
    write_text(output.md, describe.table1_markdown(wide))


def session_descriptives_step(input, output, params, **_) -> None:
    """Rupture rate by session and the profile of the composite's forms and types, by
    framework.

    A part the data do not hold (no rupture coding; fewer than two parts of the profiled
    composite) gets its table with the columns and no rows; the reason is in the log and
    in ``results/data/vocabulary.json`` (stages ``ruptures`` and ``profile``).
    """
    session_tbl = pd.read_parquet(input.sessions)
    vocab = vocabulary.Vocabulary.load(input.vocabulary)
    ruptures, profile_stage = vocab.stage("ruptures"), vocab.stage("profile")
    construct = "ruptures" if ruptures.assessed and "ruptures" in session_tbl else None
    rates = describe.rate_by_session(session_tbl, construct=construct, min_cell=params.min_cell)
    parts = vocab.profile_parts() if profile_stage.assessed else []
    forms = {f: vocab.constructs[f].parts for f in vocab.profile_forms()}
    profile = describe.construct_profile(
        session_tbl, parts, labels=vocab.all_labels(), min_cell=params.min_cell, forms=forms
    )
    write_table(rates, output.rupture_rate)
    write_table(profile, output.profile)
    for stage, what in ((ruptures, "Rupture rate by session"), (profile_stage, "Profile")):
        if not stage.assessed:
            log.info(vocabulary.not_assessed_text(stage, what))


def _model_folder(spec_path: str | Path) -> Path:
    return Path(spec_path).parent


def _model_table(input, key: str, spec_key: str, name: str) -> pd.DataFrame:
    """A table the model step wrote (``predictions.csv``, ``residuals.csv``, ...): the input
    ``key``, else ``name`` beside the input ``spec_key``; framework levels as text."""
    path = input[key] if key in input.keys() else _model_folder(input[spec_key]) / name
    return predictions.read_model_table(path, text=("framework", "level", "group", "term"))


def _figure_vocabulary(input) -> vocabulary.Vocabulary | None:
    """The run's vocabulary for a figure step (frameworks' order, colours, labels)."""
    path = getattr(input, "vocabulary", None)
    return vocabulary.Vocabulary.load(path) if path else None


def _read_csv_or_empty(path) -> pd.DataFrame:
    """A CSV table; an empty file (a stage that wrote nothing) as an empty table."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def figure_rupture_rate_step(input, output, **_) -> None:
    """Figure: observed rupture rate across sessions by framework, with the rupture-frequency
    model's population-level prediction when that model is configured (PDF and PNG); a
    "not assessed" figure when no ruptures were coded."""
    vocab = _figure_vocabulary(input)
    stage = vocab.stage("ruptures") if vocab else vocabulary.Stage(True)
    rates = _read_csv_or_empty(input.rates)
    if not stage.assessed or rates.empty:
        reason = stage.reason if not stage.assessed else "no rupture rates to show"
        log.info("rupture rate figure: not assessed (%s)", reason)
        fig = figures.plot_not_assessed("Rupture rate by session", reason)
        figures.save_figure(fig, output.pdf, output.png)
        return
    prediction = None
    if "model_spec" in input.keys():  # the model step's predictions (no refit)
        prediction = _model_table(input, "predictions", "model_spec", "predictions.csv")
        if "session" not in prediction:
            model = _model_folder(input.model_spec).name
            raise analysis.ModelEntryError(
                f"figures.rupture_rate_model: the predictions of model '{model}' run over "
                f"{', '.join(map(str, prediction.columns[:2])) or 'nothing'}, not over "
                "session; name a model whose first predictor with a framework interaction "
                "is session_c."
            )
    fig = figures.plot_rupture_rate_by_session(rates, prediction=prediction, vocab=vocab)
    figures.save_figure(fig, output.pdf, output.png)


def figure_dropout_by_repair_step(input, output, **_) -> None:
    """Figure: predicted probability of dropout against repair rate, one line per framework."""
    curves = _model_table(input, "predictions", "model_spec", "predictions.csv")
    fig = figures.plot_dropout_by_repair(curves, vocab=_figure_vocabulary(input))
    figures.save_figure(fig, output.pdf, output.png)


def figure_forest_step(input, output, **_) -> None:
    """Figure: forest plot of the framework-specific effects (simple slopes) of the models."""
    tables, labels = {}, {}
    for spec_path, contrasts_path in zip(input.specs, input.contrasts, strict=True):
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        tables[spec["name"]] = pd.read_csv(contrasts_path)
        labels[spec["name"]] = spec.get("description") or spec["name"]
    vocab = _figure_vocabulary(input)
    effects = predictions.forest_effects(tables, labels, vocab=vocab)
    fig = figures.plot_forest(effects, vocab=vocab)
    figures.save_figure(fig, output.pdf, output.png)


def figure_response_odds_step(input, output, **_) -> None:
    """Figure: per-framework odds ratios of each therapist response (the response model's
    simple slopes); a "not fitted" figure when the model was skipped, "not assessed" when
    the vocabulary says the study has no rupture-level response data."""
    vocab = _figure_vocabulary(input)
    stage = vocab.stage("responses") if vocab else vocabulary.Stage(True)
    summary = json.loads(Path(input.fit).read_text(encoding="utf-8"))
    if not stage.assessed:
        log.info("response figure: not assessed (%s)", stage.reason)
        fig = figures.plot_not_assessed("Responses and repair", stage.reason)
    elif not summary.get("fitted", True):
        log.info("response figure: %s not fitted (%s)", summary["model"], summary.get("reason"))
        fig = figures.plot_not_fitted(summary["model"], summary.get("reason", ""))
    else:
        contrasts = _read_csv_or_empty(input.contrasts)
        fig = figures.plot_response_odds(contrasts, vocab=vocab)
    figures.save_figure(fig, output.pdf, output.png)


def figure_retention_step(input, output, params, **_) -> None:
    """Figure: proportion still in therapy by session, by framework and by repair tertile."""
    person_period = pd.read_parquet(input.person_period)
    clients = pd.read_parquet(input.clients)
    curves = describe.retention_curves(person_period, by="framework", min_cell=params.min_cell)
    with_tertile = person_period.merge(describe.repair_tertile(clients), how="left")
    tertiles = describe.retention_curves(
        with_tertile, by=["framework", "repair_tertile"], min_cell=params.min_cell
    )
    write_table(curves, output.curves)
    vocab = _figure_vocabulary(input)
    order = vocab.framework_names(present_only=False) if vocab else None
    for what, table in (("curve", curves), ("repair panel", tertiles)):
        left_out = figures.retention_frameworks(table, order)[1]
        if left_out:
            log.info(
                "retention figure: no %s for %s (fewer than %d clients at risk at every "
                "session)", what, ", ".join(left_out), params.min_cell,
            )  # fmt: skip
    fig = figures.plot_retention_curves(curves, tertile_curves=tertiles, vocab=vocab)
    figures.save_figure(fig, output.pdf, output.png)


def figure_diagnostics_step(input, output, **_) -> None:
    """Figure: one model's diagnostics (simulated residuals with their tests, or Pearson
    residuals against fitted for gaussian models; random-effect quantiles)."""
    summary = json.loads(Path(input.fit).read_text(encoding="utf-8"))
    if not summary.get("fitted", True):
        fig = figures.plot_not_fitted(summary["model"], summary.get("reason", ""))
        figures.save_figure(fig, output.pdf, output.png)
        return
    residuals = _model_table(input, "residuals", "spec", "residuals.csv")
    modes = _model_table(input, "random_effects", "spec", "random_effects.csv")
    if modes.empty:
        log.info("%s: no random effects (population-averaged fit)", summary["model"])
    simulated, tests, simulation = _simulated_diagnostics(input)
    fig = figures.plot_model_diagnostics(
        residuals,
        random_effects=modes,
        family=summary.get("family", "gaussian"),
        simulated=simulated,
        tests=tests,
        simulation=simulation,
    )
    figures.save_figure(fig, output.pdf, output.png)


def _simulated_diagnostics(input) -> tuple[pd.DataFrame | None, list | None, str | None]:
    """The simulated residuals, their tests and how the simulations drew the random
    effects, as a model step wrote them (inputs ``simulated_residuals`` and
    ``diagnostics``), or (None, None, None) without them."""
    if "diagnostics" not in input.keys() or "simulated_residuals" not in input.keys():
        return None, None, None
    record = json.loads(Path(input.diagnostics).read_text(encoding="utf-8"))
    if not record.get("assessed"):
        log.info("simulated residuals: not assessed (%s)", record.get("reason", ""))
        return None, None, None
    simulation = record.get("random_effects")
    return pd.read_csv(input.simulated_residuals), record.get("tests", []), simulation


def figure_resistance_profile_step(input, output, **_) -> None:
    """Figure: the parts of the profiled composite (resistance behaviours in the example) per
    session by framework (PDF and 300-dpi PNG); a "not assessed" figure without them."""
    vocab = _figure_vocabulary(input)
    profile = _read_csv_or_empty(input.profile)
    stage = vocab.stage("profile") if vocab else vocabulary.Stage(True)
    if not stage.assessed or profile.empty:
        reason = stage.reason if not stage.assessed else "no profile to show"
        what = f"Profile of {vocab.label(vocab.profile)}" if vocab and vocab.profile else "Profile"
        log.info("profile figure: not assessed (%s)", reason)
        figures.save_figure(figures.plot_not_assessed(what, reason), output.pdf, output.png)
        return
    fig = figures.plot_resistance_profile(profile, vocab=vocab)
    figures.save_figure(fig, output.pdf, output.png)


def _analysis_tables(input, params) -> analysis.AnalysisTables:
    """The canonical and derived tables a model's data level is built from."""
    return analysis.AnalysisTables(
        clients=pd.read_parquet(input.clients),
        sessions=pd.read_parquet(input.sessions),
        session_table=pd.read_parquet(input.session_table),
        client_table=pd.read_parquet(input.client_table),
        dropout_definitions=params.dropout["definitions"],
        vocabulary=(
            vocabulary.Vocabulary.load(input.vocabulary) if hasattr(input, "vocabulary") else None
        ),
        rupture_segments=(
            pd.read_parquet(input.rupture_segments) if hasattr(input, "rupture_segments") else None
        ),
        rupture_info=(
            json.loads(Path(input.rupture_info).read_text(encoding="utf-8"))
            if hasattr(input, "rupture_info")
            else None
        ),
    )


def check_models_step(input, output, params, **_) -> None:
    """Check every model's and variant's formula and family against its data level, before
    any model is fitted; write ``results/models/checked.json``.

    ``input.entries``: the entry file of each model and variant (``name``, ``entry``,
    ``dropout`` and ``adjust``: the params of its job). ``params.config_file`` is named in
    the error.
    """
    settings = [json.loads(Path(path).read_text("utf-8")) for path in input.entries]
    specs = {
        s["name"]: analysis.parse_model_spec(s["name"], s["entry"], s["dropout"]) for s in settings
    }
    dropout = settings[0]["dropout"] if settings else {"definitions": {}}
    tables = _analysis_tables(input, SimpleNamespace(dropout=dropout))
    config_file = getattr(params, "config_file", "config/config.yaml")
    checked = analysis.check_models(specs, tables, config_file)
    analysis.write_json(checked, output.checked)
    for name, entry in checked["models"].items():
        log.info("%s: %s", name, entry.get("reason") or f"{entry['rows']} rows, columns ok")


def model_diagnostic_settings(settings, spec) -> dict | None:
    """The simulated-residual settings of one model: the configured ``diagnostics``
    (``nsim``, ``seed``, ``conditional``) with ``at_risk_rows`` true for a model on
    person-period rows.

    Person-period rows exist only while a client is at risk of dropping out, so they are
    simulated with the random effects' conditional modes whatever ``conditional`` says
    (:func:`resistance_outcomes.models.residuals.simulation_choice`); ``diagnostics.json``
    records the simulation and why. None (no diagnostics) stays None.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> model_diagnostic_settings({"nsim": 250}, SimpleNamespace(data="person_period"))
    {'nsim': 250, 'at_risk_rows': True}
    """
    if settings is None:
        return None
    return {**settings, "at_risk_rows": spec.data == "person_period"}


def model_step(input, output, params, **_) -> None:
    """Fit one configured model or sensitivity variant; write its six outputs.

    ``params``: ``name``, ``entry`` (the model entry, or the expanded variant entry),
    ``dropout`` (the dropout section of the configuration) and ``adjust``; optionally
    ``diagnostics`` (``nsim``, ``seed``, ``conditional``): then the simulated residuals and
    their tests are written too (outputs ``simulated_residuals`` and ``diagnostics``), for
    person-period models always with the conditional modes
    (:func:`model_diagnostic_settings`).
    """
    spec = analysis.parse_model_spec(params.name, params.entry, params.dropout)
    intervals = "intervals" in set(output.keys())  # model folders, not sensitivity variants
    diagnostics = model_diagnostic_settings(getattr(params, "diagnostics", None), spec)
    started = time.perf_counter()
    outputs = analysis.run_model(
        spec,
        _analysis_tables(input, params),
        adjust=params.adjust,
        diagnostics=diagnostics,
        intervals=intervals,
    )
    outputs.write(output)
    if diagnostics is not None:
        flagged = outputs.diagnostics.get("flagged") or []
        log.info(
            "simulated residuals: %s",
            ", ".join(flagged) + " test(s) p < .05"
            if flagged
            else outputs.diagnostics.get("reason", "no test flagged"),
        )
        if outputs.diagnostics.get("assessed"):
            log.info(
                "simulations: random effects %s (%s)",
                outputs.diagnostics["random_effects"],
                outputs.diagnostics["simulation_reason"],
            )
    fit = outputs.fit
    log.info("%s: %s", spec.name, "; ".join(fit["flags"]) or "fitted without flags")
    log.info("rows used: %s; left out: %s", fit.get("nobs", 0), fit["rows_excluded"])
    if intervals:
        info = fit.get("intervals", {})
        log.info(
            "profile intervals: %s (model step %.1f s)",
            f"{len(outputs.intervals)} intervals" if info.get("profile") else info.get("reason"),
            time.perf_counter() - started,
        )


def sensitivity_table_step(input, output, **_) -> None:
    """The key estimates of every model with variants, side by side (CSV and Markdown)."""
    analyses = [results.read_model_folder(path) for path in input.specs]
    table = sensitivity.sensitivity_table(analyses)
    write_table(table, output.csv)
    write_text(output.md, sensitivity.sensitivity_markdown(table))


def recovery_step(input, output, params, **_) -> None:
    """Estimates of the mapped models against the simulated study's truth.

    ``params``: ``models`` (model -> generating process, in the order of
    ``input.specs``) and ``repair_effect`` (``{model, slope}`` or empty).
    """
    truth = recovery.load_truth(input.truth)
    folders = [results.read_model_folder(path) for path in input.specs]
    fits = {
        model: {**folder, "process": process}
        for folder, (model, process) in zip(folders, params.models.items(), strict=True)
    }
    table = recovery.recovery_table(truth, fits)
    pattern = None
    if params.repair_effect:
        model, slope = params.repair_effect["model"], params.repair_effect["slope"]
        if model not in fits:
            raise recovery.RecoveryError(
                f"recovery.repair_effect: model {model!r} is not among recovery.models "
                f"({', '.join(fits)}); map it to its generating process there."
            )
        pattern = recovery.repair_pattern(
            truth, fits[model]["process"], fits[model]["spec"], fits[model]["contrasts"], slope
        )
    summary = recovery.recovery_summary(table, pattern)
    write_table(table, output.csv)
    analysis.write_json(summary, output.summary)
    log.info(
        "%d of %d true fixed effects inside their 95%% CIs",
        summary["inside_ci"],
        summary["fixed_effects_with_truth"],
    )


def reliability_step(input, output, params, **_) -> None:
    """Inter-rater reliability from the double-coded sessions, its figure, and the gate.

    Every output is written in every case: without double-coded sessions the table has
    no rows, the Markdown, the gate and the figure say "Inter-rater reliability: not
    assessed (no double-coded sessions)." and ``gate.json`` has ``assessed: false``. In
    strict gate mode a construct assessed below its minimum stops the run here, after the
    outputs are written and before any model is fitted (the model rules take the gate's
    output as input).
    """
    codes = pd.read_parquet(input.codes)
    coding_log = pd.read_parquet(input.coding_log)
    settings = params.reliability
    labels = {}
    if getattr(input, "vocabulary", None):
        labels = vocabulary.Vocabulary.load(input.vocabulary).labels
    result = reliability.reliability_analysis(
        codes,
        coding_log,
        load_codebook(input.codebook),
        repair_threshold=params.repair_threshold,
        labels=labels,
        seed=params.seed,
        n_boot=settings.get("n_boot", 2000),
    )
    write_table(result.table, output.table)
    reliability.reliability_markdown(result.table, sample=result.sample, path=output.md)
    if result.assessed:
        names = dict(zip(result.table["construct"], result.table["construct_label"], strict=True))
        fig = figures.plot_agreement(result.table, labels=names)
    else:
        fig = figures.plot_not_assessed("Inter-rater agreement", result.reason)
    figures.save_figure(fig, output.pdf, output.png)
    for skipped in result.skipped:
        log.info("%s.", skipped)
    outcome = reliability.gate_outcome(
        result.table,
        settings["thresholds"],
        settings.get("gate", "warn"),
        assessed=result.assessed,
        reason=result.reason,
    )
    outcome["sample"] = dict(result.sample)
    write_text(output.gate, reliability.gate_markdown(outcome))
    if getattr(output, "gate_json", None):
        write_text(output.gate_json, reliability.gate_json(outcome))
    if not result.assessed:
        log.info(reliability.not_assessed_sentence(result.reason))
    for entry in outcome["below"]:
        log.warning(entry["message"])
    reliability.stop_if_strict(outcome)


def _run_vocabulary(input) -> vocabulary.Vocabulary | None:
    """The run's vocabulary when the step has it as an input (else None: defaults)."""
    return vocabulary.Vocabulary.load(input.vocabulary) if "vocabulary" in input.keys() else None


def _optional_json(input, key: str) -> dict | None:
    if key not in input.keys():
        return None
    return json.loads(Path(getattr(input, key)).read_text(encoding="utf-8"))


def publication_tables_step(input, output, params, **_) -> None:
    """APA tables (CSV, LaTeX, Markdown each, and one Word file) from every result table.

    ``input``: ``model_specs``, ``table1``, ``reliability``, optionally ``sensitivity``,
    ``gate`` (gate.json: the reliability sample) and ``vocabulary``. ``params``:
    ``main_models`` (the combined table's models) and ``min_cell``. Every table the workflow
    declares is written, a part without data as a table saying "not assessed" and why.
    """
    models = [results.read_model_folder(spec) for spec in input.model_specs]
    sensitivity = None
    if "sensitivity" in input.keys():
        sensitivity = results.read_csv_or_empty(input.sensitivity)
    reliability_table = None
    if "reliability" in input.keys():
        reliability_table = results.read_csv_or_empty(input.reliability)
    gate = _optional_json(input, "gate") or {}
    tables = publish.publication_tables(
        models,
        table1_long=results.read_csv_or_empty(input.table1),
        reliability=reliability_table,
        reliability_sample=gate.get("sample"),
        sensitivity=sensitivity,
        main_models=params.main_models,
        min_cell=params.min_cell,
        vocab=_run_vocabulary(input),
        fixed_intervals=getattr(params, "intervals", "wald"),
    )
    folder = Path(output.docx).parent
    for name, (table, raw) in tables.items():
        publish.write_table_formats(table, raw, folder / name)
    publish.write_docx([table for table, _ in tables.values()], output.docx)
    log.info("%d tables: %s", len(tables), ", ".join(tables))


def summary_step(input, output, params, **_) -> None:
    """The report's summary page: every model's results in sentences, model flags, the
    validation counts, the reliability gate, parts without data, recovery.

    ``input``: ``model_specs`` (models and variants), ``validation``
    (``results/validation/report.json``), ``gate`` (``results/reliability/gate.json``),
    ``vocabulary`` and optionally ``recovery``, ``power`` (the power analyses'
    power.csv, when they are part of the run) and ``influence`` (the models'
    influence.csv). ``params``: ``leading`` (config
    ``summary.models``, resolved), ``slopes`` (config ``summary.slopes``), ``min_cell`` and
    ``power`` (name -> analysis entry of every configured power analysis).
    """
    analyses = [results.read_model_folder(spec) for spec in input.model_specs]
    validation = results.read_validation_summary(input.validation)
    gate = _optional_json(input, "gate")
    text = summary.summary_sentences(
        analyses,
        validation,
        gate,
        _optional_json(input, "recovery"),
        leading=getattr(params, "leading", None),
        slopes=getattr(params, "slopes", None),
        vocab=_run_vocabulary(input),
        min_cell=params.min_cell,
        power=_power_analyses(input, params) if "power" in input.keys() else None,
        power_elsewhere=[] if "power" in input.keys() else list(getattr(params, "power", [])),
        influence=summary_influence(input, analyses),
    )
    write_text(output.md, text)


def provenance_step(input, output, params, **_) -> None:
    """results/provenance.json: input hashes, resolved config, seed, versions, code state."""
    record = provenance.provenance_record(dict(input.items()), params.config, code_dir=".")
    write_text(output.json, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def run_step(step: Callable[..., None], smk) -> None:
    """Run one workflow step for a Snakemake ``script:`` with logging and clean errors.

    Parameters
    ----------
    step : callable
        One of the ``*_step`` functions of this module.
    smk : snakemake.script.Snakemake
        The ``snakemake`` object Snakemake gives a script.

    Examples
    --------
    In ``scripts/derive.py``::

        from resistance_outcomes.pipeline import derive_step, run_step
        run_step(derive_step, snakemake)
    """
    log_path = Path(smk.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        step(
            input=smk.input,
            output=smk.output,
            params=smk.params,
            config=SimpleNamespace(**smk.config),
        )
    except USER_ERRORS as err:
        message = str(err)
        log.error(message)
        print(f"\n{message}\n(also in {log_path})", file=sys.stderr)
        sys.exit(1)
    except Exception:
        log.error(traceback.format_exc())
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def power_chunk_step(input, output, params, **_) -> None:
    """One chunk of one design point of a ``power:`` analysis: its replicate rows.

    ``params.settings``: ``name``, ``entry`` (the analysis), ``model`` (formula, family, reml,
    nagq), ``point`` (a row of :func:`power.report.design_points`), ``start``, ``stop``,
    ``seed``, ``total_fits``. ``input``: the pilot's model folder files when the truth is
    ``from:`` one.
    """
    from .power import truth_from_fit

    params = SimpleNamespace(**params.settings)
    entry, model, point = params.entry, params.model, dict(params.point)
    began = time.monotonic()
    truth_entry = entry["truth"]
    frame = levels = None
    if "from" in truth_entry:
        truth = truth_from_fit(Path(input.fit).parent, truth_entry.get("override"))
        frame = pd.read_csv(input.frame)
        levels = json.loads(Path(input.spec).read_text(encoding="utf-8")).get("factor_levels")
    else:
        truth = truth_entry
    rows = power_report.point_rows(params.name, entry, point, params.seed, frame, levels)
    table = power_report.power_chunk(
        model["formula"],
        rows,
        model["family"],
        truth,
        entry["test"],
        params.start,
        params.stop,
        power_report.point_seed(params.seed, point["point"]),
        reml=model["reml"],
        nagq=model["nagq"],
        total_fits=params.total_fits,
        adjust=entry.get("adjust", "none"),
        attrition=power_report.analysis_attrition(entry),
    )
    table.insert(0, "point", point["point"])
    write_table(table, output.csv)
    seconds = time.monotonic() - began
    per_fit = seconds / max(params.stop - params.start, 1)
    print(  # on the console beside Snakemake's step count (the log has the details)
        f"power {params.name}, design point {point['point']}: {params.stop - params.start} "
        f"fits in {seconds:.1f} s; all {params.total_fits:,} fits of the analysis take about "
        f"{_duration(per_fit * params.total_fits)} of one core",
        file=sys.stderr,
    )


def _duration(seconds: float) -> str:
    """A time span in words: "40 s", "3.5 min", "2.1 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _power_labels(vocab: vocabulary.Vocabulary | None, power: pd.DataFrame) -> dict:
    """Labels of the frameworks and of the variables the tested terms name ("x in level",
    "a - b", a coefficient), from the run's vocabulary; none without one."""
    from .labels import estimate_part_labels

    return estimate_part_labels(power["term"], vocab)


def _power_analyses(input, params) -> list[dict]:
    """The power analyses a summary renders: ``params.power`` (name -> analysis entry with
    its model name) and their ``power.csv`` files, ``input.power``, in the same order; the
    labels are power.csv's ``effect`` column (set by the analysis's report step)."""
    out = []
    for (name, entry), path in zip(dict(params.power).items(), input.power, strict=True):
        power = pd.read_csv(path, keep_default_na=False, na_values=[""])
        labels = dict(zip(power["term"].astype(str), power["effect"].astype(str), strict=True))
        out.append({**entry, "name": name, "power": power, "labels": labels})
    return out


def power_summary_step(input, output, params, **_) -> None:
    """results/power/summary.md: the set-up and sentences of every ``power:`` analysis.

    ``input``: ``power`` (every analysis's power.csv). ``params``: ``power`` (name ->
    analysis entry) and ``in_run``.
    """
    lines = ["# Power analyses", ""]
    if not params.in_run:
        lines += [
            "These analyses are run by `make power` (the workflow target `power`), not by "
            "the default run; set `power: in_run: true` to include them in it.",
            "",
        ]
    section = power_report.power_section(_power_analyses(input, params), heading="")
    write_text(output.md, "\n".join(lines + section[2:]).rstrip() + "\n")


def power_report_step(input, output, params, **_) -> None:
    """The report of one ``power:`` analysis: power.csv, the curve, the table, sentences.

    ``params``: ``name``, ``description``, ``points`` (records of the design points),
    ``alpha``, ``adjust``, ``factor_levels`` (a planned design's frameworks).
    ``input``: ``chunks`` and, for a pilot, ``vocabulary`` (labels, colours) and ``spec``
    (its factor levels). power.csv gets the column ``effect``: each term's label.
    """
    from .figures import save_figure

    chunks = pd.concat(
        [pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in input.chunks]
    )
    points = pd.DataFrame(list(params.points))
    power = power_report.aggregate_power(chunks, points, params.alpha)
    vocab = _run_vocabulary(input)
    levels = params.factor_levels
    if "spec" in input.keys():  # a pilot's factor levels: its coefficients' reference
        levels = json.loads(Path(input.spec).read_text(encoding="utf-8")).get("factor_levels")
    power["effect"] = power_report.effect_labels(power, _power_labels(vocab, power), levels)
    labels = dict(zip(power["term"].astype(str), power["effect"], strict=True))
    colors = vocab.colors() if vocab else {}
    write_table(power, output.power)
    title = params.description or params.name
    figure = power_report.power_figure(power, title, labels, colors)
    save_figure(figure, output.pdf, output.png)
    table = power_report.power_table(power, labels)
    write_table(table, output.table_csv)
    note = power_report.table_note(params.alpha, params.adjust)
    write_text(output.table_md, power_report.table_markdown(table, f"Power: {title}", note))
    sentences = power_report.power_sentences(power, labels)
    write_text(output.sentences, "\n\n".join(sentences) + "\n")
    for sentence in sentences:
        log.info(sentence)


# --------------------------------------------------------------------------- influence


def _no_influence(output, name: str, reason: str) -> None:
    from .influence import INFLUENCE_COLUMNS

    log.info("%s: no leave-one-out refits (%s)", name, reason)
    write_table(pd.DataFrame(columns=INFLUENCE_COLUMNS), output.csv)
    what = f"{name}: influence of single groups"
    figures.save_figure(figures.plot_not_assessed(what, reason), output.pdf, output.png)


def influence_step(input, output, params, **_) -> None:
    """``results/models/<name>/influence.csv`` and its figure: the model refitted from its
    folder (``spec.json``, ``model_frame.csv``) once without each level of the grouping
    column (:func:`resistance_outcomes.influence.leave_one_out`), with the contrasts of its
    ``contrasts.csv``.

    ``input``: ``vocabulary`` (labels) and the model folder's ``spec``, ``frame``, ``fit``,
    ``coefficients``,
    ``variance_components``, ``contrasts``. ``params``: ``group`` (config
    ``influence.group``), ``adjust`` (config ``contrasts.adjust``), ``top`` (groups in the
    figure). ``output``: ``csv``, ``pdf``, ``png``. A model that was not fitted, is
    population-averaged or has no such column gets a header-only table and a "not
    assessed" figure, with the reason in the log.
    """
    from . import influence
    from .models import ModelSpecError

    model = results.read_model_folder(input.spec)
    name, fit = model["name"], model["fit"]
    if fit.get("fitted") is False:
        return _no_influence(output, name, f"the model was not fitted: {fit.get('reason', '')}")
    spec = analysis.ModelSpec.from_dict(model["spec"])
    if spec.method != "mixed":
        return _no_influence(output, name, f"a population-averaged ({spec.method}) fit")
    frame = analysis.read_model_frame(input.frame, model["spec"])
    if params.group not in frame.columns:
        return _no_influence(output, name, f"its model frame has no column {params.group!r}")
    began = time.monotonic()
    try:
        table = influence.leave_one_out(spec, frame, params.group, adjust=params.adjust)
    except ModelSpecError as err:
        raise analysis.ModelEntryError(
            f"model '{name}': leaving out one {params.group}: {err}"
        ) from None
    write_table(table, output.csv)
    overview = influence.influence_overview(table)
    changes = influence.influential_changes(table)
    log.info(
        "%s: %d refits without one %s in %s (%d failed); largest |DFBETAS| %.2f (%s without "
        "%s); %d main result(s) changed",
        name, len(overview), params.group, _duration(time.monotonic() - began),
        int(overview["failed"].sum()), overview["max_abs_dfbetas"].iloc[0],
        overview["term_of_max"].iloc[0], overview["left_out"].iloc[0], len(changes),
    )  # fmt: skip
    vocab = _run_vocabulary(input)
    labels = _estimate_labels(table, model["spec"], vocab)
    if vocab is not None:  # contrasts and slopes by their parts' labels, `by` levels too
        from .labels import contrast_labels

        labels |= contrast_labels(table, vocab)
    from .labels import group_label, model_title

    fig = figures.plot_influence(
        table,
        top=int(getattr(params, "top", 10)),
        model=model_title(name, model["spec"]),
        labels=labels,
        group_name=group_label(params.group, vocab),
    )
    figures.save_figure(fig, output.pdf, output.png)


def _estimate_labels(table: pd.DataFrame, spec: dict, vocab) -> dict:
    """Labels of a table's estimates (``term``, ``kind``): coefficients by
    :func:`labels.term_label`, contrasts and slopes ("x in level", "a - b") with their
    parts' labels; none without a vocabulary."""
    from .labels import estimate_labels

    return estimate_labels(table, spec.get("factor_levels"), vocab)


def summary_influence(input, analyses) -> list[dict]:
    """The influence tables of the summary's input ``influence`` (one per model), with the
    name and spec of their model folder."""
    from .influence import read_influence

    specs = {a["name"]: a["spec"] for a in analyses}
    out = []
    for path in input.influence if "influence" in input.keys() else []:
        name = Path(path).parent.name
        out.append({"name": name, "spec": specs.get(name, {}), "table": read_influence(path)})
    return out


# --- parametric bootstrap (workflow/rules/inference.smk) --------------------------------


def _bootstrap_fit(input):
    """The model of a model folder refitted from its spec.json and model_frame.csv (the
    same fit as the model job's: deterministic), with the contrasts it reports as a
    bootstrap ``contrasts`` spec; None (and the reason) when the model was not fitted."""
    from .models import MixedResult
    from .models.bootstrap import contrast_test

    fit_json = json.loads(Path(input.fit).read_text(encoding="utf-8"))
    if fit_json.get("fitted") is False:
        return None, None, f"the model was not fitted: {fit_json.get('reason', '')}"
    spec_json = json.loads(Path(input.spec).read_text(encoding="utf-8"))
    spec = analysis.ModelSpec.from_dict(spec_json)
    fit = analysis.fit_model(spec, analysis.read_model_frame(input.frame, spec_json))
    if not isinstance(fit, MixedResult):
        raise analysis.ModelEntryError(
            f"model {spec.name!r}: inference.bootstrap needs a mixed model (method: mixed); "
            "a population-averaged (GEE) fit has no model to simulate from. Remove "
            "inference.bootstrap from this model."
        )
    contrasts = contrast_test(spec.contrasts)
    return fit, contrasts, None


def bootstrap_chunk_step(input, output, params, **_) -> None:
    """Replicates ``params.start .. params.stop - 1`` of the parametric bootstrap of one
    model (:func:`resistance_outcomes.models.bootstrap.parametric_bootstrap`), seeded per
    replicate by ``params.seed``; ``input``: the model folder's spec, frame and fit.json."""
    from .models.bootstrap import BOOTSTRAP_COLUMNS, parametric_bootstrap

    began = time.monotonic()
    fit, contrasts, reason = _bootstrap_fit(input)
    if fit is None:
        log.info("%s: no bootstrap, %s", params.name, reason)
        write_table(pd.DataFrame(columns=BOOTSTRAP_COLUMNS), output.csv)
        return
    nsim = int(params.stop) - int(params.start)
    rows = parametric_bootstrap(
        fit, nsim, int(params.seed), start=int(params.start), contrasts=contrasts
    )
    write_table(rows, output.csv)
    failed = int(rows.groupby("replicate")["failed"].first().sum())
    seconds = time.monotonic() - began
    log.info(
        "%s: bootstrap replicates %s-%s, %s failed refits, %.1f s",
        params.name,
        params.start,
        int(params.stop) - 1,
        failed,
        seconds,
    )


def bootstrap_step(input, output, params, **_) -> None:
    """The percentile intervals of one model's bootstrap chunks (``bootstrap.csv``, one row
    per quantity; fixed effects named by their ``term``). ``params.level``."""
    from .models.bootstrap import INTERVAL_COLUMNS, bootstrap_intervals, bootstrap_parameters

    fit, contrasts, reason = _bootstrap_fit(input)
    if fit is None:
        log.info("%s: no bootstrap, %s", params.name, reason)
        write_table(pd.DataFrame(columns=INTERVAL_COLUMNS), output.csv)
        return
    chunks = [_read_csv_or_empty(path) for path in input.chunks]
    rows = pd.concat([c for c in chunks if len(c)], ignore_index=True)
    table = bootstrap_intervals(
        rows, bootstrap_parameters(fit, contrasts), level=float(params.level)
    )
    write_table(table, output.csv)
    log.info(
        "%s: %s bootstrap replicates, %s failed, %s singular refits",
        params.name,
        int(table["nsim"].max()),
        int(table["failed"].max()),
        int(table["singular"].max()),
    )
