"""Apply the CAD study's fitted methods to one brain image: SUVR or SBR, the z-score against the normal
database and the CNN, each with its threshold and probability (the regional SVM is not stored).

The models folder is the ``models/`` folder a ``petspect study cad`` run writes: ``<task>.npz`` (template
grid, normal database, per-method thresholds and Platt maps fitted on the study's out-of-fold scores) and
``<task>_cnn.pt`` (the CNN trained on all of the study's subjects).

The image must already be in the template space of the study (spatially normalised to MNI152 as the
brain phantom is, in Bq/mL, SUV or any unit: every method normalises to a reference region); it is
resampled (trilinear) onto the study's template grid. Myocardial perfusion images need an LV frame and are
not handled here.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petspect.cad.cohort import CadTask
from petspect.errors import DataNotFoundError, FormatError, InputError

__all__ = ["CadResult", "apply_to_image", "APPLY_METHODS"]

APPLY_METHODS = ("suvr", "sbr", "zscore", "cnn")


@dataclass(frozen=True)
class CadResult:
    """One method's result on one image: ``value`` (SUVR, SBR, z-score statistic or CNN logit), ``score``
    (higher = more likely diseased: the negated SUVR/SBR), ``threshold`` (on the score), ``positive``
    (score >= threshold), ``rule`` (the same decision in the value's terms), ``probability`` (Platt map)."""

    task: str
    method: str
    value: float
    score: float
    threshold: float
    positive: bool
    probability: float
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load_npz(models: Path, task: CadTask) -> dict[str, np.ndarray]:
    path = Path(models) / f"{task.value}.npz"
    if not path.is_file():
        raise DataNotFoundError(f"no fitted {task.value} methods (write them with petspect study cad)", path=path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise FormatError(f"not a CAD models file: {exc}", path=path) from None


def _prob(platt: np.ndarray, score: float) -> float:
    mu, sd, a, b = (float(v) for v in platt)
    return float(1.0 / (1.0 + np.exp(-(a * (score - mu) / sd + b))))


def apply_to_image(image: Any, task: CadTask | str, models: str | os.PathLike, *,
                   methods: tuple[str, ...] = APPLY_METHODS, device: str = "cpu") -> list[CadResult]:
    """Results of the stored methods on ``image`` (a Volume in template space)."""
    import torch

    from petspect.cad.baselines import image_features
    from petspect.volume import AXIAL_DIRECTION, Volume

    try:
        task = CadTask(task)
    except ValueError:
        raise InputError(f"unknown task {task!r}; petspect cad handles ad (FDG PET) and pd (DaT SPECT)") from None
    if task is CadTask.MPI:
        raise InputError("petspect cad handles brain images (ad, pd); MPI needs the LV frame of the study")
    bad = [m for m in methods if m not in APPLY_METHODS]
    if bad:
        raise InputError(f"unknown methods {bad}; choose from {APPLY_METHODS}")
    st = _load_npz(Path(models), task)
    ref = Volume(torch.zeros(tuple(int(n) for n in st["grid_shape"])), tuple(float(v) for v in st["grid_spacing_mm"]),
                 tuple(float(v) for v in st["grid_origin_mm"]), AXIAL_DIRECTION)
    img = image.resample_to(ref, mode="linear").data.to(torch.float64).numpy()
    if not np.isfinite(img).all():
        raise InputError(f"the image holds {int((~np.isfinite(img)).sum())} NaN or infinite voxel(s) on the template "
                         f"grid; every method averages regions of it, so none can be computed")
    if img.max() <= 0:
        raise InputError("the image holds no positive values on the template grid (is it in template space?)")
    reference = str(st["reference"]) or "cerebellum"
    f = image_features(task, img[None], [ref], reference=reference if task is CadTask.AD else "cerebellum")
    out = []
    for m in methods:
        if m in ("suvr", "sbr"):
            if m not in f["clinical"]:
                continue
            score = float(f["clinical"][m][0])
            value = -score
        elif m == "zscore":
            sd = np.maximum(st["db_sd"], float(st["db_floor"]))
            z = (st["db_mean"] - f["maps"][0]) / sd
            zt = z[st["target"].astype(bool)]
            score = value = float(np.where(zt > float(st["z_threshold"]), zt, 0.0).mean())
        else:
            score = value = _cnn_logit(Path(models), task, f["cnn_inputs"][0], device)
        if f"{m}_threshold" not in st:
            raise FormatError(f"the models file has no threshold for {m}", path=Path(models) / f"{task.value}.npz")
        thr = float(st[f"{m}_threshold"])
        rule = f"positive when {m} <= {-thr:.4g}" if m in ("suvr", "sbr") else f"positive when {m} >= {thr:.4g}"
        out.append(CadResult(task.value, m, value, score, thr, bool(score >= thr), _prob(st[f"{m}_platt"], score),
                             rule))
    return out


def _cnn_logit(models: Path, task: CadTask, x: np.ndarray, device: str) -> float:
    import torch

    from petspect.cad.cnn import CnnSettings, make_network

    path = models / f"{task.value}_cnn.pt"
    if not path.is_file():
        raise DataNotFoundError("no trained CNN for this task", path=path)
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise FormatError(f"cannot read the CNN checkpoint: {exc}", path=path) from None
    if list(x.shape) != list(ck["input_shape"]):
        raise InputError(f"CNN input {list(x.shape)} differs from the trained {ck['input_shape']}")
    s = ck["settings"]
    settings = CnnSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()})
    net = make_network(settings).to(device)
    net.load_state_dict(ck["state_dict"])
    net.eval()
    with torch.no_grad():
        return float(net(torch.as_tensor(x, dtype=torch.float32, device=device)[None, None]).reshape(-1)[0])
