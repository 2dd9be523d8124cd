"""Subject-wise stratified cross-validation with one treatment for every method.

Each subject contributes one image, so splitting subjects is splitting images; folds keep the class
proportions (stratified) and are fixed by a seed, and every method of a task is run on the same folds.
In each fold a method is fitted on the training subjects only and scores the held-out ones. From the
method's *honest* training scores (see :mod:`petspect.cad.baselines`) the fold also fixes, for every method
alike:

* the decision threshold (Youden's J on the training scores), giving sensitivity and specificity of the
  held-out decisions;
* the probability map: a logistic (Platt) fit of the label on the training scores (Platt J, in Advances in
  Large Margin Classifiers, 1999), giving calibrated probabilities for the Brier score and reliability table.

Pooling the held-out scores of all folds gives one out-of-fold score per subject; AUC and its stratified
bootstrap interval are computed on them (:mod:`petspect.cad.roc`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from petspect.cad.roc import bootstrap_auc, brier_score, check_binary, paired_auc_delta, reliability_table, youden_threshold
from petspect.errors import InputError
from petspect.evaluation.stats import DEFAULT_N_BOOT, bootstrap_mean_ci

__all__ = ["stratified_folds", "OutOfFold", "cross_validate", "method_metrics", "platt"]


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) of every subject; each fold holds both classes in their proportions."""
    y, _ = check_binary(labels)
    k = int(n_folds)
    if k < 2 or np.bincount(y, minlength=2).min() < k:
        raise InputError(f"{k}-fold stratified CV needs at least {k} subjects per class, got {np.bincount(y).tolist()}")
    rng = np.random.default_rng(int(seed))
    fold = np.empty(y.size, dtype=np.int64)
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = (np.arange(idx.size) + int(rng.integers(k))) % k
    return fold


def platt(train_scores: np.ndarray, train_labels: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A monotone logistic map score -> probability fitted on training scores (scores standardised first)."""
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(train_scores, dtype=np.float64)
    mu, sd = float(s.mean()), float(s.std()) or 1.0
    lr = LogisticRegression(C=100.0).fit(((s - mu) / sd)[:, None], np.asarray(train_labels))

    def f(x: np.ndarray) -> np.ndarray:
        return lr.predict_proba(((np.asarray(x, dtype=np.float64) - mu) / sd)[:, None])[:, 1]

    return f


@dataclass
class OutOfFold:
    """Held-out results of one method over all folds (one entry per subject, cohort order).

    ``score``: the method's score; ``prob``: Platt probability; ``decision``: score >= the fold's threshold;
    ``thresholds``: per fold; ``params``: per-fold fitted parameters the method reports (e.g. SVM C).
    """

    method: str
    score: np.ndarray
    prob: np.ndarray
    decision: np.ndarray
    thresholds: list[float]
    params: list[dict[str, Any]] = field(default_factory=list)


def cross_validate(name: str, make_method: Callable[[], Any], feats: Any, folds: np.ndarray) -> OutOfFold:
    """Run one method over the folds (see the module docstring); ``make_method()`` gives a fresh instance."""
    y = np.asarray(feats.labels)
    n = y.size
    score, prob, dec = np.full(n, math.nan), np.full(n, math.nan), np.zeros(n, dtype=bool)
    thresholds, params = [], []
    for k in range(int(folds.max()) + 1):
        test, train = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
        method = make_method()
        honest = np.asarray(method.fit(feats, train), dtype=np.float64)
        if honest.shape != (train.size,):
            raise InputError(f"method {name}: fit must return one score (or NaN) per training subject")
        ok = np.isfinite(honest)  # NaN: no honest score for that subject (a network's fitting subjects)
        if np.unique(y[train][ok]).size < 2:
            raise InputError(f"method {name}: its honest training scores must cover both classes")
        s = np.asarray(method.score(feats, test), dtype=np.float64)
        thr = youden_threshold(y[train][ok], honest[ok])
        score[test], dec[test] = s, s >= thr
        prob[test] = platt(honest[ok], y[train][ok])(s)
        thresholds.append(thr)
        params.append({k2: v for k2, v in vars(method).items() if isinstance(v, (int, float, str)) and k2 != "seed"})
    return OutOfFold(name, score, prob, dec, thresholds, params)


def method_metrics(labels: np.ndarray, oof: OutOfFold, *, comparator: OutOfFold | None = None,
                   n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict[str, Any]:
    """``auc``, ``sensitivity``, ``specificity``, ``brier`` with ``_ci95`` (and ``delta_auc`` vs a comparator)."""
    y, _ = check_binary(labels, oof.score)
    auc = bootstrap_auc(y, oof.score, n_boot=n_boot, seed=seed)
    sens = bootstrap_mean_ci(oof.decision[y == 1].astype(float), n_boot=n_boot, seed=seed)
    spec = bootstrap_mean_ci((~oof.decision[y == 0]).astype(float), n_boot=n_boot, seed=seed)
    brier = bootstrap_mean_ci((oof.prob - y) ** 2, n_boot=n_boot, seed=seed)
    out: dict[str, Any] = {"auc": auc.value, "auc_ci95": auc.as_list(), "sensitivity": sens.value,
                           "sensitivity_ci95": sens.as_list(), "specificity": spec.value,
                           "specificity_ci95": spec.as_list(), "brier": brier.value, "brier_ci95": brier.as_list(),
                           "n_subjects": int(y.size)}
    assert abs(brier.value - brier_score(y, oof.prob)) < 1e-9
    if comparator is not None and comparator is not oof:
        d = paired_auc_delta(y, oof.score, comparator.score, n_boot=n_boot, seed=seed)
        out.update({"delta_auc": d.value, "delta_auc_ci95": d.as_list(), "delta_vs": comparator.method})
    out["reliability"] = reliability_table(y, oof.prob)
    return out
