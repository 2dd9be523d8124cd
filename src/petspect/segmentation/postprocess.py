"""From a lesion probability map to a lesion mask: probability threshold, anatomical exclusion, small components.

A network's softmax is not a calibrated probability on a small cohort, and its smallest islands are mostly
noise: nnU-Net (Isensee et al, Nat Methods 2021) therefore chooses its post-processing (here: the
probability threshold and the smallest kept component) on held-out data. In ``petspect study segment`` both
are chosen on the validation subjects with the same :func:`~petspect.evaluation.grid_search` and
:class:`~petspect.evaluation.Budget` the threshold methods get, and voxels of the organs with physiological
uptake are removed exactly as for the threshold methods (the same anatomical help for every method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from petspect.errors import InputError

__all__ = ["PostProcess", "POST_SEARCH_SPACE", "lesion_mask"]

#: Validation grid of the post-processing (probability threshold, smallest component in mL).
POST_SEARCH_SPACE: dict[str, list[float]] = {"threshold": [0.3, 0.4, 0.5, 0.6, 0.7],
                                             "min_component_ml": [0.0, 0.5, 1.0, 2.0]}


@dataclass(frozen=True)
class PostProcess:
    """Post-processing of a lesion probability map.

    Attributes
    ----------
    threshold : float
        Voxels with probability >= threshold are lesion, in (0, 1).
    min_component_ml : float
        18-connected components smaller than this (mL) are dropped (after the exclusion).
    """

    threshold: float = 0.5
    min_component_ml: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"the probability threshold must lie in (0, 1), got {self.threshold}")
        if not self.min_component_ml >= 0.0:
            raise InputError(f"min_component_ml must not be negative, got {self.min_component_ml}")


def lesion_mask(probability: Any, spacing_mm: Any, post: PostProcess = PostProcess(), *,
                exclude: Any = None) -> np.ndarray:
    """Lesion mask ``(z, y, x)`` bool from a probability map.

    Parameters
    ----------
    probability : array_like, shape (nz, ny, nx)
        Lesion probability in [0, 1].
    spacing_mm : (dz, dy, dx)
    post : PostProcess
    exclude : array_like of bool, optional
        Voxels never lesion (organs with physiological uptake), removed before the component size test.
    """
    from petspect.segmentation.thresholds import _drop_small, _mask, _spacing

    p = np.asarray(probability.detach().cpu() if hasattr(probability, "detach") else probability)
    if p.ndim != 3:
        raise InputError(f"the probability map must be 3-D (z, y, x), got shape {p.shape}")
    m = p >= post.threshold
    if exclude is not None:
        m &= ~_mask(exclude, m.shape, "exclude")
    return _drop_small(m, _spacing(spacing_mm), post.min_component_ml)
