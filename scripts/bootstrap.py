"""Snakemake entry point of rule bootstrap: see pipeline.bootstrap_step."""

from resistance_outcomes.pipeline import bootstrap_step, run_step

run_step(bootstrap_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
