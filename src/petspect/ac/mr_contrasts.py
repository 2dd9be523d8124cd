"""A UTE-like MR contrast in which cortical bone is bright (for MR -> synthetic CT and MR-based bone class).

Dual-echo ultrashort-echo-time imaging: from a first echo at ``TE1 = 0.07 ms`` and a second at
``TE2 = 2.46 ms`` the map ``R2 = ln(S1 / S2) / (TE2 - TE1)`` (1/ms) is high in short-T2* tissue, i.e.
cortical bone (T2* ~0.4-0.5 ms; bone water ~20 % of soft tissue's proton density), and low in long-T2
tissue (~0.02/ms); voxels without signal on the first echo (air) are 0 (Keereman et al, J Nucl Med
51:812, 2010, the R2 map of UTE-based AC; Du & Bydder, NMR Biomed 26:489, 2013). Each tissue of :data:`petspect.phantoms.anatomy.TISSUES`
is split by its cortical-bone mass fraction into a short-T2* part and a long-T2 part (its own T2);
Rician noise is added. Values are approx: the image is a contrast for learning, not a quantitative map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from petspect.errors import InputError

__all__ = ["ute_bone_image"]

TE1_MS, TE2_MS = 0.07, 2.46
BONE_T2STAR_MS, BONE_PD = 0.45, 0.2


def ute_bone_image(labels: torch.Tensor, label_names: Mapping[int, str], *, seed: int,
                   noise_fraction: float = 0.02) -> torch.Tensor:
    """UTE R2 map (1/ms, float32, shape of ``labels``): bone high, soft tissue ~0.02, air 0."""
    from petspect.phantoms.anatomy import TISSUES

    if noise_fraction < 0:
        raise InputError(f"noise_fraction must be >= 0, got {noise_fraction}")
    lut1 = torch.zeros(max(label_names) + 1, dtype=torch.float32)
    lut2 = torch.zeros_like(lut1)
    for i, name in label_names.items():
        t = TISSUES.get(name.split("_")[0] if name.startswith(("caudate", "putamen")) else name, TISSUES["soft_tissue"])
        if name in ("disease_region",):
            t = TISSUES["grey_matter"]
        f_bone = sum(w for m, w in t.materials if m == "cortical_bone")
        long_t2 = max(t.t2_ms, 1.0)

        def echo(te, t=t, f_bone=f_bone, long_t2=long_t2):
            return (BONE_PD * f_bone * math.exp(-te / BONE_T2STAR_MS)
                    + t.pd * (1 - f_bone) * math.exp(-te / long_t2))

        lut1[i], lut2[i] = echo(TE1_MS), echo(TE2_MS)
    idx = labels.long().clamp(0, len(lut1) - 1)
    s1, s2 = lut1[idx], lut2[idx]
    sigma = noise_fraction * float(lut1.max().clamp_min(1e-6))
    if noise_fraction > 0:
        g = torch.Generator().manual_seed(int(seed))
        s1 = torch.hypot(s1 + sigma * torch.randn(s1.shape, generator=g), sigma * torch.randn(s1.shape, generator=g))
        s2 = torch.hypot(s2 + sigma * torch.randn(s2.shape, generator=g), sigma * torch.randn(s2.shape, generator=g))
    signal = s1 > max(5.0 * sigma, 0.05 * float(lut1.max()))
    r2 = torch.log(s1.clamp_min(1e-6) / s2.clamp_min(1e-6)) / (TE2_MS - TE1_MS)
    return torch.where(signal, r2.clamp(0.0, 3.0), torch.zeros_like(r2)).to(torch.float32)
