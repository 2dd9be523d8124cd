import numpy as np
import pytest
import torch

from petspect import Volume
from petspect.errors import InputError, PetspectError


def test_import_is_silent_and_lazy():
    import subprocess
    import sys

    code = "import sys, petspect; print(sorted(m for m in ('torch','monai','pydicom','nibabel') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""


def test_world_voxel_roundtrip_and_axial_convention():
    v = Volume(torch.zeros(4, 5, 6), spacing_mm=(3.0, 2.0, 1.5), origin_mm=(-10.0, 20.0, 30.0))
    # index (kz, ky, kx) = (1, 2, 3) -> x = -10 + 3*1.5, y = 20 + 2*2, z = 30 + 1*3
    np.testing.assert_allclose(v.voxel_to_world([1, 2, 3]), [-5.5, 24.0, 33.0])
    np.testing.assert_allclose(v.world_to_voxel(v.voxel_to_world([[1.5, 0.2, 4.0]])), [[1.5, 0.2, 4.0]])
    assert v.voxel_volume_ml == pytest.approx(3 * 2 * 1.5 / 1000)


def test_centered_grid_has_centre_at_origin():
    v = Volume.centered(torch.zeros(5, 7, 9), (2.0, 2.0, 2.0))
    np.testing.assert_allclose(v.voxel_to_world([2, 3, 4]), [0, 0, 0], atol=1e-12)


def test_crop_keeps_world_positions():
    v = Volume(torch.arange(60.0).reshape(3, 4, 5), spacing_mm=(2, 2, 2), origin_mm=(1, 2, 3))
    c = v.crop(z=slice(1, 3), x=slice(2, 5))
    np.testing.assert_allclose(c.voxel_to_world([0, 0, 0]), v.voxel_to_world([1, 0, 2]))
    assert c.data[0, 0, 0] == v.data[1, 0, 2]


def test_resample_identity_and_shift(device):
    gen = torch.Generator().manual_seed(0)
    data = torch.rand(6, 7, 8, generator=gen, dtype=torch.float64).to(device)
    v = Volume(data, spacing_mm=(2, 2, 2))
    same = v.resample_to(v)
    torch.testing.assert_close(same.data, data)
    assert same.data.device.type == device.type
    # reference shifted by exactly one voxel along x: values move by one column
    ref = Volume(torch.zeros(6, 7, 7), spacing_mm=(2, 2, 2), origin_mm=(2.0, 0, 0))
    shifted = v.resample_to(ref)
    torch.testing.assert_close(shifted.data, data[:, :, 1:])


def test_resample_linear_midpoint_and_nearest_labels():
    v = Volume(torch.tensor([[[0.0, 10.0]]]), spacing_mm=(1, 1, 2))
    ref = Volume(torch.zeros(1, 1, 1), spacing_mm=(1, 1, 1), origin_mm=(1.0, 0, 0))
    assert float(v.resample_to(ref).data) == pytest.approx(5.0)
    labels = Volume(torch.tensor([[[1, 2, 3]]], dtype=torch.int16), spacing_mm=(1, 1, 1))
    ref2 = Volume(torch.zeros(1, 1, 3), spacing_mm=(1, 1, 1), origin_mm=(0.4, 0, 0))
    out = labels.resample_to(ref2, mode="nearest")
    assert out.data.dtype == torch.int16
    assert out.data.flatten().tolist() == [1, 2, 3]


def test_resample_outside_uses_fill_value():
    v = Volume(torch.ones(2, 2, 2), spacing_mm=(1, 1, 1))
    ref = Volume(torch.zeros(1, 1, 1), spacing_mm=(1, 1, 1), origin_mm=(50.0, 0, 0))
    assert float(v.resample_to(ref, fill_value=-1000).data) == -1000


@pytest.mark.parametrize("bad", [
    dict(data=torch.zeros(2, 2)),
    dict(data=torch.zeros(2, 2, 2), spacing_mm=(1, 0, 1)),
    dict(data=torch.zeros(2, 2, 2), direction=((1, 1, 0), (0, 1, 0), (0, 0, 1))),
    dict(data=torch.zeros(2, 2, 2), origin_mm=(0, float("nan"), 0)),
])
def test_bad_volumes_raise_project_error(bad):
    with pytest.raises(PetspectError):
        Volume(**bad)
    with pytest.raises(InputError):
        Volume(**bad)


def test_to_and_bounding_box():
    d = torch.zeros(5, 5, 5)
    d[1:3, 2, 2:5] = 1
    v = Volume(d, spacing_mm=(1, 1, 1), unit="Bq/mL")
    assert v.bounding_box() == (slice(1, 3), slice(2, 3), slice(2, 5))
    v64 = v.to(dtype=torch.float64)
    assert v64.data.dtype == torch.float64 and v64.unit == "Bq/mL"
