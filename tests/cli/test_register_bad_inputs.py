"""Bad inputs to ``petspect register``."""

from __future__ import annotations

import numpy as np
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import save
from petspect.volume import Volume

runner = CliRunner()


def _ball_pet() -> Volume:
    z, y, x = np.indices((10, 32, 32))
    ball = (z - 5) ** 2 * 16 + (y - 12) ** 2 * 16 + (x - 20) ** 2 * 16 <= 10.0 ** 2
    data = np.where(ball, 30000.0, 3000.0).astype(np.float32)
    return Volume.centered(torch.from_numpy(data), (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")


def test_register_leaves_no_output_folder_when_it_fails(tmp_path):
    """A failed register (missing or constant input) left a marked empty folder, and the rerun with good
    inputs was then refused with 'output exists'."""
    vol = _ball_pet()
    save(vol, tmp_path / "pet.nii.gz")
    save(vol.with_data(torch.zeros(vol.shape), unit="a.u."), tmp_path / "flat.nii.gz")
    for moving in ("missing.nii.gz", "flat.nii.gz"):
        r = runner.invoke(app, ["register", str(tmp_path / moving), str(tmp_path / "pet.nii.gz"),
                                "--out", str(tmp_path / "reg")])
        assert r.exit_code == 2, r.output
        assert not (tmp_path / "reg").exists(), moving
    r = runner.invoke(app, ["register", str(tmp_path / "pet.nii.gz"), str(tmp_path / "pet.nii.gz"), "--method",
                            "learned", "--model", str(tmp_path / "no_model"), "--out", str(tmp_path / "reg")])
    assert r.exit_code == 2 and not (tmp_path / "reg").exists(), r.output
    r = runner.invoke(app, ["register", str(tmp_path / "pet.nii.gz"), str(tmp_path / "pet.nii.gz"),
                            "--out", str(tmp_path / "reg"), "--transform", "translation", "--metric", "mse"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "reg" / "transform.tfm").is_file()
