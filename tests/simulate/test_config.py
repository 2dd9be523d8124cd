import pytest

from petspect.errors import ConfigError
from petspect.simulate.config import config_from_dict, config_to_toml, load_config
from petspect.simulate.layout import level_tag, recon_key, split_subjects
from petspect.simulate.presets import PRESETS, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_round_trip_through_toml(name, tmp_path):
    cfg = get_preset(name)
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path) == cfg


def test_unknown_keys_and_bad_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"subjectz": 3})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"recon": {"iterationz": 3}})
    with pytest.raises(ConfigError, match="include 100"):
        config_from_dict({"dose_percents": [50, 10]})
    with pytest.raises(ConfigError):
        config_from_dict({"dose_percents": [100, 0]})
    with pytest.raises(ConfigError, match="realisations"):
        config_from_dict({"dose_percents": [100, 60], "realisations": 2})
    with pytest.raises(ConfigError):
        config_from_dict({"recon": {"algorithms": ["sart"]}})
    bad = tmp_path / "bad.toml"
    bad.write_text("subjects = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_level_and_recon_keys():
    assert level_tag("dose", 10) == "d010"
    assert level_tag("time", 50.0) == "t050"
    assert recon_key("dose", 10, "osem") == "recon_d010_osem_ac"
    assert recon_key("dose", 5, "osem", ac=False, realisation=1) == "recon_d005_osem_nac_r1"
    assert level_tag("dose", 2.5).startswith("d") and level_tag("dose", 2.5) != level_tag("dose", 2.0)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 10])
def test_split_is_a_partition_with_every_split_used_when_possible(n):
    subs = [f"s{i}" for i in range(n)]
    sp = split_subjects(subs, 0.6, 0.2)
    joined = sp["training"] + sp["validation"] + sp["test"]
    assert joined == subs
    assert len(sp["training"]) >= 1
    if n >= 3:
        assert sp["validation"] and sp["test"]
