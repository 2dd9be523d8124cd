"""One- and two-tissue compartment models: exact convolution, frame-averaged model TACs, region fits
(scipy least squares) and voxel fits (basis functions).

Models (rate constants in 1/min, K1 in mL/min/mL, vB the blood volume fraction; whole blood taken equal
to plasma)::

    1TCM:  C_T = K1 exp(-k2 t) (x) Cp
    2TCM:  C_T = K1 / (a2 - a1) [(k3 + k4 - a1) exp(-a1 t) + (a2 - k3 - k4) exp(-a2 t)] (x) Cp,
           a1,2 = (k2 + k3 + k4 -/+ sqrt((k2 + k3 + k4)^2 - 4 k2 k4)) / 2     (k4 = 0: irreversible)
    C_PET = (1 - vB) C_T + vB Cp

The convolution of a piecewise-linear input with an exponential is computed exactly, segment by
segment (no discretisation error beyond the input's own sampling). Macro-parameters: Ki = K1 k3 / (k2 + k3)
(irreversible uptake rate), V_T = K1 / k2 (1 + k3 / k4) (distribution volume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from petspect.errors import InputError
from petspect.kinetics.input_function import FrameSchedule, SampledInput
from petspect.units import S_PER_MIN

__all__ = ["Model", "KineticParams", "conv_exp", "tissue_curve", "model_frames", "fit_region", "RegionFit",
           "fit_1tcm_voxels"]


class Model(str, Enum):
    ONE_TCM = "1tcm"
    TWO_TCM_IRREVERSIBLE = "2tcm-irr"
    TWO_TCM = "2tcm"


@dataclass(frozen=True)
class KineticParams:
    """Micro-parameters of a compartment model (1/min; K1 mL/min/mL; vB fraction)."""

    k1_per_min: float
    k2_per_min: float
    k3_per_min: float = 0.0
    k4_per_min: float = 0.0
    vb: float = 0.0

    def __post_init__(self) -> None:
        vals = (self.k1_per_min, self.k2_per_min, self.k3_per_min, self.k4_per_min)
        if not all(math.isfinite(v) and v >= 0 for v in vals) or not 0 <= self.vb < 1:
            raise InputError(f"kinetic parameters must be finite and >= 0 with 0 <= vB < 1, got {self}")

    @property
    def ki_per_min(self) -> float:
        """Net influx rate K1 k3 / (k2 + k3) (irreversible 2TCM)."""
        s = self.k2_per_min + self.k3_per_min
        return self.k1_per_min * self.k3_per_min / s if s > 0 else 0.0

    @property
    def ki_voxel_per_min(self) -> float:
        """``(1 - vB) Ki``: the net influx per mL of voxel (tissue plus blood), what a Patlak plot of the PET
        signal ``(1 - vB) C_T + vB Cp`` estimates (the blood term only moves the intercept)."""
        return (1.0 - self.vb) * self.ki_per_min

    @property
    def vt(self) -> float:
        """Distribution volume K1/k2 (1 + k3/k4) (reversible models); inf for an irreversible 2TCM."""
        if self.k2_per_min == 0:
            return math.inf
        if self.k3_per_min == 0:
            return self.k1_per_min / self.k2_per_min
        if self.k4_per_min == 0:
            return math.inf
        return self.k1_per_min / self.k2_per_min * (1 + self.k3_per_min / self.k4_per_min)


def conv_exp(inp: SampledInput, beta_per_min: float) -> np.ndarray:
    """``(exp(-beta t) (x) Cp)(t_i)`` at the input's sample times, exact for a piecewise-linear Cp (Bq s/mL).

    On each segment ``[t_{i-1}, t_i]`` with ``Cp = c_i - m u`` (``u = t_i - s``):
    ``I_i = e^{-b D} I_{i-1} + c_i (1 - e^{-b D}) / b - m (1 - e^{-b D} (1 + b D)) / b^2``.
    """
    from scipy.signal import lfilter

    t, c = inp.times_s, inp.values_bq_per_ml
    b = float(beta_per_min) / S_PER_MIN
    d = np.diff(t)
    m = np.diff(c) / d
    bd = b * d
    if b * d.max() < 1e-6:  # beta ~ 0: plain integral, with the next-order term
        g = c[1:] * d - m * d ** 2 / 2 - b * (c[1:] * d ** 2 / 2 - m * d ** 3 / 3)
    else:
        e = np.exp(-bd)
        g = c[1:] * (-np.expm1(-bd)) / b - m * (1 - e * (1 + bd)) / b ** 2
    a = np.exp(-bd)
    if np.allclose(d, d[0], rtol=1e-9):
        out = lfilter([1.0], [1.0, -a[0]], g)
    else:
        out = np.empty_like(g)
        acc = 0.0
        for i in range(len(g)):
            acc = a[i] * acc + g[i]
            out[i] = acc
    return np.concatenate([[0.0], out])


def _impulse_terms(p: KineticParams, model: Model) -> list[tuple[float, float]]:
    """(weight per min, exponent per min) pairs of the tissue impulse response K1 * sum_w w e^{-a t}."""
    k1, k2, k3, k4 = p.k1_per_min, p.k2_per_min, p.k3_per_min, p.k4_per_min
    if model is Model.ONE_TCM:
        return [(k1, k2)]
    if model is Model.TWO_TCM_IRREVERSIBLE:
        k4 = 0.0
    s = k2 + k3 + k4
    disc = math.sqrt(max(s * s - 4 * k2 * k4, 0.0))
    a1, a2 = (s - disc) / 2, (s + disc) / 2
    if a2 - a1 < 1e-12:
        return [(k1, a1)]
    return [(k1 * (k3 + k4 - a1) / (a2 - a1), a1), (k1 * (a2 - k3 - k4) / (a2 - a1), a2)]


def tissue_curve(p: KineticParams, model: Model, inp: SampledInput) -> np.ndarray:
    """PET concentration ``(1 - vB) C_T + vB Cp`` at the input's sample times (Bq/mL)."""
    ct = sum(w / S_PER_MIN * conv_exp(inp, a) for w, a in _impulse_terms(p, model))
    return (1 - p.vb) * ct + p.vb * inp.values_bq_per_ml


