"""Snakemake entry point of rule table1: see resistance_outcomes.pipeline.table1_step."""

from resistance_outcomes.pipeline import table1_step, run_step

run_step(table1_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
