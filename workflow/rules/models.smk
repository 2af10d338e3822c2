# Models: one job per entry under `models:` and per sensitivity variant, the side-by-side
# sensitivity table and, for a simulated study, the recovery of its known truth.
import re

from resistance_outcomes.analysis import model_specs
from resistance_outcomes.sensitivity import variant_entries

model_specs(config)  # a malformed model entry stops the run here, naming the model
MODELS = list(config.get("models") or {})
VARIANTS = variant_entries(config)
ADJUST = (config.get("contrasts") or {}).get("adjust", "holm")
MODEL_FILES = [MODEL_FOLDER_FILES[key] for key in FITTED_FILES]  # common.smk
# simulated-residual diagnostics of each model (not of the variants): their settings
# (config diagnostics:, seeded by the run's seed unless it has its own) and files
DIAGNOSTICS = {"nsim": 250, "conditional": False, **(config.get("diagnostics") or {})}
DIAGNOSTICS.setdefault("seed", config["seed"])
DIAGNOSTIC_FILES = [
    MODEL_FOLDER_FILES[k] for k in ("simulated_residuals", "diagnostics")
]
# wildcard constraints matching exactly the configured names
MODEL_NAMES = "|".join(map(re.escape, MODELS)) or "(?!)"
VARIANT_NAMES = "|".join(map(re.escape, VARIANTS)) or "(?!)"
# the folders the sensitivity table compares: each model with variants, then the variants
SENSITIVITY_FOLDERS = [
    f"results/models/{m}"
    for m in MODELS
    if any(v["variant_of"] == m for v in VARIANTS.values())
] + [f"results/sensitivity/{v}" for v in VARIANTS]
# the models mapped to a generating process, in the order of the mapping
RECOVERY_FOLDERS = [
    f"results/models/{m}" for m in (config.get("recovery") or {}).get("models", {})
]
# everything rule all asks of this file (final_outputs in common.smk)
MODEL_OUTPUTS = [f"results/models/{m}/{f}" for m in MODELS for f in MODEL_FILES]
# profile-likelihood intervals: configured models only, not sensitivity variants
MODEL_OUTPUTS += [model_file(m, "intervals") for m in MODELS]
MODEL_OUTPUTS += [f"results/sensitivity/{v}/{f}" for v in VARIANTS for f in MODEL_FILES]
MODEL_OUTPUTS += [f"results/models/{m}/{f}" for m in MODELS for f in DIAGNOSTIC_FILES]
if VARIANTS:
    MODEL_OUTPUTS += [
        "results/sensitivity/sensitivity_table.csv",
        "results/sensitivity/sensitivity_table.md",
    ]
if "recovery" in config:
    MODEL_OUTPUTS += ["results/recovery/recovery.csv", "results/recovery/summary.json"]
# the rupture-segment table and its facts (rupture_inputs in common.smk): input of
# check_models when a model or variant is on that data level
CHECK_RUPTURE_INPUTS = (
    RUPTURE_FILES if any(rupture_inputs(name) for name in [*MODELS, *VARIANTS]) else {}
)
# the entry file of each model and variant: what its job takes from the configuration
ENTRY_FILES = [f"results/models/{m}/entry.json" for m in MODELS]
ENTRY_FILES += [f"results/sensitivity/{v}/entry.json" for v in VARIANTS]


# Editing one model reruns its entry job (same params as its model job), which reruns
# check_models (it reads every entry file) and that model; the others take the check as
# ancient input, so they stay. Params of check_models itself would not do: a job whose
# upstream reruns is not checked for its own changed params when the link is ancient.
rule model_entry:
    output:
        entry="results/{folder}/{name}/entry.json",
    log:
        "results/logs/model_entry/{folder}/{name}.log",
    wildcard_constraints:
        folder="models|sensitivity",
        name=f"{MODEL_NAMES}|{VARIANT_NAMES}",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=attempt_scaled(100),
        runtime=attempt_scaled(1),
    params:
        # JSON text written by the shell: a run directive would spawn a whole Snakemake
        json=lambda wildcards: model_entry_json(wildcards.name),
    shell:
        "printf '%s\\n' {params.json:q} > {output.entry} 2> {log}"


rule check_models:
    input:
        unpack(lambda wildcards: CHECK_RUPTURE_INPUTS),
        entries=ENTRY_FILES,
        clients="results/data/clients.parquet",
        sessions="results/data/sessions.parquet",
        session_table="results/derived/session_table.parquet",
        client_table="results/derived/client_table.parquet",
        vocabulary="results/data/vocabulary.json",
    output:
        checked="results/models/checked.json",
    log:
        "results/logs/check_models.log",
    # before the descriptives that become ready with it: a bad formula stops the run early
    priority: 10
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(30),
    params:
        config_file=CONFIG_FILE,
    script:
        "../../scripts/check_models.py"


