rule ingest:
    input:
        unpack(raw_inputs),
    output:
        clients="results/data/clients.parquet",
        sessions="results/data/sessions.parquet",
        codes="results/data/codes.parquet",
        coding_log="results/data/coding_log.parquet",
        report=report(
            "results/validation/report.md",
            category="Data",
            caption="../report/validation.rst",
        ),
        json="results/validation/report.json",
        quarantine="results/validation/quarantine.csv",
    log:
        "results/logs/ingest.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=input_mem_mb(20),
        runtime=attempt_scaled(30),
    params:
        config=INGEST_CONFIG,
        config_file=CONFIG_FILE,
    script:
        "../../scripts/ingest.py"


rule vocabulary:
    input:
        clients="results/data/clients.parquet",
        sessions="results/data/sessions.parquet",
        codes="results/data/codes.parquet",
        coding_log="results/data/coding_log.parquet",
        codebook=config["codebook"],
        frameworks=config["frameworks"],
    output:
        json="results/data/vocabulary.json",
    log:
        "results/logs/vocabulary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=attempt_scaled(BASE_MEM_MB),
        runtime=attempt_scaled(5),
    params:
        labels=config.get("labels", {}),
        profile=(config.get("descriptives") or {}).get("profile"),
        config_file=CONFIG_FILE,
        # the keys the stage "responses" reads (editing the window reruns no vocabulary)
        rupture_responses={
            key: value
            for key, value in (config.get("rupture_responses") or {}).items()
            if key != "window"
        },
        repair_threshold=(config.get("coding") or {}).get("repair_threshold", 4),
    script:
        "../../scripts/vocabulary.py"
