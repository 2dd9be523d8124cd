"""SUV inputs in the wrong unit (found by an outside quality pass): a weight in grams or an injected activity in
MBq would give SUVs off by 1000 or a million without a word. DICOM stores PatientWeight (0010,1030) in kg and
RadionuclideTotalDose (0018,1074) in Bq (PS3.3 C.7.1.3 and C.8.9.1.1.4)."""

from __future__ import annotations

import numpy as np
import pytest

import dicom_factory as fac
from petspect.errors import FormatError
from petspect.io.suv import suv_factor, suv_factors


def _ds(**kw):
    attrs = fac.pet_attrs(**kw)
    return fac.slice_stack(np.full((2, 3, 3), 5000.0), **attrs)[0]


@pytest.mark.parametrize("kw, what", [
    ({"weight_kg": 70000.0}, "PatientWeight"),  # grams
    ({"dose_bq": 370.0}, "RadionuclideTotalDose"),  # MBq
    ({"dose_bq": 10.0}, "RadionuclideTotalDose"),  # mCi
])
def test_implausible_weight_or_dose_is_refused_naming_the_tag(kw, what):
    ds = _ds(**kw)
    with pytest.raises(FormatError, match=what):
        suv_factor(ds, "bw")
    factors, missing = suv_factors(ds)
    assert factors["bw"] is None and what in missing["bw"]


@pytest.mark.parametrize("kw", [{"weight_kg": 0.025}, {"weight_kg": 250.0}, {"dose_bq": 5e6}, {"dose_bq": 7.4e9}])
def test_a_mouse_a_heavy_patient_and_therapy_activities_are_accepted(kw):
    ds = _ds(**kw)
    assert suv_factor(ds, "bw") > 0
