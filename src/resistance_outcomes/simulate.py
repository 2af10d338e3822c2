"""Simulated coded-session studies with known truth.

`simulate_study` draws a complete example study from a stated generating model: a client
table, one row per scheduled session, and a long segment-level code table (3RS rupture
markers, resolution ratings and strategies; every form of client resistance: overt
(Miller's behaviours), covert, realistic, collusive and disengagement; therapist responses
in rupture segments) in the raw layout a lab would hand over, with lab-style column
names, and the lab's coding log (one row per coded session and coder, with the number of
segments coded). Every generating parameter, the realised summaries and the inter-coder
agreement the coding model implies are kept in ``truth``. `write_study` writes the five
files byte-reproducibly; ``main`` is the ``resistance-outcomes-simulate`` command.

All data made here are SIMULATED; none describe real people.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from resistance_outcomes import __version__

FRAMEWORKS = ("psychoanalytic", "behavioral", "cognitive")
TREATMENT_LABELS = {
    "psychoanalytic": ("PDT", "psychodynamic", "Psychoanalytic ", "STPP"),
    "behavioral": ("ERP", "BA", "behaviour therapy", "Exposure"),
    "cognitive": ("CBT", "REBT", "CT", " cognitive therapy"),
}
WITHDRAWAL_MARKERS = ("W_DEN", "W_MIN", "W_ABS", "W_AVS", "W_DEF", "W_CAS", "W_SCH")
CONFRONTATION_MARKERS = ("C_THE", "C_ACT", "C_PAR", "C_PRO", "C_REJ", "C_DEF", "C_CTL")
REPAIR_STRATEGIES = (
    "R_CLA",
    "R_CHG",
    "R_RAT",
    "R_INV",
    "R_ACK",
    "R_DIS",
    "R_LNK",
    "R_VAL",
    "R_RED",
)
RESOLUTION_RATING = "RES"
#: Forms of resistance -> their types (construct names of the shipped codebook,
#: config/codebook.yaml) -> instrument code. The first form is Miller's four behaviours.
RESISTANCE_FORMS = {
    "resistance_overt": {
        "resistance_arguing": "M_ARG",
        "resistance_interrupting": "M_INT",
        "resistance_denying": "M_DEN",
        "resistance_ignoring": "M_IGN",
    },
    "resistance_covert": {
        "covert_distancing": "CV_DIS",
        "covert_topic_avoidance": "CV_AVT",
        "covert_withdrawal": "CV_WDR",
    },
    "resistance_realistic": {
        "realistic_approach": "RR_APP",
        "realistic_technique": "RR_TEC",
        "realistic_terms": "RR_TRM",
    },
    "resistance_collusive": {
        "collusive_topic_avoidance": "CL_AVT",
        "collusive_fragility": "CL_FRG",
    },
    "resistance_disengagement": {
        "disengagement_cancelling": "D_CAN",
        "disengagement_homework": "D_HWK",
        "disengagement_partial_agreement": "D_PAR",
        "disengagement_dismissing_feedback": "D_FBK",
        "disengagement_action_plan": "D_PLN",
    },
}
#: Resistance type (construct) -> code, over all forms.
RESISTANCE_CODES = {
    construct: code for types in RESISTANCE_FORMS.values() for construct, code in types.items()
}
#: Resistance type (construct) -> its form (construct of the composite).
FORM_OF = {construct: form for form, types in RESISTANCE_FORMS.items() for construct in types}
#: The codebook's composites of all forms and of all responses (names of their session
#: columns, used for the expected agreement on their counts).
RESISTANCE_COMPOSITE = "resistance"
RESPONSES_COMPOSITE = "therapist_responses"
#: Therapist responses to resistance (construct -> code), coded in rupture segments.
THERAPIST_RESPONSES = {
    "response_calm": "T_CLM",
    "response_empathy": "T_EMP",
    "response_reframe": "T_RFR",
    "response_patience": "T_PAT",
    "response_shared_goals": "T_GOL",
    "response_accept_unknown": "T_IDK",
    "response_fewer_questions": "T_FWQ",
    "response_not_pushing": "T_NPS",
    "response_end_refer": "T_REF",
}
CODERS = ("R1", "R2", "R3", "R4")
SEGMENT_MINUTES = 5
MIN_PLANNED_SESSIONS = 8
SESSION_CENTRE = 8.5
SESSION_SCALE = 7.5
OUTPUT_FILES = ("clients.csv", "sessions.csv", "codes.csv", "coding_log.csv", "truth.json")


def _per_minute(rate_per_50_minutes):
    """Log rate per minute of a rate stated per 50-minute session."""
    return math.log(rate_per_50_minutes / 50.0)


def _by_framework(psychoanalytic, behavioral, cognitive):
    return {"psychoanalytic": psychoanalytic, "behavioral": behavioral, "cognitive": cognitive}


def _by_framework_table(table, transform=float):
    """{framework: {key: transform(value)}} from {key: (psychoanalytic, behavioral, cognitive)}."""
    return {
        framework: {key: transform(values[i]) for key, values in table.items()}
        for i, framework in enumerate(FRAMEWORKS)
    }


# Resistance events per 50-minute session, random effects at 0:
# (psychoanalytic, behavioral, cognitive). Signature of each framework (domain.md section 2):
# psychoanalytic more covert and collusive signs, behavioral more realistic resistance to
# techniques and more disengagement, cognitive more arguing and opposition to the approach
# and its terms.
_RESISTANCE_PER_50_MINUTES = {
    "resistance_arguing": (0.30, 0.35, 0.90),
    "resistance_interrupting": (0.25, 0.30, 0.45),
    "resistance_denying": (0.80, 0.50, 0.50),
    "resistance_ignoring": (0.70, 0.85, 0.40),
    "covert_distancing": (0.50, 0.20, 0.25),
    "covert_topic_avoidance": (0.60, 0.25, 0.30),
    "covert_withdrawal": (0.35, 0.15, 0.18),
    "realistic_approach": (0.15, 0.15, 0.35),
    "realistic_technique": (0.18, 0.40, 0.20),
    "realistic_terms": (0.12, 0.12, 0.28),
    "collusive_topic_avoidance": (0.30, 0.15, 0.15),
    "collusive_fragility": (0.25, 0.12, 0.12),
    "disengagement_cancelling": (0.10, 0.20, 0.12),
    "disengagement_homework": (0.06, 0.45, 0.25),
    "disengagement_partial_agreement": (0.25, 0.45, 0.30),
    "disengagement_dismissing_feedback": (0.15, 0.20, 0.25),
    "disengagement_action_plan": (0.12, 0.40, 0.22),
}
# Therapist responses in rupture segments: probability q0 of use when the rupture is not
# resolved, and log odds ratio b of use between resolved and unresolved ruptures
# (logit q1 = logit q0 + b), each (psychoanalytic, behavioral, cognitive).
_RESPONSE_USE_PROB = {
    "response_calm": (0.30, 0.30, 0.30),
    "response_empathy": (0.30, 0.20, 0.25),
    "response_reframe": (0.25, 0.10, 0.20),
    "response_patience": (0.30, 0.15, 0.15),
    "response_shared_goals": (0.10, 0.30, 0.25),
    "response_accept_unknown": (0.20, 0.10, 0.15),
    "response_fewer_questions": (0.15, 0.15, 0.25),
    "response_not_pushing": (0.20, 0.25, 0.15),
    "response_end_refer": (0.10, 0.10, 0.10),
}
_RESPONSE_LOG_OR = {
    "response_calm": (0.3, 0.3, 0.4),
    "response_empathy": (0.9, 0.2, 1.0),
    "response_reframe": (1.1, 0.0, 0.3),
    "response_patience": (0.5, 0.1, 0.1),
    "response_shared_goals": (0.1, 1.1, 0.4),
    "response_accept_unknown": (0.4, 0.0, 0.2),
    "response_fewer_questions": (0.2, 0.2, 0.9),
    "response_not_pushing": (0.3, 0.9, 0.0),
    "response_end_refer": (-0.4, -0.3, -0.5),
}


DEFAULT_PARAMS = {
    # attendance
    "miss_prob": _by_framework(0.08, 0.12, 0.09),
    "minutes_mean": 50.0,
    "minutes_sd": 5.0,
    "minutes_min": 30,
    "minutes_max": 60,
    # ruptures (3RS markers, primary coder)
    "rupture_log_rate": _by_framework(_per_minute(0.70), _per_minute(0.55), _per_minute(0.42)),
    "rupture_session_slope": _by_framework(0.10, -0.10, -0.20),
    "rupture_therapist_sd": 0.3,
    "rupture_client_sd": 0.5,
    "rupture_nb_size": 4.0,
    "withdrawal_prob": _by_framework(0.75, 0.60, 0.45),
    "second_marker_prob": 0.15,
    # repair
    "repair_logit": _by_framework(0.3, 0.5, 0.2),
    "repair_client_sd": 0.8,
    "resolution_probs_repaired": [0.0, 0.0, 0.0, 0.55, 0.45],
    "resolution_probs_unrepaired": [0.2, 0.4, 0.4, 0.0, 0.0],
    "strategy_count_probs": [0.7, 0.3],
    "strategy_weights": _by_framework(
        [1.0, 0.5, 0.5, 2.0, 1.5, 1.0, 2.0, 1.5, 0.5],
        [1.5, 2.0, 2.0, 0.5, 1.0, 0.5, 0.5, 1.0, 1.5],
        [2.0, 1.5, 2.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0],
    ),
    # resistance: every type of every form
    "resistance_log_rate": _by_framework_table(_RESISTANCE_PER_50_MINUTES, _per_minute),
    "resistance_therapist_sd": 0.25,
    "resistance_client_sd": 0.5,
    # therapist responses in rupture segments
    "response_use_prob": _by_framework_table(_RESPONSE_USE_PROB),
    "response_log_or": _by_framework_table(_RESPONSE_LOG_OR),
    # homework
    "homework_set_prob": 0.9,
    "homework_logit": {"behavioral": 0.3, "cognitive": 0.8},
    "homework_client_sd": 1.0,
    # alliance (WAI item mean)
    "alliance_intercept": _by_framework(4.7, 4.9, 4.8),
    "alliance_session_slope": _by_framework(0.25, 0.20, 0.30),
    "alliance_therapist_sd": 0.15,
    "alliance_client_sd": 0.5,
    "alliance_client_slope_sd": 0.15,
    "alliance_residual_sd": 0.35,
    "alliance_unrepaired_penalty": 0.25,
    # post-session questionnaire
    "psq_tension_logit": -2.0,
    "psq_tension_per_rupture": 1.2,
    "psq_client_sd": 0.7,
    "psq_intensity_intercept": 1.8,
    "psq_intensity_per_rupture": 0.6,
    "psq_resolution_intercept": 3.2,
    "psq_resolution_per_repaired": 0.6,
    "psq_resolution_per_unrepaired": -0.8,
    "psq_rating_sd": 0.8,
    # dropout and other endings
    "dropout_logit": _by_framework(-3.6, -3.4, -3.7),
    "dropout_log_session": -0.4,
    "dropout_therapist_sd": 0.69,
    "dropout_per_unrepaired": _by_framework(0.3, 0.5, 0.8),
    "referred_prob": 0.03,
    "ongoing_prob": 0.03,
    # baseline covariate
    "baseline_severity_mean": 15.0,
    "baseline_severity_sd": 4.5,
    # coding and reliability
    "coding_sensitivity": 0.9,
    "coding_false_rupture_prob": 0.01,
    "coding_false_resistance_prob": {
        form: 0.01 if form == "resistance_overt" else 0.003 for form in RESISTANCE_FORMS
    },
    "coding_resolution_equal_prob": 0.8,
}

_SWIFT = "Swift & Greenberg 2012 (dropout 19.7% across 669 studies)"
_REVIEWS = "reviews of rupture research: 41-100% of sessions by observers"
PARAMETER_NOTES = {
    "miss_prob": (
        "attendance",
        "probability that a scheduled session is missed (no-show, rescheduled: the schedule "
        "continues); behavioural highest (missed sessions as non-compliance)",
        "domain.md section 2 (behavioural resistance as non-compliance)",
    ),
    "minutes_mean": ("attendance", "mean length of an attended session (minutes)", None),
    "minutes_sd": ("attendance", "SD of session length before rounding (minutes)", None),
    "minutes_min": ("attendance", "session lengths are clipped to at least this", None),
    "minutes_max": ("attendance", "session lengths are clipped to at most this", None),
    "rupture_log_rate": (
        "ruptures",
        "b0_f: log ruptures per MINUTE at session_c = 0 with random effects at 0 (the "
        "intercept of a model with offset(log(minutes))); psychoanalytic highest, cognitive "
        "lowest",
        "Muran et al. 2009 (fewer ruptures in CBT, direction only); " + _REVIEWS,
    ),
    "rupture_session_slope": (
        "ruptures",
        "b_time_f: change in log rupture rate per unit of session_c",
        None,
    ),
    "rupture_therapist_sd": ("ruptures", "SD of therapist random intercept u (log scale)", None),
    "rupture_client_sd": ("ruptures", "SD of client random intercept w (log scale)", None),
    "rupture_nb_size": ("ruptures", "NB2 size theta: Var = mu + mu^2 / theta", None),
    "withdrawal_prob": (
        "ruptures",
        "probability that a rupture is of withdrawal type (else confrontation)",
        "domain.md section 2 (more withdrawal in psychoanalytic, more confrontation in "
        "cognitive treatments)",
    ),
    "second_marker_prob": (
        "ruptures",
        "probability that a rupture segment carries a second, different marker of the same type",
        None,
    ),
    "repair_logit": (
        "repair",
        "a_f: logit of the probability that a rupture is resolved, client effect at 0",
        "Eubanks, Muran & Safran 2018 (repair common and linked to outcome)",
    ),
    "repair_client_sd": ("repair", "SD of client random intercept r (logit scale)", None),
    "resolution_probs_repaired": (
        "repair",
        "probabilities of resolution ratings 1..5 for a resolved rupture",
        None,
    ),
    "resolution_probs_unrepaired": (
        "repair",
        "probabilities of resolution ratings 1..5 for an unresolved rupture",
        None,
    ),
    "strategy_count_probs": (
        "repair",
        "probabilities that a resolved rupture gets 1 or 2 resolution-strategy codes",
        None,
    ),
    "strategy_weights": (
        "repair",
        "relative weights of the strategies " + ", ".join(REPAIR_STRATEGIES) + " (drawn "
        "without replacement, proportional to weight)",
        None,
    ),
    "resistance_log_rate": (
        "resistance",
        "g_fk: log resistance events per MINUTE by framework and type (keys: the construct "
        "names of config/codebook.yaml; the form of each type under form_of), random effects "
        "at 0 (the intercept of a model with offset(log(minutes))). Framework signatures, "
        "per 50-minute session: psychoanalytic more covert signs (form 1.45 vs 0.60 "
        "behavioral and 0.73 cognitive) and collusive resistance (0.55 vs 0.27); behavioral "
        "more realistic resistance to techniques (0.40 vs 0.18 and 0.20) and disengagement "
        "(form 1.70 vs 0.68 and 1.14; homework not done 0.45, plan not followed 0.40); "
        "cognitive more arguing (0.90 vs 0.30 and 0.35) and opposition to the approach and "
        "its terms (0.35 and 0.28 vs 0.15 and 0.12). The rates are illustrative choices in "
        "the direction the theories predict, not estimates from data",
        "Miller 1999 / TIP 35 (overt behaviours); Ackerman & Hilsenroth 2001 (covert signs); "
        "Rennie 1994 (realistic resistance); domain.md section 2 (defended, covert forms in "
        "psychoanalytic, non-compliance in behavioural, open argument in cognitive "
        "treatments)",
    ),
    "resistance_therapist_sd": (
        "resistance",
        "SD of therapist random intercept u', shared by every resistance type (log scale)",
        None,
    ),
    "resistance_client_sd": (
        "resistance",
        "SD of client random intercept w', shared by every resistance type (log scale)",
        None,
    ),
    "response_use_prob": (
        "responses",
        "q0_fj: probability that therapist response j is coded in a rupture segment whose "
        "rupture is not resolved, by framework (keys: construct names of config/codebook.yaml)",
        "domain.md section 1 (therapist responses recommended for resistance)",
    ),
    "response_log_or": (
        "responses",
        "b_fj: logit(q1_fj) - logit(q0_fj), the log odds ratio of using response j between "
        "resolved and unresolved ruptures; equal to the log odds ratio of resolution for "
        "response j in the rupture-level model (see rupture_model_intercept). Pattern: "
        "reframing (1.1) and empathy (0.9) strongest in psychoanalytic, agreeing goals (1.1) "
        "and not pushing (0.9) in behavioral, empathy (1.0) and fewer questions (0.9) in "
        "cognitive treatments; ending and referring slightly negative (-0.3 to -0.5) "
        "everywhere; several responses near 0 in some frameworks. Illustrative values, not "
        "estimates from data",
        "domain.md sections 1-2 (responses recommended in practice; theories by framework)",
    ),
    "homework_set_prob": (
        "homework",
        "probability that homework was set for an attended session after the client's first "
        "attended session (behavioural and cognitive treatments only)",
        None,
    ),
    "homework_logit": (
        "homework",
        "logit of the probability that set homework was done, client effect at 0; "
        "psychoanalytic treatments set none",
        "domain.md section 2 (homework non-completion as behavioural resistance)",
    ),
    "homework_client_sd": ("homework", "SD of client homework propensity (logit scale)", None),
    "alliance_intercept": ("alliance", "a_f: mean alliance (1-7) at session_c = 0", None),
    "alliance_session_slope": (
        "alliance",
        "c_f: alliance change per unit of session_c",
        None,
    ),
    "alliance_therapist_sd": (
        "alliance",
        "SD of therapist random intercept (about 5% of alliance variance)",
        "Wampold & Brown 2005; Schiefele et al. 2017 (therapist share 5-7%)",
    ),
    "alliance_client_sd": ("alliance", "SD of client random intercept", None),
    "alliance_client_slope_sd": (
        "alliance",
        "SD of client random slope per unit of session_c (independent of the intercept)",
        None,
    ),
    "alliance_residual_sd": ("alliance", "SD of the session-level residual", None),
    "alliance_unrepaired_penalty": (
        "alliance",
        "alliance drop per unrepaired rupture in the same session",
        "Eubanks, Muran & Safran 2018 (r = .29 between repair and outcome)",
    ),
    "psq_tension_logit": (
        "psq",
        "logit of P(client reports tension) in a session without ruptures, client effect at 0",
        "reviews of rupture research: 19-42% of sessions by client report",
    ),
    "psq_tension_per_rupture": ("psq", "increase in that logit per rupture segment", None),
    "psq_client_sd": ("psq", "SD of client reporting propensity (logit scale)", None),
    "psq_intensity_intercept": (
        "psq",
        "intensity = round(intercept + per_rupture * ruptures + N(0, rating_sd^2)), clipped to 1-5",
        None,
    ),
    "psq_intensity_per_rupture": ("psq", "intensity increase per rupture segment", None),
    "psq_resolution_intercept": (
        "psq",
        "resolution = round(intercept + per_repaired * repaired + per_unrepaired * "
        "unrepaired + N(0, rating_sd^2)), clipped to 1-5",
        None,
    ),
    "psq_resolution_per_repaired": ("psq", "resolution change per repaired rupture", None),
    "psq_resolution_per_unrepaired": ("psq", "resolution change per unrepaired rupture", None),
    "psq_rating_sd": ("psq", "SD of the latent noise of intensity and resolution", None),
    "dropout_logit": (
        "dropout",
        "d0_f: logit hazard of leaving after attended session 1 with no unrepaired rupture "
        "and therapist effect 0; calibrated so that about 20% of clients drop out in each "
        "framework (orientation does not moderate dropout overall)",
        _SWIFT,
    ),
    "dropout_log_session": (
        "dropout",
        "d_time: change in logit hazard per unit of log(session_no); early dropout is commoner",
        None,
    ),
    "dropout_therapist_sd": (
        "dropout",
        "SD of therapist random intercept v (logit scale)",
        "Saxon et al. 2017 (therapist logit SD about 0.69, 12.6% of variance)",
    ),
    "dropout_per_unrepaired": (
        "dropout",
        "beta_f: log odds ratio of the hazard per unrepaired rupture in the session just "
        "attended; strongest in cognitive treatments",
        "3RS validation study in CBT (resolution predicted retention, d = .67)",
    ),
    "referred_prob": (
        "end_status",
        "probability that a client is referred on after an attended session",
        None,
    ),
    "ongoing_prob": (
        "end_status",
        "probability that a client's record stops while therapy is ongoing",
        None,
    ),
    "baseline_severity_mean": (
        "baseline",
        "mean of the PHQ-9-like baseline severity (integer, clipped to 5-27); severity enters "
        "no generating equation (its true effect on every outcome is zero)",
        None,
    ),
    "baseline_severity_sd": ("baseline", "SD of baseline severity before rounding", None),
    "coding_sensitivity": (
        "coding",
        "probability that the reliability coder reproduces each code row of the primary "
        "coder (each marker, each resistance event, each strategy and therapist response of "
        "a rupture segment the reliability coder also sees)",
        None,
    ),
    "coding_false_rupture_prob": (
        "coding",
        "probability that the reliability coder codes a rupture (one marker, resolution "
        "rating uniform on 1-5, no strategy) in a segment where the primary coder coded none",
        None,
    ),
    "coding_false_resistance_prob": (
        "coding",
        "probability, per segment and resistance type, that the reliability coder codes a "
        "resistance type the primary coder did not code there, by form: lower for the "
        "rarer forms beyond Miller's four, so that false positives do not swamp their "
        "few true events",
        None,
    ),
    "coding_resolution_equal_prob": (
        "coding",
        "probability that the reliability coder's resolution rating equals the primary "
        "coder's; otherwise it is one point higher or lower with equal probability (always "
        "2 when the primary rated 1, always 4 when the primary rated 5)",
        None,
    ),
}

RULES = (
    "Each therapist practises one framework; each client is treated by one therapist and "
    "gets a treatment label drawn uniformly from the therapist framework's labels.",
    "Planned sessions are uniform on 8..max_sessions; the schedule has one row per planned "
    "session, numbered from 1.",
    f"session_c = (session_no - {SESSION_CENTRE}) / {SESSION_SCALE}: -1 at session 1, +1 at "
    "session 16.",
    f"An attended session is coded in {SEGMENT_MINUTES}-minute segments: minutes // "
    f"{SEGMENT_MINUTES} segments, numbered from 1.",
    "Each rupture occupies its own segment; a rupture count above the number of segments is "
    "capped at the number of segments (see realised.capped_rupture_sessions). Resistance "
    "events of one type likewise occupy distinct segments, with the same cap (events of "
    "different types may share a segment).",
    "Therapist responses are coded only in rupture segments (value 1, in the rupture's own "
    "segment): given whether the rupture is resolved, each response is used independently "
    "with probability q1_fj (resolved) or q0_fj (not resolved). The session's repaired "
    "counts, which drive alliance, PSQ and dropout, do not depend on the responses.",
    "3RS resolution strategies (R_*) are coded only in resolved ruptures; therapist "
    "responses (T_*) in resolved and unresolved ones.",
    "The first k ruptures of a session in random order are the resolved ones, k ~ "
    "Binomial(ruptures, logistic(a_f + r_client)).",
    "Random effects are independent normal draws: per therapist u, u', v and the alliance "
    "intercept; per client w, r, w', homework propensity, alliance intercept and slope and "
    "PSQ propensity.",
    "Dropout hazard: after each attended session s < planned_sessions (and before a "
    "referral or ongoing cut-off) the client leaves with probability logistic(d0_f + d_time "
    "* log(s) + v_therapist + beta_f * unrepaired_s). A client who leaves after session s "
    "has one more scheduled row s + 1, not attended, and end_status dropout. Missed "
    "sessions carry no dropout risk.",
    "Referred and ongoing clients: with the stated probabilities a client is marked in "
    "advance, independently of everything else, with a stop session uniform on "
    "2..planned_sessions - 1; if the client has not dropped out by then the record ends "
    "there with end_status referred or ongoing (independent censoring of the dropout "
    "process).",
    "The last row of a client who did not drop out is attended: a no-show drawn there is "
    "turned into attendance. Missed-session probabilities apply to all other rows.",
    "Alliance (wai) is clipped to 1-7 before rounding to 2 decimals (see "
    "realised.alliance_clipped).",
    "PSQ items are empty for sessions not attended; intensity and resolution are empty when "
    "no tension was reported.",
    "Homework is empty for psychoanalytic clients, for sessions not attended and for a "
    "client's first attended session.",
    "Coders: every attended session has one primary coder drawn uniformly from R1-R4, whose "
    "codes are the generated truth. Each attended session is independently double coded "
    "with probability double_coded_share by a reliability coder drawn uniformly from the "
    "other three. Code rows exist only for codes present; the coding log (coding_log.csv) "
    "has one row per coded session and coder with the number of segments coded, so a coder "
    "who saw nothing in a session is still on record. coding.double_coded_sessions lists "
    "the double-coded sessions too (column-wise: client_id, session_no, primary_coder, "
    "reliability_coder).",
)


class SimulationError(ValueError):
    """A simulation setting is invalid; the message names the setting and the value."""


@dataclass(frozen=True)
class SimulatedStudy:
    """A simulated study in the raw lab layout, with its known truth.

    Attributes
    ----------
    clients, sessions, codes : pandas.DataFrame
        The three raw tables, with the lab-style columns written to ``clients.csv``,
        ``sessions.csv`` and ``codes.csv``.
    coding_log : pandas.DataFrame
        The coding log written to ``coding_log.csv``: one row per coded session and coder
        (``client_id``, ``session_no``, ``coder``, ``coder_role``, ``segments``).
    truth : dict
        Generating parameters, rules, realised summaries and the agreement the coding
        model implies (written to ``truth.json``).
    random_effects : pandas.DataFrame
        The realised therapist and client random effects, one row per client (kept in
        memory only, for checks that need them).
    """

    clients: pd.DataFrame
    sessions: pd.DataFrame
    codes: pd.DataFrame
    coding_log: pd.DataFrame
    truth: dict
    random_effects: pd.DataFrame = field(repr=False)


# --------------------------------------------------------------------------- settings


def _merge_params(params):
    """DEFAULT_PARAMS updated by ``params`` (nested dictionaries are updated key by key)."""
    merged = copy.deepcopy(DEFAULT_PARAMS)
    for name, value in (params or {}).items():
        if name not in merged:
            raise SimulationError(
                f"Unknown simulation parameter {name!r}. Known parameters: "
                f"{', '.join(sorted(merged))}."
            )
        merged[name] = _merge_value(name, merged[name], value)
    _check_params(merged)
    return merged


def _merge_value(name, default, value):
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise SimulationError(
                f"Parameter {name!r} takes a mapping with keys {sorted(default)}; got {value!r}."
            )
        merged = dict(default)
        for key, item in value.items():
            if key not in default:
                raise SimulationError(
                    f"Parameter {name!r} has no entry {key!r}; its entries are {sorted(default)}."
                )
            merged[key] = _merge_value(f"{name}.{key}", default[key], item)
        return merged
    if isinstance(default, list):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise SimulationError(
                f"Parameter {name!r} takes a list of {len(default)} numbers; got {value!r}."
            )
        return [float(item) for item in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SimulationError(f"Parameter {name!r} takes a number; got {value!r}.")
    return float(value) if isinstance(default, float) else value


def _leaves(name, value):
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(f"{name}.{key}", item)
    else:
        yield name, value


def _check_params(params):
    for name, value in _leaves("", params):
        name = name.lstrip(".")
        base = name.split(".")[0]
        values = value if isinstance(value, list) else [value]
        if not all(math.isfinite(v) for v in values):
            raise SimulationError(f"Parameter {name!r} must be finite; got {value!r}.")
        if base.endswith("_sd") and value < 0:
            raise SimulationError(f"Parameter {name!r} is an SD and must be >= 0; got {value}.")
        if base.endswith("_prob") and not 0 <= value <= 1:
            raise SimulationError(f"Parameter {name!r} must lie in [0, 1]; got {value}.")
        if base.endswith("_probs") and (min(values) < 0 or abs(sum(values) - 1) > 1e-9):
            raise SimulationError(
                f"Parameter {name!r} must be non-negative probabilities summing to 1; got {value}."
            )
        if base == "strategy_weights" and (min(values) < 0 or max(values) <= 0):
            raise SimulationError(f"Parameter {name!r} needs non-negative weights; got {value}.")
    for framework, probs in params["response_use_prob"].items():
        for response, q0 in probs.items():
            if not 0 < q0 < 1:
                raise SimulationError(
                    f"Parameter 'response_use_prob.{framework}.{response}' must lie strictly "
                    f"between 0 and 1 (its logit enters the model); got {q0}."
                )
    if params["rupture_nb_size"] <= 0:
        raise SimulationError("Parameter 'rupture_nb_size' must be > 0.")
    if not SEGMENT_MINUTES <= params["minutes_min"] <= params["minutes_max"]:
        raise SimulationError(
            f"Need {SEGMENT_MINUTES} <= minutes_min <= minutes_max; got "
            f"{params['minutes_min']} and {params['minutes_max']}."
        )


def _check_design(seed, n_therapists_per_framework, clients_per_therapist, max_sessions, share):
    checks = [
        ("seed", seed, isinstance(seed, int | np.integer) and seed >= 0, "an integer >= 0"),
        (
            "n_therapists_per_framework",
            n_therapists_per_framework,
            isinstance(n_therapists_per_framework, int | np.integer)
            and n_therapists_per_framework >= 1,
            "an integer >= 1",
        ),
        (
            "clients_per_therapist",
            clients_per_therapist,
            isinstance(clients_per_therapist, int | np.integer) and clients_per_therapist >= 1,
            "an integer >= 1",
        ),
        (
            "max_sessions",
            max_sessions,
            isinstance(max_sessions, int | np.integer) and max_sessions >= MIN_PLANNED_SESSIONS,
            f"an integer >= {MIN_PLANNED_SESSIONS}",
        ),
        (
            "double_coded_share",
            share,
            isinstance(share, int | float) and 0 <= share <= 1,
            "a number in [0, 1]",
        ),
    ]
    for name, value, ok, wanted in checks:
        if not ok:
            raise SimulationError(f"{name} must be {wanted}; got {value!r}.")


def _streams(seed):
    """Independent random generators, one per component, from one seed.

    The segments and reliability coding of the first form of resistance (overt) come from
    the ``codes`` and ``reliability`` streams, those of the other forms from
    ``form_segments`` and ``form_reliability``, and the therapist responses from streams of
    their own, so the draws of the ruptures, the coders and the overt form do not depend on
    the other forms or on the responses.
    """
    names = (
        "design",
        "effects",
        "schedule",
        "ruptures",
        "resistance",
        "ratings",
        "codes",
        "reliability",
        "form_segments",
        "form_reliability",
        "responses",
        "response_reliability",
    )
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children, strict=True)}


# --------------------------------------------------------------------------- clients


def _draw_clients(rng, n_therapists_per_framework, clients_per_therapist, max_sessions, p):
    """One row per client: therapist, framework, label, plan, covariate, ending plan."""
    n_therapists = len(FRAMEWORKS) * n_therapists_per_framework
    width = max(2, len(str(n_therapists)))
    therapist_ids = np.array([f"T{i + 1:0{width}d}" for i in range(n_therapists)])
    therapist_framework = np.repeat(FRAMEWORKS, n_therapists_per_framework)

    n_clients = n_therapists * clients_per_therapist
    therapist_index = rng.permutation(np.repeat(np.arange(n_therapists), clients_per_therapist))
    framework = therapist_framework[therapist_index]
    label_choice = rng.integers(0, 4, size=n_clients)
    treatment = [TREATMENT_LABELS[f][k] for f, k in zip(framework, label_choice, strict=True)]
    planned = rng.integers(MIN_PLANNED_SESSIONS, max_sessions + 1, size=n_clients)
    severity = rng.normal(p["baseline_severity_mean"], p["baseline_severity_sd"], n_clients)

    ending = rng.random(n_clients)
    censor_kind = np.where(
        ending < p["referred_prob"],
        "referred",
        np.where(ending < p["referred_prob"] + p["ongoing_prob"], "ongoing", ""),
    )
    censor_session = rng.integers(2, np.maximum(planned, 3), size=n_clients)
    censor_session = np.where(censor_kind == "", 0, censor_session)

    width = max(4, len(str(n_clients)))
    return pd.DataFrame(
        {
            "client_id": [f"C{i + 1:0{width}d}" for i in range(n_clients)],
            "therapist_id": therapist_ids[therapist_index],
            "therapist_index": therapist_index,
            "framework": framework,
            "treatment": treatment,
            "planned_sessions": planned,
            "baseline_severity": np.clip(np.rint(severity), 5, 27).astype(int),
            "censor_kind": censor_kind,
            "censor_session": censor_session,
        }
    )


_THERAPIST_EFFECTS = {
    "rupture_therapist": "rupture_therapist_sd",
    "resistance_therapist": "resistance_therapist_sd",
    "alliance_therapist": "alliance_therapist_sd",
    "dropout_therapist": "dropout_therapist_sd",
}
_CLIENT_EFFECTS = {
    "rupture_client": "rupture_client_sd",
    "repair_client": "repair_client_sd",
    "resistance_client": "resistance_client_sd",
    "homework_client": "homework_client_sd",
    "alliance_client": "alliance_client_sd",
    "alliance_client_slope": "alliance_client_slope_sd",
    "psq_client": "psq_client_sd",
}


def _draw_random_effects(rng, clients, p):
    """Realised therapist and client random effects, one row per client."""
    n_therapists = clients["therapist_index"].max() + 1
    effects = clients[["client_id", "therapist_id", "framework"]].copy()
    for column, sd in _THERAPIST_EFFECTS.items():
        effects[column] = rng.normal(0.0, p[sd], n_therapists)[clients["therapist_index"]]
    for column, sd in _CLIENT_EFFECTS.items():
        effects[column] = rng.normal(0.0, p[sd], len(clients))
    return effects


# --------------------------------------------------------------------------- sessions


def _by_row(values, frameworks):
    """Per-framework parameter values looked up for each row's framework."""
    return np.array([values[f] for f in frameworks], dtype=float)


