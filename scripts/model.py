"""Snakemake entry point of rules model and sensitivity_variant: see
resistance_outcomes.pipeline.model_step."""

from resistance_outcomes.pipeline import model_step, run_step

run_step(model_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
