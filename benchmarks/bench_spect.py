"""SPECT benchmark: petspect's SpectProjector against PyTomography 3.4 on the same problem.

Problem (docs/REFERENCE.md timings were measured on it): 64^3 voxels of 4.8 mm, 60 views over 360 deg,
circular orbit of 250 mm, LEHR collimator response (petspect's Siemens LEHR preset, the same
sigma(distance) handed to PyTomography as its ``sigma_fit``), attenuation of an elliptical water
body (0.1536/cm) with a lung-like region, hot spheres in a warm background.

PyTomography is configured alike: ``SPECTSystemMatrix`` with ``SPECTAttenuationTransform`` and
``SPECTPSFTransform`` (2D kernels, 3 sigma), CPU, float32. Its object is [x, y, z] and its
projections [angle, r, z]; the axis and angle mapping to petspect's (z, y, x) / (view, row, col)
is found by matching projections without PSF over the 8 candidate orientations (the best one is
printed with its residual) rather than assumed.

Figures: build time, forward and back projection (best of ``--repeat``), OSEM 2 iterations x 6
subsets (petspect's ``recon.em.osem`` and PyTomography's ``OSEM``, same Poisson data), the relative
difference of the projections ``||p - p_ref|| / ||p_ref||`` and of the OSEM images inside the body.

Run: ``.venv/bin/python benchmarks/bench_spect.py`` (``--size 32 --views 16`` for a quick check).
PyTomography is optional (``pip install petspect[bench]``); without it only petspect is timed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np
import torch

from petspect.geometry.spect import get_spect_system
from petspect.operators.base import adjointness_test
from petspect.projectors.spect import SpectProjector
from petspect.recon.em import osem


def make_phantom(n: int, voxel_mm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Activity (a.u./voxel) and mu (1/mm), (z, y, x): ellipse 120 x 90 mm, lung region, 3 hot spheres."""
    c = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * voxel_mm
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    half_len = 0.35 * n * voxel_mm
    body = ((x / 120.0) ** 2 + (y / 90.0) ** 2 <= 1) & (z.abs() <= half_len)
    lung = (((x - 55.0) / 35.0) ** 2 + ((y + 10.0) / 45.0) ** 2 <= 1) & (z.abs() <= 0.6 * half_len)
    mu = torch.where(body, 0.01536, 0.0)
    mu = torch.where(lung, 0.0045, mu)
    act = body.float() * 1.0 - lung.float() * 0.8
    for (sx, sy, sz, r) in ((-50.0, 20.0, 10.0, 18.0), (30.0, -45.0, -30.0, 12.0), (-20.0, -30.0, 40.0, 9.0)):
        act = act + 5.0 * (((x - sx) ** 2 + (y - sy) ** 2 + (z - sz) ** 2) <= r ** 2).float()
    return act.contiguous(), mu.contiguous()


def sigma_cm_fn(collimator):
    """sigma(distance) in cm of the collimator's system FWHM, for PyTomography's ``sigma_fit``."""
    leff, d, b, rint = (collimator.effective_length_mm, collimator.hole_diameter_mm, collimator.gap_mm,
                        collimator.intrinsic_fwhm_mm)

    def sigma_fit(r_cm, *_):
        z = np.maximum(np.asarray(r_cm) * 10.0, 0.0)
        return np.sqrt((d * (leff + z + b) / leff) ** 2 + rint ** 2) / (2.0 * math.sqrt(2.0 * math.log(2.0))) / 10.0

    return sigma_fit


def pyt_system(n, voxel_mm, angles, radius_mm, mu_zyx, collimator, psf=True):
    """PyTomography's SPECT system matrix for the same problem (object [x, y, z], cm units)."""
    from pytomography.metadata.SPECT import SPECTObjectMeta, SPECTProjMeta, SPECTPSFMeta
    from pytomography.projectors.SPECT import SPECTSystemMatrix
    from pytomography.transforms.SPECT import SPECTAttenuationTransform, SPECTPSFTransform

    dr = [voxel_mm / 10.0] * 3
    obj_meta = SPECTObjectMeta(dr, (n, n, n))
    proj_meta = SPECTProjMeta((n, n), dr[:2], angles.numpy().astype(np.float32),
                              radii=np.full(len(angles), radius_mm / 10.0, dtype=np.float32))
    transforms = [SPECTAttenuationTransform(attenuation_map=mu_zyx.permute(2, 1, 0).contiguous() * 10.0)]
    if psf:
        transforms.append(SPECTPSFTransform(SPECTPSFMeta((0.0,), sigma_fit=sigma_cm_fn(collimator))))
    return SPECTSystemMatrix(obj2obj_transforms=transforms, proj2proj_transforms=[], object_meta=obj_meta,
                             proj_meta=proj_meta)


def to_pyt_object(x_zyx: torch.Tensor) -> torch.Tensor:
    return x_zyx.permute(2, 1, 0).contiguous()


