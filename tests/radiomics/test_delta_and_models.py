"""Delta radiomics and nested cross-validated models on features."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.errors import ConfigError, InputError
from petspect.radiomics import Family, RadiomicsSettings, extract_features, load_settings
from petspect.radiomics.delta import delta_features, extract_delta
from petspect.radiomics.models import feature_matrix, nested_cv, simulate_lesion_cohort

FAST = RadiomicsSettings(name="fast", bin_width=0.5, resegment_range=(0.0, float("inf")),
                         families=(Family.STATISTICS, Family.HISTOGRAM, Family.GLCM))


def test_delta_of_a_scaled_image_is_the_scale_for_linear_features():
    imgs, masks, _ = simulate_lesion_cohort(2, seed=3, size=16)
    s = load_settings("pet-suv-fbs0.25")
    d = extract_delta(imgs[0], masks[0], (4, 4, 4), 0.5 * imgs[0], masks[0], (4, 4, 4), s)
    assert d["delta_stat_mean"] == pytest.approx(-0.5)
    assert d["delta_stat_max"] == pytest.approx(-0.5)
    assert d["delta_morph_volume"] == pytest.approx(0.0)
    a = extract_features(imgs[0], masks[0], (4, 4, 4), s)
    assert delta_features(a, a, "absolute")["delta_stat_var"] == 0.0


def test_delta_refuses_different_settings():
    imgs, masks, _ = simulate_lesion_cohort(2, seed=3, size=16)
    a = extract_features(imgs[0], masks[0], (4, 4, 4), FAST)
    b = extract_features(imgs[0], masks[0], (4, 4, 4), load_settings("pet-suv-fbs0.25"))
    with pytest.raises(InputError, match="same settings"):
        delta_features(a, b)


@pytest.fixture(scope="module")
def cohort():
    imgs, masks, y = simulate_lesion_cohort(30, seed=1, size=16)
    rows = [extract_features(i, m, (4, 4, 4), FAST).values for i, m in zip(imgs, masks)]
    x, tags = feature_matrix(rows)
    return x, y, tags


def test_nested_cv_learns_the_heterogeneity_signal(cohort):
    x, y, _ = cohort
    res = nested_cv(x, y, "logistic", outer_folds=3, inner_folds=3, seed=0)
    assert len(res.fold_auc) == 3 and res.auc > 0.6
    assert np.all(np.isfinite(res.oof_probability)) and all("C" in c for c in res.chosen)


def test_nested_cv_on_shuffled_labels_is_near_chance(cohort):
    x, y, _ = cohort
    rng = np.random.default_rng(0)
    aucs = [nested_cv(x, rng.permutation(y), "logistic", outer_folds=3, seed=s).auc for s in range(3)]
    assert abs(np.mean(aucs) - 0.5) < 0.2


def test_gradient_boosting_and_subject_groups(cohort):
    x, y, _ = cohort
    groups = np.repeat(np.arange(15), 2)  # two lesions per subject: never split across folds
    res = nested_cv(x, y, "gbm", groups=groups, outer_folds=3, inner_folds=2, seed=0)
    assert 0.0 <= res.auc <= 1.0 and len(res.chosen) == 3


def test_nested_cv_bad_inputs(cohort):
    x, y, _ = cohort
    with pytest.raises(InputError, match="both classes"):
        nested_cv(x, np.zeros_like(y))
    with pytest.raises(InputError):
        nested_cv(x[:, 0], y)
    with pytest.raises(ConfigError, match="gbm"):
        nested_cv(x, y, "svm")
