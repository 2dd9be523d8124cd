"""SUV factors against hand-computed values (QIBA vendor-neutral rules) for each vendor case.

Hand computation for the default patient (70 kg, 1.75 m, male), 370 MBq F-18 (half-life 6586.2 s)
injected at 09:00 and a series starting at 10:00 (DecayCorrection START):
decayed dose = 370e6 * 0.5 ** (3600 / 6586.2) = 253 314 180.24 Bq, SUVbw factor = 70 000 g / that
= 2.7633668e-4 mL/Bq. James LBM (M) = 1.10*70 - 128*(70/175)^2 = 56.52 kg; Janmahasatian (M) =
9270*70/(6680 + 216*22.857) = 55.857108 kg; du Bois BSA = 0.007184*70^0.425*175^0.725 = 1.8481430 m^2;
Devine IBW (M) = 50 + 2.3*(175/2.54 - 60) = 70.464567 kg.
"""

from __future__ import annotations

import numpy as np
import pytest

import dicom_factory as fac
from petspect.errors import FormatError, MissingTagError, UnitError
from petspect.io import load
from petspect.io.suv import suv_factor, suv_factors

DECAYED_BQ = 253314180.24164078
BW = 70000.0 / DECAYED_BQ


def _pet(tmp_path=None, values=None, **kw):
    attrs = fac.pet_attrs(**{k: v for k, v in kw.items() if k in fac.pet_attrs.__code__.co_varnames})
    attrs.update({k: v for k, v in kw.items() if k not in fac.pet_attrs.__code__.co_varnames})
    vals = np.full((3, 4, 4), 5000.0) if values is None else values
    series = fac.slice_stack(vals, **attrs)
    if tmp_path is not None:
        fac.write(series, tmp_path / "pet")
    return series


def rel(a, b):
    return abs(a - b) / abs(b)


def test_bqml_start_every_kind():
    ds = _pet()[0]
    expect = {"bw": BW, "lbm_james": 56520.0 / DECAYED_BQ, "lbm_janmahasatian": 55857.107722577474 / DECAYED_BQ,
              "bsa": 18481.430181213463 / DECAYED_BQ, "ibw": 70464.56692913384 / DECAYED_BQ}
    for kind, value in expect.items():
        assert rel(suv_factor(ds, kind), value) < 1e-6, kind
    assert rel(suv_factor(ds), 2.7633668171764e-4) < 1e-6


def test_female_james():
    ds = _pet(sex="F")[0]
    assert rel(suv_factor(ds, "lbm_james"), 51220.0 / DECAYED_BQ) < 1e-6  # 1.07*70 - 148*0.16 = 51.22 kg
    assert rel(suv_factor(ds, "ibw"), (45.5 + 2.3 * (175 / 2.54 - 60)) * 1000 / DECAYED_BQ) < 1e-6


def test_admin_decay_correction_uses_injected_dose():
    ds = _pet(decay="ADMIN")[0]
    assert rel(suv_factor(ds), 70000.0 / 370e6) < 1e-6


def test_acquisition_before_series_time_uses_earliest_acquisition(tmp_path):
    """Series re-saved at 11:00 after a 10:00 scan: the reference is the earliest AcquisitionTime."""
    series = _pet(tmp_path, SeriesTime="110000", AcquisitionTime=lambda k: f"10{k:02d}00")
    vol = load(tmp_path / "pet")
    assert rel(vol.meta["suv_factors"]["bw"], BW) < 1e-6
    # one instance alone only knows its own acquisition time (10:02 for the third slice)
    later = 370e6 * 0.5 ** (3720 / fac.F18_HALF_LIFE_S)
    assert rel(suv_factor(series[2]), 70000 / later) < 1e-6


def test_missing_start_datetime_falls_back_to_start_time():
    ds = _pet(start_datetime=None, start_time="090000")[0]
    assert rel(suv_factor(ds), BW) < 1e-6
    # injected 23:00 the evening before a 00:30 series (same SeriesDate as the scan)
    ds = _pet(start_datetime=None, start_time="230000", SeriesTime="003000", AcquisitionTime="003000")[0]
    d = 370e6 * 0.5 ** (5400 / fac.F18_HALF_LIFE_S)
    assert rel(suv_factor(ds), 70000 / d) < 1e-6


def test_utc_offsets_are_converted_to_the_dataset_zone():
    """An injection recorded in UTC (08:00+0000) against a series at 10:00 local time in a +0100 zone is
    09:00 local: one hour of decay, not two. Without the dataset's zone the offset is dropped (its own
    local time kept); an explicit offset already in the local zone changes nothing."""
    from datetime import datetime, timedelta

    from petspect.io.suv import local_utc_offset, parse_dt

    ds = _pet(start_datetime="20240102080000+0000", TimezoneOffsetFromUTC="+0100")[0]
    assert rel(suv_factor(ds), BW) < 1e-6
    ds = _pet(start_datetime="20240102090000+0100", TimezoneOffsetFromUTC="+0100")[0]
    assert rel(suv_factor(ds), BW) < 1e-6
    ds = _pet(start_datetime="20240102090000-0500")[0]  # no TimezoneOffsetFromUTC: the DT's own local time
    assert rel(suv_factor(ds), BW) < 1e-6
    assert parse_dt("20240101083000.5-0500", timedelta(hours=1)) == datetime(2024, 1, 1, 14, 30, 0, 500000)
    assert parse_dt("20240101083000+0530") == datetime(2024, 1, 1, 8, 30)
    assert local_utc_offset(ds) is None
    for bad in ("0100", "+01", "+0160", "+1500", "abcde"):  # read (and refused) only when a DT needs it
        with pytest.raises(FormatError):
            suv_factor(_pet(start_datetime="20240102080000+0000", TimezoneOffsetFromUTC=bad)[0])
        assert rel(suv_factor(_pet(TimezoneOffsetFromUTC=bad)[0]), BW) < 1e-6
    with pytest.raises(FormatError):
        parse_dt("20240101083000+9")


