"""Snakemake entry point: runs resistance_outcomes.pipeline.session_descriptives_step."""

from resistance_outcomes.pipeline import run_step, session_descriptives_step

run_step(session_descriptives_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
