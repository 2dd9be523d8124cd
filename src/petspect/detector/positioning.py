"""Event positioning baselines for monolithic detectors: Anger logic, gradient tree boosting, kNN.

Every estimator has ``fit(signals, targets_mm, mask)`` and ``predict(signals) -> (n, 3)`` in mm
``(x, y, doi)``; ``mask`` (n, 3) says which labels are known (fan-beam calibration knows one
coordinate per fan), and each coordinate is fitted on the events that know it.

References: Anger, Rev Sci Instrum 1958 (centre of gravity); Lerche et al, NIM A 2005 (depth from
the width of the light distribution); van Dam et al, IEEE TNS 2011 (k-nearest neighbours);
Muller et al, IEEE TRPMS 2018 (gradient tree boosting).
"""

from __future__ import annotations

import abc

import numpy as np

from petspect.detector.photodetector import SiPMArray
from petspect.errors import InputError

AXES = ("x", "y", "doi")


def _check(signals: np.ndarray, targets: np.ndarray | None = None, mask: np.ndarray | None = None):
    signals = np.asarray(signals, dtype=np.float32)
    if signals.ndim != 3:
        raise InputError(f"signals must be (n, n_y, n_x), got shape {signals.shape}")
    if targets is None:
        return signals, None, None
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != (signals.shape[0], 3):
        raise InputError(f"targets must be (n, 3) = (x, y, doi) mm, got {targets.shape}")
    mask = np.isfinite(targets) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(targets))
    if mask.shape != targets.shape:
        raise InputError("mask must have the shape of targets")
    return signals, targets, mask


def normalised_features(signals: np.ndarray) -> np.ndarray:
    """Per-event features: pixel signals divided by their sum, and the log of the sum.

    Parameters
    ----------
    signals : numpy.ndarray, shape (n, n_y, n_x)

    Returns
    -------
    numpy.ndarray, shape (n, n_y * n_x + 1), float32
    """
    flat = np.asarray(signals, dtype=np.float32).reshape(len(signals), -1)
    total = np.maximum(flat.sum(axis=1, keepdims=True), 1.0)
    return np.concatenate([flat / total, np.log(total) / 10.0], axis=1).astype(np.float32)


def centre_of_gravity(signals: np.ndarray, sipm: SiPMArray) -> np.ndarray:
    """Anger centre of gravity and the RMS width of the light distribution.

    Parameters
    ----------
    signals : numpy.ndarray, shape (n, n_y, n_x)
    sipm : SiPMArray

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        ``(cog_x, cog_y, width)`` (mm); ``width = sqrt(var_x + var_y)`` of the signal-weighted pixel
        centres. The CoG is compressed towards the centre near the edges (light lost at the
        lateral faces and the finite array), and the width shrinks with depth.
    """
    s = np.asarray(signals, dtype=np.float64)
    cx, cy = sipm.centres_mm()
    total = np.maximum(s.sum(axis=(1, 2)), 1e-12)
    wx, wy = s.sum(axis=1), s.sum(axis=2)  # (n, n_x), (n, n_y)
    mx, my = wx @ cx / total, wy @ cy / total
    var = (wx @ cx**2 + wy @ cy**2) / total - mx**2 - my**2
    return np.stack([mx, my, np.sqrt(np.clip(var, 0.0, None))], axis=1)


class AngerLogic:
    """Centre of gravity with a linear calibration per axis; depth from the light-spread width.

    ``x = a_x * cog_x + b_x`` (and y) and ``doi = a_d * width + b_d`` fitted by least squares on the
    calibration events; the non-linearity at the edges is *not* corrected (that is Anger logic).
    """

    name = "anger"

    def __init__(self, sipm: SiPMArray) -> None:
        self.sipm = sipm
        self.coef_ = None

    def fit(self, signals: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> AngerLogic:
        signals, targets, mask = _check(signals, targets, mask)
        cog = centre_of_gravity(signals, self.sipm)
        coef = np.zeros((3, 2))
        for i in range(3):
            m = mask[:, i]
            if m.sum() < 2:
                raise InputError(f"Anger calibration needs labelled events along {AXES[i]}")
            coef[i] = np.polyfit(cog[m, i], targets[m, i], 1)
        self.coef_ = coef
        return self

    def predict(self, signals: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise InputError("AngerLogic is not fitted")
        cog = centre_of_gravity(_check(signals)[0], self.sipm)
        return cog * self.coef_[:, 0] + self.coef_[:, 1]

    def state(self) -> dict:
        """Fitted parameters as plain lists (for JSON)."""
        return {"coef": self.coef_.tolist()}


class _PerAxis(abc.ABC):
    """Fit scikit-learn regressors on the events that know each coordinate.

    Coordinates labelled on the same events share one multi-output model when the regressor
    supports it (``multi_output``), otherwise each coordinate has its own.
    """

    name = "per-axis"
    multi_output = False

    @abc.abstractmethod
    def _make(self):
        """A new, unfitted scikit-learn regressor for one coordinate (or several, with ``multi_output``)."""

    def fit(self, signals: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None):
        signals, targets, mask = _check(signals, targets, mask)
        feats = normalised_features(signals)
        groups: list[list[int]] = []
        known = [i for i in range(3) if mask[:, i].sum() >= 10]
        if not known:
            raise InputError(f"{self.name}: no coordinate has 10 labelled events")
        for i in known:  # a coordinate never labelled (depth in fan-beam data) is predicted as NaN
            same = [g for g in groups if self.multi_output and np.array_equal(mask[:, g[0]], mask[:, i])]
            same[0].append(i) if same else groups.append([i])
        self.models_ = []
        for g in groups:
            m = mask[:, g[0]]
            y = targets[m][:, g] if len(g) > 1 else targets[m, g[0]]
            self.models_.append((g, self._make().fit(feats[m], y)))
        return self

    def predict(self, signals: np.ndarray) -> np.ndarray:
        if not getattr(self, "models_", None):
            raise InputError(f"{self.name} is not fitted")
        feats = normalised_features(_check(signals)[0])
        out = np.full((len(feats), 3), np.nan)
        for g, model in self.models_:
            out[:, g] = model.predict(feats).reshape(len(feats), len(g))
        return out


class GradientTreeBoosting(_PerAxis):
    """Histogram gradient tree boosting (scikit-learn) per coordinate, as in Muller et al 2018.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes : see ``sklearn.ensemble.HistGradientBoostingRegressor``
    seed : int
        Random state (early-stopping split).
    """

    name = "gbt"

    def __init__(self, *, max_iter: int = 300, learning_rate: float = 0.1, max_leaf_nodes: int = 31,
                 seed: int = 0) -> None:
        self.params = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes)
        self.seed = seed

    def _make(self):
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(loss="absolute_error", random_state=self.seed, **self.params)


class NearestNeighbours(_PerAxis):
    """k-nearest-neighbour regression on the normalised light distribution (van Dam et al 2011).

    Parameters
    ----------
    k : int
        Neighbours averaged (median-free mean, distance in normalised-signal space).
    """

    name = "knn"
    multi_output = True

    def __init__(self, *, k: int = 30) -> None:
        if k < 1:
            raise InputError("k must be >= 1")
        self.k = k

    def _make(self):
        from sklearn.neighbors import KNeighborsRegressor

        return KNeighborsRegressor(n_neighbors=self.k, algorithm="auto")
