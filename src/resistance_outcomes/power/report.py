"""Power analyses of a run configuration: design points, chunks, and their report.

An analysis (an entry under ``power: analyses:``) names a configured model (its formula,
family, REML and quadrature settings), a truth (stated, or ``{from: <model folder>,
override: ...}``), the tested quantities, the replicates and the design dimensions to
vary. Its design points are the combinations of the varied sizes, numbered from 0 in the
order of the product; point ``k`` is seeded by ``SeedSequence([seed, k])`` (its
replicates) and ``SeedSequence([seed, k, 1])`` (a pilot's resampling), so every job of
every chunk gives the same rows whichever jobs run it.

- :func:`design_points`, :func:`chunk_ranges`: the fan-out;
- :func:`point_rows`: the rows of one design point (resampled pilot or planned design);
- :func:`power_chunk`: one chunk's replicate rows, with progress in the log;
- :func:`aggregate_power`: the chunks summarised, one row per design point and term;
- :func:`power_figure`, :func:`power_table`, :func:`power_sentences`: the report.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..labels import effect_label
from ..labels import effect_labels as label_effects
from ..models import ModelSpecError
from . import designs
from .simulate import REPLICATE_COLUMNS, power_replicates, summarise_power

__all__ = [
    "PowerConfigError",
    "aggregate_power",
    "analysis_attrition",
    "chunk_ranges",
    "design_points",
    "effect_labels",
    "point_rows",
    "point_seed",
    "power_chunk",
    "power_figure",
    "power_section",
    "power_sentences",
    "power_table",
    "table_markdown",
]

log = logging.getLogger(__name__)

#: The sizes a design point may vary.
SIZES = ("therapists_per_framework", "clients_per_therapist", "planned_sessions")
_SHAPES = {
    "client": designs.client_design,
    "session": designs.session_design,
    "person_period": designs.person_period_design,
}


class PowerConfigError(ValueError):
    """A ``power:`` analysis is malformed; the message names the analysis and the key."""


def design_points(name: str, entry: Mapping) -> pd.DataFrame:
    """The design points of analysis ``name``: one row per combination of varied sizes.

    Examples
    --------
    >>> design_points("a", {"vary": {"therapists_per_framework": [6, 10]}})
    ... # doctest: +NORMALIZE_WHITESPACE
       point  therapists_per_framework
    0      0                         6
    1      1                        10
    """
    vary = entry.get("vary") or {}
    if not isinstance(vary, Mapping) or not 1 <= len(vary) <= 2:
        raise PowerConfigError(f"power.analyses.{name}.vary: give one or two sizes to vary")
    for key, values in vary.items():
        if key not in SIZES:
            raise PowerConfigError(
                f"power.analyses.{name}.vary: {key!r} is not a design size; use {list(SIZES)}"
            )
        if not isinstance(values, list) or not values:
            raise PowerConfigError(f"power.analyses.{name}.vary.{key}: give a list of sizes")
    rows = list(itertools.product(*vary.values()))
    table = pd.DataFrame(rows, columns=list(vary))
    table.insert(0, "point", range(len(table)))
    return table


def chunk_ranges(replicates: int, chunk_size: int) -> list[tuple[int, int]]:
    """Replicate ranges ``[start, stop)`` of the chunks.

    Examples
    --------
    >>> chunk_ranges(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    if int(replicates) < 1 or int(chunk_size) < 1:
        raise PowerConfigError("replicates and chunk_size must be whole numbers >= 1")
    return [(a, min(a + chunk_size, replicates)) for a in range(0, int(replicates), chunk_size)]


def point_seed(seed: int, point: int, stream: int = 0) -> int:
    """The seed of design point ``point`` (stream 0: replicates; 1: resampling).

    Examples
    --------
    >>> point_seed(1, 0) == point_seed(1, 0) != point_seed(1, 1)
    True
    """
    key = [int(seed), int(point)] + ([int(stream)] if stream else [])
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint32)[0])


def _sizes(entry: Mapping, point: Mapping) -> dict:
    return {k: int(point[k]) for k in (entry.get("vary") or {})}


