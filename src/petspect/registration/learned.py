"""A learned deformable registration: a small 3D U-Net maps a (moving, fixed) pair to a displacement field.

VoxelMorph-like (Balakrishnan et al, IEEE TMI 2019: a U-Net from the image pair to a dense displacement
field), trained here with **supervision from simulated deformations**, whose true fields are known: each
training pair is an emission image (PET or SPECT, blurred activity with noise) deformed by a random
respiratory-like field (:func:`petspect.registration.simulate.respiratory_field`: amplitude, diaphragm
level and width drawn at random) plus a small random shift, against the phantom's undeformed CT. The loss is
the masked squared end-point error of the predicted field plus a **warp-consistency** term: the moving image
warped (differentiably) by the predicted field must match the moving image warped by the true field. The
network's dense output is averaged on a coarse control grid (``control_vox`` voxels) and interpolated back,
so the field is smooth.

Why both: with the field regression alone (the first version) the network never found the
correspondence between the PET and the CT; its loss stayed at the variance of the randomly signed training
fields and it predicted their mean, a near-zero field (benchmark: TRE 9.62 mm, as without registration).
The image term gives a per-voxel signal wherever the image has edges, and the network then learns; with few
training subjects it learns their anatomy by heart (training loss falls, validation does not), so it needs
many subjects with a few pairs each rather than many pairs of a few subjects.

Conventions: fields are LPS mm ``(ux, uy, uz)`` on the fixed grid, shape ``(nz, ny, nx, 3)``; the
registered image is ``moving(x + v(x))`` (:func:`petspect.registration.simulate.warp`), which is ITK's
displacement-field convention (a fixed-space point plus the displacement is the moving-space point), so
:func:`write_displacement` writes a field ITK, SimpleITK and 3D Slicer read as a displacement transform.
Moving and fixed must be on one grid (:func:`register_learned_on` resamples the moving image first). The
fixed image is a CT (HU / 1000, clipped to [-1, 2]) or an MR (divided by its 99.5th percentile), named by
the model's ``fixed_kind``. A model folder holds ``registration.json`` and ``model.pt``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.registration.simulate import _world_grid, respiratory_field, warp
from petspect.volume import Volume

__all__ = ["FIELD_SCALE_MM", "FIXED_KINDS", "invert_field", "emission_like", "RegPair", "make_pairs",
           "LearnedRegistration", "train_learned_registration", "predict_field", "register_learned",
           "register_learned_on", "end_point_error", "save_learned_registration", "load_learned_registration",
           "write_displacement"]

#: Network outputs are displacements divided by this (mm).
FIELD_SCALE_MM = 10.0
#: What the fixed image of a model is: a CT in HU or an MR (arbitrary units).
FIXED_KINDS = ("ct", "mr")
MODEL_JSON = "registration.json"
MODEL_WEIGHTS = "model.pt"


def invert_field(u: np.ndarray, reference: Volume, *, iterations: int = 10) -> np.ndarray:
    """The inverse ``w`` of a displacement field ``u`` on ``reference``'s grid: ``w(y) = -u(y + w(y))``.

    Fixed-point iteration (converges for fields whose Jacobian of ``u`` has norm below 1, as smooth
    respiratory fields do); ``u`` is interpolated trilinearly.
    """
    w = -np.asarray(u, dtype=np.float64).copy()
    comps = [reference.with_data(torch.from_numpy(np.ascontiguousarray(u[..., i]))) for i in range(3)]
    for _ in range(int(iterations)):
        w = -np.stack([warp(c, w).numpy() for c in comps], axis=-1)
    return w


def emission_like(activity: Volume, *, fwhm_mm: float, counts_at_max: float, rng: np.random.Generator) -> Volume:
    """An emission image: the activity blurred by ``fwhm_mm`` with Poisson noise (scaled to the activity)."""
    from scipy import ndimage

    a = ndimage.gaussian_filter(activity.numpy().astype(np.float64),
                                fwhm_mm / 2.3548 / np.asarray(activity.spacing_mm))
    peak = max(float(a.max()), 1e-12)
    noisy = rng.poisson(np.clip(a, 0, None) / peak * counts_at_max) * peak / counts_at_max
    return activity.with_data(torch.from_numpy(noisy.astype(np.float32)))


@dataclass
class RegPair:
    """One training or test pair: the deformed emission image, the CT it should match and the true field."""

    moving: Volume
    fixed: Volume
    field_mm: np.ndarray  # (nz, ny, nx, 3): moving(x + field(x)) is aligned with fixed
    body: np.ndarray
    labels_moving: Volume | None = None
    labels_fixed: Volume | None = None
    params: dict[str, float] = field(default_factory=dict)


def make_pairs(activity: Volume, ct: Volume, n: int, rng: np.random.Generator, *, labels: Volume | None = None,
               amplitude_mm: tuple[float, float] = (5.0, 15.0), shift_mm: float = 3.0,
               fwhm_mm: float = 8.0, counts_at_max: float = 80.0, fixed: Volume | None = None) -> list[RegPair]:
    """``n`` pairs from one subject (see the module docstring); the amplitude is drawn uniformly.

    ``fixed`` (e.g. the subject's MR on the CT's grid) replaces the CT as the fixed image; the body mask
    always comes from the CT.
    """
    from scipy import ndimage

    body = ndimage.binary_fill_holes(ct.numpy() > -500.0)  # the body, lungs included
    w = _world_grid(ct)
    zlo, zhi = float(w[..., 2].min()), float(w[..., 2].max())
    out = []
    for _ in range(int(n)):
        amp = float(rng.uniform(*amplitude_mm)) * (1 if rng.random() < 0.5 else -1)
        zd = float(rng.uniform(zlo + 0.3 * (zhi - zlo), zhi - 0.3 * (zhi - zlo)))
        width = float(rng.uniform(40.0, 90.0))
        shift = rng.uniform(-shift_mm, shift_mm, 3)
        v = respiratory_field(ct, amplitude_mm=amp, diaphragm_z_mm=zd, width_mm=width) + shift  # the answer
        inv = invert_field(v, ct)
        emis = emission_like(activity, fwhm_mm=fwhm_mm, counts_at_max=counts_at_max, rng=rng)
        pair = RegPair(warp(emis, inv), ct if fixed is None else fixed, v, body,
                       params={"amplitude_mm": amp, "diaphragm_z_mm": zd, "width_mm": width,
                               "shift_mm": shift.tolist()})
        if labels is not None:
            pair.labels_fixed, pair.labels_moving = labels, warp(labels, inv, mode="nearest")
        out.append(pair)
    return out


def _inputs(moving: Volume, fixed: Volume, fixed_kind: str = "ct") -> torch.Tensor:
    if not moving.same_grid(fixed, atol_mm=1e-2):
        raise InputError("learned registration takes moving and fixed on one grid; resample the moving image "
                         "onto the fixed grid first")
    if fixed_kind not in FIXED_KINDS:
        raise InputError(f"fixed_kind must be one of {FIXED_KINDS}, got {fixed_kind!r}")
    m = moving.numpy().astype(np.float32)
    m = m / max(float(np.percentile(m, 99.5)), 1e-12)
    f = fixed.numpy().astype(np.float32)
    if fixed_kind == "ct":
        c = np.clip(f / 1000.0, -1.0, 2.0)
    else:
        c = np.clip(f / max(float(np.percentile(f, 99.5)), 1e-12), 0.0, 2.0)
    return torch.from_numpy(np.stack([m, c]))


@dataclass
class LearnedRegistration:
    """A trained field-predicting network and its training record."""

    net: torch.nn.Module
    record: dict[str, Any] = field(default_factory=dict)


class _FieldNet(torch.nn.Module):
    """A 3D U-Net whose dense output is reduced to a smooth field on a coarse control grid.

    The U-Net's output (``/ FIELD_SCALE_MM`` LPS mm per voxel) is averaged over blocks of
    ``control_vox`` voxels and interpolated back trilinearly: respiratory fields vary over centimetres, so
    this keeps the regression from fitting the image noise voxel by voxel (and makes the field smooth by
    construction). ``control_vox = 1`` keeps the dense output.
    """

    def __init__(self, channels: tuple[int, ...], control_vox: int) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        self.unet = UNet(3, 2, 3, channels=channels, strides=(2,) * (len(channels) - 1), num_res_units=1)
        self.control_vox = int(control_vox)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.unet(x)
        if self.control_vox > 1:
            coarse = torch.nn.functional.avg_pool3d(y, self.control_vox, ceil_mode=True)
            y = torch.nn.functional.interpolate(coarse, size=y.shape[2:], mode="trilinear", align_corners=False)
        return y


def _build(channels: tuple[int, ...], control_vox: int = 1) -> torch.nn.Module:
    return _FieldNet(channels, control_vox)


def _mm_to_grid(reference: Volume, shape_zyx: tuple[int, ...]) -> np.ndarray:
    """3x3 matrix taking an LPS displacement (mm) to grid_sample's normalised (x, y, z) displacement.

    ``shape_zyx`` is the (possibly padded) grid the sampling runs on; ``align_corners=True`` convention.
    """
    to_vox = np.linalg.inv(np.asarray(reference.affine, dtype=np.float64)[:3, :3])  # LPS mm -> (z, y, x) voxels
    scale = np.diag([2.0 / max(n - 1, 1) for n in reversed(shape_zyx)])  # (x, y, z)
    return scale @ to_vox[::-1]


def _warp_torch(image: torch.Tensor, field_mm: torch.Tensor, mm_to_grid: torch.Tensor) -> torch.Tensor:
    """Differentiable ``image(x + u(x))``: image (B, C, Z, Y, X), field (B, 3, Z, Y, X) LPS mm, matrix (B, 3, 3)."""
    b = image.shape[0]
    eye = torch.eye(3, 4, dtype=image.dtype, device=image.device).expand(b, 3, 4)
    base = torch.nn.functional.affine_grid(eye, list(image.shape), align_corners=True)  # (B, Z, Y, X, 3) x,y,z
    disp = torch.einsum("bij,bjzyx->bzyxi", mm_to_grid.to(image.dtype), field_mm)
    return torch.nn.functional.grid_sample(image, base + disp, mode="bilinear", padding_mode="border",
                                           align_corners=True)


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    shape = x.shape[-3:]
    pads = [(-n) % multiple for n in shape]
    pad_w = []
    for p in reversed(pads):
        pad_w += [0, p]
    return torch.nn.functional.pad(x, pad_w, mode="replicate"), tuple(shape)


@torch.no_grad()
def predict_field(model: LearnedRegistration, moving: Volume, fixed: Volume) -> np.ndarray:
    """Displacement field (nz, ny, nx, 3), LPS mm, on the fixed grid."""
    model.net.eval()
    x = _inputs(moving, fixed, model.record.get("fixed_kind", "ct"))[None]
    mult = 2 ** (len(model.record.get("channels", (8, 16, 32))) - 1)
    xp, shape = _pad_to(x, mult)
    dev = next(model.net.parameters()).device
    y = model.net(xp.to(dev)).cpu()[0, :, :shape[0], :shape[1], :shape[2]] * FIELD_SCALE_MM
    return y.permute(1, 2, 3, 0).numpy().astype(np.float64)


def register_learned(model: LearnedRegistration, moving: Volume, fixed: Volume) -> tuple[Volume, np.ndarray]:
    """(moving warped onto the fixed image, the predicted field)."""
    v = predict_field(model, moving, fixed)
    return warp(moving, v), v


def register_learned_on(model: LearnedRegistration, moving: Volume, fixed: Volume, *,
                        nearest: bool = False) -> tuple[Volume, np.ndarray]:
    """:func:`register_learned` for images on any grids sharing a frame of reference.

    The moving image is first resampled onto the fixed grid in world coordinates (background: its minimum),
    then the field is predicted there and the moving image warped (``nearest`` for label maps).
    """
    m = moving
    if not moving.same_grid(fixed, atol_mm=1e-2):
        m = moving.resample_to(fixed, fill_value=float(moving.numpy().min()))
    v = predict_field(model, m, fixed)
    return warp(m, v, mode="nearest" if nearest else "linear"), v


def write_displacement(field_mm: np.ndarray, reference: Volume, path: str | os.PathLike, *,
                       overwrite: bool = False) -> Path:
    """Write a displacement field (nz, ny, nx, 3) LPS mm as an ITK vector image (NIfTI or .nrrd/.mha).

    Read back with ``SimpleITK.DisplacementFieldTransform(sitk.ReadImage(path, sitk.sitkVectorFloat64))``:
    it maps a fixed-space point ``x`` to ``x + v(x)`` in moving space.
    """
    import SimpleITK as sitk

    from petspect._fileio import atomic_path, check_output_path
    from petspect.registration.rigid import to_sitk

    f = np.asarray(field_mm, dtype=np.float64)
    if f.shape != (*reference.shape, 3):
        raise InputError(f"field shape {f.shape} does not match the grid {reference.shape} x 3")
    p = check_output_path(path, overwrite=overwrite)
    img = sitk.GetImageFromArray(f, isVector=True)
    img.CopyInformation(to_sitk(reference))
    suffix = "".join(p.suffixes[-2:]) if p.name.endswith(".nii.gz") else p.suffix
    with atomic_path(p, suffix=suffix) as tmp:
        sitk.WriteImage(img, str(tmp))
    return p


def save_learned_registration(folder: str | os.PathLike, model: LearnedRegistration, *,
                              overwrite: bool = False) -> Path:
    """Write a model folder (``registration.json`` + ``model.pt``) atomically."""
    from petspect._fileio import atomic_dir, check_output_path
    from petspect._json import to_jsonable

    out = check_output_path(folder, overwrite=overwrite, kind="registration-model")
    doc = {"kind": "learned-deformable-registration", "field_scale_mm": FIELD_SCALE_MM,
           "record": to_jsonable(model.record)}
    with atomic_dir(out, kind="registration-model") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.net.state_dict().items()}, tmp / MODEL_WEIGHTS)
        (tmp / MODEL_JSON).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return out


def load_learned_registration(folder: str | os.PathLike, *, device: Any = None) -> LearnedRegistration:
    """Read a model folder written by :func:`save_learned_registration`."""
    from petspect.errors import FormatError
    from petspect.io._paths import require_exists

    p = require_exists(folder)
    js, wt = p / MODEL_JSON, p / MODEL_WEIGHTS
    if not js.is_file() or not wt.is_file():
        raise FormatError(f"not a registration model folder (needs {MODEL_JSON} and {MODEL_WEIGHTS})", path=p)
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
        rec = dict(doc["record"])
        net = _build(tuple(int(c) for c in rec["channels"]), int(rec.get("control_vox", 1)))
        if rec.get("fixed_kind", "ct") not in FIXED_KINDS:
            raise ValueError(f"fixed_kind {rec.get('fixed_kind')!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(f"unreadable {MODEL_JSON}: {e}", path=js) from None
    try:
        net.load_state_dict(torch.load(wt, map_location="cpu", weights_only=True))
    except (EOFError, pickle.UnpicklingError):
        raise FormatError("empty, truncated or not a PyTorch weights file", path=wt) from None
    except (RuntimeError, OSError, ValueError) as e:
        raise FormatError(f"weights do not fit the network of {MODEL_JSON}: {str(e)[:200]}", path=wt) from None
    if device is not None:
        net = net.to(device)
    net.eval()
    return LearnedRegistration(net, rec)


def end_point_error(pred_mm: np.ndarray, true_mm: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean Euclidean distance (mm) between two displacement fields (inside ``mask``)."""
    e = np.linalg.norm(np.asarray(pred_mm) - np.asarray(true_mm), axis=-1)
    return float(e[mask].mean() if mask is not None else e.mean())


