"""Snakemake entry point: runs resistance_outcomes.pipeline.figure_response_odds_step."""

from resistance_outcomes.pipeline import figure_response_odds_step, run_step

run_step(figure_response_odds_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
