"""Diagnostic cohorts and baselines: determinism, variety, the image model's physics, regions, the methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.cad.baselines import (FixedScore, NormalDatabase, RegionalSVM, SummedScoreMethod, ZScoreMethod,
                                    task_features)
from petspect.cad.cohort import CadTask, CohortConfig, image_model, make_cohort, sample_subjects
from petspect.cad.crossval import cross_validate, method_metrics, stratified_folds
from petspect.cad.regions import brain_regions
from petspect.errors import InputError

TINY = dict(fine_voxel_mm=4.0, factor=2)


@pytest.fixture(scope="module")
def pd_cohort():
    return make_cohort("pd", CohortConfig(n_normal=6, n_disease=6, severity_range=(0.8, 1.0), seed=3, **TINY),
                       progress=False)


def test_sampling_is_seeded_and_varied():
    cfg = CohortConfig(n_normal=8, n_disease=8, seed=1, **TINY)
    a, b = sample_subjects("ad", cfg), sample_subjects("ad", cfg)
    assert a == b
    c = sample_subjects("ad", CohortConfig(n_normal=8, n_disease=8, seed=2, **TINY))
    assert [s.seed for s in a] != [s.seed for s in c]
    assert [s.label for s in a] == [0] * 8 + [1] * 8
    assert all(s.severity == 0 for s in a[:8]) and all(0.1 <= s.severity <= 0.9 for s in a[8:])
    assert len({s.psf_fwhm_mm for s in a}) == 16 and len({s.peak_counts for s in a}) == 16
    assert all(4.5 <= s.psf_fwhm_mm <= 7.0 for s in a)
    mpi = sample_subjects("mpi", cfg)
    assert {s.territory for s in mpi[8:]} <= {"lad", "lcx", "rca"} and all(s.territory is None for s in mpi[:8])


def test_image_model_preserves_mean_and_adds_poisson_noise():
    """Blur and block averaging keep the mean (away from the edges); the noise variance at peak_counts
    is Poisson: var(counts) = mean(counts) before the post-filter."""
    x = torch.full((16, 16, 16), 1000.0)
    y = image_model(x, (2.0, 2.0, 2.0), psf_fwhm_mm=0.0, factor=2, peak_counts=400.0, post_fwhm_mm=0.0, noise_seed=0)
    assert y.shape == (8, 8, 8)
    assert float(y.mean()) == pytest.approx(1000.0, rel=0.01)
    rel_var = float(y.var()) / 1000.0 ** 2
    assert rel_var == pytest.approx(1 / 400.0, rel=0.2)
    z = image_model(x, (2.0, 2.0, 2.0), psf_fwhm_mm=0.0, factor=2, peak_counts=400.0, post_fwhm_mm=8.0, noise_seed=0)
    assert float(z[2:-2, 2:-2, 2:-2].var()) < 0.3 * float(y.var())
    same = image_model(x, (2.0, 2.0, 2.0), psf_fwhm_mm=0.0, factor=2, peak_counts=400.0, post_fwhm_mm=0.0, noise_seed=0)
    assert torch.equal(y, same)
    with pytest.raises(InputError):
        image_model(x, (2.0,) * 3, psf_fwhm_mm=1.0, factor=2, peak_counts=0.0, post_fwhm_mm=0.0, noise_seed=0)


def test_brain_regions_are_anatomical(pd_cohort):
    r = brain_regions(pd_cohort.volumes[0])
    for n in ("caudate_left", "putamen_right_posterior", "cerebellum", "occipital_dat", "posterior_cingulate"):
        assert r[n].any() and not (r[n] & ~r.brain).sum() > 0.5 * r[n].sum()
    with pytest.raises(InputError):
        r["hippocampus"]


def test_severe_pd_loses_striatal_binding(pd_cohort):
    """Severe PD (severity 0.8-1: most of the putamen's specific binding gone) has a lower putamen SBR
    than every normal here, and the normal SBR is positive (striatum above occipital)."""
    f = task_features(pd_cohort)
    sbr = -f.clinical["sbr"]
    assert (sbr[f.labels == 0] > 0).all()
    assert sbr[f.labels == 1].max() < sbr[f.labels == 0].min()
    assert f.maps.shape[0] == 12 and f.target.dtype == bool and f.target.any()
    assert f.cnn_inputs.ndim == 4 and f.cnn_inputs.dtype == np.float32


def test_normal_database_loo_matches_explicit():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 0.1, size=(7, 20))
    db = NormalDatabase(x)
    loo = db.z_loo()
    for i in range(7):
        other = NormalDatabase(np.delete(x, i, axis=0))
        other._floor = db._floor
        assert loo[i] == pytest.approx(other.z(x[i:i + 1])[0], rel=1e-9)
    with pytest.raises(InputError):
        NormalDatabase(x[:2])


def test_methods_run_over_folds_and_separate_severe_disease(pd_cohort):
    f = task_features(pd_cohort)
    folds = stratified_folds(f.labels, 3, seed=0)
    for name, make in {"sbr": lambda: FixedScore("sbr"), "zscore": ZScoreMethod, "svm_regional": RegionalSVM}.items():
        oof = cross_validate(name, make, f, folds)
        assert np.isfinite(oof.score).all() and ((oof.prob >= 0) & (oof.prob <= 1)).all()
        m = method_metrics(f.labels, oof, n_boot=200)
        assert m["auc"] >= 0.8, name
        assert 0 <= m["brier"] < 0.5 and m["sensitivity_ci95"][0] <= m["sensitivity"] <= m["sensitivity_ci95"][1]


def test_mpi_features_and_summed_score():
    c = make_cohort("mpi", CohortConfig(n_normal=6, n_disease=3, severity_range=(1.0, 1.0), seed=4, fine_voxel_mm=4.0,
                                        factor=2), progress=False)
    f = task_features(c)
    assert f.maps.shape == (9, 16 * 36) and f.regional.shape == (9, 17)
    assert f.cnn_inputs.shape[1:] == (16, 16, 16)
    folds = stratified_folds(f.labels, 2, seed=0)
    oof = cross_validate("sss", SummedScoreMethod, f, folds)
    assert ((oof.score >= 0) & (oof.score <= 68)).all()
    # 70 % uptake loss: every patient's summed score exceeds the normals' mean
    assert oof.score[f.labels == 1].min() > oof.score[f.labels == 0].mean()


def test_bad_config():
    with pytest.raises(InputError):
        CohortConfig(n_normal=1, n_disease=5)
    with pytest.raises(InputError):
        CohortConfig(severity_range=(0.5, 0.2))
    with pytest.raises(ValueError):
        CadTask("alzheimer")
