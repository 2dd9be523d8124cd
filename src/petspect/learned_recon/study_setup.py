"""Settings and cohorts of ``petspect study recon`` (presets ``tiny``, ``quick``, ``full``).

The PET cohort is the ``quick`` cohort preset cut to a thin slab (one direct plane per slice, 4x view mashing)
simulated without inverse crime (:mod:`petspect.simulate.no_inverse_crime`: truth on a 2x finer grid with a 4 mm
detector blur, reconstruction on the coarse grid with estimated randoms and scatter); the methods get the 10 %
dose level. The TOF PET cohort is the same kind of slab, thinner and coarser for CPU time (``tof_*`` settings), on
the whole-body scanner with its 214 ps TOF resolution binned into ``tof_bins`` bins of ``tof_bin_width_ps`` (the
scanner's own 33 bins of 143 ps in ``full``). The SPECT cohort is Tc-99m MDP torsos on the LEHR camera with a
4-multiple number of views, at 100 % and ``spect_dose_percent`` (counts thinned), also without inverse crime (truth
on a 2x finer grid through the collimator model, TEW scatter estimate per level).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from petspect._registry import Registry
from petspect.learned_recon.dip import DipSettings
from petspect.learned_recon.direct import DirectSettings
from petspect.learned_recon.projection_denoise import ProjectionSettings
from petspect.learned_recon.sparse_view import SparseSettings
from petspect.learned_recon.unrolled import UnrolledSettings

__all__ = ["ReconStudySettings", "RECON_STUDY_PRESETS", "study_settings", "pet_config", "tof_config", "spect_config"]


@dataclass
class ReconStudySettings:
    """Everything a recon study run depends on (recorded in summary.json)."""

    preset: str
    seed: int = 2026
    pet_subjects: int = 12
    pet_shape: tuple[int, int, int] = (4, 64, 64)
    pet_voxel_mm: float = 6.0
    view_mashing: int = 4
    dose_percent: float = 10.0
    spect_subjects: int = 10
    spect_shape: tuple[int, int, int] = (4, 64, 64)
    spect_voxel_mm: float = 6.0
    spect_views: int = 64
    split: tuple[float, float, float] = (0.5, 0.17, 0.33)
    workers: int = 1
    osem_grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "iterations": (2.0, 4.0, 8.0), "post_filter_fwhm_mm": (0.0, 6.0, 9.0)})
    map_grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "beta": (0.01, 0.03, 0.1, 0.3), "gamma": (2.0,)})
    osem_subsets: int = 5
    map_iterations: int = 6
    budget_trials: int = 9
    image_unet_epochs: int = 20
    projection: ProjectionSettings = field(default_factory=lambda: ProjectionSettings(widths=(8, 16, 32), epochs=15))
    direct: DirectSettings = field(default_factory=lambda: DirectSettings(widths=(8, 16, 32), epochs=30))
    unrolled: UnrolledSettings = field(default_factory=lambda: UnrolledSettings(n_blocks=3, n_subsets=5, widths=(8, 16),
                                                                                epochs=6))
    dip: DipSettings = field(default_factory=lambda: DipSettings(widths=(8, 16), checkpoints=(20, 40, 80),
                                                                 warm_iterations=40))
    sparse: SparseSettings = field(default_factory=lambda: SparseSettings(widths=(8, 16, 32), epochs=30))
    spect_osem_iterations: int = 4
    spect_osem_subsets: int = 8
    # SPECT low-count projections -> full count (projection-domain denoising), then OSEM tuned on validation
    spect_dose_percent: float = 10.0
    spect_low_grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "iterations": (2.0, 4.0, 8.0), "post_filter_fwhm_mm": (0.0, 9.0, 15.0)})
    spect_projection: ProjectionSettings = field(default_factory=lambda: ProjectionSettings(widths=(8, 16, 32),
                                                                                            epochs=15))
    # TOF PET: a thinner, coarser slab (TOF projection costs ~n_tof_bins times more on the CPU)
    tof_subjects: int = 8
    tof_shape: tuple[int, int, int] = (2, 48, 48)
    tof_voxel_mm: float = 8.0
    tof_bins: int | None = 9  # None: the scanner's own TOF binning
    tof_bin_width_ps: float | None = 400.0
    tof_split: tuple[float, float, float] = (0.5, 0.125, 0.375)
    tof_osem_grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "iterations": (1.0, 2.0, 4.0), "post_filter_fwhm_mm": (0.0, 8.0, 12.0)})
    tof_projection: ProjectionSettings = field(default_factory=lambda: ProjectionSettings(widths=(8, 16, 32),
                                                                                          epochs=15))
    n_boot: int = 2000


def _quick() -> ReconStudySettings:
    """About 10 minutes on an idle 2-core CPU: 12 PET subjects (4 x 64 x 64 voxels of 6 mm), 10 SPECT (64 views)."""
    return ReconStudySettings(preset="quick")


def _tiny() -> ReconStudySettings:
    """Seconds, for tests: 5 PET and 5 SPECT subjects of 4 x 32 x 32 voxels of 12 mm, one or two epochs each."""
    return ReconStudySettings(
        preset="tiny", pet_subjects=5, pet_shape=(4, 32, 32), pet_voxel_mm=12.0, view_mashing=10, spect_subjects=5,
        spect_shape=(4, 32, 32), spect_voxel_mm=12.0, spect_views=16, split=(0.4, 0.2, 0.4),
        osem_grid={"iterations": (2.0, 3.0), "post_filter_fwhm_mm": (0.0, 12.0)}, map_grid={"beta": (0.05,), "gamma": (2.0,)},
        osem_subsets=2, map_iterations=2, budget_trials=4, image_unet_epochs=1,
        projection=ProjectionSettings(widths=(4, 8), epochs=1, batch_size=2),
        direct=DirectSettings(widths=(4, 8, 8), epochs=1, batch_size=2),
        unrolled=UnrolledSettings(n_blocks=2, n_subsets=2, widths=(4, 8), epochs=1),
        dip=DipSettings(widths=(4, 8), checkpoints=(2, 4), warm_iterations=2, n_subsets=2),
        sparse=SparseSettings(widths=(4, 8), epochs=1, batch_size=2), spect_osem_iterations=2, spect_osem_subsets=2,
        spect_low_grid={"iterations": (2.0,), "post_filter_fwhm_mm": (0.0, 12.0)},
        spect_projection=ProjectionSettings(widths=(4, 8), epochs=1, batch_size=2), tof_subjects=5,
        tof_shape=(1, 24, 24), tof_voxel_mm=16.0, tof_bins=5, tof_bin_width_ps=600.0, tof_split=(0.4, 0.2, 0.4),
        tof_osem_grid={"iterations": (1.0,), "post_filter_fwhm_mm": (0.0, 16.0)},
        tof_projection=ProjectionSettings(widths=(4, 8), epochs=1, batch_size=2), n_boot=200)


def _full() -> ReconStudySettings:
    """Realistic sizes, meant for a GPU: 40 PET subjects of 12 x 128 x 128 voxels of 4 mm, 20 SPECT (120 views)."""
    return ReconStudySettings(
        preset="full", pet_subjects=40, pet_shape=(12, 128, 128), pet_voxel_mm=4.0, view_mashing=2, spect_subjects=20,
        spect_shape=(16, 128, 128), spect_voxel_mm=4.8, spect_views=120, workers=4, image_unet_epochs=100,
        projection=ProjectionSettings(widths=(32, 64, 128), epochs=60),
        direct=DirectSettings(widths=(32, 64, 128), epochs=150),
        unrolled=UnrolledSettings(n_blocks=6, n_subsets=6, widths=(32, 64), epochs=40),
        dip=DipSettings(checkpoints=(50, 100, 200, 400, 800)), sparse=SparseSettings(widths=(32, 64, 128), epochs=60),
        spect_low_grid={"iterations": (2.0, 4.0, 8.0, 12.0), "post_filter_fwhm_mm": (0.0, 4.8, 7.2, 9.6)},
        spect_projection=ProjectionSettings(widths=(32, 64, 128), epochs=60), tof_subjects=30,
        tof_shape=(12, 128, 128), tof_voxel_mm=4.0, tof_bins=None, tof_bin_width_ps=None,
        tof_split=(0.6, 0.13, 0.27), tof_osem_grid={"iterations": (1.0, 2.0, 3.0, 4.0),
                                                    "post_filter_fwhm_mm": (0.0, 4.0, 6.0, 8.0)},
        tof_projection=ProjectionSettings(widths=(32, 64, 128), epochs=60))


#: Named study settings (factories of fresh :class:`ReconStudySettings`).
RECON_STUDY_PRESETS: Registry[Callable[[], ReconStudySettings]] = Registry(
    "recon study preset", {"tiny": _tiny, "quick": _quick, "full": _full})


def study_settings(preset: str) -> ReconStudySettings:
    return RECON_STUDY_PRESETS.lookup(preset)()


def _split(config, s: ReconStudySettings) -> None:
    config.split.train, config.split.validation, config.split.test = s.split


def pet_config(s: ReconStudySettings):
    """The PET cohort configuration (see the module docstring)."""
    from petspect.simulate.presets import get_preset

    cfg = get_preset("quick")
    cfg.name, cfg.subjects, cfg.seed = f"recon-study-pet-{s.preset}", int(s.pet_subjects), int(s.seed)
    cfg.description = "petspect recon study: thin-slab FDG torsos, direct-plane PET, 100 and 10 % dose"
    cfg.dose_percents = [100.0, float(s.dose_percent)]
    cfg.phantom.voxel_mm = float(s.pet_voxel_mm)
    cfg.phantom.params = {"fov": "chest-abdomen", "shape": list(s.pet_shape)}
    cfg.scanner.view_mashing = int(s.view_mashing)
    cfg.scanner.params = {"n_rings": int(s.pet_shape[0]), "ring_spacing_mm": float(s.pet_voxel_mm)}
    cfg.recon.algorithms = ["osem"]
    _split(cfg, s)
    return cfg.validate()


def tof_config(s: ReconStudySettings):
    """The TOF PET cohort configuration: :func:`pet_config`'s slab with the ``tof_*`` settings, TOF on.

    The cohort's stored images are not used by the study: one OSEM iteration, no non-attenuation-corrected image.
    """
    cfg = pet_config(s)
    cfg.name, cfg.subjects, cfg.seed = f"recon-study-tof-{s.preset}", int(s.tof_subjects), int(s.seed) + 2
    cfg.description = "petspect recon study: thin-slab FDG torsos, direct-plane TOF PET, 100 and 10 % dose"
    cfg.phantom.voxel_mm = float(s.tof_voxel_mm)
    cfg.phantom.params = {"fov": "chest-abdomen", "shape": list(s.tof_shape)}
    cfg.scanner.tof = True
    params = {"n_rings": int(s.tof_shape[0]), "ring_spacing_mm": float(s.tof_voxel_mm)}
    if s.tof_bins is not None:
        params.update(n_tof_bins=int(s.tof_bins), tof_bin_width_ps=float(s.tof_bin_width_ps))
    cfg.scanner.params = params
    cfg.recon.nac, cfg.recon.iterations = False, 1  # stored images unused; 1 iteration also seeds the scatter estimate
    cfg.split.train, cfg.split.validation, cfg.split.test = s.tof_split
    return cfg.validate()


def spect_config(s: ReconStudySettings):
    """The SPECT cohort configuration: full dose (the sparse-view task thins views) and ``spect_dose_percent``
    (the projection-domain denoiser's input)."""
    from petspect.simulate.config import AcquisitionConfig, ReconConfig, ScannerConfig
    from petspect.simulate.presets import get_preset

    cfg = get_preset("spect-tc99m")
    cfg.name, cfg.subjects, cfg.seed = f"recon-study-spect-{s.preset}", int(s.spect_subjects), int(s.seed) + 1
    cfg.dose_percents = [100.0, float(s.spect_dose_percent)]
    cfg.phantom.voxel_mm = float(s.spect_voxel_mm)
    cfg.phantom.params = {"fov": "chest-abdomen", "shape": list(s.spect_shape)}
    cfg.scanner = ScannerConfig(modality="spect", preset="spect-lehr", n_views=int(s.spect_views), radius_mm=250.0)
    cfg.acquisition = AcquisitionConfig(scan_s=20.0 * int(s.spect_views))
    cfg.recon = ReconConfig(algorithms=["osem"], iterations=int(s.spect_osem_iterations),
                            subsets=int(s.spect_osem_subsets), nac=False)
    _split(cfg, s)
    return cfg.validate()
