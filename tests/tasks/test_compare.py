"""The denoising study on the protocol: tuned on validation, scored once on test with intervals, CHO, ledger."""

from __future__ import annotations

import json
import math

import pytest

from petspect.evaluation import Budget
from petspect.tasks.baselines import tune_baselines
from petspect.tasks.compare import (LOW, REFERENCE, best_classical, compare_methods, lesion_absent_case, study_data,
                                    tune_network, validation_cases)
from petspect.tasks.denoise import DenoiseTask

from conftest import make_dataset


@pytest.fixture(scope="module")
def cohort6(tmp_path_factory):
    """Six test subjects (12 lesions): enough lesion ROIs for a 5-channel CHO."""
    return make_dataset(tmp_path_factory.mktemp("cohort6"), n_train=1, n_val=2, n_test=6, seed=3)


def test_study_scores_every_method_with_intervals_cho_and_a_ledger(cohort6):
    task = DenoiseTask()
    cases = validation_cases(cohort6, task)
    assert [c.subject for c in cases] == ["sub-001", "sub-002"] and all(c.ct is not None for c in cases)
    tuned = tune_baselines(cases, budget=Budget(max_trials=3),
                           grids={"gaussian": {"fwhm_mm": (0.0, 6.0, 9.0)}, "nlm": {"h_rel": (0.1, 0.3, 0.6)},
                                  "ct_guided": {"fwhm_mm": (6.0, 9.0), "hu_sigma": (50.0, 500.0)}})
    assert set(tuned) == {"gaussian", "nlm", "ct_guided"}  # no prompts: no MAP re-reconstruction
    cfg = {"case": "unit test", "params": {n: t.params for n, t in tuned.items()}}
    comp = compare_methods(cohort6, task, baselines=tuned, models={}, scoring_config=cfg, curves=False, n_boot=300)
    m = comp.metrics
    assert comp.subjects == [f"sub-{i:03d}" for i in range(3, 9)]
    assert comp.comparator == best_classical(tuned) and comp.comparator in tuned
    for method in (LOW, "gaussian", "nlm", "ct_guided"):
        row = m[method]
        lo, hi = row["psnr_db_ci95"]
        assert lo <= row["psnr_db"] <= hi
        for key in ("suvmean_bias_pct", "suvmax_bias_pct", "total_activity_ratio", "cho_dprime"):
            assert math.isfinite(row[key]), (method, key)
        assert len(row["cho_dprime_ci95"]) == 2
    assert m[LOW]["total_activity_ratio"] == pytest.approx(1.0)
    assert "delta_psnr_db_ci95" in m[LOW] and "delta_psnr_db" not in m[comp.comparator]
    # the tuned Gaussian beats the noisy input on PSNR with a paired interval above 0
    assert m["gaussian"]["psnr_db"] > m[LOW]["psnr_db"]
    assert m[REFERENCE]["total_activity_ratio"] == pytest.approx(1.0, abs=0.05)
    assert comp.scoring["test_scored"] == 1 and len(comp.scoring["config_hash"]) == 16
    again = compare_methods(cohort6, task, baselines=tuned, models={}, scoring_config=cfg, curves=False,
                            detectability=False, n_boot=200)
    assert again.scoring["test_scored"] == 2
    ledger = json.loads((cohort6 / "test_ledger.json").read_text())
    assert len(ledger["configurations"]) == 1


def test_lesion_absent_twin_from_dataset_keys(cohort6):
    import json as _json

    data = study_data(cohort6, DenoiseTask())
    entry = _json.loads((cohort6 / "dataset.json").read_text())["test"][0]
    twin = lesion_absent_case(entry, data)
    assert twin is not None and twin.reference is None and twin.low.shape == (8, 32, 32)
    assert lesion_absent_case({k: v for k, v in entry.items() if not k.endswith("lesion_absent")}, data) is None


def test_network_options_are_chosen_on_validation(tiny_cohort, tiny_model):
    from petspect.train import load_model

    model = load_model(tiny_model)
    choice = tune_network(model, validation_cases(tiny_cohort, DenoiseTask()))
    assert set(choice.scores) == {"plain", "plain+preserve_total", "tta", "tta+preserve_total"}
    best = max(choice.scores, key=choice.scores.get)
    assert choice.tta == best.startswith("tta") and choice.preserve_total == best.endswith("preserve_total")
