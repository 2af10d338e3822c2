"""Snakemake entry point: runs resistance_outcomes.pipeline.provenance_step."""

from resistance_outcomes.pipeline import provenance_step, run_step

run_step(provenance_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