def _draw_schedule(rng, clients, effects, p):
    """Every planned session of every client, with all session-level draws.

    Rows beyond a client's ending are dropped later by `_apply_endings`.
    """
    planned = clients["planned_sessions"].to_numpy()
    owner = np.repeat(np.arange(len(clients)), planned)
    start = np.repeat(np.cumsum(planned) - planned, planned)
    frame = pd.DataFrame({"owner": owner, "session_no": np.arange(len(owner)) - start + 1})
    framework = clients["framework"].to_numpy()[owner]
    frame["framework"] = framework
    frame["session_c"] = (frame["session_no"] - SESSION_CENTRE) / SESSION_SCALE
    n = len(frame)

    frame["attended_draw"] = rng.random(n) >= _by_row(p["miss_prob"], framework)
    minutes = rng.normal(p["minutes_mean"], p["minutes_sd"], n)
    frame["minutes"] = np.clip(np.rint(minutes), p["minutes_min"], p["minutes_max"]).astype(int)
    frame["n_segments"] = frame["minutes"] // SEGMENT_MINUTES

    eff = effects.iloc[owner].reset_index(drop=True)
    log_mu = (
        _by_row(p["rupture_log_rate"], framework)
        + _by_row(p["rupture_session_slope"], framework) * frame["session_c"].to_numpy()
        + eff["rupture_therapist"].to_numpy()
        + eff["rupture_client"].to_numpy()
        + np.log(frame["minutes"].to_numpy())
    )
    size = p["rupture_nb_size"]
    drawn = rng.negative_binomial(size, size / (size + np.exp(log_mu)))
    frame["rupture_capped"] = drawn > frame["n_segments"].to_numpy()
    frame["ruptures"] = np.minimum(drawn, frame["n_segments"].to_numpy())
    repair_prob = expit(_by_row(p["repair_logit"], framework) + eff["repair_client"].to_numpy())
    frame["repaired"] = rng.binomial(frame["ruptures"].to_numpy(), repair_prob)
    frame["unrepaired"] = frame["ruptures"] - frame["repaired"]

    frame["dropout_hazard"] = expit(
        _by_row(p["dropout_logit"], framework)
        + p["dropout_log_session"] * np.log(frame["session_no"].to_numpy())
        + eff["dropout_therapist"].to_numpy()
        + _by_row(p["dropout_per_unrepaired"], framework) * frame["unrepaired"].to_numpy()
    )
    frame["dropout_draw"] = rng.random(n)
    return frame


