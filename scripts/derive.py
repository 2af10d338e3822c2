"""Snakemake entry point: runs resistance_outcomes.pipeline.derive_step."""

from resistance_outcomes.pipeline import derive_step, run_step

run_step(derive_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
