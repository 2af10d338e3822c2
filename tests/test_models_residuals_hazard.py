"""Simulated residuals of discrete-time hazard models fitted to person-period rows.

Person-period rows exist only while a client is at risk: each client's rows end at the
first event (or at the last session before the planned end). Clients of therapists with
high random effects leave early and contribute fewer rows, so simulations that draw new
random effects (the unconditional default) simulate too many events on the rows that
remain, and the uniformity (KS) test rejects correctly specified models. Simulations that
keep the random effects' conditional modes are valid (near the nominal level).

A simulation with known truth shows both: person-period rows of a planned design
(:func:`resistance_outcomes.power.person_period_design`), events drawn from a
discrete-time hazard GLMM with a therapist random intercept
(:func:`resistance_outcomes.power.simulate_responses`), attrition at the first event
(:func:`resistance_outcomes.power.apply_attrition`), the true model refitted, and the KS
rejection rate at .05 under both simulations. Replicate i is seeded by
``SeedSequence(seed, spawn_key=(i,))``.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from test_models_residuals import MODEL_FILES

from resistance_outcomes.models import build_design, fit_mixed
from resistance_outcomes.models.residuals import (
    diagnostics_record,
    simulation_choice,
    uniformity_test,
)
from resistance_outcomes.power import (
    apply_attrition,
    person_period_design,
    replicate_rng,
    simulate_responses,
    truth_result,
)

LONG = pytest.mark.long
FORMULA = "event ~ log_time + (1 | therapist)"
ALPHA = 0.05


def _truth(sd: float) -> dict:
    """Per-session hazard about 9% at session 1, falling with log(time); therapist SD."""
    return {"fixed": {"(Intercept)": -2.0, "log_time": -0.3}, "sd": {"therapist": sd}}


def _plan(therapists: int = 30, clients: int = 8, planned_sessions: int = 12):
    return person_period_design(["a"], therapists, clients, planned_sessions=planned_sessions)


def _residual_seed(seed: int, replicate: int) -> int:
    return int(np.random.SeedSequence(seed, spawn_key=(replicate,)).generate_state(1)[0])


def _rates(pvalues: dict[bool, list[float]], excess: dict[bool, list[float]]) -> dict:
    """KS rejection rate at ALPHA, its Monte Carlo SE, and the mean ratio of simulated to
    observed events, under each simulation (True: conditional modes)."""
    out = {}
    for conditional, p in pvalues.items():
        p = np.asarray(p)
        rate = float(np.mean(p < ALPHA))
        out[conditional] = {
            "rate": rate,
            "se": float(np.sqrt(max(rate * (1 - rate), ALPHA * (1 - ALPHA)) / p.size)),
            "excess": float(np.mean(excess[conditional])),
        }
    return out


def _refitted_rates(replicates: int, sd: float, nsim: int = 250, seed: int = 12) -> dict:
    """The true model refitted to each replicate's at-risk rows; KS of its simulated
    residuals with new random effects (False) and with the conditional modes (True)."""
    plan = _plan()
    events = simulate_responses(FORMULA, plan, "binomial", _truth(sd), replicates, seed=seed)
    pvalues, excess = {False: [], True: []}, {False: [], True: []}
    for i in range(replicates):
        rows = apply_attrition(plan, events[f"sim_{i + 1}"].to_numpy())
        fit = fit_mixed(FORMULA, rows, family="binomial")
        for conditional in (False, True):
            res = fit.simulated_residuals(
                nsim, seed=_residual_seed(seed, i), conditional=conditional
            )
            pvalues[conditional].append(uniformity_test(res).loc[0, "p_value"])
            excess[conditional].append(res.simulations.sum(axis=0).mean() / res.observed.sum())
    return _rates(pvalues, excess)


def _true_model_rates(replicates: int, sd: float, nsim: int = 250, seed: int = 13) -> dict:
    """No fit: the true parameters and each replicate's true therapist effects. Kept, the
    simulations are exact, so the KS test rejects at its nominal rate; drawn anew, the rate
    rises just as with the refitted model (the selection, not estimation, is the cause)."""
    plan = _plan()
    full = truth_result(build_design(FORMULA, plan.assign(event=0)), "binomial", _truth(sd))
    pvalues, excess = {False: [], True: []}, {False: [], True: []}
    for i in range(replicates):
        rng = replicate_rng(seed, i)
        b = full.new_random_effects(rng)
        drawn = replace(full, b=b).simulate(1, seed=rng, use_re=True)["sim_1"].to_numpy()
        rows = apply_attrition(plan, drawn)
        design = build_design(FORMULA, rows)
        assert design.q == full.design.q  # every therapist keeps rows (session 1 always)
        model = replace(truth_result(design, "binomial", _truth(sd)), b=b)
        for conditional in (False, True):
            res = model.simulated_residuals(
                nsim, seed=_residual_seed(seed, i), conditional=conditional
            )
            pvalues[conditional].append(uniformity_test(res).loc[0, "p_value"])
            excess[conditional].append(res.simulations.sum(axis=0).mean() / res.observed.sum())
    return _rates(pvalues, excess)


def _report(what: str, rates: dict) -> None:
    for conditional, r in rates.items():
        how = "conditional modes" if conditional else "new random effects"
        print(
            f"{what}, {how}: KS rejection {r['rate']:.3f} (MC SE {r['se']:.3f}), "
            f"simulated / observed events {r['excess']:.3f}"
        )


# Measured (test_hazard_residuals_rejection_rates_many, 1,000 replicates each, 13 min on
# a shared 2-core machine), KS rejection rate at .05, 30 therapists x 8 clients x 12
# planned sessions (about 1,600 at-risk rows), nsim 250; MC SE sqrt(p (1 - p) / 1000):
#   refitted, therapist SD 1.2: new random effects .732 (MC SE .014), conditional modes
#     .034 (MC SE .006); simulated / observed events 1.43 and 0.99
#   refitted, therapist SD 0.8: new .201 (MC SE .013), conditional .036 (MC SE .006);
#     events 1.19 and 0.98
#   true parameters and effects, SD 1.2: new .774 (MC SE .013), conditional .060 (MC SE
#     .008); events 1.48 and 1.00
# The conditional modes are valid (exact with the true effects; somewhat below the nominal
# level once the parameters are estimated, as for the other families in
# test_models_residuals.py); new random effects are not, the less so the more the
# therapists differ.


def test_conditional_simulation_is_valid_for_person_period_rows_and_unconditional_is_not():
    rates = _refitted_rates(replicates=100, sd=1.2)
    _report("refitted, SD 1.2", rates)
    conditional, unconditional = rates[True], rates[False]
    assert conditional["rate"] <= ALPHA + 3 * conditional["se"]
    assert abs(conditional["excess"] - 1) < 0.05  # the events the rows hold
    assert unconditional["rate"] >= 0.5  # measured .732 (MC SE .014)
    assert unconditional["excess"] > 1.25  # far too many events simulated (measured 1.43)


def test_conditional_simulation_with_the_true_effects_is_exact():
    rates = _true_model_rates(replicates=120, sd=1.2)
    _report("truth, SD 1.2", rates)
    assert abs(rates[True]["rate"] - ALPHA) <= 3 * rates[True]["se"]
    assert rates[False]["rate"] >= 0.5  # measured .774 (MC SE .013)


@pytest.mark.slow
@LONG
def test_hazard_residuals_rejection_rates_many():
    strong = _refitted_rates(replicates=1000, sd=1.2)
    weak = _refitted_rates(replicates=1000, sd=0.8)
    truth = _true_model_rates(replicates=1000, sd=1.2)
    for what, rates in (("refitted, SD 1.2", strong), ("refitted, SD 0.8", weak),
                        ("truth, SD 1.2", truth)):  # fmt: skip
        _report(what, rates)
    for rates in (strong, weak):
        assert rates[True]["rate"] <= ALPHA + 3 * rates[True]["se"]
    assert abs(truth[True]["rate"] - ALPHA) <= 3 * truth[True]["se"]
    assert strong[False]["rate"] >= 0.6 and truth[False]["rate"] >= 0.6
    assert weak[False]["rate"] >= 0.1 and weak[False]["rate"] > weak[True]["rate"]


# --------------------------------------------------------------------------- the choice


def test_at_risk_rows_are_simulated_conditionally_whatever_was_requested():
    for requested in (False, True):
        conditional, reason = simulation_choice(requested, at_risk_rows=True)
        assert conditional is True and "at risk" in reason
    assert simulation_choice(False) == (False, "as requested")
    assert simulation_choice(True) == (True, "as requested")


def test_diagnostics_record_names_the_simulation_and_its_reason():
    plan = _plan(6, 4, 6)
    rows = apply_attrition(plan, simulate_responses(FORMULA, plan, "binomial", _truth(0.5),
                                                    seed=3)["sim_1"].to_numpy())  # fmt: skip
    fit = fit_mixed(FORMULA, rows, family="binomial")
    conditional, reason = simulation_choice(False, at_risk_rows=True)
    record = diagnostics_record(
        fit.simulated_residuals(50, seed=1, conditional=conditional), simulation_reason=reason
    )
    assert record["conditional"] is True
    assert record["random_effects"] == "conditional modes kept"
    assert record["simulation_reason"] == reason


# --------------------------------------------------------------------------- the model step

DROPOUT = {"primary": "judged", "definitions": {"judged": {"rule": "end_status"}}}


def _study_files(folder, seed: int = 5) -> dict:
    """Canonical and derived tables of a study whose clients attend until a dropout drawn
    from the hazard model (therapist SD 1.2) or the planned end, as parquet files."""
    import pandas as pd

    from resistance_outcomes import derive

    planned = 8
    plan = _plan(12, 6, planned)
    events = simulate_responses(FORMULA, plan, "binomial", _truth(1.2), seed=seed)["sim_1"]
    rows = apply_attrition(plan, events.to_numpy())
    last = rows.groupby("client").agg(session=("session", "max"), event=("event", "max"))
    clients = (
        plan.drop_duplicates("client")[["study", "client", "therapist", "framework"]]
        .assign(planned_sessions=planned)
        .merge(last, left_on="client", right_index=True)
    )
    clients["end_status"] = np.where(clients["event"] == 1, "dropout", "completed")
    attended = np.where(clients["event"] == 1, clients["session"], planned)
    sessions = pd.DataFrame(
        {
            "study": "planned",
            "client": np.repeat(clients["client"].to_numpy(), attended),
            "session": np.concatenate([np.arange(1, k + 1) for k in attended]),
        }
    ).assign(attended=True, minutes=50.0, ruptures=0, repaired=0)
    clients = clients.drop(columns=["session", "event"]).reset_index(drop=True)
    tables = {
        "clients": clients,
        "sessions": sessions,
        "session_table": derive.session_table(sessions, clients),
        "client_table": derive.client_table(sessions, clients, DROPOUT["definitions"],
                                            primary="judged"),
    }  # fmt: skip
    paths = {}
    for key, table in tables.items():
        paths[key] = folder / f"{key}.parquet"
        table.to_parquet(paths[key])
    return paths


@pytest.fixture(scope="module")
def hazard_folders(tmp_path_factory):
    """A dropout-hazard model (person-period rows) and a client-level dropout model, each
    written by the model step with the configured diagnostics conditional: false."""
    from types import SimpleNamespace

    from resistance_outcomes.pipeline import model_step

    root = tmp_path_factory.mktemp("hazard")
    inputs = SimpleNamespace(**_study_files(root))
    entries = {
        "dropout_hazard": {"data": "person_period", "family": "binomial", "formula": FORMULA},
        "dropout_clients": {"data": "clients", "family": "binomial",
                            "formula": "dropout ~ 1 + (1 | therapist)"},
    }  # fmt: skip
    folders = {}
    for name, entry in entries.items():
        folder = root / name
        output = {key: folder / file for key, file in MODEL_FILES.items()}
        params = SimpleNamespace(
            name=name, entry=entry, dropout=DROPOUT, adjust="holm",
            diagnostics={"nsim": 100, "seed": 7, "conditional": False},
        )  # fmt: skip
        model_step(input=inputs, output=output, params=params)
        folders[name] = folder
    return folders


def test_model_step_simulates_person_period_models_conditionally(hazard_folders):
    import json

    from resistance_outcomes.pipeline import model_diagnostic_settings

    hazard = json.loads((hazard_folders["dropout_hazard"] / "diagnostics.json").read_text())
    assert hazard["assessed"] and hazard["conditional"] is True
    assert hazard["random_effects"] == "conditional modes kept"
    assert hazard["simulation_reason"] == simulation_choice(at_risk_rows=True)[1]
    clients = json.loads((hazard_folders["dropout_clients"] / "diagnostics.json").read_text())
    assert clients["assessed"] and clients["conditional"] is False
    assert clients["random_effects"] == "drawn anew in each simulation"
    assert clients["simulation_reason"] == "as requested"
    # the choice is one function of the model's data level
    settings = {"nsim": 250, "seed": 1, "conditional": False}
    for data, at_risk in [("person_period", True), ("clients", False), ("sessions", False)]:
        spec = SimpleNamespace(data=data)
        assert model_diagnostic_settings(settings, spec) == {**settings, "at_risk_rows": at_risk}
    assert model_diagnostic_settings(None, SimpleNamespace(data="person_period")) is None


def test_figure_and_summary_name_the_simulation(hazard_folders, tmp_path):
    from snakemake.iocontainers import Namedlist

    from resistance_outcomes import figures, summary
    from resistance_outcomes.pipeline import _simulated_diagnostics, figure_diagnostics_step
    from resistance_outcomes.results import read_model_folder

    folder = hazard_folders["dropout_hazard"]
    keys = ("spec", "fit", "residuals", "random_effects", "simulated_residuals", "diagnostics")
    inputs = Namedlist(fromdict={key: str(folder / MODEL_FILES[key]) for key in keys})
    output = {"pdf": tmp_path / "d.pdf", "png": tmp_path / "d.png"}
    figure_diagnostics_step(input=inputs, output=Namedlist(fromdict=output))
    assert (tmp_path / "d.png").stat().st_size > 10_000
    table, tests, simulation = _simulated_diagnostics(inputs)
    assert simulation == "conditional modes kept"
    import pandas as pd

    fig = figures.plot_model_diagnostics(
        pd.read_csv(folder / "residuals.csv"), family="binomial", simulated=table,
        tests=tests, simulation=simulation,
    )  # fmt: skip
    assert fig.axes[0].texts[-1].get_text() == "Random effects: conditional modes kept"

    analyses = [read_model_folder(f) for f in hazard_folders.values()]
    text = "\n".join(summary._flag_section(analyses))
    assert "(100 simulations per observation)" in text
    assert (
        "Each simulation draws new random effects, except for Dropout hazard, whose rows "
        "exist only while a client is at risk: there the conditional modes are kept."
    ) in text
    only = "\n".join(summary._flag_section(analyses[:1]))
    assert "The simulations keep the random effects' conditional modes." in only
    others = "\n".join(summary._flag_section(analyses[1:]))
    assert "Each simulation draws new random effects." in others
