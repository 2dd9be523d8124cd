"""Whole-body procedural ("XCAT-like") torso phantom: organs, lesions, activity, CT, mu and MR.

Pipeline (STYLE principle 10): :func:`~petspect.phantoms.torso_anatomy.sample_anatomy` and
:func:`~petspect.phantoms.torso_lesions.sample_lesions` draw every random quantity from one seeded
generator into JSON-serialisable parameters; :func:`~petspect.phantoms.torso_anatomy.build_structures`
turns them into shapes; :func:`voxelise_labels` evaluates the shapes at voxel centres (hard labels,
bounding-box restricted). Activity, CT, mu and MR are pure functions of the label maps.

The world frame is LPS in mm with the soles at z = 0 (so a lesion's ``centre_mm`` and the volumes'
affine agree); x = y = 0 on the body axis.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.phantoms.base import Phantom
from petspect.phantoms.shapes import Grid, Shape
from petspect.phantoms.torso_anatomy import (LABEL_IDS, LABELS, SKIN_MM, body_parts, build_structures, fat_mm_at,
                                             sample_anatomy, union_members)
from petspect.units import BQ_PER_MBQ
from petspect.volume import AXIAL_DIRECTION

FOVS = ("chest-abdomen", "whole-body", "total-body", "head", "abdomen-pelvis")
_SLAB_POINTS = 1 << 21


def fov_z_range_mm(anatomy: dict[str, Any], fov: str | tuple[float, float]) -> tuple[float, float]:
    """Axial extent (z0, z1) in mm (body frame, soles at 0) of a named field of view or an explicit range."""
    z = anatomy["z"]
    if isinstance(fov, (tuple, list)):
        if len(fov) != 2 or not float(fov[0]) < float(fov[1]):
            raise InputError(f"fov range must be (z_low_mm, z_high_mm) with z_low < z_high, got {fov!r}")
        return float(fov[0]), float(fov[1])
    ranges = {"chest-abdomen": (z["crotch"] - 20, z["shoulder"] + 60),
              "whole-body": (0.5 * (z["crotch"] + z["knee"]), z["vertex"] + 10),  # mid-thigh to vertex
              "total-body": (z["ankle"] - 20, z["vertex"] + 10),
              "head": (z["chin"] - 30, z["vertex"] + 10),
              "abdomen-pelvis": (z["crotch"] - 20, z["diaphragm"] + 40)}
    if fov not in ranges:
        raise InputError(f"unknown fov {fov!r}; choose one of {FOVS} or give (z_low_mm, z_high_mm)")
    return ranges[fov]


def make_grid(anatomy: dict[str, Any], fov, voxel_mm: float, shape: tuple[int, int, int] | None = None) -> Grid:
    """Axial grid covering the body in the field of view (or of ``shape`` centred on the body axis)."""
    z0, z1 = fov_z_range_mm(anatomy, fov)
    if shape is None:
        lo = np.full(2, np.inf)
        hi = -lo
        for part in body_parts(anatomy):
            b_lo, b_hi = part.bounds()
            if b_hi[2] >= z0 and b_lo[2] <= z1:
                lo, hi = np.minimum(lo, b_lo[:2]), np.maximum(hi, b_hi[:2])
        half = np.maximum(np.abs(lo), np.abs(hi)) + 10.0
        nx, ny = (int(math.ceil(2 * half[i] / voxel_mm)) for i in (0, 1))
        shape = (max(1, int(round((z1 - z0) / voxel_mm))), ny, nx)
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape must be 3 positive integers (nz, ny, nx), got {shape!r}")
    return Grid.centered(shape, voxel_mm, centre_mm=(0.0, 0.0, 0.5 * (z0 + z1)))


def _world(grid: Grid, zs: slice, ys: slice, xs: slice) -> torch.Tensor:
    """Voxel-centre LPS points ``(nz', ny', nx', 3)`` float32 of an index box (axial grids by broadcasting)."""
    if not np.allclose(grid.direction, AXIAL_DIRECTION):
        return grid.world(zs, ys, xs)
    axes = [torch.arange(s.start, s.stop, dtype=torch.float64, device=grid.device) * sp + o
            for s, sp, o in zip((xs, ys, zs), grid.spacing_mm[::-1], grid.origin_mm)]
    x, y, z = (a.to(torch.float32) for a in axes)
    shape = (z.numel(), y.numel(), x.numel())
    out = torch.empty((*shape, 3), dtype=torch.float32, device=grid.device)
    out[..., 0] = x[None, None, :]
    out[..., 1] = y[None, :, None]
    out[..., 2] = z[:, None, None]
    return out


def _slabs(grid: Grid, shape: Shape):
    """Yield (z-slice, y-slice, x-slice, points) over the grid box holding ``shape``, in z slabs."""
    box = grid.index_box(shape.bounds())
    if box is None:
        return
    ny, nx = box[1].stop - box[1].start, box[2].stop - box[2].start
    step = max(1, _SLAB_POINTS // (ny * nx))
    for z0 in range(box[0].start, box[0].stop, step):
        zs = slice(z0, min(z0 + step, box[0].stop))
        yield zs, box[1], box[2], _world(grid, zs, box[1], box[2])



def voxelise_labels(grid: Grid, anatomy: dict[str, Any], structures: list[tuple[str, Shape]] | None = None) -> torch.Tensor:
    """Organ label map (uint8, ids of :data:`~petspect.phantoms.torso_anatomy.LABELS`) on ``grid``.

    The body outline's signed distance gives skin (outer 2 mm), subcutaneous fat (the local fat
    thickness) and soft tissue; organs and bones are then painted in order, each only inside its box.
    """
    dist = torch.full(grid.shape, 1e6, dtype=torch.float32, device=grid.device)
    for part in body_parts(anatomy):
        for zs, ys, xs, pts in _slabs(grid, part):
            dist[zs, ys, xs] = torch.minimum(dist[zs, ys, xs], part.sdf(pts))
    z_mm = grid.origin_mm[2] + grid.spacing_mm[0] * np.arange(grid.shape[0])
    fat = torch.as_tensor(fat_mm_at(anatomy, z_mm), dtype=torch.float32, device=grid.device)[:, None, None]
    labels = torch.zeros(grid.shape, dtype=torch.uint8, device=grid.device)
    labels[dist <= 0] = LABEL_IDS["skin"]
    labels[dist <= -SKIN_MM] = LABEL_IDS["fat"]
    labels[dist <= -(SKIN_MM + fat)] = LABEL_IDS["soft_tissue"]
    del dist
    for name, shape in structures if structures is not None else build_structures(anatomy):
        value = LABEL_IDS[name]
        for part in union_members(shape):
            for zs, ys, xs, pts in _slabs(grid, part):
                sub = labels[zs, ys, xs]
                sub[part.contains(pts)] = value
    return labels


def _organ_boxes(structures: list[tuple[str, Shape]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    boxes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, shape in structures:
        lo, hi = (np.asarray(v, dtype=np.float64) for v in shape.bounds())
        if name in boxes:
            lo, hi = np.minimum(lo, boxes[name][0]), np.maximum(hi, boxes[name][1])
        boxes[name] = (lo, hi)
    return boxes


def voxelise_lesions(grid: Grid, lesions: list[dict[str, Any]]) -> torch.Tensor:
    """Lesion instance map (int16; lesion ``i`` of the list has id ``i + 1``; 0 = none) at voxel centres."""
    from petspect.phantoms.torso_lesions import lesion_shape

    out = torch.zeros(grid.shape, dtype=torch.int16, device=grid.device)
    for i, p in enumerate(lesions):
        shape = lesion_shape(p)
        for zs, ys, xs, pts in _slabs(grid, shape):
            sub = out[zs, ys, xs]
            sub[shape.contains(pts) & (sub == 0)] = i + 1
    return out


def _metal_mask(grid: Grid, anatomy: dict[str, Any]) -> torch.Tensor:
    """A left total-hip prosthesis (head and stem), as a boolean mask."""
    from petspect.phantoms.shapes import Sphere, Union
    from petspect.phantoms.torso_shapes import Capsule

    z, w = anatomy["z"], anatomy["width"]
    head = (88 * w, 0.0, z["hip"] + 10)
    stem_end = (0.9 * 0.5 * anatomy["trunk"]["ax"][1], 8.0, z["hip"] - 150)
    implant = Union(Sphere(head, 22 * w), Capsule(head, (112 * w, 5.0, z["hip"] - 20), 8 * w),
                    Capsule((112 * w, 5.0, z["hip"] - 20), stem_end, 8 * w, 5 * w))
    mask = torch.zeros(grid.shape, dtype=torch.bool, device=grid.device)
    for zs, ys, xs, pts in _slabs(grid, implant):
        mask[zs, ys, xs] |= implant.contains(pts)
    return mask


def _lesion_rows(lesions, lesion_map, activity, voxel_ml, suv_factor) -> list[dict[str, Any]]:
    from petspect.phantoms.torso_lesions import true_volume_ml

    inside = lesion_map > 0
    ids = lesion_map[inside].long()
    counts = torch.bincount(ids, minlength=len(lesions) + 1)
    sums = torch.bincount(ids, weights=activity[inside].double(), minlength=len(lesions) + 1)
    rows = []
    for i, p in enumerate(lesions):
        n = int(counts[i + 1])
        mean = float(sums[i + 1]) / n if n else 0.0
        rows.append({"id": i + 1, "centre_mm": p["centre_mm"], "volume_ml": round(true_volume_ml(p), 4),
                     "voxelised_volume_ml": round(n * voxel_ml, 4), "mean_activity_bq_per_ml": mean,
                     "suv": mean * suv_factor, "organ": p["organ"], "site": p["site"], "kind": p["kind"],
                     "diameter_mm": p["diameter_mm"], "contrast": p["contrast"]})
    return rows


def make_torso(*, voxel_mm: float = 4.0, seed: int = 0, tracer: str = "fdg",
               fov: str | tuple[float, float] = "chest-abdomen", shape: tuple[int, int, int] | None = None,
               lesions: bool | dict[str, Any] = True, injected_mbq: float | None = None,
               weight_kg: float | None = None, uptake_time_s: float | None = None, arms: str | None = None,
               sex: str | None = None, texture: float = 0.05, ct_noise_hu: float = 10.0, metal: bool = False,
               mu_method: str = "ct") -> Phantom:
    """Procedural adult whole-body phantom with organs, lesions, tracer uptake, CT, mu and MR.

    Parameters
    ----------
    voxel_mm : float
        Isotropic voxel size (mm).
    seed : int
        Everything random (anatomy, uptake, lesions, image noise) follows from it.
    tracer : str
        A key of :data:`petspect.phantoms.tracers.TRACERS` with torso organs ("fdg", "psma", ...).
    fov : str or (z_low_mm, z_high_mm)
        "chest-abdomen", "whole-body" (mid-thigh to vertex), "total-body", "head", "abdomen-pelvis", or a
        height range in the body frame (soles at 0).
    shape : (nz, ny, nx), optional
        Grid size (centred on the body axis and the FOV); by default just covers the body.
    lesions : bool or dict
        False: none; True: defaults of :data:`~petspect.phantoms.torso_lesions.DEFAULT_LESIONS`; a dict
        overrides them (``count``, ``diameter_mm``, ``contrast``, ``sites``, ``kinds``).
    injected_mbq, weight_kg, uptake_time_s : float, optional
        Protocol; by default the tracer's usual activity and scan time and a sampled body weight. At
        another ``uptake_time_s`` organ activities follow
        :func:`~petspect.phantoms.tracers.time_activity_curves` (e.g. Lu-177 therapy time points);
        lesions keep their SUV (decay only).
    arms, sex : str, optional
        "up"/"down", "M"/"F"; drawn when None.
    texture : float
        Relative standard deviation of a smooth (~20 mm) intra-organ activity texture.
    ct_noise_hu : float
        CT white-noise standard deviation (HU).
    metal : bool
        Add a left hip prosthesis (HU 3071, no streaks) to the CT and mu maps.
    mu_method : {"ct", "labels"}
        mu from the CT by bilinear conversion, or from each tissue's composition.

    Returns
    -------
    Phantom
        Volumes "labels", "lesions", "activity" (Bq/mL at scan time), "ct" (HU), "mu_511", "mu_140",
        "mu_208" (1/mm), "mr_t1", "mr_t2"; table "lesions"; ``record`` rebuilds it bit for bit.
    """
    from petspect import __version__
    from petspect.phantoms.anatomy import anatomical_volumes, lookup, package_volumes, smooth_field
    from petspect.phantoms.tracers import get_tracer, sample_organ_suv, suv_to_bq_per_ml, time_activity_curves
    from petspect.phantoms.torso_anatomy import paint_labels
    from petspect.phantoms.torso_lesions import sample_lesions

    params = dict(voxel_mm=float(voxel_mm), seed=int(seed), tracer=tracer,
                  fov=list(fov) if isinstance(fov, (tuple, list)) else fov,
                  shape=None if shape is None else [int(v) for v in shape], lesions=lesions,
                  injected_mbq=injected_mbq, weight_kg=weight_kg, uptake_time_s=uptake_time_s, arms=arms, sex=sex,
                  texture=float(texture), ct_noise_hu=float(ct_noise_hu), metal=bool(metal), mu_method=mu_method)
    _check_args(voxel_mm, arms, sex, texture, lesions)
    model = get_tracer(tracer)
    missing = set(LABELS[1:]) - set(model.organs)
    if missing:
        raise InputError(f"tracer {tracer!r} has no uptake for torso organs {sorted(missing)}")
    rng_anat, rng_suv, rng_les, rng_img = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))
    a = sample_anatomy(rng_anat, arms=arms, sex=sex, weight_kg=weight_kg)
    grid = make_grid(a, tuple(fov) if isinstance(fov, list) else fov, float(voxel_mm), shape)
    structures = build_structures(a)
    labels = voxelise_labels(grid, a, structures)
    suv = sample_organ_suv(tracer, LABELS[1:], seed=rng_suv)
    w_kg = a["weight_kg"]
    a_inj = (injected_mbq if injected_mbq is not None else model.injected_mbq_for(w_kg)) * BQ_PER_MBQ
    t_scan = float(uptake_time_s if uptake_time_s is not None else model.scan_time_s)
    to_bq = lambda v: suv_to_bq_per_ml(v, injected_bq=a_inj, weight_kg=w_kg, elapsed_s=t_scan,  # noqa: E731
                                       nuclide=model.nuclide)
    # organ concentrations at the scan time follow the tracer's time-activity curves (uptake, washout,
    # decay); at the tracer's usual scan time they equal the sampled SUVs exactly
    tac = time_activity_curves(model.name, LABELS[1:], [t_scan], seed=0, injected_mbq=a_inj / BQ_PER_MBQ,
                               weight_kg=w_kg, suv=suv)
    activity = lookup(torch.tensor([0.0] + [float(tac[n][0]) for n in LABELS[1:]], dtype=torch.float32), labels)
    img_seed = int(rng_img.integers(2**31))
    if texture > 0:
        g = torch.Generator().manual_seed(img_seed)
        activity = activity * (1.0 + texture * smooth_field(grid.shape, grid.spacing_mm, 20.0, generator=g)).clamp_min(0)
    lesion_params: list[dict[str, Any]] = []
    if lesions:
        z_range = (grid.origin_mm[2], grid.origin_mm[2] + (grid.shape[0] - 1) * grid.spacing_mm[0])
        lesion_params = sample_lesions(rng_les, a, {} if lesions is True else dict(lesions),
                                       lambda pts: paint_labels(pts, a, structures), LABEL_IDS,
                                       _organ_boxes(structures), z_range)
    lesion_map = voxelise_lesions(grid, lesion_params)
    activity = _add_lesion_activity(activity, lesion_map, lesion_params, suv, to_bq)
    suv_factor = 1.0 / float(to_bq(1.0))  # SUVbw per Bq/mL
    images = anatomical_volumes(_tissue_labels(labels, lesion_map), {**dict(enumerate(LABELS)), len(LABELS): "lesion"},
                                seed=img_seed + 1, spacing_mm=grid.spacing_mm, ct_noise_hu=ct_noise_hu,
                                mu_method=mu_method, metal_mask=_metal_mask(grid, a) if metal else None)
    meta = {"generator": "torso", "tracer": model.name, "nuclide": model.nuclide, "injected_bq": a_inj,
            "weight_kg": w_kg, "uptake_time_s": t_scan, "suv_factor": suv_factor}
    vols = package_volumes(grid, {"labels": labels, "lesions": lesion_map, "activity": activity, **images}, meta,
                           activity_modality=model.modality)
    rows = _lesion_rows(lesion_params, lesion_map, activity, grid.voxel_volume_ml, suv_factor)
    record = {"generator": "torso", "params": params, "petspect_version": __version__,
              "sampled": {"anatomy": a, "organ_suv": suv, "lesions": lesion_params}}
    names = dict(enumerate(LABELS))
    return Phantom(volumes=vols, label_names=names, tables={"lesions": rows}, record=record)


def _add_lesion_activity(activity, lesion_map, lesion_params, organ_suv, to_bq) -> torch.Tensor:
    """Set each lesion's uniform concentration: contrast x the SUV of its site's reference tissue
    (its organ; blood pool for lymph nodes). Writes ``suv`` into each lesion record."""
    ref = {"lymph_node": "blood_pool"}
    for p in lesion_params:
        p["suv"] = round(p["contrast"] * organ_suv[ref.get(p["site"], p["organ"])], 5)
    if not lesion_params:
        return activity
    from petspect.phantoms.anatomy import lookup

    lesion_lut = torch.tensor([0.0] + [float(to_bq(p["suv"])) for p in lesion_params], dtype=torch.float32)
    return torch.where(lesion_map > 0, lookup(lesion_lut, lesion_map), activity)


def _tissue_labels(labels: torch.Tensor, lesion_map: torch.Tensor) -> torch.Tensor:
    """Labels for CT/MR: lesions outside bone become tissue ``len(LABELS)`` ("lesion", soft tissue)."""
    bones = torch.tensor([LABEL_IDS[n] for n in ("spine", "ribs", "pelvis", "long_bones", "skull")], dtype=labels.dtype)
    out = labels.clone()
    out[(lesion_map > 0) & ~torch.isin(labels, bones)] = len(LABELS)
    return out


def _check_args(voxel_mm, arms, sex, texture, lesions) -> None:
    if not (np.isfinite(voxel_mm) and 0.5 <= float(voxel_mm) <= 20.0):
        raise InputError(f"voxel_mm must be within 0.5..20 mm, got {voxel_mm!r}")
    if arms not in (None, "up", "down"):
        raise InputError(f"arms must be 'up', 'down' or None, got {arms!r}")
    if sex not in (None, "M", "F"):
        raise InputError(f"sex must be 'M', 'F' or None, got {sex!r}")
    if not 0.0 <= float(texture) < 0.5:
        raise InputError(f"texture must be within [0, 0.5), got {texture!r}")
    if not isinstance(lesions, (bool, dict)):
        raise InputError("lesions must be True, False or a dict of lesion options")
    if isinstance(lesions, dict):
        from petspect.phantoms.torso_lesions import lesion_config

        lesion_config(lesions)
