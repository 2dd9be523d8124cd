"""Models on radiomic features: penalised logistic regression and gradient boosting, assessed by nested,
subject-wise cross-validation (scikit-learn).

The outer folds estimate performance; hyper-parameters are chosen inside each outer training fold by an
inner cross-validation, so the outer test fold is never seen while tuning (Varma S, Simon R, BMC
Bioinformatics 2006;7:91). Features that are non-finite or constant in a training fold are dropped inside
the pipeline (never using the test fold). ``groups`` keeps all samples of one subject in one fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from petspect.errors import ConfigError, InputError

__all__ = ["FeatureModel", "NestedCVResult", "nested_cv", "feature_matrix", "simulate_lesion_cohort"]


class FeatureModel(str, Enum):
    LOGISTIC = "logistic"
    GRADIENT_BOOSTING = "gbm"


@dataclass
class NestedCVResult:
    """Outer-fold AUCs, their mean with a t-interval, the pooled out-of-fold probabilities and the chosen
    hyper-parameters per outer fold."""

    model: FeatureModel
    fold_auc: list[float]
    auc: float
    auc_ci95: tuple[float, float]
    oof_probability: np.ndarray
    chosen: list[dict] = field(default_factory=list)


def feature_matrix(rows: list[dict[str, float]]) -> tuple[np.ndarray, list[str]]:
    """Stack feature dicts (one per subject) into (n_subjects, n_features) over the tags all of them have."""
    if not rows:
        raise InputError("no feature rows")
    tags = [t for t in rows[0] if all(t in r for r in rows)]
    return np.array([[r[t] for t in tags] for r in rows], dtype=np.float64), tags


def _pipeline(model: FeatureModel, seed: int):
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    class _DropBad(BaseEstimator, TransformerMixin):
        """Drop columns that are non-finite or constant in the training data."""

        def fit(self, x, y=None):
            x = np.asarray(x, dtype=np.float64)
            finite = np.all(np.isfinite(x), axis=0)
            spread = np.zeros(x.shape[1], bool)
            spread[finite] = np.ptp(x[:, finite], axis=0) > 0
            self.keep_ = finite & spread
            if not self.keep_.any():
                raise InputError("no feature is finite and non-constant in a training fold")
            return self

        def transform(self, x):
            x = np.asarray(x, dtype=np.float64)[:, self.keep_]
            return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    if model is FeatureModel.LOGISTIC:
        est = LogisticRegression(solver="lbfgs", max_iter=2000)  # L2 penalty
        grid = {"clf__C": [0.01, 0.1, 1.0, 10.0]}
    else:
        est = GradientBoostingClassifier(random_state=seed, subsample=0.8, max_features="sqrt")
        grid = {"clf__n_estimators": [50, 150], "clf__max_depth": [1, 2], "clf__learning_rate": [0.05, 0.2]}
    return Pipeline([("drop", _DropBad()), ("scale", StandardScaler()), ("clf", est)]), grid


def nested_cv(x: np.ndarray, y: np.ndarray, model: FeatureModel | str = FeatureModel.LOGISTIC, *,
              groups: np.ndarray | None = None, outer_folds: int = 5, inner_folds: int = 3, seed: int = 0
              ) -> NestedCVResult:
    """Nested cross-validated ROC AUC of a model on features.

    Parameters
    ----------
    x : ndarray (n_samples, n_features)
    y : ndarray (n_samples,) of 0/1
    groups : ndarray (n_samples,), optional
        Subject of each sample; folds never split a subject.
    """
    from scipy import stats
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold

    try:
        model = FeatureModel(model)
    except ValueError:
        raise ConfigError(f"unknown feature model {model!r}; known: {[m.value for m in FeatureModel]}") from None
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if x.ndim != 2 or len(x) != len(y):
        raise InputError(f"x must be (n_samples, n_features) with one label per sample, got {x.shape}, {y.shape}")
    if set(np.unique(y)) != {0, 1}:
        raise InputError("y must hold both classes 0 and 1")
    if np.bincount(y).min() < outer_folds:
        raise InputError(f"each class needs at least outer_folds={outer_folds} samples")
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    outer = StratifiedGroupKFold(outer_folds, shuffle=True, random_state=seed)
    oof = np.full(len(y), np.nan)
    aucs, chosen = [], []
    for k, (tr, te) in enumerate(outer.split(x, y, g)):
        pipe, grid = _pipeline(model, seed + k)
        inner = (StratifiedGroupKFold(inner_folds, shuffle=True, random_state=seed + 100 + k) if groups is not None
                 else StratifiedKFold(inner_folds, shuffle=True, random_state=seed + 100 + k))
        search = GridSearchCV(pipe, grid, scoring="roc_auc", cv=inner, n_jobs=1)
        if groups is not None:
            search.fit(x[tr], y[tr], groups=g[tr])
        else:
            search.fit(x[tr], y[tr])
        p = search.predict_proba(x[te])[:, 1]
        oof[te] = p
        aucs.append(float(roc_auc_score(y[te], p)) if len(np.unique(y[te])) == 2 else math.nan)
        chosen.append({k2.removeprefix("clf__"): v for k2, v in search.best_params_.items()})
    a = np.array([v for v in aucs if math.isfinite(v)])
    mean = float(a.mean())
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan
    return NestedCVResult(model, aucs, mean, (mean - half, mean + half), oof, chosen)


def simulate_lesion_cohort(n: int, *, seed: int, size: int = 24, voxel_mm: float = 4.0
                           ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Small PET-like lesions for examples and tests: class 1 lesions have more heterogeneous uptake than
    class 0 and half of them a cold (necrotic) core, at random size, contrast and noise; SUV units, blurred by a 6 mm PSF.

    Returns
    -------
    images, masks : lists of ndarray (size, size, size)
    labels : ndarray (n,) of 0/1
    """
    from scipy.ndimage import gaussian_filter

    if n < 2:
        raise InputError("simulate_lesion_cohort needs n >= 2")
    images, masks, labels = [], [], []
    c = (size - 1) / 2
    zz, yy, xx = np.meshgrid(*[(np.arange(size) - c) * voxel_mm] * 3, indexing="ij")
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        label = i % 2
        r_mm = rng.uniform(12, 30)
        axes = r_mm * rng.uniform(0.8, 1.2, 3)
        rr = np.sqrt((zz / axes[0]) ** 2 + (yy / axes[1]) ** 2 + (xx / axes[2]) ** 2)
        inside = rr <= 1
        suv = rng.uniform(4, 12)
        tex = gaussian_filter(rng.standard_normal((size,) * 3), rng.uniform(0.7, 1.5))
        tex /= tex.std()
        het = rng.uniform(0.05, 0.2) + 0.06 * label
        lesion = suv * (1 + het * tex)
        if label and rng.random() < 0.5:
            lesion *= np.where(rr < rng.uniform(0.3, 0.5), rng.uniform(0.4, 0.8), 1.0)
        img = np.where(inside, lesion, rng.uniform(0.8, 1.5))
        img = gaussian_filter(img, 6.0 / 2.3548 / voxel_mm)
        img = np.clip(img + rng.normal(0, 0.15 * np.sqrt(np.clip(img, 0, None)), img.shape), 0, None)
        images.append(img)
        masks.append(inside)
        labels.append(label)
    return images, masks, np.array(labels)
