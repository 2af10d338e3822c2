"""Benchmark of the power simulation on the example's three study shapes.

Each case builds a planned design of the example's size (3 frameworks x 15 therapists x
8 clients x 12 planned sessions) with :mod:`resistance_outcomes.power`, states a truth
from the example's estimates, and times ``replicates`` simulate-and-refit replicates
on ``--jobs`` worker processes:

i    rupture frequency: one row per planned session (4,320 rows, minutes drawn from
     Normal(50, 5), seeded), ``ruptures ~ framework * session_c + offset(log(minutes)) +
     (1 | therapist/client)``, negative binomial; tested: the pairwise framework
     differences and the slope of ``session_c`` in each framework (the example's
     contrasts), through :func:`~resistance_outcomes.power.power_simulation`.
ii   client-level dropout: one row per client (360 rows), ``dropout ~ framework +
     (1 | therapist)``, binomial; tested: the pairwise framework differences, through
     :func:`~resistance_outcomes.power.power_simulation`.
iii  dropout hazard: person-period rows (sessions 1-11 of each client, 3,960 rows before
     attrition), ``event ~ log_time + framework + (1 | therapist)``, binomial. Each
     replicate draws the events on all rows from the truth, keeps each client's rows up
     to the first event and fits the model to those rows (``power_simulation`` with
     ``attrition=True``: attrition from the hazard itself, so every replicate has its own
     rows and design); tested: the framework and ``log_time`` coefficients.

The wall time covers everything after the design is built: the truth's checks, the
worker processes' start, all draws, refits and tests, and the summary. "Per replicate"
is wall time / replicates (on ``--jobs`` cores); "worker CPU per replicate" is the CPU
time of the worker processes (``resource.getrusage(RUSAGE_CHILDREN)`` user + system) /
replicates, the single-core cost of one replicate. Peak memory is ``ru_maxrss`` of
``RUSAGE_SELF`` (the process that builds the design and gathers the results) and of
``RUSAGE_CHILDREN`` (the largest worker process). With ``--case all`` each case runs in
its own process, so each peak is its own. The machine's 1-minute load average before
and after the timed part is printed too: on a shared machine, wall time exceeds worker
CPU / jobs when other processes take the cores.

The truths are constants copied from a finished run of the example (its
config/config.yaml; results/models/<model>/coefficients.csv, variance_components.csv
and fit.json), rounded; where a case's model leaves out some of the example model's
predictors, the kept coefficients are the example's and the intercept gives the
example's observed outcome rate (see each constant).

Usage::

    python benchmarks/power.py --case all                # 1,000 replicates, 2 jobs
    python benchmarks/power.py --case i --replicates 200 --seed 3 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from resistance_outcomes.models import build_design
from resistance_outcomes.power import (
    apply_attrition,
    client_design,
    person_period_design,
    power_simulation,
    replicate_rng,
    session_design,
    truth_result,
)

# The example's size: frameworks (first = reference, as the example's factor levels),
# therapists per framework, clients per therapist, planned sessions.
FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
SIZE = {"therapists_per_framework": 15, "clients_per_therapist": 8, "planned_sessions": 12}

# (i) results/models/rupture_frequency of the example (negative_binomial, 3,372 attended
# sessions, 360 clients, 45 therapists): coefficients.csv, variance_components.csv, and
# fit.json's nb_theta, rounded to 3 decimals.
RUPTURE_TRUTH = {
    "fixed": {
        "(Intercept)": -4.204,
        "frameworkbehavioral": -0.178,
        "frameworkcognitive": -0.553,
        "session_c": 0.010,
        "frameworkbehavioral:session_c": -0.021,
        "frameworkcognitive:session_c": -0.040,
    },
    "sd": {"therapist:client": 0.424, "therapist": 0.299},
    "theta": 3.647,
}
# (ii) the example's client-level dropout model (repair_retention) also has the repair
# and rupture rates; its framework log odds ratios (0.505, 0.702) and therapist SD (0.725)
# are kept, and the intercept is logit(0.125), the dropout share of the reference
# framework in its model frame (0.147 over all 334 clients).
DROPOUT_TRUTH = {
    "fixed": {
        "(Intercept)": -1.946,
        "frameworkbehavioral": 0.505,
        "frameworkcognitive": 0.702,
    },
    "sd": {"therapist": 0.725},
}
# (iii) the example's dropout_hazard model also has the unrepaired ruptures (within- and
# between-client, 0 at no unrepaired rupture and at the mean); its intercept (-3.853),
# log_time (-0.270) and framework (0.114, 0.313) coefficients and therapist SD (0.656)
# are kept. They give 18.9% dropout over the 11 person-periods (mean of the first 100
# replicates, printed as dropout_share), as the example's 64 dropouts of 360 clients (17.8%).
HAZARD_TRUTH = {
    "fixed": {
        "(Intercept)": -3.853,
        "log_time": -0.270,
        "frameworkbehavioral": 0.114,
        "frameworkcognitive": 0.313,
    },
    "sd": {"therapist": 0.656},
}

CASES = {
    "i": {
        "label": "rupture frequency (NB)",
        "formula": (
            "ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)"
        ),
        "family": "negative_binomial",
        "truth": RUPTURE_TRUTH,
        "test": {"pairwise": "framework", "slopes": ["session_c"]},
    },
    "ii": {
        "label": "client-level dropout (binomial)",
        "formula": "dropout ~ framework + (1 | therapist)",
        "family": "binomial",
        "truth": DROPOUT_TRUTH,
        "test": {"pairwise": "framework"},
    },
    "iii": {
        "label": "dropout hazard, attrition from the hazard (binomial)",
        "formula": "event ~ log_time + framework + (1 | therapist)",
        "family": "binomial",
        "truth": HAZARD_TRUTH,
        "test": ["frameworkbehavioral", "frameworkcognitive", "log_time"],
    },
}


def design(case: str, seed: int) -> pd.DataFrame:
    """The planned rows of a case at the example's size."""
    if case == "i":
        return session_design(FRAMEWORKS, **SIZE, minutes=50.0, minutes_sd=5.0, seed=seed)
    if case == "ii":
        return client_design(FRAMEWORKS, **SIZE)
    return person_period_design(FRAMEWORKS, **SIZE)


