"""Snakemake entry point: runs resistance_outcomes.pipeline.publication_tables_step."""

from resistance_outcomes.pipeline import publication_tables_step, run_step

run_step(publication_tables_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
