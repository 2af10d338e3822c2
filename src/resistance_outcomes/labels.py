"""Words for what the tables and the summary print: variables, model terms, groups, levels.

Every variable name goes through the study's :class:`~resistance_outcomes.vocabulary.
Vocabulary` (:meth:`~resistance_outcomes.vocabulary.Vocabulary.label`: the config's
``labels:``, the codebook's construct labels and the columns derived from them, the data
contract's defaults, else the name in words), so that no raw column name is printed.
Framework levels print with :meth:`~resistance_outcomes.vocabulary.Vocabulary.
framework_label`. Without a vocabulary (tests, interactive use) an empty one is used: the
defaults and the names in words.

- :func:`variable_label`: a model variable ("Repair rate (between clients)");
- :func:`level_label`: a level of a factor ("Cognitive", "Arguing");
- :func:`term_label`: a fixed-effect term ("Cognitive × Session (centred)");
- :func:`group_label`: a grouping factor of the random part ("Client within therapist");
- :func:`estimate_labels`, :func:`effect_label`, :func:`effect_labels`,
  :func:`estimate_part_labels`: the estimates of the influence and power tables (coefficients,
  framework contrasts "Cognitive - Behavioral", simple slopes "x in cognitive");
- :func:`framework_words`: a framework inside a sentence ("cognitive");
- :func:`contrast_labels`: the framework contrasts and simple slopes of a table, by their
  parts ("Behavioral - Cognitive | Realistic resistance");
- :func:`lower_first`: a label inside a sentence, acronyms kept ("PSQ tension");
- :func:`stage_words`: an optional part of the analysis ("Inter-rater reliability").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .codebook import humanise
from .vocabulary import Vocabulary

__all__ = [
    "contrast_labels",
    "effect_label",
    "effect_labels",
    "estimate_labels",
    "estimate_part_labels",
    "framework_words",
    "group_label",
    "level_label",
    "lower_first",
    "model_title",
    "stage_words",
    "term_label",
    "variable_label",
    "vocabulary_or_default",
]

#: The factor whose levels are the frameworks (the data contract's column).
FRAMEWORK = "framework"


def vocabulary_or_default(
    vocab: Vocabulary | None = None, labels: Mapping[str, str] | None = None
) -> Vocabulary:
    """``vocab`` (or an empty vocabulary) with ``labels`` merged over its own labels.

    Examples
    --------
    >>> vocabulary_or_default(labels={"dose": "Dose"}).label("dose")
    'Dose'
    """
    vocab = vocab if vocab is not None else Vocabulary()
    if labels:
        vocab = replace(
            vocab, labels={**vocab.labels, **{str(k): str(v) for k, v in labels.items()}}
        )
    return vocab


def lower_first(text: str) -> str:
    """``text`` for the middle of a sentence: first letter lower case unless the first word
    is an acronym (two capitals, as in "PSQ", "CBT").

    Examples
    --------
    >>> lower_first("Repair rate"), lower_first("PSQ tension"), lower_first("")
    ('repair rate', 'PSQ tension', '')
    """
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def variable_label(
    name: str, labels: Mapping[str, str] | None = None, vocab: Vocabulary | None = None
) -> str:
    """Words for a model variable, never its raw column name.

    Parameters
    ----------
    name : str
        Column name as it appears in the formula.
    labels : mapping, optional
        Extra or replacement labels, over the vocabulary's.
    vocab : Vocabulary, optional
        The study's vocabulary (``results/data/vocabulary.json``); default: an empty one
        (the data contract's labels, else the name in words).

    Returns
    -------
    str

    Examples
    --------
    >>> variable_label("repair_rate_between"), variable_label("sustain_talk_rate")
    ('Repair rate (between clients)', 'Sustain talk rate')
    """
    return vocabulary_or_default(vocab, labels).label(str(name))


def level_label(factor: str | None, level, vocab: Vocabulary | None = None) -> str:
    """The printed name of a factor level: a framework's label for ``framework``, else the
    level's label when it names a variable or construct (``arguing`` of a profile), else
    the level in words.

    Examples
    --------
    >>> level_label("framework", "cognitive"), level_label("site", "north_east")
    ('Cognitive', 'North east')
    """
    vocab = vocabulary_or_default(vocab)
    text = str(level)
    if factor == FRAMEWORK or (factor is None and text in vocab.framework_names(False)):
        return vocab.framework_label(text)
    known = vocab.all_labels()
    if text in known:
        return known[text]
    return humanise(text)


def framework_words(level, vocab: Vocabulary | None = None) -> str:
    """A framework's label for the middle of a sentence ("cognitive").

    Examples
    --------
    >>> framework_words("psychodynamic_short")
    'psychodynamic short'
    """
    return lower_first(level_label(FRAMEWORK, level, vocab))


def contrast_labels(table, vocab: Vocabulary | None = None) -> dict[str, str]:
    """Labels of the framework contrasts and simple slopes of a table (``kind``
    ``pairwise`` or ``simple_slope``, by ``term``), made from its parts' columns:
    ``variable``, ``level``, ``reference`` and ``by`` (as ``contrasts.csv`` and
    ``influence.csv`` have them): "Behavioral - Cognitive", "Repair rate (between clients)
    in Cognitive", with " | <by level>" within a level of a second factor. Other kinds get
    no label here (coefficients: :func:`term_label`).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"kind": ["pairwise", "simple_slope", "coefficient"],
    ...     "term": ["b - c | resistance_covert", "session_c in c", "x"],
    ...     "variable": ["framework", "session_c", ""], "level": ["b", "c", ""],
    ...     "reference": ["c", "", ""], "by": ["resistance_covert", "", ""]})
    >>> contrast_labels(table)
    {'b - c | resistance_covert': 'B - C | Resistance covert', 'session_c in c': \
'Session (centred) in C'}
    """
    vocab = vocabulary_or_default(vocab)
    out = {}
    for row in table.to_dict("records"):
        kind = row.get("kind")
        if kind not in ("pairwise", "simple_slope"):
            continue
        text = {k: _text(row.get(k)) for k in ("variable", "level", "reference", "by")}
        if kind == "pairwise":
            factor = text["variable"] or None
            label = (
                f"{level_label(factor, text['level'], vocab)} - "
                f"{level_label(factor, text['reference'], vocab)}"
            )
        else:
            label = f"{vocab.label(text['variable'])} in {level_label(None, text['level'], vocab)}"
        if text["by"]:
            label += f" | {level_label(None, text['by'], vocab)}"
        out[str(row["term"])] = label
    return out


def _text(value) -> str:
    """A cell as text, missing as ""."""
    return "" if value is None or value != value or str(value) in ("nan", "None") else str(value)


def _part_label(part: str, factor_levels: Mapping, vocab: Vocabulary) -> str:
    patsy_style = re.fullmatch(r"(\w+)\[T\.(.+)\]", part)
    if patsy_style:
        return level_label(patsy_style[1], patsy_style[2], vocab)
    for factor, levels in factor_levels.items():
        level = part.removeprefix(factor)
        if level != part and level in {str(lv) for lv in levels}:
            return level_label(factor, level, vocab)
    return vocab.label(part)


def term_label(
    term: str,
    factor_levels: Mapping[str, Sequence] | None = None,
    labels: Mapping[str, str] | None = None,
    vocab: Vocabulary | None = None,
) -> str:
    """Human-readable label of a fixed-effect term.

    "(Intercept)" reads "Intercept"; a factor level (``frameworkcognitive`` or patsy's
    ``framework[T.cognitive]``) reads as the level's label; numeric variables through
    :func:`variable_label`; the parts of an interaction are joined by " × ".

    Parameters
    ----------
    term : str
        Term as in ``coefficients.csv``.
    factor_levels : mapping, optional
        Factor -> levels (``spec.json``'s ``factor_levels``), used to split
        ``frameworkcognitive`` into factor and level.
    labels : mapping, optional
        Extra variable labels.
    vocab : Vocabulary, optional
        The study's vocabulary.

    Returns
    -------
    str

    Examples
    --------
    >>> levels = {"framework": ["systemic", "humanistic"]}
    >>> term_label("frameworkhumanistic:session_c", levels)
    'Humanistic × Session (centred)'
    >>> term_label("(Intercept)"), term_label("I(x ** 2)")
    ('Intercept', 'I(x ** 2)')
    """
    if term == "(Intercept)":
        return "Intercept"
    vocab = vocabulary_or_default(vocab, labels)
    parts = str(term).split(":")
    return " \u00d7 ".join(_part_label(p, factor_levels or {}, vocab) for p in parts)


def group_label(group: str, vocab: Vocabulary | None = None) -> str:
    """A grouping factor of the random part: ``therapist:client`` reads "Client within
    therapist".

    Examples
    --------
    >>> group_label("site:therapist")
    'Therapist within site'
    """
    vocab = vocabulary_or_default(vocab)
    parts = [vocab.label(p) for p in str(group).split(":")]
    inner = parts[-1]
    outer = [lower_first(p) for p in reversed(parts[:-1])]
    return inner + "".join(f" within {p}" for p in outer)


# --- labels of tested estimates (power analyses, influence of single groups) --------------


def effect_label(term: str, labels: Mapping[str, str]) -> str:
    """The label of a tested term: its own in ``labels``, else ``term`` with the labels of
    the names it contains substituted (longest names first).

    Examples
    --------
    >>> effect_label("dose in cbt", {"cbt": "CBT", "dose": "Dose"})
    'Dose in CBT'
    >>> effect_label("dose in cbt", {"dose in cbt": "Slope of dose in CBT"})
    'Slope of dose in CBT'
    """
    if term in labels:
        return labels[term]
    for name, label in sorted(labels.items(), key=lambda kv: -len(kv[0])):
        term = term.replace(name, label)
    return term


def effect_labels(
    terms: Sequence[str],
    labels: Mapping[str, str] | None = None,
    factor_levels: Mapping[str, Sequence] | None = None,
) -> list[str]:
    """:func:`effect_label` of each term, where a coefficient of a factor level
    (``frameworkcognitive`` with ``factor_levels={"framework": [...]}``) reads as the
    difference from the factor's reference level (its first), "Cognitive - Behavioral": the
    levels' labels from ``labels``, else the level with underscores as spaces, capitalised.

    Examples
    --------
    >>> effect_labels(["frameworkb", "x", "b - a"], {"a": "A", "b": "B"}, {"framework": ["a", "b"]})
    ['B - A', 'x', 'B - A']
    """
    labels = dict(labels or {})
    for factor, levels in (factor_levels or {}).items():
        levels = [str(v) for v in levels]
        for level in levels[1:]:
            a, b = (labels.get(v, v.replace("_", " ").capitalize()) for v in (level, levels[0]))
            labels.setdefault(f"{factor}{level}", f"{a} - {b}")
    return [effect_label(str(term), labels) for term in terms]


def estimate_part_labels(terms: Sequence[str], vocab: Vocabulary | None) -> dict[str, str]:
    """Labels of the names tested terms contain ("x in level", "a - b", a coefficient):
    the frameworks' labels, and the vocabulary's label of each other name with an
    underscore; none without a vocabulary.

    Examples
    --------
    >>> from resistance_outcomes.vocabulary import FrameworkInfo, Vocabulary
    >>> vocab = Vocabulary(frameworks=[FrameworkInfo("cbt", "CBT", "#000000", "o"),
    ...                                FrameworkInfo("pd", "Psychodynamic", "#E69F00", "s")])
    >>> estimate_part_labels(["repair_rate in cbt", "pd - cbt"], vocab)
    {'cbt': 'CBT', 'pd': 'Psychodynamic', 'repair_rate': 'Repair rate'}
    """
    if vocab is None:
        return {}
    labels = {f.name: f.label for f in vocab.frameworks}
    words = {w for term in map(str, terms) for w in re.split(r" in | - ", term)}
    return labels | {w: vocab.label(w) for w in sorted(words) if w not in labels and "_" in w}


def estimate_labels(
    estimates, factor_levels: Mapping[str, Sequence] | None, vocab: Vocabulary | None
) -> dict[str, str]:
    """Term -> label of a table of estimates (columns ``term`` and ``kind``, as
    influence.csv): coefficients by :func:`term_label`, the others (contrasts, slopes,
    variance parameters) by :func:`effect_label` with :func:`estimate_part_labels`; none
    without a vocabulary.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.vocabulary import FrameworkInfo, Vocabulary
    >>> vocab = Vocabulary(frameworks=[FrameworkInfo("cbt", "CBT", "#000000", "o"),
    ...                                FrameworkInfo("pd", "Psychodynamic", "#E69F00", "s")])
    >>> table = pd.DataFrame({"term": ["frameworkpd", "pd - cbt"],
    ...                       "kind": ["coefficient", "pairwise"]})
    >>> estimate_labels(table, {"framework": ["cbt", "pd"]}, vocab)
    {'frameworkpd': 'Psychodynamic', 'pd - cbt': 'Psychodynamic - CBT'}
    """
    if vocab is None:
        return {}
    parts = estimate_part_labels(estimates["term"], vocab)
    out = {}
    for term, kind in estimates[["term", "kind"]].drop_duplicates().itertuples(index=False):
        term = str(term)
        if kind == "coefficient":
            out[term] = term_label(term, factor_levels or {}, vocab=vocab)
        else:
            out[term] = effect_label(term, parts)
    return out


def model_title(name: str, spec: Mapping | None = None) -> str:
    """A model's printed name: its ``description`` when it has one, else its name in words.

    Examples
    --------
    >>> model_title("sustain_talk_rate"), model_title("m", {"description": "Dropout"})
    ('Sustain talk rate', 'Dropout')
    """
    if spec and spec.get("description"):
        return str(spec["description"])
    return humanise(name)


#: Optional parts of the analysis (the stages of ``results/data/vocabulary.json``) in words.
STAGE_WORDS = {
    "reliability": "Inter-rater reliability",
    "ruptures": "Ruptures",
    "repair": "Rupture repair",
    "alliance": "Alliance",
    "psq": "Post-Session Questionnaire",
    "responses": "Responses followed by repair (rupture level)",
}


def stage_words(stage: str, vocab: Vocabulary | None = None) -> str:
    """An optional part of the analysis in words; the profile is named by its composite.

    Examples
    --------
    >>> stage_words("reliability"), stage_words("profile")
    ('Inter-rater reliability', 'Profile of a composite construct')
    """
    if stage == "profile":
        profile = (vocab.profile if vocab is not None else None) or ""
        if profile:
            return f"Profile of {lower_first(vocabulary_or_default(vocab).label(profile))}"
        return "Profile of a composite construct"
    return STAGE_WORDS.get(stage, humanise(stage))
