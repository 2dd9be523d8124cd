"""``petspect phantom`` with values an outside quality pass tried: a zero, NaN or microscopic voxel size and a
--param of the wrong type end in ``error: ...`` (exit 2) and no folder, never a traceback or a 70 TB allocation."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import InputError
from petspect.phantoms.grid import Grid

runner = CliRunner()


@pytest.mark.parametrize("args, says", [
    (["nema-iec", "--voxel-mm", "0"], "--voxel-mm"),
    (["nema-iec", "--voxel-mm", "nan"], "--voxel-mm"),
    (["nema-iec", "--voxel-mm", "-2"], "--voxel-mm"),
    (["nema-iec", "--voxel-mm", "0.01"], "voxels"),
    (["cylinder", "--param", "radius_mm=abc"], "radius_mm"),
    (["cylinder", "--param", "radius_mm=true"], "radius_mm"),
])
def test_bad_sizes_and_parameters_exit_2_without_output(tmp_path, args, says):
    out = tmp_path / "ph"
    res = runner.invoke(app, ["phantom", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert says in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_grid_refuses_more_voxels_than_any_memory_holds():
    with pytest.raises(InputError, match="voxels"):
        Grid((20000, 20000, 20000), (0.01, 0.01, 0.01))
