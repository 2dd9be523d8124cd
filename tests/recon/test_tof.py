"""TOF reaches a given lesion contrast in fewer OSEM iterations than non-TOF (same scanner, same data model).

Reduced whole-body ring (Vision-like 214 ps TOF FWHM, 143 ps bins, van Sluis et al 2019; radius 200 mm,
160 crystals, 11 TOF bins) so the test stays small; noiseless data, water cylinder with a hot lesion 4:1.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from petspect.geometry.pet import ImageGrid, get_pet_scanner
from petspect.systems.pet import pet_system_model
from petspect.recon.em import osem
from petspect.recon.iterate import History

TARGET = 3.4  # 85 % of the true lesion-to-background ratio 4


def _first_reaching(images, lesion, background, target):
    for it, im in enumerate(images, start=1):
        if float(im[lesion].mean() / im[background].mean()) >= target:
            return it
    return len(images) + 1


def test_tof_reaches_contrast_in_fewer_iterations():
    scanner = replace(get_pet_scanner("wholebody"), n_rings=1, ring_radius_mm=200.0, crystals_per_ring=160,
                      fov_diameter_mm=240.0, n_tof_bins=11)
    n, vox = 32, 6.0
    grid = ImageGrid((1, n, n), (vox, vox, vox))
    c = (torch.arange(n) - (n - 1) / 2) * vox
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    body = torch.sqrt(yy ** 2 + xx ** 2) < 85
    d_lesion = torch.sqrt((yy - 30) ** 2 + (xx - 25) ** 2)
    lesion, background = (d_lesion < 12)[None], (body & (yy ** 2 + xx ** 2 < 60 ** 2) & (d_lesion > 25))[None]
    x = (1000.0 * body + 3000.0 * (d_lesion < 12))[None].float()
    mu = (0.0096 * body)[None].float()
    reached = {}
    for tof, n_iter in ((True, 2), (False, 4)):
        model = pet_system_model(scanner if tof else scanner.non_tof(), grid, mu=mu, tof=tof)
        hist = History(keep_images=True)
        osem(model, model(x), n_iter=n_iter, n_subsets=4, callback=hist)
        reached[tof] = _first_reaching(hist.images, lesion, background, TARGET)
    assert reached[True] <= 2
    assert reached[True] < reached[False]
