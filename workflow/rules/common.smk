# Helpers shared by the rules: config check at start-up, input paths, the list of outputs.
import json
from pathlib import Path

from resistance_outcomes.analysis import model_job_entry
from resistance_outcomes.config import ConfigError, check_config

check_config(config, workflow.source_path("../schemas/config.schema.yaml"))

ENV = "../../environment.yml"


def config_file_used():
    """The config file this run uses, named in messages: the last --configfile given (it
    replaces or extends the Snakefile's `configfile:`, which workflow.configfiles lists
    after it), else the Snakefile's; relative to the working directory when inside it.
    """
    files = list(workflow.overwrite_configfiles) or list(workflow.configfiles)
    if not files:
        return "config/config.yaml"
    path = Path(files[-1])
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


CONFIG_FILE = config_file_used()
# the configuration keys the ingest step reads (rule ingest gets only these, so editing
# a model or a figure does not rerun it); add a key here when ingest starts to read it
INGEST_KEYS = [
    "study",
    "data",
    "columns",
    "end_status_values",
    "coder_role_values",
    "missing_values",
    "covariates",
    "codebook",
    "frameworks",
    "validation",
    "coding",
]
INGEST_CONFIG = {key: config[key] for key in INGEST_KEYS if key in config}


def model_settings(name):
    """The params of the job of one model or variant (models.smk): its entry without the
    bootstrap's keys (model_job_entry: changing the number of refits or their seed reruns
    the bootstrap jobs only), the dropout section and the contrasts' adjustment."""
    entry = VARIANTS[name] if name in VARIANTS else config["models"][name]
    entry = model_job_entry(entry)
    return {
        "name": name,
        "entry": entry,
        "dropout": config["dropout"],
        "adjust": ADJUST,
    }


# --- the files of a model's folder (results/models/<name>/, results/sensitivity/<name>/)
# by the name the rules' inputs and outputs give them: every rule that names a file of a
# model folder takes it from here
MODEL_FOLDER_FILES = {
    "spec": "spec.json",
    "frame": "model_frame.csv",
    "coefficients": "coefficients.csv",
    "variance_components": "variance_components.csv",
    "fit": "fit.json",
    "contrasts": "contrasts.csv",
    # what the figures draw, so that no figure step refits the model
    "predictions": "predictions.csv",
    "residuals": "residuals.csv",
    "random_effects": "random_effects.csv",
    # configured models only (not sensitivity variants)
    "intervals": "intervals.csv",
    "simulated_residuals": "simulated_residuals.csv",
    "diagnostics": "diagnostics.json",
    # models of influence: and with inference.bootstrap
    "influence": "influence.csv",
    "bootstrap": "bootstrap.csv",
}
# what every fitted model and sensitivity variant has
FITTED_FILES = [
    "spec",
    "frame",
    "coefficients",
    "variance_components",
    "fit",
    "contrasts",
    "predictions",
    "residuals",
    "random_effects",
]


def model_folder_files(folder, keys):
    """{key: path} of the files `keys` (of MODEL_FOLDER_FILES) of a model folder."""
    return {key: f"{folder}/{MODEL_FOLDER_FILES[key]}" for key in keys}


def model_file(name, key):
    """Path of one file of a configured model's folder, results/models/<name>/."""
    return model_folder_files(f"results/models/{name}", [key])[key]


# the rupture-segment table and its facts, input of the models on that data level only
RUPTURE_FILES = {
    "rupture_segments": "results/derived/rupture_segments.parquet",
    "rupture_info": "results/derived/rupture_segments.json",
}


def rupture_inputs(name):
    """RUPTURE_FILES for a model or variant on the rupture_segments level, else none."""
    entry = model_settings(name)["entry"]
    return RUPTURE_FILES if entry.get("data") == "rupture_segments" else {}


def model_entry_json(name):
    """The entry file of a model or variant (written by model_entry): its settings, JSON."""
    return json.dumps(model_settings(name), indent=2, sort_keys=True)


def data_path(table):
    """Path of one configured raw input file (a string or a {path, sheet} mapping)."""
    entry = config["data"][table]
    return entry["path"] if isinstance(entry, dict) else entry


