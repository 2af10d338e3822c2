rule table1:
    input:
        clients="results/derived/client_table.parquet",
        sessions="results/derived/session_table.parquet",
        vocabulary="results/data/vocabulary.json",
    output:
        csv=report(
            "results/tables/table1.csv",
            category="Descriptives",
            caption="../report/table1.rst",
        ),
        md="results/tables/table1.md",
    log:
        "results/logs/table1.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    params:
        dropout=config["dropout"],
        min_cell=config["tables"]["min_cell"],
    script:
        "../../scripts/table1.py"


rule session_descriptives:
    input:
        sessions="results/derived/session_table.parquet",
        vocabulary="results/data/vocabulary.json",
    output:
        rupture_rate=report(
            "results/descriptives/rupture_rate_by_session.csv",
            category="Descriptives",
            caption="../report/rupture_rate_table.rst",
        ),
        profile=report(
            "results/descriptives/profile.csv",
            category="Descriptives",
            caption="../report/profile_table.rst",
        ),
    log:
        "results/logs/session_descriptives.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(10),
    params:
        min_cell=config["tables"]["min_cell"],
    script:
        "../../scripts/session_descriptives.py"
