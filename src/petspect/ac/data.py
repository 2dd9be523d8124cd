"""Attenuation-correction cases: a fine-grid truth, TOF PET raw data, and what a scanner would have.

One :class:`AcCase` per subject, made without an inverse crime (Kaipio & Somersalo 2007):

1. the phantom (torso or brain, any tracer) is generated at ``voxel_mm / 2`` (a thin slab);
2. the TOF sinogram is projected from that fine truth with an image-space detector blur
   (``truth_psf_fwhm_mm``), its scatter is the single-scatter simulation of the fine activity and
   attenuation (:mod:`petspect.physics.scatter_sss`) and uniform randoms are added; prompts are a Poisson
   draw, the delayed window another one;
3. the reconstruction grid is twice as coarse; CT, MR T1, the UTE-like bone image and labels are the
   fine images brought onto it (block means; labels sub-sampled). The additive term is **estimated** per
   attenuation map by :func:`petspect.ac.correct.reconstruct_with_mu` (smoothed delayed window, SSS of a
   first image scaled to the tails).

The scanner is a one-ring-per-slice TOF cut of the whole-body preset (ring radius 412.5 mm, 214 ps FWHM;
Biograph Vision, van Sluis et al, J Nucl Med 60:1031, 2019) with coarser crystals (288 per ring) and TOF
bins (286 ps) to fit a 2-core CPU; direct planes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from petspect.errors import InputError

__all__ = ["AcCase", "ac_scanner", "make_case"]


def ac_scanner(n_rings: int, ring_spacing_mm: float):
    """The study's TOF ring (module docstring): ``n_rings`` rings ``ring_spacing_mm`` apart."""
    from petspect.geometry.pet import get_pet_scanner

    base = get_pet_scanner("wholebody")
    return replace(base, name="ac-tof-ring", crystals_per_ring=288, n_rings=int(n_rings),
                   ring_spacing_mm=float(ring_spacing_mm), crystal_size_mm=(8.9, float(ring_spacing_mm), 20.0),
                   fov_diameter_mm=560.0, tof_bin_width_ps=286.0, n_tof_bins=15, block_crystals=(4, 1))


@dataclass
class AcCase:
    """One subject: the raw data and the images a scanner (or the truth) has on the reconstruction grid.

    Attributes
    ----------
    data : AcquisitionData
        TOF prompts; ``additive`` holds the smoothed delayed-window randoms only (scatter is estimated
        per attenuation map); ``attenuation`` None.
    ct_hu, mu_ct, mr_t1, ute, labels : torch.Tensor, (z, y, x)
        CT (HU), its 511 keV mu (1/mm, the reference map), MR T1 (a.u.), UTE-like bone image (a.u.),
        tissue labels.
    label_names : dict
    activity_true : torch.Tensor
        The fine truth averaged onto the grid (Bq/mL).
    suv_factor : float
        SUV per Bq/mL.
    scatter_true : torch.Tensor
        The expected scatter of the simulation (counts, non-TOF sinogram): the truth of scatter estimates.
    info : dict
    """

    data: Any
    ct_hu: torch.Tensor
    mu_ct: torch.Tensor
    mr_t1: torch.Tensor
    ute: torch.Tensor
    labels: torch.Tensor
    label_names: dict[int, str]
    activity_true: torch.Tensor
    suv_factor: float
    scatter_true: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _fine_phantom(region: str, tracer: str, seed: int, voxel_mm: float, slab: tuple[int, int, int]):
    from petspect.phantoms.base import make_phantom

    nz, ny, nx = slab
    if region == "torso":
        return make_phantom("torso", voxel_mm=voxel_mm, seed=seed, tracer=tracer, shape=[nz, ny, nx],
                            lesions=False)
    if region == "brain":
        p = make_phantom("brain", voxel_mm=voxel_mm, seed=seed, tracer=tracer)
        return _crop_brain(p, slab)
    raise InputError(f"region must be 'torso' or 'brain', got {region!r}")


