"""The study's vocabulary, read from one place: constructs, frameworks, labels, stages.

Everything that names a study lives in configuration (the codebook, the framework map and
the run's config). :func:`build_vocabulary` reads it once, together with what the canonical
tables hold, and the workflow writes the result to ``results/data/vocabulary.json``; every
later step reads that file (:meth:`Vocabulary.load`) instead of keeping its own list of
constructs, frameworks, colours or labels.

- **constructs**: the declared constructs present in the sessions table, in codebook order,
  each with its label, kind (count, rating, boolean), parts (composites) and rate stem;
- **frameworks**: in the order of the framework map, each with its label, colour and marker
  (one colour-blind-safe palette by position; the ``other`` group is grey and last);
- **labels**: printed names of variables (constructs and the columns derived from them, the
  data contract's columns, covariates, and the config's ``labels:``);
- **stages**: which optional parts of the analysis have data (reliability, the profile of a
  composite's parts, repair, alliance, PSQ), and why not when they have none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from resistance_outcomes.codebook import Codebook, humanise
from resistance_outcomes.frameworks import FrameworkMap

__all__ = [
    "DEFAULT_LABELS",
    "OTHER_COLOR",
    "PALETTE",
    "ConstructInfo",
    "FrameworkInfo",
    "Stage",
    "Vocabulary",
    "build_vocabulary",
]

#: Okabe & Ito (2008) colours, safe for the common colour-vision deficiencies; frameworks
#: take them by their position in the framework map.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
#: Markers by position, so that frameworks differ in greyscale print too.
MARKERS = ("o", "s", "^", "v", "P", "X", "*", "h")
#: The ``other`` group (labels the map does not list).
OTHER_COLOR, OTHER_MARKER = "#999999", "D"

#: Printed names of the data contract's own columns and of the pipeline's derived
#: variables. Constructs and covariates get theirs from the codebook and the config.
DEFAULT_LABELS = {
    "framework": "Framework",
    "therapist": "Therapist",
    "client": "Client",
    "study": "Study",
    "site": "Site",
    "session": "Session",
    "session_c": "Session (centred)",
    "log_time": "Log session number",
    "time": "Session number",
    "attended": "Attended",
    "minutes": "Session minutes",
    "homework_done": "Homework done",
    "homework_rate": "Homework completion rate",
    "alliance": "Alliance",
    "alliance_mean": "Alliance (client mean)",
    "psq_tension": "PSQ tension",
    "psq_intensity": "PSQ intensity",
    "psq_resolution": "PSQ resolution",
    "repair_rate": "Repair rate",
    "unrepaired": "Unrepaired ruptures",
    "unrepaired_rate": "Unrepaired ruptures per session",
    "dropout": "Dropout",
    "event": "Dropout after the session",
    "sessions_attended": "Sessions attended",
    "sessions_scheduled": "Sessions scheduled",
    "attendance_rate": "Attendance rate",
    "planned_sessions": "Planned sessions",
    "unit": "Unit",
    "rupture_type": "Rupture type",
    "resolution": "Resolution rating",
}

_SUFFIXES = {"_within": "within client", "_between": "between clients"}


@dataclass(frozen=True)
class ConstructInfo:
    """A declared construct present in the data (see :mod:`resistance_outcomes.codebook`)."""

    name: str
    label: str
    kind: str
    rule: str
    parts: tuple[str, ...] = ()
    stem: str = ""
    description: str = ""

    @property
    def rate_column(self) -> str:
        """The client-level rate: ``<stem>_rate``."""
        return f"{self.stem or self.name}_rate"


@dataclass(frozen=True)
class FrameworkInfo:
    """One framework: name as in the data, printed label, colour, marker, presence."""

    name: str
    label: str
    color: str
    marker: str
    present: bool = True
    other: bool = False


@dataclass(frozen=True)
class Stage:
    """Whether an optional part of the analysis has data, and why not."""

    assessed: bool
    reason: str = ""


@dataclass
class Vocabulary:
    """The study's vocabulary; see the module docstring.

    Examples
    --------
    >>> from resistance_outcomes.vocabulary import Vocabulary, ConstructInfo
    >>> vocab = Vocabulary(constructs={"sustain_talk": ConstructInfo(
    ...     "sustain_talk", "Sustain talk", "count", "codes", stem="sustain_talk")})
    >>> vocab.label("sustain_talk_rate_between"), vocab.label("x_1")
    ('Sustain talk per session (between clients)', 'X 1')
    """

    constructs: dict[str, ConstructInfo] = field(default_factory=dict)
    frameworks: list[FrameworkInfo] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stages: dict[str, Stage] = field(default_factory=dict)
    profile: str | None = None
    config_file: str = "config/config.yaml"

    # ------------------------------------------------------------------ labels

    def label(self, name: str) -> str:
        """The printed name of a variable, never its raw column name.

        Config ``labels:`` first, then constructs and the columns derived from them
        (``<c>_total``, ``<stem>_rate``, ``<stem>_rate_hour``, ``_within``, ``_between``),
        then :data:`DEFAULT_LABELS`, then the name in words.
        """
        known = self.all_labels()
        if name in known:
            return known[name]
        for suffix, words in _SUFFIXES.items():
            stem = name.removesuffix(suffix)
            if stem != name:
                return f"{self.label(stem)} ({words})"
        return humanise(name)

    def all_labels(self) -> dict[str, str]:
        """Every variable with a known label: defaults, constructs, then the config's.

        Ratings also label their client mean ``<c>_mean``; the profiled composite labels
        the columns of the long profile levels, ``profile_type``, ``profile_form`` and
        ``profile_count``.
        """
        labels = dict(DEFAULT_LABELS)
        for c in self.constructs.values():
            labels[c.name] = c.label
            if c.kind == "rating":
                labels[f"{c.name}_mean"] = f"{c.label} (client mean)"
                continue
            labels[f"{c.name}_total"] = f"{c.label} (total)"
            labels[c.rate_column] = f"{c.label} per session"
            labels[f"{c.rate_column}_hour"] = f"{c.label} per hour"
        if self.profile in self.constructs:
            composite = self.constructs[self.profile].label
            labels["profile_type"] = f"{composite} type"
            labels["profile_form"] = f"{composite} form"
            labels["profile_count"] = f"{composite} count"
        labels.update(self.labels)
        return labels

    # -------------------------------------------------------------- frameworks

    def framework_names(self, present_only: bool = True) -> list[str]:
        """Framework names in reporting order (the framework map's, ``other`` last)."""
        return [f.name for f in self.frameworks if f.present or not present_only]

    def order(self, values: Iterable) -> list[str]:
        """The values present in ``values``, in reporting order; unknown ones last, sorted."""
        present = {str(v) for v in values if not pd.isna(v)}
        known = [f.name for f in self.frameworks if f.name in present]
        return known + sorted(present - set(known))

    def colors(self) -> dict[str, str]:
        """Framework name -> colour."""
        return {f.name: f.color for f in self.frameworks}

    def markers(self) -> dict[str, str]:
        """Framework name -> marker."""
        return {f.name: f.marker for f in self.frameworks}

    def framework_label(self, name: str) -> str:
        """The printed name of a framework."""
        return next((f.label for f in self.frameworks if f.name == name), humanise(name))

    # --------------------------------------------------------------- constructs

    def count_constructs(self) -> list[str]:
        """Count constructs present, in codebook order."""
        return [c.name for c in self.constructs.values() if c.kind == "count"]

    def profile_forms(self) -> list[str]:
        """The forms of the profiled composite that are present: its parts that are
        composites themselves (resistance = overt + covert + ...); empty when its parts are
        plain constructs."""
        if not self.profile or self.profile not in self.constructs:
            return []
        parts = [p for p in self.constructs[self.profile].parts if p in self.constructs]
        return [p for p in parts if self.constructs[p].parts]

    def profile_parts(self) -> list[str]:
        """The types the profiled composite is made of that are present, form by form (the
        parts of each form, or the composite's own parts when it has no forms); empty
        without a profiled composite."""
        if not self.profile or self.profile not in self.constructs:
            return []
        types: list[str] = []
        for part in self.constructs[self.profile].parts:
            if part not in self.constructs:
                continue
            inner = self.constructs[part].parts
            types += [p for p in inner if p in self.constructs] if inner else [part]
        return types

    def form_of(self, part: str) -> str | None:
        """The form a type of the profiled composite belongs to (None without forms)."""
        for form in self.profile_forms():
            if part in self.constructs[form].parts:
                return form
        return None

    def stage(self, name: str) -> Stage:
        """The stage's state; a stage never computed counts as not assessed."""
        return self.stages.get(name, Stage(False, "not part of this run"))

    # ----------------------------------------------------------------- storage

    def to_dict(self) -> dict:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return {
            "constructs": [asdict(c) for c in self.constructs.values()],
            "frameworks": [asdict(f) for f in self.frameworks],
            "labels": dict(self.labels),
            "stages": {k: asdict(v) for k, v in self.stages.items()},
            "profile": self.profile,
            "config_file": self.config_file,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Vocabulary:
        """The inverse of :meth:`to_dict`."""
        constructs = {}
        for entry in data.get("constructs", []):
            entry = {**entry, "parts": tuple(entry.get("parts", ()))}
            constructs[entry["name"]] = ConstructInfo(**entry)
        return cls(
            constructs=constructs,
            frameworks=[FrameworkInfo(**f) for f in data.get("frameworks", [])],
            labels=dict(data.get("labels", {})),
            stages={k: Stage(**v) for k, v in (data.get("stages") or {}).items()},
            profile=data.get("profile"),
            config_file=data.get("config_file", "config/config.yaml"),
        )

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read ``results/data/vocabulary.json``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_json(self) -> str:
        """The vocabulary as JSON text (sorted keys, for byte-identical reruns)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def framework_infos(fmap: FrameworkMap, present: Iterable[str] = ()) -> list[FrameworkInfo]:
    """Frameworks of the map with colour and marker by position; ``other`` grey and last.

    Examples
    --------
    >>> from resistance_outcomes.frameworks import FrameworkMap
    >>> fmap = FrameworkMap(("humanistic", "systemic"), {}, other="other", unmapped="other")
    >>> [(f.name, f.color) for f in framework_infos(fmap, ["systemic", "other"])]
    [('humanistic', '#0072B2'), ('systemic', '#E69F00'), ('other', '#999999')]
    """
    present = set(map(str, present))
    infos = [
        FrameworkInfo(
            name,
            humanise(name),
            PALETTE[i % len(PALETTE)],
            MARKERS[i % len(MARKERS)],
            present=not present or name in present,
        )
        for i, name in enumerate(fmap.frameworks)
    ]
    if fmap.other:
        infos.append(
            FrameworkInfo(
                fmap.other,
                humanise(fmap.other),
                OTHER_COLOR,
                OTHER_MARKER,
                present=not present or fmap.other in present,
                other=True,
            )
        )
    return infos


def _has_values(frame: pd.DataFrame | None, column: str) -> bool:
    return frame is not None and column in frame and frame[column].notna().any()


def double_coded_sessions(codes: pd.DataFrame | None, coding_log: pd.DataFrame | None) -> int:
    """Sessions coded by two or more coders (the reliability sample).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"study": "s", "client": ["a", "a", "b"], "session": 1,
    ...                     "coder": ["x", "y", "x"]})
    >>> double_coded_sessions(None, log)
    1
    """
    key = ["study", "client", "session"]
    for frame in (coding_log, codes):
        if frame is not None and len(frame) and {*key, "coder"} <= set(frame.columns):
            coders = frame.groupby(key, observed=True)["coder"].nunique()
            return int((coders >= 2).sum())
    return 0


def build_vocabulary(
    codebook: Codebook,
    fmap: FrameworkMap,
    sessions: pd.DataFrame,
    clients: pd.DataFrame | None = None,
    codes: pd.DataFrame | None = None,
    coding_log: pd.DataFrame | None = None,
    labels: Mapping[str, str] | None = None,
    profile: str | None = None,
    config_file: str = "config/config.yaml",
    rupture_responses: Mapping | None = None,
    repair_threshold: float = 4,
) -> Vocabulary:
    """The vocabulary of one run, from its configuration and its canonical tables.

    Parameters
    ----------
    codebook : Codebook
        The declared constructs (``config/codebook.yaml``).
    fmap : FrameworkMap
        The framework map (order of the frameworks, the ``other`` group).
    sessions, clients, codes, coding_log : pandas.DataFrame
        The canonical tables; a construct is present when the sessions table has its
        column with at least one value.
    labels : mapping, optional
        The config's ``labels:`` (variable -> printed name), over every default.
    profile : str, optional
        A composite construct whose parts are compared in the profile (config
        ``descriptives.profile``).
    config_file : str
        The config file of the run, named in messages.
    rupture_responses : mapping, optional
        The config's ``rupture_responses:`` section: the stage ``responses`` (the
        rupture-level analysis of therapist responses) is assessed when the code table has
        rupture units, their ratings and codes of a response
        (:func:`resistance_outcomes.rupture_level.responses_stage`); without the section
        the vocabulary has no such stage.
    repair_threshold : float
        ``coding.repair_threshold``.

    Returns
    -------
    Vocabulary

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import Codebook, Construct
    >>> from resistance_outcomes.frameworks import FrameworkMap
    >>> cb = Codebook({}, {"sustain_talk": Construct("sustain_talk", "column",
    ...                    label="Sustain talk", value_kind="count")})
    >>> sessions = pd.DataFrame({"study": "s", "client": "a", "session": [1],
    ...                          "attended": [True], "sustain_talk": [3]})
    >>> vocab = build_vocabulary(cb, FrameworkMap(("cbt", "pdt"), {}), sessions)
    >>> list(vocab.constructs), vocab.stage("reliability").reason
    (['sustain_talk'], 'no double-coded sessions')
    """
    constructs = {}
    for name, c in codebook.constructs.items():
        if c.aggregate == "none" or not _has_values(sessions, name):
            continue
        constructs[name] = ConstructInfo(
            name=name,
            label=c.printed,
            kind=c.kind,
            rule=c.aggregate,
            parts=tuple(p for p in c.of),
            stem=c.rate_stem,
            description=c.description,
        )
    present = clients["framework"].dropna().astype(str).unique() if clients is not None else ()
    vocab = Vocabulary(
        constructs=constructs,
        frameworks=framework_infos(fmap, present),
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        profile=profile,
        config_file=str(config_file),
    )
    vocab.stages = _stages(vocab, codebook, sessions, codes, coding_log, profile)
    if rupture_responses:  # a run without the section has no such stage
        from resistance_outcomes.rupture_level import responses_stage  # imports derive

        assessed, reason = responses_stage(
            codes, codebook, rupture_responses, repair_threshold, config_file
        )
        vocab.stages["responses"] = Stage(assessed, reason)
    return vocab


def _stages(vocab, codebook, sessions, codes, coding_log, profile) -> dict[str, Stage]:
    stages = {}
    double = double_coded_sessions(codes, coding_log)
    stages["reliability"] = (
        Stage(True, f"{double} double-coded sessions")
        if double
        else Stage(False, "no double-coded sessions")
    )
    if not profile:
        stages["profile"] = Stage(False, "no composite construct chosen for the profile")
    elif profile not in codebook.constructs:
        stages["profile"] = Stage(False, f"construct {profile!r} is not in the codebook")
    elif len(vocab.profile_parts()) < 2:
        parts = ", ".join(codebook.constructs[profile].of) or "none declared"
        stages["profile"] = Stage(False, f"fewer than two of its parts were coded ({parts})")
    else:
        stages["profile"] = Stage(True, ", ".join(vocab.profile_parts()))
    have_repair = {"ruptures", "repaired"} <= set(vocab.constructs)
    stages["repair"] = (
        Stage(True) if have_repair else Stage(False, "no coding of ruptures and their repair")
    )
    stages["ruptures"] = (
        Stage(True) if "ruptures" in vocab.constructs else Stage(False, "no coding of ruptures")
    )
    stages["alliance"] = (
        Stage(True) if _has_values(sessions, "alliance") else Stage(False, "no alliance ratings")
    )
    psq = [
        c for c in ("psq_tension", "psq_intensity", "psq_resolution") if _has_values(sessions, c)
    ]
    stages["psq"] = Stage(True) if psq else Stage(False, "no Post-Session Questionnaire items")
    return stages


def not_assessed_text(stage: Stage, what: str) -> str:
    """The sentence a report shows for a stage without data.

    Examples
    --------
    >>> not_assessed_text(Stage(False, "no double-coded sessions"), "Inter-rater reliability")
    'Inter-rater reliability: not assessed (no double-coded sessions).'
    """
    return f"{what}: not assessed ({stage.reason})."


def ordered(values: Sequence[str], order: Sequence[str]) -> list[str]:
    """``values`` in the order of ``order``; the rest after, as they come."""
    return [v for v in order if v in values] + [v for v in values if v not in order]
