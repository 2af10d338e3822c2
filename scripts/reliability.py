"""Snakemake entry point: runs resistance_outcomes.pipeline.reliability_step."""

from resistance_outcomes.pipeline import reliability_step, run_step

run_step(reliability_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
