"""Treatment labels -> therapeutic frameworks, through ``config/frameworks.yaml``.

The map is configuration, never code: each framework lists the labels that belong to it,
labels match ignoring case, spacing, and hyphens or underscores between words, and a label
the map does not list is an error naming it (or, when configured, goes to an ``other``
group). See the comments in ``config/frameworks.yaml`` for the choices made for ambiguous
labels such as CBT.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from resistance_outcomes.io import ConfigError, read_yaml
from resistance_outcomes.validate import Problem, ValidationFailed

__all__ = [
    "MAX_FRAMEWORKS",
    "MIN_FRAMEWORKS",
    "FrameworkMap",
    "UnmappedLabelError",
    "label_key",
    "load_framework_map",
    "map_frameworks",
]

UNMAPPED_CHOICES = ("error", "other")
#: How many frameworks a map may list (besides the ``other`` group): a comparison needs two,
#: and the colour-blind-safe palette frameworks take their colours from has eight
#: (:data:`resistance_outcomes.vocabulary.PALETTE`).
MIN_FRAMEWORKS, MAX_FRAMEWORKS = 2, 8


def label_key(label: str) -> str:
    """The form labels are matched in: lower case, ``-``/``_`` as spaces, single spaces.

    Examples
    --------
    >>> from resistance_outcomes.frameworks import label_key
    >>> label_key("  Cognitive-Behavioural   Therapy ")
    'cognitive behavioural therapy'
    """
    return " ".join(re.sub(r"[-_]", " ", str(label)).casefold().split())


@dataclass(frozen=True)
class FrameworkMap:
    """Framework names in display order, matched labels, and the ``other`` group.

    Attributes
    ----------
    frameworks : tuple of str
        The frameworks, in the order of ``config/frameworks.yaml``.
    labels : dict
        :func:`label_key` of each listed label -> its framework.
    other : str or None
        Name of the group for unlisted labels, when configured.
    unmapped : str
        ``"error"`` (unlisted labels are an error) or ``"other"``.
    source : str
        The file the map was read from, named in error messages.

    Examples
    --------
    >>> from resistance_outcomes.frameworks import FrameworkMap
    >>> fmap = FrameworkMap(("cognitive",), {"cbt": "cognitive"})
    >>> fmap.categories, fmap.lookup(" CBT")
    (('cognitive',), 'cognitive')
    """

    frameworks: tuple[str, ...]
    labels: dict[str, str]
    other: str | None = None
    unmapped: str = "error"
    source: str = "config/frameworks.yaml"

    @property
    def categories(self) -> tuple[str, ...]:
        """The framework categories: the frameworks, then the ``other`` group if any."""
        return self.frameworks + ((self.other,) if self.other else ())

    def lookup(self, label: str) -> str | None:
        """The framework of ``label``; the ``other`` group or None when it is not listed."""
        found = self.labels.get(label_key(label))
        if found is None and self.unmapped == "other":
            return self.other
        return found


class UnmappedLabelError(ValidationFailed):
    """Treatment labels that the framework map does not list; one problem per row.

    ``str()`` lists each label once, with its number of rows and the first rows.
    """

    def __init__(self, problems: list[Problem], source: str, max_rows: int = 5):
        super().__init__(problems)
        self.source = source
        self.max_rows = max_rows

    def __str__(self) -> str:
        by_label: dict[str, list[Problem]] = {}
        for problem in self.problems:
            by_label.setdefault(label_key(problem.value), []).append(problem)
        count = len(by_label)
        lines = [
            f"{count} treatment label{'s' if count != 1 else ''} in {self.problems[0].file} "
            f"{'is' if count == 1 else 'are'} not in {self.source}:"
        ]
        for group in by_label.values():
            rows = [str(problem.row) for problem in group]
            shown = ", ".join(rows[: self.max_rows]) + (
                ", ..." if len(rows) > self.max_rows else ""
            )
            where = f"row {shown}" if len(rows) == 1 else f"rows {shown}"
            lines.append(f"  {group[0].value!r}: {len(rows)} {where.split()[0]} ({where})")
        lines.append(self.problems[0].hint)
        return "\n".join(lines)


def load_framework_map(path: str | Path) -> FrameworkMap:
    """Read and check ``config/frameworks.yaml``.

    The file has ``frameworks:`` (framework name -> list of labels; two to eight
    frameworks, any names, listed in the order tables and figures show them), optionally
    ``other:`` (``name:`` of a group for other labels and its ``labels:``), and
    ``unmapped:`` (``error``, the default, or ``other``). A framework's colour and marker
    in every figure follow from its position in the list
    (:func:`resistance_outcomes.vocabulary.framework_infos`).

    Parameters
    ----------
    path : str or path-like
        The framework map.

    Returns
    -------
    FrameworkMap

    Raises
    ------
    resistance_outcomes.config.ConfigError
        A framework without a list of labels, a label listed under two frameworks, an
        ``unmapped`` value other than error/other, ``unmapped: other`` without an
        ``other`` group, or fewer than two or more than eight frameworks.

    Examples
    --------
    >>> from resistance_outcomes.frameworks import load_framework_map
    >>> fmap = load_framework_map("config/frameworks.yaml")  # doctest: +SKIP
    >>> fmap.lookup("STPP")                                  # doctest: +SKIP
    'psychoanalytic'
    """
    content = read_yaml(path, "framework map")
    where = str(path)
    groups = content.get("frameworks")
    if not isinstance(groups, dict) or not groups:
        raise ConfigError(f"{where}: needs `frameworks:` with each framework's list of labels.")
    other_spec = content.get("other") or {}
    if not isinstance(other_spec, dict):
        raise ConfigError(f"{where}: `other:` needs `name:` and optionally `labels:`.")
    other = other_spec.get("name")
    if other is not None and other in groups:
        raise ConfigError(f"{where}: the other group {other!r} is also a framework name.")
    all_groups = dict(groups) | ({other: other_spec.get("labels") or []} if other else {})
    labels = _collect_labels(all_groups, where)
    unmapped = content.get("unmapped", "error")
    if unmapped not in UNMAPPED_CHOICES:
        raise ConfigError(f"{where}: `unmapped:` is {unmapped!r}; use error or other.")
    if unmapped == "other" and other is None:
        raise ConfigError(f"{where}: `unmapped: other` needs an `other:` group with a `name:`.")
    _check_count(list(map(str, groups)), where)
    return FrameworkMap(tuple(map(str, groups)), labels, other, unmapped, where)


def _check_count(frameworks: list[str], where: str) -> None:
    """Two to eight frameworks, or a ConfigError that says what to do."""
    if MIN_FRAMEWORKS <= len(frameworks) <= MAX_FRAMEWORKS:
        return
    listed = ", ".join(frameworks)
    if len(frameworks) < MIN_FRAMEWORKS:
        raise ConfigError(
            f"{where}: `frameworks:` lists {len(frameworks)} framework ({listed}); list at "
            f"least {MIN_FRAMEWORKS} to compare (labels that fit none of them can go to an "
            "`other:` group)."
        )
    raise ConfigError(
        f"{where}: `frameworks:` lists {len(frameworks)} frameworks ({listed}); at most "
        f"{MAX_FRAMEWORKS} can be told apart by colour in the figures. Merge related "
        "frameworks, or collect the smallest ones in the `other:` group."
    )


def _collect_labels(groups: dict, where: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for framework, entries in groups.items():
        if not isinstance(entries, list):
            raise ConfigError(f"{where}: framework {framework!r} needs a list of labels.")
        for label in entries:
            key = label_key(label)
            if labels.get(key, framework) != framework:
                raise ConfigError(
                    f"{where}: label {label!r} is listed under both {labels[key]!r} and "
                    f"{framework!r}; keep it under one."
                )
            labels[key] = str(framework)
    return labels


def map_frameworks(
    labels: pd.Series,
    fmap: FrameworkMap,
    file: str = "clients",
    rows: Sequence[int] | None = None,
) -> pd.Series:
    """Map treatment labels to frameworks.

    Parameters
    ----------
    labels : pandas.Series
        Treatment labels as written (``treatment_label``).
    fmap : FrameworkMap
        From :func:`load_framework_map`.
    file : str
        The file the labels come from, for the error message.
    rows : sequence of int, optional
        Spreadsheet row of each label. Default: ``labels.index``.

    Returns
    -------
    pandas.Series
        Categorical with categories ``fmap.categories``, same index as ``labels``. Missing
        labels give missing frameworks (an empty ``treatment_label`` is reported by
        validation).

    Raises
    ------
    UnmappedLabelError
        With one :class:`~resistance_outcomes.validate.Problem` per row whose label is not
        listed (unless ``fmap.unmapped == "other"``).

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.frameworks import FrameworkMap, map_frameworks
    >>> fmap = FrameworkMap(("psychoanalytic", "cognitive"),
    ...                     {"pdt": "psychoanalytic", "cbt": "cognitive"})
    >>> map_frameworks(pd.Series(["CBT", " pdt "]), fmap).tolist()
    ['cognitive', 'psychoanalytic']
    """
    rows = list(labels.index if rows is None else rows)
    mapped = labels.map(fmap.lookup, na_action="ignore")
    unmapped = labels.notna() & mapped.isna()
    if unmapped.any():
        problems = [
            Problem(
                file,
                row,
                "treatment_label",
                label,
                f"treatment label {label!r} is not in {fmap.source}",
                f"Add each label under its framework in {fmap.source} (matching ignores "
                "case and spacing), or set `unmapped: other` with an `other:` group.",
            )
            for row, label, bad in zip(rows, labels, unmapped, strict=True)
            if bad
        ]
        raise UnmappedLabelError(problems, fmap.source)
    return pd.Series(
        pd.Categorical(mapped, categories=fmap.categories), index=labels.index, name="framework"
    )
