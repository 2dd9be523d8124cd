"""Named cohort presets: ``quick``, ``quick-4mm``, ``bench``, ``brain-fdg``, ``wholebody-fdg``, ``spect-tc99m``, ``lu177-spect``.

``quick`` is small enough for tests and the demo (seconds per case on a 2-core CPU); the others use
clinical voxel sizes and scanner models. Every preset is a :class:`DatasetConfig`; print one with
``petspect simulate PRESET --show-config`` and save it as TOML to change it.
"""

from __future__ import annotations

from collections.abc import Callable

from petspect._registry import Registry
from petspect.simulate.config import (AcquisitionConfig, DatasetConfig, PhantomConfig, ReconConfig, ScannerConfig,
                                      SplitConfig)


def quick() -> DatasetConfig:
    """Small chest-abdomen FDG torsos at 100 and 10 % dose, on the whole-body ring cut to 12 rings of 6 mm.

    Direct planes only (one per 6 mm slice) and 4x view mashing keep it at seconds per case; the
    counts are those of the full scanner (see :mod:`petspect.systems.pet`).
    """
    return DatasetConfig(
        name="quick", description="petspect quick cohort: small FDG torsos, 2D-ring PET, 100 and 10 % dose",
        subjects=10, seed=2026, dose_percents=[100.0, 10.0], time_percents=[], realisations=1,
        phantom=PhantomConfig(kind="torso", voxel_mm=6.0, tracer="fdg",
                              params={"fov": "chest-abdomen", "shape": [12, 64, 64]}),
        scanner=ScannerConfig(modality="pet", preset="wholebody", tof=False, max_ring_difference=0, view_mashing=4,
                              params={"n_rings": 12, "ring_spacing_mm": 6.0}),
        acquisition=AcquisitionConfig(scan_s=180.0, randoms_fraction=0.15),
        recon=ReconConfig(algorithms=["osem", "map"], iterations=3, subsets=19, nac=False, post_filter_fwhm_mm=6.0,
                          beta=0.02),
        split=SplitConfig(train=0.5, validation=0.2, test=0.3),
    )


def quick_4mm() -> DatasetConfig:
    """The ``quick`` torsos at 4 mm (18 x 100 x 100 voxels, 72 x 400 x 400 mm), 18 rings of 4 mm.

    The same anatomy, tracer, counts and reconstruction as ``quick`` at a clinical voxel size (the quick
    preset stays at 6 mm for the tests): about 1.7x the simulation time per subject of ``quick``. The 288 radial
    bins (460 mm) cover arms that reach beyond the grid's inscribed circle.
    """
    cfg = quick()
    cfg.name = "quick-4mm"
    cfg.description = "petspect quick cohort at 4 mm: FDG torsos, 2D-ring PET, 100 and 10 % dose"
    cfg.phantom = PhantomConfig(kind="torso", voxel_mm=4.0, tracer="fdg",
                                params={"fov": "chest-abdomen", "shape": [18, 100, 100]})
    cfg.scanner = ScannerConfig(modality="pet", preset="wholebody", tof=False, max_ring_difference=0, view_mashing=4,
                                params={"n_rings": 18, "ring_spacing_mm": 4.0, "n_radial": 288})
    return cfg


def bench() -> DatasetConfig:
    """``petspect bench``'s cohort: the quick torsos at 4 mm over the whole chest-abdomen (128 x 100 x 100 voxels,
    512 x 400 x 400 mm), 40 subjects on a 128-ring cut of the whole-body scanner (direct planes, as the demo).

    About 7x the demo's simulation time per subject; cohort simulation runs on the CPU with one worker per
    core, so this is sized for a many-core machine.
    """
    cfg = quick_4mm()
    cfg.name, cfg.subjects, cfg.seed = "bench", 40, 2031
    cfg.description = "petspect bench cohort: whole chest-abdomen FDG torsos at 4 mm, 2D-ring PET, 100 and 10 % dose"
    cfg.phantom.params = {"fov": "chest-abdomen", "shape": [128, 100, 100]}
    cfg.scanner.params = {"n_rings": 128, "ring_spacing_mm": 4.0, "n_radial": 288}
    return cfg