def point_rows(
    name: str,
    entry: Mapping,
    point: Mapping,
    seed: int,
    pilot_frame: pd.DataFrame | None = None,
    factor_levels: Mapping | None = None,
) -> pd.DataFrame:
    """The rows design point ``point`` is simulated on.

    With ``pilot_frame`` (a pilot's model frame), :func:`designs.resample_pilot` at the
    point's sizes, seeded by ``point_seed(seed, point, 1)``; ``factor_levels`` (the pilot's
    ``spec.json``) restores the level order of its factors, so the pilot's coefficient
    names apply. Otherwise the generator of ``entry["design"]["shape"]`` (client, session,
    person_period) with the design's other keys and the point's sizes.

    Examples
    --------
    >>> entry = {"design": {"shape": "client", "frameworks": ["a", "b"],
    ...          "clients_per_therapist": 2}, "vary": {"therapists_per_framework": [3]}}
    >>> len(point_rows("x", entry, {"point": 0, "therapists_per_framework": 3}, 1))
    12
    """
    sizes = _sizes(entry, point)
    if pilot_frame is not None:
        frame = pilot_frame.copy()
        for column, levels in (factor_levels or {}).items():
            if column in frame:
                frame[column] = pd.Categorical(frame[column].astype(str), categories=levels)
        if "therapists_per_framework" not in sizes:
            raise PowerConfigError(
                f"power.analyses.{name}: a pilot design varies therapists_per_framework"
            )
        return designs.resample_pilot(
            frame,
            sizes["therapists_per_framework"],
            sizes.get("clients_per_therapist"),
            seed=point_seed(seed, int(point["point"]), 1),
        )
    design = dict(entry.get("design") or {})
    shape = design.pop("shape", None)
    if shape not in _SHAPES:
        raise PowerConfigError(
            f"power.analyses.{name}.design.shape: {shape!r}; use one of {list(_SHAPES)} "
            "(or a truth with from: a pilot model folder)"
        )
    return _SHAPES[shape](**{**design, **sizes})


def analysis_attrition(entry: Mapping) -> bool | Mapping:
    """The attrition of an analysis: its ``attrition`` key, by default true for a planned
    person-period design (the hazard's events end each client's rows) and false otherwise.

    Examples
    --------
    >>> analysis_attrition({"design": {"shape": "person_period"}})
    True
    >>> analysis_attrition({"truth": {"from": "results/models/dropout_hazard"}})
    False
    """
    shape = (entry.get("design") or {}).get("shape")
    return entry.get("attrition", shape == "person_period")


def power_chunk(
    formula: str,
    data: pd.DataFrame,
    family: str,
    truth: Mapping,
    test,
    start: int,
    stop: int,
    seed: int,
    reml: bool = True,
    nagq: int = 1,
    total_fits: int | None = None,
    adjust: str = "none",
    attrition: bool | Mapping = False,
) -> pd.DataFrame:
    """Replicates ``start .. stop - 1`` (:func:`power_replicates`, with its ``adjust`` and
    ``attrition``), logging the number of fits before starting and, after the first
    replicate, an estimate of the time to finish (of this chunk, and of ``total_fits`` fits
    when given, on one core).

    Examples
    --------
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(6), 4), "x": np.tile([0.0, 1], 12)})
    >>> truth = {"fixed": {"(Intercept)": 0.0, "x": 1.0}, "sd": {"g": 0.5}, "sigma": 1.0}
    >>> len(power_chunk("y ~ x + (1 | g)", df, "gaussian", truth, "x", 0, 2, seed=2))
    2
    """
    n = int(stop) - int(start)
    log.info("%d fits (replicates %d to %d) on %d rows", n, start, stop - 1, len(data))
    args = (formula, data, family, truth, test)
    options = {
        "seed": seed,
        "reml": reml,
        "nagq": nagq,
        "adjust": adjust,
        "attrition": attrition,
    }
    began = time.monotonic()
    first = power_replicates(*args, start=start, stop=start + 1, **options)
    per_fit = time.monotonic() - began
    message = f"first fit: {per_fit:.2f} s; this chunk needs about {per_fit * (n - 1):.0f} s more"
    if total_fits:
        message += f"; all {total_fits} fits of the analysis about {per_fit * total_fits:.0f} s"
    log.info(message + " on one core")
    parts = [first]
    if n > 1:
        parts.append(power_replicates(*args, start=start + 1, stop=stop, **options))
    log.info("done in %.1f s", time.monotonic() - began)
    return pd.concat(parts, ignore_index=True)[REPLICATE_COLUMNS]


