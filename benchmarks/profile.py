"""Benchmark of profile-likelihood intervals on the example's rupture-frequency model.

The model is the example's ``rupture_frequency`` (config/config.yaml):
``ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)``,
negative binomial (NB2). Its rows are either

* ``--frame results/models/rupture_frequency/model_frame.csv`` (with ``spec.json`` beside
  it): the model frame of a finished run of the example (``make run``), exactly the rows
  fitted there (3,372 attended sessions, 360 clients, 45 therapists); or
* without ``--frame``: a design of the example's size built with
  :func:`resistance_outcomes.power.session_design` (3 frameworks x 15 therapists x 8
  clients x 12 planned sessions, minutes from Normal(50, 5)), its response drawn from the
  example's estimates (``benchmarks/power.py``'s ``RUPTURE_TRUTH``), seeded.

The script times the fit and then the profile of every parameter (two SDs, the NB size
and six fixed effects: :meth:`MixedResult.confint` with ``method="profile"``), each in
wall and CPU time (``time.process_time``: on a shared machine the wall time includes
waiting for a core), prints the intervals, the peak resident memory of the process
(``ru_maxrss``) and the 1-minute load average. With ``--r`` it writes the same rows to a
temporary CSV and times glmmTMB's ``confint(fit, method = "profile")`` (fixed effects and
the log SDs) and ``confint(fit, method = "profile", parm = "disp_")`` (the log size) with
``Rscript``: glmmTMB's profile has to be asked for the dispersion separately; lme4 cannot
profile an NB2 GLMM with its size free (``glmer.nb`` holds the size fixed).

Usage::

    python benchmarks/profile.py --frame results/models/rupture_frequency/model_frame.csv --r
    python benchmarks/profile.py --seed 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from resistance_outcomes.models import fit_mixed
from resistance_outcomes.power import session_design, truth_result

FORMULA = "ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)"
FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
SIZE = {"therapists_per_framework": 15, "clients_per_therapist": 8, "planned_sessions": 12}
# the example's rupture_frequency estimates, rounded (as benchmarks/power.py's)
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
R_SCRIPT = """
suppressMessages(library(glmmTMB))
d <- read.csv("{csv}")
d$framework <- factor(d$framework, levels = c({levels}))
d$therapist <- factor(d$therapist); d$client <- factor(d$client)
t_fit <- system.time(fit <- glmmTMB({formula}, d, family = nbinom2))
t_prof <- system.time(ci <- confint(fit, method = "profile"))
t_disp <- system.time(cd <- confint(fit, method = "profile", parm = "disp_"))
print(rbind(ci, cd), digits = 6)
cpu <- function(t) t[["user.self"]] + t[["sys.self"]]
cat(sprintf(paste("R: glmmTMB %s, fit %.1f s (CPU %.1f s), profile %.1f s (CPU %.1f s)",
                  "+ dispersion %.1f s (CPU %.1f s)\\n"),
            packageVersion("glmmTMB"), t_fit[["elapsed"]], cpu(t_fit), t_prof[["elapsed"]],
            cpu(t_prof), t_disp[["elapsed"]], cpu(t_disp)))
"""


def example_frame(path: str | None, seed: int) -> tuple[pd.DataFrame, str]:
    """The model frame: a finished run's, or a design of the example's size."""
    if path:
        from resistance_outcomes.analysis import read_model_frame

        spec = json.loads((Path(path).parent / "spec.json").read_text(encoding="utf-8"))
        return read_model_frame(path, spec), f"model frame {path}"
    rows = session_design(FRAMEWORKS, **SIZE, minutes=50.0, minutes_sd=5.0, seed=seed)
    truth = truth_result_for(rows)
    rows["ruptures"] = truth.simulate(nsim=1, seed=seed)["sim_1"].to_numpy()
    return rows, f"simulated design of the example's size (seed {seed})"


def truth_result_for(rows: pd.DataFrame):
    from resistance_outcomes.models import build_design

    design = build_design(FORMULA, rows.assign(ruptures=0))  # the response is drawn
    return truth_result(design, "negative_binomial", RUPTURE_TRUTH)


def time_r(frame: pd.DataFrame) -> str:
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "frame.csv"
        frame.to_csv(csv, index=False)
        levels = ", ".join(f'"{level}"' for level in frame["framework"].cat.categories)
        script = R_SCRIPT.format(csv=csv, levels=levels, formula=FORMULA)
        done = subprocess.run(
            ["Rscript", "-e", script], capture_output=True, text=True, check=False
        )
        return done.stdout + done.stderr


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frame", help="a run's results/models/rupture_frequency/model_frame.csv")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--r", action="store_true", help="also time glmmTMB's profile")
    args = parser.parse_args(argv)
    frame, source = example_frame(args.frame, args.seed)
    if "ruptures" not in frame:
        raise SystemExit("the model frame has no ruptures column")
    frame["framework"] = pd.Categorical(frame["framework"], categories=FRAMEWORKS)
    print(
        f"{source}: {len(frame)} rows, {frame['client'].nunique()} clients, "
        f"{frame['therapist'].nunique()} therapists"
    )
    load_before = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    fit = fit_mixed(FORMULA, frame, family="negative_binomial")
    fitted, cpu_fitted = time.perf_counter(), time.process_time()
    table = fit.confint(method="profile")
    profiled, cpu_profiled = time.perf_counter(), time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns=["group", "note"]).to_string(float_format="%.5g"))
    notes = sorted({n for note in table["note"] for n in str(note).split("; ") if n})
    for note in notes:
        print("note:", note)
    print(
        f"Python: fit {fitted - started:.2f} s (CPU {cpu_fitted - cpu_started:.2f} s), "
        f"profile of {len(table)} rows {profiled - fitted:.2f} s (CPU "
        f"{cpu_profiled - cpu_fitted:.2f} s), peak memory {peak:.0f} MiB, 1-minute load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    if args.r:
        print(time_r(frame))
    sys.stdout.flush()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
