"""Write the second shipped study (SIMULATED DATA) into this folder.

A study shaped unlike the embedded example, to show that the workflow runs on what a lab
has: two sites, 12 therapists, 96 clients; clients in an SPSS file with value labels and
user-defined missing values; construct counts supplied as session columns under the lab's
own names (no code table, no double coding, no Miller resistance coding); its own
constructs (sustain talk, homework not done); two frameworks plus an `other` group;
"-99" and "NA" as missing-value codes. A second route (`codes.csv`) gives the same
sessions as a long code table with the lab's own codes and coder role words.

Run from the repository root: ``.venv/bin/python resources/second_study/generate.py``.
Every value is drawn from the generating model below with a fixed seed, so rerunning it
rewrites the same files; ``truth.json`` states the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

HERE = Path(__file__).resolve().parent
SEED = 91127

#: Treatments as recorded (SPSS value labels) -> their framework in this study's map.
TREATMENTS = {1: "Psychodynamic psychotherapy", 2: "CBT", 3: "Interpersonal therapy"}
STATUS = {1: "finished", 2: "dropped out", 3: "still in treatment", 4: "referred on"}

TRUTH = {
    "simulated": True,
    "design": {
        "sites": 2,
        "therapists_per_site": 6,
        "clients_per_therapist": 8,
        "planned_sessions": [8, 12],
        "treatment_of_therapist": "therapists 1-5 of each site psychodynamic (1) or CBT (2) "
        "alternately, therapist 6 interpersonal therapy (3)",
    },
    "ruptures": {
        "model": "withdrawal ~ Poisson(exp(b0 + b_tx + log(minutes / 50) + u_client)), "
        "confrontation likewise with its own intercepts",
        "withdrawal_log_rate": {"1": -0.4, "2": -1.1, "3": -0.8},
        "confrontation_log_rate": {"1": -1.3, "2": -0.7, "3": -1.0},
        "client_sd": 0.4,
    },
    "repair": {"p_repaired_per_rupture": {"1": 0.55, "2": 0.65, "3": 0.6}},
    "sustain_talk": {"log_rate": {"1": 0.2, "2": 0.5, "3": 0.3}, "per_session_slope": -0.05},
    "homework_noncompliance": {"log_rate": {"1": -1.2, "2": -0.4, "3": -0.9}},
    "dropout": {
        "model": "per attended session: logit h = a + 0.6 * unrepaired ruptures + v_therapist",
        "a": -3.4,
        "unrepaired_log_odds": 0.6,
        "therapist_sd": 0.5,
    },
    "missing": {
        "minutes": "-99 in 4% of attended sessions (not recorded)",
        "bdi": "SPSS user-missing -99 for 6 clients; NA strings in the sessions file "
        "for 3% of sustain-talk counts (not coded)",
    },
}


def simulate(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    clients, sessions, codes = [], [], []
    number = 0
    for site in (1, 2):
        for t in range(1, 7):
            therapist = f"S{site}-TH{t:02d}"
            tx = 3 if t == 6 else (1 if t % 2 else 2)
            v = rng.normal(0.0, TRUTH["dropout"]["therapist_sd"])
            for _ in range(8):
                number += 1
                pid = f"P{site}{number:03d}"
                planned = int(rng.choice(TRUTH["design"]["planned_sessions"]))
                bdi = int(np.clip(rng.normal(24, 7), 5, 55))
                u = rng.normal(0.0, TRUTH["ruptures"]["client_sd"])
                ended, visit, dropped = False, 0, False
                while visit < planned and not ended:
                    visit += 1
                    came = rng.random() > 0.1
                    row = {"pid": pid, "visit": visit, "came": int(came)}
                    if came:
                        mins = int(np.clip(rng.normal(50, 6), 30, 70))
                        offset = np.log(mins / 50)
                        wd = rng.poisson(
                            np.exp(TRUTH["ruptures"]["withdrawal_log_rate"][str(tx)] + offset + u)
                        )
                        cf = rng.poisson(
                            np.exp(
                                TRUTH["ruptures"]["confrontation_log_rate"][str(tx)] + offset + u
                            )
                        )
                        p_rep = TRUTH["repair"]["p_repaired_per_rupture"][str(tx)]
                        rep = rng.binomial(wd + cf, p_rep)
                        st_rate = TRUTH["sustain_talk"]["log_rate"][str(tx)] + offset
                        st_rate += TRUTH["sustain_talk"]["per_session_slope"] * (visit - 6)
                        st = rng.poisson(np.exp(st_rate))
                        hw = rng.poisson(
                            np.exp(TRUTH["homework_noncompliance"]["log_rate"][str(tx)])
                        )
                        row.update(
                            mins="-99" if rng.random() < 0.04 else str(mins),
                            wd=wd,
                            cf=cf,
                            rep=rep,
                            st="NA" if rng.random() < 0.03 else str(st),
                            hw_nc=hw,
                        )
                        codes += _code_rows(pid, visit, wd, cf, rep, st, rng)
                        logit = TRUTH["dropout"]["a"] + v
                        logit += TRUTH["dropout"]["unrepaired_log_odds"] * (wd + cf - rep)
                        if visit < planned and rng.random() < 1 / (1 + np.exp(-logit)):
                            ended = dropped = True
                    else:
                        row.update(mins="", wd="", cf="", rep="", st="", hw_nc="")
                    sessions.append(row)
                if dropped:
                    status = 2
                elif visit == planned:
                    status = 1 if rng.random() > 0.05 else 4
                else:
                    status = 3
                if rng.random() < 0.08 and status == 1 and visit == planned:
                    status = 3  # still in treatment at the data cut
                clients.append(
                    {
                        "pid": pid,
                        "ther": therapist,
                        "site": f"Site {site}",
                        "tx": tx,
                        "planned": planned,
                        "status": status,
                        "bdi": -99 if rng.random() < 0.06 else bdi,
                    }
                )
    return pd.DataFrame(clients), pd.DataFrame(sessions), pd.DataFrame(codes)


def _code_rows(pid, visit, wd, cf, rep, st, rng) -> list[dict]:
    """The same session as a long code table: one row per unit and code, lab's own codes."""
    rows, unit = [], 0
    kinds = ["WDR"] * wd + ["CFR"] * cf
    repaired = set(rng.choice(len(kinds), size=rep, replace=False).tolist()) if rep else set()
    for i, kind in enumerate(kinds):
        unit += 1
        rows.append(
            {"pid": pid, "visit": visit, "seg": unit, "rater": "R1", "duty": "main", "tag": kind}
        )
        if i in repaired:
            rows.append(
                {
                    "pid": pid,
                    "visit": visit,
                    "seg": unit,
                    "rater": "R1",
                    "duty": "main",
                    "tag": "REP",
                }
            )
    st = int(st) if str(st).isdigit() else 0
    for _ in range(st):
        unit += 1
        rows.append(
            {"pid": pid, "visit": visit, "seg": unit, "rater": "R1", "duty": "main", "tag": "SUST"}
        )
    if rows and rng.random() < 0.15:  # a second rater checks some sessions
        rows += [{**row, "rater": "R2", "duty": "check"} for row in rows if rng.random() < 0.92]
    return rows


def main() -> None:
    rng = np.random.default_rng(SEED)
    clients, sessions, codes = simulate(rng)
    pyreadstat.write_sav(
        clients,
        HERE / "clients.sav",
        column_labels={
            "pid": "Participant ID",
            "ther": "Therapist",
            "site": "Site",
            "tx": "Treatment received",
            "planned": "Sessions planned",
            "status": "Status at end of study",
            "bdi": "BDI-II at intake",
        },
        variable_value_labels={"tx": TREATMENTS, "status": STATUS},
        missing_ranges={"bdi": [-99]},
    )
    sessions.to_csv(HERE / "sessions.csv", index=False, lineterminator="\n")
    codes.to_csv(HERE / "codes.csv", index=False, lineterminator="\n")
    (HERE / "truth.json").write_text(json.dumps(TRUTH, indent=2) + "\n", encoding="utf-8")
    print(f"{len(clients)} clients, {len(sessions)} sessions, {len(codes)} code rows")


if __name__ == "__main__":
    main()
