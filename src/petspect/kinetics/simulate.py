"""Dynamic PET simulation at the level of TACs: FDG tissue kinetics, framing and frame noise.

Tissue micro-parameters (1/min; approximate literature values):

* grey / white matter: Phelps ME et al., Ann Neurol 1979;6:371-388 and Huang SC et al., Am J Physiol
  1980;238:E69-E82 (grey K1 0.102, k2 0.130, k3 0.062, k4 0.0068; white K1 0.054, k2 0.109, k3 0.045,
  k4 0.0058);
* tumour (Ki ~ 0.033 /min), liver, muscle, myocardium: typical values of dynamic FDG studies (approx; e.g.
  Dimitrakopoulou-Strauss A et al., J Nucl Med 2021;62:123 for the ranges).

Frame noise: ``sd_i = k sqrt(C_i e^{lambda t_i} / D_i)`` (counts in a decay-corrected frame of duration
``D_i``), with ``k`` set so that the **last frame** of each TAC has the coefficient of variation ``cov_last``.
A region of a few mL in a clinical scan has ``cov_last`` of a few per cent; a single voxel 20-40 %.
"""

from __future__ import annotations

import math

import numpy as np

from petspect.errors import InputError
from petspect.kinetics.compartments import KineticParams, Model, model_frames
from petspect.kinetics.input_function import FrameSchedule, SampledInput

__all__ = ["FDG_TISSUES", "simulate_tacs", "add_frame_noise"]

FDG_TISSUES: dict[str, KineticParams] = {
    "grey_matter": KineticParams(0.102, 0.130, 0.062, 0.0, 0.04),
    "white_matter": KineticParams(0.054, 0.109, 0.045, 0.0, 0.03),
    "tumour": KineticParams(0.10, 0.20, 0.10, 0.0, 0.05),
    "liver": KineticParams(0.90, 1.00, 0.01, 0.0, 0.10),
    "muscle": KineticParams(0.03, 0.20, 0.02, 0.0, 0.02),
    "myocardium": KineticParams(0.60, 1.20, 0.10, 0.0, 0.10),
}


def simulate_tacs(params: dict[str, KineticParams], inp: SampledInput, frames: FrameSchedule,
                  model: Model | str = Model.TWO_TCM_IRREVERSIBLE) -> dict[str, np.ndarray]:
    """Noiseless frame-averaged TACs (Bq/mL, decay corrected) of each tissue."""
    return {name: model_frames(p, Model(model), inp, frames) for name, p in params.items()}


def add_frame_noise(tacs: np.ndarray, frames: FrameSchedule, *, cov_last: float, half_life_s: float = 6586.2,
                    rng: np.random.Generator) -> np.ndarray:
    """Gaussian frame noise with counting-statistics variance; ``tacs`` is (..., n_frames).

    ``half_life_s`` defaults to F-18 (6586.2 s, petspect.nuclides); the decay correction inflates late-frame
    variance by ``exp(lambda t)``.
    """
    if not cov_last >= 0:
        raise InputError("cov_last must be >= 0")
    y = np.asarray(tacs, dtype=np.float64)
    lam = math.log(2.0) / half_life_s
    var_shape = np.clip(y, 0, None) * np.exp(lam * frames.mid_s) / frames.duration_s
    last = var_shape[..., -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        k2 = np.where(last > 0, (cov_last * y[..., -1:]) ** 2 / last, 0.0)
    return y + rng.standard_normal(y.shape) * np.sqrt(k2 * var_shape)
