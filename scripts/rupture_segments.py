"""Snakemake entry point: runs resistance_outcomes.pipeline.rupture_segments_step."""

from resistance_outcomes.pipeline import run_step, rupture_segments_step

run_step(rupture_segments_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
