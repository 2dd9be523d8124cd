"""The study files' contract (petspect.evaluation.study)."""

import json

import pytest

from petspect.errors import ConfigError, OutputExistsError
from petspect.evaluation.study import Check, StudySummary, check_metrics, claim_study_folder, write_study
from petspect.report import HtmlReport


def _summary(**kw):
    base = dict(task="t", preset="tiny", seed=1, data={"made_by": "test"}, inverse_crime=False, test_scored=1,
                splits={"training": 2, "validation": 1, "test": 1})
    base.update(kw)
    return StudySummary(**base)


def test_write_study_writes_three_files(tmp_path):
    out = claim_study_folder(tmp_path / "s")
    metrics = {"a": {"psnr_db": 30.0, "psnr_db_ci95": [29.0, 31.0]}, "b": {"psnr_db": 28.0, "psnr_db_ci95": [27, 29]}}
    paths = write_study(out, metrics, _summary(checks=[Check("a beats b", True, "+2 dB")], extra={"k": 3}),
                        HtmlReport("t"), required=["psnr_db"])
    assert json.loads(paths["metrics"].read_text()) == metrics
    summary = json.loads(paths["summary"].read_text())
    assert summary["inverse_crime"] is False and summary["test_scored"] == 1 and summary["k"] == 3
    assert summary["checks"][0]["passed"] is True
    assert paths["report"].read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("metrics", [
    {"a": {"psnr_db": 30.0}},                                  # no interval
    {"a": {"psnr_db": float("nan"), "psnr_db_ci95": [1, 2]}},  # silent NaN
    {"a": {"psnr_db": 1.0, "psnr_db_ci95": [1.0]}},            # malformed interval
    {"a": {"x": 1.0}},                                          # required metric missing
    {},
])
def test_check_metrics_refuses_broken_tables(metrics):
    with pytest.raises(ConfigError):
        check_metrics(metrics, required=["psnr_db"])


def test_claim_refuses_foreign_folder(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError):
        claim_study_folder(tmp_path / "s", overwrite=True)
    assert (tmp_path / "s" / "mine.txt").read_text() == "keep"


def test_overwrite_removes_the_previous_results_but_keeps_reused_data(tmp_path):
    """A rerun with --overwrite that stops before write_study must not leave the earlier run's metrics in the
    folder as if they were its own; the cohort a rerun reuses stays."""
    out = claim_study_folder(tmp_path / "s")
    write_study(out, {"a": {"psnr_db": 30.0, "psnr_db_ci95": [29.0, 31.0]}}, _summary(), HtmlReport("t"))
    (out / "data").mkdir()
    (out / "data" / "dataset.json").write_text("{}")
    again = claim_study_folder(tmp_path / "s", overwrite=True)
    assert not (again / "metrics.json").exists() and not (again / "summary.json").exists()
    assert not (again / "report").exists() and (again / "data" / "dataset.json").read_text() == "{}"
    with pytest.raises(OutputExistsError):
        claim_study_folder(tmp_path / "s")  # not empty, no --overwrite: refused
