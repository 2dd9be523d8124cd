"""Arterial plasma input functions: Feng's FDG model, sampled curves, frame means and integrals.

Everything in this package is **decay corrected to injection** (the convention of kinetic modelling);
times are in s after injection, concentrations in Bq/mL, rate constants in 1/min where named ``*_per_min``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petspect.errors import InputError
from petspect.units import BQ_PER_MBQ, S_PER_MIN

__all__ = ["FengInput", "feng_fdg_for_patient", "SampledInput", "FrameSchedule", "FRAMINGS"]


@dataclass(frozen=True)
class FengInput:
    """Feng's three-exponential plasma input function (Feng D, Huang SC, Wang X, Int J Biomed Comput
    1993;32:95-110):

    ``Cp(t) = (A1 tau - A2 - A3) e^{l1 tau} + A2 e^{l2 tau} + A3 e^{l3 tau}``, ``tau = t - delay`` (min), 0 before.

    The default parameters are Feng's FDG values (A1 = 851.1225 /min, A2 = 21.8798, A3 = 20.8113,
    l1 = -4.133859, l2 = -0.1191, l3 = -0.0104 /min) in arbitrary units, multiplied by ``scale_bq_per_ml``.
    """

    a1_per_min: float = 851.1225
    a2: float = 21.8798
    a3: float = 20.8113
    l1_per_min: float = -4.133859
    l2_per_min: float = -0.1191
    l3_per_min: float = -0.0104
    delay_s: float = 0.0
    scale_bq_per_ml: float = 1.0

    def __post_init__(self) -> None:
        if not (self.l1_per_min < 0 and self.l2_per_min < 0 and self.l3_per_min < 0):
            raise InputError("Feng input: the exponents l1, l2, l3 must be negative (1/min)")
        if not (self.scale_bq_per_ml > 0 and self.delay_s >= 0):
            raise InputError("Feng input: scale_bq_per_ml must be > 0 and delay_s >= 0")

    def __call__(self, times_s) -> np.ndarray:
        """Plasma concentration (Bq/mL) at ``times_s``."""
        tau = (np.asarray(times_s, dtype=np.float64) - self.delay_s) / S_PER_MIN
        pos = np.maximum(tau, 0.0)
        c = ((self.a1_per_min * pos - self.a2 - self.a3) * np.exp(self.l1_per_min * pos)
             + self.a2 * np.exp(self.l2_per_min * pos) + self.a3 * np.exp(self.l3_per_min * pos))
        return np.where(tau > 0, c, 0.0) * self.scale_bq_per_ml

    def sampled(self, end_s: float, step_s: float = 1.0) -> "SampledInput":
        """The curve on a fine grid (``step_s``) from 0 to ``end_s``, with the delay as a node."""
        t = np.arange(0.0, end_s + step_s / 2, step_s)
        t = np.union1d(t, [self.delay_s])
        return SampledInput(t, self(t))


def feng_fdg_for_patient(*, injected_mbq: float = 370.0, weight_kg: float = 75.0, blood_suv: float | None = None,
                         delay_s: float = 0.0, **shape) -> FengInput:
    """Feng's FDG curve scaled so that plasma at the FDG reference time (60 min) has the blood-pool SUV of
    :mod:`petspect.phantoms.tracers` (decay corrected: ``C = SUV * A_inj / weight``)."""
    from petspect.phantoms.tracers import get_tracer

    model = get_tracer("FDG")
    suv = model.organs["blood_pool"].suv if blood_suv is None else float(blood_suv)
    if not (injected_mbq > 0 and weight_kg > 0 and suv > 0):
        raise InputError("feng_fdg_for_patient: injected_mbq, weight_kg and blood_suv must be > 0")
    target = suv * injected_mbq * BQ_PER_MBQ / (weight_kg * 1000.0)
    unit = FengInput(delay_s=delay_s, **shape)
    ref = float(unit(np.array([model.scan_time_s + delay_s]))[0])
    return FengInput(delay_s=delay_s, scale_bq_per_ml=target / ref, **shape)


@dataclass(frozen=True)
class SampledInput:
    """An input curve known at sample times, linear between them (arterial samples, an IDIF, a model on a
    fine grid). ``times_s`` strictly increasing, ``values_bq_per_ml`` the same length."""

    times_s: np.ndarray
    values_bq_per_ml: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, dtype=np.float64)
        v = np.asarray(self.values_bq_per_ml, dtype=np.float64)
        if t.ndim != 1 or t.shape != v.shape or t.size < 2:
            raise InputError(f"input curve: times and values must be 1D of the same length >= 2, got {t.shape}, {v.shape}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise InputError("input curve: times and values must be finite")
        if np.any(np.diff(t) <= 0):
            raise InputError("input curve: times must be strictly increasing")
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "values_bq_per_ml", v)

    def __call__(self, times_s) -> np.ndarray:
        return np.interp(np.asarray(times_s, dtype=np.float64), self.times_s, self.values_bq_per_ml, left=0.0)

    def integral(self, times_s) -> np.ndarray:
        """Exact integral of the piecewise-linear curve from 0 (or the first sample) to ``times_s`` (Bq s/mL)."""
        t, v = self.times_s, self.values_bq_per_ml
        cum = np.concatenate([[0.0], np.cumsum(np.diff(t) * (v[1:] + v[:-1]) / 2)])
        q = np.asarray(times_s, dtype=np.float64)
        k = np.clip(np.searchsorted(t, q, side="right") - 1, 0, len(t) - 2)
        dt = np.clip(q - t[k], 0.0, None)
        slope = (v[k + 1] - v[k]) / (t[k + 1] - t[k])
        inside = cum[k] + v[k] * dt + slope * dt ** 2 / 2
        return np.where(q <= t[0], 0.0, np.where(q >= t[-1], cum[-1] + v[-1] * (q - t[-1]), inside))


@dataclass(frozen=True)
class FrameSchedule:
    """Frames of a dynamic acquisition: starts and durations (s after injection)."""

    start_s: np.ndarray
    duration_s: np.ndarray

    def __post_init__(self) -> None:
        s = np.asarray(self.start_s, dtype=np.float64)
        d = np.asarray(self.duration_s, dtype=np.float64)
        if s.ndim != 1 or s.shape != d.shape or s.size < 2:
            raise InputError("frame schedule: start_s and duration_s must be 1D of the same length >= 2")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(d))):
            raise InputError("frame schedule: start_s and duration_s must be finite")
        if np.any(d <= 0) or np.any(s < 0) or np.any(s[1:] < s[:-1] + d[:-1] - 1e-6):
            i = int(np.flatnonzero((d <= 0) | (s < 0) | np.r_[False, s[1:] < s[:-1] + d[:-1] - 1e-6])[0])
            raise InputError(f"frame schedule: durations must be > 0, starts >= 0 and frames in time order without "
                             f"overlap; frame {i + 1} (start {s[i]:g} s, duration {d[i]:g} s) is not")
        object.__setattr__(self, "start_s", s)
        object.__setattr__(self, "duration_s", d)

    @classmethod
    def from_blocks(cls, blocks: list[tuple[int, float]], start_s: float = 0.0) -> "FrameSchedule":
        """From ``[(n_frames, duration_s), ...]`` blocks, back to back."""
        d = np.concatenate([np.full(n, float(dur)) for n, dur in blocks])
        s = start_s + np.concatenate([[0.0], np.cumsum(d)[:-1]])
        return cls(s, d)

    @property
    def end_s(self) -> np.ndarray:
        return self.start_s + self.duration_s

    @property
    def mid_s(self) -> np.ndarray:
        return self.start_s + self.duration_s / 2

    def __len__(self) -> int:
        return len(self.start_s)

    def frame_means(self, times_s: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Frame averages of a curve known on a fine grid (linear between samples); ``values`` may be (..., T)."""
        t = np.asarray(times_s, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        if t[-1] < self.end_s[-1] - 1e-6:
            raise InputError(f"curve ends at {t[-1]:.0f} s, before the last frame ends ({self.end_s[-1]:.0f} s)")
        cum = np.concatenate([np.zeros(v.shape[:-1] + (1,)), np.cumsum(np.diff(t) * (v[..., 1:] + v[..., :-1]) / 2,
                                                                      axis=-1)], axis=-1)

        def at(q):
            k = np.clip(np.searchsorted(t, q, side="right") - 1, 0, len(t) - 2)
            dt = q - t[k]
            slope = (v[..., k + 1] - v[..., k]) / (t[k + 1] - t[k])
            return cum[..., k] + v[..., k] * dt + slope * dt ** 2 / 2

        return (at(self.end_s) - at(self.start_s)) / self.duration_s


# A 60 min FDG protocol (6 x 10 s, 4 x 30 s, 4 x 1 min, 4 x 2 min, 9 x 5 min) and a 90 min one.
FRAMINGS: dict[str, FrameSchedule] = {
    "fdg-60min": FrameSchedule.from_blocks([(6, 10), (4, 30), (4, 60), (4, 120), (9, 300)]),
    "dynamic-90min": FrameSchedule.from_blocks([(6, 10), (4, 30), (4, 60), (4, 120), (15, 300)]),
}