def aggregate_power(chunks: pd.DataFrame, points: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """One row per design point and tested term: the point's sizes, then
    :func:`summarise_power`'s columns; ``chunks`` carries a ``point`` column.

    Examples
    --------
    >>> rows = pd.DataFrame({"point": 0, "replicate": [0, 1], "term": "x",
    ...     "kind": "coefficient", "truth": 1.0, "estimate": 1.0, "std_error": 0.3,
    ...     "p_value": [0.01, 0.2], "ci_low": 0.4, "ci_high": 1.6, "failed": False,
    ...     "converged": True, "singular": False, "error": ""})
    >>> pts = pd.DataFrame({"point": [0], "therapists_per_framework": [6]})
    >>> aggregate_power(rows, pts, 0.05)[["therapists_per_framework", "power"]].to_string()
    '   therapists_per_framework  power\\n0                         6    0.5'
    """
    out = []
    for _, point in points.iterrows():
        rows = chunks[chunks["point"] == point["point"]]
        if rows.empty:
            raise ModelSpecError(f"design point {point['point']} has no replicate rows")
        table = summarise_power(rows.drop(columns="point"), alpha)
        for column in reversed(points.columns):
            table.insert(0, column, point[column])
        out.append(table)
    return pd.concat(out, ignore_index=True)


def effect_labels(
    power: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    factor_levels: Mapping[str, list] | None = None,
) -> pd.Series:
    """The label of each tested term of ``power``: "Cognitive - Behavioral" for a
    contrast, "Repair rate in Cognitive" for a simple slope, and for a coefficient of a
    factor level (``frameworkcognitive`` with ``factor_levels={"framework": [...]}``) the
    difference from the factor's reference level; ``labels`` maps names to labels.

    Examples
    --------
    >>> power = pd.DataFrame({"term": ["frameworkb", "x", "b - a"],
    ...                       "kind": ["coefficient", "coefficient", "pairwise"]})
    >>> effect_labels(power, {"a": "A", "b": "B"}, {"framework": ["a", "b"]}).tolist()
    ['B - A', 'x', 'B - A']
    """
    terms = power["term"].astype(str)
    return pd.Series(label_effects(terms, labels, factor_levels), index=terms.index, name="effect")


def _size_name(column: str) -> str:
    return column.replace("_", " ")


def _reaching(power: pd.DataFrame, size: str, term: str, target: float = 0.8):
    rows = power[power["term"] == term].sort_values(size)
    hit = rows[rows["power"] >= target]
    return (hit.iloc[0], True) if not hit.empty else (rows.iloc[-1], False)


def _term_color(term: str, colors: Mapping[str, str]) -> str | None:
    """The framework colour of a per-framework term ("x in cognitive"), else None."""
    level = term.split(" in ", 1)[1] if " in " in term else None
    return colors.get(level) if level else None


def _varied(power: pd.DataFrame) -> tuple[str, str | None]:
    """The first varied size (the x axis) and the second one, if any."""
    sizes = [c for c in power.columns if c in SIZES]
    return sizes[0], (sizes[1] if len(sizes) > 1 else None)


def _panels(power: pd.DataFrame, second: str | None) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per value of the second varied size; one untitled panel without it."""
    if second is None:
        return [("", power)]
    return [
        (f"{int(v)} {_size_name(second)}", power[power[second] == v])
        for v in sorted(pd.unique(power[second]))
    ]


def power_figure(
    power: pd.DataFrame,
    title: str = "",
    labels: Mapping | None = None,
    colors: Mapping | None = None,
):
    """Power with its Wilson 95% CI against the first varied size, one line per term,
    the 80% line, and the smallest size reaching 80% marked; with a second varied size,
    one panel per value of it (shared power axis). A per-framework term ("x in
    cognitive") takes its framework's colour from ``colors`` (the vocabulary's, so
    frameworks look the same as in every other figure).

    Examples
    --------
    >>> power = pd.DataFrame({"point": [0, 1], "therapists_per_framework": [6, 10],
    ...     "term": "x", "power": [0.5, 0.85], "power_ci_low": [0.4, 0.8],
    ...     "power_ci_high": [0.6, 0.9]})
    >>> fig = power_figure(power)
    >>> two = pd.concat([power.assign(clients_per_therapist=k) for k in (4, 8)])
    >>> len(power_figure(two).axes)
    2
    """
    from matplotlib.figure import Figure

    labels = dict(labels or {})
    size, second = _varied(power)
    panels = _panels(power, second)
    fig = Figure(figsize=(6.5 if len(panels) == 1 else min(3.4 * len(panels), 10), 4))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    terms = list(pd.unique(power["term"]))
    default = [f"C{i % 10}" for i in range(len(terms))]
    for ax, (panel_title, panel) in zip(axes, panels, strict=True):
        for term, fallback in zip(terms, default, strict=True):
            rows = panel[panel["term"] == term].sort_values(size)
            if rows.empty:
                continue
            x = rows[size].to_numpy(dtype=float)
            y = rows["power"].to_numpy(dtype=float)
            err = [y - rows["power_ci_low"].to_numpy(), rows["power_ci_high"].to_numpy() - y]
            color = _term_color(str(term), colors or {}) or fallback
            ax.errorbar(
                x, y, yerr=err, marker="o", capsize=3, label=effect_label(term, labels), color=color
            )
            best, reached = _reaching(panel, size, term)
            if reached:
                ax.plot(
                    [best[size]],
                    [best["power"]],
                    marker="*",
                    markersize=14,
                    color=color,
                    linestyle="none",
                )
        ax.axhline(0.8, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(sorted(pd.unique(power[size])))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(_size_name(size).capitalize())
        if panel_title:
            ax.set_title(panel_title, fontsize=9)
    axes[0].set_ylabel("Power (95% CI)")
    if title:
        fig.suptitle(title)
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _p(value: float) -> str:
    text = f"{value:.2f}"
    return text[1:] if text.startswith("0") else text


def power_table(power: pd.DataFrame, labels: Mapping | None = None) -> pd.DataFrame:
    """An APA-style table: the varied sizes, the term, power with its 95% CI, the
    replicates and the failed and singular fits.

    Examples
    --------
    >>> power = pd.DataFrame({"point": [0], "therapists_per_framework": [6], "term": "x",
    ...     "power": [0.5], "power_ci_low": [0.4], "power_ci_high": [0.6],
    ...     "replicates": [10], "failed": [0], "singular": [1], "coverage": [0.9]})
    >>> power_table(power).iloc[0].astype(str).tolist()
    ['6', 'x', '.50', '[.40, .60]', '10', '0', '1', '.90']
    """
    labels = dict(labels or {})
    sizes = [c for c in power.columns[1:] if c in SIZES]
    table = pd.DataFrame({_size_name(c).capitalize(): power[c] for c in sizes})
    table["Effect"] = power["term"].map(lambda t: effect_label(t, labels))
    table["Power"] = power["power"].map(_p)
    table["95% CI"] = [
        f"[{_p(lo)}, {_p(hi)}]"
        for lo, hi in zip(power.power_ci_low, power.power_ci_high, strict=True)
    ]
    table["Replicates"] = power["replicates"]
    table["Failed fits"] = power["failed"]
    table["Singular fits"] = power["singular"]
    table["Coverage"] = power["coverage"].map(lambda v: "" if pd.isna(v) else _p(v))
    return table


def table_note(alpha: float = 0.05, adjust: str = "none") -> str:
    """The note under a power table: what power, its interval and coverage are.

    Examples
    --------
    >>> print(table_note(0.05, "holm").split(";")[0])  # doctest: +NORMALIZE_WHITESPACE
    Power: share of replicates whose two-sided Wald test, Holm-adjusted within each
    replicate, rejected at α = .05
    """
    names = {"holm": "Holm", "bh": "BH"}
    adjusted = f", {names[adjust]}-adjusted within each replicate," if adjust in names else ""
    return (
        f"Power: share of replicates whose two-sided Wald test{adjusted} rejected at "
        f"α = {_p(alpha)}; failed fits count as non-rejections. 95% CI: Wilson interval. "
        "Coverage: share of the non-failed fits whose 95% Wald interval holds the true value."
    )


def table_markdown(table: pd.DataFrame, title: str, note: str = "") -> str:
    """The table as Markdown, its title above and its note, if any, below."""
    head = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.to_numpy()]
    tail = ["", f"*Note.* {note}", ""] if note else [""]
    return "\n".join([f"**{title}**", "", head, rule, *body, *tail])


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _effect_words(term: str, kind, labels: Mapping[str, str]) -> str:
    """A tested term in words: "the slope of x in cognitive therapy", "the difference
    between a and b therapy" (a contrast, or a coefficient labelled as one by
    :func:`effect_labels`), "the coefficient of x"."""
    label = effect_label(term, labels)
    if kind == "simple_slope" and " in " in label:
        variable, level = label.split(" in ", 1)
        return f"the slope of {_lower_first(variable)} in {_lower_first(level)} therapy"
    if kind in ("pairwise", "coefficient") and " - " in label:
        a, b = (_lower_first(x) for x in label.split(" - ", 1))
        return f"the difference between {a} and {b} therapy"
    if kind == "coefficient":
        return f"the coefficient of {_lower_first(label)}"
    return label


def power_sentences(power: pd.DataFrame, labels: Mapping | None = None) -> list[str]:
    """One sentence per tested term (and, with a second varied size, per value of it):
    the smallest first size reaching 80% power (or the largest size, saying 80% was not
    reached), with its CI, replicates and failed fits.

    Examples
    --------
    >>> power = pd.DataFrame({"point": [0, 1], "therapists_per_framework": [6, 15],
    ...     "term": "x", "power": [0.5, 0.83], "power_ci_low": [0.4, 0.8],
    ...     "power_ci_high": [0.6, 0.85], "replicates": 200, "failed": [0, 1]})
    >>> print(power_sentences(power)[0])  # doctest: +NORMALIZE_WHITESPACE
    With 15 therapists per framework, power to detect x was .83, 95% CI [.80, .85],
    200 replicates, 0.5% of fits failed.
    >>> more = power.assign(clients_per_therapist=8, power=[0.81, 0.9],
    ...                     power_ci_low=[0.75, 0.86], power_ci_high=[0.86, 0.93])
    >>> two = pd.concat([power.assign(clients_per_therapist=4), more])
    >>> print(power_sentences(two)[1])  # doctest: +NORMALIZE_WHITESPACE
    With 6 therapists per framework and 8 clients per therapist, power to detect x was
    .81, 95% CI [.75, .86], 200 replicates, 0.0% of fits failed.
    """
    labels = dict(labels or {})
    size, second = _varied(power)
    out = []
    for term in pd.unique(power["term"]):
        for _, panel in _panels(power, second):
            if not (panel["term"] == term).any():
                continue
            row, reached = _reaching(panel, size, term)
            failed = 100 * row["failed"] / row["replicates"]
            sizes = f"{int(row[size])} {_size_name(size)}"
            if second is not None:
                sizes += f" and {int(row[second])} {_size_name(second)}"
            text = (
                f"With {sizes}, power to detect "
                f"{_effect_words(term, row.get('kind'), labels)} "
                f"was {_p(row['power'])}, 95% CI [{_p(row['power_ci_low'])}, "
                f"{_p(row['power_ci_high'])}], {int(row['replicates']):,} replicates, "
                f"{failed:.1f}% of fits failed"
            )
            out.append(
                text + ("." if reached else "; 80% power was not reached at the sizes tried.")
            )
    return out


def power_section(analyses: Sequence[Mapping], heading: str = "## Power analyses") -> list[str]:
    """Markdown lines of the power analyses: per analysis its set-up and its sentences
    (:func:`power_sentences`), rendered from each analysis's ``power.csv``.

    Parameters
    ----------
    analyses : sequence of mapping
        Each with ``name``, ``power`` (its power.csv as a DataFrame) and optionally
        ``description``, ``model`` (the refitted model's name), ``truth`` (``"from"``: a
        fitted model folder, else stated), ``alpha``, ``adjust`` and ``labels``.
    heading : str

    Examples
    --------
    >>> power = pd.DataFrame({"point": [0, 1], "therapists_per_framework": [6, 15],
    ...     "term": "x", "power": [0.5, 0.83], "power_ci_low": [0.4, 0.8],
    ...     "power_ci_high": [0.6, 0.85], "replicates": 200, "failed": [0, 1]})
    >>> lines = power_section([{"name": "a", "model": "m", "power": power}])
    >>> lines[2]
    '### a'
    >>> print(lines[4])  # doctest: +NORMALIZE_WHITESPACE
    Model `m` refitted to data simulated from a stated truth; 200 replicates at each of
    2 design points (therapists per framework 6, 15).
    """
    lines = [heading, ""]
    for entry in analyses:
        power = entry["power"]
        sizes = [c for c in power.columns[1:] if c in SIZES]
        source = (entry.get("truth") or {}).get("from")
        truth = f"the fit in `{source}`" if source else "a stated truth"
        varied = "; ".join(
            f"{_size_name(c)} {', '.join(str(int(v)) for v in sorted(pd.unique(power[c])))}"
            for c in sizes
        )
        replicates = int(power["replicates"].max())
        setup = (
            f"Model `{entry.get('model', '')}` refitted to data simulated from {truth}; "
            f"{replicates:,} replicates at each of {power['point'].nunique()} design points "
            f"({varied})."
        )
        sentences = power_sentences(power, entry.get("labels"))
        lines += [f"### {entry.get('description') or entry['name']}", "", setup, ""]
        lines += [f"- {s}" for s in sentences]
        note = table_note(float(entry.get("alpha", 0.05)), entry.get("adjust", "none"))
        lines += ["", f"*{note}*", ""]
    return lines
