"""Direct reconstruction: a DeepPET-style encoder-decoder from the corrected sinogram to the image.

Input of each direct plane: the prompts corrected as FBP corrects them, ``(y - b) / (f c)`` where ``f > 0``
(``f`` the multiplicative factors: normalisation and attenuation; ``c`` the calibration scale), i.e. the line
integrals of the activity in Bq/mL x mm, divided by their mean ``m`` over the sinogram (dimensionless, any dose;
no projector is needed). Output: the slice ``(ny, nx)`` in units of ``g m``, times ``g m``, where the gain ``g``
(1/mm, a fixed geometric ratio of mean activity to mean line integral) is the median over the training subjects
of ``mean(truth) / m``, kept in the model (a buffer), so the network's targets are of order 1. Trained with the mean squared error to the
true activity over the field of view (Haggstrom et al, Med Image Anal 54:253, 2019, "DeepPET": 108x faster than
OSEM on a GPU; no projector runs at inference).

Only PET sinograms with one plane per image slice (direct planes, ``max_ring_difference = 0``, as the study's
cohorts) are accepted; other geometries are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from petspect.errors import ConfigError, InputError
from petspect.learned_recon.cases import ReconCase
from petspect.learned_recon.nets import DeepPetNet, fit_mse
from petspect.systems.records import Modality

__all__ = ["DirectSettings", "corrected_sinogram", "direct_gain", "train_direct", "reconstruct_direct"]


@dataclass(frozen=True)
class DirectSettings:
    widths: tuple[int, ...] = (16, 32, 64)
    epochs: int = 60
    batch_size: int = 4
    lr: float = 2e-3
    seed: int = 0


def corrected_sinogram(case: ReconCase) -> tuple[torch.Tensor, float]:
    """``(y - b) / (f c) / m`` per direct plane, ``(planes, 1, views, radial)`` float32, and ``m`` (see the module
    docstring)."""
    data = case.data
    if data.modality is not Modality.PET:
        raise InputError("direct reconstruction is implemented for PET sinograms")
    y = data.prompts.to(torch.float32)
    if y.ndim != 3:
        raise InputError(f"direct reconstruction takes non-TOF sinograms (planes, views, radial); got {tuple(y.shape)}")
    nz = case.sens.shape[0]
    if y.shape[0] != nz:
        raise InputError(f"the sinogram has {y.shape[0]} planes for {nz} slices: direct reconstruction needs one "
                         "direct plane per slice (max ring difference 0)")
    net = y - (data.additive.to(torch.float32) if data.additive is not None else 0.0)
    f = data.multiplicative(attenuation=True)
    f = torch.ones_like(y) if f is None else f.to(torch.float32)
    scale = float(case.system.scale)
    corr = torch.where(f > 0, net / (f * scale).clamp_min(1e-30), torch.zeros_like(net))
    m = float(corr.mean())
    if not m > 0:
        raise InputError(f"subject {case.subject}: the corrected sinogram has no net counts")
    return (corr / m)[:, None], m


def direct_gain(cases: Sequence[ReconCase]) -> float:
    """Median over ``cases`` of ``mean(truth) / m`` (1/mm; see the module docstring)."""
    ratios = []
    for c in cases:
        if c.truth is None:
            raise ConfigError(f"subject {c.subject} has no true activity to train on")
        ratios.append(float(c.truth.data.to(torch.float64).mean()) / corrected_sinogram(c)[1])
    return float(torch.tensor(ratios).median())


def _stack(cases: Sequence[ReconCase], gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ts = [], []
    for c in cases:
        if c.truth is None:
            raise ConfigError(f"subject {c.subject} has no true activity to train on")
        x, m = corrected_sinogram(c)
        xs.append(x)
        ts.append((c.truth.data.to(torch.float32) / (gain * m))[:, None])
    return torch.cat(xs), torch.cat(ts)


def train_direct(train: Sequence[ReconCase], val: Sequence[ReconCase], settings: DirectSettings,
                 log: Any = None) -> tuple[DeepPetNet, list[dict[str, float]]]:
    """Train :class:`~petspect.learned_recon.nets.DeepPetNet` on the training planes (MSE in units of g m);
    keep the epoch with the lowest validation MSE."""
    gain = direct_gain(train)
    x, t = _stack(train, gain)
    xv, tv = _stack(val, gain)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings.seed))
        model = DeepPetNet(tuple(t.shape[-2:]), settings.widths, gain=gain)
    res, history = fit_mse(model, lambda m, inp: m(inp), x, t, xv, tv, epochs=settings.epochs,
                           batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
                           description="direct network")
    if log:
        log(f"  direct: best epoch {res.best_epoch + 1 if res.best_epoch is not None else '-'} of {len(res.val)}, "
            f"validation MSE {min(res.val):.4g} (units of g m)")
    return model, history


def reconstruct_direct(model: DeepPetNet, case: ReconCase) -> torch.Tensor:
    """The image ``(z, y, x)`` in Bq/mL: corrections, the network, and the scale (everything timed by the study)."""
    if tuple(model.image_shape) != tuple(case.sens.shape[1:]):
        raise InputError(f"the direct network makes {model.image_shape} slices; the grid is {tuple(case.sens.shape[1:])}")
    model.eval()
    with torch.no_grad():
        x, m = corrected_sinogram(case)
        return model(x)[:, 0] * (float(model.gain) * m)
