"""Collimator resolution, presets and orbits of :mod:`petspect.geometry.spect`."""

from __future__ import annotations

import math

import pytest
import torch

from petspect.errors import ConfigError, InputError
from petspect.geometry.spect import (ParallelHoleCollimator, angles_from_dicom, body_contour_orbit, circular_orbit, detector_normal,
                                     get_spect_system, lead_mu_per_mm, spect_system_names)


def test_collimator_formula_by_hand():
    """R_g = d (L_eff + z) / L_eff with L_eff = L - 2/mu, R_sys = sqrt(R_g^2 + R_int^2) (Cherry et al., ch. 14)."""
    c = ParallelHoleCollimator("test", hole_diameter_mm=1.5, hole_length_mm=30.0, septal_thickness_mm=0.2,
                               septal_mu_per_mm=2.0, intrinsic_fwhm_mm=3.5)
    assert c.effective_length_mm == pytest.approx(29.0)
    assert c.geometric_fwhm_mm(0.0) == pytest.approx(1.5)
    assert c.geometric_fwhm_mm(145.0) == pytest.approx(1.5 * 174.0 / 29.0)
    assert c.system_fwhm_mm(145.0) == pytest.approx(math.hypot(9.0, 3.5))
    z = torch.tensor([-10.0, 0.0, 145.0], dtype=torch.float64)
    got = c.system_fwhm_mm(z)
    assert torch.allclose(got, torch.tensor([math.hypot(1.5, 3.5), math.hypot(1.5, 3.5), math.hypot(9.0, 3.5)],
                                            dtype=torch.float64))


def test_lehr_matches_siemens_data_sheet():
    """Siemens Symbia LEHR: geometric 6.4 mm and system 7.5 mm FWHM at 10 cm; 202 cpm/uCi (91 cps/MBq)."""
    sys_ = get_spect_system("spect-lehr")
    c = sys_.collimator
    assert c.geometric_fwhm_mm(100.0) == pytest.approx(6.4, rel=0.03)
    assert c.system_fwhm_mm(100.0) == pytest.approx(7.5, rel=0.03)
    assert sys_.sensitivity_cps_per_mbq == pytest.approx(91.0, rel=0.01)
    # the geometric efficiency formula gives the same order as the measured sensitivity (x yield x crystal)
    assert 0.5 < c.geometric_efficiency() * 1e6 * 0.885 / sys_.sensitivity_cps_per_mbq < 2.0
    assert sys_.nuclide == "Tc-99m" and sys_.photopeak.lower_kev < 140.5 < sys_.photopeak.upper_kev


def test_me_lu177_preset():
    """ME for Lu-177: 208 keV photopeak, adjacent scatter windows, optional 113 keV windows; lead mu (xraydb)."""
    sys_ = get_spect_system("spect-me")
    assert sys_.nuclide == "Lu-177"
    assert sys_.collimator.hole_length_mm == pytest.approx(40.64)
    assert sys_.collimator.septal_mu_per_mm == pytest.approx(lead_mu_per_mm(208.4))
    assert sys_.photopeak.lower_kev < 208.4 < sys_.photopeak.upper_kev
    low, up = sys_.energy_windows[sys_.window_index("scatter_low")], sys_.energy_windows[sys_.window_index("scatter_up")]
    assert low.upper_kev == pytest.approx(sys_.photopeak.lower_kev)
    assert up.lower_kev == pytest.approx(sys_.photopeak.upper_kev)
    assert sys_.window_index("photopeak_113") > 0
    # ME is coarser than LEHR at every distance
    lehr = get_spect_system("spect-lehr").collimator
    for z in (0.0, 100.0, 300.0):
        assert sys_.collimator.geometric_fwhm_mm(z) > lehr.geometric_fwhm_mm(z)
    assert 5.0 < sys_.sensitivity_cps_per_mbq < 20.0


def test_presets_and_errors():
    assert spect_system_names() == ["spect-lehr", "spect-me"]
    assert get_spect_system("spect-lehr", radius_mm=180.0).radius_mm == 180.0
    with pytest.raises(ConfigError):
        get_spect_system("spect-hexagon")
    with pytest.raises(InputError):
        ParallelHoleCollimator("bad", 1.0, 24.0, 0.2, septal_mu_per_mm=0.05, intrinsic_fwhm_mm=3.0)


def test_orbits():
    angles, radius = circular_orbit(8, 200.0)
    assert torch.allclose(angles, torch.arange(8, dtype=torch.float64) * 45.0)
    assert torch.all(radius == 200.0)
    n, t = detector_normal(torch.tensor([0.0, 90.0]))
    assert torch.allclose(n, torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(t, torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64), atol=1e-12)
    # an ellipse 2:1 wide in x: the contour orbit comes closer anterior (0 deg) than lateral (90 deg)
    yy, xx = torch.meshgrid(torch.arange(64) - 31.5, torch.arange(64) - 31.5, indexing="ij")
    mask = ((xx / 28) ** 2 + (yy / 14) ** 2 <= 1).expand(4, 64, 64)
    r = body_contour_orbit(mask, (4.0, 4.0, 4.0), torch.tensor([0.0, 90.0, 180.0, 270.0]), margin_mm=10.0)
    assert r[0] == pytest.approx(r[2]) and r[1] == pytest.approx(r[3])
    assert r[1] - r[0] == pytest.approx(4.0 * (28 - 14), abs=8.0)
    assert float(r[0]) == pytest.approx(14 * 4.0 + 10.0 + 2 * math.sqrt(2), abs=4.0)


def test_angles_from_dicom():
    """DICOM (PS3.3 C.8.4.12): 0 deg = patient's back, CC increasing towards the patient's left; petspect:
    0 = anterior, clockwise from the feet (90 = patient's left). So DICOM 90 -> 90, 0 -> 180, 270 -> 270."""
    a = angles_from_dicom(0.0, 90.0, "CC", 4)
    assert torch.allclose(a, torch.tensor([180.0, 90.0, 0.0, 270.0], dtype=torch.float64))
    b = angles_from_dicom(0.0, 90.0, "CW", 4)
    assert torch.allclose(b, torch.tensor([180.0, 270.0, 0.0, 90.0], dtype=torch.float64))
    with pytest.raises(InputError):
        angles_from_dicom(0.0, 3.0, "sideways", 4)
