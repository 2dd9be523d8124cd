"""Joining bed images: a slice of one bed is kept; in an overlap each bed weighs by its distance to its own end
(linear feathering); beds of a uniform object join without a step; bad inputs are refused."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import GeometryError, InputError
from petspect.recon.beds import bed_decay_factors, join_beds
from petspect.volume import AXIAL_DIRECTION, Volume


def _bed(values, z0: float, dz: float = 2.0, unit: str = "Bq/mL") -> Volume:
    data = torch.as_tensor(values, dtype=torch.float32)[:, None, None].expand(-1, 2, 3).clone()
    return Volume(data, (dz, 4.0, 4.0), (-4.0, -2.0, z0), AXIAL_DIRECTION, unit=unit, modality="NM")


def test_overlap_weights_and_extent():
    """Bed A slices at z = 0..8 mm, bed B at 6..14 (two slices overlap: 6 and 8). At z = 6 the weights are
    A: min(6, 2) + 1 = 3, B: 0 + 1 = 1 -> (3 a + b) / 4; at z = 8: A 1, B 3."""
    a, b = _bed([1.0] * 5, 0.0), _bed([3.0] * 5, 6.0)
    out = join_beds([b, a])  # any order
    assert out.shape == (8, 2, 3) and out.origin_mm[2] == 0.0
    z = out.data[:, 0, 0].tolist()
    assert z[:3] == [1.0, 1.0, 1.0] and z[-3:] == [3.0, 3.0, 3.0]
    assert z[3] == pytest.approx((3 * 1.0 + 1 * 3.0) / 4) and z[4] == pytest.approx((1 * 1.0 + 3 * 3.0) / 4)
    assert out.meta["beds"] == [[6.0, 14.0], [0.0, 8.0]]
    uniform = join_beds([_bed([5.0] * 5, 0.0), _bed([5.0] * 5, 6.0), _bed([5.0] * 5, 12.0)])
    assert torch.allclose(uniform.data, torch.full_like(uniform.data, 5.0)) and uniform.shape[0] == 11


def test_refusals():
    with pytest.raises(InputError):
        join_beds([])
    with pytest.raises(GeometryError, match="gap"):
        join_beds([_bed([1.0] * 3, 0.0), _bed([1.0] * 3, 20.0)])
    with pytest.raises(InputError, match="units"):
        join_beds([_bed([1.0] * 3, 0.0), _bed([1.0] * 3, 4.0, unit="a.u.")])
    with pytest.raises(GeometryError, match="slice thickness"):
        join_beds([_bed([1.0] * 3, 0.0), _bed([1.0] * 3, 4.0, dz=3.0)])
    assert join_beds([_bed([1.0] * 3, 0.0)]).shape == (3, 2, 3)


def test_decay_factors_to_the_first_bed():
    """Tc-99m (T1/2 = 6.0067 h): a bed started 20 min after the first is scaled by 2^(1200 / 21624) = 1.0392."""
    f = bed_decay_factors([1000.0, 2200.0], 6.0067 * 3600.0)
    assert f[0] == 1.0 and f[1] == pytest.approx(2.0 ** (1200.0 / (6.0067 * 3600.0))) and f[1] == pytest.approx(1.0392,
                                                                                                               abs=1e-4)
    assert bed_decay_factors([0.0, None], 100.0) is None and bed_decay_factors([0.0, 1.0], None) is None
