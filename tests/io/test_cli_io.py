"""``petspect info`` and ``petspect convert`` through Typer's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import dicom_factory as fac
from petspect.cli.main import app
from petspect.io import load

runner = CliRunner()


@pytest.fixture
def pet_dir(tmp_path):
    return fac.write(fac.slice_stack(np.full((3, 4, 4), 5000.0), **fac.pet_attrs()), tmp_path / "pet")


def test_info_pet_prints_geometry_and_every_suv_factor_without_identifiers(pet_dir):
    res = runner.invoke(app, ["info", str(pet_dir)])
    assert res.exit_code == 0, res.output
    for text in ("shape_zyx", "(3, 4, 4)", "Bq/mL", "PT", "lbm_janmahasatian", "ibw", "bsa"):
        assert text in res.output
    for secret in ("Test^Patient", "PID-001", "19600101"):
        assert secret not in res.output
    res = runner.invoke(app, ["info", str(pet_dir), "--json"])
    d = json.loads(res.output)
    assert d["suv_factors"]["bw"] == pytest.approx(70000 / (370e6 * 0.5 ** (3600 / fac.F18_HALF_LIFE_S)), rel=1e-9)


def test_convert_dicom_to_nifti_with_suv_and_back(tmp_path, pet_dir):
    res = runner.invoke(app, ["convert", str(pet_dir), str(tmp_path / "pet.nii.gz")])
    assert res.exit_code == 0, res.output
    nii = load(tmp_path / "pet.nii.gz")
    assert nii.unit == "Bq/mL" and nii.meta["suv_factors"]["bw"] == load(pet_dir).meta["suv_factors"]["bw"]
    suv = load(tmp_path / "pet.nii.gz", suv="bw")  # factors travel in the NIfTI header extension
    res = runner.invoke(app, ["convert", str(pet_dir), str(tmp_path / "suv.nii"), "--suv", "bw"])
    assert res.exit_code == 0
    np.testing.assert_allclose(load(tmp_path / "suv.nii").numpy(), suv.numpy(), rtol=1e-6)
    res = runner.invoke(app, ["convert", str(pet_dir), str(tmp_path / "pet.nii.gz")])
    assert res.exit_code == 2 and "exists" in res.output
    res = runner.invoke(app, ["convert", str(pet_dir), str(tmp_path / "pet.nii.gz"), "--overwrite"])
    assert res.exit_code == 0
    res = runner.invoke(app, ["convert", str(pet_dir), str(tmp_path / "derived")])
    assert res.exit_code == 0 and load(tmp_path / "derived").meta["suv_factors"]["bw"] == pytest.approx(
        nii.meta["suv_factors"]["bw"], rel=1e-9)


def test_convert_projections_and_errors(tmp_path):
    fac.write([fac.nm_tomo()], tmp_path / "nm")
    res = runner.invoke(app, ["convert", str(tmp_path / "nm"), str(tmp_path / "p.hs")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["info", str(tmp_path / "p.hs")])
    assert res.exit_code == 0 and "spect_projections" in res.output and "EM" in res.output
    res = runner.invoke(app, ["convert", str(tmp_path / "nm"), str(tmp_path / "p.nii")])
    assert res.exit_code == 2 and ".hs only" in res.output
    ct = fac.write(fac.slice_stack(np.zeros((2, 3, 3)), modality="CT"), tmp_path / "ct")
    res = runner.invoke(app, ["convert", str(ct), str(tmp_path / "ct.nii"), "--suv", "bw"])
    assert res.exit_code == 2 and "PET" in res.output
    res = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "missing" in res.output


def test_convert_one_gate_of_gated_spect(tmp_path):
    """``convert --gate K`` writes time slot K of a gated NM TOMO acquisition to Interfile; ``info`` reports the
    number of gates; --gate on a volume is refused."""
    from petspect.io.interfile import read_interfile_projections

    fac.write([fac.nm_tomo(slot_times_ms=[300.0, 300.0, 300.0])], tmp_path / "gated")
    res = runner.invoke(app, ["info", str(tmp_path / "gated")])
    assert res.exit_code == 0 and "n_gates" in res.output
    res = runner.invoke(app, ["convert", str(tmp_path / "gated"), str(tmp_path / "g2.hs"), "--gate", "2"])
    assert res.exit_code == 0, res.output
    back = read_interfile_projections(tmp_path / "g2.hs")
    assert float(back.counts[0, 0, 0, 0]) == 1000.0 and back.frame_duration_s == pytest.approx(20.0 / 3)
    res = runner.invoke(app, ["convert", str(tmp_path / "gated"), str(tmp_path / "g9.hs"), "--gate", "9"])
    assert res.exit_code == 2 and "1..3" in res.output
    ct = fac.write(fac.slice_stack(np.zeros((2, 3, 3)), modality="CT"), tmp_path / "ct")
    res = runner.invoke(app, ["convert", str(ct), str(tmp_path / "ct.nii"), "--gate", "1"])
    assert res.exit_code == 2 and "gate" in res.output
