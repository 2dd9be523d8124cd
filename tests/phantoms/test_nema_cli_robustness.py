"""``petspect nema`` options an outside quality pass tried: one path for --json and --png, a --png path without a
.png suffix, and a negative --refine-spheres end in clean errors (exit 2) before any file is written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import InputError
from petspect.io import save
from petspect.phantoms.nema_analysis import analyse_iec
from petspect.phantoms.nema_iec import make_nema_iec

runner = CliRunner()


@pytest.fixture(scope="module")
def iec(tmp_path_factory):
    d = tmp_path_factory.mktemp("nema")
    vol = make_nema_iec(voxel_mm=6.0, seed=0).volumes["activity"]
    save(vol, d / "iec.nii.gz")
    return d / "iec.nii.gz", vol


def test_json_and_png_on_one_path_are_refused(iec, tmp_path):
    res = runner.invoke(app, ["nema", str(iec[0]), "--json", str(tmp_path / "r.json"), "--png",
                              str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "--png" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r.json").exists()


def test_png_without_a_png_suffix_is_refused_before_the_analysis(iec, tmp_path):
    res = runner.invoke(app, ["nema", str(iec[0]), "--png", str(tmp_path / "rois.json")])
    assert res.exit_code == 2 and ".png" in res.output and "Traceback" not in res.output


def test_negative_refinement_is_refused(iec):
    with pytest.raises(InputError, match="refine"):
        analyse_iec(iec[1], refine_spheres_mm=-5.0)
    with pytest.raises(InputError, match="refine"):
        analyse_iec(iec[1], refine_spheres_mm=float("nan"))
