"""3D Shepp-Logan: grey levels and ellipsoid volumes from the Kak & Slaney table."""

from __future__ import annotations

import math

import pytest
import torch

from petspect.errors import InputError
from petspect.materials import linear_attenuation_per_mm
from petspect.phantoms.shepp_logan import SHEPP_LOGAN_3D, make_shepp_logan



def test_grey_levels_and_volumes():
    """Skull 2.0, brain 2 - 0.98 = 1.02 (Kak & Slaney 1988); the outer ellipsoid's volume is
    4/3 pi abc of (0.69, 0.92, 0.90) x 100 mm; mu = grey x mu_water."""
    p = make_shepp_logan(voxel_mm=4.0, size_mm=200.0)
    grey = p["grey"].data
    assert float(grey.max()) == pytest.approx(2.0, abs=1e-5)
    assert float(grey[grey.shape[0] // 2, grey.shape[1] // 2 + 5, grey.shape[2] // 2]) == pytest.approx(1.02, abs=1e-5)
    rows = {r["name"]: r for r in p.tables["ellipsoids"]}
    assert rows["skull"]["volume_ml"] == pytest.approx(4 / 3 * math.pi * 69 * 92 * 90 / 1000, rel=0.01)
    mu = p["mu_511"].data
    assert torch.allclose(mu, grey * linear_attenuation_per_mm("water", 511), rtol=1e-5, atol=1e-9)
    assert len(p.label_names) == len(SHEPP_LOGAN_3D) + 1


def test_anterior_is_minus_y_and_variant():
    """The table's +y ellipsoid (0, 0.35, -0.15) lands at LPS y < 0 (anterior); Toft's modified
    grey levels give brain 1 - 0.8 = 0.2."""
    p = make_shepp_logan(voxel_mm=4.0, variant="modified")
    up = next(r for r in p.tables["ellipsoids"] if r["name"] == "upper_ellipsoid")
    assert up["centre_mm"][1] == pytest.approx(-35.0)
    g = p["grey"].data
    assert float(g[g.shape[0] // 2, g.shape[1] // 2 + 5, g.shape[2] // 2]) == pytest.approx(0.2, abs=1e-5)
    with pytest.raises(InputError):
        make_shepp_logan(voxel_mm=4.0, variant="nope")
