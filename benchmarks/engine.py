"""Benchmark of the GLMM engine on three simulated designs of realistic size.

Cases (all data simulated here, seeded):

a  dropout: 100,000 clients in 2,000 therapists, ``dropout ~ x + (1 | therapist)``,
   binomial; therapist SD 0.69 on the logit scale (Saxon et al. 2017), about 20% dropout.
b  rupture counts: 72,000 sessions of 6,000 clients in 300 therapists,
   ``ruptures ~ x + offset(log(minutes)) + (1 | therapist/client)``, Poisson.
c  as b with 1,200,000 sessions, 100,000 clients and 2,000 therapists.

For each case the script prints the wall time of ``fit_mixed`` (design matrices and fit;
the simulation is excluded), the estimates next to the truth, and the peak resident
memory of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes the
simulated data). With ``--case all`` every case runs in its own process so that each
peak is its own.

Usage::

    python benchmarks/engine.py --case all
    python benchmarks/engine.py --case c --seed 3
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from resistance_outcomes.models import fit_mixed

CASES = {
    "a": {"clients": 100_000, "therapists": 2_000},
    "b": {"sessions": 72_000, "clients": 6_000, "therapists": 300},
    "c": {"sessions": 1_200_000, "clients": 100_000, "therapists": 2_000},
}
TRUTH = {
    "a": {"(Intercept)": -1.6, "x": 0.4, "sd_therapist": 0.69},
    "b": {"(Intercept)": -4.4, "x": 0.3, "sd_therapist": 0.3, "sd_client": 0.5},
}
TRUTH["c"] = TRUTH["b"]


def simulate_dropout(clients: int, therapists: int, seed: int) -> pd.DataFrame:
    """Client-level dropout with a therapist random intercept (simulated data)."""
    rng = np.random.default_rng(seed)
    truth = TRUTH["a"]
    therapist = np.arange(clients) % therapists
    x = rng.normal(size=clients)
    eta = (
        truth["(Intercept)"]
        + truth["x"] * x
        + rng.normal(0.0, truth["sd_therapist"], therapists)[therapist]
    )
    return pd.DataFrame(
        {
            "dropout": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))),
            "x": x,
            "therapist": pd.Categorical(therapist),
        }
    )


def simulate_ruptures(
    sessions: int, clients: int, therapists: int, seed: int, truth: dict
) -> pd.DataFrame:
    """Session-level rupture counts, clients nested in therapists (simulated data)."""
    rng = np.random.default_rng(seed)
    client = np.arange(sessions) % clients
    therapist = client % therapists
    minutes = rng.uniform(40.0, 60.0, sessions)
    x = rng.normal(size=sessions)
    eta = (
        truth["(Intercept)"]
        + truth["x"] * x
        + np.log(minutes)
        + rng.normal(0.0, truth["sd_therapist"], therapists)[therapist]
        + rng.normal(0.0, truth["sd_client"], clients)[client]
    )
    return pd.DataFrame(
        {
            "ruptures": rng.poisson(np.exp(eta)),
            "x": x,
            "minutes": minutes,
            "therapist": pd.Categorical(therapist),
            "client": pd.Categorical(client),
        }
    )


def run_case(case: str, seed: int) -> dict:
    """Simulate one case, fit it, and return timings, estimates and peak memory."""
    if case == "a":
        data = simulate_dropout(**CASES["a"], seed=seed)
        formula, family = "dropout ~ x + (1 | therapist)", "binomial"
    else:
        data = simulate_ruptures(**CASES[case], seed=seed, truth=TRUTH[case])
        formula = "ruptures ~ x + offset(log(minutes)) + (1 | therapist/client)"
        family = "poisson"
    started = time.perf_counter()
    fit = fit_mixed(formula, data, family=family)
    seconds = time.perf_counter() - started
    vc = fit.variance_components
    return {
        "case": case,
        "rows": len(data),
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "converged": fit.converged,
        "estimates": dict(zip(fit.design.fixed_names, np.round(fit.beta, 4).tolist(), strict=True)),
        "sd": dict(zip(vc["group"], np.round(vc["sd"], 4).tolist(), strict=True)),
        "truth": TRUTH[case],
        "optimizer_iterations": fit.extra.get("optimizer_iterations"),
        "engine_seconds": round(fit.extra.get("total_seconds", np.nan), 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["a", "b", "c", "all"], default="all")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.case == "all":
        for case in "abc":
            subprocess.run(
                [sys.executable, __file__, "--case", case, "--seed", str(args.seed)], check=True
            )
        return
    print(run_case(args.case, args.seed), flush=True)


if __name__ == "__main__":
    main()
