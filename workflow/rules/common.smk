# Helpers shared by the rules: config check at start-up, input paths, the list of outputs.
from pathlib import Path

from resistance_outcomes.config import check_config

check_config(config, workflow.source_path("../schemas/config.schema.yaml"))

ENV = "../../environment.yml"
# the config file this run uses (the last --configfile wins), named in messages
CONFIG_FILE = (
    str(workflow.configfiles[-1]) if workflow.configfiles else "config/config.yaml"
)


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
        *MODEL_OUTPUTS,  # defined in models.smk
        *FIGURE_OUTPUTS,  # defined in figures.smk
        *REPORT_OUTPUTS,  # defined in report.smk
    ]
