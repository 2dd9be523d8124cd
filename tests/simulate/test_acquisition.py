"""Acquisition data: folder round trip, calibration (counts vs activity x time), quantitative recon in Bq/mL
with the real PET and SPECT projectors, attenuation correction vs cupping, FBP."""

from __future__ import annotations

import json

import pytest
import torch

from petspect.errors import ConfigError, DataNotFoundError, InputError, OutputExistsError
from petspect.simulate.acquisition import (ACQUISITION_JSON, load_acquisition, reconstruct_acquisition,
                                           save_acquisition, simulate_acquisition, system_model)
from petspect.volume import Volume

CONC = 5000.0  # Bq/mL
MU_WATER_511_PER_MM = 0.0096  # 0.096/cm (xraydb water, docs/REFERENCE.md)
MU_WATER_140_PER_MM = 0.0154  # 0.154/cm at 140 keV (xraydb, docs/REFERENCE.md)


def _cylinder(n: int, vox: float, radius_mm: float, nz: int = 1):
    c = (torch.arange(n) - (n - 1) / 2) * vox
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    disc = (r < radius_mm).float()[None].expand(nz, -1, -1).clone()
    act = Volume.centered(CONC * disc, (vox, vox, vox), unit="Bq/mL", modality="PT")
    return act, r


#: small-animal scanner in 2D single-ring mode, views mashed by 2, radial bins covering +-42 mm
PET2D = {"single_ring": True, "view_mashing": 2, "n_radial": 110}


def _water_cylinder_pet(**kw):
    """20x20 pixels of 4 mm, water cylinder of radius 30 mm."""
    act, r = _cylinder(20, 4.0, 30.0)
    mu = act.with_data(act.data / CONC * MU_WATER_511_PER_MM, unit="1/mm", modality=None)
    return act, mu, r, simulate_acquisition(act, "small-animal", mu=mu, **PET2D, **kw)


@pytest.fixture(scope="module")
def pet2d():
    return _water_cylinder_pet(n_counts=2e5, seed=3)


def _noiseless(data, act):
    """The same acquisition with its expected prompts (no noise)."""
    expected = system_model(data)(act.data.float())
    if data.additive is not None:
        expected = expected + data.additive
    data.prompts = expected
    return data


def test_counts_mode_calibration(pet2d):
    """--counts N: expected trues sum to N; the recorded time scale turns the rate model into counts."""
    act, _, _, data = pet2d
    cal = data.calibration
    assert cal.mode == "counts" and cal.unit == "Bq/mL"
    assert cal.expected_true_counts == pytest.approx(2e5, rel=1e-4)
    assert float(system_model(data)(act.data.float()).sum()) == pytest.approx(2e5, rel=1e-4)
    assert abs(float(data.prompts.sum()) - 2e5) < 5 * 2e5 ** 0.5
    assert data.attenuation is not None and data.normalisation is None


def test_activity_mode_counts_follow_activity_time_and_sensitivity():
    """--activity-mbq/--scan-s: expected counts = scan_eff x sensitivity x activity (in air, 1 Bq at the centre
    gives the NEMA sensitivity of the preset: small-animal 67.2 cps/kBq, Constantinescu & Mukherjee 2009)."""
    act, _ = _cylinder(20, 4.0, 6.0)
    data = simulate_acquisition(act, "small-animal", **PET2D, activity_mbq=1.0,
                                scan_s=10.0, seed=0)
    cal = data.calibration
    assert cal.mode == "activity"
    assert cal.activity_scale * float(act.data.sum()) * act.voxel_volume_ml == pytest.approx(1e6, rel=1e-5)
    # a small source near the centre: ~ sensitivity x activity x effective time (decay of F-18 over 10 s)
    expected = 67.2e-3 * 1e6 * cal.time_scale_s
    assert cal.expected_true_counts == pytest.approx(expected, rel=0.1)
    assert cal.time_scale_s < 10.0


def test_pet_uniform_cylinder_quantitative_flat_with_ac_cupped_without():
    """Noiseless data from the same calibrated model: OSEM with AC gives CONC within 2 % and flat; without
    AC the centre is depressed (cupping)."""
    act, _, r, data = _water_cylinder_pet(n_counts=1e6, seed=1)
    data = _noiseless(data, act)
    img = reconstruct_acquisition(data, "osem", n_iter=5, n_subsets=8, progress=False)
    assert img.unit == "Bq/mL" and img.same_grid(act)
    x = img.data[0]
    assert float(x[r < 22].mean()) == pytest.approx(CONC, rel=0.02)
    assert float(x[r < 8].mean() / x[(r > 14) & (r < 22)].mean()) == pytest.approx(1.0, abs=0.02)
    nac = reconstruct_acquisition(data, "osem", n_iter=5, n_subsets=8, attenuation=False, progress=False).data[0]
    assert float(nac[r < 8].mean()) < 0.9 * float(nac[(r > 14) & (r < 22)].mean())


