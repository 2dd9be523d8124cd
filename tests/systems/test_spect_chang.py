"""Chang first-order attenuation correction."""

from __future__ import annotations

import math

import pytest
import torch

from petspect.errors import InputError
from petspect.systems.spect_chang import chang_attenuation_factors, chang_correct
from petspect.projectors.spect import SpectProjector
from petspect.recon.em import mlem
from petspect.volume import Volume

N, VOX, MU = 32, 5.0, 0.01536  # water at 140.5 keV, 1/mm (xraydb)


def _disc(radius_mm: float) -> torch.Tensor:
    f = (torch.arange(N, dtype=torch.float64) - (N - 1) / 2) * VOX
    yy, xx = torch.meshgrid(f, f, indexing="ij")
    return (yy ** 2 + xx ** 2 <= radius_mm ** 2).double()


def test_factor_at_centre_of_uniform_cylinder():
    """At the centre of a water cylinder of radius R every view has factor exp(-mu R) (here R = 60 mm)."""
    mu = (MU * _disc(62.0)).expand(4, N, N).contiguous()
    a = chang_attenuation_factors(mu, (VOX,) * 3)
    centre = a[:, N // 2 - 1:N // 2 + 1, N // 2 - 1:N // 2 + 1].mean()
    assert float(centre) == pytest.approx(math.exp(-MU * 62.0), rel=0.05)
    assert float(a.max()) <= 1.0 + 1e-9
    assert torch.allclose(a[:, 0, 0], torch.ones(4, dtype=torch.float64))  # outside the object


def test_chang_flattens_nac_reconstruction_of_water_cylinder():
    """MLEM without attenuation of a uniform water cylinder (r = 7 cm) is cupped (centre 43 % of the edge peak, 75 % of the 4-6 cm ring);
    after Chang the central and ring means agree within 5 % (measured 1-2 %) and the profile's spread drops 3x."""
    disc = _disc(70.0)
    mu = (MU * disc).expand(8, N, N).contiguous()
    x_true = disc.expand(8, N, N).contiguous()
    angles = torch.arange(48, dtype=torch.float64) * 7.5
    data = SpectProjector((8, N, N), (VOX,) * 3, angles, 200.0, None, mu=mu, psf=False, dtype=torch.float64)(x_true)
    nac_op = SpectProjector((8, N, N), (VOX,) * 3, angles, 200.0, None, psf=False, dtype=torch.float64)
    nac = mlem(nac_op, data, n_iter=30, progress=False)
    corrected = chang_correct(nac, mu, voxel_mm=(VOX,) * 3, angles_deg=angles)
    f = (torch.arange(N, dtype=torch.float64) - (N - 1) / 2) * VOX
    yy, xx = torch.meshgrid(f, f, indexing="ij")
    r = torch.sqrt(yy ** 2 + xx ** 2)
    centre, rim = r < 20.0, (r > 40.0) & (r < 58.0)
    sl = slice(2, 6)

    def ratio(img):
        return float(img[sl][:, centre].mean() / img[sl][:, rim].mean())

    def spread(img):
        vals = img[sl][:, r < 58.0]
        return float(vals.std() / vals.mean())

    assert ratio(nac) < 0.8
    assert ratio(corrected) == pytest.approx(1.0, abs=0.05)
    assert spread(corrected) < spread(nac) / 3


def test_chang_correct_volume_and_errors():
    disc = _disc(50.0).expand(4, N, N).contiguous()
    img = Volume.centered(disc.clone(), (VOX,) * 3, unit="Bq/mL")
    mu = Volume.centered(disc * MU * 10, (VOX,) * 3, unit="1/cm")
    out = chang_correct(img, mu)
    assert isinstance(out, Volume) and out.unit == "Bq/mL"
    assert float(out.data[2, N // 2, N // 2]) > 1.5  # centre boosted by ~exp(mu R)
    with pytest.raises(InputError):
        chang_correct(disc, disc * MU)
