"""Integration test on a real coding scheme: AnnoMI, read through config alone.

AnnoMI (Wu et al., 2022) is a public corpus of expert-annotated motivational-interviewing
transcripts: one row per utterance and annotator, client talk type (change, neutral,
sustain) on client utterances and "n/a" on therapist utterances; seven transcripts were
annotated by ten annotators. The corpus is read from ``../shared/external/annomi`` (never
copied into the repository); the tests are skipped when it is absent.

Expected values are computed here with plain pandas and statsmodels from the same file.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from resistance_outcomes.codebook import load_codebook
from resistance_outcomes.ingest import ingest
from resistance_outcomes.reliability import reliability_analysis

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "external" / "annomi" / "AnnoMI-full.csv"
pytestmark = pytest.mark.skipif(not CORPUS.is_file(), reason="AnnoMI corpus not available")

#: The whole adapter configuration: no sessions file, no session column, a wide code
#: column, "n/a" meaning no code, utterance ids from 0 numbered as units 1, 2, ...
CONFIG = {
    "study": "annomi",
    "data": {"codes": str(CORPUS)},
    "columns": {
        "codes": {
            "client": "transcript_id",
            "unit": "utterance_id",
            "coder": "annotator_id",
            "code_columns": ["client_talk_type"],
            "no_code": ["n/a"],
            "unit_numbering": "order",
        }
    },
    "codebook": str(REPO / "config" / "codebook.yaml"),
    "frameworks": str(REPO / "config" / "frameworks.yaml"),
    "validation": {"mode": "strict", "identifiers": "drop"},
    "coding": {"analysis_coder": "primary"},
}


@pytest.fixture(scope="module")
def corpus():
    return pd.read_csv(CORPUS, usecols=lambda c: c != "utterance_text", dtype=str)


@pytest.fixture(scope="module")
def ingested():
    return ingest(CONFIG, REPO)


def test_corpus_is_read_through_config_without_its_free_text(ingested):
    assert ingested.codes_only and ingested.problems == []
    dropped = {p.column for p in ingested.dropped_identifier_columns}
    assert "utterance_text" in dropped  # free text: screened out before anything is read
    assert set(ingested.codes.columns) == {
        "study", "client", "session", "unit", "coder", "code", "value", "analysis_coder"
    }  # fmt: skip
    assert set(ingested.sessions.columns) == {
        "study", "client", "session", "attended", "change_talk", "sustain_talk"
    }  # fmt: skip
    # 133 transcripts; 126 with one annotator and 7 with ten: 196 logged codings.
    assert len(ingested.sessions) == len(ingested.clients) == 133
    assert len(ingested.coding_log) == 126 + 7 * 10


def test_sustain_talk_per_transcript_through_the_codebook(ingested, corpus):
    # Plain pandas: per transcript, the rows of the first annotator listed in the file
    # (coding.analysis_coder: primary, no role column), sustain talk counted.
    first = corpus.groupby("transcript_id", sort=False)["annotator_id"].transform("first")
    analysed = corpus[corpus["annotator_id"] == first]
    expected = (analysed["client_talk_type"] == "sustain").groupby(analysed["transcript_id"]).sum()
    got = ingested.sessions.set_index("client")["sustain_talk"]
    assert got.index.is_unique
    pd.testing.assert_series_equal(
        got.sort_index().astype("int64"),
        expected.sort_index().astype("int64"),
        check_names=False,
        check_index_type=False,
    )


def test_client_talk_type_kappa_on_the_multiply_annotated_transcripts(ingested, corpus):
    result = reliability_analysis(
        ingested.codes, ingested.coding_log, load_codebook(CONFIG["codebook"]), seed=1, n_boot=500
    )
    row = result.table.set_index(["construct", "statistic"]).loc[
        ("client_talk_type", "Fleiss' kappa")
    ]
    # statsmodels' fleiss_kappa on the units x categories counts built here with pandas:
    # client utterances of the transcripts with more than one annotator.
    several = corpus.groupby("transcript_id")["annotator_id"].transform("nunique") > 1
    client = corpus[several & (corpus["interlocutor"] == "client")]
    wide = client.pivot(
        index=["transcript_id", "utterance_id"], columns="annotator_id", values="client_talk_type"
    )
    counts, _ = aggregate_raters(wide.to_numpy())
    assert (row["n_targets"], row["n_raters"]) == (len(wide), 10) == (212, 10)
    assert row["estimate"] == pytest.approx(fleiss_kappa(counts), abs=1e-12)
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    interval = f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
    print(f"AnnoMI client talk type: Fleiss' kappa = {row['estimate']:.4f} {interval}")


def test_sustain_talk_icc_across_the_ten_annotators(ingested, corpus):
    result = reliability_analysis(
        ingested.codes, ingested.coding_log, load_codebook(CONFIG["codebook"]), n_boot=200
    )
    row = result.table.set_index(["construct", "statistic"]).loc[("sustain_talk", "ICC(A,1)")]
    # Sustain talk per transcript and annotator, 7 x 10, by pandas; ICC(A,1) from the
    # two-way ANOVA mean squares (McGraw & Wong, 1996, case 2A).
    several = corpus.groupby("transcript_id")["annotator_id"].transform("nunique") > 1
    rows = corpus[several]
    x = (
        (rows["client_talk_type"] == "sustain")
        .groupby([rows["transcript_id"], rows["annotator_id"]])
        .sum()
        .unstack()
        .to_numpy(float)
    )
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - grand) ** 2).sum() / (k - 1)
    mse = ((x - x.mean(1, keepdims=True) - x.mean(0) + grand) ** 2).sum() / ((n - 1) * (k - 1))
    expected = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    assert (row["n_targets"], row["n_raters"]) == (7, 10)
    assert row["estimate"] == pytest.approx(expected, abs=1e-10)
    assert np.isfinite(row["ci_low"])
