"""Simulation study of the GLMM engine: bias and 95% CI coverage of the fixed effects.

Two designs with known truth (all data simulated here, seeded):

poisson
    Rupture counts in sessions of clients of therapists (three levels):
    ``ruptures ~ x + cognitive + offset(log(minutes)) + (1 | therapist/client)``, Poisson.
    ``x`` varies by session, ``cognitive`` (0/1) by client; the rate is per minute.
binomial
    Dropout of clients of therapists (two levels):
    ``dropout ~ x + cognitive + (1 | therapist)``, binomial; therapist SD 0.69 on the
    logit scale (Saxon et al. 2017).

For each fixed effect the study reports the mean estimate, the bias, the empirical SD of
the estimates, the mean model-based SE, bias / empirical SD, and the share of Wald 95%
intervals that contain the truth, with its Monte Carlo standard error.

Usage::

    python benchmarks/simulation_study.py --replicates 1000 --seed 2024
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from resistance_outcomes.models import fit_mixed

DESIGNS = {
    "poisson": {
        "formula": "ruptures ~ x + cognitive + offset(log(minutes)) + (1 | therapist/client)",
        "family": "poisson",
        "sizes": {"therapists": 60, "clients": 10, "sessions": 8},
        "beta": {"(Intercept)": -4.0, "x": 0.3, "cognitive": -0.4},
        "sd": {"therapist": 0.3, "client": 0.5},
    },
    "binomial": {
        "formula": "dropout ~ x + cognitive + (1 | therapist)",
        "family": "binomial",
        "sizes": {"therapists": 100, "clients": 30},
        "beta": {"(Intercept)": -1.4, "x": 0.5, "cognitive": 0.4},
        "sd": {"therapist": 0.69},
    },
}


def simulate(design: str, rng: np.random.Generator, sizes: dict | None = None) -> pd.DataFrame:
    """One simulated data set of a design (sizes may be overridden)."""
    spec = DESIGNS[design]
    sizes = {**spec["sizes"], **(sizes or {})}
    beta, sd = spec["beta"], spec["sd"]
    n_ther, n_cli = sizes["therapists"], sizes["therapists"] * sizes["clients"]
    client_therapist = np.repeat(np.arange(n_ther), sizes["clients"])
    cognitive = rng.integers(0, 2, n_cli)
    u_ther = rng.normal(0.0, sd["therapist"], n_ther)
    if design == "binomial":
        x = rng.normal(size=n_cli)
        eta = (
            beta["(Intercept)"]
            + beta["x"] * x
            + beta["cognitive"] * cognitive
            + u_ther[client_therapist]
        )
        return pd.DataFrame(
            {
                "dropout": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))),
                "x": x,
                "cognitive": cognitive,
                "therapist": client_therapist.astype(str),
            }
        )
    client = np.repeat(np.arange(n_cli), sizes["sessions"])
    n = client.size
    x = rng.normal(size=n)
    minutes = rng.uniform(40.0, 60.0, n)
    eta = (
        beta["(Intercept)"]
        + beta["x"] * x
        + beta["cognitive"] * cognitive[client]
        + np.log(minutes)
        + u_ther[client_therapist[client]]
        + rng.normal(0.0, sd["client"], n_cli)[client]
    )
    return pd.DataFrame(
        {
            "ruptures": rng.poisson(np.exp(eta)),
            "x": x,
            "cognitive": cognitive[client],
            "minutes": minutes,
            "therapist": client_therapist[client].astype(str),
            "client": client.astype(str),
        }
    )


def replicate_fits(
    design: str, replicates: int, seed: int, sizes: dict | None = None
) -> pd.DataFrame:
    """Fit ``replicates`` simulated data sets; one row per replicate and term."""
    spec = DESIGNS[design]
    rows = []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(replicates)):
        data = simulate(design, np.random.default_rng(child), sizes)
        fit = fit_mixed(spec["formula"], data, family=spec["family"])
        coef = fit.coefficients
        rows.append(
            coef.assign(replicate=i, converged=fit.converged)[
                ["replicate", "term", "estimate", "std_error", "ci_low", "ci_high", "converged"]
            ]
        )
    return pd.concat(rows, ignore_index=True)


def summarise(fits: pd.DataFrame, design: str) -> pd.DataFrame:
    """Bias, bias / empirical SD and 95% CI coverage per fixed effect."""
    truth = pd.Series(DESIGNS[design]["beta"], name="truth")
    fits = fits.join(truth, on="term")
    fits["covered"] = (fits["ci_low"] <= fits["truth"]) & (fits["truth"] <= fits["ci_high"])
    grouped = fits.groupby("term", sort=False)
    out = pd.DataFrame(
        {
            "truth": grouped["truth"].first(),
            "mean_estimate": grouped["estimate"].mean(),
            "empirical_sd": grouped["estimate"].std(ddof=1),
            "mean_model_se": grouped["std_error"].mean(),
            "coverage": grouped["covered"].mean(),
            "replicates": grouped.size(),
            "converged": grouped["converged"].mean(),
        }
    )
    out["bias"] = out["mean_estimate"] - out["truth"]
    out["bias_over_sd"] = out["bias"] / out["empirical_sd"]
    out["coverage_mc_se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["replicates"])
    return out.reset_index()[
        [
            "term",
            "truth",
            "mean_estimate",
            "bias",
            "empirical_sd",
            "mean_model_se",
            "bias_over_sd",
            "coverage",
            "coverage_mc_se",
            "replicates",
            "converged",
        ]
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--design", choices=["poisson", "binomial", "all"], default="all")
    args = parser.parse_args(argv)
    designs = list(DESIGNS) if args.design == "all" else [args.design]
    for design in designs:
        started = time.perf_counter()
        table = summarise(replicate_fits(design, args.replicates, args.seed), design)
        print(
            f"\n{design}: {DESIGNS[design]['formula']} "
            f"({args.replicates} replicates, seed {args.seed}, "
            f"{time.perf_counter() - started:.0f} s)"
        )
        print(table.to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
