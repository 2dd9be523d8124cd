"""One subject of a cohort as the learned reconstruction methods see it.

A :class:`ReconCase` holds the low-count acquisition (the methods' input: prompts and the scanner's own
estimate of the additive term, :mod:`petspect.simulate.no_inverse_crime`), its calibrated system model, and,
for training and scoring only, the full-count level, the true activity and the label maps. Images are in the
acquisition's unit (Bq/mL); :attr:`ReconCase.image_scale` (the uniform image whose projection holds the net
counts) is the normalisation every network uses, so they work in dimensionless units at any dose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from petspect.errors import ConfigError, DataNotFoundError
from petspect.systems.acquisition import AcquisitionData, SystemModel, list_levels, load_acquisition, system_model

__all__ = ["ReconCase", "load_case", "image_scale", "sensitivity_image"]


def sensitivity_image(system: SystemModel) -> torch.Tensor:
    """``A^T 1`` of the calibrated model (counts per Bq/mL in each voxel), float32."""
    op = system.operator
    dev = next((b.device for b in op.buffers()), torch.device("cpu"))
    with torch.no_grad():
        return op.adjoint(torch.ones(op.out_shape, dtype=torch.float32, device=dev))


def image_scale(data: AcquisitionData, sens: torch.Tensor) -> float:
    """``sum(y - b)_+ / sum(A^T 1)``: the value of the uniform image that projects to the net counts (Bq/mL)."""
    net = float(data.prompts.to(torch.float64).sum())
    if data.additive is not None:
        net -= float(data.additive.to(torch.float64).sum())
    total = float(sens.to(torch.float64).sum())
    if not total > 0:
        raise ConfigError("the system has zero sensitivity")
    return max(net, 1.0) / total


@dataclass
class ReconCase:
    """One subject: low-count data and model, and (training/scoring only) full-count data and truth.

    Attributes
    ----------
    subject : str
    data : AcquisitionData
        The input level (e.g. 10 % dose) with its own additive estimate.
    system : SystemModel
        Its calibrated model (attenuation corrected).
    sens : torch.Tensor
        ``A^T 1`` of ``system``.
    scale : float
        :func:`image_scale` of the input (Bq/mL).
    full : AcquisitionData, optional
        The full-count level of the same scan (training targets of projection-domain methods).
    truth, labels, lesions : Volume, optional
        True activity on the reconstruction grid, organ labels and lesion instances.
    label_names : dict
    """

    subject: str
    data: AcquisitionData
    system: SystemModel
    sens: torch.Tensor
    scale: float
    full: AcquisitionData | None = None
    truth: Any = None
    labels: Any = None
    lesions: Any = None
    label_names: dict[int, str] = field(default_factory=dict)

    @property
    def support(self) -> torch.Tensor:
        """Voxels the system sees (``A^T 1 > 0``)."""
        return self.sens > 0


def load_case(root: str | os.PathLike, entry: dict[str, str], level: str, *, full_level: str | None = "d100",
              with_truth: bool = True, device: Any = None) -> ReconCase:
    """The :class:`ReconCase` of a dataset entry (``entry["subject"]`` is the acquisition folder's name).

    Parameters
    ----------
    root : path
        Dataset folder.
    entry : dict
        The dataset.json entry (``activity``, ``labels``, ``lesions`` keys are read when ``with_truth``).
    level : str
        The input level, e.g. ``d010``.
    full_level : str, optional
        The full-count level loaded as ``full`` (None: not loaded).
    """
    from petspect.io import load

    root = Path(root)
    sub = str(entry.get("subject", ""))
    folder = root / sub
    if not (folder / "acquisition.json").is_file():
        raise DataNotFoundError(f"subject {sub!r} has no acquisition folder", path=folder)
    levels = list_levels(folder)
    for lv in [level] + ([full_level] if full_level else []):
        if lv not in levels:
            raise ConfigError(f"subject {sub} has no level {lv!r}; stored: {levels}", path=folder)
    data = load_acquisition(folder, level=level)
    system = system_model(data, device=device)
    sens = sensitivity_image(system)
    full = load_acquisition(folder, level=full_level) if full_level else None
    truth = labels = lesions = None
    if with_truth:
        truth = load(root / entry["activity"]) if "activity" in entry else None
        labels = load(root / entry["label"]) if "label" in entry else None
        lesions = load(root / entry["lesions"]) if "lesions" in entry else None
    return ReconCase(sub, data, system, sens, image_scale(data, sens), full, truth, labels, lesions)