def _apply_endings(schedule, clients):
    """Cut each client's schedule at its ending; returns (kept rows, end_status)."""
    planned = clients["planned_sessions"].to_numpy()[schedule["owner"]]
    censor = clients["censor_session"].to_numpy()[schedule["owner"]]
    at_risk = (
        schedule["attended_draw"]
        & (schedule["session_no"] < planned)
        & ((censor == 0) | (schedule["session_no"] < censor))
    )
    leaves = at_risk & (schedule["dropout_draw"] < schedule["dropout_hazard"])
    first_leave = schedule["session_no"].where(leaves).groupby(schedule["owner"]).min()
    first_leave = first_leave.reindex(range(len(clients))).to_numpy()

    dropped = ~np.isnan(first_leave)
    censored = clients["censor_kind"].to_numpy() != ""
    last = np.where(
        dropped,
        np.nan_to_num(first_leave) + 1,
        np.where(censored, clients["censor_session"], clients["planned_sessions"]),
    ).astype(int)
    end_status = np.where(
        dropped, "dropout", np.where(censored, clients["censor_kind"], "completed")
    )

    kept = schedule[schedule["session_no"] <= last[schedule["owner"]]].copy()
    is_last = kept["session_no"].to_numpy() == last[kept["owner"]]
    kept["attended"] = np.where(is_last, ~dropped[kept["owner"]], kept["attended_draw"])
    for column in ("ruptures", "repaired", "unrepaired"):
        kept[column] = np.where(kept["attended"], kept[column], 0)
    return kept.reset_index(drop=True), end_status