def train_learned_registration(train: list[RegPair], validation: list[RegPair], *,
                               channels: tuple[int, ...] = (8, 16, 32), control_vox: int = 4,
                               image_weight: float = 10.0,
                               epochs: int = 20, batch_size: int = 2, lr: float = 3e-3, seed: int = 0,
                               device: Any = "cpu", fixed_kind: str = "ct") -> LearnedRegistration:
    """Train the field network on simulated pairs; the epoch with the lowest validation end-point error is kept.

    Parameters
    ----------
    train, validation : list of RegPair
        Simulated pairs with their true fields (:func:`make_pairs`).
    channels : tuple of int
        U-Net channels per level.
    control_vox : int
        Spacing (voxels) of the coarse grid the field is averaged on (see :class:`_FieldNet`).
    image_weight : float
        Weight of the warp-consistency term: the moving image warped by the predicted field must match it
        warped by the true field (same noise, one modality, so a plain squared difference; intensities
        scaled to ~[0, 1]); it adds to the squared end-point error in units of ``FIELD_SCALE_MM``.
        10 is what the unit test's tiny chest learns best with in a few hundred steps (200 reached 0.63 of the
        no-motion error there, 10 reached 0.45); ``benchmarks/bench_registration.py`` uses 200 on 40^2 x 24
        torsos (200 and 1000 gave the same validation error there; 10 was not run at that size).
    epochs, batch_size, lr, seed, device
        Optimisation (AdamW, one-cycle schedule), seeded shuffling and initialisation.
    fixed_kind : {"ct", "mr"}
        What the pairs' fixed images are (their input scaling; recorded in the model).
    """
    from petspect.train.loop import LoopSettings, fit_tensors

    if not train or not validation:
        raise InputError("learned registration needs training and validation pairs")
    if int(control_vox) < 1 or not (math.isfinite(image_weight) and image_weight >= 0):
        raise InputError("control_vox must be >= 1 and image_weight a finite number >= 0")
    mult = 2 ** (len(channels) - 1)
    xs, ys, ms, ts, gs = [], [], [], [], []
    for p in train:
        x, _ = _pad_to(_inputs(p.moving, p.fixed, fixed_kind)[None], mult)
        y, _ = _pad_to(torch.from_numpy(p.field_mm.transpose(3, 0, 1, 2).astype(np.float32))[None], mult)
        m, _ = _pad_to(torch.from_numpy(p.body.astype(np.float32))[None, None], mult)
        g = torch.from_numpy(_mm_to_grid(p.fixed, tuple(x.shape[-3:])).astype(np.float32))[None]
        xs.append(x)
        ys.append(y / FIELD_SCALE_MM)
        ms.append(m)
        gs.append(g)
        ts.append(_warp_torch(x[:, :1], y, g))  # the moving image brought back by the true field
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _build(tuple(channels), int(control_vox)).to(device)
    model = LearnedRegistration(net, {"channels": list(channels), "control_vox": int(control_vox),
                                      "fixed_kind": fixed_kind})

    def loss(mdl: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y, m, t, g = (b.to(device) for b in batch)
        pred = mdl(x)
        n = m.sum().clamp_min(1.0)
        out = (((pred - y) ** 2).sum(dim=1, keepdim=True) * m).sum() / n
        if image_weight > 0:
            moved = _warp_torch(x[:, :1], pred * FIELD_SCALE_MM, g)
            out = out + image_weight * (((moved - t) ** 2) * m).sum() / n
        return out

    def validate(mdl: torch.nn.Module) -> float:
        return float(np.mean([end_point_error(predict_field(model, p.moving, p.fixed), p.field_mm, p.body)
                              for p in validation]))

    res = fit_tensors(net, [torch.cat(xs), torch.cat(ys), torch.cat(ms), torch.cat(ts), torch.cat(gs)], loss=loss,
                      validate=validate, settings=LoopSettings(epochs=epochs, batch_size=batch_size, lr=lr, mode="min"),
                      generator=torch.Generator().manual_seed(seed), description="training registration net")
    model.record.update({"train_loss": res.train_loss, "val_epe_mm": res.val, "best_epoch": res.best_epoch,
                         "n_train": len(train), "n_validation": len(validation), "epochs": epochs,
                         "image_weight": float(image_weight),
                         "loss": "masked squared end-point error (field / 10 mm) + image_weight x masked squared "
                                 "difference of the moving image warped by the predicted and the true field"})
    if not all(math.isfinite(v) for v in res.val):
        raise InputError("training diverged (non-finite validation error)")
    return model
