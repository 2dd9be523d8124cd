"""``petspect study cad --preset tiny`` and ``petspect cad``: the study's files, its contract, the apply command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from petspect.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("cad") / "study"
    res = runner.invoke(app, ["study", "cad", "--preset", "tiny", "--tasks", "pd", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_study_writes_the_contract(study):
    out, output = study
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"pd/sbr", "pd/zscore", "pd/svm_regional", "pd/cnn"}
    for key, row in metrics.items():
        for m in ("auc", "sensitivity", "specificity", "brier"):
            lo, hi = row[f"{m}_ci95"]
            assert lo <= row[m] <= hi, (key, m)
        assert 0 <= row["auc"] <= 1 and 0 <= row["brier"] <= 1
    comparators = [k for k, r in metrics.items() if "delta_auc" not in r]
    assert len(comparators) == 1 and not comparators[0].endswith("cnn")
    assert metrics["pd/cnn"]["delta_vs"] == comparators[0].split("/")[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "cad" and summary["test_scored"] == 1 and summary["inverse_crime"] is None
    assert len(summary["checks"]) == 6 and all(c["passed"] in (True, False, None) for c in summary["checks"])
    assert "FAILED" in output or "passed" in output
    assert (out / "report" / "index.html").stat().st_size > 10_000
    rows = (out / "subjects.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and "cnn_prob" in rows[0]
    assert (out / "models" / "pd.npz").is_file() and (out / "models" / "pd_cnn.pt").is_file()


def test_study_refuses_bad_preset_and_task(tmp_path):
    res = runner.invoke(app, ["study", "cad", "--preset", "huge", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "tiny" in res.output
    res = runner.invoke(app, ["study", "cad", "--preset", "tiny", "--tasks", "ad,xyz", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "tasks" in res.output


def test_study_does_not_overwrite(study):
    out, _ = study
    res = runner.invoke(app, ["study", "cad", "--preset", "tiny", "--tasks", "pd", "--out", str(out)])
    assert res.exit_code == 2


def test_cad_apply_on_a_nifti(study, tmp_path):
    from petspect.cad.cohort import CohortConfig, sample_subjects, simulate_subject
    from petspect.io import save

    out, _ = study
    cfg = CohortConfig(n_normal=2, n_disease=2, fine_voxel_mm=4.0, factor=2, seed=99)
    spec = sample_subjects("pd", cfg)[3]
    vol, _ = simulate_subject(spec, cfg)
    img = save(vol, tmp_path / "dat.nii.gz")
    res_path = tmp_path / "res.json"
    res = runner.invoke(app, ["cad", str(img), "--task", "pd", "--models", str(out / "models"), "--out", str(res_path)])
    assert res.exit_code == 0, res.output
    results = json.loads(res_path.read_text())["results"]
    assert [r["method"] for r in results] == ["sbr", "zscore", "cnn"]
    for r in results:
        assert 0 <= r["probability"] <= 1 and r["positive"] == (r["score"] >= r["threshold"])
    sbr = results[0]
    assert sbr["value"] == pytest.approx(-sbr["score"]) and np.isfinite(sbr["value"])
    # the same image scaled (another unit, another injected activity) gives the same SBR
    vol2 = vol.with_data(vol.data * 7.5)
    img2 = save(vol2, tmp_path / "dat2.nii.gz")
    res2 = runner.invoke(app, ["cad", str(img2), "--task", "pd", "--models", str(out / "models"), "--method", "sbr"])
    assert res2.exit_code == 0 and f"{sbr['value']:8.4f}" in res2.output


def test_cad_apply_errors(study, tmp_path):
    out, _ = study
    res = runner.invoke(app, ["cad", str(tmp_path / "none.nii.gz"), "--task", "pd", "--models", str(out / "models")])
    assert res.exit_code == 2
    res = runner.invoke(app, ["cad", str(tmp_path / "none.nii.gz"), "--task", "ad", "--models", str(out / "models")])
    assert res.exit_code == 2
