# Influence of single groups (therapists): per model named under `influence:`, one job that
# refits the model from its folder once without each level of the grouping column and
# writes influence.csv and a figure of the most influential levels.
INFLUENCE = config.get("influence") or {}
INFLUENCE_GROUP = INFLUENCE.get("group", "therapist")
INFLUENCE_MODELS = influence_models(INFLUENCE, SUMMARY_MODELS)  # common.smk
INFLUENCE_NAMES = "|".join(map(re.escape, INFLUENCE_MODELS)) or "(?!)"
# everything rule all asks of this file (final_outputs in common.smk)
INFLUENCE_OUTPUTS = [f"results/models/{m}/influence.csv" for m in INFLUENCE_MODELS]
INFLUENCE_OUTPUTS += [
    f"results/figures/influence/{m}.{ext}"
    for m in INFLUENCE_MODELS
    for ext in ("pdf", "png")
]


rule influence:
    input:
        unpack(influence_inputs),  # common.smk: the model folder's files
    output:
        csv=report(
            "results/models/{model}/influence.csv",
            category="Models",
            subcategory="{model}",
            caption="../report/models_influence.rst",
        ),
        pdf="results/figures/influence/{model}.pdf",
        png=report(
            "results/figures/influence/{model}.png",
            category="Models",
            subcategory="{model}",
            caption="../report/influence_figure.rst",
        ),
    log:
        "results/logs/influence/{model}.log",
    wildcard_constraints:
        model=INFLUENCE_NAMES,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(40),
        runtime=attempt_scaled(60),
    params:
        group=INFLUENCE_GROUP,
        adjust=ADJUST,
        top=int(INFLUENCE.get("top", 10)),
    script:
        "../../scripts/influence.py"
