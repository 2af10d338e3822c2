"""Benchmark of the mixed-model engine on seven simulated designs of realistic size.

Cases (all data simulated here, seeded):

a  dropout: 100,000 clients in 2,000 therapists, ``dropout ~ x + (1 | therapist)``,
   binomial; therapist SD 0.69 on the logit scale (Saxon et al. 2017), about 20% dropout.
b  rupture counts: 72,000 sessions of 6,000 clients in 300 therapists,
   ``ruptures ~ x + offset(log(minutes)) + (1 | therapist/client)``, Poisson.
c  as b with 1,200,000 sessions, 100,000 clients and 2,000 therapists.
d  binary responses of 316 subjects to 24 items, fully crossed (7,584 rows), six fixed
   effects (intercept; ``x`` and ``cond`` by row, ``age`` and ``group`` by subject,
   ``freq`` by item), ``y ~ x + cond + age + group + freq + (1 | subject) + (1 | item)``.
e  as d with a correlated random slope of ``x`` on items, ``(1 | subject) + (1 + x | item)``.
f  binary, 1,934 rows in 60 groups of unequal size (9 to 87 rows), six fixed effects
   (``x``, ``z`` and ``w`` by row, ``u`` and ``v`` by group),
   ``y ~ x + z + w + u + v + (1 + x | group)``.
g  linear, 73,421 ratings of 1,128 instructors by 2,972 students in 14 departments (the
   shape of lme4's ``InstEval``: each student rates a few instructors, most of them in the
   student's own department; unbalanced), ``y ~ x + service + (1 | s) + (1 | d) +
   (1 | dept)``, REML.

For each case the script prints the wall time of ``fit_mixed`` (design matrices and fit;
the simulation is excluded) and its CPU time (``time.process_time``), the estimates next
to the truth, the log-likelihood (REML log-likelihood for case g) and the peak resident
memory of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes the
simulated data). With ``--case all`` every case runs in its own process so that each
peak is its own.

``--write-csv DIR`` also writes each case's simulated data to ``DIR/case_<case>.csv``
(for ``benchmarks/engine_r.R``, which fits the same data with glmmTMB and lme4).

Usage::

    python benchmarks/engine.py --case all
    python benchmarks/engine.py --case c --seed 3
    python benchmarks/engine.py --case all --write-csv DIR
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

from resistance_outcomes.models import fit_mixed

CASES = {
    "a": {"clients": 100_000, "therapists": 2_000},
    "b": {"sessions": 72_000, "clients": 6_000, "therapists": 300},
    "c": {"sessions": 1_200_000, "clients": 100_000, "therapists": 2_000},
    "d": {"subjects": 316, "items": 24},
    "e": {"subjects": 316, "items": 24},
    "f": {"rows": 1_934, "groups": 60},
    "g": {"rows": 73_421, "students": 2_972, "instructors": 1_128, "departments": 14},
}
TRUTH = {
    "a": {"(Intercept)": -1.6, "x": 0.4, "sd_therapist": 0.69},
    "b": {"(Intercept)": -4.4, "x": 0.3, "sd_therapist": 0.3, "sd_client": 0.5},
}
TRUTH["c"] = TRUTH["b"]
CROSSED_FIXED = {
    "(Intercept)": -0.3,
    "x": 0.5,
    "cond": -0.4,
    "age": 0.25,
    "group": 0.3,
    "freq": -0.35,
}
TRUTH["d"] = {**CROSSED_FIXED, "sd_subject": 0.8, "sd_item": 0.5}
TRUTH["e"] = {
    **CROSSED_FIXED,
    "sd_subject": 0.8,
    "sd_item": 0.5,
    "sd_item_x": 0.4,
    "corr_item": 0.3,
}
TRUTH["f"] = {
    "(Intercept)": 0.2,
    "x": 0.6,
    "z": -0.3,
    "w": 0.4,
    "u": 0.3,
    "v": -0.5,
    "sd_group": 0.7,
    "sd_group_x": 0.35,
    "corr_group": -0.4,
}
TRUTH["g"] = {
    "(Intercept)": 3.2,
    "x": 0.1,
    "service": -0.07,
    "sd_s": 0.33,
    "sd_d": 0.52,
    "sd_dept": 0.08,
    "sigma": 1.18,
}
FORMULAS = {
    "a": ("dropout ~ x + (1 | therapist)", "binomial"),
    "b": ("ruptures ~ x + offset(log(minutes)) + (1 | therapist/client)", "poisson"),
    "c": ("ruptures ~ x + offset(log(minutes)) + (1 | therapist/client)", "poisson"),
    "d": ("y ~ x + cond + age + group + freq + (1 | subject) + (1 | item)", "binomial"),
    "e": ("y ~ x + cond + age + group + freq + (1 | subject) + (1 + x | item)", "binomial"),
    "f": ("y ~ x + z + w + u + v + (1 + x | group)", "binomial"),
    "g": ("y ~ x + service + (1 | s) + (1 | d) + (1 | dept)", "gaussian"),
}


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


def _shares(weights: np.ndarray) -> np.ndarray:
    """Weights scaled to sum to 1 (multinomial probabilities)."""
    return weights / weights.sum()


def _correlated_effects(rng, levels: int, sd0: float, sd1: float, corr: float) -> np.ndarray:
    """``levels`` draws of a bivariate normal (intercept, slope) with the given SDs."""
    cov = np.array([[sd0**2, corr * sd0 * sd1], [corr * sd0 * sd1, sd1**2]])
    return rng.multivariate_normal(np.zeros(2), cov, size=levels)


def simulate_crossed_binary(subjects: int, items: int, seed: int, truth: dict) -> pd.DataFrame:
    """Binary responses of every subject to every item (cases d and e, simulated data).

    A random slope of ``x`` on items is drawn when ``truth`` has ``sd_item_x``.
    """
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(subjects), items)
    item = np.tile(np.arange(items), subjects)
    n = subjects * items
    x = rng.normal(size=n)
    cond = rng.binomial(1, 0.5, n)
    age = rng.normal(size=subjects)
    group = (np.arange(subjects) % 2).astype(float)
    freq = rng.normal(size=items)
    u_item = np.column_stack([rng.normal(0.0, truth["sd_item"], items), np.zeros(items)])
    if "sd_item_x" in truth:
        u_item = _correlated_effects(
            rng, items, truth["sd_item"], truth["sd_item_x"], truth["corr_item"]
        )
    eta = (
        truth["(Intercept)"]
        + truth["x"] * x
        + truth["cond"] * cond
        + truth["age"] * age[subject]
        + truth["group"] * group[subject]
        + truth["freq"] * freq[item]
        + rng.normal(0.0, truth["sd_subject"], subjects)[subject]
        + u_item[item, 0]
        + u_item[item, 1] * x
    )
    return pd.DataFrame(
        {
            "y": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))),
            "x": x,
            "cond": cond,
            "age": age[subject],
            "group": group[subject],
            "freq": freq[item],
            "subject": pd.Categorical(subject),
            "item": pd.Categorical(item),
        }
    )


def simulate_slope_binary(rows: int, groups: int, seed: int, truth: dict) -> pd.DataFrame:
    """Binary responses in groups of unequal size with a correlated random slope of ``x``
    (case f, simulated data). Group sizes: at least 6 rows each, the rest allotted in
    proportion to gamma(2) weights."""
    rng = np.random.default_rng(seed)
    sizes = 6 + rng.multinomial(rows - 6 * groups, _shares(rng.gamma(2.0, size=groups)))
    group = np.repeat(np.arange(groups), sizes)
    x = rng.normal(size=rows)
    z = rng.binomial(1, 0.4, rows).astype(float)
    w = rng.uniform(-1.0, 1.0, rows)
    u = rng.normal(size=groups)
    v = rng.binomial(1, 0.5, groups).astype(float)
    effects = _correlated_effects(
        rng, groups, truth["sd_group"], truth["sd_group_x"], truth["corr_group"]
    )
    eta = (
        truth["(Intercept)"]
        + truth["x"] * x
        + truth["z"] * z
        + truth["w"] * w
        + truth["u"] * u[group]
        + truth["v"] * v[group]
        + effects[group, 0]
        + effects[group, 1] * x
    )
    return pd.DataFrame(
        {
            "y": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))),
            "x": x,
            "z": z,
            "w": w,
            "u": u[group],
            "v": v[group],
            "group": pd.Categorical(group),
        }
    )


def simulate_ratings(
    rows: int, students: int, instructors: int, departments: int, seed: int, truth: dict
) -> pd.DataFrame:
    """Ratings of instructors by students, three crossed factors (case g, simulated data).

    Every instructor belongs to one department and every student to a home department;
    a student rates between 1 and a few dozen distinct instructors (1 + multinomial
    with gamma(1.5) weights), each drawn from the home department with probability 0.75,
    otherwise from all instructors, instructors weighted by gamma(1) popularity. Every
    student, instructor and department occurs at least once.
    """
    rng = np.random.default_rng(seed)
    dept_of = np.r_[np.arange(departments), rng.integers(0, departments, instructors - departments)]
    home = rng.integers(0, departments, students)
    popularity = rng.gamma(1.0, size=instructors) + 0.05
    counts = 1 + rng.multinomial(rows - students, _shares(rng.gamma(1.5, size=students)))
    counts = np.minimum(counts, instructors // 2)
    counts[0] += rows - counts.sum()  # the cap moved a few rows; the total stays ``rows``
    by_dept = [np.flatnonzero(dept_of == k) for k in range(departments)]
    s_col, d_col = [], []
    for student in range(students):
        local = np.zeros(instructors)
        local[by_dept[home[student]]] = popularity[by_dept[home[student]]]
        p = 0.75 * local / local.sum() + 0.25 * popularity / popularity.sum()
        chosen = rng.choice(instructors, size=counts[student], replace=False, p=p)
        s_col.append(np.full(counts[student], student))
        d_col.append(chosen)
    s, d = np.concatenate(s_col), np.concatenate(d_col)
    missing = np.setdiff1d(np.arange(instructors), d)
    for instructor in missing:  # give each unrated instructor one rating
        taken = np.bincount(d, minlength=instructors)
        candidates = np.flatnonzero((taken[d] > 1) & ~np.isin(s, s[d == instructor]))
        d[rng.choice(candidates)] = instructor
    n = len(s)
    x = rng.normal(size=n)
    service = rng.binomial(1, 0.4, n).astype(float)
    y = (
        truth["(Intercept)"]
        + truth["x"] * x
        + truth["service"] * service
        + rng.normal(0.0, truth["sd_s"], students)[s]
        + rng.normal(0.0, truth["sd_d"], instructors)[d]
        + rng.normal(0.0, truth["sd_dept"], departments)[dept_of[d]]
        + rng.normal(0.0, truth["sigma"], n)
    )
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "service": service,
            "s": pd.Categorical(s),
            "d": pd.Categorical(d),
            "dept": pd.Categorical(dept_of[d]),
        }
    )


def simulate_case(case: str, seed: int) -> pd.DataFrame:
    """The simulated data of one case."""
    if case == "a":
        return simulate_dropout(**CASES["a"], seed=seed)
    if case in "bc":
        return simulate_ruptures(**CASES[case], seed=seed, truth=TRUTH[case])
    if case in "de":
        return simulate_crossed_binary(**CASES[case], seed=seed, truth=TRUTH[case])
    if case == "f":
        return simulate_slope_binary(**CASES[case], seed=seed, truth=TRUTH[case])
    return simulate_ratings(**CASES[case], seed=seed, truth=TRUTH[case])


def run_case(case: str, seed: int, csv_dir: str | None = None) -> dict:
    """Simulate one case, fit it, and return timings, estimates and peak memory."""
    data = simulate_case(case, seed)
    if csv_dir is not None:
        data.to_csv(os.path.join(csv_dir, f"case_{case}.csv"), index=False)
    formula, family = FORMULAS[case]
    started, cpu_started = time.perf_counter(), time.process_time()
    fit = fit_mixed(formula, data, family=family)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    vc = fit.variance_components
    return {
        "case": case,
        "rows": len(data),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "converged": fit.converged,
        "estimates": dict(zip(fit.design.fixed_names, np.round(fit.beta, 4).tolist(), strict=True)),
        "sd": {
            (g if t == "(Intercept)" or not isinstance(t, str) else f"{g}:{t}"): round(float(sd), 4)
            for g, t, t2, sd in zip(vc["group"], vc["term1"], vc["term2"], vc["sd"], strict=True)
            if not isinstance(t2, str)
        },
        "corr": {
            f"{g}:{t}:{t2}": round(float(c), 4)
            for g, t, t2, c in zip(vc["group"], vc["term1"], vc["term2"], vc["corr"], strict=True)
            if isinstance(t2, str)
        },
        "truth": TRUTH[case],
        "loglik": round(float(fit.loglik), 4),
        "optimizer_iterations": fit.extra.get("optimizer_iterations"),
        "engine_seconds": round(fit.extra.get("total_seconds", np.nan), 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--write-csv", metavar="DIR", help="also write each case's data to DIR/case_<case>.csv"
    )
    args = parser.parse_args(argv)
    if args.write_csv is not None:
        os.makedirs(args.write_csv, exist_ok=True)
    if args.case == "all":
        extra = [] if args.write_csv is None else ["--write-csv", args.write_csv]
        for case in CASES:
            subprocess.run(
                [sys.executable, __file__, "--case", case, "--seed", str(args.seed), *extra],
                check=True,
            )
        return
    print(run_case(args.case, args.seed, args.write_csv), flush=True)


if __name__ == "__main__":
    main()