def test_philips_cnts_private_factors(tmp_path):
    """Philips CNTS: (7053,1000) is the SUVbw factor itself; (7053,1009) converts counts to Bq/mL."""
    ds = _pet(units="CNTS", Manufacturer="Philips")[0]
    with pytest.raises(UnitError, match="CNTS"):
        suv_factor(ds)
    ds.add_new((0x7053, 0x0010), "LO", "Philips PET Private Group")
    ds.add_new((0x7053, 0x1000), "DS", "0.000123")
    assert suv_factor(ds) == pytest.approx(0.000123, rel=1e-12)
    # without 1009 the Bq/mL scale follows from 1000: scale = 1000-factor * decayed dose / weight
    assert rel(suv_factor(ds, "lbm_james"), 0.000123 * 56520.0 / 70000.0) < 1e-6
    series = _pet(units="CNTS", Manufacturer="Philips")
    for s in series:
        s.add_new((0x7053, 0x0010), "LO", "Philips PET Private Group")
        s.add_new((0x7053, 0x1009), "DS", "2.5")
    assert rel(suv_factor(series[0]), 2.5 * BW) < 1e-6
    fac.write(series, tmp_path / "philips")
    vol = load(tmp_path / "philips")
    assert vol.unit == "Bq/mL"
    assert float(vol.data.mean()) == pytest.approx(2.5 * 5000.0, rel=1e-4)
    assert rel(vol.meta["suv_factors"]["bw"], BW) < 1e-6  # factor of the Bq/mL values
    suv = load(tmp_path / "philips", suv="bw")
    assert float(suv.data.mean()) == pytest.approx(2.5 * 5000.0 * BW, rel=1e-4)


def test_gml_is_already_suvbw():
    ds = _pet(units="GML")[0]
    assert suv_factor(ds) == 1.0
    assert rel(suv_factor(ds, "lbm_james"), 56520.0 / 70000.0) < 1e-6


def test_decay_none_gives_per_slice_factors(tmp_path):
    """Without decay correction each slice is decayed to its own acquisition time (10:00, 10:01, 10:02)."""
    _pet(tmp_path, decay="NONE", AcquisitionTime=lambda k: f"10{k:02d}00")
    vol = load(tmp_path / "pet")
    f = vol.meta["suv_factors"]["bw"]
    expect = [70000 / (370e6 * 0.5 ** ((3600 + 60 * k) / fac.F18_HALF_LIFE_S)) for k in range(3)]
    np.testing.assert_allclose(f, expect, rtol=1e-6)
    suv = load(tmp_path / "pet", suv="bw")
    np.testing.assert_allclose(suv.numpy().mean(axis=(1, 2)), 5000.0 * np.asarray(expect), rtol=1e-4)


def test_load_suv_volume(tmp_path):
    _pet(tmp_path)
    vol = load(tmp_path / "pet", suv="lbm_janmahasatian")
    assert vol.unit == "SUVlbm_janmahasatian"
    assert float(vol.data.mean()) == pytest.approx(5000 * 55857.107722577474 / DECAYED_BQ, rel=1e-4)
    assert "PatientName" not in str(vol.meta) and "PID-001" not in str(vol.meta)


def test_errors():
    ct = fac.slice_stack(np.zeros((2, 3, 3)), modality="CT")[0]
    with pytest.raises(UnitError, match="PET"):
        suv_factor(ct)
    ds = _pet(units="CPS")[0]
    with pytest.raises(UnitError, match="CPS"):
        suv_factor(ds)
    ds = _pet(sex="O")[0]
    factors, reasons = suv_factors(ds)
    assert factors["bw"] is not None and factors["lbm_james"] is None and "sex" in reasons["lbm_james"]
    ds = _pet()[0]
    del ds.PatientWeight
    with pytest.raises(MissingTagError, match="PatientWeight"):
        suv_factor(ds)
    ds = _pet()[0]
    ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = None
    with pytest.raises(MissingTagError, match="RadiopharmaceuticalStartTime"):
        suv_factor(ds)
    ds = _pet()[0]
    del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife
    with pytest.raises(MissingTagError, match="RadionuclideHalfLife"):
        suv_factor(ds)
    with pytest.warns(UserWarning, match="TM"):  # pydicom itself flags the bad time
        ds = _pet(SeriesTime="25:99")[0]
    with pytest.raises(FormatError, match="25:99|2599"):
        suv_factor(ds)
    with pytest.raises(UnitError, match="kind"):
        suv_factor(_pet()[0], "lean")
