"""The tuning search with a budget, and the test-split ledger."""

import json

import pytest

from petspect.errors import ConfigError, FormatError, InputError
from petspect.evaluation.protocol import LEDGER_NAME, config_hash, read_splits, read_test_split, record_test_scoring
from petspect.evaluation.tuning import Budget, epoch_choice, grid_search


def test_grid_search_finds_the_maximum_of_a_known_objective():
    res = grid_search("m", lambda p: -(p["a"] - 2.0) ** 2 - (p["b"] - 0.5) ** 2,
                      {"a": [0, 1, 2, 3], "b": [0.25, 0.5, 1.0]}, Budget(max_trials=12))
    assert res.best == {"a": 2.0, "b": 0.5} and res.best_score == 0.0
    assert len(res.trials) == 12 and res.grid_size == 12


def test_budget_caps_every_method_equally_and_is_seeded():
    calls = []
    space = {"a": list(range(10)), "b": list(range(10))}
    r1 = grid_search("m", lambda p: calls.append(p) or p["a"], space, Budget(max_trials=7, seed=3))
    r2 = grid_search("m", lambda p: p["a"], space, Budget(max_trials=7, seed=3))
    assert len(calls) == 7 and r1.grid_size == 100
    assert [t.params for t in r1.trials] == [t.params for t in r2.trials]


def test_minimise_nan_and_refusals():
    res = grid_search("m", lambda p: float("nan") if p["a"] == 0 else p["a"], {"a": [0, 1, 2]}, Budget(), maximise=False)
    assert res.best == {"a": 1.0} and res.best_score == 1.0
    with pytest.raises(InputError):
        grid_search("m", lambda p: float("nan"), {"a": [1]}, Budget())
    with pytest.raises(InputError):
        Budget(split="test")
    with pytest.raises(InputError):
        Budget(max_trials=0)
    with pytest.raises(InputError):
        grid_search("m", lambda p: 1.0, {"a": []}, Budget())


def test_epoch_choice_reads_the_validation_history():
    hist = [{"epoch": 1, "val_psnr": 20.0}, {"epoch": 2, "val_psnr": 25.0}, {"epoch": 3, "val_psnr": 24.0}]
    r = epoch_choice("unet", hist)
    assert r.best == {"epoch": 2.0} and r.best_score == 25.0 and r.grid_size == 3
    with pytest.raises(InputError):
        epoch_choice("unet", [{"epoch": 1, "train_loss": 1.0}])


def _dataset(tmp_path, test=("s4", "s5")):
    d = {"training": [{"subject": "s0"}, {"subject": "s1"}], "validation": [{"subject": "s2"}],
         "test": [{"subject": s} for s in test]}
    (tmp_path / "dataset.json").write_text(json.dumps(d))
    return tmp_path


def test_splits_hide_the_test_split_and_refuse_overlaps(tmp_path):
    sp = read_splits(_dataset(tmp_path))
    assert sp.subjects("training") == ["s0", "s1"] and sp.n_test == 2 and not hasattr(sp, "test")
    _dataset(tmp_path, test=("s1",))
    with pytest.raises(FormatError):
        read_splits(tmp_path)


def test_ledger_counts_scorings_per_configuration(tmp_path):
    _dataset(tmp_path)
    cfg = {"methods": ["gaussian", "unet"], "fwhm": 6.0}
    e, s1 = read_test_split(tmp_path, cfg, "first look")
    assert [x["subject"] for x in e] == ["s4", "s5"] and s1.test_scored == 1 and s1.all_configurations == 1
    _, s2 = read_test_split(tmp_path, dict(reversed(list(cfg.items()))), "second look")  # same config, other order
    assert s2.test_scored == 2 and s2.config_hash == s1.config_hash == config_hash(cfg)
    s3 = record_test_scoring(tmp_path, {**cfg, "fwhm": 7.0}, "retuned", ["s4"])
    assert s3.test_scored == 1 and s3.all_configurations == 2
    ledger = json.loads((tmp_path / LEDGER_NAME).read_text())
    assert len(ledger["configurations"][s1.config_hash]["reads"]) == 2


def test_corrupt_ledger_is_not_replaced(tmp_path):
    _dataset(tmp_path)
    (tmp_path / LEDGER_NAME).write_text("{not json")
    with pytest.raises(FormatError):
        read_test_split(tmp_path, {"a": 1}, "x")
    assert (tmp_path / LEDGER_NAME).read_text() == "{not json"


def test_empty_test_split_is_an_error(tmp_path):
    _dataset(tmp_path, test=())
    with pytest.raises(ConfigError):
        read_test_split(tmp_path, {"a": 1}, "x")