def _draw_session_ratings(rng, sessions, effects, p):
    """Alliance, PSQ and homework for each kept session row (in place)."""
    owner = sessions["owner"].to_numpy()
    framework = sessions["framework"].to_numpy()
    eff = effects.iloc[owner].reset_index(drop=True)
    attended = sessions["attended"].to_numpy()
    n = len(sessions)
    session_c = sessions["session_c"].to_numpy()
    ruptures = sessions["ruptures"].to_numpy()
    repaired = sessions["repaired"].to_numpy()
    unrepaired = sessions["unrepaired"].to_numpy()

    alliance = (
        _by_row(p["alliance_intercept"], framework)
        + _by_row(p["alliance_session_slope"], framework) * session_c
        + eff["alliance_therapist"].to_numpy()
        + eff["alliance_client"].to_numpy()
        + eff["alliance_client_slope"].to_numpy() * session_c
        + rng.normal(0.0, p["alliance_residual_sd"], n)
        - p["alliance_unrepaired_penalty"] * unrepaired
    )
    sessions["alliance_clipped"] = attended & ((alliance < 1) | (alliance > 7))
    sessions["wai"] = np.where(attended, np.round(np.clip(alliance, 1, 7), 2), np.nan)

    tension_prob = expit(
        p["psq_tension_logit"]
        + p["psq_tension_per_rupture"] * ruptures
        + eff["psq_client"].to_numpy()
    )
    tension = rng.random(n) < tension_prob
    intensity = _rating(
        rng, p["psq_intensity_intercept"] + p["psq_intensity_per_rupture"] * ruptures, p
    )
    resolution = _rating(
        rng,
        p["psq_resolution_intercept"]
        + p["psq_resolution_per_repaired"] * repaired
        + p["psq_resolution_per_unrepaired"] * unrepaired,
        p,
    )
    sessions["psq_tension"] = np.where(attended, np.where(tension, "yes", "no"), None)
    sessions["psq_intensity"] = _masked_integers(intensity, attended & tension)
    sessions["psq_resolution"] = _masked_integers(resolution, attended & tension)

    first_attended = (
        sessions["session_no"].where(sessions["attended"]).groupby(owner).transform("min")
    )
    homework_logit = np.array([p["homework_logit"].get(f, np.nan) for f in framework])
    eligible = (
        attended
        & (sessions["session_no"].to_numpy() > first_attended.to_numpy())
        & ~np.isnan(homework_logit)
        & (rng.random(n) < p["homework_set_prob"])
    )
    done = rng.random(n) < expit(np.nan_to_num(homework_logit) + eff["homework_client"].to_numpy())
    sessions["homework"] = np.where(eligible, np.where(done, "yes", "no"), None)


def _masked_integers(values, keep):
    """Nullable integers: ``values`` where ``keep``, missing elsewhere."""
    out = pd.array(np.asarray(values, dtype="int64"), dtype="Int64")
    out[~np.asarray(keep, dtype=bool)] = pd.NA
    return out


def _rating(rng, latent_mean, p):
    """A 1-5 rating: the rounded latent value plus normal noise, clipped to 1-5."""
    noise = rng.normal(0.0, p["psq_rating_sd"], len(latent_mean))
    return np.clip(np.rint(latent_mean + noise), 1, 5).astype(int)


def _draw_resistance_counts(rng, sessions, effects, p):
    """Poisson counts per attended session for each resistance type (in place).

    Columns ``n_<construct>``, types drawn form by form in the order of RESISTANCE_FORMS.
    """
    owner = sessions["owner"].to_numpy()
    framework = sessions["framework"].to_numpy()
    eff = effects.iloc[owner].reset_index(drop=True)
    minutes = sessions["minutes"].to_numpy()
    n_segments = sessions["n_segments"].to_numpy()
    attended = sessions["attended"].to_numpy()
    capped = np.zeros(len(sessions), dtype=bool)
    for kind in RESISTANCE_CODES:
        rate = np.array([p["resistance_log_rate"][f][kind] for f in framework])
        mean = np.exp(
            rate
            + eff["resistance_therapist"].to_numpy()
            + eff["resistance_client"].to_numpy()
            + np.log(minutes)
        )
        drawn = rng.poisson(mean)
        capped |= attended & (drawn > n_segments)
        sessions[f"n_{kind}"] = np.where(attended, np.minimum(drawn, n_segments), 0)
    sessions["resistance_capped"] = capped


# --------------------------------------------------------------------------- codes


