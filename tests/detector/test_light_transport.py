"""Light transport: exact solid angles, sensible collected fractions, symmetry, total internal reflection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petspect.detector.light_transport import (Optics, critical_angle_deg, fresnel_transmission, light_collection,
                                               quadrant_solid_angle)
from petspect.detector.photodetector import SiPMArray
from petspect.errors import InputError

SIPM = SiPMArray(n_x=4, n_y=4, pitch_mm=3.2, active_mm=3.0)
SIZE = (12.8, 12.8)


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_quadrant_solid_angle_exact():
    """Unclipped: arctan(ab / (h sqrt(a^2+b^2+h^2))) (solid angle of a rectangle corner); clipped by a
    disc: brute-force numerical integral of h / r^3 over the region."""
    a, b, h = _t(1.3), _t(2.1), _t(0.7)
    ref = torch.atan(a * b / (h * torch.sqrt(a * a + b * b + h * h)))
    assert torch.allclose(quadrant_solid_angle(a, b, h, _t(1e9)), ref, atol=1e-12)
    xs, ys = np.linspace(0, 1.3, 1301), np.linspace(0, 2.1, 2101)
    x, y = np.meshgrid(xs, ys)
    for radius in (0.5, 1.5, 2.0):
        f = 0.7 / (x**2 + y**2 + 0.49) ** 1.5 * ((x**2 + y**2) < radius**2)
        num = np.trapezoid(np.trapezoid(f, xs, axis=1), ys)
        assert abs(float(quadrant_solid_angle(a, b, h, _t(radius))) - num) < 2e-3 * max(num, 0.1)
    # sign follows the quadrant
    assert float(quadrant_solid_angle(-a, b, h, _t(9.0))) == pytest.approx(-float(quadrant_solid_angle(a, b, h, _t(9.0))))


def test_fresnel_and_critical_angle():
    """Normal incidence LYSO (1.81) into grease (1.5): T = 1 - ((n1-n2)/(n1+n2))^2; zero beyond asin(1.5/1.81)."""
    t0 = float(fresnel_transmission(_t(1.0), 1.81, 1.5))
    assert t0 == pytest.approx(1.0 - ((1.81 - 1.5) / 3.31) ** 2, rel=1e-9)
    theta_c = critical_angle_deg(1.81, 1.5)
    assert theta_c == pytest.approx(math.degrees(math.asin(1.5 / 1.81)))
    beyond = torch.cos(torch.deg2rad(_t(theta_c + 0.5)))
    assert float(fresnel_transmission(beyond, 1.81, 1.5)) == 0.0
    assert critical_angle_deg(1.5, 1.81) == 90.0


def test_collected_fraction_sensible_and_symmetric():
    """A centred source: fraction below 1/2 (one hemisphere) and symmetric under x/y flips and transpose."""
    pts = _t([0.0, 0.0, 2.0], [0.0, 0.0, 8.0])
    f = light_collection(pts, size_mm=SIZE, thickness_mm=10.0, n_crystal=1.81, sipm=SIPM, optics=Optics())
    total = f.sum(dim=(1, 2))
    assert torch.all(total > 0.05) and torch.all(total < 1.0)
    for img in f:
        assert torch.allclose(img, img.flip(0), atol=1e-12)
        assert torch.allclose(img, img.flip(1), atol=1e-12)
        assert torch.allclose(img, img.T, atol=1e-12)


def test_direct_light_equals_rectangle_solid_angles_without_interfaces():
    """No reflections and index-matched coupling (no Fresnel loss, no TIR): each pixel receives exactly
    its rectangle's solid angle / 4 pi."""
    optics = Optics(coupling_index=1.81, lateral_reflectivity=0.0, top_reflectivity=0.0, lateral_order=0, z_images=1,
                    fresnel_levels=1)
    p = _t([0.7, -1.1, 6.0])
    f = light_collection(p, size_mm=SIZE, thickness_mm=10.0, n_crystal=1.81, sipm=SIPM, optics=optics)[0]
    h = 4.0
    cx, cy = SIPM.centres_mm()

    def corner(a, b):
        return math.atan(a * b / (h * math.sqrt(a * a + b * b + h * h)))

    for j, y in enumerate(cy):
        for i, x in enumerate(cx):
            x0, x1, y0, y1 = x - 1.5 - 0.7, x + 1.5 - 0.7, y - 1.5 + 1.1, y + 1.5 + 1.1
            omega = corner(x1, y1) - corner(x0, y1) - corner(x1, y0) + corner(x0, y0)
            assert float(f[j, i]) == pytest.approx(omega / (4 * math.pi), rel=1e-6)


def test_total_internal_reflection_and_reflector_change_collection():
    """An air gap (n=1) traps light beyond 33.5 deg; a reflective top face adds light; deeper sources
    (closer to the SiPM) concentrate the light on fewer pixels."""
    pts = _t([0.0, 0.0, 1.0], [0.0, 0.0, 9.0])
    base = dict(size_mm=SIZE, thickness_mm=10.0, n_crystal=1.81, sipm=SIPM)
    grease = light_collection(pts, optics=Optics(), **base).sum(dim=(1, 2))
    air = light_collection(pts, optics=Optics(coupling_index=1.0), **base).sum(dim=(1, 2))
    black = light_collection(pts, optics=Optics(top_reflectivity=0.0), **base).sum(dim=(1, 2))
    cone_air = 0.5 * (1.0 - math.cos(math.asin(1.0 / 1.81)))
    assert torch.all(air < grease) and torch.all(air <= cone_air * 2)  # direct + one top image at most
    assert torch.all(black < grease)
    f = light_collection(_t([1.6, 1.6, 1.0], [1.6, 1.6, 9.5]), optics=Optics(), **base)
    peak_share = f.amax(dim=(1, 2)) / f.sum(dim=(1, 2))
    assert peak_share[1] > peak_share[0]


def test_points_outside_raise():
    with pytest.raises(InputError):
        light_collection(_t([0.0, 0.0, 11.0]), size_mm=SIZE, thickness_mm=10.0, n_crystal=1.81, sipm=SIPM,
                         optics=Optics())