def test_pet_activity_mode_and_additive_terms_quantitative():
    """Data made from activity x scan time with normalisation, scatter and randoms (40 % of the prompts): FBP of the
    corrected data and OSEM both return CONC within 2 %."""
    act, _, r, data = _water_cylinder_pet(scan_s=300.0, seed=2, scatter_fraction=0.3, randoms_fraction=0.1,
                                          normalisation=True)
    assert data.attenuation is not None and data.normalisation is not None
    data = _noiseless(data, act)
    assert data.calibration.mode == "activity"
    assert float(data.additive.sum()) / float(data.prompts.sum()) == pytest.approx(0.4, rel=1e-3)
    x = reconstruct_acquisition(data, "fbp", fbp_window="hann").data[0]
    assert float(x[r < 22].mean()) == pytest.approx(CONC, rel=0.02)
    assert float(x[r < 22].std() / x[r < 22].mean()) < 0.03
    xo = reconstruct_acquisition(data, "osem", n_iter=5, n_subsets=8, progress=False).data[0]
    assert float(xo[r < 22].mean()) == pytest.approx(CONC, rel=0.02)


def test_spect_uniform_cylinder_quantitative():
    """SPECT LEHR, 2 slices of 24x24 at 4.8 mm, 32 views: OSEM with attenuation gives CONC within 3 %
    (collimator response blurs the edge, so the ROI keeps 2 voxels from it)."""
    act, r = _cylinder(24, 4.8, 45.0, nz=2)
    mu = act.with_data(act.data / CONC * MU_WATER_140_PER_MM, unit="1/mm", modality=None)
    data = _noiseless(simulate_acquisition(act, "spect-lehr", mu=mu, n_views=32, radius_mm=120.0, n_counts=1e6,
                                           seed=0), act)
    assert data.modality == "SPECT" and data.prompts.shape == (32, 2, 24)
    x = reconstruct_acquisition(data, "osem", n_iter=8, n_subsets=4, progress=False).data
    assert float(x[:, r < 30].mean()) == pytest.approx(CONC, rel=0.03)
    nac = reconstruct_acquisition(data, "fbp", attenuation=False).data  # low in the centre
    assert float(nac[:, r < 12].mean()) < 0.8 * CONC
    chang = reconstruct_acquisition(data, "fbp")  # first-order Chang correction (Chang 1978)
    assert chang.meta["attenuation_corrected"] == "chang"
    assert float(chang.data[:, r < 12].mean()) > 1.5 * float(nac[:, r < 12].mean())


def test_round_trip_and_map(tmp_path, pet2d):
    act, mu, r, data = pet2d
    folder = save_acquisition(data, tmp_path / "acq")
    doc = json.loads((folder / ACQUISITION_JSON).read_text())
    assert doc["system"]["preset"] == "small-animal" and doc["calibration"]["unit"] == "Bq/mL"
    back = load_acquisition(folder)
    assert torch.equal(back.prompts, data.prompts.float())
    assert torch.allclose(back.attenuation, data.attenuation)
    assert back.time_scale_s == data.time_scale_s and back.system == data.system and back.grid == data.grid
    assert back.calibration == data.calibration  # the typed records survive the JSON round trip
    a = reconstruct_acquisition(data, "map", n_iter=1, n_subsets=4, beta=1.0, prior="rdp", progress=False)
    b = reconstruct_acquisition(back, "map", n_iter=1, n_subsets=4, beta=1.0, prior="rdp", progress=False)
    torch.testing.assert_close(a.data, b.data, rtol=1e-4, atol=1e-2)
    assert a.meta["algorithm"] == "map" and a.meta["prior"] == "rdp"
    with pytest.raises(OutputExistsError):
        save_acquisition(data, folder)
    with pytest.raises(DataNotFoundError):
        load_acquisition(tmp_path / "nothing")


def test_bad_inputs():
    act, _ = _cylinder(12, 4.0, 10.0)
    with pytest.raises(InputError):
        simulate_acquisition(act, "small-animal", **PET2D, n_counts=1e5, scan_s=10.0)
    with pytest.raises(InputError):
        simulate_acquisition(act, "small-animal", single_ring=True)
    with pytest.raises(InputError):
        simulate_acquisition(act, "small-animal", **PET2D, tof=True, n_counts=1e5)
    with pytest.raises(ConfigError):
        simulate_acquisition(act, "nope", n_counts=1e5)
    with pytest.raises(InputError):
        simulate_acquisition(act.with_data(act.data, unit="SUVbw"), "small-animal", **PET2D, n_counts=1e5)
