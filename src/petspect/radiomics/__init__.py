"""Radiomics to the IBSI standard: image processing, feature families keyed by IBSI tags, delta
radiomics and models on features.

Importing this package is cheap; the heavy work lives in the submodules::

    from petspect.radiomics import extract_features, load_settings
    fs = extract_features(image, mask, spacing_mm, load_settings("pet-suv-fbs0.25"))
"""

from petspect.radiomics.extract import FeatureSet, extract_features
from petspect.radiomics.settings import SETTINGS, Discretisation, Family, RadiomicsSettings, load_settings

__all__ = ["FeatureSet", "extract_features", "SETTINGS", "Discretisation", "Family", "RadiomicsSettings",
           "load_settings"]
