"""Units stated on the command line for files that carry none (``--unit``, ``--mu-unit``).

NIfTI has no field for the unit of its values, and some DICOM series lack Units (0054,1001): such files
load in ``"a.u."``. A stated unit is taken for them; a file that carries a different unit is refused rather
than relabelled (a stated unit never overrides what the file says). A DICOM PET without Units still carries
the dose, weight and times SUV needs: stating an activity concentration (Bq/mL, kBq/mL, MBq/mL) makes the SUV
factors the reader computed for that case (``meta["suv_factors_if_bqml"]``) the volume's SUV factors.
"""

from __future__ import annotations

from typing import Any

from petspect.errors import UnitError
from petspect.volume import Volume

__all__ = ["ACTIVITY_PER_BQML", "ATTENUATION_UNITS", "state_mu_unit", "state_unit"]

#: Units an attenuation map (or the CT it comes from) may be stated in.
ATTENUATION_UNITS = ("1/mm", "1/cm", "HU")
_UNKNOWN = ("a.u.", "", None)
_ALIASES = {"bq/ml": "Bq/mL", "bqml": "Bq/mL", "kbq/ml": "kBq/mL", "mbq/ml": "MBq/mL", "suv": "SUVbw",
            "suvbw": "SUVbw", "counts": "counts", "cnts": "counts", "cps": "cps", "a.u.": "a.u.",
            "1/mm": "1/mm", "/mm": "1/mm", "mm-1": "1/mm", "1/cm": "1/cm", "/cm": "1/cm", "cm-1": "1/cm", "hu": "HU"}


def _canonical(unit: str) -> str:
    return _ALIASES.get(str(unit).strip().lower().replace(" ", ""), str(unit).strip())


def state_unit(volume: Volume, unit: str | None, *, path: Any = None) -> Volume:
    """``volume`` in ``unit`` when it carries none (``"a.u."``); unchanged when ``unit`` is None or the same.

    Raises
    ------
    UnitError
        The file carries another unit than the one stated.
    """
    if unit is None:
        return volume
    stated = _canonical(unit)
    if volume.unit == stated:
        return volume
    if volume.unit not in _UNKNOWN:
        raise UnitError(f"the file is in {volume.unit!r}; --unit {unit!r} would relabel it (give --unit only for "
                        "files without a unit)", path=path)
    meta = {**volume.meta, "unit_stated": stated}
    per_bqml = ACTIVITY_PER_BQML.get(stated)
    if volume.modality == "PT" and per_bqml is not None and "suv_factors_if_bqml" in meta:
        # a DICOM PET without Units: its header's SUV factors hold once the values' unit is known
        meta["suv_factors"] = {k: _scaled(v, per_bqml) for k, v in meta["suv_factors_if_bqml"].items()}
        meta["suv_missing"] = dict(meta.get("suv_missing_if_bqml") or {})
    return volume.with_data(volume.data, unit=stated, meta=meta)


#: Bq/mL per unit of an activity-concentration unit.
ACTIVITY_PER_BQML = {"Bq/mL": 1.0, "kBq/mL": 1e3, "MBq/mL": 1e6}


def _scaled(factor: Any, per_bqml: float) -> Any:
    if factor is None:
        return None
    if isinstance(factor, (list, tuple)):
        return [float(f) * per_bqml for f in factor]
    return float(factor) * per_bqml


def state_mu_unit(volume: Volume, unit: str | None, *, path: Any = None) -> Volume:
    """An attenuation map (or CT) in a stated unit among :data:`ATTENUATION_UNITS` (see :func:`state_unit`)."""
    if unit is not None and _canonical(unit) not in ATTENUATION_UNITS:
        raise UnitError(f"--mu-unit must be one of {list(ATTENUATION_UNITS)}, got {unit!r}", path=path)
    return state_unit(volume, unit, path=path)
