"""Image-processing settings of a radiomics extraction, as the IBSI defines them, and named presets.

A :class:`RadiomicsSettings` holds every choice the IBSI asks a study to report (chapter 2 of the
IBSI reference manual, Zwanenburg A et al., Radiology 2020;295:328-338, arXiv:1612.07003):
interpolation to a new voxel spacing, re-segmentation range and outlier filtering of the intensity
mask, discretisation (fixed bin number FBN or fixed bin size FBS), the GLCM / NGLDM distances and
which feature families to compute. Named presets live in :data:`SETTINGS`; a JSON file with the same
field names is read by :func:`load_settings`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path

from petspect._registry import Registry
from petspect.errors import ConfigError

__all__ = ["Discretisation", "Family", "MAX_GREY_LEVELS", "RadiomicsSettings", "SETTINGS", "load_settings", "ALL_FAMILIES"]


class Discretisation(str, Enum):
    """How intensities become grey levels 1..Ng (IBSI section 2.7)."""

    NONE = "none"  # intensities are already integer grey levels 1..Ng (the digital phantom)
    FBN = "fbn"  # fixed bin number: floor(Nb (x - min) / (max - min)) + 1
    FBS = "fbs"  # fixed bin size: floor((x - x_lower) / w) + 1


class Family(str, Enum):
    """Feature families (IBSI chapter 3) and their tag prefixes."""

    MORPHOLOGY = "morph"
    LOCAL_INTENSITY = "loc"
    STATISTICS = "stat"
    HISTOGRAM = "ih"
    IVH = "ivh"
    GLCM = "cm"
    GLRLM = "rlm"
    GLSZM = "szm"
    GLDZM = "dzm"
    NGTDM = "ngt"
    NGLDM = "ngl"


ALL_FAMILIES: tuple[Family, ...] = tuple(Family)

#: Most grey levels a discretisation may give: texture matrices are Ng x Ng (GLCM) per slice and direction,
#: so more would exhaust memory; no published PET/CT radiomics protocol comes near (typically 8-256).
MAX_GREY_LEVELS = 10000


@dataclass(frozen=True)
class RadiomicsSettings:
    """Every processing choice of one extraction.

    Attributes
    ----------
    name : str
        Name reported with the features.
    spacing_mm : (float, float, float) or None
        New voxel spacing ``(dz, dy, dx)`` in mm; None keeps the image grid. Grids are aligned on their
        centres (IBSI 2.4).
    interpolation : str
        ``"linear"`` (trilinear), ``"cubic"`` (tricubic spline) or ``"nearest"`` for the image.
    mask_threshold : float
        The mask is interpolated linearly and voxels with a value >= this are kept (IBSI: 0.5).
    round_intensities : bool
        Round interpolated intensities to integers (CT in HU); False for PET.
    resegment_range : (float, float) or None
        Intensity mask keeps ``lo <= x <= hi``; ``math.inf`` for an open end.
    outlier_sigma : float or None
        Intensity mask keeps ``|x - mean| <= k sd`` (IBSI outlier filtering, k = 3).
    discretisation : Discretisation
    n_bins : int or None
        Bin number for FBN.
    bin_width : float or None
        Bin width for FBS, in the image's unit (Bq/mL, SUV, HU).
    glcm_distance : int
        Chebyshev distance of GLCM neighbours (IBSI tag suffix ``d1``).
    ngldm_distance : int
        Chebyshev distance of the NGLDM neighbourhood.
    ngldm_alpha : float
        Grey-level coarseness parameter of the NGLDM (``a0.0``).
    families : tuple of Family
        Feature families to compute.
    """

    name: str = "custom"
    spacing_mm: tuple[float, float, float] | None = None
    interpolation: str = "linear"
    mask_threshold: float = 0.5
    round_intensities: bool = False
    resegment_range: tuple[float, float] | None = None
    outlier_sigma: float | None = None
    discretisation: Discretisation = Discretisation.FBS
    n_bins: int | None = None
    bin_width: float | None = 0.25
    glcm_distance: int = 1
    ngldm_distance: int = 1
    ngldm_alpha: float = 0.0
    families: tuple[Family, ...] = field(default=ALL_FAMILIES)

    def __post_init__(self) -> None:
        self._check_types()
        disc = Discretisation(self.discretisation)
        object.__setattr__(self, "discretisation", disc)
        object.__setattr__(self, "families", tuple(Family(f) for f in self.families))
        if self.spacing_mm is not None:
            sp = tuple(float(s) for s in self.spacing_mm)
            if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
                raise ConfigError(f"radiomics settings {self.name!r}: spacing_mm must be 3 positive numbers, got {self.spacing_mm}")
            object.__setattr__(self, "spacing_mm", sp)
        if self.interpolation not in ("linear", "cubic", "nearest"):
            raise ConfigError(f"radiomics settings {self.name!r}: interpolation must be linear, cubic or nearest, "
                              f"got {self.interpolation!r}")
        if not 0.0 < self.mask_threshold <= 1.0:
            raise ConfigError(f"radiomics settings {self.name!r}: mask_threshold must be in (0, 1]")
        if disc is Discretisation.FBN and (self.n_bins is None or not 1 <= int(self.n_bins) <= MAX_GREY_LEVELS):
            raise ConfigError(f"radiomics settings {self.name!r}: discretisation 'fbn' needs 1 <= n_bins <= "
                              f"{MAX_GREY_LEVELS}, got {self.n_bins}")
        if disc is Discretisation.FBS and (self.bin_width is None or not 0 < float(self.bin_width) < math.inf):
            raise ConfigError(f"radiomics settings {self.name!r}: discretisation 'fbs' needs a finite bin_width > 0, "
                              f"got {self.bin_width}")
        if self.resegment_range is not None:
            lo, hi = (float(v) for v in self.resegment_range)
            if not lo < hi:
                raise ConfigError(f"radiomics settings {self.name!r}: resegment_range needs lo < hi, got {self.resegment_range}")
            object.__setattr__(self, "resegment_range", (lo, hi))
        if self.outlier_sigma is not None and not 0 < float(self.outlier_sigma) < math.inf:
            raise ConfigError(f"radiomics settings {self.name!r}: outlier_sigma must be a finite number > 0")
        if not 0 <= float(self.ngldm_alpha) < math.inf:
            raise ConfigError(f"radiomics settings {self.name!r}: ngldm_alpha (grey-level coarseness) must be a "
                              f"finite number >= 0, got {self.ngldm_alpha}")
        if int(self.glcm_distance) < 1 or int(self.ngldm_distance) < 1:
            raise ConfigError(f"radiomics settings {self.name!r}: distances must be >= 1")

    def _check_types(self) -> None:
        """Refuse wrongly typed fields (a JSON file's ``"n_bins": "64"`` or ``64.7``) instead of coercing them."""
        def bad(name: str, want: str) -> ConfigError:
            return ConfigError(f"radiomics settings {self.name!r}: {name} must be {want}, "
                               f"got {getattr(self, name)!r}")

        def is_int(v) -> bool:
            return isinstance(v, (int, np_integer())) and not isinstance(v, bool)

        def is_num(v) -> bool:
            return isinstance(v, (int, float, np_number())) and not isinstance(v, bool)

        if not isinstance(self.name, str):
            raise bad("name", "a string")
        if not isinstance(self.round_intensities, bool):
            raise bad("round_intensities", "true or false")
        for name in ("glcm_distance", "ngldm_distance"):
            if not is_int(getattr(self, name)):
                raise bad(name, "an integer")
        if self.n_bins is not None and not is_int(self.n_bins):
            raise bad("n_bins", "an integer")
        for name in ("mask_threshold", "ngldm_alpha"):
            if not is_num(getattr(self, name)):
                raise bad(name, "a number")
        for name in ("bin_width", "outlier_sigma"):
            if getattr(self, name) is not None and not is_num(getattr(self, name)):
                raise bad(name, "a number or null")
        for name in ("spacing_mm", "resegment_range"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, (str, bytes)) or not hasattr(v, "__len__")
                                  or len(v) != (3 if name == "spacing_mm" else 2)
                                  or not all(is_num(x) for x in v)):
                raise bad(name, "null or a list of 3 numbers" if name == "spacing_mm" else "null or [lo, hi]")
        if isinstance(self.families, (str, bytes)) or not hasattr(self.families, "__iter__"):
            raise bad("families", "a list of family prefixes")
        if len(tuple(self.families)) == 0:
            raise bad("families", "a non-empty list of family prefixes")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (enums as strings, infinite range ends as null)."""
        d = asdict(self)
        d["discretisation"] = self.discretisation.value
        d["families"] = [f.value for f in self.families]
        if self.resegment_range is not None:
            d["resegment_range"] = [None if math.isinf(v) else v for v in self.resegment_range]
        return d

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "settings") -> "RadiomicsSettings":
        """Build settings from a dict (a JSON file); unknown keys are refused with the known ones."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: radiomics settings must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown radiomics settings {unknown}; known: {sorted(known)}")
        d = dict(data)
        rr = d.get("resegment_range")
        if rr is not None:
            if not isinstance(rr, (list, tuple)) or len(rr) != 2:
                raise ConfigError(f"{source}: resegment_range must be [lo, hi] (null for an open end), got {rr!r}")
            lo, hi = rr
            try:
                d["resegment_range"] = (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{source}: resegment_range must hold numbers or null, got {rr!r}") from exc
        if isinstance(d.get("families"), str):
            raise ConfigError(f"{source}: families must be a list such as [\"stat\", \"cm\"], got {d['families']!r}")
        try:
            if "families" in d:
                d["families"] = tuple(Family(f) for f in d["families"])
            if "discretisation" in d:
                d["discretisation"] = Discretisation(d["discretisation"])
            return cls(**d)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: bad radiomics settings: {exc}") from exc


def np_integer() -> type:
    import numpy as np

    return np.integer


def np_number() -> type:
    import numpy as np

    return np.number


SETTINGS: Registry = Registry("radiomics settings")
SETTINGS.register("ibsi-digital-phantom", RadiomicsSettings(
    name="ibsi-digital-phantom", discretisation=Discretisation.NONE, bin_width=None))
# PET in SUV: fixed bin size of 0.25 SUV on the native grid (fixed bin size keeps grey levels comparable
# between patients; Leijenaar RTH et al., Sci Rep 2015;5:11075; Orlhac F et al., J Nucl Med 2015;56:38-44).
SETTINGS.register("pet-suv-fbs0.25", RadiomicsSettings(
    name="pet-suv-fbs0.25", discretisation=Discretisation.FBS, bin_width=0.25, resegment_range=(0.0, math.inf)))
# PET resampled to 2 mm isotropic voxels (trilinear), 64 fixed bins.
SETTINGS.register("pet-iso2mm-fbn64", RadiomicsSettings(
    name="pet-iso2mm-fbn64", spacing_mm=(2.0, 2.0, 2.0), interpolation="linear",
    discretisation=Discretisation.FBN, n_bins=64, bin_width=None))


def load_settings(name_or_file: str | Path | None) -> RadiomicsSettings:
    """Named settings (case-insensitive) or a JSON file of :class:`RadiomicsSettings` fields.

    A JSON file may name a preset to start from with ``"base": "<name>"``.
    """
    if name_or_file is None:
        return SETTINGS.lookup("ibsi-digital-phantom")
    text = str(name_or_file)
    path = Path(text)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"radiomics settings file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read radiomics settings: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: radiomics settings must be a JSON object")
        base_name = data.pop("base", None)
        if base_name is not None:
            base = SETTINGS.lookup(str(base_name)).to_dict()
            base.update(data)
            data = base
        data.setdefault("name", path.stem)
        return RadiomicsSettings.from_dict(data, source=str(path))
    return SETTINGS.lookup(text)


def with_overrides(settings: RadiomicsSettings, **changes) -> RadiomicsSettings:
    """A copy of ``settings`` with fields changed (validated again)."""
    return replace(settings, **changes)
