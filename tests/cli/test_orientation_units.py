"""Any axis-aligned NIfTI orientation and stated units: a cylinder written with nibabel (identity RAS affine, no
unit) projects with --unit Bq/mL --mu-unit 1/mm and reconstructs to its concentration in the input's affine;
reordering is lossless; oblique images are refused with the resampling command, which works."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import GeometryError, UnitError
from petspect.io import load
from petspect.io.stated_units import state_mu_unit, state_unit
from petspect.orientation import from_axial, is_axis_aligned, to_axial
from petspect.volume import Volume

CONC, MU = 800.0, 0.0153  # Bq/mL; water at 140 keV in 1/mm
SHAPE_IJK, VOX = (32, 32, 6), 4.0  # nibabel array (i, j, k) = (R, A, S) with the identity affine


def _cylinder_ijk(value):
    i, j = np.meshgrid(np.arange(SHAPE_IJK[0]) - 15.5, np.arange(SHAPE_IJK[1]) - 15.5, indexing="ij")
    disc = (i * VOX) ** 2 + (j * VOX) ** 2 < 40.0 ** 2
    return np.repeat(disc[:, :, None], SHAPE_IJK[2], axis=2).astype(np.float32) * value


def test_reordering_is_lossless_and_undone(tmp_path):
    affine = np.diag([VOX, VOX, VOX, 1.0])
    affine[:3, 3] = (-60.0, 10.0, 5.0)
    data = np.random.default_rng(0).random(SHAPE_IJK).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ras.nii")
    vol = load(tmp_path / "ras.nii")
    assert is_axis_aligned(vol)
    axial, view = to_axial(vol)
    assert not view.identity and np.allclose(np.asarray(axial.direction), np.eye(3)[::-1])
    # the same voxel sits at the same LPS point in both grids, bit for bit
    for idx in [(0, 0, 0), (3, 7, 30), (5, 31, 2)]:
        world = vol.voxel_to_world(np.asarray(idx, dtype=float))
        k = np.rint(axial.world_to_voxel(world)).astype(int)
        assert float(axial.data[tuple(k)]) == float(vol.data[idx])
    back = from_axial(axial, view)
    assert torch.equal(back.data, vol.data) and back.same_grid(vol)


def test_oblique_refused_with_the_resampling_command(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([[VOX * c, -VOX * s, 0, 0], [VOX * s, VOX * c, 0, 0], [0, 0, VOX, 0], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(_cylinder_ijk(CONC), affine), tmp_path / "obl.nii.gz")
    vol = load(tmp_path / "obl.nii.gz")
    with pytest.raises(GeometryError, match="petspect resample"):
        to_axial(vol)
    r = CliRunner().invoke(app, ["resample", str(tmp_path / "obl.nii.gz"), "--axial", "--out", str(tmp_path / "a.nii")])
    assert r.exit_code == 0, r.output
    ax = load(tmp_path / "a.nii")
    assert is_axis_aligned(ax) and to_axial(ax)[1].identity
    total = float(vol.data.sum()) * float(np.prod(vol.spacing_mm))
    assert float(ax.data.sum()) * float(np.prod(ax.spacing_mm)) == pytest.approx(total, rel=0.05)


def test_stated_units():
    v = Volume.centered(torch.ones(2, 2, 2), (1.0, 1.0, 1.0))
    assert v.unit == "a.u." and state_unit(v, "bq/ml").unit == "Bq/mL"
    assert state_mu_unit(v, "HU").unit == "HU" and state_unit(v, None) is v
    with pytest.raises(UnitError, match="relabel"):
        state_unit(v.with_data(v.data, unit="SUVbw"), "Bq/mL")
    with pytest.raises(UnitError, match="--mu-unit"):
        state_mu_unit(v, "Bq/mL")


def test_nibabel_cylinder_projects_and_reconstructs_in_its_own_affine(tmp_path):
    affine = np.eye(4)
    affine[:3, :3] *= VOX
    nib.save(nib.Nifti1Image(_cylinder_ijk(CONC), affine), tmp_path / "act.nii.gz")
    nib.save(nib.Nifti1Image(_cylinder_ijk(MU), affine), tmp_path / "mu.nii.gz")
    runner = CliRunner()
    r = runner.invoke(app, ["project", str(tmp_path / "act.nii.gz"), "--system", "spect-lehr", "--views", "32",
                            "--radius-mm", "150", "--counts", "3e6", "--unit", "Bq/mL", "--mu",
                            str(tmp_path / "mu.nii.gz"), "--mu-unit", "1/mm", "--out", str(tmp_path / "acq")])
    assert r.exit_code == 0 and "reordered" in r.output, r.output
    r = runner.invoke(app, ["recon", str(tmp_path / "acq"), "--iterations", "8", "--subsets", "4",
                            "--out", str(tmp_path / "rec.nii.gz")])
    assert r.exit_code == 0, r.output
    img = nib.load(tmp_path / "rec.nii.gz")
    np.testing.assert_allclose(img.affine, affine, atol=1e-4)  # the input's affine (RAS identity x 4 mm)
    data = np.asarray(img.dataobj)
    assert data.shape == SHAPE_IJK
    inner = _cylinder_ijk(1.0) > 0
    inner[:, :, [0, -1]] = False
    assert float(data[inner].mean()) == pytest.approx(CONC, rel=0.07)
    # the attenuation map was used: the centre is not depressed relative to the rim
    centre = data[12:20, 12:20, 2:4].mean()
    assert centre == pytest.approx(CONC, rel=0.12)