def _crop_brain(p, slab):
    """Central slab of a brain phantom, padded/cropped transaxially to ``slab`` (z, y, x)."""
    out = {}
    shape = p["activity"].shape
    for name, vol in p.volumes.items():
        d = vol.data
        z0 = int(shape[0] * 0.55) - slab[0] // 2  # through the basal ganglia and cortex
        d = d[z0:z0 + slab[0]]
        pads = []
        for axis, n in ((1, slab[1]), (2, slab[2])):
            have = d.shape[axis]
            if have >= n:
                s0 = (have - n) // 2
                d = d.narrow(axis, s0, n)
                pads.append((0, 0))
            else:
                pads.append(((n - have) // 2, n - have - (n - have) // 2))
        fill = -1000.0 if name == "ct" else 0.0
        pad = (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
        d = torch.nn.functional.pad(d[None].to(torch.float32), pad, value=fill)[0].to(vol.data.dtype)
        out[name] = d
    return out, p.label_names, p["activity"].meta


def _block_mean(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool3d(x[None, None].to(torch.float32), 2)[0, 0]


def make_case(region: str, tracer: str, seed: int, *, voxel_mm: float = 8.0, shape=(2, 40, 40),
              scan_s: float = 300.0, truth_psf_fwhm_mm: float = 5.0, randoms_fraction: float = 0.1,
              ute_noise: float = 0.03) -> AcCase:
    """Simulate one subject (module docstring).

    Parameters
    ----------
    region : {"torso", "brain"}
    tracer : str
        A tracer of :mod:`petspect.phantoms.tracers` with the region's tissues (torso: fdg, psma,
        dotatate; brain: fdg, amyloid).
    seed : int
        Subject and noise.
    voxel_mm : float
        Reconstruction voxel size; the truth is generated at half of it.
    shape : (int, int, int)
        Reconstruction grid (z, y, x).
    scan_s : float
        Scan time (s) at the tracer's protocol activity.
    """
    from petspect.ac.mr_contrasts import ute_bone_image
    from petspect.geometry.sinogram import SinogramDefinition
    from petspect.physics.attenuation import attenuation_factors
    from petspect.physics.estimate_pet import smoothed_delayed_randoms
    from petspect.physics.randoms import uniform_randoms
    from petspect.physics.resolution import GaussianPSF
    from petspect.physics.scatter_sss import SssSettings, single_scatter_simulation
    from petspect.projectors.pet import PetSinogramProjector
    from petspect.systems.acquisition import AcquisitionData, Calibration
    from petspect.systems.pet import pet_system_spec
    from petspect.systems.records import ImageGridSpec

    nz, ny, nx = (int(v) for v in shape)
    fine_slab = (2 * nz, 2 * ny, 2 * nx)
    ph = _fine_phantom(region, tracer, seed, voxel_mm / 2.0, fine_slab)
    if region == "brain":
        vols, label_names, meta = ph
    else:
        vols = {k: v.data for k, v in ph.volumes.items()}
        label_names, meta = ph.label_names, ph["activity"].meta
    act_f, mu_f = vols["activity"].to(torch.float32), vols["mu_511"].to(torch.float32)
    if tuple(act_f.shape) != fine_slab:
        raise InputError(f"fine phantom shape {tuple(act_f.shape)} != {fine_slab}")
    scanner = ac_scanner(nz, voxel_mm)
    sino = SinogramDefinition(scanner, max_ring_diff=0, view_mashing=2)
    grid = ImageGridSpec((nz, ny, nx), (voxel_mm,) * 3)
    fine_grid = ImageGridSpec(fine_slab, (voxel_mm / 2.0,) * 3)
    spec = pet_system_spec("wholebody", scanner, sino, grid, tof=True, sensitivity_cps_per_kbq=16.4,
                           half_life_s=None)
    fine_tof = PetSinogramProjector(scanner, sino, fine_grid.image_grid(), tof=True)
    blurred = GaussianPSF(fine_slab, truth_psf_fwhm_mm, fine_grid.spacing_mm)(act_f)
    att_f = attenuation_factors(mu_f, fine_tof)
    k = float(spec.sensitivity_factor)
    trues = k * scan_s * fine_tof(blurred) * att_f[..., None]
    scatter = k * scan_s * single_scatter_simulation(act_f, mu_f, fine_tof, SssSettings(scatter_spacing_mm=16.0))
    tof_bins = scanner.n_tof_bins
    randoms = uniform_randoms(sino, 1.0)
    randoms = randoms * (randoms_fraction * float(trues.sum()) / float(randoms.sum()))
    expected = trues + ((scatter + randoms) / tof_bins)[..., None]
    g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    prompts = torch.poisson(expected, generator=g)
    delayed = torch.poisson(randoms, generator=g)
    r_est = smoothed_delayed_randoms(delayed)
    cal = Calibration(time_scale_s=float(scan_s), mode="activity", scan_s=float(scan_s))
    data = AcquisitionData(prompts=prompts, system=spec, grid=grid, calibration=cal,
                           additive=(r_est / tof_bins)[..., None].expand(-1, -1, -1, tof_bins).contiguous(),
                           provenance={"simulator": "petspect.ac.data", "region": region, "tracer": tracer,
                                       "seed": int(seed)})
    ute_f = ute_bone_image(vols["labels"], label_names, seed=int(seed) + 3, noise_fraction=ute_noise)
    labels = vols["labels"][::2, ::2, ::2].contiguous()
    info = {"region": region, "tracer": tracer, "seed": int(seed), "true_counts": float(trues.sum()),
            "scatter_fraction": float(scatter.sum() / (scatter.sum() + trues.sum())),
            "voxel_mm": voxel_mm, "truth_voxel_mm": voxel_mm / 2.0}
    return AcCase(data=data, ct_hu=_block_mean(vols["ct"]), mu_ct=_block_mean(mu_f), mr_t1=_block_mean(vols["mr_t1"]),
                  ute=_block_mean(ute_f), labels=labels, label_names=dict(label_names),
                  activity_true=_block_mean(act_f), suv_factor=float(meta.get("suv_factor", 1.0)),
                  scatter_true=scatter.to(torch.float32), info=info)
