"""Simulation-based power analysis for the project's mixed models.

:func:`simulate_responses` draws responses from a stated truth (no pilot fit needed);
:func:`power_simulation` refits the model to each replicate and reports power with its
Wilson interval, failed, singular and non-converged fits, bias and coverage. Replicate
``i`` is seeded by the ``i``-th child of ``numpy.random.SeedSequence(seed)``, so results do
not depend on how replicates are split into chunks or processes.
"""

from .designs import (
    DesignError,
    apply_attrition,
    attrition_mask,
    client_design,
    person_period_design,
    resample_pilot,
    session_design,
)
from .simulate import (
    POWER_COLUMNS,
    REPLICATE_COLUMNS,
    power_replicates,
    power_simulation,
    replicate_rng,
    simulate_responses,
    summarise_power,
    truth_result,
    wilson_interval,
)
from .truth import (
    TruthError,
    build_truth,
    icc_from_sd,
    log_rate_per_minute,
    log_ratio,
    logit,
    per_session_hazard,
    sd_from_icc,
    truth_from_fit,
)

__all__ = [
    "POWER_COLUMNS",
    "REPLICATE_COLUMNS",
    "power_replicates",
    "power_simulation",
    "replicate_rng",
    "simulate_responses",
    "summarise_power",
    "truth_result",
    "wilson_interval",
]

__all__ += [
    "DesignError",
    "apply_attrition",
    "attrition_mask",
    "client_design",
    "person_period_design",
    "resample_pilot",
    "session_design",
    "TruthError",
    "build_truth",
    "icc_from_sd",
    "log_rate_per_minute",
    "log_ratio",
    "logit",
    "per_session_hazard",
    "sd_from_icc",
    "truth_from_fit",
]
