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
    params:
        dropout=config["dropout"],
        repair_rate_without_ruptures=config.get("repair_rate_without_ruptures", "nan"),
    script:
        "../../scripts/derive.py"
