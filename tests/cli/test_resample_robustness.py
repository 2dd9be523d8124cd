"""``petspect resample`` with voxel sizes an outside quality pass tried: a grid too large for any memory is refused
before it is allocated, and nothing is written."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import GeometryError
from petspect.io import save
from petspect.orientation import axial_grid_covering
from petspect.volume import Volume

runner = CliRunner()


def test_axial_grid_of_a_micrometre_voxel_is_refused_before_allocation():
    vol = Volume(torch.zeros(8, 9, 10), (3.0, 2.0, 2.0))
    with pytest.raises(GeometryError, match="voxels"):
        axial_grid_covering(vol, 0.001)
    assert axial_grid_covering(vol, 1.0).shape == (22, 17, 19)


def test_cli_resample_with_a_tiny_voxel_exits_2_without_output(tmp_path):
    src = tmp_path / "img.nii.gz"
    save(Volume(torch.rand(8, 9, 10), (3.0, 2.0, 2.0), unit="Bq/mL", modality="PT"), src)
    out = tmp_path / "out.nii.gz"
    res = runner.invoke(app, ["resample", str(src), "--out", str(out), "--axial", "--voxel-mm", "0.001"])
    assert res.exit_code == 2 and "voxels" in res.output and "Traceback" not in res.output
    assert not out.exists()
