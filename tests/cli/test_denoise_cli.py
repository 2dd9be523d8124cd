"""``petspect denoise train | evaluate | apply`` and ``petspect demo`` through the Typer app (CliRunner)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app

_spec = importlib.util.spec_from_file_location("tasks_cohort", Path(__file__).parents[1] / "tasks" / "conftest.py")
cohort = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cohort)

TINY = ["--mode", "2d", "--epochs", "1", "--set", "patch_size=[16, 16]", "--set", "channels=[4, 8]",
        "--set", "patches_per_volume=2", "--set", "batch_size=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return cohort.make_dataset(tmp_path_factory.mktemp("cli_cohort"))


def test_train_evaluate_apply(dataset, tmp_path):
    runner = CliRunner()
    shown = runner.invoke(app, ["denoise", "train", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                                "--source", "time", "--level", "50", "--show-config", *TINY])
    assert shown.exit_code == 0, shown.output
    cfg = json.loads(shown.output)
    assert cfg["data"]["input_key"] == "recon_t050_osem_ac" and cfg["data"]["patch_size"] == [16, 16]
    assert cfg["data"]["weight_key"] is None
    shown = runner.invoke(app, ["denoise", "train", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                                "--lesion-weight", "6", "--show-config", *TINY])
    cfg = json.loads(shown.output)
    assert tuple(cfg["data"][k] for k in ("weight_key", "weight_factor", "weight_dilate_voxels")) == ("lesions", 6.0, 1)
    assert cfg["card"]["lesion_weight"] == 6.0
    res = runner.invoke(app, ["denoise", "train", "--dataset", str(dataset), "--out", str(tmp_path / "run"), *TINY])
    assert res.exit_code == 0, res.output
    model = tmp_path / "run" / "model"
    assert "model:" in res.output and (model / "model.pt").is_file()
    res = runner.invoke(app, ["denoise", "evaluate", "--dataset", str(dataset), "--model", str(model),
                              "--out", str(tmp_path / "eval"), "--budget", "3"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"unet", "gaussian", "nlm", "ct_guided", "osem_low_dose"} <= set(metrics)
    assert "psnr_db_ci95" in metrics["unet"]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["test_scored"] == 1 and (tmp_path / "eval" / "report" / "index.html").is_file()
    assert all(len(b["tuning"]["trials"]) <= 3 for b in summary["baselines"].values())
    res = runner.invoke(app, ["denoise", "evaluate", "--dataset", str(dataset), "--model", str(model),
                              "--out", str(tmp_path / "eval"), "--budget", "3", "--overwrite"])
    assert res.exit_code == 0 and "test_scored 2" in res.output
    src = dataset / "sub-003" / "recon_d010_osem_ac.nii.gz"
    res = runner.invoke(app, ["denoise", "apply", "--model", str(model), "--input", str(src),
                              "--out", str(tmp_path / "den.nii.gz")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "den.nii.gz").is_file() and "Bq/mL" in res.output
    res = runner.invoke(app, ["denoise", "apply", "--model", str(model), "--input", str(src), "--tta",
                              "--preserve-total", "--out", str(tmp_path / "den_tta.nii.gz")])
    assert res.exit_code == 0, res.output
    from petspect.io import load

    plain, tta = load(tmp_path / "den.nii.gz"), load(tmp_path / "den_tta.nii.gz")
    assert plain.shape == tta.shape and plain.unit == tta.unit and not torch.equal(plain.data, tta.data)
    low = load(src)
    assert float(tta.data.double().sum()) == pytest.approx(float(low.data.double().sum()), rel=1e-4)
    res = runner.invoke(app, ["denoise", "apply", "--model", str(model), "--input", str(src), "--uncertainty",
                              "--out", str(tmp_path / "den_u.nii.gz")])
    assert res.exit_code == 0, res.output
    mean, sd = load(tmp_path / "den_u.nii.gz"), load(tmp_path / "den_u_sd.nii.gz")
    assert sd.shape == mean.shape and sd.unit == mean.unit and float(sd.data.min()) >= 0 and float(sd.data.max()) > 0
    res = runner.invoke(app, ["denoise", "apply", "--model", str(model), "--input", str(src), "--uncertainty",
                              "--out", str(tmp_path / "den_u.nii.gz")])
    assert res.exit_code == 2  # the outputs exist: refused without --overwrite


def test_errors_exit_cleanly(dataset, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["denoise", "train", "--dataset", str(dataset)])
    assert res.exit_code == 2 and "error:" in res.output
    res = runner.invoke(app, ["denoise", "train", "--dataset", str(dataset), "--out", str(tmp_path / "r"),
                              "--method", "gpt"])
    assert res.exit_code == 2 and "unknown denoising method" in res.output
    res = runner.invoke(app, ["denoise", "apply", "--model", str(tmp_path / "none"), "--input", str(dataset),
                              "--out", str(tmp_path / "o.nii.gz")])
    assert res.exit_code == 2
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "busy")])
    assert res.exit_code == 2 and "not empty" in res.output
