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


def test_cad_apply_bad_task_nan_image_and_foreign_image_name_the_file(study, tmp_path):
    """Found by a quality pass: --task xx gave a ValueError traceback, a NaN image was reported as 'no positive
    values', and an image outside template space as 'the reference region is empty', neither naming the file."""
    import torch

    from petspect.cad.cohort import CohortConfig, sample_subjects, simulate_subject
    from petspect.io import save
    from petspect.volume import Volume

    out, _ = study
    models = str(out / "models")
    cfg = CohortConfig(n_normal=2, n_disease=2, fine_voxel_mm=4.0, factor=2, seed=99)
    vol, _ = simulate_subject(sample_subjects("pd", cfg)[0], cfg)
    img = save(vol, tmp_path / "dat.nii.gz")
    res = runner.invoke(app, ["cad", str(img), "--task", "xx", "--models", models])
    assert res.exit_code == 2 and "unknown task" in res.output and "Traceback" not in res.output
    d = vol.data.clone()
    d[tuple(s // 2 for s in d.shape)] = float("nan")
    nan_img = save(vol.with_data(d), tmp_path / "nan.nii.gz")
    res = runner.invoke(app, ["cad", str(nan_img), "--task", "pd", "--models", models])
    assert res.exit_code == 2 and "NaN" in res.output and str(nan_img) in res.output
    small = save(Volume(torch.rand(10, 12, 14) * 5, (2.0, 2.0, 2.0)), tmp_path / "small.nii.gz")
    res = runner.invoke(app, ["cad", str(small), "--task", "pd", "--models", models])
    assert res.exit_code == 2 and "template space" in res.output and str(small) in res.output


def test_constant_image_has_suvr_one(study, tmp_path):
    """SUVR of a uniform image is 1 whatever the regions (an independent check of the normalisation)."""
    import torch

    from petspect.cad.apply import apply_to_image
    from petspect.cad.cohort import CohortConfig, sample_subjects, simulate_subject

    out, _ = study
    cfg = CohortConfig(n_normal=2, n_disease=2, fine_voxel_mm=4.0, factor=2, seed=99)
    vol, _ = simulate_subject(sample_subjects("pd", cfg)[0], cfg)
    const = vol.with_data(torch.full_like(vol.data, 5.0))
    (r,) = apply_to_image(const, "pd", out / "models", methods=("sbr",))
    assert r.value == pytest.approx(0.0, abs=1e-9)  # SBR = C / C_ref - 1


def test_rerun_with_fewer_tasks_removes_the_earlier_runs_models(study, tmp_path):
    import shutil

    out, _ = study
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    stale = copy / "models" / "ad.npz"
    stale.write_bytes((out / "models" / "pd.npz").read_bytes())  # as if an earlier run had fitted AD
    res = runner.invoke(app, ["study", "cad", "--preset", "tiny", "--tasks", "pd", "--out", str(copy), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert not stale.exists() and (copy / "models" / "pd.npz").is_file()
    assert not list((copy / "models").glob(".*tmp*"))  # written atomically, no temporary left
