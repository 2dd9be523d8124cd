"""Simulated SPECT acquisitions (all windows) and the system model built from them."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import GeometryError, UnitError
from petspect.geometry.spect import get_spect_system
from petspect.systems.spect_simulate import expected_spect_counts, simulate_spect_projections
from petspect.systems.spect import spect_system_model
from petspect.recon.em import osem
from petspect.volume import Volume

N, VOX = 24, 7.5
ACQ = dict(angles_deg=torch.arange(0.0, 360.0, 30.0), radius_mm=150.0, detector_shape=(N, N), pixel_mm=(VOX, VOX))


def _volumes(activity_bq_ml: float = 1000.0):
    f = (torch.arange(N) - (N - 1) / 2) * VOX
    yy, xx = torch.meshgrid(f, f, indexing="ij")
    disc = (yy ** 2 + xx ** 2 <= 70.0 ** 2).float().expand(N, N, N).clone()
    disc[:3] = disc[-3:] = 0.0  # keep the PSF's axial tails on the detector
    return (Volume.centered(disc * activity_bq_ml, (VOX,) * 3, unit="Bq/mL"),
            Volume.centered(disc * 0.01536, (VOX,) * 3, unit="1/mm"))


def test_photopeak_in_air_equals_duration_sensitivity_activity():
    """Without attenuation and scatter the photopeak counts per view are T * S * A (A in MBq)."""
    act, _ = _volumes()
    sys_ = get_spect_system("spect-lehr")
    exp, facts = expected_spect_counts(act, None, sys_, frame_duration_s=10.0, **ACQ)
    a_mbq = float(act.data.sum()) * act.voxel_volume_ml * 1e-6
    per_view = exp.primary[0].sum(dim=(1, 2))
    assert torch.allclose(per_view, torch.full_like(per_view, 10.0 * sys_.sensitivity_cps_per_mbq * a_mbq), rtol=0.01)
    assert float(exp.scatter.abs().max()) == 0.0 and facts["frame_duration_s"] == 10.0


def test_simulated_projections_windows_noise_and_seed():
    act, mu = _volumes()
    acq = dict(ACQ, angles_deg=[0.0, 90.0, 180.0, 270.0])
    p1 = simulate_spect_projections(act, mu, "spect-lehr", seed=3, **acq)
    p2 = simulate_spect_projections(act, mu, "spect-lehr", seed=3, **acq)
    p3 = simulate_spect_projections(act, mu, "spect-lehr", seed=4, **acq)
    mean = simulate_spect_projections(act, mu, "spect-lehr", noise=False, **acq)
    assert p1.counts.shape == (3, 4, N, N) and [w.name for w in p1.energy_windows][0] == "photopeak"
    assert torch.equal(p1.counts, p2.counts) and not torch.equal(p1.counts, p3.counts)
    assert torch.equal(p1.counts, p1.counts.round()) and float(p1.counts.min()) >= 0
    total = float(mean.counts.sum())
    assert float(p1.counts.sum()) == pytest.approx(total, abs=4.0 * total ** 0.5)  # Poisson, 4 sigma
    # Tc-99m: the lower scatter window well below the peak; the upper one holds only the primaries'
    # resolution tail (0.85 % of them at 9.9 % FWHM) and almost no scatter
    peak, low, up = (float(mean.counts[i].sum()) for i in range(3))
    assert 0.03 < low / peak < 0.3 and 0.005 < up / peak < 0.012
    assert p1.meta["seed"] == 3 and p1.nuclide == "Tc-99m" and p1.meta["system"] == "spect-lehr"


def test_lu177_windows_include_downscatter():
    """Lu-177: the 113 keV window holds its own primaries plus 208 keV down-scatter, so its upper scatter
    window (124-136 keV) is far from empty, unlike the 208 keV upper window."""
    act, mu = _volumes()
    proj = simulate_spect_projections(act, mu, "spect-me", noise=False, **ACQ)
    sums = {w.name: float(proj.counts[i].sum()) for i, w in enumerate(proj.energy_windows)}
    assert sums["p113_scatter_up"] > 0.2 * sums["p113_scatter_low"]
    assert sums["scatter_up"] < 0.05 * sums["scatter_low"]
    assert sums["photopeak"] > sums["photopeak_113"] > 0


def test_system_model_from_projections_reconstructs_bq_per_ml():
    """OSEM with spect_system_model(projections, grid, mu=...) on noise-free photopeak primaries recovers
    the activity concentration (Bq/mL) inside the cylinder within 5 % (unit chain round trip)."""
    act, mu = _volumes(2000.0)
    proj = simulate_spect_projections(act, mu, "spect-lehr", noise=False, scatter=None, **ACQ)
    op = spect_system_model(proj, act, mu=mu)
    assert op.out_shape == tuple(proj.photopeak.shape)
    img = osem(op, proj.photopeak, n_iter=6, n_subsets=3, progress=False)
    f = (torch.arange(N) - (N - 1) / 2) * VOX
    yy, xx = torch.meshgrid(f, f, indexing="ij")
    inner = (yy ** 2 + xx ** 2) <= 45.0 ** 2
    assert float(img[4:-4][:, inner].mean()) == pytest.approx(2000.0, rel=0.05)


def test_bad_volumes():
    act, mu = _volumes()
    with pytest.raises(UnitError):
        expected_spect_counts(act.with_data(act.data, unit="HU"), None, **ACQ)
    with pytest.raises(UnitError):
        expected_spect_counts(act, mu.with_data(mu.data, unit="HU"), **ACQ)
    flipped = Volume(act.data, act.spacing_mm, direction=((0, 0, -1), (0, 1, 0), (1, 0, 0)), unit="Bq/mL")
    with pytest.raises(GeometryError):
        expected_spect_counts(flipped, None, **ACQ)