def _distinct_segments(rng, n_segments, counts):
    """Draw ``counts[i]`` distinct segments out of ``1..n_segments[i]`` for each row i.

    Returns the row index and segment of each draw, rows in order and each row's segments
    in random order.
    """
    n_segments = np.asarray(n_segments, dtype=int)
    owner = np.repeat(np.arange(len(n_segments)), n_segments)
    start = np.repeat(np.cumsum(n_segments) - n_segments, n_segments)
    segment = np.arange(len(owner)) - start + 1
    order = np.lexsort((rng.random(len(owner)), owner))
    owner, segment = owner[order], segment[order]
    rank = np.arange(len(owner)) - start
    keep = rank < np.asarray(counts)[owner]
    return owner[keep], segment[keep]


def _categorical_draw(rng, probs, size):
    """Values 1..len(probs) drawn with the given probabilities."""
    return rng.choice(np.arange(1, len(probs) + 1), size=size, p=probs)


def _rupture_units(rng, sessions, p):
    """One row per primary-coded rupture segment: markers, resolution and strategies."""
    attended = sessions[sessions["attended"]]
    session_row, segment = _distinct_segments(rng, attended["n_segments"], attended["ruptures"])
    rows = attended.iloc[session_row]
    framework = rows["framework"].to_numpy()
    n = len(rows)
    units = pd.DataFrame(
        {"session": rows.index.to_numpy(), "segment": segment, "framework": framework}
    )
    # the first `repaired` units of each session (in random segment order) are resolved
    rank = units.groupby("session").cumcount().to_numpy()
    units["repaired"] = rank < rows["repaired"].to_numpy()
    withdrawal = rng.random(n) < _by_row(p["withdrawal_prob"], framework)
    units["kind"] = np.where(withdrawal, "withdrawal", "confrontation")
    first = rng.integers(0, 7, n)
    second = (first + rng.integers(1, 7, n)) % 7
    has_second = rng.random(n) < p["second_marker_prob"]
    markers = np.where(withdrawal[:, None], WITHDRAWAL_MARKERS, CONFRONTATION_MARKERS)
    units["marker_1"] = markers[np.arange(n), first]
    units["marker_2"] = np.where(has_second, markers[np.arange(n), second], None)
    units["resolution"] = np.where(
        units["repaired"],
        _categorical_draw(rng, p["resolution_probs_repaired"], n),
        _categorical_draw(rng, p["resolution_probs_unrepaired"], n),
    )
    strategies = _draw_strategies(rng, framework, units["repaired"].to_numpy(), p)
    units["strategy_1"], units["strategy_2"] = strategies
    return units


def _draw_strategies(rng, framework, repaired, p):
    """Resolution strategies of each unit: none when unresolved, else 1-2 distinct codes.

    Weighted sampling without replacement by the Gumbel-top-k rule (keys log w + Gumbel).
    """
    n = len(framework)
    weights = np.array([p["strategy_weights"][f] for f in framework], dtype=float)
    weights = weights.reshape(n, len(REPAIR_STRATEGIES))
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=weights.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    count = np.where(repaired, _categorical_draw(rng, p["strategy_count_probs"], n), 0)
    codes = np.array(REPAIR_STRATEGIES)[order[:, :2]]
    first = np.where(count >= 1, codes[:, 0], None)
    second = np.where(count >= 2, codes[:, 1], None)
    return first, second


def _form_streams(first, rest):
    """Random stream of each form of resistance: ``first`` for the first form, else ``rest``."""
    return {form: first if i == 0 else rest for i, form in enumerate(RESISTANCE_FORMS)}


