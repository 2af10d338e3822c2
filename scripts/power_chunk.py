"""Snakemake entry point of rule power_chunk: see pipeline.power_chunk_step."""

from resistance_outcomes.pipeline import power_chunk_step, run_step

run_step(power_chunk_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
