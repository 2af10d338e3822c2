# Inference beyond Wald intervals. Parametric bootstrap: for each model whose entry sets
# `inference: {bootstrap: N, seed: S}`, one job per chunk of replicates (each replicate
# seeded by itself, so the result does not depend on the chunking or the cores), then the
# percentile intervals (results/models/<name>/bootstrap.csv).
import re

# wildcard constraint matching exactly the models with a bootstrap (common.smk)
BOOTSTRAP_NAMES = "|".join(map(re.escape, BOOTSTRAP_MODELS)) or "(?!)"


rule bootstrap_chunk:
    input:
        unpack(bootstrap_inputs),  # common.smk: the model folder's spec, frame, fit
    output:
        csv="results/models/{model}/bootstrap/chunk{chunk}.csv",
    log:
        "results/logs/bootstrap/{model}/chunk{chunk}.log",
    wildcard_constraints:
        model=BOOTSTRAP_NAMES,
        chunk=r"\d+",
    group:
        "bootstrap_chunks"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(40),
        runtime=attempt_scaled(60),
    params:
        name=lambda wildcards: wildcards.model,
        start=lambda wildcards: bootstrap_chunk_range(wildcards)[0],
        stop=lambda wildcards: bootstrap_chunk_range(wildcards)[1],
        seed=lambda wildcards: bootstrap_seed(wildcards.model),
        replicates=bootstrap_chunk_message,
    message:
        "Parametric bootstrap of {wildcards.model}: {params.replicates}"
    script:
        "../../scripts/bootstrap_chunk.py"


rule bootstrap:
    input:
        unpack(bootstrap_inputs),
        chunks=lambda wildcards: bootstrap_chunks(wildcards.model),
    output:
        csv=report(
            "results/models/{model}/bootstrap.csv",
            category="Models",
            subcategory="{model}",
            caption="../report/models_bootstrap.rst",
        ),
    log:
        "results/logs/bootstrap/{model}/intervals.log",
    wildcard_constraints:
        model=BOOTSTRAP_NAMES,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    params:
        name=lambda wildcards: wildcards.model,
        level=0.95,
    script:
        "../../scripts/bootstrap.py"
