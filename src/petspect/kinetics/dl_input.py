"""A learned estimate of the plasma input function from image TACs (a small network trained on simulated
subjects), compared with the true input.

Each simulated subject draws Feng input parameters (log-normal, 20 %), a bolus delay, a blood SUV,
FDG kinetics of myocardium, liver and muscle (log-normal, 25 %), a vessel recovery coefficient with
spill-in from the surrounding tissue, and region-level frame noise. The network reads four frame TACs --
the uncorrected vessel IDIF, myocardium, liver, muscle -- divided by the IDIF's late mean, and predicts the
frame-mean plasma curve on the same scale (the idea of learning the input from several organ curves:
Kuttner S et al., Phys Med Biol 2020;65:135017; here with petspect's own simulator and a plain MLP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from petspect.errors import InputError
from petspect.kinetics.compartments import KineticParams, Model, model_frames
from petspect.kinetics.input_function import FengInput, FrameSchedule, feng_fdg_for_patient
from petspect.kinetics.simulate import FDG_TISSUES, add_frame_noise

__all__ = ["InputSet", "simulate_input_set", "InputNet", "train_input_net", "predict_input"]

_TISSUES = ("myocardium", "liver", "muscle")


@dataclass
class InputSet:
    """Simulated subjects: ``x`` (n, 4, n_frames) TACs (IDIF, myocardium, liver, muscle), ``plasma``
    (n, n_frames) true frame-mean plasma (Bq/mL), ``tumour`` (n, n_frames) a tumour TAC and ``tumour_ki``
    its true (1 - vB) Ki (1/min), for checking Patlak with each input."""

    x: np.ndarray
    plasma: np.ndarray
    tumour: np.ndarray
    tumour_ki: np.ndarray


def _lognormal(rng: np.random.Generator, value: float, cv: float) -> float:
    s = math.sqrt(math.log(1 + cv * cv))
    return value * math.exp(rng.normal(-s * s / 2, s))


def simulate_input_set(n: int, frames: FrameSchedule, *, seed: int, step_s: float = 2.0,
                       cov_last: tuple[float, float] = (0.02, 0.08)) -> InputSet:
    """``n`` simulated subjects (seeded; each subject reproducible from ``seed`` and its index)."""
    if n < 1:
        raise InputError("simulate_input_set needs n >= 1")
    base = FengInput()
    xs, ps, ts, kis = [], [], [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        shape = {f: _lognormal(rng, getattr(base, f), 0.2) for f in
                 ("a1_per_min", "a2", "a3")}
        shape |= {f: -_lognormal(rng, -getattr(base, f), 0.2) for f in ("l1_per_min", "l2_per_min", "l3_per_min")}
        feng = feng_fdg_for_patient(injected_mbq=rng.uniform(200, 400), weight_kg=rng.uniform(55, 100),
                                    blood_suv=rng.uniform(1.3, 2.4), delay_s=rng.uniform(0, 30), **shape)
        inp = feng.sampled(frames.end_s[-1], step_s)
        plasma = frames.frame_means(inp.times_s, inp.values_bq_per_ml)
        tac = {}
        for name in _TISSUES + ("tumour",):
            p0 = FDG_TISSUES[name]
            p = replace(p0, **{f: _lognormal(rng, getattr(p0, f), 0.25) for f in
                               ("k1_per_min", "k2_per_min", "k3_per_min")})
            p = KineticParams(p.k1_per_min, p.k2_per_min, p.k3_per_min, 0.0, min(p.vb, 0.5))
            tac[name] = model_frames(p, Model.TWO_TCM_IRREVERSIBLE, inp, frames)
            if name == "tumour":
                kis.append(p.ki_voxel_per_min)
        rc = rng.uniform(0.5, 1.0)
        mix = rng.uniform(0, 1)
        bg = mix * tac["myocardium"] + (1 - mix) * tac["muscle"]
        idif = rc * plasma + (1 - rc) * bg
        cov = rng.uniform(*cov_last)
        curves = np.stack([idif, tac["myocardium"], tac["liver"], tac["muscle"]])
        xs.append(add_frame_noise(curves, frames, cov_last=cov, rng=rng))
        ps.append(plasma)
        ts.append(add_frame_noise(tac["tumour"], frames, cov_last=cov, rng=rng))
    return InputSet(np.stack(xs), np.stack(ps), np.stack(ts), np.asarray(kis))


def _scale(x: np.ndarray) -> np.ndarray:
    """Per-subject normaliser: the IDIF's mean over the last three frames."""
    s = x[:, 0, -3:].mean(-1)
    if np.any(s <= 0):
        raise InputError("the vessel TAC must be positive in the last frames")
    return s


class InputNet:
    """An MLP (4 x n_frames -> hidden -> hidden -> n_frames, softplus output) and its training record."""

    def __init__(self, n_frames: int, hidden: int = 128, seed: int = 0):
        import torch

        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g)))
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4 * n_frames, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden),
                torch.nn.GELU(), torch.nn.Linear(hidden, n_frames), torch.nn.Softplus())
        self.n_frames = n_frames
        self.history: list[float] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        s = _scale(x)
        with torch.no_grad():
            inp = torch.as_tensor(np.log1p(np.clip(x / s[:, None, None], 0, None)).reshape(len(x), -1),
                                  dtype=torch.float32)
            out = self.net(inp).numpy().astype(np.float64)
        return out * s[:, None]


def train_input_net(train: InputSet, frames: FrameSchedule, *, epochs: int = 400, lr: float = 3e-3,
                    hidden: int = 128, seed: int = 0) -> InputNet:
    """Full-batch Adam on the frame-duration-weighted squared error of the normalised plasma curve."""
    import torch

    model = InputNet(train.x.shape[-1], hidden, seed)
    s = _scale(train.x)
    x = torch.as_tensor(np.log1p(np.clip(train.x / s[:, None, None], 0, None)).reshape(len(train.x), -1),
                        dtype=torch.float32)
    y = torch.as_tensor(train.plasma / s[:, None], dtype=torch.float32)
    w = torch.as_tensor(frames.duration_s / frames.duration_s.sum(), dtype=torch.float32)
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        opt.zero_grad()
        loss = (((model.net(x) - y) ** 2) * (w + 1.0 / len(w))).sum(-1).mean()
        loss.backward()
        opt.step()
        sched.step()
        model.history.append(float(loss.detach()))
    return model


def predict_input(model: InputNet, x: np.ndarray) -> np.ndarray:
    """Frame-mean plasma (Bq/mL), shape (n, n_frames), from TACs (n, 4, n_frames)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != 4 or x.shape[2] != model.n_frames:
        raise InputError(f"expected TACs (n, 4, {model.n_frames}), got {x.shape}")
    return model(x)
