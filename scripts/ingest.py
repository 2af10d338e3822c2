"""Snakemake entry point: runs resistance_outcomes.pipeline.ingest_step."""

from resistance_outcomes.pipeline import ingest_step, run_step

run_step(ingest_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
