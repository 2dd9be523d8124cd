"""Time-activity curves: fits, time-integrated activity (TIA) and single-time-point methods.

Times are in hours (``times_h``); activities in any unit A (Bq, MBq or Bq/mL); TIAs come back in A h
(multiply by 3600 for A s). Models (all rates >= the physical decay constant, since biological
elimination cannot add activity):

* ``mono``: A(t) = A0 exp(-lambda t)
* ``bi``: A(t) = A0 (exp(-lambda_w t) - exp(-lambda_u t)) (uptake lambda_u > washout lambda_w)
* ``bi_sum``: A(t) = A1 exp(-lambda_1 t) + A2 exp(-lambda_2 t)
* ``tri``: A(t) = A1 exp(-lambda_1 t) + A2 exp(-lambda_2 t) - (A1 + A2) exp(-lambda_3 t)
* ``trapezoid``: trapezoids from t = 0 (A(0) = 0) through the points, then the physical-decay tail
  A_n / lambda_phys after the last point.

:func:`fit_tac` fits every model the data support (n >= k + 1 points for k parameters) by weighted least
squares (relative errors by default) and keeps the one with the lowest AICc (Glatting et al, Med Phys
34:4068, 2007, as in NUKFIT), with the TIA's standard error by the delta method on the parameter
covariance. Single-time-point: :func:`hanscheid_tia` (Hanscheid et al, J Nucl Med 59:75, 2018:
TIA ~ A(t) 2 t / ln 2) and :func:`population_tia` (mono-exponential with a population effective
half-life).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from petspect.errors import InputError

MODELS = ("mono", "bi", "bi_sum", "tri")


@dataclass
class TacFit:
    """One fitted time-activity model.

    ``params`` are in A and 1/h; ``tia`` in A h with standard error ``tia_se``; ``aicc`` (inf for the
    trapezoid, which is not a fitted model); ``effective_half_life_h`` for mono-exponential fits.
    """

    model: str
    params: dict[str, float]
    tia: float
    tia_se: float
    aicc: float
    rss: float
    n_points: int
    effective_half_life_h: float | None = None
    candidates: dict[str, float] = field(default_factory=dict)

    def predict(self, times_h: Sequence[float]) -> np.ndarray:
        t = np.asarray(times_h, dtype=float)
        return _MODEL_FUNCS[self.model][0](t, *self.params.values())


def _mono(t, a0, lam):
    return a0 * np.exp(-lam * t)


def _bi(t, a0, lam_w, lam_u):
    return a0 * (np.exp(-lam_w * t) - np.exp(-lam_u * t))


def _bi_sum(t, a1, lam1, a2, lam2):
    return a1 * np.exp(-lam1 * t) + a2 * np.exp(-lam2 * t)


def _tri(t, a1, lam1, a2, lam2, lam3):
    return a1 * np.exp(-lam1 * t) + a2 * np.exp(-lam2 * t) - (a1 + a2) * np.exp(-lam3 * t)


def _tia_mono(a0, lam):
    return a0 / lam


def _tia_bi(a0, lam_w, lam_u):
    return a0 * (1.0 / lam_w - 1.0 / lam_u)


def _tia_bi_sum(a1, lam1, a2, lam2):
    return a1 / lam1 + a2 / lam2


def _tia_tri(a1, lam1, a2, lam2, lam3):
    return a1 / lam1 + a2 / lam2 - (a1 + a2) / lam3


_MODEL_FUNCS: dict[str, tuple[Callable, Callable, tuple[str, ...]]] = {
    "mono": (_mono, _tia_mono, ("a0", "lambda_per_h")),
    "bi": (_bi, _tia_bi, ("a0", "lambda_washout_per_h", "lambda_uptake_per_h")),
    "bi_sum": (_bi_sum, _tia_bi_sum, ("a1", "lambda1_per_h", "a2", "lambda2_per_h")),
    "tri": (_tri, _tia_tri, ("a1", "lambda1_per_h", "a2", "lambda2_per_h", "lambda3_per_h")),
}


def _check(times_h, activity, sigma=None):
    t = np.asarray(times_h, dtype=float)
    a = np.asarray(activity, dtype=float)
    if t.ndim != 1 or a.shape != t.shape:
        raise InputError(f"times_h {t.shape} and activity {a.shape} must be 1-D of equal length")
    if len(t) < 1:
        raise InputError("a time-activity curve needs at least one point")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(a))):
        raise InputError("times and activities must be finite")
    if np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise InputError(f"times must be positive and strictly increasing (h); got {t.tolist()}")
    if np.any(a < 0):
        raise InputError("activities must be non-negative")
    s = None
    if sigma is not None:
        s = np.asarray(sigma, dtype=float)
        if s.shape != t.shape or np.any(s <= 0):
            raise InputError("sigma must be positive, one per time point")
    return t, a, s


def aicc(rss: float, n: int, k: int) -> float:
    """Corrected Akaike information criterion for least squares: n ln(RSS/n) + 2k + 2k(k+1)/(n-k-1)."""
    if n - k - 1 <= 0:
        return math.inf
    return n * math.log(max(rss, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _starts(model: str, t: np.ndarray, a: np.ndarray, lam_phys: float) -> list[list[float]]:
    amax = float(a.max()) or 1.0
    tail = a > 0
    lam0 = lam_phys * 1.5
    if tail.sum() >= 2:
        slope = -np.polyfit(t[tail], np.log(a[tail]), 1)[0]
        lam0 = max(float(slope), lam_phys * 1.01)
    a0 = amax * math.exp(lam0 * t[int(np.argmax(a))])
    if model == "mono":
        return [[a0, lam0]]
    if model == "bi":
        return [[a0 * 1.2, lam0, lu] for lu in (1.0 / max(t[0], 0.1), 5.0 / max(t[0], 0.1), 0.5)]
    if model == "bi_sum":
        return [[a0 * 0.5, lam0, a0 * 0.5, lam0 * f] for f in (3.0, 10.0)]
    return [[a0, lam0, a0 * 0.5, lam0 * 5, lu] for lu in (2.0 / max(t[0], 0.1), 0.5)]


def _fit_one(model: str, t, a, s, lam_phys: float):
    from scipy.optimize import curve_fit

    func, tia_func, names = _MODEL_FUNCS[model]
    k = len(names)
    lower = [0.0 if "lambda" not in n else lam_phys for n in names]
    upper = [np.inf] * k
    best = None
    for p0 in _starts(model, t, a, lam_phys):
        p0 = [max(p, lo * 1.0001 + 1e-12) for p, lo in zip(p0, lower)]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                popt, pcov = curve_fit(func, t, a, p0=p0, sigma=s, absolute_sigma=False, bounds=(lower, upper),
                                       maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        resid = (func(t, *popt) - a) / s
        rss = float(np.sum(resid ** 2))
        if best is None or rss < best[2]:
            best = (popt, pcov, rss)
    if best is None:
        return None
    popt, pcov, rss = best
    tia = float(tia_func(*popt))
    if not math.isfinite(tia) or tia < 0:
        return None
    grad = np.zeros(k)
    for i in range(k):
        h = 1e-6 * max(abs(popt[i]), 1e-12)
        pp = popt.copy()
        pp[i] += h
        grad[i] = (tia_func(*pp) - tia) / h
    var = float(grad @ np.nan_to_num(pcov, nan=0.0, posinf=0.0) @ grad) if np.all(np.isfinite(pcov)) else math.inf
    se = math.sqrt(var) if var >= 0 else math.inf
    half = None
    if model == "mono":
        half = math.log(2) / popt[1]
    return TacFit(model, dict(zip(names, map(float, popt))), tia, se, aicc(rss, len(t), k), rss, len(t), half)


def fit_tac(times_h: Sequence[float], activity: Sequence[float], *, physical_half_life_h: float,
            sigma: Sequence[float] | None = None, models: Sequence[str] = MODELS,
            relative_error: float = 0.1) -> TacFit:
    """Fit a time-activity curve and return the model with the lowest AICc.

    Parameters
    ----------
    times_h : sequence of float, shape (n,)
        Time points after administration (h), positive and increasing.
    activity : sequence of float, shape (n,)
        Activity (any unit A) at those times.
    physical_half_life_h : float
        Physical half-life of the nuclide (h); bounds every rate from below.
    sigma : sequence of float, optional
        Standard deviations of the activities; default ``relative_error`` x activity (with a floor of
        1 % of the maximum).
    models : sequence of str
        Candidate models among ``mono``, ``bi``, ``bi_sum``, ``tri``. A model with k parameters needs at
        least k + 1 points (AICc needs k + 2; with k + 1 points it is infinite and the model with fewest
        parameters wins); with a single point, use :func:`hanscheid_tia` or :func:`population_tia`.

    Returns
    -------
    TacFit
        The selected fit; ``candidates`` maps every fitted model to its AICc. When no model can be fitted
        (two points), the trapezoid with physical tail is returned.
    """
    t, a, s = _check(times_h, activity, sigma)
    if physical_half_life_h <= 0:
        raise InputError("physical_half_life_h must be positive")
    for m in models:
        if m not in MODELS:
            raise InputError(f"unknown TAC model {m!r}; choose from {MODELS}")
    if s is None:
        s = np.maximum(relative_error * a, 0.01 * max(float(a.max()), 1e-30))
    lam_phys = math.log(2) / physical_half_life_h
    fits = []
    for m in models:
        k = len(_MODEL_FUNCS[m][2])
        if len(t) < k + 1:
            continue
        f = _fit_one(m, t, a, s, lam_phys)
        if f is not None:
            fits.append(f)
    if not fits:
        out = trapezoid_tia(t, a, physical_half_life_h=physical_half_life_h, sigma=s)
        return out
    # lowest AICc; where AICc is undefined (n = k + 1) for every model, the fewest parameters
    best = min(fits, key=lambda f: (f.aicc, len(f.params)))
    best.candidates = {f.model: f.aicc for f in fits}
    return best


def trapezoid_tia(times_h: Sequence[float], activity: Sequence[float], *, physical_half_life_h: float,
                  sigma: Sequence[float] | None = None, start: str = "zero") -> TacFit:
    """TIA by trapezoids plus the physical-decay tail after the last point.

    ``start``: ``"zero"`` (A(0) = 0, uptake) or ``"constant"`` (A(0) = A(t_1)). The standard error comes
    from ``sigma`` by linear propagation (the TIA is linear in the activities).
    """
    t, a, s = _check(times_h, activity, sigma)
    if start not in ("zero", "constant"):
        raise InputError("start must be 'zero' or 'constant'")
    lam = math.log(2) / physical_half_life_h
    tt = np.concatenate([[0.0], t])
    coeff = np.zeros(len(t) + 1)
    dt = np.diff(tt)
    coeff[:-1] += dt / 2
    coeff[1:] += dt / 2
    coeff[-1] += 1.0 / lam
    c = coeff[1:].copy()
    if start == "constant":
        c[0] += coeff[0]
    tia = float(c @ a)
    se = float(np.sqrt(np.sum((c * s) ** 2))) if s is not None else 0.0
    return TacFit("trapezoid", {"start_" + start: 1.0}, tia, se, math.inf, 0.0, len(t))


def hanscheid_tia(activity: float, time_h: float) -> float:
    """Single-time-point TIA of Hanscheid et al (J Nucl Med 59:75, 2018): A(t) 2 t / ln 2 (A h).

    Exact for a mono-exponential curve measured at t = effective half-life; the authors recommend
    t of about 72-96 h for Lu-177 DOTATATE kidneys and tumours.
    """
    if time_h <= 0 or activity < 0:
        raise InputError("time_h must be positive and activity non-negative")
    return float(activity) * 2.0 * float(time_h) / math.log(2)


def population_tia(activity: float, time_h: float, effective_half_life_h: float) -> float:
    """Single-time-point TIA with a population effective half-life: A(t) exp(lambda t) / lambda (A h)."""
    if time_h <= 0 or effective_half_life_h <= 0 or activity < 0:
        raise InputError("time_h and effective_half_life_h must be positive, activity non-negative")
    lam = math.log(2) / effective_half_life_h
    return float(activity) * math.exp(lam * time_h) / lam


def voxel_tia(stack: np.ndarray, times_h: Sequence[float], *, physical_half_life_h: float,
              method: str = "mono_tail") -> np.ndarray:
    """Voxel-wise TIA (A h) of a registered image stack.

    Parameters
    ----------
    stack : ndarray, shape (n_times, z, y, x)
        Activity (or concentration) images at ``times_h``.
    method : str
        ``"trapezoid"`` (trapezoids from A(0) = 0 plus the physical tail) or ``"mono_tail"`` (trapezoids
        up to the last point, then a mono-exponential tail fitted log-linearly to the last two points,
        never slower than physical decay). With one time point, the Hanscheid formula is used.
    """
    x = np.asarray(stack, dtype=float)
    t = np.asarray(times_h, dtype=float)
    if x.ndim < 2 or x.shape[0] != len(t):
        raise InputError(f"stack shape {x.shape} does not match {len(t)} time points")
    if np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise InputError("times must be positive and increasing")
    x = np.clip(x, 0.0, None)
    lam_phys = math.log(2) / physical_half_life_h
    if len(t) == 1:
        return x[0] * 2.0 * t[0] / math.log(2)
    tt = np.concatenate([[0.0], t])
    xx = np.concatenate([np.zeros_like(x[:1]), x], axis=0)
    area = np.tensordot(np.diff(tt), 0.5 * (xx[1:] + xx[:-1]), axes=(0, 0))
    if method == "trapezoid":
        lam = np.full(x.shape[1:], lam_phys)
    elif method == "mono_tail":
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.log(x[-2] / x[-1]) / (t[-1] - t[-2])
        lam = np.where(np.isfinite(lam), np.maximum(lam, lam_phys), lam_phys)
    else:
        raise InputError("method must be 'trapezoid' or 'mono_tail'")
    return area + x[-1] / lam
