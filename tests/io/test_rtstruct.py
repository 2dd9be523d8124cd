"""RTSTRUCT rasterisation: areas of known shapes, holes by the even-odd rule, plane checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dicom_factory as fac
from petspect.errors import FormatError, GeometryError
from petspect.io.rtstruct import read_rtstruct
from petspect.volume import Volume


@pytest.fixture
def reference():
    return Volume.centered(torch.zeros((5, 80, 80)), (3.0, 0.8, 0.8))


def _write(tmp_path, rois, **kw):
    fac.rtstruct(rois, **kw).save_as(tmp_path / "rs.dcm", enforce_file_format=True)
    return tmp_path / "rs.dcm"


def test_circle_area_within_two_percent(tmp_path, reference):
    """A circle of radius 20 mm: pi * 20^2 = 1256.6 mm^2 on one slice, nothing elsewhere."""
    z = reference.voxel_to_world((2, 0, 0))[2]
    masks = read_rtstruct(_write(tmp_path, {"lesion": [fac.circle((3.0, -2.0, z), 20.0)]}), reference)
    m = masks["lesion"]
    assert m.unit == "label" and m.data.dtype == torch.uint8 and m.same_grid(reference)
    per_slice = m.data.sum(dim=(1, 2)).tolist()
    assert per_slice[2] > 0 and sum(per_slice) == per_slice[2]
    area = per_slice[2] * 0.8 * 0.8
    assert area == pytest.approx(np.pi * 20.0**2, rel=0.02)
    # the mask is centred on the circle centre
    idx = torch.nonzero(m.data[2]).double().mean(dim=0).numpy()
    centre = reference.voxel_to_world((2, idx[0], idx[1]))
    np.testing.assert_allclose(centre[:2], [3.0, -2.0], atol=0.2)


def test_hole_and_disjoint_contours_even_odd(tmp_path, reference):
    z0 = reference.voxel_to_world((1, 0, 0))[2]
    z1 = reference.voxel_to_world((3, 0, 0))[2]
    rois = {"ring": [fac.circle((0, 0, z0), 25.0), fac.circle((0, 0, z0), 10.0)],
            "pair": [fac.circle((-15, 0, z1), 6.0), fac.circle((15, 0, z1), 6.0)],
            "empty": []}
    masks = read_rtstruct(_write(tmp_path, rois), reference)
    ring = float(masks["ring"].data[1].sum()) * 0.64
    assert ring == pytest.approx(np.pi * (25.0**2 - 10.0**2), rel=0.02)
    assert int(masks["ring"].data[1, 40, 40]) == 0  # the hole
    pair = float(masks["pair"].data[3].sum()) * 0.64
    assert pair == pytest.approx(2 * np.pi * 36.0, rel=0.05)
    assert int(masks["empty"].data.sum()) == 0 and masks["empty"].meta["n_contours"] == 0


def test_off_grid_and_non_planar(tmp_path, reference):
    far = fac.circle((0, 0, 500.0), 10.0)
    masks = read_rtstruct(_write(tmp_path, {"far": [far]}), reference)
    assert int(masks["far"].data.sum()) == 0 and masks["far"].meta["n_contours_off_grid"] == 1
    tilted = fac.circle((0, 0, 0), 20.0)
    tilted[:, 2] = tilted[:, 0] * 0.5  # tilted plane spanning several slices
    with pytest.raises(GeometryError, match="slice plane"):
        read_rtstruct(_write(tmp_path, {"tilted": [tilted]}), reference)


def test_not_an_rtstruct(tmp_path, reference):
    pet = fac.slice_stack(np.ones((2, 2, 2)), **fac.pet_attrs())
    with pytest.raises(FormatError, match="RTSTRUCT"):
        read_rtstruct(fac.write(pet, tmp_path / "pet"), reference)
