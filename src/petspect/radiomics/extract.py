"""One entry point: image + mask + settings -> IBSI features keyed by tag."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from petspect.radiomics.processing import ProcessedROI, process
from petspect.errors import ConfigError
from petspect.radiomics.settings import Family, RadiomicsSettings, load_settings

__all__ = ["FeatureSet", "extract_features"]


@dataclass
class FeatureSet:
    """Features of one ROI.

    Attributes
    ----------
    values : dict of str to float
        IBSI tag -> value, in the order computed (NaN where a feature is undefined for this ROI).
    settings : RadiomicsSettings
    n_voxels_morph, n_voxels_int : int
        Voxels in the morphological and intensity masks after processing.
    n_levels : int
        Grey levels after discretisation.
    """

    values: dict[str, float]
    settings: RadiomicsSettings
    n_voxels_morph: int = 0
    n_voxels_int: int = 0
    n_levels: int = 0
    diagnostics: dict[str, float] = field(default_factory=dict)

    def to_rows(self) -> list[tuple[str, float]]:
        return list(self.values.items())


def _families(roi: ProcessedROI, settings: RadiomicsSettings) -> dict[str, float]:
    import petspect.radiomics.intensity as intensity
    import petspect.radiomics.morphology as morphology
    import petspect.radiomics.texture as texture
    import petspect.radiomics.zones as zones

    fam = set(settings.families)
    lv, ng = roi.levels, roi.n_levels
    f: dict[str, float] = {}
    if Family.MORPHOLOGY in fam:
        f |= morphology.morphology_features(roi.morph_mask, roi.int_mask, roi.image, roi.spacing_mm)
    if Family.LOCAL_INTENSITY in fam:
        f |= intensity.local_intensity_features(roi.image, roi.int_mask, roi.spacing_mm)
    if Family.STATISTICS in fam:
        f |= intensity.statistics_features(roi.image, roi.int_mask)
    if Family.HISTOGRAM in fam:
        f |= intensity.histogram_features(lv, roi.int_mask, ng)
    if Family.IVH in fam:
        f |= intensity.ivh_features(lv, roi.int_mask, ng)
    if Family.GLCM in fam:
        f |= texture.glcm_features(lv, ng, settings.glcm_distance)
    if Family.GLRLM in fam:
        f |= texture.glrlm_features(lv, ng)
    if Family.GLSZM in fam:
        f |= zones.glszm_features(lv, ng)
    if Family.GLDZM in fam:
        f |= zones.gldzm_features(lv, ng)
    if Family.NGTDM in fam:
        f |= zones.ngtdm_features(lv, ng)
    if Family.NGLDM in fam:
        f |= zones.ngldm_features(lv, ng, settings.ngldm_distance, settings.ngldm_alpha)
    return f


def extract_features(image, mask, spacing_mm, settings: RadiomicsSettings) -> FeatureSet:
    """IBSI features of the ROI ``mask`` in ``image``.

    Parameters
    ----------
    image : array-like or torch.Tensor, (nz, ny, nx)
        Intensities (Bq/mL, SUV, HU, ...); features carry the image's unit.
    mask : array-like, (nz, ny, nx)
        ROI: nonzero (or > 0.5 for a float mask) inside.
    spacing_mm : (dz, dy, dx)
        Voxel spacing in mm.
    settings : RadiomicsSettings or str
        Settings, or a preset name / JSON file path for :func:`load_settings`.

    Returns
    -------
    FeatureSet
    """
    if isinstance(settings, (str, os.PathLike)):
        settings = load_settings(settings)
    if not isinstance(settings, RadiomicsSettings):
        raise ConfigError(f"settings must be RadiomicsSettings or a preset name, got {type(settings).__name__}")
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    roi = process(np.asarray(image), np.asarray(mask), spacing_mm, settings)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = _families(roi, settings)
    values = {k: (float(v) if v is not None and math.isfinite(float(v)) else math.nan) for k, v in values.items()}
    return FeatureSet(values=values, settings=settings, n_voxels_morph=int(roi.morph_mask.sum()),
                      n_voxels_int=int(roi.int_mask.sum()), n_levels=roi.n_levels)
