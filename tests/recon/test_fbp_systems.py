"""FBP in the geometries of petspect's PET (non-arc-corrected, interleaved michelogram) and SPECT projectors:
a point comes back at its voxel, a disc at its value (line integrals in mm -> image units)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, get_pet_scanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.geometry.spect import circular_orbit
from petspect.projectors.pet import PetSinogramProjector
from petspect.projectors.spect import SpectProjector
from petspect.recon.fbp_systems import fbp_pet, fbp_spect

N = 24


def _disc(value: float, radius_px: float, nz: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(N) - (N - 1) / 2
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    return (value * (r < radius_px).float())[None].expand(nz, -1, -1).clone(), r


def test_fbp_pet_point_and_disc_3d_ssrb():
    """Inveon-like rings (4 rings, max ring difference 2): an off-centre point peaks at its voxel; a uniform
    cylinder comes back at its value on every slice after SSRB (within 1 %)."""
    scanner = replace(get_pet_scanner("small-animal"), n_rings=4, name="inveon-4-rings")
    sino = SinogramDefinition(scanner, max_ring_diff=2, view_mashing=2, n_radial=80)
    grid = ImageGrid((4, N, N), (scanner.ring_spacing_mm, 3.0, 3.0))
    proj = PetSinogramProjector(scanner, sino, grid)
    point = torch.zeros(grid.shape)
    point[1, 6, 17] = 1.0
    img = fbp_pet(proj(point), sino, grid)
    assert divmod(int(img[1].argmax()), N) == (6, 17) and int(img.sum(dim=(1, 2)).argmax()) == 1
    disc, r = _disc(7.0, 7.0, nz=4)
    img = fbp_pet(proj(disc), sino, grid, window="hann")
    for z in range(4):
        assert float(img[z][r < 5].mean()) == pytest.approx(7.0, rel=0.01)
    with pytest.raises(InputError):
        fbp_pet(torch.zeros(3, 4, 5), sino, grid)


def test_fbp_spect_point_and_disc():
    """Rotate-and-sum projections times the depth step (sum -> line integral) reconstruct the disc value;
    rows run superior first, so a point on slice 1 comes back on slice 1."""
    angles, radius = circular_orbit(48, 150.0)
    proj = SpectProjector((3, N, N), (4.0, 4.0, 4.0), angles, radius, "spect-lehr", psf=False)
    point = torch.zeros(3, N, N)
    point[1, 5, 16] = 1.0
    img = fbp_spect(proj(point) * 4.0, angles.tolist(), image_shape=(3, N, N), voxel_mm=(4, 4, 4), col_mm=4.0,
                    window="ramp")
    k = int(img.argmax())
    assert (k // (N * N), divmod(k % (N * N), N)) == (1, (5, 16))
    disc, r = _disc(7.0, 8.0, nz=3)
    img = fbp_spect(proj(disc) * 4.0, angles.tolist(), image_shape=(3, N, N), voxel_mm=(4, 4, 4), col_mm=4.0)
    assert float(img[:, r < 6].mean()) == pytest.approx(7.0, rel=0.01)
