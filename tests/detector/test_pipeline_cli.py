"""End to end through the CLI on a tiny preset: simulate -> train -> evaluate, files and records."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.detector import pipeline
from petspect.detector.joint import JointConfig
from petspect.detector.models import TrainSettings
from petspect.detector.photodetector import SiPMArray
from petspect.detector.simulate import DetectorConfig
from petspect.detector.waveforms import TimingConfig
from petspect.errors import ConfigError

TINY = dataclasses.replace(
    pipeline.PRESETS["quick"], name="tiny", description="test-only",
    detector=DetectorConfig("LYSO", 8.0, SiPMArray(n_x=4, n_y=4)), train_step_mm=1.0, train_events_per_beam=8,
    test_step_mm=2.0, test_events_per_beam=30, fan_step_mm=1.0, fan_events=30,
    timing=TimingConfig(length_mm=10.0, n_samples=32, max_shift=2, onset_ns=2.0), timing_events=(300, 150, 150),
    position_training=TrainSettings(epochs=2, batch_size=128), timing_training=TrainSettings(epochs=1, batch_size=64),
    gbt_iterations=20, knn_k=10, timing_train_source_range_mm=150.0,
    joint=JointConfig(pairs=(300, 400, 400), training=TrainSettings(epochs=1, batch_size=64), energy_weights=(1.0,),
                      time_weights=(1.0,), max_trials=1, window=(4, 8), channels=8),
    # as a preset reproducing a published set-up does: its CTRs and cited parameters go to metrics.json and the report
    published_ctr_ps=pipeline.get_preset("berg-cherry-2018").published_ctr_ps,
    published_setup=pipeline.get_preset("berg-cherry-2018").published_setup)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(pipeline.PRESETS, "tiny", TINY)


def test_cli_simulate_train_evaluate(tiny, tmp_path):
    runner = CliRunner()
    data, models, out = tmp_path / "data", tmp_path / "models", tmp_path / "eval"
    r = runner.invoke(app, ["--device", "cpu", "detector", "simulate", "--preset", "tiny", "--out", str(data)])
    assert r.exit_code == 0, r.output
    record = json.loads((data / "dataset.json").read_text())
    assert record["preset"]["name"] == "tiny" and record["counts"]["train"] > 100
    loaded = pipeline.load_data(data)  # timing CNN trained on sources over +-150 mm, tested within +-30 mm
    assert np.abs(loaded["timing_train"].source_mm).max() > 60.0 >= np.abs(loaded["timing_test"].source_mm).max() * 2
    r = runner.invoke(app, ["detector", "train", "--preset", "tiny", "--data", str(data), "--out", str(models)])
    assert r.exit_code == 0, r.output
    for name in ("mlp", "cnn", "cnn_fan", "timing_cnn"):
        assert isinstance(torch.load(models / name / "weights.pt", weights_only=True), dict)
        cfg = json.loads((models / name / "config.json").read_text())
        assert cfg["data"]["preset"] == "tiny" and (models / name / "model_card.md").exists()
    before = (models / "timing_cnn" / "config.json").read_text()
    pipeline.train_timing(TINY, data, models)  # the benchmark's --retrain-timing path: same settings, same model
    assert json.loads((models / "timing_cnn" / "config.json").read_text())["arch"] == "aligned"
    assert json.loads(before)["history"] == json.loads((models / "timing_cnn" / "config.json").read_text())["history"]
    weights_before = torch.load(models / "joint" / "weights.pt", weights_only=True)
    pipeline.train_joint(TINY, data, models)  # the benchmark's --retrain-joint path: separate models reused, same joint
    after = torch.load(models / "joint" / "weights.pt", weights_only=True)
    assert all(torch.equal(weights_before[k], after[k]) for k in after)
    with pytest.raises(ConfigError):
        pipeline.train_joint(pipeline.get_preset("hf-readout"), data, models)
    r = runner.invoke(app, ["detector", "evaluate", "--preset", "tiny", "--data", str(data), "--models", str(models),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    for method in ("anger", "knn", "gbt", "mlp", "cnn", "gbt_fan", "cnn_fan"):
        assert metrics[method]["xy_fwhm_mm"] > 0 and "edge_bias_mm" in metrics[method]
    for method in ("led", "cfd", "cnn_timing"):
        assert metrics[method]["ctr_fwhm_ps"] > 0
    assert 0 < metrics["energy"]["energy_resolution_pct"] < 60
    # the joint network beside the separate models trained on the same monolithic-block pairs
    for name in ("joint", "joint_separate"):
        for k in ("xy_fwhm_mm", "doi_mae_mm", "energy_resolution_pct", "ctr_fwhm_ps"):
            assert np.isfinite(metrics[name][k]) and metrics[name][k] > 0
    assert metrics["joint_comparison"]["loss_weights"] == {"energy_weight": 1.0, "time_weight": 1.0}
    assert set(metrics["summary"]["joint_over_separate"]) == {"xy_fwhm_mm", "doi_mae_mm", "energy_resolution_pct",
                                                              "ctr_fwhm_ps"}
    assert (models / "joint" / "weights.pt").exists() and (models / "joint_tuning.json").exists()
    assert "joint" in r.output and "Joint network" in (out / "report.html").read_text()
    assert metrics["provenance"]["test_scored"] == 1 and (data / "test_ledger.json").is_file()  # evaluation protocol
    # the photon-level ceiling lies below the constant fraction (a waveform cannot hold more than its photons)
    ceiling = metrics["summary"]["photon_ceiling_ps"]
    assert 0 < ceiling < metrics["cfd"]["ctr_fwhm_ps"] and metrics["timing_photon_limits"]["n_pairs"] == 200
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "Muller" in html and "Berg" in html
    assert "Photon-level ceiling" in html and "bootstrap" in html
    assert metrics["published_ctr_ps"] == {"led": 231.0, "cfd": 242.0, "cnn": 185.0} and "02LT01" in html
    setup = {r["parameter"]: r for r in metrics["published_setup"]}
    assert setup["sampling"]["source"] == "read" and setup["scintillator"]["source"] == "assumed"
    assert "where they come from" in html and "PubMed 29182151" in html
    lo, hi = metrics["summary"]["cnn_ctr_improvement_over_cfd_ci95_pct"]
    assert lo <= metrics["cnn_timing_improvement_ci"]["improvement_pct"] <= hi
    # outputs are never overwritten silently, and unknown presets are refused
    r = runner.invoke(app, ["detector", "simulate", "--preset", "tiny", "--out", str(data)])
    assert r.exit_code == 2 and "exists" in r.output
    r = runner.invoke(app, ["detector", "simulate", "--preset", "nope", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown preset" in r.output
