"""Tests of CT, attenuation and MR synthesis from label maps."""

from __future__ import annotations

import math

import pytest
import torch

from petspect.errors import InputError
from petspect.phantoms.anatomy import (METAL_HU, TISSUES, ct_from_labels, mr_from_labels, mu_from_ct,
                                       mu_from_labels)

NAMES = {0: "background", 1: "bladder", 2: "fat", 3: "soft_tissue", 4: "skull", 5: "lung",
         6: "grey_matter", 7: "white_matter", 8: "csf"}


def _labels() -> torch.Tensor:
    lab = torch.zeros(9, 16, 16, dtype=torch.uint8)
    for i in range(9):
        lab[i, 2:14, 2:14] = i
    return lab


def test_ct_values_noise_free_and_noise_level():
    lab = _labels()
    ct = ct_from_labels(lab, NAMES, seed=0, noise_hu=0.0, texture_hu=0.0)
    for i, n in NAMES.items():
        assert float(ct[lab == i].mean()) == pytest.approx(max(TISSUES[n].hu, -1000.0))
    big = torch.full((8, 32, 32), 3, dtype=torch.uint8)
    noisy = ct_from_labels(big, NAMES, seed=1, noise_hu=12.0, texture_hu=0.0)
    assert float(noisy.std()) == pytest.approx(12.0, rel=0.05)
    assert torch.equal(noisy, ct_from_labels(big, NAMES, seed=1, noise_hu=12.0, texture_hu=0.0))


def test_metal_is_saturated():
    lab = _labels()
    mask = torch.zeros_like(lab, dtype=torch.bool)
    mask[4, 5:8, 5:8] = True
    ct = ct_from_labels(lab, NAMES, seed=0, metal_mask=mask)
    assert torch.all(ct[mask] == METAL_HU)


def test_mu_from_ct_water_and_monotone():
    """Water (0 HU) gives 0.096/cm at 511 keV and 0.154/cm at 140 keV (docs/REFERENCE.md, xraydb)."""
    hu = torch.linspace(-1000, 2000, 301)
    for e, ref in ((511.0, 0.0096), (140.0, 0.0154)):
        mu = mu_from_ct(hu, e)
        assert bool((torch.diff(mu) >= 0).all())
        assert float(mu_from_ct(torch.tensor([0.0]), e)) == pytest.approx(ref, rel=0.03)


def test_mu_from_labels_compositions():
    lab = _labels()
    mu = mu_from_labels(lab, NAMES, 511.0)
    m = {n: float(mu[lab == i].mean()) for i, n in NAMES.items()}
    assert m["bladder"] == pytest.approx(0.0096, rel=0.02)  # water
    assert m["lung"] < 0.4 * m["soft_tissue"] and m["fat"] < m["soft_tissue"] < m["skull"]
    # air: 1.205 mg/mL x mu/rho 0.0866 cm^2/g at 511 keV (NIST XCOM) = 1.04e-4 /cm
    assert m["background"] == pytest.approx(1.04e-5, rel=0.05)


def test_mr_contrasts():
    """T1w: fat > white > grey > CSF; T2w: CSF > grey > white (Stanisz et al, MRM 2005, 1.5 T)."""
    lab = _labels()
    t1 = mr_from_labels(lab, NAMES, weighting="t1", seed=0, bias_strength=0.0, noise_fraction=0.0)
    t2 = mr_from_labels(lab, NAMES, weighting="t2", seed=0, bias_strength=0.0, noise_fraction=0.0)
    v1 = {n: float(t1[lab == i].mean()) for i, n in NAMES.items()}
    v2 = {n: float(t2[lab == i].mean()) for i, n in NAMES.items()}
    assert v1["fat"] > v1["white_matter"] > v1["grey_matter"] > v1["csf"]
    assert v2["csf"] > v2["grey_matter"] > v2["white_matter"]


def test_rician_background():
    """Magnitude of complex Gaussian noise on zero signal is Rayleigh: mean sigma sqrt(pi/2)."""
    lab = torch.zeros(8, 32, 32, dtype=torch.uint8)
    lab[0, 0, 0] = 3  # one tissue voxel sets the signal scale (max 1)
    s = mr_from_labels(lab, NAMES, weighting="t1", seed=2, bias_strength=0.0, noise_fraction=0.05)
    bg = s[lab == 0]
    sigma = 0.05 * float(mr_from_labels(lab, NAMES, weighting="t1", seed=2, bias_strength=0.0,
                                        noise_fraction=0.0).max())
    assert float(bg.mean()) == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.05)


def test_bias_field_is_smooth_and_positive():
    lab = torch.full((16, 32, 32), 3, dtype=torch.uint8)
    s = mr_from_labels(lab, NAMES, weighting="t1", seed=3, spacing_mm=(4, 4, 4), bias_strength=0.3,
                       noise_fraction=0.0)
    assert float(s.min()) > 0 and float(s.std()) > 0.01
    assert float((s[:, :, 1:] - s[:, :, :-1]).abs().max()) < 0.05 * float(s.mean())


@pytest.mark.parametrize("call", [
    lambda: mr_from_labels(_labels(), NAMES, weighting="flair", seed=0),
    lambda: ct_from_labels(_labels(), {**NAMES, 9: "unobtanium"}, seed=0),
    lambda: ct_from_labels(_labels(), NAMES, seed=0, noise_hu=-1.0),
])
def test_bad_inputs_raise(call):
    with pytest.raises(InputError):
        call()
