"""Benchmark of the parametric bootstrap on the example's client-level dropout design.

The design and truth are those of benchmarks/power.py case ii (3 frameworks x 15
therapists x 8 clients, 360 rows, ``dropout ~ framework + (1 | therapist)``, binomial,
the example's framework log odds ratios and therapist SD). One data set is drawn from the
truth (replicate 0 of ``--seed``), the model is fitted to it, and ``--replicates``
bootstrap refits (:func:`resistance_outcomes.models.bootstrap.parametric_bootstrap`, with
the pairwise framework contrasts) are timed on ``--jobs`` worker processes, then the
percentile intervals. Printed: wall time, per replicate, worker CPU per replicate
(``RUSAGE_CHILDREN``), failed and singular refits, peak memory of this process and of the
largest worker, the load average before and after.

``--r`` also writes the data set to a CSV and times lme4's
``bootMer(fit, FUN, nsim, type = "parametric", use.u = FALSE)`` with Rscript on it
(``FUN`` returns the fixed effects and the therapist SD; ``--r-replicates`` of them, and
the time scaled to ``--replicates`` when fewer).

Usage::

    python benchmarks/bootstrap.py                   # 1,000 refits on 2 jobs
    python benchmarks/bootstrap.py --replicates 200 --jobs 2 --r --r-replicates 200
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from power import CASES, FRAMEWORKS, SIZE  # noqa: E402

from resistance_outcomes.models import fit_mixed  # noqa: E402
from resistance_outcomes.models.bootstrap import (  # noqa: E402
    bootstrap_intervals,
    bootstrap_parameters,
    parametric_bootstrap,
)
from resistance_outcomes.power import client_design, simulate_responses  # noqa: E402

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$framework <- factor(d$framework, levels = c({levels}))
d$therapist <- factor(d$therapist)
fit <- glmer(dropout ~ framework + (1 | therapist), data = d, family = binomial)
f <- function(m) c(fixef(m), sd = sqrt(VarCorr(m)$therapist[1]))
set.seed(1)
t0 <- proc.time()
b <- bootMer(fit, f, nsim = as.integer(args[2]), type = "parametric", use.u = FALSE)
el <- proc.time() - t0
cat(sprintf("R_ELAPSED %.3f\nR_USER %.3f\n", el[["elapsed"]], el[["user.self"]]))
cat(sprintf("R_FAILED %d\n", sum(!complete.cases(b$t))))
print(apply(b$t, 2, quantile, c(0.025, 0.975), na.rm = TRUE))
"""


def _rss_mb(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--r", action="store_true", help="time lme4's bootMer too")
    parser.add_argument("--r-replicates", type=int, default=1000)
    args = parser.parse_args(argv)

    case = CASES["ii"]
    rows = client_design(FRAMEWORKS, **SIZE)
    y = simulate_responses(case["formula"], rows, "binomial", case["truth"], 1, args.seed)
    data = rows.assign(dropout=y["sim_1"].to_numpy())
    fit = fit_mixed(case["formula"], data, family="binomial")
    contrasts = {"pairwise": "framework"}

    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    boot = parametric_bootstrap(
        fit, args.replicates, args.seed, n_jobs=args.jobs, contrasts=contrasts
    )
    table = bootstrap_intervals(boot, bootstrap_parameters(fit, contrasts))
    wall = time.perf_counter() - began
    load_after = os.getloadavg()[0]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = children.ru_utime + children.ru_stime
    per_replicate = boot.groupby("replicate")[["failed", "singular"]].first()
    print(f"formula: {case['formula']} (binomial), {len(data)} rows")
    print(
        f"replicates {args.replicates} on {args.jobs} jobs: wall {wall:.1f} s, "
        f"{1000 * wall / args.replicates:.1f} ms per replicate"
    )
    if args.jobs > 1:
        print(f"worker CPU per replicate: {1000 * worker_cpu / args.replicates:.1f} ms")
    print(
        f"failed refits {int(per_replicate['failed'].sum())}, singular "
        f"{int(per_replicate['singular'].sum())}"
    )
    print(
        f"peak memory: main {_rss_mb(resource.RUSAGE_SELF):.0f} MB, largest worker "
        f"{_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB"
    )
    print(f"load average (1 min) before {load_before:.2f}, after {load_after:.2f}")
    print(
        table[["parameter", "estimate", "ci_low", "ci_high", "replicates"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )

    if args.r:
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "dropout.csv"
            data[["therapist", "framework", "dropout"]].to_csv(csv, index=False)
            script = Path(tmp) / "boot.R"
            levels = ", ".join(f'"{f}"' for f in FRAMEWORKS)
            script.write_text(R_SCRIPT.replace("{levels}", levels))
            out = subprocess.run(
                ["Rscript", str(script), str(csv), str(args.r_replicates)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        values = dict(line.split()[:2] for line in out.splitlines() if line.startswith("R_"))
        elapsed = float(values["R_ELAPSED"])
        scale = args.replicates / args.r_replicates
        print(
            f"lme4 bootMer, {args.r_replicates} refits: {elapsed:.1f} s elapsed "
            f"(user {float(values['R_USER']):.1f} s), {1000 * elapsed / args.r_replicates:.1f}"
            f" ms per refit; failed {values['R_FAILED']}"
            + (f"; scaled to {args.replicates}: {elapsed * scale:.1f} s" if scale != 1 else "")
        )
        print(out[out.index("R_FAILED") :].split("\n", 1)[1])


if __name__ == "__main__":
    main()
