"""Intervals over subjects: percentile bootstrap of a mean and of a paired difference.

The unit of resampling is the subject (or, for a detector, whatever independent unit the study names):
metrics of one subject are correlated across voxels and lesions, so only subjects are exchangeable.
A method "beats" another only when the 95 % interval of the paired difference (same subjects, same
resamples) lies entirely on the better side of 0 (Efron & Tibshirani, An Introduction to the
Bootstrap, 1993, ch. 13, percentile interval).

Keys written into metric tables (``method -> metric -> value``):

* ``<metric>``: the mean over subjects;
* ``<metric>_ci95``: ``[low, high]``, the 95 % percentile-bootstrap interval of that mean;
* ``delta_<metric>``, ``delta_<metric>_ci95``: the mean paired difference (method minus the comparator)
  and its interval, on the subjects where both are finite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from petspect.errors import InputError

__all__ = ["Better", "Interval", "bootstrap_mean_ci", "paired_delta_ci", "beats", "summarise_methods",
           "DEFAULT_N_BOOT"]

#: bootstrap resamples (the percentile interval's Monte Carlo error is well below its width with 2000)
DEFAULT_N_BOOT = 2000


class Better(str, Enum):
    """Direction of "better" for a metric."""

    HIGHER = "higher"
    LOWER = "lower"
    ABS_LOWER = "abs-lower"  # closest to 0 (a signed bias)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap interval.

    Attributes
    ----------
    value : float
        The mean over the units (subjects).
    low, high : float
        Interval bounds (NaN with fewer than 2 units).
    n : int
        Number of units with a finite value.
    level : float
        Coverage (0.95).
    """

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def excludes_zero(self) -> bool:
        """True when the whole interval is above or below 0 (and finite)."""
        return math.isfinite(self.low) and math.isfinite(self.high) and (self.low > 0 or self.high < 0)

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def _check(n_boot: int, level: float) -> None:
    if int(n_boot) < 100:
        raise InputError(f"n_boot must be at least 100, got {n_boot}")
    if not 0.5 <= float(level) < 1.0:
        raise InputError(f"level must be in [0.5, 1), got {level}")


def bootstrap_mean_ci(values: Sequence[float], *, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95,
                      seed: int = 0) -> Interval:
    """Mean of ``values`` (one per subject) and its percentile-bootstrap interval.

    Parameters
    ----------
    values : sequence of float
        One value per subject; NaN values are dropped (a subject without lesions has no lesion bias).
    n_boot : int
        Resamples (>= 100).
    level : float
        Coverage, e.g. 0.95.
    seed : int
        Seed of the resampling (numpy Generator).

    Returns
    -------
    Interval
        NaN bounds with fewer than two finite values; NaN everywhere with none.
    """
    _check(n_boot, level)
    a = _finite(values)
    if a.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    if a.size == 1:
        return Interval(float(a[0]), math.nan, math.nan, 1, level)
    rng = np.random.default_rng(int(seed))
    idx = rng.integers(0, a.size, size=(int(n_boot), a.size))
    means = a[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(a.mean()), float(lo), float(hi), int(a.size), level)


def paired_delta_ci(a: Sequence[float], b: Sequence[float], *, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95,
                    seed: int = 0) -> Interval:
    """Mean paired difference ``a - b`` over subjects and its bootstrap interval.

    Parameters
    ----------
    a, b : sequence of float, same length
        The two methods' values on the same subjects, in the same order; pairs with a NaN are dropped.
    n_boot, level, seed
        As :func:`bootstrap_mean_ci`.
    """
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"paired values need the same subjects: {x.size} and {y.size} values")
    keep = np.isfinite(x) & np.isfinite(y)
    return bootstrap_mean_ci(x[keep] - y[keep], n_boot=n_boot, level=level, seed=seed)


def beats(a: Sequence[float], b: Sequence[float], better: Better | str, *, n_boot: int = DEFAULT_N_BOOT,
          level: float = 0.95, seed: int = 0) -> bool:
    """True when method ``a`` is better than ``b`` with the paired interval excluding 0.

    For ``abs-lower`` metrics (signed biases) the paired quantity is ``|b| - |a|`` (positive: ``a`` is
    closer to 0).
    """
    better = Better(better)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if better is Better.HIGHER:
        d = paired_delta_ci(x, y, n_boot=n_boot, level=level, seed=seed)
    elif better is Better.LOWER:
        d = paired_delta_ci(y, x, n_boot=n_boot, level=level, seed=seed)
    else:
        d = paired_delta_ci(np.abs(y), np.abs(x), n_boot=n_boot, level=level, seed=seed)
    return d.excludes_zero() and d.low > 0


def summarise_methods(per_subject: Sequence[Mapping[str, Mapping[str, float]]], *, comparator: str | None = None,
                      delta_for: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
                      n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict[str, dict[str, object]]:
    """Means with intervals for every method and metric, and paired deltas against ``comparator``.

    Parameters
    ----------
    per_subject : sequence of {method: {metric: value}}
        One mapping per subject, in a fixed subject order.
    comparator : str, optional
        The method every other method is compared with (e.g. the best classical one); its own row gets
        no deltas.
    delta_for : sequence of str, optional
        Methods that get ``delta_<metric>`` and ``delta_<metric>_ci95`` (default: all but the comparator).
    metrics : sequence of str, optional
        Metrics that get intervals and deltas (default: every metric seen).
    n_boot, seed
        Bootstrap resamples and seed (the same resample indices for every method of a metric, so intervals
        of different methods are computed on the same pseudo-cohorts).

    Returns
    -------
    dict method -> {metric: mean, metric_ci95: [low, high], delta_metric: ..., delta_metric_ci95: [...]}
    """
    methods = list(dict.fromkeys(m for s in per_subject for m in s))
    out: dict[str, dict[str, object]] = {}

    def col(method: str, metric: str) -> np.ndarray:
        return np.array([float(s.get(method, {}).get(metric, math.nan)) for s in per_subject], dtype=np.float64)

    for m in methods:
        keys = list(dict.fromkeys(k for s in per_subject for k in s.get(m, {})))
        row: dict[str, object] = {}
        for k in keys:
            values = col(m, k)
            if not np.isfinite(values).any():
                continue
            if metrics is not None and k not in metrics:
                row[k] = float(np.nanmean(values))
                continue
            iv = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
            row[k], row[f"{k}_ci95"] = iv.value, iv.as_list()
            wanted = delta_for if delta_for is not None else [x for x in methods if x != comparator]
            if comparator is not None and m != comparator and m in wanted:
                base = col(comparator, k)
                if np.isfinite(base).any():
                    d = paired_delta_ci(values, base, n_boot=n_boot, seed=seed)
                    row[f"delta_{k}"], row[f"delta_{k}_ci95"] = d.value, d.as_list()
        out[m] = row
    return out
