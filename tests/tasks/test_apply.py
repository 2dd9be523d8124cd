"""Applying a trained denoiser to real data: DICOM and NIfTI, Bq/mL and SUV, geometry and SUV facts kept."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import torch

from conftest import BQML_PER_SUV, SHAPE
from petspect.errors import InputError, OutputExistsError, UnitError
from petspect.tasks.apply import apply_model, denoise_physical, model_scale
from petspect.volume import Volume

F18_HALF_LIFE_S = 109.77 * 60.0  # docs/REFERENCE.md (radioactivedecay)


def _pet_volume(seed: int = 0) -> Volume:
    """A noisy PET volume in Bq/mL on an oblique-free grid with an off-centre origin and 4 x 3 x 3 mm voxels."""
    g = np.random.default_rng(seed)
    data = np.zeros(SHAPE, np.float32)
    data[1:7, 6:26, 5:27] = 5000.0
    data = g.poisson(data * 0.01) / 0.01
    return Volume(torch.as_tensor(data.astype(np.float32)), (4.0, 3.0, 3.0), (-40.0, -60.0, 120.0),
                  unit="Bq/mL", modality="PT")


def _dicom_series(folder) -> None:
    from petspect.io import write_dicom_series

    write_dicom_series(_pet_volume(), folder, patient={"weight_kg": 72.0, "size_m": 1.75, "sex": "M"},
                       radiopharmaceutical={"total_dose_bq": 250e6, "half_life_s": F18_HALF_LIFE_S,
                                            "start_datetime": datetime(2025, 5, 6, 9, 0, 0),
                                            "scan_datetime": "20250506100000", "name": "FDG"})


def test_dicom_in_dicom_out_keeps_geometry_units_and_suv(tiny_model, tmp_path):
    """The derived series has the input's grid, unit and SUV factors of every kind (same patient and dose)."""
    from petspect.io import load

    _dicom_series(tmp_path / "pet")
    info = apply_model(tiny_model, tmp_path / "pet", tmp_path / "den")
    src, out = load(tmp_path / "pet"), load(tmp_path / "den")
    assert out.shape == src.shape and out.same_grid(src)
    np.testing.assert_allclose(out.spacing_mm, src.spacing_mm)
    np.testing.assert_allclose(out.origin_mm, src.origin_mm, atol=1e-3)
    assert out.unit == src.unit == "Bq/mL" and out.modality == "PT"
    for kind, f in src.meta["suv_factors"].items():
        if f is not None:
            assert out.meta["suv_factors"][kind] == pytest.approx(f, rel=1e-6)
    assert "SUVbw" in info["conversion"] and not torch.equal(out.data, src.data)
    assert load(tmp_path / "den", suv="bw").unit == "SUVbw"
    with pytest.raises(OutputExistsError):
        apply_model(tiny_model, tmp_path / "pet", tmp_path / "den")
    with pytest.raises(OutputExistsError):
        apply_model(tiny_model, tmp_path / "pet", tmp_path / "pet", overwrite=True)


def test_suv_and_bqml_inputs_give_the_same_image(tiny_model, tmp_path):
    """SUV input is mapped onto the training scale and back: the result is the Bq/mL result times the SUV factor."""
    from petspect.io import load
    from petspect.train import load_model

    _dicom_series(tmp_path / "pet")
    model = load_model(tiny_model)
    bq, suv = load(tmp_path / "pet"), load(tmp_path / "pet", suv="bw")
    f_bq, _ = model_scale(bq, model)
    f_suv, note = model_scale(suv, model)
    sbw = bq.meta["suv_factors"]["bw"]
    assert float(f_bq) == pytest.approx(sbw * BQML_PER_SUV) and float(f_suv) == pytest.approx(BQML_PER_SUV)
    out_bq, _ = denoise_physical(model, bq)
    out_suv, _ = denoise_physical(model, suv)
    assert out_suv.unit == "SUVbw"
    torch.testing.assert_close(out_suv.data, out_bq.data * sbw, rtol=1e-4, atol=1e-4)
    apply_model(tiny_model, tmp_path / "pet", tmp_path / "den.nii.gz")
    nii = load(tmp_path / "den.nii.gz")
    assert nii.unit == "Bq/mL" and nii.same_grid(bq) and nii.meta["denoised_by"]["model"] == tiny_model.name


def test_unit_mismatch_and_missing_channels(tiny_model, tmp_path):
    from petspect.io import save
    from petspect.train import load_model

    model = load_model(tiny_model)
    with pytest.raises(UnitError):
        model_scale(_pet_volume().with_data(torch.ones(SHAPE), unit="counts"), model)
    bare = _pet_volume()
    f, note = model_scale(bare, model)  # Bq/mL without SUV factors: used as is
    assert float(f) == 1.0 and "as is" in note
    with pytest.raises(InputError):
        denoise_physical(model, bare.with_data(bare.data, modality="CT"))
    save(bare, tmp_path / "pet.nii.gz")
    with pytest.raises(InputError):
        apply_model(tiny_model, tmp_path / "pet.nii.gz", tmp_path / "o.nii.gz", extra={"ct": tmp_path / "pet.nii.gz"})


def test_any_axis_aligned_orientation_gives_the_same_image(tiny_model):
    """The same voxels stored flipped and permuted (as a NIfTI with nibabel's RAS affine would be) are
    denoised on the axial grid and come back on the input's own grid: the result is the axial result
    reordered the same way, voxel for voxel; an oblique grid is refused with the resampling command."""
    from petspect.errors import GeometryError
    from petspect.orientation import from_axial, to_axial
    from petspect.train import load_model

    model = load_model(tiny_model)
    axial = _pet_volume()
    ref, _ = denoise_physical(model, axial)
    # the same patient voxels with the array axes in (x, y, z) order and z and x running backwards
    data = torch.flip(axial.data, (0, 2)).permute(2, 1, 0).contiguous()
    corner = axial.voxel_to_world(np.array([axial.shape[0] - 1, 0, axial.shape[2] - 1], dtype=float))
    axes = np.asarray(axial.direction, dtype=float)
    direction = np.stack([-axes[:, 2], axes[:, 1], -axes[:, 0]], axis=1)
    other = Volume(data, (3.0, 3.0, 4.0), tuple(float(v) for v in corner), direction, unit="Bq/mL", modality="PT")
    back, view = to_axial(other)
    torch.testing.assert_close(back.data, axial.data)  # the construction holds the same voxels
    out, _ = denoise_physical(model, other)
    assert out.same_grid(other) and out.shape == other.shape
    torch.testing.assert_close(to_axial(out)[0].data, ref.data, rtol=1e-5, atol=1e-3)
    c, s = np.cos(0.2), np.sin(0.2)
    oblique = Volume(axial.data, axial.spacing_mm, axial.origin_mm, [[c, -s, 0], [s, c, 0], [0, 0, 1]],
                     unit="Bq/mL", modality="PT")
    with pytest.raises(GeometryError, match="resample"):
        denoise_physical(model, oblique)