def model_frames(p: KineticParams, model: Model, inp: SampledInput, frames: FrameSchedule) -> np.ndarray:
    """Frame-averaged model TAC (Bq/mL), shape (n_frames,)."""
    return frames.frame_means(inp.times_s, tissue_curve(p, model, inp))


_NAMES = {Model.ONE_TCM: ("k1_per_min", "k2_per_min", "vb"),
          Model.TWO_TCM_IRREVERSIBLE: ("k1_per_min", "k2_per_min", "k3_per_min", "vb"),
          Model.TWO_TCM: ("k1_per_min", "k2_per_min", "k3_per_min", "k4_per_min", "vb")}
_UPPER = {"k1_per_min": 5.0, "k2_per_min": 5.0, "k3_per_min": 2.0, "k4_per_min": 1.0, "vb": 0.9}


@dataclass(frozen=True)
class RegionFit:
    """Result of a region fit: parameters, their standard errors, weighted residual sum of squares, AIC."""

    model: Model
    params: KineticParams
    stderr: dict[str, float]
    wrss: float
    aic: float
    fitted: np.ndarray


def fit_region(tac: np.ndarray, inp: SampledInput, frames: FrameSchedule, model: Model | str = Model.TWO_TCM_IRREVERSIBLE,
               *, weights: np.ndarray | None = None, fit_vb: bool = True, n_starts: int = 6, seed: int = 0) -> RegionFit:
    """Weighted least-squares fit of a compartment model to a frame-averaged region TAC.

    Parameters
    ----------
    tac : ndarray (n_frames,)
        Region concentration (Bq/mL), decay corrected.
    inp : SampledInput
        Plasma input on a fine grid covering the frames.
    weights : ndarray (n_frames,), optional
        1/variance weights; default: frame durations (counting statistics of decay-corrected frames).
    fit_vb : bool
        Fit the blood volume; False fixes vB = 0.
    n_starts : int
        Random multi-start initial points (seeded) besides the standard one; the best fit is kept.
    """
    from scipy.optimize import least_squares

    try:
        model = Model(model)
    except ValueError:
        raise InputError(f"unknown compartment model {model!r}; known: {[m.value for m in Model]}") from None
    y = np.asarray(tac, dtype=np.float64)
    if y.shape != (len(frames),):
        raise InputError(f"TAC must have one value per frame ({len(frames)}), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise InputError(f"TAC holds NaN or infinite values at frame(s) {[int(i) + 1 for i in np.flatnonzero(~np.isfinite(y))]}")
    w = frames.duration_s / frames.duration_s.max() if weights is None else np.asarray(weights, dtype=np.float64)
    sw = np.sqrt(np.clip(w, 0, None))
    names = [n for n in _NAMES[model] if fit_vb or n != "vb"]
    scale = max(float(np.abs(y).max()), 1e-12)

    def params_of(x) -> KineticParams:
        d = dict(zip(names, x))
        return KineticParams(**{k: float(v) for k, v in d.items()})

    def resid(x):
        return sw * (model_frames(params_of(x), model, inp, frames) - y) / scale

    lo = np.zeros(len(names))
    hi = np.array([_UPPER[n] for n in names])
    base = {"k1_per_min": 0.1, "k2_per_min": 0.15, "k3_per_min": 0.05, "k4_per_min": 0.01, "vb": 0.05}
    rng = np.random.default_rng(seed)
    starts = [np.array([base[n] for n in names])]
    starts += [np.array([base[n] * math.exp(rng.normal(0, 0.8)) for n in names]) for _ in range(n_starts)]
    best = None
    for x0 in starts:
        x0 = np.clip(x0, lo + 1e-6, hi - 1e-6)
        r = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", method="trf")
        if best is None or r.cost < best.cost:
            best = r
    p = params_of(best.x)
    n, k = len(y), len(names)
    wrss = float(2 * best.cost) * scale ** 2
    try:
        cov = np.linalg.inv(best.jac.T @ best.jac) * (2 * best.cost / max(n - k, 1))
        se = {nm: float(math.sqrt(max(cov[i, i], 0))) for i, nm in enumerate(names)}
    except np.linalg.LinAlgError:
        se = {nm: math.nan for nm in names}
    aic = n * math.log(max(wrss, 1e-300) / n) + 2 * k
    return RegionFit(model, p, se, wrss, aic, model_frames(p, model, inp, frames))


def fit_1tcm_voxels(tacs: np.ndarray, inp: SampledInput, frames: FrameSchedule, *,
                    k2_grid_per_min: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Voxelwise 1TCM (K1, k2, vB) by the basis-function method (Gunn RN et al., NeuroImage 1997;6:279-287).

    For each k2 on a grid, ``C = K1 (1 - vB) B_k2 + vB Cp`` is linear in (K1 (1 - vB), vB); all voxels are
    solved at once by least squares and each keeps the k2 of smallest residual.

    Parameters
    ----------
    tacs : ndarray (..., n_frames)
    Returns
    -------
    dict with ``k1_per_min``, ``k2_per_min``, ``vb``, each of shape ``tacs.shape[:-1]``; NaN for a voxel whose
    TAC holds a NaN or infinite value, 0 for one no k2 of the grid fits with K1 > 0 (e.g. a zero TAC).
    """
    y = np.asarray(tacs, dtype=np.float64)
    if y.shape[-1] != len(frames):
        raise InputError(f"TACs need {len(frames)} frames on their last axis, got {y.shape}")
    shape = y.shape[:-1]
    y2 = y.reshape(-1, len(frames)).T  # (F, V)
    grid = np.geomspace(0.005, 3.0, 400) if k2_grid_per_min is None else np.asarray(k2_grid_per_min, dtype=float)
    w = np.sqrt(frames.duration_s / frames.duration_s.max())[:, None]
    cpf = frames.frame_means(inp.times_s, inp.values_bq_per_ml)
    best_r = np.full(y2.shape[1], np.inf)
    out = {k: np.zeros(y2.shape[1]) for k in ("k1_per_min", "k2_per_min", "vb")}
    for k2 in grid:
        b = frames.frame_means(inp.times_s, conv_exp(inp, k2)) / S_PER_MIN
        x = np.stack([b, cpf], axis=1) * w  # (F, 2)
        coef, *_ = np.linalg.lstsq(x, y2 * w, rcond=None)  # (2, V)
        r = ((x @ coef - y2 * w) ** 2).sum(0)
        vb = np.clip(coef[1], 0, 0.99)
        better = (r < best_r) & (coef[0] > 0)
        best_r = np.where(better, r, best_r)
        out["k2_per_min"] = np.where(better, k2, out["k2_per_min"])
        out["vb"] = np.where(better, vb, out["vb"])
        out["k1_per_min"] = np.where(better, coef[0] / (1 - vb), out["k1_per_min"])
    bad = ~np.isfinite(y2).all(0)
    return {k: np.where(bad, np.nan, v).reshape(shape) for k, v in out.items()}
