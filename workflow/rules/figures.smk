# Figures: descriptive ones from the session tables, model-based ones from the tables the
# model step wrote (predictions.csv, residuals.csv, random_effects.csv; no refitting), all
# as PDF and 300-dpi PNG.
# Every framework figure reads the vocabulary (frameworks' order, colour, marker and label
# from config/frameworks.yaml; which stages have data): a stage without data gets a
# "not assessed" figure, so every figure listed here always exists.
FIGURES = config.get("figures") or {}
RATE_MODEL = FIGURES.get("rupture_rate_model")
DROPOUT_MODEL = FIGURES.get("dropout_model")
FOREST_MODELS = FIGURES.get("forest_models") or []
RESPONSE_MODEL = FIGURES.get("response_model")
DIAGNOSED = MODELS if FIGURES.get("diagnostics", True) else []

FIGURE_NAMES = ["rupture_rate_by_session", "resistance_profile", "retention_curves"]
FIGURE_NAMES += ["dropout_by_repair"] if DROPOUT_MODEL else []
FIGURE_NAMES += ["forest"] if FOREST_MODELS else []
FIGURE_NAMES += ["response_odds"] if RESPONSE_MODEL else []
FIGURE_OUTPUTS = [
    f"results/figures/{name}.{ext}" for name in FIGURE_NAMES for ext in ("pdf", "png")
]
FIGURE_OUTPUTS += [
    f"results/figures/diagnostics/{m}.{ext}"
    for m in DIAGNOSED
    for ext in ("pdf", "png")
]


rule figure_rupture_rate:
    input:
        **(
            {
                "model_spec": f"results/models/{RATE_MODEL}/spec.json",
                "predictions": f"results/models/{RATE_MODEL}/predictions.csv",
            }
            if RATE_MODEL
            else {}
        ),
        rates="results/descriptives/rupture_rate_by_session.csv",
        vocabulary="results/data/vocabulary.json",
    output:
        pdf="results/figures/rupture_rate_by_session.pdf",
        png=report(
            "results/figures/rupture_rate_by_session.png",
            category="Figures",
            caption="../report/rupture_rate_figure.rst",
        ),
    log:
        "results/logs/figure_rupture_rate.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    script:
        "../../scripts/figure_rupture_rate.py"


rule figure_resistance_profile:
    input:
        profile="results/descriptives/profile.csv",
        vocabulary="results/data/vocabulary.json",
    output:
        pdf="results/figures/resistance_profile.pdf",
        png=report(
            "results/figures/resistance_profile.png",
            category="Figures",
            caption="../report/resistance_profile_figure.rst",
        ),
    log:
        "results/logs/figure_resistance_profile.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    script:
        "../../scripts/figure_resistance_profile.py"


rule figure_dropout_by_repair:
    input:
        model_spec=f"results/models/{DROPOUT_MODEL}/spec.json",
        predictions=f"results/models/{DROPOUT_MODEL}/predictions.csv",
        vocabulary="results/data/vocabulary.json",
    output:
        pdf="results/figures/dropout_by_repair.pdf",
        png=report(
            "results/figures/dropout_by_repair.png",
            category="Figures",
            caption="../report/dropout_by_repair_figure.rst",
        ),
    log:
        "results/logs/figure_dropout_by_repair.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    script:
        "../../scripts/figure_dropout_by_repair.py"


rule figure_forest:
    input:
        specs=[f"results/models/{m}/spec.json" for m in FOREST_MODELS],
        contrasts=[f"results/models/{m}/contrasts.csv" for m in FOREST_MODELS],
        vocabulary="results/data/vocabulary.json",
    output:
        pdf="results/figures/forest.pdf",
        png=report(
            "results/figures/forest.png",
            category="Figures",
            caption="../report/forest_figure.rst",
        ),
    log:
        "results/logs/figure_forest.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    script:
        "../../scripts/figure_forest.py"


if RESPONSE_MODEL:

    rule figure_response_odds:
        input:
            fit=f"results/models/{RESPONSE_MODEL}/fit.json",
            contrasts=f"results/models/{RESPONSE_MODEL}/contrasts.csv",
            vocabulary="results/data/vocabulary.json",
        output:
            pdf="results/figures/response_odds.pdf",
            png=report(
                "results/figures/response_odds.png",
                category="Figures",
                caption="../report/response_odds_figure.rst",
            ),
        log:
            "results/logs/figure_response_odds.log",
        localrule: True  # conditional: not in resources.smk's localrules
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=input_mem_mb(20),
            runtime=attempt_scaled(10),
        script:
            "../../scripts/figure_response_odds.py"


rule figure_retention:
    input:
        person_period="results/derived/person_period.parquet",
        clients="results/derived/client_table.parquet",
        vocabulary="results/data/vocabulary.json",
    output:
        curves="results/descriptives/retention_curves.csv",
        pdf="results/figures/retention_curves.pdf",
        png=report(
            "results/figures/retention_curves.png",
            category="Figures",
            caption="../report/retention_figure.rst",
        ),
    log:
        "results/logs/figure_retention.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    params:
        min_cell=config["tables"]["min_cell"],
    script:
        "../../scripts/figure_retention.py"


rule figure_diagnostics:
    input:
        spec="results/models/{model}/spec.json",
        fit="results/models/{model}/fit.json",
        residuals="results/models/{model}/residuals.csv",
        random_effects="results/models/{model}/random_effects.csv",
        simulated_residuals="results/models/{model}/simulated_residuals.csv",
        diagnostics="results/models/{model}/diagnostics.json",
    output:
        pdf="results/figures/diagnostics/{model}.pdf",
        png=report(
            "results/figures/diagnostics/{model}.png",
            category="Models",
            subcategory="{model}",
            caption="../report/diagnostics_figure.rst",
        ),
    log:
        "results/logs/figure_diagnostics/{model}.log",
    wildcard_constraints:
        model=MODEL_NAMES,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    script:
        "../../scripts/figure_diagnostics.py"
