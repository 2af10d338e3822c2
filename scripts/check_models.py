"""Snakemake entry point of rule check_models: see
resistance_outcomes.pipeline.check_models_step."""

from resistance_outcomes.pipeline import check_models_step, run_step

run_step(check_models_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
