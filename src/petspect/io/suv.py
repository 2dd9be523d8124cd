"""Standardised uptake value (SUV) factors of DICOM PET instances, following the QIBA vendor-neutral rules.

``suv_factor(ds, kind)`` is the number that multiplies the *rescaled* pixel values of an instance
(``stored * RescaleSlope + RescaleIntercept``) to give SUV of that kind:

* ``bw``: body weight, ``SUV = C [Bq/mL] * W [g] / D [Bq]`` (unit g/mL, reported as dimensionless);
* ``lbm_james``: lean body mass of James (1976): M ``1.10 W - 128 (W/H)^2``, F ``1.07 W - 148 (W/H)^2``
  (W kg, H cm);
* ``lbm_janmahasatian``: Janmahasatian et al (Clin Pharmacokinet 2005): M ``9270 W / (6680 + 216 BMI)``,
  F ``9270 W / (8780 + 244 BMI)``, BMI = W / H^2 (kg/m^2);
* ``bsa``: body surface area of du Bois and du Bois (1916), ``0.007184 W^0.425 H^0.725`` m^2 (H cm),
  used in **cm^2** so SUVbsa is in cm^2/mL as in QIBA's pseudo-code;
* ``ibw``: ideal body weight of Devine (1974): M ``50 kg + 2.3 kg`` per inch of height over 5 ft,
  F ``45.5 kg + 2.3 kg`` per inch (negative excess for shorter patients is applied as is).

``D`` is the injected activity (RadionuclideTotalDose) decayed to the reference time of the image:

* DecayCorrection ``ADMIN``: pixel values are already decay corrected to the injection: no decay.
* DecayCorrection ``START``: decay from injection to the scan start, which is SeriesDate/SeriesTime,
  unless an acquisition time of the series is earlier (a series edited and re-saved after the scan):
  then the earliest AcquisitionDate/Time (GE's private scan datetime (0009,100D) when present).
* DecayCorrection ``NONE``: values are activity at the acquisition, decayed to each instance's own
  AcquisitionDate/Time (an extension beyond QIBA, which covers START and ADMIN).

The injection time is RadiopharmaceuticalStartDateTime, else RadiopharmaceuticalStartTime on the
SeriesDate (a time after the scan start on that date is taken as the day before: injection before
midnight). Times are compared as local times: a DT that carries its own UTC offset (``...+0000``) is
converted to the dataset's zone, TimezoneOffsetFromUTC (0008,0201), when that is given (an injection
recorded in UTC against a series time in local time would otherwise be off by the zone difference, a
46 % error in the F-18 decay factor per hour); without it the offset is dropped.

Units: ``BQML`` (Bq/mL), ``GML`` (already SUVbw: bw factor 1), and Philips ``CNTS`` with the
private SUV scale factor (7053,1000) (used directly for bw) or activity-concentration scale factor
(7053,1009) (Bq/mL per count). Source: QIBA, "Standardized Uptake Value (SUV)" vendor-neutral
pseudo-code, https://qibawiki.rsna.org/index.php/Standardized_Uptake_Value_(SUV).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from petspect.errors import FormatError, MissingTagError, UnitError
from petspect.io.dicom_files import number, require, where

SUV_KINDS = ("bw", "bsa", "lbm_james", "lbm_janmahasatian", "ibw")
SUV_UNIT = {"bw": "SUVbw", "bsa": "SUVbsa", "lbm_james": "SUVlbm", "lbm_janmahasatian": "SUVlbm_janmahasatian",
            "ibw": "SUVibw"}
CM2_PER_M2 = 1.0e4
G_PER_KG = 1.0e3
CM_PER_INCH = 2.54
PHILIPS_SUV_SCALE = (0x7053, 0x1000)
PHILIPS_ACTIVITY_SCALE = (0x7053, 0x1009)
GE_SCAN_DATETIME = (0x0009, 0x100D)


# ---------------------------------------------------------------- body size formulas (pure)
# Plausibility bounds of the DICOM attributes in their stated units, so that a value stored in the wrong unit is
# refused instead of giving SUVs off by 10^3 or 10^6: PatientWeight is kg (heaviest person recorded ~635 kg; a
# weight in grams of any adult exceeds this), RadionuclideTotalDose is Bq (0.1 MBq is below any PET injection,
# mouse studies included, while an activity written in MBq or mCi is far below it; 100 GBq is above therapy).
MAX_WEIGHT_KG = 1000.0
MIN_DOSE_BQ = 1e5
MAX_DOSE_BQ = 1e11


def _check_sex(sex: str) -> str:
    s = (sex or "").strip().upper()[:1]
    if s not in ("M", "F"):
        raise UnitError(f"patient sex must be 'M' or 'F' for this formula, got {sex!r}")
    return s


def lbm_james_kg(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass (kg) of James: M 1.10 W - 128 (W/H)^2, F 1.07 W - 148 (W/H)^2 (H in cm)."""
    r2 = (weight_kg / height_cm) ** 2
    return 1.10 * weight_kg - 128.0 * r2 if _check_sex(sex) == "M" else 1.07 * weight_kg - 148.0 * r2


