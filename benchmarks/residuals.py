"""Benchmark of simulated (DHARMa) residuals on the example's rupture_frequency model.

The model is refitted from the folder a finished run of the example wrote
(``results/models/rupture_frequency``: ``spec.json`` and ``model_frame.csv``, read back
with :func:`resistance_outcomes.analysis.read_model_frame`; not timed). Then
``MixedResult.simulated_residuals(nsim, seed)`` is timed (``nsim`` simulated responses per
session with new random effects, the PIT residuals and the four tests), ``--repeats``
times; the script prints the wall times, the peak memory that call allocates
(``tracemalloc``) and the peak resident memory of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes the interpreter, the
libraries and the data).

With ``--r`` it also times R on the same data (``Rscript``, R is not a dependency of the
project): the model refitted by ``glmmTMB`` (``nbinom2``) and by ``lme4::glmer.nb`` (fits
not timed), then ``simulate(fit, nsim)`` and the residual step written in base R (the
shares below and at-or-below, a uniform draw between them), as DHARMa computes it.

Usage::

    make run                                   # once: the example's results
    python benchmarks/residuals.py             # or --nsim 250 --repeats 5 --seed 1
    python benchmarks/residuals.py --r         # with the R times
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

from resistance_outcomes.analysis import fit_model, parse_model_spec, read_model_frame

R_SCRIPT = r"""
suppressMessages({library(lme4); library(glmmTMB)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); nsim <- as.integer(args[2]); repeats <- as.integer(args[3])
fw <- strsplit(args[4], ",")[[1]]
d$framework <- factor(d$framework, levels = fw)
d$therapist <- factor(d$therapist); d$client <- factor(d$client)
f <- ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)
pit <- function(sims, y) {
  lower <- rowMeans(sims < y); upper <- rowMeans(sims <= y)
  ifelse(lower != upper, runif(length(y), lower, upper), lower)
}
time_it <- function(fit, label) {
  for (k in seq_len(repeats)) {
    set.seed(k)
    t_sim <- system.time(s <- as.matrix(simulate(fit, nsim = nsim)))[["elapsed"]]
    t_pit <- system.time(r <- pit(s, d$ruptures))[["elapsed"]]
    cat(sprintf("%s simulate %.3f pit %.3f total %.3f\n", label, t_sim, t_pit, t_sim + t_pit))
  }
}
t_fit <- system.time(tmb <- glmmTMB(f, data = d, family = nbinom2))[["elapsed"]]
cat(sprintf("glmmTMB fit %.2f\n", t_fit))
time_it(tmb, "glmmTMB")
t_fit <- system.time(nb <- glmer.nb(f, data = d))[["elapsed"]]
cat(sprintf("glmer.nb fit %.2f\n", t_fit))
time_it(nb, "lme4")
"""


def load_fit(folder: Path):
    """The example's model refitted from its folder (spec.json, model_frame.csv)."""
    spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    entry = {key: spec[key] for key in ("data", "formula", "family") if key in spec}
    frame = read_model_frame(folder / "model_frame.csv", spec)
    return fit_model(parse_model_spec(folder.name, entry), frame), frame, spec


def time_python(fit, nsim: int, repeats: int, seed: int) -> None:
    print(f"rows {fit.design.n}, nsim {nsim}")
    for k in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        res = fit.simulated_residuals(nsim, seed=seed + k)
        tests = res.tests()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"engine simulated residuals + tests {elapsed:.3f} s, peak allocated "
              f"{peak / 2**20:.1f} MiB")  # fmt: skip
    print(tests[["test", "statistic", "p_value"]].to_string(index=False))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the process {peak_rss:.0f} MiB")


def time_r(frame, spec, nsim: int, repeats: int) -> None:
    levels = spec["factor_levels"]["framework"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "frame.csv"
        frame.to_csv(data, index=False)
        script = Path(tmp) / "bench.R"
        script.write_text(R_SCRIPT, encoding="utf-8")
        out = subprocess.run(
            ["Rscript", str(script), str(data), str(nsim), str(repeats), ",".join(levels)],
            capture_output=True,
            text=True,
            check=False,
        )
    print(out.stdout, end="")
    if out.returncode:
        print(out.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", default="results/models/rupture_frequency")
    parser.add_argument("--nsim", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--r", action="store_true", help="also time glmmTMB and lme4")
    args = parser.parse_args()
    fit, frame, spec = load_fit(Path(args.folder))
    time_python(fit, args.nsim, args.repeats, args.seed)
    if args.r:
        time_r(frame, spec, args.nsim, args.repeats)


if __name__ == "__main__":
    main()
