"""Dataset keys: one grammar, formatted and parsed in one place (petspect.simulate.layout.DatasetKey)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petspect.errors import ConfigError
from petspect.simulate.layout import (DatasetKey, ScanLevel, level_tag, projection_key, recon_key,
                                      time_point_suffix)

# what a DatasetConfig allows: levels in (0, 100] (written to 1/1000 %), realisations >= 1, the four
# algorithms, optional NAC, and distinct positive time points in hours
thousandths = st.integers(min_value=1, max_value=100_000).map(lambda n: n / 1000)
hours = st.one_of(st.none(), st.integers(min_value=1, max_value=2_000_000).map(lambda n: n / 1000))
algorithms = st.sampled_from(["osem", "mlem", "map", "fbp"])


def writer_keys(kind: str, pct: float, n_real: int, algos: list[str], nac: bool, h: float | None) -> list[str]:
    """Every key simulate.subject writes for one level of one scan, built the way it builds them."""
    suffix = time_point_suffix(h)
    keys = []
    for r in range(n_real):
        keys.append(projection_key(kind, pct, r) + suffix)
        keys += [recon_key(kind, pct, a, True, r) + suffix for a in algos]
        if nac:
            keys.append(recon_key(kind, pct, "osem", False, r) + suffix)
    keys += ["additive_d100" + suffix, "multiplicative" + suffix, "activity" + suffix]
    return keys


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["dose", "time"]), pct=thousandths, n_real=st.integers(1, 4),
       algos=st.lists(algorithms, min_size=1, max_size=4, unique=True), nac=st.booleans(), h=hours)
def test_every_key_the_writer_makes_round_trips(kind, pct, n_real, algos, nac, h):
    for key in writer_keys(kind, pct, n_real, algos, nac, h):
        parsed = DatasetKey.parse(key)
        assert parsed.format() == key == str(parsed)
        assert DatasetKey.parse(parsed.format()) == parsed
        if parsed.level is not None and parsed.name != "additive":
            assert parsed.level == ScanLevel(kind, pct)
        assert parsed.hours == (None if h is None else pytest.approx(h, abs=0))


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["dose", "time"]), pct=thousandths, algo=algorithms, ac=st.booleans(),
       r=st.integers(0, 20), h=hours)
def test_records_round_trip(kind, pct, algo, ac, r, h):
    key = DatasetKey.recon(ScanLevel(kind, pct), algo, ac=ac, realisation=r, hours=h)
    assert DatasetKey.parse(key.format()) == key
    assert recon_key(kind, pct, algo, ac, r, hours=h) == recon_key(kind, pct, algo, ac, r) + time_point_suffix(h)


def test_known_keys_and_their_fields():
    k = DatasetKey.parse("recon_d012p500_osem_ac")  # a key the old denoise regex rejected
    assert (k.name, k.level, k.algorithm, k.ac, k.realisation, k.hours) == (
        "recon", ScanLevel("dose", 12.5), "osem", True, 0, None)
    k = DatasetKey.parse("recon_t050_map_nac_r1_h024")
    assert (k.level.source, k.level.percent, k.ac, k.realisation, k.hours) == ("time", 50.0, False, 1, 24.0)
    assert DatasetKey.parse("prompts_d010_r2").realisation == 2
    assert DatasetKey.parse("activity_h004p500").hours == 4.5
    assert DatasetKey.parse("mu_511") == DatasetKey("mu_511")
    assert DatasetKey.parse("mr_t1").name == "mr_t1"
    assert level_tag("dose", 100) == "d100" and level_tag("time", 0.5) == "t000p500"


@pytest.mark.parametrize("bad", ["recon_d10_osem_ac", "recon_d010_osem_ac_r0", "recon_d012p5_osem_ac",
                                 "recon_d010_osem", "recon_d010_OSEM_ac", "prompts_d010_h24", "foo__bar",
                                 "recon_d010p000_osem_ac", "recon_x010_osem_ac", "activity_h000", "", "Activity",
                                 "recon_d101_osem_ac", "additive_d100_r1"])
def test_keys_the_writer_cannot_make_are_refused(bad):
    with pytest.raises(ConfigError):
        DatasetKey.parse(bad)


def test_invalid_records_are_refused():
    for kwargs in (dict(name="recon"), dict(name="activity", level=ScanLevel("dose", 10)),
                   dict(name="prompts", level=ScanLevel("dose", 10), algorithm="osem"),
                   dict(name="activity", ac=False), dict(name="activity", realisation=1),
                   dict(name="activity", hours=-1.0), dict(name="recon_x")):
        with pytest.raises(ConfigError):
            DatasetKey(**kwargs)
    for pct in (0, 100.5, 12.3456, float("nan")):
        with pytest.raises(ConfigError):
            ScanLevel("dose", pct)
    with pytest.raises(ConfigError):
        ScanLevel("counts", 10)
