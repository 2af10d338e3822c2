# Publication tables, the report's summary page, and the provenance record.
from resistance_outcomes.summary import leading_models

SUMMARY_CONFIG = config.get("summary") or {}
# the models that lead the summary page (default: every configured model, in config order)
SUMMARY_MODELS = leading_models(
    SUMMARY_CONFIG.get("models"), MODELS, "summary.models", CONFIG_FILE
)
# the models side by side in the combined table (default: the summary's leading models)
MAIN_MODELS = leading_models(
    (config.get("tables") or {}).get("main_models", SUMMARY_MODELS),
    MODELS,
    "tables.main_models",
    CONFIG_FILE,
)
PUBLICATION_TABLES = ["table1", "reliability", "contrasts"]
PUBLICATION_TABLES += ["models_combined"] if MAIN_MODELS else []
PUBLICATION_TABLES += ["sensitivity"] if VARIANTS else []
PUBLICATION_TABLES += [f"model_{m}" for m in MODELS]
REPORT_OUTPUTS = [
    f"results/publication/{name}.{ext}"
    for name in PUBLICATION_TABLES
    for ext in ("csv", "tex", "md")
]
REPORT_OUTPUTS += [
    "results/publication/tables.docx",
    "results/summary.md",
    "results/provenance.json",
]


rule publication_tables:
    input:
        **(
            {"sensitivity": "results/sensitivity/sensitivity_table.csv"}
            if VARIANTS
            else {}
        ),
        # the bootstrap intervals the tables show with tables.intervals: boot
        bootstrap=(
            BOOTSTRAP_OUTPUTS if config["tables"].get("intervals") == "boot" else []
        ),
        table1="results/tables/table1.csv",
        reliability="results/reliability/reliability.csv",
        gate="results/reliability/gate.json",
        vocabulary="results/data/vocabulary.json",
        model_specs=[f"results/models/{m}/spec.json" for m in MODELS],
    output:
        tables=[
            f"results/publication/{name}.{ext}"
            for name in PUBLICATION_TABLES
            for ext in ("csv", "tex", "md")
        ],
        docx=report(
            "results/publication/tables.docx",
            category="Tables",
            caption="../report/publication_tables.rst",
        ),
    log:
        "results/logs/publication_tables.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    params:
        main_models=MAIN_MODELS,
        min_cell=config["tables"]["min_cell"],
        intervals=config["tables"].get("intervals", "wald"),
    script:
        "../../scripts/publication_tables.py"


rule summary:
    input:
        unpack(summary_power_inputs),
        unpack(summary_influence_inputs),
        **(
            {"recovery": "results/recovery/summary.json"}
            if "recovery" in config
            else {}
        ),
        validation="results/validation/report.json",
        gate="results/reliability/gate.json",
        vocabulary="results/data/vocabulary.json",
        model_specs=[f"results/models/{m}/spec.json" for m in MODELS]
        + [f"results/sensitivity/{v}/spec.json" for v in VARIANTS],
        # read beside each model's spec.json (results.read_model_folder)
        diagnostics=[f"results/models/{m}/diagnostics.json" for m in MODELS],
    output:
        md=report(
            "results/summary.md",
            category="Summary",
            caption="../report/summary.rst",
        ),
    log:
        "results/logs/summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    params:
        leading=SUMMARY_MODELS,
        slopes=SUMMARY_CONFIG.get("slopes", {}),
        min_cell=config["tables"]["min_cell"],
        power=lambda wildcards: power_entries(),
    script:
        "../../scripts/summary.py"


rule provenance:
    input:
        unpack(raw_inputs),
    output:
        json=report(
            "results/provenance.json",
            category="Provenance",
            caption="../report/provenance.rst",
        ),
    log:
        "results/logs/provenance.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=attempt_scaled(BASE_MEM_MB),
        runtime=attempt_scaled(5),
    params:
        config=config,
    script:
        "../../scripts/provenance.py"