def lbm_janmahasatian_kg(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass (kg) of Janmahasatian: M 9270 W/(6680 + 216 BMI), F 9270 W/(8780 + 244 BMI)."""
    bmi = weight_kg / (height_cm / 100.0) ** 2
    if _check_sex(sex) == "M":
        return 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)
    return 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)


def bsa_dubois_m2(weight_kg: float, height_cm: float) -> float:
    """Body surface area (m^2) of du Bois: 0.007184 W^0.425 H^0.725 (W kg, H cm)."""
    return 0.007184 * weight_kg**0.425 * height_cm**0.725


def ibw_devine_kg(height_cm: float, sex: str) -> float:
    """Ideal body weight (kg) of Devine: 50 (M) or 45.5 (F) kg + 2.3 kg per inch over 60 inches."""
    base = 50.0 if _check_sex(sex) == "M" else 45.5
    return base + 2.3 * (height_cm / CM_PER_INCH - 60.0)


# ---------------------------------------------------------------- DICOM dates and times
def parse_da_tm(da: Any, tm: Any) -> datetime:
    """Combine a DICOM DA ("YYYYMMDD") and TM ("HHMMSS.FFFFFF", parts optional) into a datetime.

    Raises :class:`~petspect.errors.FormatError` for text that is not a DICOM date or time.
    """
    d = str(da).strip()
    t = str(tm).strip().replace(":", "")
    try:
        frac = 0.0
        if "." in t:
            t, f = t.split(".", 1)
            frac = float("0." + f) if f else 0.0
        t = t.ljust(6, "0")
        base = datetime(int(d[0:4]), int(d[4:6]), int(d[6:8]), int(t[0:2]), int(t[2:4]), int(t[4:6]))
    except (ValueError, IndexError) as exc:
        raise FormatError(f"cannot read DICOM date {d!r} / time {t!r} ({exc})") from None
    return base + timedelta(seconds=frac)


def _utc_offset(text: str, what: str) -> timedelta:
    """``&ZZXX`` (sign, hours, minutes) as a timedelta; FormatError if malformed or beyond -12:00..+14:00."""
    t = text.strip()
    if len(t) != 5 or t[0] not in "+-" or not t[1:].isdigit() or int(t[3:]) >= 60:
        raise FormatError(f"{what} {text!r} is not a UTC offset of the form +HHMM or -HHMM")
    minutes = (1 if t[0] == "+" else -1) * (60 * int(t[1:3]) + int(t[3:]))
    if not -12 * 60 <= minutes <= 14 * 60:
        raise FormatError(f"{what} {text!r} lies outside -1200..+1400")
    return timedelta(minutes=minutes)


def local_utc_offset(ds: Any) -> timedelta | None:
    """TimezoneOffsetFromUTC (0008,0201) of a dataset: the zone of its DA/TM values; None when absent."""
    value = getattr(ds, "TimezoneOffsetFromUTC", None)
    return None if not value else _utc_offset(str(value), "TimezoneOffsetFromUTC (0008,0201)")


def parse_dt(dt: Any, local_offset: timedelta | None = None) -> datetime:
    """Parse a DICOM DT ("YYYYMMDDHHMMSS.FFFFFF&ZZXX") into a naive local datetime.

    A DT with an explicit UTC offset ``&ZZXX`` is converted to the local zone ``local_offset`` (the
    dataset's TimezoneOffsetFromUTC, :func:`local_utc_offset`) when that is known, so that it compares
    with the dataset's DA/TM values (which are local times); without ``local_offset`` the offset is
    dropped (the DT's own local time is kept, the only reading when the dataset's zone is unknown).
    """
    s = str(dt).strip()
    offset = None
    for sign in "+-":
        if sign in s[8:]:
            k = 8 + s[8:].index(sign)
            s, offset = s[:k], _utc_offset(s[k:], f"the UTC offset of DT {str(dt).strip()!r}")
    value = parse_da_tm(s[:8], s[8:] or "000000")
    return value if offset is None or local_offset is None else value - offset + local_offset


def _local_dt(value: Any, ds: Any) -> datetime:
    """A DT of ``ds`` as local time (the dataset's zone is read only when the DT carries an offset)."""
    text = str(value).strip()
    explicit = any(sign in text[8:] for sign in "+-")
    return parse_dt(text, local_utc_offset(ds) if explicit else None)


def _private(ds: Any, tag: tuple[int, int]) -> float | None:
    if tag in ds:
        value = ds[tag].value
        if isinstance(value, bytes):
            value = value.decode("latin-1").strip("\0 ")
        try:
            out = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return out if math.isfinite(out) and out > 0 else None
    return None


def acquisition_datetime(ds: Any) -> datetime | None:
    """AcquisitionDateTime, else AcquisitionDate (or SeriesDate) + AcquisitionTime; None if absent."""
    if getattr(ds, "AcquisitionDateTime", None):
        return _local_dt(ds.AcquisitionDateTime, ds)
    tm = getattr(ds, "AcquisitionTime", None)
    da = getattr(ds, "AcquisitionDate", None) or getattr(ds, "SeriesDate", None)
    return parse_da_tm(da, tm) if tm and da else None


def scan_datetime(ds: Any, *, earliest_acquisition: datetime | None = None) -> datetime:
    """Reference time of a START-decay-corrected series (QIBA rule, see the module docstring).

    Parameters
    ----------
    ds : pydicom.Dataset
    earliest_acquisition : datetime, optional
        Earliest acquisition datetime over the series (the series reader passes it); default: this
        instance's own acquisition datetime.
    """
    series = parse_da_tm(require(ds, "SeriesDate"), require(ds, "SeriesTime"))
    acq = earliest_acquisition or acquisition_datetime(ds)
    if acq is None or series <= acq:
        return series
    ge = ds.get(GE_SCAN_DATETIME)
    if ge is not None and str(ge.value).strip():
        value = ge.value.decode("latin-1") if isinstance(ge.value, bytes) else ge.value
        return _local_dt(value, ds)
    return acq


def _radiopharmaceutical(ds: Any) -> Any:
    seq = getattr(ds, "RadiopharmaceuticalInformationSequence", None)
    if not seq:
        raise MissingTagError("missing RadiopharmaceuticalInformationSequence (0054,0016)", path=where(ds))
    return seq[0]


def injection_datetime(ds: Any, *, reference: datetime | None = None) -> datetime:
    """Radiopharmaceutical start: StartDateTime, else StartTime on the SeriesDate (see module docstring)."""
    rp = _radiopharmaceutical(ds)
    if getattr(rp, "RadiopharmaceuticalStartDateTime", None):
        return _local_dt(rp.RadiopharmaceuticalStartDateTime, ds)
    tm = getattr(rp, "RadiopharmaceuticalStartTime", None)
    if not tm:
        raise MissingTagError("missing RadiopharmaceuticalStartDateTime (0018,1078) and "
                              "RadiopharmaceuticalStartTime (0018,1072)", path=where(ds))
    inj = parse_da_tm(require(ds, "SeriesDate"), tm)
    if reference is not None and inj > reference:
        inj -= timedelta(days=1)  # injected before midnight, scanned after
    return inj


def decayed_dose_bq(ds: Any, *, earliest_acquisition: datetime | None = None) -> float:
    """Injected activity (Bq) decayed to the reference time of this instance's pixel values."""
    rp = _radiopharmaceutical(ds)
    dose = number(rp, "RadionuclideTotalDose", path=where(ds), positive=True)
    if not MIN_DOSE_BQ <= dose <= MAX_DOSE_BQ:
        raise FormatError(f"RadionuclideTotalDose (0018,1074) {dose:g} is not an injected activity in Bq (expected "
                          f"{MIN_DOSE_BQ:g} to {MAX_DOSE_BQ:g}; stored in MBq or mCi?)", path=where(ds))
    correction = str(require(ds, "DecayCorrection")).strip().upper()
    if correction == "ADMIN":
        return dose
    if correction == "START":
        ref = scan_datetime(ds, earliest_acquisition=earliest_acquisition)
    elif correction == "NONE":
        ref = acquisition_datetime(ds)
        if ref is None:
            raise MissingTagError("DecayCorrection NONE needs AcquisitionTime (0008,0032)", path=where(ds))
    else:
        raise FormatError(f"unknown DecayCorrection {correction!r} (START, ADMIN or NONE)", path=where(ds))
    half_life_s = number(rp, "RadionuclideHalfLife", path=where(ds), positive=True)
    elapsed_s = (ref - injection_datetime(ds, reference=ref)).total_seconds()
    if elapsed_s < 0:
        raise FormatError(f"injection is {-elapsed_s:.0f} s after the scan reference time", path=where(ds))
    return dose * math.exp(-math.log(2.0) * elapsed_s / half_life_s)


def _body(ds: Any, kind: str) -> float:
    """SUV normaliser: grams for bw, lbm and ibw kinds, cm^2 for bsa."""
    weight_kg = number(ds, "PatientWeight", positive=True)
    if weight_kg > MAX_WEIGHT_KG:
        raise FormatError(f"PatientWeight (0010,1030) {weight_kg:g} is not a weight in kg (stored in grams?)",
                          path=where(ds))
    if kind == "bw":
        return weight_kg * G_PER_KG
    height_m = number(ds, "PatientSize")
    if not 0.3 < height_m < 3.0:
        raise FormatError(f"PatientSize {height_m} is not a height in metres", path=where(ds))
    height_cm = height_m * 100.0
    if kind == "bsa":
        return bsa_dubois_m2(weight_kg, height_cm) * CM2_PER_M2
    sex = str(require(ds, "PatientSex"))
    try:
        if kind == "lbm_james":
            return lbm_james_kg(weight_kg, height_cm, sex) * G_PER_KG
        if kind == "lbm_janmahasatian":
            return lbm_janmahasatian_kg(weight_kg, height_cm, sex) * G_PER_KG
        return ibw_devine_kg(height_cm, sex) * G_PER_KG
    except UnitError as exc:
        raise UnitError(f"SUV {kind}: {exc.message}", path=where(ds)) from None


def activity_scale(ds: Any, *, earliest_acquisition: datetime | None = None, units: str | None = None) -> float | None:
    """Bq/mL per rescaled pixel unit of a PET instance; None when not derivable (CNTS without factors).

    BQML: 1. Philips CNTS: (7053,1009), else (7053,1000) * decayed dose / weight. GML/CPS: None. ``units``
    (a DICOM Units code) stands in for the instance's Units (0054,1001) when given.
    """
    units = str(units or require(ds, "Units")).upper()
    if units == "BQML":
        return 1.0
    if units == "CNTS":
        bq_per_cnt = _private(ds, PHILIPS_ACTIVITY_SCALE)
        if bq_per_cnt is not None:
            return bq_per_cnt
        suv_per_cnt = _private(ds, PHILIPS_SUV_SCALE)
        if suv_per_cnt is not None:
            return suv_per_cnt * decayed_dose_bq(ds, earliest_acquisition=earliest_acquisition) / _body(ds, "bw")
    return None


def suv_factor(ds: Any, kind: str = "bw", *, earliest_acquisition: datetime | None = None,
               units: str | None = None) -> float:
    """Factor that multiplies the rescaled pixel values of a PET instance to give SUV of ``kind``.

    Parameters
    ----------
    ds : pydicom.Dataset
        One PET image instance (Modality PT).
    kind : {"bw", "bsa", "lbm_james", "lbm_janmahasatian", "ibw"}
        SUV normalisation; bsa gives cm^2/mL, the others g/mL (see the module docstring).
    earliest_acquisition : datetime, optional
        Earliest acquisition datetime of the whole series (for the START reference-time rule).
    units : str, optional
        DICOM Units code standing in for the instance's Units (0054,1001) (e.g. "BQML" for a series without
        Units whose unit the user states).

    Raises
    ------
    UnitError
        Not a PET instance, units that cannot give SUV (CPS, CNTS without Philips factors), or a
        patient sex other than M/F for the sex-specific formulas.
    MissingTagError
        A needed attribute (weight, height, dose, half-life, times, ...) is absent.
    """
    if kind not in SUV_KINDS:
        raise UnitError(f"unknown SUV kind {kind!r}; choose one of {SUV_KINDS}")
    modality = getattr(ds, "Modality", None)
    if modality != "PT":
        raise UnitError(f"SUV is defined for PET (Modality PT) only, this instance is {modality!r}", path=where(ds))
    units = str(units or require(ds, "Units")).upper()
    if units == "GML":  # values are SUVbw already
        return 1.0 if kind == "bw" else _body(ds, kind) / _body(ds, "bw")
    if units == "CNTS" and kind == "bw":
        direct = _private(ds, PHILIPS_SUV_SCALE)
        if direct is not None:
            return direct
    scale = activity_scale(ds, earliest_acquisition=earliest_acquisition, units=units)
    if scale is None:
        raise UnitError(f"units {units} cannot be converted to SUV (need BQML, GML or Philips CNTS "
                        "with private scale factors (7053,1000)/(7053,1009))", path=where(ds))
    dose_bq = decayed_dose_bq(ds, earliest_acquisition=earliest_acquisition)
    if not dose_bq > 0:
        raise FormatError("the injected activity decays to 0 Bq by the scan time: check the half-life and the "
                          "injection and scan times", path=where(ds))
    factor = scale * _body(ds, kind) / dose_bq
    if not (math.isfinite(factor) and factor > 0):
        raise FormatError(f"SUV {kind} factor is {factor!r} (not a positive number): check the patient weight and "
                          "height, the dose, the half-life and the times", path=where(ds))
    return factor


def suv_factors(ds: Any, *, earliest_acquisition: datetime | None = None,
                units: str | None = None) -> tuple[dict, dict]:
    """SUV factors of every kind for one instance: ``(factors, reasons)``.

    ``factors[kind]`` is a float, or None where it cannot be computed; ``reasons[kind]`` then says why.
    """
    factors: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for kind in SUV_KINDS:
        try:
            factors[kind] = suv_factor(ds, kind, earliest_acquisition=earliest_acquisition, units=units)
        except (UnitError, FormatError) as exc:
            factors[kind] = None
            reasons[kind] = exc.message
    return factors, reasons



def apply_suv(volume: Any, kind: str, *, path: Any = None) -> Any:
    """SUV of ``kind`` from a PET Volume whose ``meta["suv_factors"]`` holds the factors of its values.

    A factor is one float, or one per slice (z) when the slices differ (DecayCorrection NONE).

    Raises
    ------
    UnitError
        Not PET, already SUV, or the factor of ``kind`` unknown (the reason is in the message).
    """
    if kind not in SUV_KINDS:
        raise UnitError(f"unknown SUV kind {kind!r}; choose one of {SUV_KINDS}", path=path)
    if volume.modality != "PT":
        raise UnitError(f"SUV is defined for PET (modality PT) only, this volume is {volume.modality!r}", path=path)
    if "suv_kind" in volume.meta:
        raise UnitError(f"volume is already in {volume.unit}", path=path)
    factors = volume.meta.get("suv_factors") or {}
    if factors.get(kind) is None:
        reason = (volume.meta.get("suv_missing") or {}).get(kind, "no SUV factors recorded with this volume")
        raise UnitError(f"SUV {kind} cannot be computed: {reason}", path=path)
    import torch

    dtype = volume.data.dtype if volume.data.is_floating_point() else torch.float32
    try:
        f = torch.as_tensor(factors[kind], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise FormatError(f"the recorded SUV {kind} factor is not a number or list of numbers: "
                          f"{str(factors[kind])[:60]!r}", path=path) from None
    if f.ndim > 1 or (f.ndim == 1 and f.numel() != volume.shape[0]):
        raise FormatError(f"the recorded SUV {kind} factors ({tuple(f.shape)}) are neither one value nor one per "
                          f"slice ({volume.shape[0]})", path=path)
    if not bool(torch.isfinite(f).all()) or not bool((f > 0).all()):
        raise FormatError(f"the recorded SUV {kind} factor is not a positive finite number: "
                          f"{str(factors[kind])[:60]}", path=path)
    f = f.to(dtype=dtype, device=volume.data.device)
    if f.ndim == 1:
        f = f[:, None, None]
    meta = dict(volume.meta, suv_kind=kind)
    return volume.with_data(volume.data.to(dtype) * f, unit=SUV_UNIT[kind], meta=meta)