def _resistance_units(rngs, sessions):
    """One row per primary-coded resistance event (segment x type); ``rngs``: form -> stream."""
    attended = sessions[sessions["attended"]]
    parts = []
    for form, types in RESISTANCE_FORMS.items():
        for kind, code in types.items():
            session_row, segment = _distinct_segments(
                rngs[form], attended["n_segments"], attended[f"n_{kind}"]
            )
            parts.append(
                pd.DataFrame(
                    {
                        "session": attended.index.to_numpy()[session_row],
                        "segment": segment,
                        "code": code,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def _framework_matrix(values, names, frameworks):
    """Rows x names array of a {framework: {name: value}} parameter, by each row's framework."""
    table = np.array([[values[f][name] for name in names] for f in FRAMEWORKS], dtype=float)
    index = pd.Categorical(frameworks, categories=FRAMEWORKS).codes
    return table[index].reshape(len(index), len(names))


def _response_use_probs(p, frameworks):
    """(q0, q1): probabilities of each response in unresolved and resolved ruptures."""
    names = list(THERAPIST_RESPONSES)
    q0 = _framework_matrix(p["response_use_prob"], names, frameworks)
    b = _framework_matrix(p["response_log_or"], names, frameworks)
    return q0, expit(logit(q0) + b)


def _response_units(rng, units, p):
    """One row per therapist response coded in a primary rupture segment.

    Given its resolution, a rupture segment gets each response independently with
    probability q1 (resolved) or q0 (not resolved).
    """
    q0, q1 = _response_use_probs(p, units["framework"].to_numpy())
    prob = np.where(units["repaired"].to_numpy(dtype=bool)[:, None], q1, q0)
    row, column = np.nonzero(rng.random(prob.shape) < prob)
    return pd.DataFrame(
        {
            "session": units["session"].to_numpy()[row],
            "segment": units["segment"].to_numpy()[row],
            "code": np.array(list(THERAPIST_RESPONSES.values()), dtype=object)[column],
        }
    )


def _assign_coders(rng, sessions, share):
    """Primary coder of each attended session; reliability coder (or None) when double coded."""
    n = len(sessions)
    primary = rng.integers(0, len(CODERS), n)
    other = (primary + rng.integers(1, len(CODERS), n)) % len(CODERS)
    double = sessions["attended"].to_numpy() & (rng.random(n) < share)
    sessions["primary_coder"] = np.where(sessions["attended"], np.array(CODERS)[primary], None)
    sessions["reliability_coder"] = np.where(double, np.array(CODERS)[other], None)


def _unit_code_rows(units, resistance, responses):
    """Long code rows (session, segment, code, value) of rupture units, resistance events
    and therapist responses."""
    parts = [
        units[["session", "segment", column]].rename(columns={column: "code"}).assign(value=1)
        for column in ("marker_1", "marker_2", "strategy_1", "strategy_2")
    ]
    parts.append(
        units[["session", "segment", "resolution"]]
        .rename(columns={"resolution": "value"})
        .assign(code=RESOLUTION_RATING)
    )
    parts.append(resistance[["session", "segment", "code"]].assign(value=1))
    parts.append(responses[["session", "segment", "code"]].assign(value=1))
    rows = pd.concat(parts, ignore_index=True)
    return rows[rows["code"].notna()]


def _reliability_units(rngs, sessions, units, resistance, responses, p):
    """What the reliability coder codes in the double-coded sessions: rupture units,
    resistance events and therapist responses."""
    rng = rngs["reliability"]
    double = sessions.index[sessions["reliability_coder"].notna()]
    sens = p["coding_sensitivity"]
    rel = units[units["session"].isin(double)].copy()
    n = len(rel)
    keep_1 = rng.random(n) < sens
    keep_2 = rel["marker_2"].notna().to_numpy() & (rng.random(n) < sens)
    rel["marker_1"], rel["marker_2"] = (
        np.where(keep_1, rel["marker_1"], np.where(keep_2, rel["marker_2"], None)),
        np.where(keep_1 & keep_2, rel["marker_2"], None),
    )
    rel = rel[keep_1 | keep_2].copy()
    n = len(rel)
    rel["resolution"] = _perturb_rating(rng, rel["resolution"].to_numpy(), p)
    for column in ("strategy_1", "strategy_2"):
        rel[column] = np.where(rng.random(n) < sens, rel[column], None)
    # responses of the rupture segments the reliability coder codes (not the false ones)
    seen = responses[_within(responses, rel)]
    rel_responses = seen[rngs["response_reliability"].random(len(seen)) < sens]
    rel = pd.concat([rel, _false_ruptures(rng, sessions.loc[double], units, p)], ignore_index=True)

    streams = _form_streams(rng, rngs["form_reliability"])
    parts = []
    for form, types in RESISTANCE_FORMS.items():
        codes = list(types.values())
        res = resistance[resistance["session"].isin(double) & resistance["code"].isin(codes)]
        parts.append(res[streams[form].random(len(res)) < sens])
        false_prob = p["coding_false_resistance_prob"][form]
        parts.append(
            _false_resistance(streams[form], sessions.loc[double], resistance, codes, false_prob)
        )
    return rel, pd.concat(parts, ignore_index=True), rel_responses


def _perturb_rating(rng, rating, p):
    """Reliability rating: equal w.p. coding_resolution_equal_prob, else one point off."""
    n = len(rating)
    step = np.where(rng.random(n) < 0.5, -1, 1)
    step = np.where(rating == 1, 1, np.where(rating == 5, -1, step))
    differs = rng.random(n) >= p["coding_resolution_equal_prob"]
    return np.where(differs, rating + step, rating)


def _segment_grid(sessions):
    """One row per segment of the given sessions."""
    n_segments = sessions["n_segments"].to_numpy()
    start = np.repeat(np.cumsum(n_segments) - n_segments, n_segments)
    return pd.DataFrame(
        {
            "session": np.repeat(sessions.index.to_numpy(), n_segments),
            "segment": np.arange(n_segments.sum()) - start + 1,
            "framework": np.repeat(sessions["framework"].to_numpy(), n_segments),
        }
    )


def _within(rows, taken):
    """Mask of ``rows`` whose (session, segment) is in ``taken``."""
    key = pd.MultiIndex.from_frame(rows[["session", "segment"]])
    return key.isin(pd.MultiIndex.from_frame(taken[["session", "segment"]]))


def _without(grid, taken):
    """Rows of ``grid`` whose (session, segment) is not in ``taken``."""
    return grid[~_within(grid, taken)]


def _false_ruptures(rng, double_sessions, units, p):
    """Ruptures the reliability coder codes in segments without a primary rupture."""
    free = _without(_segment_grid(double_sessions), units)
    free = free[rng.random(len(free)) < p["coding_false_rupture_prob"]].copy()
    n = len(free)
    withdrawal = rng.random(n) < _by_row(p["withdrawal_prob"], free["framework"])
    markers = np.where(withdrawal[:, None], WITHDRAWAL_MARKERS, CONFRONTATION_MARKERS)
    free["marker_1"] = markers[np.arange(n), rng.integers(0, 7, n)]
    free["kind"] = np.where(withdrawal, "withdrawal", "confrontation")
    free["resolution"] = rng.integers(1, 6, n)
    for column in ("marker_2", "strategy_1", "strategy_2"):
        free[column] = None
    return free


def _false_resistance(rng, double_sessions, resistance, codes, false_prob):
    """Resistance events of ``codes`` the reliability coder codes where the primary coded
    none, each free segment and code with probability ``false_prob``."""
    grid = _segment_grid(double_sessions)
    parts = []
    for code in codes:
        free = _without(grid, resistance[resistance["code"] == code])
        free = free[rng.random(len(free)) < false_prob]
        parts.append(free[["session", "segment"]].assign(code=code))
    return pd.concat(parts, ignore_index=True)


def _code_table(sessions, clients, primary_rows, reliability_rows):
    """The raw long code table, sorted by client, session, role, segment, code."""
    primary_rows = primary_rows.assign(
        coder=sessions["primary_coder"].to_numpy()[primary_rows["session"]],
        coder_role="primary",
        role_rank=0,
    )
    reliability_rows = reliability_rows.assign(
        coder=sessions["reliability_coder"].to_numpy()[reliability_rows["session"]],
        coder_role="reliability",
        role_rank=1,
    )
    rows = pd.concat([primary_rows, reliability_rows], ignore_index=True)
    owner = sessions["owner"].to_numpy()[rows["session"]]
    rows["client_id"] = clients["client_id"].to_numpy()[owner]
    rows["session_no"] = sessions["session_no"].to_numpy()[rows["session"]]
    rows = rows.sort_values(["client_id", "session_no", "role_rank", "segment", "code"])
    columns = ["client_id", "session_no", "segment", "coder", "coder_role", "code", "value"]
    return rows[columns].astype({"segment": int, "value": int, "code": str}).reset_index(drop=True)


def _coding_log(sessions, clients):
    """One row per coded session and coder: who coded it, in which role, how many segments."""
    attended = sessions[sessions["attended"]]
    double = attended[attended["reliability_coder"].notna()]
    client_ids = clients["client_id"].to_numpy()
    parts = [
        pd.DataFrame(
            {
                "client_id": client_ids[frame["owner"].to_numpy()],
                "session_no": frame["session_no"].to_numpy(),
                "coder": frame[f"{role}_coder"].to_numpy(),
                "coder_role": role,
                "segments": frame["n_segments"].to_numpy(),
                "role_rank": rank,
            }
        )
        for rank, (role, frame) in enumerate((("primary", attended), ("reliability", double)))
    ]
    log = pd.concat(parts, ignore_index=True)
    log = log.sort_values(["client_id", "session_no", "role_rank"], kind="stable")
    return log.drop(columns="role_rank").astype({"segments": int}).reset_index(drop=True)


# --------------------------------------------------------------------------- truth


def _ratio(numerator, denominator):
    """numerator / denominator, or None (JSON null) when the denominator is zero."""
    return float(numerator) / float(denominator) if denominator > 0 else None


def _agreement(primary_mean, primary_var, rel_mean, rel_var, cov):
    """Large-sample ICC(A,1) and ICC(C,1) of two ratings per target.

    With rating 1 (primary) and rating 2 (reliability), the two-way ANOVA estimators
    converge to ICC(A,1) = 2 cov / (var1 + var2 + (mean1 - mean2)^2) and
    ICC(C,1) = 2 cov / (var1 + var2) (McGraw & Wong 1996, case A-1 and C-1, with k = 2).
    """
    spread = primary_var + rel_var
    return {
        "icc_a1": _ratio(2 * cov, spread + (primary_mean - rel_mean) ** 2),
        "icc_c1": _ratio(2 * cov, spread),
        "mean_primary": primary_mean,
        "mean_reliability": rel_mean,
    }


def _count_agreement(count, single, double, n_segments, sens, false_prob):
    """Expected agreement on a per-session count of coded segments.

    ``single`` and ``double`` count the primary segments with one and two markers; the
    reliability coder keeps a segment with probability sens (one marker) or
    1 - (1 - sens)^2 (two), and adds each free segment with probability false_prob.
    """
    keep_2 = 1 - (1 - sens) ** 2
    free = n_segments - count
    cond_mean = sens * single + keep_2 * double + false_prob * free
    cond_var = (
        single * sens * (1 - sens)
        + double * keep_2 * (1 - keep_2)
        + free * false_prob * (1 - false_prob)
    )
    return _moment_agreement(count, cond_mean, cond_var)


def _moment_agreement(count, cond_mean, cond_var):
    """Expected agreement of a primary count with a reliability count of the given
    conditional mean and variance (per session, given the primary codes)."""
    count = np.asarray(count, dtype=float)
    cond_mean, cond_var = np.asarray(cond_mean, float), np.asarray(cond_var, float)
    cov = np.mean((count - count.mean()) * (cond_mean - cond_mean.mean()))
    return _agreement(
        count.mean(), count.var(), cond_mean.mean(), cond_mean.var() + cond_var.mean(), cov
    )


def _event_moments(attended, kinds, sens, false_prob):
    """Conditional mean and variance of the reliability count of resistance types ``kinds``
    per session: each event kept w.p. sens, each free segment x type added w.p. false_prob."""
    count = sum(attended[f"n_{kind}"].to_numpy() for kind in kinds)
    free = attended["n_segments"].to_numpy() * len(kinds) - count
    mean = sens * count + false_prob * free
    var = count * sens * (1 - sens) + free * false_prob * (1 - false_prob)
    return count, mean, var


def _response_agreement(attended, units, responses, sens):
    """Expected agreement on per-session counts of each therapist response and of their sum.

    The reliability coder keeps a rupture unit w.p. k = sens (one marker) or
    1 - (1 - sens)^2 (two markers), and each response of a kept unit w.p. sens; it adds none.
    """
    keep = units[["session", "segment"]].assign(
        keep=np.where(units["marker_2"].notna(), 1 - (1 - sens) ** 2, sens)
    )
    rows = responses.merge(keep, on=["session", "segment"], how="left")
    rows["p"] = rows["keep"] * sens

    def per_session(values):
        return values.groupby(rows["session"]).sum().reindex(attended.index, fill_value=0)

    result = {}
    for construct, code in THERAPIST_RESPONSES.items():
        mask = (rows["code"] == code).astype(float)
        result[f"{construct}_per_session"] = _moment_agreement(
            per_session(mask),
            per_session(mask * rows["p"]),
            per_session(mask * rows["p"] * (1 - rows["p"])),
        )
    # their sum: a unit with m responses gives B * Binomial(m, sens), B ~ Bernoulli(k)
    m = rows.groupby(["session", "segment"]).size().rename("m").reset_index()
    m = m.merge(keep, on=["session", "segment"], how="left")
    mean = m["keep"] * m["m"] * sens
    var = m["keep"] * (m["m"] * sens * (1 - sens) + (m["m"] * sens) ** 2) - mean**2

    def by_session(values):
        return values.groupby(m["session"]).sum().reindex(attended.index, fill_value=0)

    result[f"{RESPONSES_COMPOSITE}_per_session"] = _moment_agreement(
        by_session(m["m"].astype(float)), by_session(mean), by_session(var)
    )
    return result


def _unit_kappa(present_share_single, present_share_double, keep_1, keep_2, false_prob):
    """Large-sample Cohen's kappa for presence of a code in a segment (two coders)."""
    primary_yes = present_share_single + present_share_double
    both = present_share_single * keep_1 + present_share_double * keep_2
    rel_yes = both + (1 - primary_yes) * false_prob
    observed = both + (1 - primary_yes) * (1 - false_prob)
    chance = primary_yes * rel_yes + (1 - primary_yes) * (1 - rel_yes)
    return {
        "cohen_kappa": _ratio(observed - chance, 1 - chance),
        "percent_agreement": 100 * observed,
    }


def _rating_agreement(ratings, equal_prob):
    """Expected agreement on the resolution rating of segments both coders rated."""
    ratings = np.asarray(ratings, dtype=float)
    if len(ratings) == 0:
        return None
    off = 1 - equal_prob
    up = np.where(ratings == 1, off, np.where(ratings == 5, 0.0, off / 2))
    down = off - up
    cond_mean = ratings + up - down
    cond_var = up + down - (up - down) ** 2
    cov = np.mean((ratings - ratings.mean()) * (cond_mean - cond_mean.mean()))
    result = _agreement(
        ratings.mean(), ratings.var(), cond_mean.mean(), cond_mean.var() + cond_var.mean(), cov
    )
    result["exact_agreement"] = equal_prob
    return result


def _expected_agreement(sessions, units, responses, p):
    """Agreement implied by the coding model, given the primary codes of the study.

    Population: all attended sessions (the double-coded ones are a random sample of them).
    """
    attended = sessions[sessions["attended"]]
    sens = p["coding_sensitivity"]
    n_segments = attended["n_segments"].to_numpy()
    has_second = units["marker_2"].notna()
    double = units[has_second].groupby("session").size().reindex(attended.index, fill_value=0)
    single = attended["ruptures"] - double
    result = {
        "ruptures_per_session": _count_agreement(
            attended["ruptures"].to_numpy(),
            single.to_numpy(),
            double.to_numpy(),
            n_segments,
            sens,
            p["coding_false_rupture_prob"],
        )
    }
    all_segments = n_segments.sum()
    result["rupture_segment_presence"] = _unit_kappa(
        single.sum() / all_segments,
        double.sum() / all_segments,
        sens,
        1 - (1 - sens) ** 2,
        p["coding_false_rupture_prob"],
    )
    for kind in RESISTANCE_CODES:
        counts = attended[f"n_{kind}"].to_numpy()
        result[f"{kind}_per_session"] = _count_agreement(
            counts,
            counts,
            np.zeros_like(counts),
            n_segments,
            sens,
            p["coding_false_resistance_prob"][FORM_OF[kind]],
        )
        result[f"{kind}_segment_presence"] = _unit_kappa(
            counts.sum() / all_segments,
            0.0,
            sens,
            0.0,
            p["coding_false_resistance_prob"][FORM_OF[kind]],
        )
    false_probs = p["coding_false_resistance_prob"]
    moments = {
        form: _event_moments(attended, list(types), sens, false_probs[form])
        for form, types in RESISTANCE_FORMS.items()
    }
    for form, (count, mean, var) in moments.items():
        result[f"{form}_per_session"] = _moment_agreement(count, mean, var)
    result[f"{RESISTANCE_COMPOSITE}_per_session"] = _moment_agreement(
        *(sum(parts) for parts in zip(*moments.values(), strict=True))
    )
    result.update(_response_agreement(attended, units, responses, sens))
    result["resolution_rating"] = _rating_agreement(
        units["resolution"], p["coding_resolution_equal_prob"]
    )
    return result


def _form_counts(attended):
    """Per attended session, the count of each form of resistance (sum of its types)."""
    return pd.DataFrame(
        {
            form: sum(attended[f"n_{kind}"] for kind in types)
            for form, types in RESISTANCE_FORMS.items()
        }
    )


def _response_shares(units, responses):
    """Share of rupture segments with each response, overall and by resolution."""
    repaired = units["repaired"].to_numpy(dtype=bool)
    shares = {}
    for construct, code in THERAPIST_RESPONSES.items():
        used = _within(units, responses[responses["code"] == code])
        shares[construct] = {
            "all": _ratio(used.sum(), len(used)),
            "resolved": _ratio(used[repaired].sum(), repaired.sum()),
            "unresolved": _ratio(used[~repaired].sum(), (~repaired).sum()),
        }
    return shares


def _realised(clients, sessions, units, responses, codes, end_status):
    """Summaries of the realised study (primary coder's codes)."""
    attended = sessions[sessions["attended"]]
    summary = {
        "clients": len(clients),
        "sessions_scheduled": len(sessions),
        "sessions_attended": len(attended),
        "missed_session_share": _ratio((~sessions["attended"]).sum(), len(sessions)),
        "mean_minutes": float(attended["minutes"].mean()),
        "sessions_with_rupture_share": _ratio((attended["ruptures"] > 0).sum(), len(attended)),
        "ruptures_per_attended_session": float(attended["ruptures"].mean()),
        "withdrawal_share": _ratio((units["kind"] == "withdrawal").sum(), len(units)),
        "repair_share": _ratio(units["repaired"].sum(), len(units)),
        "psq_tension_share": _ratio((attended["psq_tension"] == "yes").sum(), len(attended)),
        "homework_done_share": _ratio(
            (sessions["homework"] == "yes").sum(), sessions["homework"].notna().sum()
        ),
        "mean_alliance": float(attended["wai"].mean()),
        "alliance_clipped": int(attended["alliance_clipped"].sum()),
        "capped_rupture_sessions": int((attended["rupture_capped"]).sum()),
        "capped_resistance_sessions": int(attended["resistance_capped"].sum()),
        "resistance_per_attended_session": {
            kind: float(attended[f"n_{kind}"].mean()) for kind in RESISTANCE_CODES
        },
        "resistance_form_per_attended_session": {
            form: float(counts.mean()) for form, counts in _form_counts(attended).items()
        },
        "response_use_share": _response_shares(units, responses),
        "dropout_share": _ratio((end_status == "dropout").sum(), len(clients)),
        "end_status_counts": {
            status: int((end_status == status).sum())
            for status in ("completed", "dropout", "referred", "ongoing")
        },
        "double_coded_sessions": int(sessions["reliability_coder"].notna().sum()),
        "double_coded_share": _ratio(sessions["reliability_coder"].notna().sum(), len(attended)),
        "code_rows": {
            role: int((codes["coder_role"] == role).sum()) for role in ("primary", "reliability")
        },
    }
    summary["by_framework"] = {
        framework: _framework_summary(
            sessions[sessions["framework"] == framework],
            units[units["framework"] == framework],
            responses,
            end_status[clients["framework"].to_numpy() == framework],
        )
        for framework in FRAMEWORKS
    }
    return summary


def _framework_summary(sessions, units, responses, end_status):
    attended = sessions[sessions["attended"]]
    responses = responses[_within(responses, units)]
    return {
        "clients": len(end_status),
        "dropout_share": _ratio((end_status == "dropout").sum(), len(end_status)),
        "missed_session_share": _ratio((~sessions["attended"]).sum(), len(sessions)),
        "sessions_with_rupture_share": _ratio((attended["ruptures"] > 0).sum(), len(attended)),
        "ruptures_per_attended_session": float(attended["ruptures"].mean()),
        "withdrawal_share": _ratio((units["kind"] == "withdrawal").sum(), len(units)),
        "repair_share": _ratio(units["repaired"].sum(), len(units)),
        "mean_alliance": float(attended["wai"].mean()),
        "resistance_form_per_attended_session": {
            form: float(counts.mean()) for form, counts in _form_counts(attended).items()
        },
        "response_use_share": _response_shares(units, responses),
    }


def _parameter_truth(p):
    """Parameters grouped by process, each with its value, description and source."""
    sections = {}
    for name, value in p.items():
        section, description, source = PARAMETER_NOTES[name]
        entry = {"value": value, "description": description}
        if source:
            entry["source"] = source
        sections.setdefault(section, {})[name] = entry
    sections["ruptures"]["rate_per_50_minutes"] = {
        "value": {f: 50 * math.exp(v) for f, v in p["rupture_log_rate"].items()},
        "description": "50 * exp(rupture_log_rate): ruptures per 50-minute session at "
        "session_c = 0 with random effects at 0",
    }
    factor = math.exp((p["rupture_therapist_sd"] ** 2 + p["rupture_client_sd"] ** 2) / 2)
    sections["ruptures"]["marginal_mean_factor"] = {
        "value": factor,
        "description": "exp((sd_u^2 + sd_w^2) / 2): the marginal mean rate is the conditional "
        "rate times this (lognormal mean)",
    }
    sections["resistance"]["rate_per_50_minutes"] = {
        "value": {
            f: {k: 50 * math.exp(v) for k, v in rates.items()}
            for f, rates in p["resistance_log_rate"].items()
        },
        "description": "50 * exp(resistance_log_rate): events per 50-minute session, random "
        "effects at 0",
    }
    form_log_rate = {
        framework: {
            form: math.log(sum(math.exp(rates[kind]) for kind in types))
            for form, types in RESISTANCE_FORMS.items()
        }
        for framework, rates in p["resistance_log_rate"].items()
    }
    sections["resistance"]["form_of"] = {
        "value": dict(FORM_OF),
        "description": "the form (composite construct) each resistance type belongs to",
    }
    sections["resistance"]["form_log_rate"] = {
        "value": form_log_rate,
        "description": "log(sum over the form's types of exp(g_fk)): log events per MINUTE of "
        "the form, random effects at 0; exact for the form's count, a Poisson sum whose "
        "types share the random effects u' and w' (capping aside)",
    }
    sections["resistance"]["form_rate_per_50_minutes"] = {
        "value": {
            f: {form: 50 * math.exp(v) for form, v in rates.items()}
            for f, rates in form_log_rate.items()
        },
        "description": "50 * exp(form_log_rate): events of each form per 50-minute session, "
        "random effects at 0",
    }
    sections["responses"].update(_response_truth(p))
    return sections


def _response_truth(p):
    """Derived truth of the therapist-response scheme: q1 and the rupture-level model."""
    names = list(THERAPIST_RESPONSES)
    q0, q1 = _response_use_probs(p, list(FRAMEWORKS))
    c = np.log((1 - q1) / (1 - q0))
    return {
        "response_use_prob_resolved": {
            "value": {
                f: dict(zip(names, q1[i].tolist(), strict=True)) for i, f in enumerate(FRAMEWORKS)
            },
            "description": "q1_fj = logistic(logit(q0_fj) + b_fj): probability that response "
            "j is coded in a rupture segment whose rupture is resolved",
        },
        "rupture_model_intercept": {
            "value": {
                f: p["repair_logit"][f] + float(c[i].sum()) for i, f in enumerate(FRAMEWORKS)
            },
            "description": "a_f + sum_j c_fj, c_fj = log((1 - q1_fj) / (1 - q0_fj)): the true "
            "logit of resolution of a rupture segment with no response, client effect 0, in "
            "the rupture-level model logit P(resolved) = intercept_f + sum_j b_fj * used_j + "
            "r_client (its log odds ratios are response_log_or)",
        },
        "rupture_model_random_effect_sd": {
            "value": {"client": p["repair_client_sd"], "therapist": 0.0},
            "description": "true SDs of the rupture-level model's random intercepts "
            "(1 | therapist/client): client = repair_client_sd, therapist 0 (no therapist "
            "effect on repair is simulated)",
        },
    }


def _models():
    """The generating equations, in words."""
    return {
        "attendance": "attended ~ Bernoulli(1 - miss_prob_f); minutes = clip(round(N(mean, "
        "sd^2)), min, max)",
        "ruptures": "ruptures ~ NB2(mu, size), log(mu) = b0_f + b_time_f * session_c + "
        "u_therapist + w_client + log(minutes); capped at minutes // 5",
        "rupture_type": "each rupture is withdrawal w.p. withdrawal_prob_f, else confrontation; "
        "one marker of that type chosen uniformly, a second distinct one w.p. "
        "second_marker_prob",
        "repair": "each rupture resolved w.p. logistic(a_f + r_client); RES drawn from "
        "resolution_probs_repaired or _unrepaired; resolved ruptures get 1-2 strategy codes",
        "resistance": "for every type k of every form: count_k ~ Poisson(mu_k), log(mu_k) = "
        "g_fk + u'_therapist + w'_client + log(minutes); each event in a distinct random "
        "segment, capped at minutes // 5. A form's count (the sum of its types) is Poisson "
        "with log mean log(sum_k exp(g_fk)) + u' + w' + log(minutes) (form_log_rate), "
        "capping aside",
        "responses": "in each rupture segment, given its resolution, response j is used w.p. "
        "q1_fj if resolved, q0_fj if not, independently across j, logit(q1_fj) = logit(q0_fj) "
        "+ b_fj. By Bayes' rule logit P(resolved | responses, r) = a_f + sum_j c_fj + "
        "r_client + sum_j b_fj * used_j with c_fj = log((1 - q1_fj) / (1 - q0_fj)): the "
        "rupture-level model repaired ~ framework * (responses) + (1 | therapist/client) has "
        "log odds ratios b_fj, intercepts rupture_model_intercept, client SD "
        "repair_client_sd and therapist SD 0",
        "homework": "done ~ Bernoulli(logistic(homework_logit_f + client propensity))",
        "alliance": "wai = a_f + c_f * session_c + therapist + client + client_slope * "
        "session_c + N(0, residual_sd^2) - penalty * unrepaired; clipped to 1-7, 2 decimals",
        "psq": "tension ~ Bernoulli(logistic(psq_tension_logit + per_rupture * ruptures + "
        "client)); intensity and resolution as described under parameters.psq",
        "dropout": "after attended session s < planned: leave w.p. logistic(d0_f + d_time * "
        "log(s) + v_therapist + beta_f * unrepaired_s)",
    }


def _truth(seed, design, p, clients, sessions, units, responses, codes, end_status):
    double = sessions[sessions["reliability_coder"].notna()]
    client_ids = clients["client_id"].to_numpy()[double["owner"].to_numpy()]
    parameters = _parameter_truth(p)
    coding_parameters = parameters.pop("coding")
    return {
        "simulated": True,
        "notice": "SIMULATED DATA. Every value was drawn by resistance_outcomes.simulate; "
        "no row describes a real person.",
        "generator": {
            "function": "resistance_outcomes.simulate.simulate_study",
            "version": __version__,
        },
        "seed": seed,
        "design": design,
        "frameworks": list(FRAMEWORKS),
        "treatment_labels": {
            label: framework for framework, labels in TREATMENT_LABELS.items() for label in labels
        },
        "session_c": {
            "definition": f"(session_no - {SESSION_CENTRE}) / {SESSION_SCALE}",
            "centre": SESSION_CENTRE,
            "scale": SESSION_SCALE,
        },
        "codes": {
            "withdrawal_markers": list(WITHDRAWAL_MARKERS),
            "confrontation_markers": list(CONFRONTATION_MARKERS),
            "resolution_strategies": list(REPAIR_STRATEGIES),
            "resolution_rating": RESOLUTION_RATING,
            "resistance": dict(RESISTANCE_CODES),
            "resistance_forms": {form: list(types) for form, types in RESISTANCE_FORMS.items()},
            "therapist_responses": dict(THERAPIST_RESPONSES),
        },
        "models": _models(),
        "parameters": parameters,
        "rules": list(RULES),
        "coding": {
            "coders": list(CODERS),
            "double_coded_share": design["double_coded_share"],
            "parameters": coding_parameters,
            "expected_agreement": {
                "description": "Large-sample agreement between the primary (rating 1) and "
                "reliability (rating 2) coder implied by the coding parameters, computed "
                "analytically from the primary codes of all attended sessions (the "
                "double-coded sessions are a random sample of them). Per-session counts "
                "include sessions where both coders coded nothing. ICC(A,1) = 2 cov / (var1 "
                "+ var2 + (mean1 - mean2)^2), ICC(C,1) = 2 cov / (var1 + var2); segment "
                "presence: Cohen's kappa over all segments of attended sessions; "
                "resolution_rating: over rupture segments both coders rated. Keys "
                "<construct>_per_session: ruptures, every resistance type, every form and "
                "their sum (resistance), every therapist response and their sum "
                "(therapist_responses); <construct>_segment_presence: ruptures and every "
                "resistance type.",
                **_expected_agreement(sessions, units, responses, p),
            },
            "double_coded_sessions": {
                "client_id": list(client_ids),
                "session_no": double["session_no"].tolist(),
                "primary_coder": double["primary_coder"].tolist(),
                "reliability_coder": double["reliability_coder"].tolist(),
            },
        },
        "realised": _realised(clients, sessions, units, responses, codes, end_status),
    }


# --------------------------------------------------------------------------- raw tables


def _raw_clients(clients, end_status):
    raw = clients[["client_id", "therapist_id", "treatment", "planned_sessions"]].copy()
    raw["end_status"] = end_status
    raw["baseline_severity"] = clients["baseline_severity"].to_numpy()
    return raw.reset_index(drop=True)


def _raw_sessions(sessions, clients):
    attended = sessions["attended"].to_numpy()
    raw = pd.DataFrame(
        {
            "client_id": clients["client_id"].to_numpy()[sessions["owner"].to_numpy()],
            "session_no": sessions["session_no"].to_numpy(),
            "attended": np.where(attended, "yes", "no"),
            "minutes": _masked_integers(sessions["minutes"], attended),
            "homework": sessions["homework"].to_numpy(),
            "wai": sessions["wai"].to_numpy(),
            "psq_tension": sessions["psq_tension"].to_numpy(),
            "psq_intensity": sessions["psq_intensity"].array,
            "psq_resolution": sessions["psq_resolution"].array,
        }
    )
    return raw.sort_values(["client_id", "session_no"]).reset_index(drop=True)


# --------------------------------------------------------------------------- public API


def simulate_study(
    seed: int = 20261126,
    n_therapists_per_framework: int = 15,
    clients_per_therapist: int = 8,
    max_sessions: int = 16,
    double_coded_share: float = 0.2,
    params: dict | None = None,
) -> SimulatedStudy:
    """Simulate a coded-session study with known truth, in the raw lab layout.

    Three frameworks (psychoanalytic, behavioral, cognitive), each practised by
    ``n_therapists_per_framework`` therapists who treat ``clients_per_therapist`` clients
    each. Every scheduled session is attended or missed; attended sessions get minutes,
    rupture segments (3RS markers, resolution rating, strategies, therapist responses),
    resistance events of every type of every form (``RESISTANCE_FORMS``), alliance (WAI),
    PSQ items and homework. Clients drop out by a discrete-time
    hazard that rises with unrepaired ruptures. The generating equations, parameters and
    rules are in ``truth`` (see ``DEFAULT_PARAMS`` and ``RULES``).

    Parameters
    ----------
    seed : int
        Seed of all random draws; the same seed gives the same study.
    n_therapists_per_framework : int
        Therapists per framework (therapist ids T01, T02, ...).
    clients_per_therapist : int
        Clients per therapist (client ids C0001, C0002, ... in random order).
    max_sessions : int
        Planned sessions are uniform on 8..max_sessions.
    double_coded_share : float
        Probability that an attended session is also coded by a reliability coder.
    params : dict, optional
        Overrides of ``DEFAULT_PARAMS``; per-framework entries may be given in part, e.g.
        ``{"dropout_per_unrepaired": {"cognitive": 0.0}}``.

    Returns
    -------
    SimulatedStudy
        ``clients``, ``sessions``, ``codes`` and ``coding_log`` DataFrames with the raw lab
        columns, the ``truth`` dictionary and the realised ``random_effects``.

    Raises
    ------
    SimulationError
        For an invalid size, share, seed or parameter (the message names it).

    Examples
    --------
    >>> from resistance_outcomes.simulate import simulate_study
    >>> study = simulate_study(seed=1, n_therapists_per_framework=2, clients_per_therapist=3)
    >>> list(study.sessions.columns)[:4]
    ['client_id', 'session_no', 'attended', 'minutes']
    >>> study.truth["design"]["clients"]
    18
    """
    _check_design(
        seed, n_therapists_per_framework, clients_per_therapist, max_sessions, double_coded_share
    )
    p = _merge_params(params)
    rngs = _streams(int(seed))
    clients = _draw_clients(
        rngs["design"], n_therapists_per_framework, clients_per_therapist, max_sessions, p
    )
    effects = _draw_random_effects(rngs["effects"], clients, p)
    schedule = _draw_schedule(rngs["schedule"], clients, effects, p)
    sessions, end_status = _apply_endings(schedule, clients)
    _draw_session_ratings(rngs["ratings"], sessions, effects, p)
    _draw_resistance_counts(rngs["resistance"], sessions, effects, p)

    units = _rupture_units(rngs["ruptures"], sessions, p)
    responses = _response_units(rngs["responses"], units, p)
    resistance = _resistance_units(_form_streams(rngs["codes"], rngs["form_segments"]), sessions)
    _assign_coders(rngs["codes"], sessions, double_coded_share)
    rel_units, rel_resistance, rel_responses = _reliability_units(
        rngs, sessions, units, resistance, responses, p
    )
    codes = _code_table(
        sessions,
        clients,
        _unit_code_rows(units, resistance, responses),
        _unit_code_rows(rel_units, rel_resistance, rel_responses),
    )
    design = {
        "frameworks": len(FRAMEWORKS),
        "therapists_per_framework": int(n_therapists_per_framework),
        "therapists": len(FRAMEWORKS) * int(n_therapists_per_framework),
        "clients_per_therapist": int(clients_per_therapist),
        "clients": len(clients),
        "min_planned_sessions": MIN_PLANNED_SESSIONS,
        "max_sessions": int(max_sessions),
        "segment_minutes": SEGMENT_MINUTES,
        "double_coded_share": float(double_coded_share),
    }
    truth = _truth(int(seed), design, p, clients, sessions, units, responses, codes, end_status)
    return SimulatedStudy(
        clients=_raw_clients(clients, end_status),
        sessions=_raw_sessions(sessions, clients),
        codes=codes,
        coding_log=_coding_log(sessions, clients),
        truth=_json_ready(truth),
        random_effects=effects.drop(columns="framework"),
    )


def _json_ready(value):
    """Plain Python types with floats rounded to 6 significant digits (stable output)."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(f"{float(value):.6g}")
    return value


def write_study(study: SimulatedStudy, out_dir) -> list[Path]:
    """Write a simulated study: ``clients.csv``, ``sessions.csv``, ``codes.csv``,
    ``coding_log.csv`` and ``truth.json``.

    Output is deterministic: UTF-8, ``\\n`` line endings, fixed float formatting (alliance
    with 2 decimals), empty cells for missing values, JSON with sorted keys and 2-space
    indent. The same study always gives the same bytes.

    Parameters
    ----------
    study : SimulatedStudy
        From `simulate_study`.
    out_dir : str or pathlib.Path
        Folder to write into (created if needed); existing files of these names are
        replaced.

    Returns
    -------
    list of pathlib.Path
        The five files written.

    Examples
    --------
    >>> import tempfile
    >>> from resistance_outcomes.simulate import simulate_study, write_study
    >>> study = simulate_study(seed=1, n_therapists_per_framework=1, clients_per_therapist=2)
    >>> [path.name for path in write_study(study, tempfile.mkdtemp())]
    ['clients.csv', 'sessions.csv', 'codes.csv', 'coding_log.csv', 'truth.json']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "clients.csv": study.clients,
        "sessions.csv": study.sessions,
        "codes.csv": study.codes,
        "coding_log.csv": study.coding_log,
    }
    texts = {
        name: table.to_csv(index=False, lineterminator="\n", float_format="%.2f")
        for name, table in tables.items()
    }
    texts["truth.json"] = json.dumps(study.truth, sort_keys=True, indent=2) + "\n"
    paths = []
    for name in OUTPUT_FILES:
        path = out_dir / name
        path.write_bytes(texts[name].encode("utf-8"))
        paths.append(path)
    return paths


def main(argv=None) -> int:
    """Command line: ``resistance-outcomes-simulate --out resources/example``.

    Examples
    --------
    >>> import tempfile
    >>> from resistance_outcomes.simulate import main
    >>> main(["--out", tempfile.mkdtemp(), "--therapists-per-framework", "1"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(
        prog="resistance-outcomes-simulate",
        description="Write a SIMULATED coded-session study (clients.csv, sessions.csv, "
        "codes.csv, coding_log.csv) and its truth.json.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=20261126, help="random seed")
    parser.add_argument("--therapists-per-framework", type=int, default=15)
    parser.add_argument("--clients-per-therapist", type=int, default=8)
    parser.add_argument("--max-sessions", type=int, default=16)
    parser.add_argument("--double-coded-share", type=float, default=0.2)
    args = parser.parse_args(argv)
    try:
        study = simulate_study(
            seed=args.seed,
            n_therapists_per_framework=args.therapists_per_framework,
            clients_per_therapist=args.clients_per_therapist,
            max_sessions=args.max_sessions,
            double_coded_share=args.double_coded_share,
        )
    except SimulationError as error:
        parser.error(str(error))
    for path in write_study(study, args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    realised = study.truth["realised"]
    print(
        f"SIMULATED study: {realised['clients']} clients, {realised['sessions_attended']} "
        f"attended sessions, dropout {realised['dropout_share']:.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