rule model:
    input:
        unpack(lambda wildcards: rupture_inputs(wildcards.model)),
        # ancient: a rewritten check (another model edited) does not rerun this model
        checked=ancient("results/models/checked.json"),
        entry="results/models/{model}/entry.json",
        clients="results/data/clients.parquet",
        sessions="results/data/sessions.parquet",
        session_table="results/derived/session_table.parquet",
        client_table="results/derived/client_table.parquet",
        vocabulary="results/data/vocabulary.json",
        reliability_gate="results/reliability/gate.md",
    output:
        spec="results/models/{model}/spec.json",
        frame="results/models/{model}/model_frame.csv",
        coefficients=report(
            "results/models/{model}/coefficients.csv",
            category="Models",
            subcategory="{model}",
            caption="../report/models_coefficients.rst",
        ),
        variance_components=report(
            "results/models/{model}/variance_components.csv",
            category="Models",
            subcategory="{model}",
            caption="../report/models_variance_components.rst",
        ),
        fit=report(
            "results/models/{model}/fit.json",
            category="Models",
            subcategory="{model}",
            caption="../report/models_fit.rst",
        ),
        contrasts=report(
            "results/models/{model}/contrasts.csv",
            category="Models",
            subcategory="{model}",
            caption="../report/models_contrasts.rst",
        ),
        predictions="results/models/{model}/predictions.csv",
        residuals="results/models/{model}/residuals.csv",
        random_effects="results/models/{model}/random_effects.csv",
        intervals=report(
            "results/models/{model}/intervals.csv",
            category="Models",
            subcategory="{model}",
            caption="../report/models_intervals.rst",
        ),
        simulated_residuals="results/models/{model}/simulated_residuals.csv",
        diagnostics=report(
            "results/models/{model}/diagnostics.json",
            category="Models",
            subcategory="{model}",
            caption="../report/models_diagnostics.rst",
        ),
    log:
        "results/logs/models/{model}.log",
    wildcard_constraints:
        model=MODEL_NAMES,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=model_mem_mb,
        runtime=model_runtime,
    params:
        name=lambda wildcards: wildcards.model,
        # without the bootstrap's keys (model_settings in common.smk, as the entry file)
        entry=lambda wildcards: model_settings(wildcards.model)["entry"],
        dropout=config["dropout"],
        adjust=ADJUST,
        diagnostics=DIAGNOSTICS,
    script:
        "../../scripts/model.py"


rule sensitivity_variant:
    input:
        unpack(lambda wildcards: rupture_inputs(wildcards.variant)),
        checked=ancient("results/models/checked.json"),
        entry="results/sensitivity/{variant}/entry.json",
        clients="results/data/clients.parquet",
        sessions="results/data/sessions.parquet",
        session_table="results/derived/session_table.parquet",
        client_table="results/derived/client_table.parquet",
        vocabulary="results/data/vocabulary.json",
        reliability_gate="results/reliability/gate.md",
    output:
        spec="results/sensitivity/{variant}/spec.json",
        frame="results/sensitivity/{variant}/model_frame.csv",
        coefficients=report(
            "results/sensitivity/{variant}/coefficients.csv",
            category="Sensitivity",
            subcategory="{variant}",
            caption="../report/models_coefficients.rst",
        ),
        variance_components="results/sensitivity/{variant}/variance_components.csv",
        fit=report(
            "results/sensitivity/{variant}/fit.json",
            category="Sensitivity",
            subcategory="{variant}",
            caption="../report/models_fit.rst",
        ),
        contrasts=report(
            "results/sensitivity/{variant}/contrasts.csv",
            category="Sensitivity",
            subcategory="{variant}",
            caption="../report/models_contrasts.rst",
        ),
        predictions="results/sensitivity/{variant}/predictions.csv",
        residuals="results/sensitivity/{variant}/residuals.csv",
        random_effects="results/sensitivity/{variant}/random_effects.csv",
    log:
        "results/logs/sensitivity/{variant}.log",
    wildcard_constraints:
        variant=VARIANT_NAMES,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=model_mem_mb,
        runtime=model_runtime,
    params:
        name=lambda wildcards: wildcards.variant,
        entry=lambda wildcards: model_settings(wildcards.variant)["entry"],
        dropout=config["dropout"],
        adjust=ADJUST,
    script:
        "../../scripts/model.py"


rule sensitivity_table:
    input:
        specs=[f"{folder}/spec.json" for folder in SENSITIVITY_FOLDERS],
        fits=[f"{folder}/fit.json" for folder in SENSITIVITY_FOLDERS],
        contrasts=[f"{folder}/contrasts.csv" for folder in SENSITIVITY_FOLDERS],
    output:
        csv=report(
            "results/sensitivity/sensitivity_table.csv",
            category="Sensitivity",
            caption="../report/models_sensitivity.rst",
        ),
        md="results/sensitivity/sensitivity_table.md",
    log:
        "results/logs/sensitivity_table.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=attempt_scaled(BASE_MEM_MB),
        runtime=attempt_scaled(10),
    script:
        "../../scripts/sensitivity_table.py"


if "recovery" in config:

    rule recovery:
        input:
            truth=config["recovery"]["truth"],
            specs=[f"{folder}/spec.json" for folder in RECOVERY_FOLDERS],
            fits=[f"{folder}/fit.json" for folder in RECOVERY_FOLDERS],
            coefficients=[f"{folder}/coefficients.csv" for folder in RECOVERY_FOLDERS],
            contrasts=[f"{folder}/contrasts.csv" for folder in RECOVERY_FOLDERS],
        output:
            csv=report(
                "results/recovery/recovery.csv",
                category="Models",
                subcategory="Recovery of the simulated truth",
                caption="../report/models_recovery.rst",
            ),
            summary="results/recovery/summary.json",
        log:
            "results/logs/recovery.log",
        localrule: True  # conditional: not in resources.smk's localrules
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=attempt_scaled(BASE_MEM_MB),
            runtime=attempt_scaled(10),
        params:
            models=config["recovery"]["models"],
            repair_effect=config["recovery"].get("repair_effect", {}),
        script:
            "../../scripts/recovery.py"
