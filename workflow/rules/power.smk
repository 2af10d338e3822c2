# Power analyses (`power:` in the configuration): one job per analysis, design point and
# chunk of replicates, then the report of each analysis and their summary. Part of
# `rule all` only with `power: in_run: true`; the target `power` (make power) runs them.
from resistance_outcomes.analysis import model_specs
from resistance_outcomes.power import report as power_report

POWER = config.get("power") or {}
POWER_CHUNK = int(POWER.get("chunk_size", 100))
POWER_SEED = int(POWER.get("seed", 2024))
POWER_ANALYSES = dict(POWER.get("analyses") or {})
POWER_IN_RUN = bool(POWER.get("in_run", False))
POWER_SPECS = model_specs(config)
# the files of the pilot's model folder (truth: from:) a power job reads
POWER_FILES = ["frame", "spec", "coefficients", "variance_components", "fit"]


POWER_OUTPUTS = [
    f"results/power/{name}/{f}"
    for name in POWER_ANALYSES
    for f in [
        "power.csv",
        "power_curve.pdf",
        "power_curve.png",
        "power_table.csv",
        "power_table.md",
        "sentences.md",
    ]
] + (["results/power/summary.md"] if POWER_ANALYSES else [])
POWER_NAMES = "|".join(map(re.escape, POWER_ANALYSES)) or "(?!)"


rule power_chunk:
    input:
        unpack(power_chunk_inputs),
    output:
        csv="results/power/{analysis}/chunks/point{point}_chunk{chunk}.csv",
    log:
        "results/logs/power/{analysis}/point{point}_chunk{chunk}.log",
    wildcard_constraints:
        analysis=POWER_NAMES,
        point=r"\d+",
        chunk=r"\d+",
    group:
        "power_chunks"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(40),
        runtime=attempt_scaled(60),
    params:
        settings=power_chunk_params,
        fits=power_chunk_message,
    message:
        "Power analysis {wildcards.analysis}, design point {wildcards.point}: {params.fits}"
    script:
        "../../scripts/power_chunk.py"


rule power_report:
    input:
        unpack(power_report_inputs),
    output:
        power="results/power/{analysis}/power.csv",
        pdf="results/power/{analysis}/power_curve.pdf",
        png=report(
            "results/power/{analysis}/power_curve.png",
            category="Power",
            subcategory="{analysis}",
            caption="../report/power_curve.rst",
        ),
        table_csv="results/power/{analysis}/power_table.csv",
        table_md=report(
            "results/power/{analysis}/power_table.md",
            category="Power",
            subcategory="{analysis}",
            caption="../report/power_table.rst",
        ),
        sentences="results/power/{analysis}/sentences.md",
    log:
        "results/logs/power/{analysis}/report.log",
    wildcard_constraints:
        analysis=POWER_NAMES,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=attempt_scaled(BASE_MEM_MB),
        runtime=attempt_scaled(10),
    params:
        name=lambda wildcards: wildcards.analysis,
        description=lambda wildcards: POWER_ANALYSES[wildcards.analysis].get(
            "description", ""
        ),
        points=lambda wildcards: [
            {k: int(v) for k, v in row.items()}
            for row in power_points(wildcards.analysis).to_dict("records")
        ],
        alpha=lambda wildcards: float(
            POWER_ANALYSES[wildcards.analysis].get("alpha", 0.05)
        ),
        adjust=lambda wildcards: POWER_ANALYSES[wildcards.analysis].get(
            "adjust", "none"
        ),
        factor_levels=lambda wildcards: power_factor_levels(wildcards.analysis),
    script:
        "../../scripts/power_report.py"


rule power_summary:
    input:
        unpack(power_summary_inputs),
    output:
        md=report(
            "results/power/summary.md",
            category="Power",
            caption="../report/power_summary.rst",
        ),
    log:
        "results/logs/power/summary.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=attempt_scaled(500),
        runtime=attempt_scaled(5),
    params:
        power=lambda wildcards: power_entries(),
        in_run=POWER_IN_RUN,
    script:
        "../../scripts/power_summary.py"


rule power:
    input:
        POWER_OUTPUTS,
    localrule: True
