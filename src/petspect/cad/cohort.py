"""Diagnostic cohorts: subjects drawn with realistic variety, imaged through a resolution + noise model.

Sampler -> seeded deterministic transform (STYLE principle 10): :func:`sample_subjects` draws every random
quantity of a cohort into :class:`SubjectSpec` records (JSON-serialisable through ``petspect._json``);
:func:`simulate_subject` turns one record into an image, bit for bit the same every time.

Variety between subjects
------------------------
* anatomy: the brain phantom's per-subject deformation (global scale ~5 %, rotation ~4 deg, shift ~3 mm and a
  smooth displacement field of ``deformation_mm``), or the thorax's body habitus, breasts, heart position and
  orientation, liver and bowel positions (:mod:`petspect.phantoms.myocardium`);
* global uptake: body weight 55-100 kg, injected activity +-20 % around the protocol's, per-tissue SUVs drawn
  by the tracer table (log-normal, inter-subject CV ~15-30 %) and a smooth 15-20 mm uptake texture;
* disease: severity drawn uniformly in ``severity_range`` (default 0.1-0.9: many mild cases; the brain
  phantom's AD pattern lowers FDG by up to 35 % x severity, the PD pattern removes up to severity x 100 % of
  the putamen's specific DaT binding, posterior first and one side worse); MPI defects in one of the three
  coronary territories with extent 0.25-1 of the territory and severity in ``severity_range`` scaled to a
  20-70 % uptake loss;
* scanner: Gaussian system resolution drawn per subject (``psf_fwhm_mm`` range: PET brain 4.5-7 mm, DaT SPECT
  8-12 mm, MPI SPECT 11-16 mm) and a count level drawn log-uniformly (``peak_counts`` range).

Image model (stated honestly: **not** a projection and reconstruction)
---------------------------------------------------------------------
The phantom is made on a fine grid (``fine_voxel_mm``), blurred with the subject's Gaussian system PSF,
averaged in ``factor``^3 blocks onto the image grid, scaled so that its 99.5th percentile voxel holds
``peak_counts`` expected counts, drawn Poisson, smoothed with a Gaussian post-filter (``post_fwhm_mm``, as
a clinical reconstruction's filter) and scaled back to Bq/mL. Myocardial perfusion images additionally carry
the attenuation of a non-attenuation-corrected reconstruction: the emission is multiplied by Chang's
view-averaged attenuation factor at 140 keV (32 views over 180 deg, computed on the image grid;
:func:`petspect.systems.spect_chang.chang_attenuation_factors`), which creates the inferior (diaphragm) and
anterior (breast) artefacts that make normal studies look abnormal. Real reconstructed noise is
non-stationary and correlated over longer distances than this model's; scatter is absent. The
simulators of :mod:`petspect.simulate` cost 10-60 s per subject here and are not used for the cohorts.

Analysis frame: brain images of every subject share one grid (the template's), and the analyses use
template-space regions without registering the subject first, so the per-subject deformation acts as the
residual misregistration a clinical spatial normalisation leaves (larger here than after a good affine +
non-linear registration). The MPI analysis uses the phantom's LV frame (the clinic's automatic reorientation)
perturbed by 3 mm and 5 deg per subject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["CadTask", "TaskModel", "TASK_MODELS", "CohortConfig", "SubjectSpec", "Cohort", "sample_subjects",
           "simulate_subject", "make_cohort", "image_model"]


class CadTask(str, Enum):
    """The diagnostic tasks."""

    AD = "ad"
    PD = "pd"
    MPI = "mpi"


@dataclass(frozen=True)
class TaskModel:
    """Imaging protocol and disease model of a task (ranges are drawn uniformly, counts log-uniformly)."""

    task: CadTask
    tracer: str
    disease: str  # the brain phantom's disease, or "defect" for MPI
    psf_fwhm_mm: tuple[float, float]
    peak_counts: tuple[float, float]
    post_fwhm_mm: float
    description: str


TASK_MODELS: dict[CadTask, TaskModel] = {
    CadTask.AD: TaskModel(CadTask.AD, "fdg", "alzheimer", (4.5, 7.0), (150.0, 600.0), 4.0,
                          "FDG brain PET, Alzheimer's hypometabolism vs normal"),
    CadTask.PD: TaskModel(CadTask.PD, "dat", "parkinson", (8.0, 12.0), (60.0, 250.0), 6.0,
                          "DaT (I-123 ioflupane) SPECT, presynaptic dopaminergic loss vs normal"),
    CadTask.MPI: TaskModel(CadTask.MPI, "sestamibi", "defect", (11.0, 16.0), (40.0, 160.0), 6.0,
                           "Tc-99m sestamibi myocardial perfusion SPECT without attenuation correction, "
                           "perfusion defect vs normal"),
}


@dataclass(frozen=True)
class CohortConfig:
    """Size and sampling of one task's cohort.

    Attributes
    ----------
    n_normal, n_disease : int
        Subjects per class (>= 2 each).
    fine_voxel_mm : float
        Voxel of the phantom (truth) grid, mm.
    factor : int
        Image voxel = ``factor`` x fine voxel (block average).
    severity_range : (float, float)
        Disease severities are drawn uniformly in it (within [0, 1]).
    deformation_mm : float
        Brain phantom displacement-field SD (mm).
    seed : int
    """

    n_normal: int = 24
    n_disease: int = 24
    fine_voxel_mm: float = 2.5
    factor: int = 2
    severity_range: tuple[float, float] = (0.1, 0.9)
    deformation_mm: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n_normal) < 2 or int(self.n_disease) < 2:
            raise InputError(f"a cohort needs at least 2 subjects per class, got {self.n_normal}/{self.n_disease}")
        lo, hi = self.severity_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise InputError(f"severity_range must satisfy 0 <= low <= high <= 1, got {self.severity_range}")
        if int(self.factor) < 1 or not 0.5 <= float(self.fine_voxel_mm) <= 8.0:
            raise InputError(f"need factor >= 1 and fine_voxel_mm in 0.5..8, got {self.factor}, {self.fine_voxel_mm}")

    @property
    def voxel_mm(self) -> float:
        return float(self.fine_voxel_mm) * int(self.factor)


@dataclass(frozen=True)
class SubjectSpec:
    """Every drawn quantity of one subject (rebuilds the image exactly).

    ``label`` is 1 for disease, 0 for normal; ``severity`` 0 for normals; ``territory`` and ``extent`` only
    for MPI defects; ``weight_kg`` / ``injected_mbq`` the protocol; ``psf_fwhm_mm``, ``peak_counts`` and
    ``post_fwhm_mm`` the imaging; ``seed`` the phantom's seed and ``noise_seed`` the Poisson draw's.
    """

    subject: str
    task: CadTask
    label: int
    severity: float
    seed: int
    noise_seed: int
    weight_kg: float
    injected_mbq: float
    psf_fwhm_mm: float
    peak_counts: float
    post_fwhm_mm: float
    territory: str | None = None
    extent: float | None = None
    frame_jitter: tuple[float, ...] = ()


@dataclass
class Cohort:
    """A task's simulated images and their truth.

    Attributes
    ----------
    task : CadTask
    images : numpy.ndarray, (n, nz, ny, nx) float32
        Bq/mL (attenuated emission for MPI), one per subject, all on grids of one shape.
    labels : numpy.ndarray, (n,) int
    subjects : list of SubjectSpec
    volumes : list of Volume
        Each image's grid (spacing, origin; MPI grids move with the heart); ``data`` is the image.
    frames : list of dict
        MPI: the analysis LV frame per subject (``c``, ``u``, ``ant``, ``sep``, ``long_mm``, ``radius_mm``,
        ``wall_mm``; perturbed truth); empty for brain tasks.
    config : CohortConfig
    """

    task: CadTask
    images: np.ndarray
    labels: np.ndarray
    subjects: list[SubjectSpec]
    volumes: list[Volume]
    frames: list[dict[str, Any]] = field(default_factory=list)
    config: CohortConfig | None = None

    def describe(self) -> dict[str, Any]:
        m = TASK_MODELS[self.task]
        return {"task": self.task.value, "description": m.description, "tracer": m.tracer,
                "n_normal": int((self.labels == 0).sum()), "n_disease": int((self.labels == 1).sum()),
                "image_shape": list(self.images.shape[1:]), "voxel_mm": list(self.volumes[0].spacing_mm),
                "fine_voxel_mm": self.config.fine_voxel_mm if self.config else None,
                "psf_fwhm_mm_range": list(m.psf_fwhm_mm), "peak_counts_range": list(m.peak_counts),
                "post_fwhm_mm": m.post_fwhm_mm,
                "severity_range": list(self.config.severity_range) if self.config else None,
                "image_model": "fine phantom -> Gaussian PSF -> block average -> Poisson at peak_counts -> "
                               "Gaussian post-filter" + (" (x Chang attenuation factor, no AC)"
                                                         if self.task is CadTask.MPI else "")}


def sample_subjects(task: CadTask | str, config: CohortConfig) -> list[SubjectSpec]:
    """Draw the subjects of a cohort (normals first, then patients), from ``config.seed`` only."""
    from petspect.phantoms.tracers import get_tracer

    task = CadTask(task)
    m = TASK_MODELS[task]
    rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), list(CadTask).index(task)]))
    out = []
    n = int(config.n_normal) + int(config.n_disease)
    for i in range(n):
        label = int(i >= config.n_normal)
        sev = float(rng.uniform(*config.severity_range)) if label else 0.0
        w = float(rng.uniform(55.0, 100.0))
        inj = get_tracer(m.tracer).injected_mbq_for(w) * float(rng.uniform(0.8, 1.2))
        psf = float(rng.uniform(*m.psf_fwhm_mm))
        counts = float(math.exp(rng.uniform(math.log(m.peak_counts[0]), math.log(m.peak_counts[1]))))
        territory = extent = None
        if task is CadTask.MPI and label:
            territory = ("lad", "lcx", "rca")[int(rng.integers(3))]
            extent = float(rng.uniform(0.25, 1.0))
        jitter = tuple(float(v) for v in rng.normal(0.0, 1.0, 6)) if task is CadTask.MPI else ()
        out.append(SubjectSpec(f"{task.value}-{i:03d}", task, label, round(sev, 4), int(rng.integers(2**31)),
                               int(rng.integers(2**31)), round(w, 2), round(inj, 2), round(psf, 3), round(counts, 2),
                               m.post_fwhm_mm, territory, None if extent is None else round(extent, 4), jitter))
    return out


def _blur(x: torch.Tensor, fwhm_mm: float, spacing_mm) -> torch.Tensor:
    from petspect.physics.resolution import convolve_axis, gaussian_kernel_1d

    for axis in range(3):
        x = convolve_axis(x, gaussian_kernel_1d(fwhm_mm, spacing_mm[axis], dtype=x.dtype), axis)
    return x


def _pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return x
    nz, ny, nx = (n // factor for n in x.shape)
    x = x[:nz * factor, :ny * factor, :nx * factor]
    return x.reshape(nz, factor, ny, factor, nx, factor).mean(dim=(1, 3, 5))


def pooled_volume(fine: Volume, data: torch.Tensor, factor: int) -> Volume:
    """A Volume holding ``data`` on the ``factor``-times coarser grid of the axial Volume ``fine``."""
    sp = tuple(s * factor for s in fine.spacing_mm)
    shift = [(factor - 1) / 2.0 * fine.spacing_mm[2 - i] for i in range(3)]  # LPS x, y, z <- axes x, y, z
    origin = tuple(o + d for o, d in zip(fine.origin_mm, shift))
    return Volume(data, sp, origin, AXIAL_DIRECTION, unit=fine.unit, modality=fine.modality, meta=dict(fine.meta))


def image_model(fine_activity: torch.Tensor, fine_spacing_mm, *, psf_fwhm_mm: float, factor: int, peak_counts: float,
                post_fwhm_mm: float, noise_seed: int, attenuation: torch.Tensor | None = None) -> torch.Tensor:
    """The module's resolution + noise model: PSF, block average, Poisson at ``peak_counts``, post-filter.

    Parameters
    ----------
    fine_activity : torch.Tensor, (nz, ny, nx)
        Truth on the fine grid (Bq/mL).
    fine_spacing_mm : (dz, dy, dx)
    psf_fwhm_mm, post_fwhm_mm : float
        System resolution and reconstruction post-filter (Gaussian FWHM, mm).
    factor : int
        Block size of the average onto the image grid.
    peak_counts : float
        Expected counts of the image's 99.5th-percentile voxel (sets the noise level; > 0).
    noise_seed : int
    attenuation : torch.Tensor, optional
        Multiplicative factor on the image grid (MPI without AC: Chang's mean attenuation factor).

    Returns
    -------
    torch.Tensor, float32, the image grid (Bq/mL scale of the input)
    """
    if not peak_counts > 0 or not psf_fwhm_mm >= 0 or not post_fwhm_mm >= 0:
        raise InputError(f"need peak_counts > 0 and non-negative FWHMs, got {peak_counts}, {psf_fwhm_mm}, {post_fwhm_mm}")
    x = _pool(_blur(fine_activity.to(torch.float64), psf_fwhm_mm, fine_spacing_mm), int(factor))
    if attenuation is not None:
        x = x * attenuation.to(x.dtype)
    ref = float(torch.quantile(x.flatten()[:: max(1, x.numel() // 2_000_000)], 0.995))
    if not ref > 0:
        raise InputError("the image is empty (99.5th percentile <= 0)")
    gen = torch.Generator().manual_seed(int(noise_seed))
    counts = torch.poisson(x / ref * float(peak_counts), generator=gen)
    coarse_sp = [s * int(factor) for s in fine_spacing_mm]
    y = _blur(counts, post_fwhm_mm, coarse_sp) * (ref / float(peak_counts))
    return y.to(torch.float32)


def _perturbed_frame(rec: dict[str, Any], jitter: tuple[float, ...]) -> dict[str, Any]:
    from petspect.phantoms.shapes import rotation_matrix

    f = {k: np.asarray(v, dtype=np.float64) for k, v in rec["lv_frame"].items()}
    j = np.asarray(jitter if len(jitter) == 6 else (0.0,) * 6)
    rot = rotation_matrix(tuple(5.0 * j[3:]), "zyx")
    sub = rec["sampled"]["subject"]
    return {"c": f["c"] + 3.0 * j[:3], "u": rot @ f["u"], "ant": rot @ f["ant"], "sep": rot @ f["sep"],
            "long_mm": float(sub["lv_long_mm"]), "radius_mm": float(sub["lv_radius_mm"]),
            "wall_mm": float(sub["wall_mm"])}


def simulate_subject(spec: SubjectSpec, config: CohortConfig) -> tuple[Volume, dict[str, Any] | None]:
    """One subject's image (a Volume on the image grid) and, for MPI, its analysis LV frame."""
    m = TASK_MODELS[spec.task]
    if spec.task is CadTask.MPI:
        from petspect.phantoms.myocardium import make_myocardium
        from petspect.systems.spect_chang import chang_attenuation_factors

        ph = make_myocardium(voxel_mm=config.fine_voxel_mm, seed=spec.seed, defect=spec.territory,
                             defect_extent=spec.extent or 0.5, defect_severity=0.2 + 0.5 * spec.severity
                             if spec.label else 0.0, injected_mbq=spec.injected_mbq, weight_kg=spec.weight_kg)
        act = ph["activity"]
        mu = _pool(ph["mu_140"].data.to(torch.float64), config.factor)
        sp = tuple(s * config.factor for s in act.spacing_mm)
        att = chang_attenuation_factors(mu, sp, torch.arange(32, dtype=torch.float64) * (180.0 / 32) - 45.0)
        frame = _perturbed_frame(ph.record, spec.frame_jitter)
    else:
        from petspect.phantoms.brain import make_brain

        ph = make_brain(voxel_mm=config.fine_voxel_mm, seed=spec.seed, tracer=m.tracer,
                        disease=m.disease if spec.label else None, severity=spec.severity,
                        injected_mbq=spec.injected_mbq, weight_kg=spec.weight_kg,
                        deformation_mm=config.deformation_mm)
        act, att, frame = ph["activity"], None, None
    img = image_model(act.data, act.spacing_mm, psf_fwhm_mm=spec.psf_fwhm_mm, factor=config.factor,
                      peak_counts=spec.peak_counts, post_fwhm_mm=spec.post_fwhm_mm, noise_seed=spec.noise_seed,
                      attenuation=att)
    vol = pooled_volume(act, img, config.factor)
    vol.meta.update({"cad_subject": spec.subject, "label": spec.label})
    return vol, frame


def make_cohort(task: CadTask | str, config: CohortConfig, *, progress: bool = True) -> Cohort:
    """Sample and simulate a task's cohort (CPU; seconds per subject at 2-3 mm fine voxels)."""
    from petspect.progress import track

    task = CadTask(task)
    specs = sample_subjects(task, config)
    vols, frames = [], []
    it = track(specs, f"cad {task.value}: simulating") if progress else specs
    for spec in it:
        v, f = simulate_subject(spec, config)
        vols.append(v)
        if f is not None:
            frames.append(f)
    shapes = {tuple(v.shape) for v in vols}
    if len(shapes) != 1:
        raise InputError(f"cohort images have different shapes {sorted(shapes)}")
    images = np.stack([v.data.numpy() for v in vols]).astype(np.float32)
    labels = np.array([s.label for s in specs], dtype=np.int64)
    return Cohort(task, images, labels, specs, vols, frames, config)
