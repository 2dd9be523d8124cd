"""NU 2 image-quality analysis: automatic localisation and contrasts against analytic truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from petspect.errors import InputError
from petspect.phantoms.nema_analysis import IecGeometry, analyse_iec, geometry_from_centres, locate_iec
from petspect.phantoms.nema_iec import make_nema_iec
from petspect.units import FWHM_PER_SIGMA
from petspect.volume import Volume


FWHM_MM = 6.0


def _blur(vol: Volume, fwhm_mm: float) -> Volume:
    sigma_vox = [fwhm_mm / FWHM_PER_SIGMA / s for s in vol.spacing_mm]
    return vol.with_data(torch.from_numpy(gaussian_filter(vol.numpy().astype(np.float64), sigma_vox, mode="constant")))


def _blurred_sphere(r_mm: float, radius_mm: float, sigma_mm: float) -> float:
    """A uniform unit ball convolved with an isotropic 3D Gaussian, at distance r from its centre
    (closed form, e.g. Hoetjes et al / the standard PSF-blurred-sphere result)."""
    r = max(r_mm, 1e-9)
    a, b = (radius_mm - r) / (math.sqrt(2) * sigma_mm), (radius_mm + r) / (math.sqrt(2) * sigma_mm)
    g = math.exp(-a * a) - math.exp(-b * b)
    return 0.5 * (erf(a) + erf(b)) - sigma_mm / (r * math.sqrt(2 * math.pi)) * g


def _truth(phantom):
    return geometry_from_centres([r["centre_mm"] for r in phantom.tables["spheres"]])


@pytest.fixture(scope="module")
def no_walls():
    return make_nema_iec(voxel_mm=2.0, pmma_walls=False)


def test_blurred_hot_contrast_matches_analytic_truth(no_walls):
    """Q_H of a noiseless wall-less phantom blurred by a 6 mm FWHM Gaussian equals, within 2 %, the
    mean over the NU 2 ROI of the analytic blurred sphere (sigma widened by the 2 mm voxel,
    sqrt(s^2 + v^2/12), evaluated on the analysed slice); Q_H rises with sphere size."""
    img = _blur(no_walls["activity"], FWHM_MM)
    res = analyse_iec(img)
    json.dumps(res)  # JSON-serialisable
    assert res["activity_ratio"] == 4.0 and res["activity_ratio_source"] == "image metadata"
    sigma = math.sqrt((FWHM_MM / FWHM_PER_SIGMA) ** 2 + 2.0**2 / 12)
    dz = res["slices_z_mm"][0] - res["geometry"]["plane_z_mm"]
    q = []
    for sp in res["spheres"]:
        r0 = sp["diameter_mm"] / 2
        expect = quad(lambda rho: _blurred_sphere(math.hypot(rho, dz), r0, sigma) * rho, 0, r0)[0] * 2 / r0**2 * 100
        assert sp["kind"] == "hot"
        assert sp["contrast_pct"] == pytest.approx(expect, rel=0.02), sp["diameter_mm"]
        q.append(sp["contrast_pct"])
    assert all(a > b for a, b in zip(q, q[1:]))  # 37 mm first: decreasing with decreasing size
    # the automatic fit reproduces the analysis at the known positions
    known = analyse_iec(img, geometry=_truth(no_walls))
    for a, b in zip(res["spheres"], known["spheres"]):
        assert a["contrast_pct"] == pytest.approx(b["contrast_pct"], rel=0.02)


def test_unblurred_phantom_full_recovery(no_walls):
    """Without blur the big spheres recover ~100 % (partial-volume edge pixels of the 2 mm grid
    cost a few %), the background is exactly uniform (N = 0, CV = 0) and the lung residual is 0."""
    res = analyse_iec(no_walls["activity"])
    q = {sp["diameter_mm"]: sp["contrast_pct"] for sp in res["spheres"]}
    assert 93.0 < q[37.0] <= 100.5 and 92.0 < q[28.0] <= 100.5
    assert res["background"]["mean"] == pytest.approx(5300.0, rel=1e-6)
    assert res["background"]["cv_pct"] < 1e-6
    assert all(sp["background_variability_pct"] < 1e-6 for sp in res["spheres"])
    assert res["lung"]["residual_pct"] < 1e-3


def test_finds_rotated_shifted_phantom_on_another_grid():
    """A phantom rotated 37 deg, shifted (12, -9, 5) mm, on 3 mm voxels and stored with flipped
    x and z axes is found to within 0.5 mm and 1 deg; Q_H agrees with the known-geometry analysis."""
    p = make_nema_iec(voxel_mm=3.0, rotation_deg=37.0, offset_mm=(12.0, -9.0, 5.0))
    img = _blur(p["activity"], FWHM_MM)
    flipped = img.crop()  # copy
    flipped.data = img.data.flip(0, 2).clone()
    flipped.origin_mm = tuple(img.voxel_to_world([img.shape[0] - 1, 0, img.shape[2] - 1]))
    flipped.direction = ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0))
    flipped.__post_init__()
    truth = _truth(p)
    geo = locate_iec(flipped)
    assert geo.handedness == truth.handedness
    assert np.hypot(*np.subtract(geo.ring_centre_mm, truth.ring_centre_mm)) < 0.5
    assert abs((geo.angle_37mm_deg - truth.angle_37mm_deg + 180) % 360 - 180) < 1.0
    assert abs(geo.plane_z_mm - truth.plane_z_mm) < 1.5
    res, known = analyse_iec(flipped), analyse_iec(img, geometry=truth)
    for a, b in zip(res["spheres"], known["spheres"]):
        assert a["contrast_pct"] == pytest.approx(b["contrast_pct"], rel=0.02)


def test_cold_spheres_and_noise_variability():
    """Cold spheres (NU 2-2007 layout) get Q_C; white noise of SD s gives a background
    variability N ~ s / sqrt(n_eff) per ROI (n_eff = (sum w)^2 / sum w^2 ~ ROI pixel count)."""
    p = make_nema_iec(voxel_mm=4.0, hot_spheres=4)
    act = p["activity"]
    gen = torch.Generator().manual_seed(7)
    noise_sd = 0.2 * 5300.0
    noisy = act.with_data(act.data + noise_sd * torch.randn(act.shape, generator=gen) * (act.data > 0))
    res = analyse_iec(noisy, activity_ratio=4.0)
    kinds = [sp["kind"] for sp in res["spheres"]]
    assert kinds == ["cold", "cold", "hot", "hot", "hot", "hot"]
    assert res["spheres"][0]["contrast_pct"] > 85.0
    n37 = res["spheres"][0]["background_variability_pct"]
    n_eff = math.pi * 18.5**2 / 16.0  # 37 mm disc of 4 mm pixels
    expect = noise_sd / 5300.0 / math.sqrt(n_eff) * 100
    assert expect * 0.7 < n37 < expect * 1.4
    assert res["background"]["cv_pct"] == pytest.approx(20.0, rel=0.15)


def test_bad_images_raise():
    p = make_nema_iec(voxel_mm=4.0)
    act = p["activity"]
    with pytest.raises(InputError):
        analyse_iec(act.with_data(torch.zeros(act.shape)))
    short = act.crop(z=slice(30, 36))
    with pytest.raises(InputError):
        analyse_iec(short)


def test_all_cold_spheres_are_found():
    """With no hot sphere the plane and ring are still found from the cold deficit; all Q_C > 0."""
    p = make_nema_iec(voxel_mm=4.0, hot_spheres=0, offset_mm=(3.0, 2.0, -4.0))
    res = analyse_iec(_blur(p["activity"], FWHM_MM))
    truth = _truth(p)
    assert np.hypot(*np.subtract(res["geometry"]["ring_centre_mm"], truth.ring_centre_mm)) < 0.5
    assert [sp["kind"] for sp in res["spheres"]] == ["cold"] * 6
    q = [sp["contrast_pct"] for sp in res["spheres"]]
    assert q[0] > 75.0 and min(q) > 20.0


def test_oblique_grid_is_resampled_and_located():
    """An image on a grid turned 20 deg about z (oblique to LPS) is resampled to axial and located."""
    from petspect.phantoms.shapes import rotation_matrix

    p = make_nema_iec(voxel_mm=4.0)
    img = _blur(p["activity"], FWHM_MM)
    d = rotation_matrix((20.0,), "z") @ np.asarray(img.direction)
    shape = (img.shape[0], 80, 90)
    origin = -d @ (np.asarray(img.spacing_mm) * (np.asarray(shape) - 1) / 2)
    oblique = img.resample_to(Volume(torch.zeros(shape), img.spacing_mm, origin, d))
    geo = locate_iec(oblique)
    truth = _truth(p)
    assert np.hypot(*np.subtract(geo.ring_centre_mm, truth.ring_centre_mm)) < 0.5
    assert abs((geo.angle_37mm_deg - truth.angle_37mm_deg + 180) % 360 - 180) < 1.0


def test_sphere_refinement_recovers_misplaced_rois(no_walls):
    """ROIs placed from a ring turned 2 deg (spheres ~2 mm off) move back onto the spheres with
    ``refine_spheres_mm``; their Q_H then equals the known-geometry analysis within 0.5 %."""
    img = _blur(no_walls["activity"], FWHM_MM)
    truth = _truth(no_walls)
    off = IecGeometry(truth.ring_centre_mm, truth.plane_z_mm, truth.angle_37mm_deg + 2.0, truth.handedness)
    rigid = analyse_iec(img, geometry=off)
    refined = analyse_iec(img, geometry=off, refine_spheres_mm=3.0)
    known = analyse_iec(img, geometry=truth)
    for a, b, c, t in zip(rigid["spheres"], refined["spheres"], known["spheres"], truth.sphere_centres_mm()):
        assert np.hypot(*np.subtract(b["centre_mm"][:2], t[:2])) < 0.3
        assert b["contrast_pct"] == pytest.approx(c["contrast_pct"], rel=0.005)
        assert a["contrast_pct"] < c["contrast_pct"]  # the misplaced rigid ROIs lose contrast
