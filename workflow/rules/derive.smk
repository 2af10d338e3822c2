rule derive:
    input:
        clients="results/data/clients.parquet",
        sessions="results/data/sessions.parquet",
        vocabulary="results/data/vocabulary.json",
    output:
        clients="results/derived/client_table.parquet",
        sessions="results/derived/session_table.parquet",
        person_period="results/derived/person_period.parquet",
    log:
        "results/logs/derive.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(30),
    params:
        dropout=config["dropout"],
        repair_rate_without_ruptures=config.get("repair_rate_without_ruptures", "nan"),
    script:
        "../../scripts/derive.py"


rule rupture_segments:
    input:
        codes="results/data/codes.parquet",
        clients="results/data/clients.parquet",
        session_table="results/derived/session_table.parquet",
        codebook=config["codebook"],
    output:
        table="results/derived/rupture_segments.parquet",
        info="results/derived/rupture_segments.json",
    log:
        "results/logs/rupture_segments.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(30),
    params:
        rupture_responses=config.get("rupture_responses"),
        repair_threshold=(config.get("coding") or {}).get("repair_threshold", 4),
        config_file=CONFIG_FILE,
    script:
        "../../scripts/rupture_segments.py"
