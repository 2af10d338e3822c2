"""Inter-rater reliability: statistics, the gate, and the analysis of a coded study.

- :mod:`~resistance_outcomes.reliability.statistics`: ICCs for ratings and counts,
  Cohen's and Fleiss' kappa for categories, Koo & Li labels; pure functions on tidy frames.
- :mod:`~resistance_outcomes.reliability.gate`: each construct against its configured
  minimum; the outcome as a record (``gate.json``) and as Markdown (``gate.md``).
- :mod:`~resistance_outcomes.reliability.study`: the analysis of a coded study from the
  code table, the coding log and the codebook (its constructs and its ``categorical:``
  comparisons), its APA table and Markdown; "not assessed" without double coding.

The public names of the three modules are importable from here.
"""

from .gate import (
    GATE_MODES,
    ReliabilityGateError,
    ReliabilityWarning,
    gate_json,
    gate_markdown,
    gate_outcome,
    not_assessed_sentence,
    read_gate,
    reliability_gate,
    stop_if_strict,
)
from .statistics import (
    COHEN_STATISTIC,
    FLEISS_STATISTIC,
    ICC_K_STATISTIC,
    ICC_STATISTIC,
    MIN_TARGETS,
    ReliabilityInputError,
    cohen_kappa,
    fleiss_kappa_table,
    icc_table,
    kappa_table,
    koo_li_label,
)
from .study import (
    NOT_DOUBLE_CODED,
    TABLE_COLUMNS,
    ReliabilityResult,
    format_reliability_table,
    reliability_analysis,
    reliability_labels,
    reliability_markdown,
)

__all__ = [
    "COHEN_STATISTIC",
    "FLEISS_STATISTIC",
    "GATE_MODES",
    "ICC_K_STATISTIC",
    "ICC_STATISTIC",
    "MIN_TARGETS",
    "NOT_DOUBLE_CODED",
    "TABLE_COLUMNS",
    "ReliabilityGateError",
    "ReliabilityInputError",
    "ReliabilityResult",
    "ReliabilityWarning",
    "cohen_kappa",
    "fleiss_kappa_table",
    "format_reliability_table",
    "gate_json",
    "gate_markdown",
    "gate_outcome",
    "icc_table",
    "kappa_table",
    "koo_li_label",
    "not_assessed_sentence",
    "read_gate",
    "reliability_analysis",
    "reliability_gate",
    "reliability_labels",
    "reliability_markdown",
    "stop_if_strict",
]
