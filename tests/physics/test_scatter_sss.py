"""Single-scatter simulation: against an independent brute-force single-scatter integral on a finer grid.

The reference (:func:`_reference_single_scatter`) is written here separately, in numpy/scipy: every voxel
of a 2x finer image is a scatter point, every sinogram bin uses its own two crystals (no coarse detectors,
no interpolation), rays are sampled every 1.5 mm with scipy's ``map_coordinates``, the Klein-Nishina formula
and the Gaussian energy-window acceptance are coded again. It is the same single-scatter physics (Watson,
IEEE TNS 47:1587, 2000), so the test checks the SSS discretisation (block scatter points on the coarse
grid, coarse detectors, interpolation, tail scaling), not the single-scatter approximation itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates
from scipy.stats import norm

from petspect.errors import InputError, UnitError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.materials import linear_attenuation_per_mm
from petspect.physics.attenuation import attenuation_factors
from petspect.physics.scatter_pet import scatter_tail_mask
from petspect.physics.scatter_sss import (SssSettings, klein_nishina_per_sr, single_scatter_simulation,
                                          sss_tail_fitted)
from petspect.projectors.pet import PetSinogramProjector

SCANNER = PetScanner(name="sss-test", ring_radius_mm=250.0, crystals_per_ring=128, n_rings=1,
                     crystal_size_mm=(4.0, 4.0, 20.0), ring_spacing_mm=4.0, fov_diameter_mm=400.0)
RES = 0.11


def _phantom(n: int, voxel: float):
    """Off-centre water ellipse (20 x 14 cm) with a lung-like hole and a hot rod; (mu 1/mm, activity)."""
    grid = ImageGrid((1, n, n), (10.0, voxel, voxel))
    c = grid.voxel_centres_mm().numpy()[0]
    x, y = c[..., 0], c[..., 1]
    body = ((x - 15) / 100.0) ** 2 + ((y + 10) / 70.0) ** 2 <= 1
    lung = ((x + 40) ** 2 + (y + 10) ** 2) <= 30.0 ** 2
    hot = ((x - 60) ** 2 + (y - 5) ** 2) <= 15.0 ** 2
    mu = np.where(body, 0.0096, 0.0) - np.where(lung & body, 0.0070, 0.0)
    act = np.where(body, 1.0, 0.0) - np.where(lung & body, 0.7, 0.0) + np.where(hot & body, 3.0, 0.0)
    return grid, mu[None].astype(np.float32), act[None].astype(np.float32)


def _kn(c):
    p = 1.0 / (2.0 - c)
    return p * p * (p + 1.0 / p - (1.0 - c * c))


def _reference_single_scatter(mu, act, grid, sino_def):
    """Brute-force S_AB / G_AB for every bin (non-TOF, one ring), numpy."""
    ny, nx = mu.shape[1:]
    sy, sx = grid.spacing_mm[1:]
    ox, oy = grid.origin_mm[:2]
    lo, hi = SCANNER.energy_window_kev
    acc = lambda e: norm.cdf(hi, e, RES * 511 * np.sqrt(e / 511) / 2.3548) - norm.cdf(lo, e, RES * 511 * np.sqrt(e / 511) / 2.3548)  # noqa: E731
    cgrid = np.linspace(-1, 1, 200001)
    kn_norm = 2 * math.pi * np.trapezoid(_kn(cgrid), cgrid)
    e_tab = np.linspace(160, 515, 40)
    r_tab = np.array([linear_attenuation_per_mm("water", e) for e in e_tab]) / linear_attenuation_per_mm("water", 511.0)
    eps0 = acc(511.0)
    iy, ix = np.nonzero(mu[0] > 0)
    s_xy = np.stack([ox + ix * sx, oy + iy * sy], -1)  # scatter points, every fine voxel
    mu_s, vol = mu[0, iy, ix], sx * sy * grid.spacing_mm[0]
    n_cr = SCANNER.crystals_per_ring
    ang = SCANNER.crystal_angles_rad(np.arange(n_cr))
    det = SCANNER.ring_radius_mm * np.stack([np.cos(ang), np.sin(ang)], -1)
    # line integrals of mu and activity from every scatter point to every crystal, 1.5 mm steps
    tau = np.zeros((len(s_xy), n_cr))
    lam = np.zeros((len(s_xy), n_cr))
    step = 1.5
    steps = np.arange(0.5 * step, 520.0, step)
    for d in range(n_cr):
        v = det[d] - s_xy
        length = np.linalg.norm(v, axis=-1)
        u = v / length[:, None]
        for k0 in range(0, len(steps), 130):
            t = steps[k0:k0 + 130]
            pts = s_xy[:, None, :] + t[None, :, None] * u[:, None, :]
            inside = t[None, :] < length[:, None]
            coords = [(pts[..., 1] - oy) / sy, (pts[..., 0] - ox) / sx]
            tau[:, d] += (map_coordinates(mu[0], coords, order=1, mode="constant") * inside).sum(1) * step
            lam[:, d] += (map_coordinates(act[0], coords, order=1, mode="constant") * inside).sum(1) * step
    a_idx, b_idx = (v % n_cr for v in sino_def.crystal_pairs(0))
    area = SCANNER.crystal_size_mm[0] * SCANNER.crystal_size_mm[1]
    ca, cb = a_idx.ravel(), b_idx.ravel()  # every bin at once: (bins, points)
    A, B = det[ca], det[cb]
    va, vb = A[:, None] - s_xy[None], B[:, None] - s_xy[None]
    ra, rb = np.linalg.norm(va, axis=-1), np.linalg.norm(vb, axis=-1)
    ua, ub = va / ra[..., None], vb / rb[..., None]
    na, nb = A / np.linalg.norm(A, axis=-1, keepdims=True), B / np.linalg.norm(B, axis=-1, keepdims=True)
    cos_t = -(ua * ub).sum(-1)
    e_sc = 511.0 / (2.0 - cos_t)
    ratio = np.interp(e_sc, e_tab, r_tab)
    sig_a = area * np.clip((ua * na[:, None]).sum(-1), 0, None) / ra ** 2
    sig_b = area * np.clip((ub * nb[:, None]).sum(-1), 0, None) / rb ** 2
    ia = lam[:, ca].T * np.exp(-tau[:, ca].T - ratio * tau[:, cb].T)
    ib = lam[:, cb].T * np.exp(-ratio * tau[:, ca].T - tau[:, cb].T)
    s = (vol * mu_s * _kn(cos_t) / kn_norm * eps0 * acc(e_sc) * sig_a * sig_b / (4 * math.pi) * (ia + ib)).sum(-1)
    ab = B - A
    L = np.linalg.norm(ab, axis=-1)
    g = eps0 ** 2 * area ** 2 * np.clip((ab * nb).sum(-1) / L, 0, None) * np.clip(-(ab * na).sum(-1) / L, 0, None) \
        / (4 * math.pi * L ** 2)
    out = (s / g).reshape(a_idx.shape)
    return out[None]


@pytest.fixture(scope="module")
def case():
    fine_grid, mu_f, act_f = _phantom(80, 3.6)
    grid, mu_c, act_c = _phantom(40, 7.2)
    # coarse inputs = block means of the fine truth (what a scanner's CT and first image give at lower resolution)
    mu_c = mu_f.reshape(1, 40, 2, 40, 2).mean((2, 4))
    act_c = act_f.reshape(1, 40, 2, 40, 2).mean((2, 4))
    sd = SinogramDefinition(SCANNER)
    ref = _reference_single_scatter(mu_f, act_f, fine_grid, sd)
    op_fine = PetSinogramProjector(SCANNER, sd, fine_grid)
    trues = (op_fine(torch.from_numpy(act_f)) * attenuation_factors(torch.from_numpy(mu_f), op_fine)).numpy()
    op = PetSinogramProjector(SCANNER, sd, grid)
    return {"ref": ref, "trues": trues, "op": op, "mu": torch.from_numpy(mu_c), "act": torch.from_numpy(act_c)}


def test_sss_matches_fine_reference_unscaled(case):
    """Without any rescaling the SSS total and its central profile are within 10 % of the fine reference."""
    sss = single_scatter_simulation(case["act"], case["mu"], case["op"], SssSettings(energy_resolution=RES)).numpy()
    ref = case["ref"]
    print("SSS / reference: total", sss.sum() / ref.sum())
    assert abs(sss.sum() / ref.sum() - 1) < 0.10
    centre = np.abs(case["op"].sino_def.radial_positions_mm()) < 60
    assert abs(sss[..., centre].sum() / ref[..., centre].sum() - 1) < 0.10
    # the scatter fraction of a 20 x 14 cm water slab one slice thick (in-plane scatter only) is small but not zero
    sf = ref.sum() / (ref.sum() + case["trues"].sum())
    assert 0.005 < sf < 0.2


def test_sss_tail_fitted_recovers_scatter_in_tails_and_centre(case):
    """Prompts = trues + reference scatter (fine grid); the tail-fitted SSS is within 10 % on the tails and the centre."""
    ref, op = case["ref"], case["op"]
    prompts = torch.from_numpy(case["trues"] + ref).float()
    att = attenuation_factors(case["mu"], op)
    scaled, info = sss_tail_fitted(prompts, case["act"], case["mu"], op, attenuation_factors=att,
                                   settings=SssSettings(energy_resolution=RES))
    tails = scatter_tail_mask(att, threshold=0.95, margin_bins=2).numpy()
    centre = np.broadcast_to(np.abs(op.sino_def.radial_positions_mm()) < 60, ref.shape)
    s = scaled.numpy()
    assert tails.sum() > 100 and info["tail_bins"] == tails.sum()
    print("tails", s[tails].sum() / ref[tails].sum(), "centre", s[centre].sum() / ref[centre].sum(), info)
    assert abs(s[tails].sum() / ref[tails].sum() - 1) < 0.10
    assert abs(s[centre].sum() / ref[centre].sum() - 1) < 0.10
    assert 0.85 < info["scale"] < 1.15  # the physical magnitude was already right


def test_sss_linear_and_symmetric():
    """Twice the activity gives twice the scatter; a centred disc gives the same scatter in every view."""
    grid = ImageGrid((1, 40, 40), (10.0, 6.0, 6.0))
    c = grid.voxel_centres_mm()
    disc = ((c[..., 0] ** 2 + c[..., 1] ** 2) <= 90.0 ** 2).float()
    op = PetSinogramProjector(SCANNER, SinogramDefinition(SCANNER, view_mashing=2), grid)
    s1 = single_scatter_simulation(disc, 0.0096 * disc, op)
    s2 = single_scatter_simulation(2 * disc, 0.0096 * disc, op)
    torch.testing.assert_close(s2, 2 * s1, rtol=1e-4, atol=1e-7)
    prof = s1[0].sum(-1)
    assert float(prof.std() / prof.mean()) < 0.03
    assert float(single_scatter_simulation(torch.zeros_like(disc), 0.0096 * disc, op).abs().max()) == 0.0


def test_klein_nishina_normalised_and_forward_peaked():
    c = torch.linspace(-1, 1, 4001, dtype=torch.float64)
    f = klein_nishina_per_sr(c)
    assert abs(2 * math.pi * float(torch.trapezoid(f, c)) - 1) < 1e-6
    assert float(f[-1]) > 3 * float(f[0])  # 511 keV: forward scatter dominates


def test_sss_bad_inputs():
    grid = ImageGrid((1, 16, 16), (10.0, 6.0, 6.0))
    op = PetSinogramProjector(SCANNER, SinogramDefinition(SCANNER, view_mashing=4), grid)
    ones = torch.ones(grid.shape)
    with pytest.raises(UnitError):
        single_scatter_simulation(ones, 0.096 * ones, op)  # 1/cm given as 1/mm
    with pytest.raises(InputError):
        single_scatter_simulation(-ones, 0.0096 * ones, op)
    with pytest.raises(InputError):
        single_scatter_simulation(ones, torch.zeros_like(ones), op)  # no scattering medium
    with pytest.raises(InputError):
        single_scatter_simulation(torch.ones(2, 16, 16), 0.0096 * ones, op)
    with pytest.raises(InputError):
        SssSettings(n_detector_angles=4)
