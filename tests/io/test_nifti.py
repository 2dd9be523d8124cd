"""NIfTI round trips: geometry (RAS <-> LPS), dtype, unit/modality/meta, overwrite and atomicity."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from petspect.errors import DataNotFoundError, FormatError, GeometryError, OutputExistsError
from petspect.io import load, save
from petspect.io.nifti import lps_affine_to_nifti, nifti_affine_to_lps
from petspect.volume import Volume


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * k @ k


def _marked_volume(direction, dtype=torch.float32) -> tuple[Volume, tuple[int, int, int]]:
    data = torch.zeros((5, 7, 9), dtype=dtype)
    mark = (3, 2, 6)
    data[mark] = 100
    vol = Volume(data, (2.5, 1.2, 0.9), (-30.3, 12.7, 88.1), direction, unit="Bq/mL", modality="PT",
                 meta={"series": "test", "suv_factors": {"bw": np.float64(1.5e-4)}})
    return vol, mark


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("oblique", [False, True])
def test_round_trip_keeps_world_position_of_marked_voxel(tmp_path, suffix, oblique):
    """The LPS position of a marked voxel survives save/load within 0.01 mm (also for oblique grids)."""
    direction = _rotation(np.array([0.3, -1.0, 0.4]), 0.5) if oblique else np.eye(3)[:, ::-1]
    vol, mark = _marked_volume(direction)
    out = save(vol, tmp_path / f"img{suffix}")
    back = load(out)
    idx = tuple(int(i) for i in torch.nonzero(back.data == 100)[0])
    assert idx == mark
    np.testing.assert_allclose(back.voxel_to_world(idx), vol.voxel_to_world(mark), atol=0.01)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    assert torch.equal(back.data, vol.data)
    assert back.unit == "Bq/mL" and back.modality == "PT"
    assert back.meta == {"series": "test", "suv_factors": {"bw": 1.5e-4}}


def test_nifti_affine_is_ras(tmp_path):
    """An axial LPS volume is written with a RAS affine: i runs Right->Left so its x column is negative."""
    vol = Volume.centered(torch.zeros((4, 6, 8)), (3.0, 2.0, 1.0))
    save(vol, tmp_path / "a.nii")
    img = nib.load(str(tmp_path / "a.nii"))
    assert img.shape == (8, 6, 4)  # (i, j, k) = (x, y, z)
    np.testing.assert_allclose(np.diag(img.affine)[:3], [-1.0, -2.0, 3.0])
    # world position of voxel (0,0,0): LPS origin with x and y negated
    np.testing.assert_allclose(img.affine[:3, 3], [-vol.origin_mm[0], -vol.origin_mm[1], vol.origin_mm[2]])
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    np.testing.assert_allclose(nifti_affine_to_lps(lps_affine_to_nifti(vol.affine)), vol.affine)


def test_foreign_nifti_loads_with_geometry(tmp_path):
    """A plain RAS+ NIfTI from another tool: voxel (i, j, k) lands at the LPS point of its RAS position."""
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    aff = np.array([[2.0, 0, 0, -10], [0, 3.0, 0, 20], [0, 0, 4.0, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(arr, aff), str(tmp_path / "f.nii.gz"))
    vol = load(tmp_path / "f.nii.gz")
    assert vol.shape == (6, 5, 4) and vol.data.dtype == torch.int16 and vol.unit == "a.u."
    i, j, k = 3, 1, 4
    ras = aff @ np.array([i, j, k, 1.0])
    np.testing.assert_allclose(vol.voxel_to_world((k, j, i)), [-ras[0], -ras[1], ras[2]])
    assert int(vol.data[k, j, i]) == int(arr[i, j, k])


def test_label_dtype_and_header_fallback(tmp_path):
    """Integer labels stay integer; unit is read from descrip when the extension is absent."""
    vol = Volume.centered(torch.tensor(np.arange(24).reshape(2, 3, 4), dtype=torch.int64), (1, 1, 1),
                          unit="label", modality="SEG")
    save(vol, tmp_path / "l.nii.gz")
    img = nib.load(str(tmp_path / "l.nii.gz"))
    assert img.get_data_dtype() == np.int32
    info = json.loads(img.header.extensions[0].get_content())
    assert info["petspect"]["unit"] == "label"
    img.header.extensions.clear()
    nib.save(img, str(tmp_path / "noext.nii.gz"))
    back = load(tmp_path / "noext.nii.gz")
    assert back.unit == "label" and back.modality == "SEG"
    assert torch.equal(back.data.long(), vol.data)


def test_scaled_file_applies_slope(tmp_path):
    """scl_slope/scl_inter are applied (value = raw * slope + inter)."""
    img = nib.Nifti1Image(np.full((2, 2, 2), 10, dtype=np.int16), np.eye(4))
    img.header.set_slope_inter(0.5, 3.0)
    nib.save(img, str(tmp_path / "s.nii"))
    vol = load(tmp_path / "s.nii")
    assert vol.data.dtype == torch.float32
    assert torch.equal(vol.data, torch.full((2, 2, 2), 8.0))


def test_overwrite_refused_and_atomic(tmp_path):
    vol, _ = _marked_volume(np.eye(3))
    out = save(vol, tmp_path / "x.nii.gz")
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="x.nii.gz"):
        save(vol, out)
    assert out.read_bytes() == before
    save(vol.with_data(vol.data * 2), out, overwrite=True)
    assert float(load(out).data.max()) == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]  # no temporary files left


def test_bad_inputs(tmp_path):
    with pytest.raises(DataNotFoundError, match="missing.nii"):
        load(tmp_path / "missing.nii")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    with pytest.raises(FormatError, match="bad.nii.gz"):
        load(bad)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(FormatError, match="not a DICOM, NIfTI"):
        load(txt)
    shear = np.array([[1.0, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), shear), str(tmp_path / "shear.nii"))
    with pytest.raises(GeometryError, match="shear"):
        load(tmp_path / "shear.nii")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), str(tmp_path / "4d.nii"))
    with pytest.raises(FormatError, match="3D"):
        load(tmp_path / "4d.nii")
    with pytest.raises(FormatError, match="extension"):
        save(Volume(torch.zeros(2, 2, 2)), tmp_path / "out.xyz")
