"""Template-space brain regions for the clinic's regional analyses (SUVR, SBR, z-score targets).

The regions are drawn on the undeformed MNI152 template sampled on the image grid (the brain phantom's
subject with unit scale, no rotation, no shift and no displacement), so every subject is analysed with the
same volumes of interest, as after spatial normalisation. Grey-matter regions are spheres around MNI
centres intersected with the template's grey matter (probability >= 0.3); the striatal VOIs are the
phantom's caudate and putamen ellipsoids (:data:`petspect.phantoms.brain.STRIATUM_MNI`), the putamen split
into anterior and posterior halves at its centre.

MNI centres (mm, approx; Talairach/MNI atlases as summarised by Minoshima S et al, J Nucl Med
1995;36:1238-1248 for the AD regions, and the EANM DaTSCAN guideline's occipital reference, Darcourt J et
al, EJNMMI 2010;37:443-450):

* AD targets: posterior cingulate / precuneus (0, -55, 30), parietal (+-45, -62, 35), lateral temporal
  (+-55, -25, -12), medial temporal (+-25, -20, -16);
* AD controls: sensorimotor (+-35, -25, 55), occipital (0, -85, 5), frontal (+-35, 35, 30);
* references: cerebellum (ellipsoid at (0, -62, -35), semi-axes 45 x 22 x 16 mm, grey and white matter) and
  pons (ellipsoid at (0, -27, -32), semi-axes 9 x 10 x 11 mm), occipital cortex for DaT
  ((0, -85, 5), semi-axes 30 x 15 x 20 mm, grey matter).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from petspect.errors import InputError

__all__ = ["BrainRegions", "brain_regions", "AD_TARGETS", "AD_CONTROLS", "REFERENCES"]

AD_TARGETS = {"posterior_cingulate": ((0, -55, 30), 16.0), "parietal_left": ((-45, -62, 35), 18.0),
              "parietal_right": ((45, -62, 35), 18.0), "temporal_left": ((-55, -25, -12), 16.0),
              "temporal_right": ((55, -25, -12), 16.0), "medial_temporal_left": ((-25, -20, -16), 11.0),
              "medial_temporal_right": ((25, -20, -16), 11.0)}
AD_CONTROLS = {"sensorimotor_left": ((-35, -25, 55), 18.0), "sensorimotor_right": ((35, -25, 55), 18.0),
               "occipital": ((0, -85, 5), 20.0), "frontal_left": ((-35, 35, 30), 18.0),
               "frontal_right": ((35, 35, 30), 18.0)}
REFERENCES = {"cerebellum": ((0, -62, -35), (45, 22, 16)), "pons": ((0, -27, -32), (9, 10, 11)),
              "occipital_dat": ((0, -85, 5), (30, 15, 20))}


@dataclass(frozen=True)
class BrainRegions:
    """Boolean masks ``(nz, ny, nx)`` on an image grid, by region name, plus the template's brain mask."""

    masks: dict[str, np.ndarray]
    brain: np.ndarray
    grey: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.masks[name]
        except KeyError:
            raise InputError(f"no brain region {name!r}; regions: {sorted(self.masks)}") from None

    def union(self, names) -> np.ndarray:
        out = np.zeros_like(self.brain)
        for n in names:
            out |= self[n]
        return out


def _identity_subject() -> dict:
    return {"scale": [1.0, 1.0, 1.0], "rotation_deg": [0.0, 0.0, 0.0], "shift_mm": [0.0, 0.0, 0.0],
            "displacement": np.zeros((3, 5, 6, 5)).tolist(), "skull_mm": 7.0, "scalp_mm": 6.0, "worse_side": "left"}


@functools.lru_cache(maxsize=4)
def _regions_cached(shape, spacing_mm, origin_mm) -> BrainRegions:
    from petspect.phantoms.brain import STRIATUM_MNI, brain_tissues
    from petspect.phantoms.shapes import Grid

    grid = Grid(shape, spacing_mm, origin_mm)
    _, probs, mni = brain_tissues(grid, _identity_subject(), 2)
    brain = ((probs["grey_matter"] + probs["white_matter"] + probs["csf"]) > 0.5).numpy()
    grey = (probs["grey_matter"] >= 0.3).numpy()
    tissue = ((probs["grey_matter"] + probs["white_matter"]) >= 0.5).numpy()
    m = mni.to(torch.float64)

    def sphere(c, r):
        return (((m - torch.as_tensor(c, dtype=m.dtype)) ** 2).sum(-1) <= r * r).numpy()

    def ellipsoid(c, s):
        q = (m - torch.as_tensor(c, dtype=m.dtype)) / torch.as_tensor(s, dtype=m.dtype)
        return ((q * q).sum(-1) <= 1.0).numpy()

    masks: dict[str, np.ndarray] = {}
    for name, (c, r) in {**AD_TARGETS, **AD_CONTROLS}.items():
        masks[name] = sphere(c, r) & grey
    masks["cerebellum"] = ellipsoid(*REFERENCES["cerebellum"]) & tissue
    masks["pons"] = ellipsoid(*REFERENCES["pons"]) & tissue
    masks["occipital_dat"] = ellipsoid(*REFERENCES["occipital_dat"]) & grey
    for name, (c, s) in STRIATUM_MNI.items():
        inside = ellipsoid(c, s)
        masks[name] = inside
        if name.startswith("putamen"):
            post = (m[..., 1] < c[1]).numpy()
            masks[f"{name}_posterior"] = inside & post
            masks[f"{name}_anterior"] = inside & ~post
    for name, mask in masks.items():
        if not mask.any():
            raise InputError(f"brain region {name!r} holds no voxel on this grid (voxel too coarse?)")
    return BrainRegions(masks, brain, grey)


def brain_regions(volume) -> BrainRegions:
    """The template regions on the grid of ``volume`` (a Volume of the brain phantom's template grid)."""
    return _regions_cached(tuple(volume.shape), tuple(float(s) for s in volume.spacing_mm),
                           tuple(float(o) for o in volume.origin_mm))
