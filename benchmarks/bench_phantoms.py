"""Benchmark: NEMA IEC / SPECT phantom generation and the NU 2 analysis (speed and accuracy).

Run: ``.venv/bin/python benchmarks/bench_phantoms.py [--device cuda]``. Prints a Markdown table:
generation times (warm, best of ``--repeats``), the IEC sphere-volume errors, and the NU 2 analysis
time and Q_H against the analytic Gaussian-blurred-sphere truth.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.integrate import quad
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from petspect.phantoms import make_phantom
from petspect.phantoms.nema_analysis import analyse_iec
from petspect.units import FWHM_PER_SIGMA


def _time(fn, repeats: int, device: str):
    best, out = math.inf, None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best, out


def _blurred_sphere_roi_pct(diameter_mm: float, sigma_mm: float, dz_mm: float) -> float:
    """Mean over the NU 2 ROI (slice dz from the centre) of a Gaussian-blurred unit ball, in %."""
    r0 = diameter_mm / 2

    def f(r: float) -> float:
        r = max(r, 1e-9)
        a, b = (r0 - r) / (math.sqrt(2) * sigma_mm), (r0 + r) / (math.sqrt(2) * sigma_mm)
        return 0.5 * (erf(a) + erf(b)) - sigma_mm / (r * math.sqrt(2 * math.pi)) * (math.exp(-a * a) - math.exp(-b * b))

    return quad(lambda rho: f(math.hypot(rho, dz_mm)) * rho, 0, r0)[0] * 2 / r0**2 * 100


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    make_phantom("nema-iec", voxel_mm=4.0, device=dev)  # warm-up (imports, xraydb tables)
    rows = []
    for vox in (2.0, 1.0):
        t, p = _time(lambda: make_phantom("nema-iec", voxel_mm=vox, device=dev), args.repeats if vox > 1 else 1, dev)
        err = max(abs(r["voxelised_volume_ml"] / r["volume_ml"] - 1) for r in p.tables["spheres"])
        bg = next(r["volume_ml"] for r in p.tables["compartments"] if r["name"] == "background")
        rows.append((f"nema-iec {vox:g} mm {tuple(p['activity'].shape)}", t,
                     f"max sphere volume error {err * 100:.2f} %, background {bg / 1000:.3f} L"))
    for name, kw in (("jaszczak", {"voxel_mm": 2.0}), ("derenzo", {"voxel_mm": 1.0}),
                     ("shepp-logan", {"voxel_mm": 2.0}), ("cylinder", {"voxel_mm": 2.0})):
        t, p = _time(lambda: make_phantom(name, device=dev, **kw), args.repeats, dev)
        rows.append((f"{name} {kw['voxel_mm']:g} mm {tuple(p['activity'].shape)}", t, ""))
    p = make_phantom("nema-iec", voxel_mm=2.0, pmma_walls=False)
    act = p["activity"]
    fwhm = 6.0
    img = act.with_data(torch.from_numpy(gaussian_filter(act.numpy().astype(np.float64), fwhm / FWHM_PER_SIGMA / 2.0,
                                                         mode="constant")))
    t, res = _time(lambda: analyse_iec(img), args.repeats, "cpu")
    sigma = math.sqrt((fwhm / FWHM_PER_SIGMA) ** 2 + 2.0**2 / 12)
    dz = res["slices_z_mm"][0] - res["geometry"]["plane_z_mm"]
    q = [(sp["diameter_mm"], sp["contrast_pct"], _blurred_sphere_roi_pct(sp["diameter_mm"], sigma, dz)) for sp in res["spheres"]]
    rows.append(("analyse_iec 2 mm, 6 mm FWHM blur (auto localisation)", t,
                 "Q_H measured / analytic: " + ", ".join(f"{d:g} mm {m:.1f}/{a:.1f}" for d, m, a in q)))
    print(f"device: {dev}, torch threads: {torch.get_num_threads()}")
    print("| operation | seconds | notes |\n|---|---|---|")
    for name, t, note in rows:
        print(f"| {name} | {t:.2f} | {note} |")


if __name__ == "__main__":
    main()
