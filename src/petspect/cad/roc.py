"""ROC analysis of diagnostic scores: AUC with bootstrap intervals, thresholds, Brier score, reliability.

* AUC is the Mann-Whitney probability that a diseased subject scores above a normal one, ties counting
  one half (Hanley JA & McNeil BJ, Radiology 1982;143:29-36).
* Intervals: percentile bootstrap over subjects, resampling normals and patients separately (stratified, so
  every resample has both classes; Efron & Tibshirani 1993 ch. 13; as pROC's default, Robin X et al, BMC
  Bioinformatics 2011;12:77). Paired differences of two methods use the same resamples.
* Threshold: Youden's J (sensitivity + specificity - 1) maximised on the training folds' scores.
* Brier score: mean squared error of predicted probabilities (Brier GW, Mon Weather Rev 1950;78:1-3);
  the reliability table bins predictions into equal-width probability bins (mean predicted vs observed
  fraction; Niculescu-Mizil A & Caruana R, ICML 2005).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from petspect.errors import InputError
from petspect.evaluation.stats import DEFAULT_N_BOOT, Interval

__all__ = ["roc_auc", "roc_curve", "bootstrap_auc", "paired_auc_delta", "youden_threshold", "brier_score",
           "reliability_table", "check_binary"]


def check_binary(y: Sequence[int], score: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels as a 0/1 int array (both classes present) and scores as finite float64 of the same length."""
    yy = np.asarray(y)
    if yy.ndim != 1 or yy.size < 2 or not np.isin(yy, (0, 1)).all():
        raise InputError("labels must be a 1-D sequence of 0 (normal) and 1 (disease)")
    if not (yy == 0).any() or not (yy == 1).any():
        raise InputError("ROC analysis needs both normal (0) and diseased (1) subjects")
    if score is None:
        return yy.astype(np.int64), None
    s = np.asarray(score, dtype=np.float64)
    if s.shape != yy.shape:
        raise InputError(f"{s.size} scores for {yy.size} labels")
    if not np.isfinite(s).all():
        raise InputError("scores must be finite")
    return yy.astype(np.int64), s


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(s)
    n1 = int(y.sum())
    n0 = y.size - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def roc_auc(y: Sequence[int], score: Sequence[float]) -> float:
    """Area under the ROC curve of ``score`` (higher = more likely diseased) for labels ``y``."""
    yy, s = check_binary(y, score)
    return _auc(yy, s)


def roc_curve(y: Sequence[int], score: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """False-positive and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    yy, s = check_binary(y, score)
    thr = np.unique(s)[::-1]
    tpr = np.array([0.0] + [float(((s >= t) & (yy == 1)).sum()) / yy.sum() for t in thr])
    fpr = np.array([0.0] + [float(((s >= t) & (yy == 0)).sum()) / (yy == 0).sum() for t in thr])
    return fpr, tpr


def _strata_resamples(y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(int(seed))
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return np.concatenate([pos[rng.integers(0, pos.size, (n_boot, pos.size))],
                           neg[rng.integers(0, neg.size, (n_boot, neg.size))]], axis=1)


def _interval(value: float, samples: np.ndarray, n: int, level: float) -> Interval:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return Interval(float(value), float(lo), float(hi), int(n), level)


def bootstrap_auc(y: Sequence[int], score: Sequence[float], *, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95,
                  seed: int = 0) -> Interval:
    """AUC and its stratified percentile-bootstrap interval over subjects."""
    yy, s = check_binary(y, score)
    if int(n_boot) < 100:
        raise InputError(f"n_boot must be at least 100, got {n_boot}")
    idx = _strata_resamples(yy, int(n_boot), seed)
    # each resample holds the positives first, then the negatives (by construction)
    lab = np.r_[np.ones(int(yy.sum())), np.zeros(int((yy == 0).sum()))].astype(np.int64)
    samples = np.array([_auc(lab, s[i]) for i in idx])
    return _interval(_auc(yy, s), samples, yy.size, level)


def paired_auc_delta(y: Sequence[int], score_a: Sequence[float], score_b: Sequence[float], *,
                     n_boot: int = DEFAULT_N_BOOT, level: float = 0.95, seed: int = 0) -> Interval:
    """AUC(a) - AUC(b) on the same subjects and its interval from the same stratified resamples."""
    yy, a = check_binary(y, score_a)
    _, b = check_binary(y, score_b)
    idx = _strata_resamples(yy, int(n_boot), seed)
    lab = np.r_[np.ones(int(yy.sum())), np.zeros(int((yy == 0).sum()))].astype(np.int64)
    samples = np.array([_auc(lab, a[i]) - _auc(lab, b[i]) for i in idx])
    return _interval(_auc(yy, a) - _auc(yy, b), samples, yy.size, level)


def youden_threshold(y: Sequence[int], score: Sequence[float]) -> float:
    """The threshold maximising sensitivity + specificity - 1 (decision: ``score >= threshold``).

    Midpoints between consecutive distinct scores are candidates, so the threshold generalises to scores
    not seen; ties in J are broken towards the middle candidate.
    """
    yy, s = check_binary(y, score)
    u = np.unique(s)
    cand = np.r_[u[0] - 1.0, 0.5 * (u[1:] + u[:-1]), u[-1] + 1.0] if u.size > 1 else np.r_[u[0]]
    pos, neg = s[yy == 1], s[yy == 0]
    j = np.array([(pos >= t).mean() + (neg < t).mean() - 1.0 for t in cand])
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(cand[best[best.size // 2]])


def brier_score(y: Sequence[int], prob: Sequence[float]) -> float:
    """Mean of ``(prob - y)^2`` (0 perfect; 0.25 for a constant 0.5)."""
    yy, p = check_binary(y, prob)
    if (p < 0).any() or (p > 1).any():
        raise InputError("probabilities must lie within [0, 1]")
    return float(np.mean((p - yy) ** 2))


def reliability_table(y: Sequence[int], prob: Sequence[float], *, n_bins: int = 5) -> list[dict[str, float]]:
    """Equal-width probability bins: ``bin``, ``n``, ``mean_predicted``, ``observed_fraction`` (NaN when empty)."""
    yy, p = check_binary(y, prob)
    if int(n_bins) < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, int(n_bins) - 1)
    rows = []
    for k in range(int(n_bins)):
        m = which == k
        rows.append({"bin": f"{edges[k]:.1f}-{edges[k + 1]:.1f}", "n": int(m.sum()),
                     "mean_predicted": float(p[m].mean()) if m.any() else math.nan,
                     "observed_fraction": float(yy[m].mean()) if m.any() else math.nan})
    return rows
