"""Snakemake entry point: runs resistance_outcomes.pipeline.influence_step."""

from resistance_outcomes.pipeline import influence_step, run_step

run_step(influence_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
