"""A PET series without Units (0054,1001), as research tools write it: loads in a.u. with a warning (or in the
unit given by --unit), and `petspect nema` analyses it (NU 2 needs only ratios): the same contrasts as the
image with units, its means in arbitrary units."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load
from petspect.phantoms.nema_analysis import analyse_iec
from petspect.phantoms.nema_iec import make_nema_iec

from dicom_factory import slice_stack, write  # noqa: E402 (tests/io is on the path via conftest)


@pytest.fixture(scope="module")
def iec_series(tmp_path_factory):
    vol = make_nema_iec(voxel_mm=4.0, pmma_walls=False).volumes["activity"]
    folder = tmp_path_factory.mktemp("iec") / "pet"
    write(slice_stack(vol.numpy(), modality="PT", spacing=vol.spacing_mm, origin=vol.origin_mm), folder)
    return folder, vol


def test_loads_in_arbitrary_units_with_a_warning(iec_series):
    folder, vol = iec_series
    with pytest.warns(UserWarning, match="without Units"):
        img = load(folder)
    assert img.unit == "a.u." and img.meta["dicom_units"] == ""
    assert float(img.data.max()) == pytest.approx(float(vol.data.max()), rel=1e-3)


def test_nema_on_a_series_without_units(iec_series, tmp_path):
    folder, vol = iec_series
    ref = analyse_iec(vol)
    r = CliRunner().invoke(app, ["nema", str(folder), "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0 and "no unit" in r.output, r.output
    res = json.loads((tmp_path / "a.json").read_text())
    assert res["unit"] == "a.u."
    assert res["background"]["mean"] == pytest.approx(ref["background"]["mean"], rel=1e-3)
    for got, want in zip(res["spheres"], ref["spheres"]):
        assert got["contrast_pct"] == pytest.approx(want["contrast_pct"], rel=1e-3, abs=1e-3)
    r = CliRunner().invoke(app, ["nema", str(folder), "--unit", "Bq/mL", "--json", str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "b.json").read_text())["unit"] == "Bq/mL"
    r = CliRunner().invoke(app, ["convert", str(folder), str(tmp_path / "pet.nii.gz")])
    assert r.exit_code == 0, r.output
    assert load(tmp_path / "pet.nii.gz").unit == "a.u."
    r = CliRunner().invoke(app, ["convert", str(folder), str(tmp_path / "bq.nii.gz"), "--unit", "Bq/mL"])
    assert r.exit_code == 0 and load(tmp_path / "bq.nii.gz").unit == "Bq/mL", r.output
    r = CliRunner().invoke(app, ["convert", str(tmp_path / "bq.nii.gz"), str(tmp_path / "x.nii"), "--unit", "SUVbw"])
    assert r.exit_code == 2 and "relabel" in r.output, r.output