def raw_inputs(wildcards):
    """The raw files and the two mapping files the ingest step reads."""
    files = {
        "clients": data_path("clients"),
        "sessions": data_path("sessions"),
        "codebook": config["codebook"],
        "frameworks": config["frameworks"],
    }
    for optional in ("codes", "coding_log"):
        if optional in config["data"]:
            files[optional] = data_path(optional)
    return files


def final_outputs():
    """Everything `rule all` asks for."""
    return [
        "results/validation/report.md",
        "results/tables/table1.csv",
        "results/tables/table1.md",
        "results/descriptives/rupture_rate_by_session.csv",
        "results/descriptives/profile.csv",
        "results/reliability/reliability.csv",
        "results/reliability/reliability.md",
        "results/reliability/gate.md",
        "results/reliability/gate.json",
        "results/figures/reliability_agreement.pdf",
        "results/figures/reliability_agreement.png",
        # the rupture-level table, also for a study without models on it
        *(RUPTURE_FILES.values() if config.get("rupture_responses") else []),
        *MODEL_OUTPUTS,  # defined in models.smk
        *FIGURE_OUTPUTS,  # defined in figures.smk
        *REPORT_OUTPUTS,  # defined in report.smk
        *(POWER_OUTPUTS if POWER_IN_RUN else []),  # defined in power.smk
        *INFLUENCE_OUTPUTS,  # defined in influence.smk
        *BOOTSTRAP_OUTPUTS,  # models with inference.bootstrap (inference.smk)
    ]


# --- power analyses (power.smk: POWER_ANALYSES, POWER_CHUNK, POWER_SEED, POWER_SPECS)


def power_points(name):
    return power_report.design_points(name, POWER_ANALYSES[name])


def power_model(name):
    model = POWER_ANALYSES[name]["model"]
    if model not in POWER_SPECS:
        raise ValueError(
            f"power.analyses.{name}.model: {model!r} is not a model under models: "
            f"({', '.join(POWER_SPECS)})"
        )
    spec = POWER_SPECS[model]
    return {
        "formula": spec.formula,
        "family": spec.family,
        "reml": spec.reml,
        "nagq": spec.nagq,
    }


def power_chunks(name):
    ranges = power_report.chunk_ranges(POWER_ANALYSES[name]["replicates"], POWER_CHUNK)
    return [
        f"results/power/{name}/chunks/point{p}_chunk{c}.csv"
        for p in power_points(name)["point"]
        for c in range(len(ranges))
    ]


def power_chunk_inputs(wildcards):
    source = POWER_ANALYSES[wildcards.analysis]["truth"].get("from")
    if not source:
        return {}
    return model_folder_files(source, POWER_FILES)


def power_chunk_params(wildcards):
    name = wildcards.analysis
    entry = POWER_ANALYSES[name]
    ranges = power_report.chunk_ranges(entry["replicates"], POWER_CHUNK)
    points = power_points(name)
    start, stop = ranges[int(wildcards.chunk)]
    return {
        "name": name,
        "entry": entry,
        "model": power_model(name),
        "point": {k: int(v) for k, v in points.iloc[int(wildcards.point)].items()},
        "start": start,
        "stop": stop,
        "seed": int(entry.get("seed", POWER_SEED)),
        "total_fits": int(entry["replicates"]) * len(points),
    }


def power_entries():
    """Name -> the parts of each power analysis its summary names."""
    keys = ["description", "model", "truth", "alpha", "adjust"]
    return {n: {k: e[k] for k in keys if k in e} for n, e in POWER_ANALYSES.items()}


def power_summary_inputs(wildcards):
    return {"power": [f"results/power/{n}/power.csv" for n in POWER_ANALYSES]}


def summary_power_inputs(wildcards):
    """The power analyses' results when they are part of the run (power: in_run)."""
    return power_summary_inputs(wildcards) if POWER_IN_RUN and POWER_ANALYSES else {}


def power_factor_levels(name):
    """A planned design's frameworks (the first is the coefficients' reference)."""
    frameworks = (POWER_ANALYSES[name].get("design") or {}).get("frameworks")
    return {"framework": list(frameworks)} if frameworks else {}


def power_chunk_message(wildcards):
    settings = power_chunk_params(wildcards)
    return (
        f"replicates {settings['start']}-{settings['stop'] - 1} of "
        f"{POWER_ANALYSES[wildcards.analysis]['replicates']} "
        f"({settings['total_fits']:,} fits in the analysis)"
    )