def hazard_attrition(spec: dict, rows: pd.DataFrame, replicates: int, seed: int) -> dict:
    """Share of clients who drop out and mean rows kept, over the first ``replicates``
    replicates of the hazard case (the same draws as the timed run; not timed)."""
    result = truth_result(
        build_design(spec["formula"], rows.assign(event=0)), "binomial", spec["truth"]
    )
    clients = rows["client"].nunique()
    shares, kept = [], []
    for i in range(replicates):
        events = result.simulate(nsim=1, seed=replicate_rng(seed, i))["sim_1"].to_numpy()
        table = apply_attrition(rows, events)
        shares.append(table["event"].sum() / clients)
        kept.append(len(table))
    return {
        "dropout_share": round(float(np.mean(shares)), 3),
        "mean_rows_fitted": round(float(np.mean(kept)), 1),
    }


def run_case(case: str, replicates: int, seed: int, jobs: int) -> dict:
    """Time ``replicates`` replicates of one case; timings, fit counts, power and memory."""
    spec = CASES[case]
    rows = design(case, seed)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    table = power_simulation(
        spec["formula"],
        rows,
        spec["family"],
        spec["truth"],
        spec["test"],
        replicates=replicates,
        seed=seed,
        n_jobs=jobs,
        attrition=case == "iii",  # the hazard's own events end each client's rows
    )
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    extra = hazard_attrition(spec, rows, min(replicates, 100), seed) if case == "iii" else {}
    worker_cpu = children.ru_utime + children.ru_stime if jobs > 1 else own.ru_utime
    return {
        "case": case,
        "model": spec["label"],
        "rows": len(rows),
        "replicates": replicates,
        "jobs": jobs,
        "seed": seed,
        "wall_s": round(seconds, 1),
        "s_per_replicate": round(seconds / replicates, 4),
        "worker_cpu_s_per_replicate": round(worker_cpu / replicates, 4),
        # a replicate that fails or is singular counts once, whatever its number of tests
        "failed": int(table["failed"].max()),
        "singular": int(table["singular"].max()),
        "not_converged": int(table["not_converged"].max()),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "peak_rss_self_mib": round(own.ru_maxrss / 1024, 1),
        "peak_rss_worker_mib": round(children.ru_maxrss / 1024, 1) if jobs > 1 else None,
        **extra,
        "power": table[
            ["term", "truth", "power", "power_ci_low", "power_ci_high", "mean_estimate", "coverage"]
        ]
        .round(3)
        .values.tolist(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.case == "all":
        for case in CASES:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--case",
                    case,
                    "--replicates",
                    str(args.replicates),
                    "--seed",
                    str(args.seed),
                    "--jobs",
                    str(args.jobs),
                ],
                check=True,
            )
        return
    print(run_case(args.case, args.replicates, args.seed, args.jobs), flush=True)


if __name__ == "__main__":
    main()
