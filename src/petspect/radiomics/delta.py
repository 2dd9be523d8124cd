"""Delta radiomics: the change of each feature between two time points (e.g. baseline and interim PET).

``absolute``: ``f1 - f0``; ``relative``: ``(f1 - f0) / |f0|`` (NaN where ``f0 == 0``). Both time points must
be extracted with the same settings (the IBSI's reproducibility condition); tags present at only one
time point are refused rather than silently dropped.
"""

from __future__ import annotations

import math
from enum import Enum

from petspect.errors import InputError
from petspect.radiomics.extract import FeatureSet, extract_features
from petspect.radiomics.settings import RadiomicsSettings

__all__ = ["DeltaKind", "delta_features", "extract_delta"]


class DeltaKind(str, Enum):
    ABSOLUTE = "absolute"
    RELATIVE = "relative"


def delta_features(before: FeatureSet, after: FeatureSet, kind: DeltaKind | str = DeltaKind.RELATIVE
                   ) -> dict[str, float]:
    """Per-tag change from ``before`` to ``after``, keyed ``delta_<tag>``."""
    try:
        kind = DeltaKind(kind)
    except ValueError:
        raise InputError(f"unknown delta kind {kind!r}; known: {[k.value for k in DeltaKind]}") from None
    if before.settings != after.settings:
        raise InputError(f"delta radiomics needs both time points extracted with the same settings "
                         f"({before.settings.name!r} vs {after.settings.name!r})")
    if set(before.values) != set(after.values):
        diff = sorted(set(before.values) ^ set(after.values))
        raise InputError(f"the two time points have different features: {diff[:5]}")
    out = {}
    for tag, v0 in before.values.items():
        v1 = after.values[tag]
        if kind is DeltaKind.ABSOLUTE:
            out[f"delta_{tag}"] = v1 - v0
        else:
            out[f"delta_{tag}"] = (v1 - v0) / abs(v0) if v0 != 0 and math.isfinite(v0) else math.nan
    return out


def extract_delta(image0, mask0, spacing0_mm, image1, mask1, spacing1_mm, settings: RadiomicsSettings,
                  kind: DeltaKind | str = DeltaKind.RELATIVE) -> dict[str, float]:
    """Extract both time points with ``settings`` and return their deltas."""
    return delta_features(extract_features(image0, mask0, spacing0_mm, settings),
                          extract_features(image1, mask1, spacing1_mm, settings), kind)
