"""DICOM NM TOMO projections -> SpectProjections: frame placement, angles, radii, windows, errors."""

from __future__ import annotations

import numpy as np
import pytest

import dicom_factory as fac
from petspect.errors import FormatError, InputError, MissingTagError
from petspect.io import load
from petspect.io.convert import is_projection_data
from petspect.io.nm import read_nm_gates, read_nm_projections


def test_dual_head_tomo(tmp_path):
    fac.write([fac.nm_tomo()], tmp_path / "nm")
    proj = read_nm_projections(tmp_path / "nm")
    assert tuple(proj.counts.shape) == (2, 8, 3, 5)
    # window w, view index (detector d, view v) -> 100 w + 10 d + v
    for w in range(2):
        for d in range(2):
            for v in range(4):
                assert float(proj.counts[w, 4 * d + v, 1, 2]) == 100 * w + 10 * d + v
    # CW (DICOM PS3.3 C.8.4.12): decreasing DICOM angle start - k * 45 (head 1 from 0, head 2 from 180);
    # petspect angle = 180 - DICOM angle (0 = anterior, clockwise from the feet)
    assert proj.angles_deg.tolist() == [180.0, 225.0, 270.0, 315.0, 0.0, 45.0, 90.0, 135.0]
    assert proj.radius_mm.tolist() == [250.0] * 4 + [251.0, 252.0, 253.0, 254.0]
    assert proj.pixel_spacing_mm == (4.4, 4.2)
    assert [w.name for w in proj.energy_windows] == ["EM", "SC"] and proj.photopeak_window == 0
    assert proj.energy_windows[0].lower_kev == 126.0 and proj.frame_duration_s == 20.0
    assert proj.meta["n_detectors"] == 2 and proj.meta["orbit"] == "non-circular"


def test_counter_clockwise_and_photopeak_by_counts(tmp_path):
    """CC rotation adds the step to the DICOM angle; unnamed windows: the photopeak has the most counts."""
    ds = fac.nm_tomo(direction="CC", starts_deg=(10.0,), radial=((200.0,),),
                     windows=(("lower", 100.0, 120.0), ("upper", 150.0, 170.0)))
    proj = read_nm_projections(fac.write([ds], tmp_path / "nm") / "im0000.dcm")
    assert proj.angles_deg.tolist() == [170.0, 125.0, 80.0, 35.0]  # 180 - (10 + k * 45)
    assert proj.photopeak_window == 1  # second window holds 100 + v > v


def test_gated_tomo_gates_and_their_sum(tmp_path):
    """GATED TOMO with 4 time slots of 250 / 250 / 250 / 150 ms: each gate keeps its own frames (value + 1000 g)
    and its share of the 20 s per view; no gate gives their sum over the whole view time."""
    fac.write([fac.nm_tomo(slot_times_ms=[250.0, 250.0, 250.0, 150.0])], tmp_path / "gated")
    assert is_projection_data(tmp_path / "gated")
    gates = read_nm_gates(tmp_path / "gated")
    assert len(gates) == 4 and [g.meta["gate"] for g in gates] == [1, 2, 3, 4]
    for g, proj in enumerate(gates):
        assert tuple(proj.counts.shape) == (2, 8, 3, 5) and proj.meta["n_gates"] == 4
        assert float(proj.counts[1, 4 + 2, 0, 0]) == 100 + 10 + 2 + 1000 * g
        assert proj.angles_deg.tolist() == [180.0, 225.0, 270.0, 315.0, 0.0, 45.0, 90.0, 135.0]
    assert [p.frame_duration_s for p in gates] == pytest.approx([20 * 250 / 900] * 3 + [20 * 150 / 900])
    total = read_nm_projections(tmp_path / "gated")
    assert total.meta["gate"] == "sum" and total.frame_duration_s == 20.0
    np.testing.assert_allclose(total.counts.numpy(), sum(p.counts.numpy() for p in gates))
    with pytest.raises(InputError, match="1..4"):
        read_nm_projections(tmp_path / "gated", gate=5)
    # ungated data has one gate
    fac.write([fac.nm_tomo()], tmp_path / "plain")
    assert len(read_nm_gates(tmp_path / "plain")) == 1
    with pytest.raises(InputError):
        read_nm_projections(tmp_path / "plain", gate=2)
    # a 0 in a (1-based) frame vector is refused instead of dropping those frames from the sum
    ds = fac.nm_tomo(slot_times_ms=[400.0, 400.0])
    ds.TimeSlotVector = [0] + list(ds.TimeSlotVector)[1:]
    fac.write([ds], tmp_path / "zero")
    with pytest.raises(FormatError, match="1-based"):
        read_nm_projections(tmp_path / "zero")
    # two RR-interval windows are refused
    ds = fac.nm_tomo(slot_times_ms=[400.0, 400.0])
    ds.RRIntervalVector = [1 + (k % 2) for k in range(int(ds.NumberOfFrames))]
    fac.write([ds], tmp_path / "rr")
    with pytest.raises(FormatError, match="RR-interval"):
        read_nm_projections(tmp_path / "rr")


def test_errors(tmp_path):
    ds = fac.nm_tomo()
    del ds.DetectorInformationSequence[1].RadialPosition
    fac.write([ds], tmp_path / "a")
    with pytest.raises(MissingTagError, match="RadialPosition"):
        read_nm_projections(tmp_path / "a")
    ds = fac.nm_tomo()
    ds.AngularViewVector = [1] * int(ds.NumberOfFrames)  # every frame claims view 1
    fac.write([ds], tmp_path / "b")
    with pytest.raises(FormatError, match="cover"):
        read_nm_projections(tmp_path / "b")
    ds = fac.nm_tomo()
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090, 0x00540100]  # TimeSliceVector
    ds.add_new(0x00540100, "US", [1] * int(ds.NumberOfFrames))
    fac.write([ds], tmp_path / "c")
    with pytest.raises(FormatError, match="dynamic"):
        read_nm_projections(tmp_path / "c")
    with pytest.raises(FormatError, match="read_nm_projections"):
        load(tmp_path / "c")
    pet = fac.slice_stack(np.ones((2, 2, 2)), **fac.pet_attrs())
    with pytest.raises(FormatError, match="TOMO"):
        read_nm_projections(fac.write(pet, tmp_path / "pet"))