def wholebody_fdg() -> DatasetConfig:
    """Whole-body FDG torsos at 4 mm on the whole-body TOF scanner, 100 to 1 % dose."""
    return DatasetConfig(
        name="wholebody-fdg", description="FDG torsos, whole-body TOF PET, dose 100..1 %",
        subjects=40, seed=11, dose_percents=[100.0, 50.0, 25.0, 10.0, 5.0, 1.0], time_percents=[50.0, 25.0],
        realisations=2,
        phantom=PhantomConfig(kind="torso", voxel_mm=4.0, tracer="fdg", params={"fov": "chest-abdomen"}),
        scanner=ScannerConfig(modality="pet", preset="wholebody", tof=True, max_ring_difference=None, view_mashing=2),
        acquisition=AcquisitionConfig(scan_s=120.0),
        recon=ReconConfig(algorithms=["osem", "map"], iterations=3, subsets=10),
    )


def brain_fdg() -> DatasetConfig:
    """FDG brains (MNI152-based, with graded Alzheimer-like patterns) on the brain scanner."""
    return DatasetConfig(
        name="brain-fdg", description="FDG brains with graded disease patterns, brain PET, dose 100..5 %",
        subjects=30, seed=12, dose_percents=[100.0, 25.0, 10.0, 5.0], realisations=2,
        phantom=PhantomConfig(kind="brain", voxel_mm=2.0, tracer="fdg"),
        scanner=ScannerConfig(modality="pet", preset="brain", tof=False, max_ring_difference=None, view_mashing=2),
        acquisition=AcquisitionConfig(scan_s=600.0),
        recon=ReconConfig(algorithms=["osem", "map"], iterations=4, subsets=8),
    )


def spect_tc99m() -> DatasetConfig:
    """Tc-99m SPECT of torsos (bone MDP uptake) with an LEHR collimator, 120 views."""
    return DatasetConfig(
        name="spect-tc99m", description="Tc-99m MDP torsos, LEHR SPECT, dose 100..10 %",
        subjects=20, seed=13, dose_percents=[100.0, 50.0, 25.0, 10.0],
        phantom=PhantomConfig(kind="torso", voxel_mm=4.8, tracer="mdp", params={"fov": "chest-abdomen"}),
        scanner=ScannerConfig(modality="spect", preset="spect-lehr", n_views=120, radius_mm=250.0),
        acquisition=AcquisitionConfig(scan_s=20.0 * 120),
        recon=ReconConfig(algorithms=["osem"], iterations=4, subsets=10),
    )


def lu177_spect() -> DatasetConfig:
    """Lu-177 PSMA therapy SPECT (medium-energy collimator, 208 keV window) at 4, 24 and 96 h.

    Every subject is scanned at three time points after therapy: same anatomy, organ activities from
    the tracer's time-activity curves (:func:`petspect.phantoms.tracers.time_activity_curves`), the
    input of time-integrated activity and dosimetry.
    """
    return DatasetConfig(
        name="lu177-spect", description="Lu-177 PSMA torsos, ME SPECT 208 keV, 4/24/96 h, dose 100..25 %",
        subjects=20, seed=14, dose_percents=[100.0, 50.0, 25.0], time_points_h=[4.0, 24.0, 96.0],
        phantom=PhantomConfig(kind="torso", voxel_mm=4.8, tracer="lu177-psma", params={"fov": "chest-abdomen"}),
        scanner=ScannerConfig(modality="spect", preset="spect-me", n_views=60, radius_mm=250.0),
        acquisition=AcquisitionConfig(scan_s=40.0 * 60),
        recon=ReconConfig(algorithms=["osem"], iterations=4, subsets=10),
    )


#: Cohort presets (factories of fresh :class:`DatasetConfig` objects).
PRESETS: Registry[Callable[[], DatasetConfig]] = Registry("cohort preset", {
    "quick": quick,
    "quick-4mm": quick_4mm,
    "bench": bench,
    "wholebody-fdg": wholebody_fdg,
    "brain-fdg": brain_fdg,
    "spect-tc99m": spect_tc99m,
    "lu177-spect": lu177_spect,
}, hint="or give a .toml file")


def get_preset(name: str) -> DatasetConfig:
    """A fresh copy of a preset configuration; :class:`~petspect._registry.UnknownNameError` lists the names."""
    return PRESETS.lookup(name)().validate()
