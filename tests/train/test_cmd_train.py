"""``petspect train CONFIG.toml`` (Typer CliRunner)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from petspect.cli.main import app


def _nested_toml(dataset, out) -> str:
    """The sectioned (version 2) form of the same configuration."""
    return "\n".join([
        f'out_dir = "{out}"', "tensorboard = false", "", "[data]", f'dataset = "{dataset}"', 'input_key = "recon_d010"',
        'target_key = "recon_d100"', 'mode = "2d"', "patch_size = [8, 8]",
        'normalization = { kind = "suv_scaling", factor = 2000.0, unit = "Bq/mL" }', "", "[model]",
        "channels = [4, 8]", "", "[loss]", "terms = { l1 = 1.0, mse = 0.5 }", "", "[optim]", "batch_size = 2", "",
        "[schedule]", "epochs = 1", ""])


def _toml(dataset, out) -> str:
    """A flat (version 1) configuration, as written before the sections existed."""
    return "\n".join([
        f'dataset = "{dataset}"', 'input_key = "recon_d010"', 'target_key = "recon_d100"', f'out_dir = "{out}"',
        'mode = "2d"', "patch_size = [8, 8]", "channels = [4, 8]", "batch_size = 2", "epochs = 1",
        "tensorboard = false", 'normalization = { kind = "suv_scaling", factor = 2000.0, unit = "Bq/mL" }',
        "loss = { l1 = 1.0, mse = 0.5 }", ""])


def test_train_from_toml(tiny_dataset, tmp_path):
    path = tmp_path / "train.toml"
    path.write_text(_toml(tiny_dataset, tmp_path / "run"))
    runner = CliRunner()
    shown = runner.invoke(app, ["train", str(path), "--show-config"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["version"] == 2 and doc["loss"]["terms"] == {"l1": 1.0, "mse": 0.5} and doc["optim"]["batch_size"] == 2
    nested = tmp_path / "nested.toml"
    nested.write_text(_nested_toml(tiny_dataset, tmp_path / "run"))
    again = runner.invoke(app, ["train", str(nested), "--show-config"])
    assert again.exit_code == 0 and json.loads(again.output) == doc
    res = runner.invoke(app, ["--device", "cpu", "train", str(path)])
    assert res.exit_code == 0, res.output
    assert "model written to" in res.output and (tmp_path / "run" / "model" / "model.pt").is_file()
    again = runner.invoke(app, ["--device", "cpu", "train", str(path), "--no-resume"])
    assert again.exit_code == 2 and "checkpoint exists" in again.output


def test_bad_config_is_a_clean_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('dataset = "x"\ntarget_key = "y"\nout_dir = "z"\nepochz = 3\n')
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2 and "epochz" in res.output
    path.write_text('out_dir = "z"\n[data]\ndataset = "x"\ntarget_key = "y"\n[optim]\nlr = -1.0\n')
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2 and "lr" in res.output
    path.write_text('out_dir = "z"\n[data]\ndataset = "x"\ntarget_key = "y"\n[optim]\nlrr = 1.0\n')
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2 and "lrr" in res.output and "optim" in res.output
    res = CliRunner().invoke(app, ["train", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2 and "not found" in res.output
