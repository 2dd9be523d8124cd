"""Collimator presets: vendor hole dimensions (SIMIND collim.col / vendor data sheets), resolution physics at
the photopeak energy, and the choice from a DICOM header (vendor + CollimatorGridName), never a guess."""

from __future__ import annotations

import math
import warnings

import pytest

from petspect.errors import InputError
from petspect.geometry.spect import lead_mu_per_mm
from petspect.systems.collimators import (COLLIMATORS, collimator_from_header, collimator_names, get_collimator,
                                          vendor_of)


def test_presets_hold_the_published_hole_dimensions():
    """GE Infinia/Discovery MEGP 3.0 mm / 58 mm / 1.05 mm and LEHR 1.5 / 35 / 0.2 (SIMIND collim.col GI-MEGP,
    GI-LEHR; the same in OpenGATE's GE NM670 head); Siemens Symbia HE 4.0 / 59.7 / 2.0 (SY-HE)."""
    ge = get_collimator("ge-megp")
    assert (ge.hole_diameter_mm, ge.hole_length_mm, ge.septal_thickness_mm) == (3.0, 58.0, 1.05)
    assert (COLLIMATORS["ge-lehr"].hole_diameter_mm, COLLIMATORS["ge-lehr"].hole_length_mm) == (1.5, 35.0)
    he = get_collimator("SIEMENS_HE")
    assert (he.hole_diameter_mm, he.hole_length_mm, he.septal_thickness_mm) == (4.0, 59.7, 2.0)
    for key in ("ge-lehr", "ge-megp", "ge-hegp", "siemens-lehr", "siemens-me", "siemens-he"):
        assert key in collimator_names() and COLLIMATORS[key].source
    assert get_collimator("spect-me").key == "siemens-me"


def test_model_at_the_photopeak_energy():
    """Septa attenuate as lead at the photopeak; intrinsic FWHM scales as E^-1/2; the GE MEGP, with its longer
    holes, resolves better than Siemens' ME at 10 cm (d (L_eff + z + b) / L_eff)."""
    ge = get_collimator("ge-megp").at_energy(208.0)
    assert ge.septal_mu_per_mm == pytest.approx(lead_mu_per_mm(208.0))
    assert ge.intrinsic_fwhm_mm == pytest.approx(3.9 * math.sqrt(140.5 / 208.0))
    leff = 58.0 - 2.0 / lead_mu_per_mm(208.0)
    assert ge.geometric_fwhm_mm(100.0) == pytest.approx(3.0 * (leff + 100.0 + 9.5) / leff)
    assert ge.geometric_fwhm_mm(100.0) < get_collimator("siemens-me").at_energy(208.0).geometric_fwhm_mm(100.0)
    with pytest.warns(UserWarning, match="designed for photopeaks up to 160"):
        get_collimator("ge-lehr").at_energy(208.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_collimator("ge-lehr").at_energy(140.5)


def test_choice_from_the_header():
    assert vendor_of("GE MEDICAL SYSTEMS") == "GE" and vendor_of("SIEMENS NM") == "Siemens"
    assert vendor_of("Philips Medical Systems") == "Philips" and vendor_of("Acme") is None
    assert collimator_from_header("MEGP", "GE MEDICAL SYSTEMS").key == "ge-megp"
    assert collimator_from_header("LEHR", "GE MEDICAL SYSTEMS").key == "ge-lehr"
    assert collimator_from_header("lehr ", "SIEMENS").key == "siemens-lehr"
    assert collimator_from_header("MELP", "SIEMENS NM").key == "siemens-me"
    assert collimator_from_header("MEGP", "GE", "PARA").key == "ge-megp"
    with pytest.raises(InputError, match="different holes"):  # LEHR of an unknown vendor: GE or Siemens or ...
        collimator_from_header("LEHR", "Acme")
    with pytest.raises(InputError, match="ge-megp"):  # refusals list the presets
        collimator_from_header("", "GE MEDICAL SYSTEMS")
    with pytest.raises(InputError, match="no preset"):
        collimator_from_header("UHR-FAN", "SIEMENS")
    with pytest.raises(InputError, match="pinhole"):
        collimator_from_header("PH4", "GE MEDICAL SYSTEMS", "PINH")
    with pytest.raises(InputError, match="fan-beam"):
        collimator_from_header("LEFB", "SIEMENS", "FANB")
    with pytest.raises(InputError, match="unknown collimator"):
        get_collimator("ge-xyz")


def test_system_model_takes_the_vendors_collimator():
    """spect_system_model on data naming a GE collimator uses GE's holes at the photopeak, not Siemens'."""
    import torch

    from petspect.geometry.spect_data import EnergyWindow, SpectProjections
    from petspect.systems.spect import spect_system_model

    counts = torch.zeros(1, 4, 6, 8)
    proj = SpectProjections(counts, torch.arange(4) * 90.0, 200.0, (4.0, 4.0), [EnergyWindow("EM", 187.2, 228.8)],
                            nuclide="Lu177", meta={"collimator": "MEGP", "manufacturer": "GE MEDICAL SYSTEMS"})
    assert spect_system_model(proj).collimator == get_collimator("ge-megp").at_energy(208.0)
    odd = SpectProjections(counts, proj.angles_deg, 200.0, (4.0, 4.0), proj.energy_windows, nuclide="Lu177",
                           meta={"collimator": "XYZ", "manufacturer": "GE MEDICAL SYSTEMS"})
    with pytest.raises(InputError, match="no preset"):
        spect_system_model(odd)