def power_report_inputs(wildcards):
    inputs = {"chunks": power_chunks(wildcards.analysis)}
    source = POWER_ANALYSES[wildcards.analysis]["truth"].get("from")
    if source:
        inputs["vocabulary"] = "results/data/vocabulary.json"
        inputs["spec"] = f"{source}/spec.json"
    return inputs


# --- influence of single groups (influence.smk: INFLUENCE_MODELS, INFLUENCE_GROUP)

INFLUENCE_FILES = [
    "spec",
    "frame",
    "fit",
    "coefficients",
    "variance_components",
    "contrasts",
]


def influence_models(section, leading):
    """The models of config `influence.models`: a list, `all` (every mixed model under
    models:), or by default the summary's leading models; none without the key."""
    if not section:
        return []
    chosen = section.get("models", leading)
    specs = model_specs(config)
    if chosen == "all":
        return [name for name, spec in specs.items() if spec.method == "mixed"]
    unknown = [name for name in chosen if name not in specs]
    if unknown:
        raise ConfigError(
            f"influence.models in {CONFIG_FILE}: {', '.join(map(repr, unknown))} "
            f"{'is not a' if len(unknown) == 1 else 'are not'} configured "
            f"model{'' if len(unknown) == 1 else 's'} "
            f"(models: {', '.join(specs) or 'none'}). Name models of `models:`, "
            "give all, or leave the key out for the summary's models (summary.models)."
        )
    averaged = [name for name in chosen if specs[name].method != "mixed"]
    if averaged:
        raise ConfigError(
            f"influence.models in {CONFIG_FILE}: {', '.join(map(repr, averaged))} "
            f"{'is' if len(averaged) == 1 else 'are'} population-averaged (method: gee); "
            "leaving one therapist out refits mixed models only. Remove them from "
            "influence.models."
        )
    return list(dict.fromkeys(chosen))


def influence_inputs(wildcards):
    """The files of one model folder the influence job reads, and the vocabulary."""
    return {
        "vocabulary": "results/data/vocabulary.json",
        **model_folder_files(f"results/models/{wildcards.model}", INFLUENCE_FILES),
    }


def summary_influence_inputs(wildcards):
    """The influence tables, for the summary page."""
    if not INFLUENCE_MODELS:
        return {}
    return {
        "influence": [f"results/models/{m}/influence.csv" for m in INFLUENCE_MODELS]
    }


# --- parametric bootstrap (inference.smk): models whose entry sets inference.bootstrap

INFERENCE = config.get("inference") or {}
BOOTSTRAP_CHUNK = int(INFERENCE.get("chunk_size", 100))
BOOTSTRAP_SEED = int(config.get("seed", 2024))
BOOTSTRAP_MODELS = {
    name: dict(entry["inference"])
    for name, entry in (config.get("models") or {}).items()
    if (entry.get("inference") or {}).get("bootstrap")
}


# the files of the model folder the bootstrap jobs read (the fit is redone from them)
BOOTSTRAP_FILES = ["spec", "frame", "fit"]


def bootstrap_inputs(wildcards):
    return model_folder_files(f"results/models/{wildcards.model}", BOOTSTRAP_FILES)


def bootstrap_ranges(name):
    """(start, stop) of each chunk of a model's bootstrap replicates."""
    total = int(BOOTSTRAP_MODELS[name]["bootstrap"])
    return [
        (a, min(a + BOOTSTRAP_CHUNK, total)) for a in range(0, total, BOOTSTRAP_CHUNK)
    ]


def bootstrap_chunks(name):
    return [
        f"results/models/{name}/bootstrap/chunk{k}.csv"
        for k in range(len(bootstrap_ranges(name)))
    ]


def bootstrap_chunk_range(wildcards):
    return bootstrap_ranges(wildcards.model)[int(wildcards.chunk)]


def bootstrap_chunk_message(wildcards):
    start, stop = bootstrap_chunk_range(wildcards)
    total = BOOTSTRAP_MODELS[wildcards.model]["bootstrap"]
    return f"replicates {start}-{stop - 1} of {total}"


def bootstrap_seed(name):
    """The model's inference.seed, else the run's seed."""
    return int(BOOTSTRAP_MODELS[name].get("seed", BOOTSTRAP_SEED))


BOOTSTRAP_OUTPUTS = [model_file(m, "bootstrap") for m in BOOTSTRAP_MODELS]