def find_orientation(n, voxel_mm, act, mu, collimator):
    """The angle offset/sign and detector flips mapping PyTomography's projections onto petspect's."""
    pyt_angles = torch.tensor([0.0, 30.0, 100.0, 215.0])
    pyt = pyt_system(n, voxel_mm, pyt_angles, 250.0, mu, collimator, psf=False)
    ref = pyt.forward(to_pyt_object(act))  # (angles, r, z)
    best = None
    for sign, offset in itertools.product((1.0, -1.0), (0.0, 90.0, 180.0, 270.0)):
        ours = SpectProjector((n, n, n), (voxel_mm,) * 3, (sign * pyt_angles + offset) % 360, 250.0, None,
                              mu=mu, psf=False)(act)  # (views, rows, cols)
        for flip_r, flip_c in itertools.product((False, True), repeat=2):
            cand = ref.permute(0, 2, 1)
            cand = cand.flip(1) if flip_r else cand
            cand = cand.flip(2) if flip_c else cand
            res = float(torch.linalg.vector_norm(ours - cand) / torch.linalg.vector_norm(cand))
            if best is None or res < best[0]:
                best = (res, sign, offset, flip_r, flip_c)
    return best


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--views", type=int, default=60)
    ap.add_argument("--voxel-mm", type=float, default=4.8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for both packages (1 is steadier on an oversubscribed machine)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, nv, vox, dev = args.size, args.views, args.voxel_mm, torch.device(args.device)
    coll = get_spect_system("spect-lehr").collimator
    act, mu = make_phantom(n, vox)
    angles = torch.arange(nv, dtype=torch.float64) * (360.0 / nv)
    print(f"problem: {n}^3 voxels of {vox} mm, {nv} views, radius 250 mm, LEHR PSF + attenuation; "
          f"device {dev}, torch threads {torch.get_num_threads()}")

    t0 = time.perf_counter()
    op = SpectProjector((n, n, n), (vox,) * 3, angles, 250.0, coll, mu=mu.to(dev), psf=True, device=dev)
    build = time.perf_counter() - t0
    x = act.to(dev)
    t_fwd, proj = best_time(lambda: op(x), args.repeat)
    t_back, _ = best_time(lambda: op.adjoint(proj), args.repeat)
    gen = torch.Generator().manual_seed(args.seed)
    counts = torch.poisson((proj.cpu() * (2.0e6 / float(proj.sum()) * nv)).clamp(min=0), generator=gen)
    scale = float(counts.sum() / proj.sum().cpu())
    t_osem, img = best_time(lambda: osem(op, counts.to(dev), n_iter=2, n_subsets=6, progress=False), 1)
    print(f"petspect: build {build:.2f} s, forward {t_fwd:.3f} s, back {t_back:.3f} s, OSEM 2x6 {t_osem:.2f} s "
          f"(first OSEM includes slicing the 6 subsets); adjointness {adjointness_test(op):.1e}")

    try:
        import pytomography  # noqa: F401
    except ImportError:
        print("PyTomography not installed: comparison skipped (pip install 'petspect[bench]')")
        return
    from pytomography.algorithms import OSEM
    from pytomography.likelihoods import PoissonLogLikelihood

    res, sign, offset, flip_r, flip_c = find_orientation(n, vox, act, mu, coll)
    print(f"orientation: petspect angle = {sign:+.0f} * pyt angle + {offset:.0f}, flip rows {flip_r}, "
          f"flip cols {flip_c} (no-PSF residual {res:.2e})")
    pyt_angles = ((angles - offset) * sign) % 360
    t0 = time.perf_counter()
    sysm = pyt_system(n, vox, pyt_angles, 250.0, mu, coll, psf=True)
    pyt_build = time.perf_counter() - t0
    obj = to_pyt_object(act)
    p_fwd, pyt_proj = best_time(lambda: sysm.forward(obj), args.repeat)
    p_back, _ = best_time(lambda: sysm.backward(pyt_proj), args.repeat)
    mapped = pyt_proj.permute(0, 2, 1)
    mapped = mapped.flip(1) if flip_r else mapped
    mapped = mapped.flip(2) if flip_c else mapped
    rel = float(torch.linalg.vector_norm(proj.cpu() - mapped) / torch.linalg.vector_norm(mapped))
    ratio_sum = float(proj.sum().cpu() / mapped.sum())
    pyt_counts = counts.flip(2) if flip_c else counts
    pyt_counts = (pyt_counts.flip(1) if flip_r else pyt_counts).permute(0, 2, 1).contiguous()
    lik = PoissonLogLikelihood(sysm, pyt_counts)
    p_osem, pyt_img = best_time(lambda: OSEM(lik)(n_iters=2, n_subsets=6), 1)
    pyt_img = pyt_img.permute(2, 1, 0)
    body = mu > 0.01
    img_rel = float(torch.linalg.vector_norm((img.cpu() - pyt_img)[body]) / torch.linalg.vector_norm(pyt_img[body]))
    print(f"PyTomography {pytomography.__version__ if hasattr(pytomography, '__version__') else '3.4'}: "
          f"build {pyt_build:.2f} s, forward {p_fwd:.3f} s, back {p_back:.3f} s, OSEM 2x6 {p_osem:.2f} s")
    print(f"speed-up (PyTomography / petspect): forward {p_fwd / t_fwd:.1f}x, back {p_back / t_back:.1f}x, "
          f"OSEM {p_osem / t_osem:.1f}x")
    print(f"agreement: projections ||p - p_pyt|| / ||p_pyt|| = {rel:.2%}, total counts ratio {ratio_sum:.4f}; "
          f"OSEM images in the body {img_rel:.2%} (data scale {scale:.3g})")


if __name__ == "__main__":
    main()
