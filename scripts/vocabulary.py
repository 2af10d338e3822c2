"""Snakemake entry point: runs resistance_outcomes.pipeline.vocabulary_step."""

from resistance_outcomes.pipeline import run_step, vocabulary_step

run_step(vocabulary_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
