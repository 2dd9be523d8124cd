"""The main job end to end on the tiny cohort: training, baselines, evaluation, metrics.json and the report."""

from __future__ import annotations

import json
import math

import pytest

from petspect.errors import ConfigError, OutputExistsError
from petspect.tasks.demo import demo_settings, run_demo, write_json
from petspect.tasks.denoise_report import curve_below


def test_demo_end_to_end(tiny_cohort, tmp_path):
    out = tmp_path / "demo"
    summary = run_demo(out, settings=demo_settings("tiny"), dataset=tiny_cohort)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"osem_low_dose", "gaussian", "nlm", "ct_guided", "unet", "osem_full_dose"} <= set(metrics)
    for method in ("osem_low_dose", "gaussian", "nlm", "ct_guided", "unet"):
        row = metrics[method]
        for key in ("psnr_db", "ssim", "nrmse", "psnr_challenge_db", "ssim_challenge", "nrmse_challenge",
                    "suvmean_bias_pct", "suvmax_bias_pct", "lesion_cr_pct", "liver_cov_pct", "total_activity_ratio"):
            assert math.isfinite(row[key]), (method, key)
        assert len(row["psnr_db_ci95"]) == 2
    # tuned filters improve on the noisy input (the tiny cohort's 10 % dose has ~30 % liver noise)
    assert metrics["gaussian"]["psnr_db"] > metrics["osem_low_dose"]["psnr_db"]
    assert metrics["gaussian"]["liver_cov_pct"] < metrics["osem_low_dose"]["liver_cov_pct"]
    assert "psnr_db" not in metrics["osem_full_dose"]
    html = (out / "report" / "index.html").read_text()
    assert "Sanaat" in html and html.count("data:image/png;base64") >= 3
    assert (out / "model" / "model.pt").is_file() and (out / "model" / "model_card.json").is_file()
    saved = json.loads((out / "summary.json").read_text())
    names = [c["check"] for c in saved["checks"]]
    assert names == [c["name"] for c in saved["acceptance_checks"]] and "beats_gaussian_psnr" in names
    assert all(c["passed"] in (True, False, None) for c in saved["checks"])
    assert json.loads((out / "acceptance_checks.json").read_text())["checks"] == saved["acceptance_checks"]
    assert saved["test_scored"] == 1 and saved["inverse_crime"] is None  # synthetic data: not a simulation
    assert "delta_psnr_db_ci95" in metrics["unet"] or metrics["unet"] is not None
    assert saved["uncertainty"]["method"] == "TTA spread"
    assert set(saved["curves"]) >= {"gaussian", "nlm", "unet", "osem_full_dose"}
    assert summary["times"]["total_s"] > 0
    with pytest.raises(OutputExistsError):
        run_demo(out, settings=demo_settings("tiny"), dataset=tiny_cohort)


def test_overwrite_replaces_only_demo_outputs(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "metrics.json").write_text("{}")
    from petspect.errors import OutputExistsError
    from petspect.tasks.demo import _prepare

    with pytest.raises(OutputExistsError):  # a folder the demo did not make is never cleared (issue 14)
        _prepare(out, overwrite=True)
    assert (out / "metrics.json").exists()
    from petspect._fileio import write_marker

    write_marker(out, "demo")  # as _prepare marks the folders it makes
    _prepare(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and not (out / "metrics.json").exists()
    with pytest.raises(ConfigError):
        demo_settings("huge")


def test_curve_below_and_strict_json(tmp_path):
    filt = [{"lesion_cr_pct": 80.0, "liver_cov_pct": 30.0}, {"lesion_cr_pct": 40.0, "liver_cov_pct": 10.0}]
    better = [{"lesion_cr_pct": 60.0, "liver_cov_pct": 12.0}]  # filter at 60 % CR: 20 % noise
    worse = [{"lesion_cr_pct": 60.0, "liver_cov_pct": 25.0}, {"lesion_cr_pct": 90.0, "liver_cov_pct": 5.0}]
    assert curve_below(better, filt) == 1.0
    assert curve_below(worse, filt) == 0.0  # the second point is outside the filter's contrast range
    assert math.isnan(curve_below(better, filt[:1]))
    write_json(tmp_path / "m.json", {"a": {"x": float("nan"), "y": 1.0}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": {"x": None, "y": 1.0}}


def test_demo_cohort_configuration(monkeypatch, tmp_path):
    """The demo simulates the quick preset at the task's dose levels only (MAP comes from the study)."""
    import petspect.simulate.cohort as cohort
    from petspect.tasks.demo import simulate_dataset

    seen = {}
    monkeypatch.setattr(cohort, "simulate_cohort",
                        lambda config, folder, workers=None, device=None: seen.update(c=config, w=workers, d=device))
    settings = demo_settings("demo")
    settings.subjects = 8
    assert simulate_dataset(settings, tmp_path / "ds", device="cpu") == tmp_path / "ds"
    c = seen["c"]
    assert c.name == "quick-4mm" and c.subjects == 8 and c.phantom.voxel_mm == 4.0
    assert demo_settings("quick-6mm").preset == "quick" and seen["w"] == settings.workers and seen["d"] == "cpu"
    assert c.dose_percents == [100.0, 10.0] and c.time_percents == []
    assert "map" not in c.recon.algorithms  # MAP is re-reconstructed by the study with tuned beta and gamma
    bench = demo_settings("bench")
    assert bench.preset == "bench" and bench.only_task_levels
    from petspect.simulate.presets import get_preset

    cohort = get_preset("bench")
    assert cohort.phantom.voxel_mm == 4.0 and cohort.phantom.params["shape"][0] * 4.0 >= 500.0  # whole torso


def test_study_denoise_command(tiny_cohort, tmp_path):
    """`petspect study denoise --preset tiny --dataset D --out X` runs the demo's study and writes the three
    outputs every study shares; an unknown preset is a clean error (exit 2), not a traceback."""
    from typer.testing import CliRunner

    from petspect.cli.main import app

    runner = CliRunner()
    out = tmp_path / "study"
    res = runner.invoke(app, ["study", "denoise", "--preset", "tiny", "--dataset", str(tiny_cohort), "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "unet" in metrics and len(metrics["unet"]["psnr_db_ci95"]) == 2
    # the same configuration on the shared tiny cohort may have been scored by the demo test before
    assert json.loads((out / "summary.json").read_text())["test_scored"] >= 1
    assert (out / "report" / "index.html").is_file()
    res = runner.invoke(app, ["study", "denoise", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "quick" in res.output and "Traceback" not in res.output
