"""``petspect detector train/evaluate`` with a wrong data or models folder: refused before the output folder is
made (a marked empty folder was left, so the rerun was refused as existing), and data or models made with
another preset are refused (they were used with this preset's detector and timing settings, and labelled so)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from petspect.cli.main import app


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _fake_data(folder, preset: str):
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"name": f"detector-{preset}", "preset": {"name": preset}}))
    return folder


def test_train_and_evaluate_refuse_a_folder_that_is_not_detector_data(tmp_path):
    (tmp_path / "empty").mkdir()
    for args in (["train", "--data", tmp_path / "missing"], ["train", "--data", tmp_path / "empty"],
                 ["evaluate", "--data", tmp_path / "empty"]):
        res = _run(["detector", *args, "--out", tmp_path / "out"])
        assert res.exit_code == 2 and "dataset.json" in res.output, res.output
        assert not (tmp_path / "out").exists(), args


def test_data_of_another_preset_is_refused(tmp_path):
    data = _fake_data(tmp_path / "data", "quick")
    for cmd in ("train", "evaluate"):
        res = _run(["detector", cmd, "--preset", "realistic", "--data", data, "--out", tmp_path / "out"])
        assert res.exit_code == 2 and "'quick'" in res.output and "--preset" in res.output, res.output
        assert not (tmp_path / "out").exists()


def test_evaluate_refuses_a_models_folder_without_the_models(tmp_path):
    data = _fake_data(tmp_path / "data", "quick")
    (tmp_path / "models").mkdir()
    res = _run(["detector", "evaluate", "--preset", "quick", "--data", data, "--models", tmp_path / "models",
                "--out", tmp_path / "out"])
    assert res.exit_code == 2 and "mlp" in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_limits_refuses_a_pair_count_that_cannot_fit_in_memory(tmp_path, monkeypatch):
    """--pairs 1000000 asked ~260 GB of photon times: the process grew until the system killed it."""
    import petspect.detector.timing_limits as tl

    def not_called(*args, **kwargs):
        raise AssertionError("the simulation started")

    monkeypatch.setattr(tl, "photon_level_ctr", not_called)
    res = _run(["detector", "limits", "--preset", "quick", "--pairs", 1_000_000, "--out", tmp_path / "l.json"])
    assert res.exit_code == 2 and "GB" in res.output and "at most" in res.output, res.output
    assert not (tmp_path / "l.json").exists()


def test_evaluate_refuses_models_without_the_joint_network_for_a_joint_preset(tmp_path):
    """evaluate read the joint network only after making its folder: an error and a half-made folder."""
    data = _fake_data(tmp_path / "data", "quick")
    (data / "joint_test.npz").write_bytes(b"")
    for name in ("mlp", "cnn", "cnn_fan", "timing_cnn"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text(json.dumps({"data": {"preset": "quick"}}))
    res = _run(["detector", "evaluate", "--preset", "quick", "--data", data, "--models", tmp_path / "models",
                "--out", tmp_path / "out"])
    assert res.exit_code == 2 and "joint" in res.output, res.output
    assert not (tmp_path / "out").exists()
