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


def _ball_series(folder, *, units):
    """A PET series with its header's dose, weight and times (SUV computable), with or without Units."""
    import numpy as np

    from dicom_factory import pet_attrs

    vals = np.full((8, 24, 24), 5000.0)
    vals[3:6, 10:14, 10:14] = 40000.0
    datasets = slice_stack(vals, modality="PT")
    attrs = pet_attrs(units="BQML")
    for ds in datasets:
        for k, v in attrs.items():
            setattr(ds, k, v)
        if units is None:
            del ds.Units
    return write(datasets, folder)


@pytest.mark.parametrize("stated, per_bqml", [("Bq/mL", 1.0), ("kBq/mL", 1e3)])
def test_stated_unit_gives_the_header_suv(tmp_path, stated, per_bqml):
    """A series without Units and `--unit Bq/mL`: the header's SUV factors (dose, weight, times) hold for the
    stated unit; they gave 'SUV bw cannot be computed: missing Units' before."""
    from petspect.io.stated_units import state_unit
    from petspect.io.suv import apply_suv

    ref = load(_ball_series(tmp_path / "with", units="BQML"), suv="bw")
    with pytest.warns(UserWarning, match="without Units"):
        raw = load(_ball_series(tmp_path / "without", units=None))
    with pytest.raises(Exception, match="missing Units"):
        apply_suv(raw, "bw")
    suv = apply_suv(state_unit(raw, stated), "bw")
    assert float(suv.data.max()) == pytest.approx(float(ref.data.max()) * per_bqml, rel=1e-6)
    assert raw.meta["suv_factors"]["bw"] is None  # the file alone still says nothing


def test_segment_with_stated_unit_on_a_series_without_units(tmp_path):
    import csv

    with_units = _ball_series(tmp_path / "with", units="BQML")
    without = _ball_series(tmp_path / "without", units=None)
    r1 = CliRunner().invoke(app, ["segment", "--method", "suv25", "--input", str(with_units), "--out",
                                  str(tmp_path / "o1")])
    r2 = CliRunner().invoke(app, ["segment", "--method", "suv25", "--input", str(without), "--unit", "Bq/mL",
                                  "--out", str(tmp_path / "o2")])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    rows = [list(csv.DictReader(open(tmp_path / o / "lesions.csv"))) for o in ("o1", "o2")]
    assert len(rows[0]) == len(rows[1]) == 1
    assert float(rows[1][0]["suv_max"]) == pytest.approx(float(rows[0][0]["suv_max"]), rel=1e-4)
    assert float(rows[0][0]["suv_max"]) > 2.5


def test_multiframe_pet_without_units_loads_and_takes_a_stated_unit(tmp_path):
    """A multi-frame PET without Units: every frame shares one dataset. The first version of the stated-unit
    factors set and deleted Units on each frame's dataset, so the second delete raised AttributeError."""
    import numpy as np
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from dicom_factory import pet_attrs, set_pixels
    from petspect.io.stated_units import state_unit
    from petspect.io.suv import apply_suv

    ds = slice_stack(np.zeros((1, 4, 4)), modality="PT")[0]
    for k, v in pet_attrs(units="BQML").items():
        setattr(ds, k, v)
    del ds.Units
    set_pixels(ds, np.stack([np.full((4, 4), 10 * (k + 1), dtype=np.uint16) for k in range(3)]))
    ds.NumberOfFrames = 3
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, kw)
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [4.0, 4.0]
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for k in range(3):
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    write([ds], tmp_path / "mf")
    with pytest.warns(UserWarning, match="without Units"):
        raw = load(tmp_path / "mf" / "im0000.dcm")
    assert raw.unit == "a.u."
    suv = apply_suv(state_unit(raw, "Bq/mL"), "bw")
    assert float(suv.data.max()) == pytest.approx(30.0 * raw.meta["suv_factors_if_bqml"]["bw"], rel=1e-6)
