"""Measured SPECT projections -> AcquisitionData: the model reproduces the projections it was read from,
OSEM recovers a cylinder, calibration and units, TEW from adjacent windows, the CLI on DICOM NM, bad inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import InputError
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.projectors.spect import SpectProjector
from petspect.simulate.acquisition import reconstruct_acquisition, system_model
from petspect.simulate.measured import spect_acquisition
from petspect.systems.collimators import get_collimator

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
import dicom_factory as fac  # noqa: E402

SHAPE, VOXEL, S, T = (6, 16, 16), (4.0, 4.0, 4.0), 90.0, 10.0
ANGLES = torch.arange(0.0, 360.0, 22.5)


def _cylinder() -> torch.Tensor:
    z, y, x = torch.meshgrid(*(torch.arange(n) - (n - 1) / 2 for n in SHAPE), indexing="ij")
    return ((y * 4) ** 2 + (x * 4) ** 2 < 20.0 ** 2).float() * 1000.0  # Bq/mL


def _measured(scatter_fraction=0.0, mu=None):
    op = SpectProjector(SHAPE, VOXEL, ANGLES, torch.full((16,), 150.0), get_collimator("siemens-lehr").at_energy(140.0),
                        mu=mu, psf=True,
                        detector_shape=(SHAPE[0], SHAPE[2]), pixel_mm=(4.0, 4.0), sensitivity_cps_per_mbq=S,
                        frame_duration_s=T)
    peak = op(_cylinder())
    counts = torch.stack([peak, scatter_fraction * peak])
    windows = [EnergyWindow("EM", 126.0, 154.0), EnergyWindow("SC", 110.0, 126.0)]
    return SpectProjections(counts=counts, angles_deg=ANGLES, radius_mm=torch.full((16,), 150.0),
                            pixel_spacing_mm=(4.0, 4.0), energy_windows=windows, frame_duration_s=T,
                            photopeak_window=0, nuclide="Tc-99m",
                            meta={"collimator": "LEHR", "manufacturer": "SIEMENS"}), peak


def test_model_reproduces_the_projections_and_osem_recovers_the_cylinder():
    proj, peak = _measured()
    acq = spect_acquisition(proj, scatter="none", sensitivity_cps_per_mbq=S)
    assert acq.grid.shape == tuple(SHAPE) and acq.system.preset == "siemens-lehr"
    torch.testing.assert_close(system_model(acq)(_cylinder()), peak, rtol=1e-4, atol=1e-3)
    img = reconstruct_acquisition(acq, "osem", n_iter=8, n_subsets=4, progress=False)
    assert img.unit == "Bq/mL" and img.meta["attenuation_corrected"] is False
    inside = _cylinder() > 0
    inner = inside.clone()
    inner[[0, -1]] = False
    assert abs(float(img.data[inner].mean()) / 1000.0 - 1.0) < 0.1
    # without the camera's sensitivity: arbitrary units, S times the calibrated image (EM is scale-equivariant)
    raw = reconstruct_acquisition(spect_acquisition(proj, scatter="none"), "osem", n_iter=8, n_subsets=4,
                                  progress=False)
    assert raw.unit == "a.u."
    torch.testing.assert_close(raw.data, img.data * S, rtol=1e-3, atol=1e-2)


def test_attenuation_correction_with_a_registered_map():
    """Projections of an attenuating cylinder (water, 0.0153 /mm at 140 keV): with the registered map (given in
    1/cm or as HU) the model reproduces them and OSEM recovers the activity; without it the image is low."""
    from petspect.volume import Volume

    water = (_cylinder() > 0).float() * 0.0153
    proj, peak = _measured(mu=water)
    for mu in (Volume.centered(water * 10.0, VOXEL, unit="1/cm"),
               Volume.centered(torch.where(water > 0, 0.0, -1000.0), VOXEL, unit="HU")):
        acq = spect_acquisition(proj, scatter="none", sensitivity_cps_per_mbq=S, mu=mu)
        assert float(acq.mu_per_mm.max()) == pytest.approx(0.0153, rel=0.03)
    acq = spect_acquisition(proj, scatter="none", sensitivity_cps_per_mbq=S, mu=Volume.centered(water, VOXEL, unit="1/mm"))
    torch.testing.assert_close(system_model(acq)(_cylinder()), peak, rtol=1e-4, atol=1e-3)
    inner = _cylinder() > 0
    inner[[0, -1]] = False
    ac = reconstruct_acquisition(acq, "osem", n_iter=8, n_subsets=4, progress=False)
    nac = reconstruct_acquisition(spect_acquisition(proj, scatter="none", sensitivity_cps_per_mbq=S), "osem",
                                  n_iter=8, n_subsets=4, progress=False)
    assert ac.meta["attenuation_corrected"] is True and nac.meta["attenuation_corrected"] is False
    assert abs(float(ac.data[inner].mean()) / 1000.0 - 1.0) < 0.1 and float(nac.data[inner].mean()) < 800.0
    with pytest.raises(InputError, match="grid"):
        spect_acquisition(proj, mu=Volume.centered(water[:, :8], VOXEL, unit="1/mm"))
    with pytest.raises(InputError, match="unit"):
        spect_acquisition(proj, mu=Volume.centered(water, VOXEL, unit="Bq/mL"))


def test_tew_from_the_adjacent_window():
    """Lower window only (16 keV wide), photopeak 28 keV: scatter = c_low / 16 * 28 / 2 (no smoothing)."""
    proj, peak = _measured(scatter_fraction=0.2)
    acq = spect_acquisition(proj, tew_smooth_fwhm_mm=0.0)
    torch.testing.assert_close(acq.additive, (0.2 * peak / 16.0 * 14.0).to(torch.float32))
    assert acq.provenance["scatter"]["lower"] == "SC" and acq.provenance["scatter"]["upper"] is None
    smooth = spect_acquisition(proj).additive  # default: smoothed over two pixels, same total within the edges
    assert float(smooth.sum()) == pytest.approx(float(acq.additive.sum()), rel=0.05)
    flat = SpectProjections(counts=torch.stack([proj.counts[0], torch.full_like(proj.counts[1], 16.0)]),
                            angles_deg=ANGLES, radius_mm=proj.radius_mm, pixel_spacing_mm=(4.0, 4.0),
                            energy_windows=proj.energy_windows, frame_duration_s=T, photopeak_window=0,
                            meta=proj.meta)
    torch.testing.assert_close(spect_acquisition(flat).additive, torch.full_like(peak, 14.0))  # flat stays flat
    lonely = SpectProjections(counts=proj.counts[:1], angles_deg=ANGLES, radius_mm=proj.radius_mm,
                              pixel_spacing_mm=(4.0, 4.0), energy_windows=[proj.energy_windows[0]],
                              frame_duration_s=T, photopeak_window=0, meta=proj.meta)
    with pytest.raises(InputError, match="TEW"):
        spect_acquisition(lonely)
    assert spect_acquisition(lonely, scatter="none").additive is None


def test_bad_inputs():
    proj, _ = _measured()
    with pytest.raises(InputError):
        spect_acquisition(proj, scatter="dew")
    with pytest.raises(InputError):
        spect_acquisition(proj, sensitivity_cps_per_mbq=0.0)


def test_cli_recon_of_dicom_nm(tmp_path):
    runner = CliRunner()
    fac.write([fac.nm_tomo(slot_times_ms=[300.0, 300.0])], tmp_path / "nm")
    args = ["recon", str(tmp_path / "nm"), "--iterations", "1", "--subsets", "2"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "all.nii.gz")])
    assert r.exit_code == 0, r.output
    assert "a.u." in r.output and "(3, 5, 5)" in r.output
    r = runner.invoke(app, [*args, "--gate", "2", "--sensitivity-cps-per-mbq", "80", "--out", str(tmp_path / "g2.nii")])
    assert r.exit_code == 0 and "Bq/mL" in r.output, r.output
    from petspect.io import save
    from petspect.volume import Volume

    mu = save(Volume.centered(torch.full((3, 5, 5), 0.015), (4.4, 4.2, 4.2), unit="1/mm"), tmp_path / "mu.nii.gz")
    r = runner.invoke(app, [*args, "--mu", str(mu), "--out", str(tmp_path / "ac.nii")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "--gate", "3", "--out", str(tmp_path / "g3.nii")])
    assert r.exit_code == 2 and "1..2" in r.output
    r = runner.invoke(app, ["recon", str(tmp_path / "missing"), "--out", str(tmp_path / "m.nii"), "--gate", "1"])
    assert r.exit_code == 2 and "measured SPECT" in r.output


def test_tew_takes_the_nearest_windows_across_a_small_gap():
    """Scatter windows 3 keV below and 2 keV above the photopeak (a camera's protocol with gaps) are used; a
    window 40 keV away is not; the photopeak's same-energy sibling is never a scatter window."""
    proj, peak = _measured(scatter_fraction=0.2)
    windows = [EnergyWindow("EM", 126.0, 154.0), EnergyWindow("SC_far", 70.0, 86.0), EnergyWindow("SC_lo", 107.0, 123.0),
               EnergyWindow("SC_up", 156.0, 170.0)]
    counts = torch.stack([proj.counts[0], proj.counts[1], proj.counts[1], 0.0 * proj.counts[1]])
    gapped = SpectProjections(counts=counts, angles_deg=ANGLES, radius_mm=proj.radius_mm, pixel_spacing_mm=(4.0, 4.0),
                              energy_windows=windows, frame_duration_s=T, photopeak_window=0, meta=proj.meta)
    acq = spect_acquisition(gapped, tew_smooth_fwhm_mm=0.0)
    assert acq.provenance["scatter"]["lower"] == "SC_lo" and acq.provenance["scatter"]["upper"] == "SC_up"
    torch.testing.assert_close(acq.additive, (0.2 * peak / 16.0 * 28.0 / 2.0).to(torch.float32))
