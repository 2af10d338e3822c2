"""Snakemake entry point of rule bootstrap_chunk: see pipeline.bootstrap_chunk_step."""

from resistance_outcomes.pipeline import bootstrap_chunk_step, run_step

run_step(bootstrap_chunk_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
