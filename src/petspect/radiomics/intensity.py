"""Local intensity, intensity statistics, intensity histogram and intensity-volume histogram features
(IBSI sections 3.2-3.5).

Statistics read the intensities of the intensity mask; the histogram and the IVH read the discretised
grey levels 1..Ng. Variances are population variances (divide by N), as the IBSI defines them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["local_intensity_features", "statistics_features", "histogram_features", "ivh_features"]

# radius (mm) of a 1 cm^3 sphere, the IBSI's local intensity peak neighbourhood
PEAK_RADIUS_MM = (3.0 / (4.0 * math.pi) * 1000.0) ** (1.0 / 3.0)


def local_intensity_features(image: np.ndarray, int_mask: np.ndarray, spacing_mm) -> dict[str, float]:
    """``loc_peak_loc`` and ``loc_peak_glob``: mean of the image in a 1 cm^3 sphere (voxel centres within
    6.2 mm, every image voxel counted, none outside the image) around the ROI's hottest voxel, and the
    highest such mean over the ROI."""
    from scipy.ndimage import convolve

    sp = np.asarray(spacing_mm, dtype=float)
    half = np.floor(PEAK_RADIUS_MM / sp).astype(int)
    zz, yy, xx = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, sp)], indexing="ij")
    kernel = ((zz ** 2 + yy ** 2 + xx ** 2) <= PEAK_RADIUS_MM ** 2 + 1e-9).astype(np.float64)
    ones = np.ones(image.shape)
    total = convolve(image, kernel, mode="constant", cval=0.0)
    count = convolve(ones, kernel, mode="constant", cval=0.0)
    local = total / count
    vals = image[int_mask]
    hottest = int_mask & (image == vals.max())
    return {"loc_peak_loc": float(local[hottest].max()), "loc_peak_glob": float(local[int_mask].max())}


def _moments(x: np.ndarray) -> tuple[float, float, float, float]:
    mu = float(x.mean())
    d = x - mu
    var = float((d ** 2).mean())
    if var > 0:
        skew = float((d ** 3).mean()) / var ** 1.5
        kurt = float((d ** 4).mean()) / var ** 2 - 3.0
    else:
        skew = kurt = 0.0
    return mu, var, skew, kurt


def _spread(x: np.ndarray, prefix: str) -> dict[str, float]:
    mu, var, skew, kurt = _moments(x)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    f = {
        f"{prefix}_mean": mu, f"{prefix}_var": var, f"{prefix}_skew": skew, f"{prefix}_kurt": kurt,
        f"{prefix}_median": float(p50), f"{prefix}_min": float(x.min()), f"{prefix}_p10": float(p10),
        f"{prefix}_p90": float(p90), f"{prefix}_max": float(x.max()),
    }
    return f | {
        f"{prefix}_iqr": float(p75 - p25), f"{prefix}_range": float(x.max() - x.min()),
        f"{prefix}_mad": float(np.abs(x - mu).mean()),
        f"{prefix}_rmad": float(np.abs(robust - robust.mean()).mean()),
        f"{prefix}_medad": float(np.abs(x - p50).mean()),
        f"{prefix}_cov": math.sqrt(var) / mu if mu != 0 else math.nan,
        f"{prefix}_qcod": float((p75 - p25) / (p75 + p25)) if (p75 + p25) != 0 else math.nan,
    }


def statistics_features(image: np.ndarray, int_mask: np.ndarray) -> dict[str, float]:
    """Intensity-based statistical features ``stat_*`` of the intensity-mask voxels."""
    x = image[int_mask].astype(np.float64)
    f = _spread(x, "stat")
    stats = {k: f[k] for k in ("stat_mean", "stat_var", "stat_skew", "stat_kurt", "stat_median", "stat_min",
                               "stat_p10", "stat_p90", "stat_max", "stat_iqr", "stat_range", "stat_mad",
                               "stat_rmad", "stat_medad", "stat_cov", "stat_qcod")}
    stats["stat_energy"] = float((x ** 2).sum())
    stats["stat_rms"] = float(math.sqrt((x ** 2).mean()))
    return stats


def histogram_features(levels: np.ndarray, int_mask: np.ndarray, n_levels: int) -> dict[str, float]:
    """Intensity histogram features ``ih_*`` of the grey levels 1..Ng."""
    x = levels[int_mask].astype(np.float64)
    f = _spread(x, "ih")
    counts = np.bincount(levels[int_mask], minlength=n_levels + 1)[1:n_levels + 1].astype(np.float64)
    p = counts / counts.sum()
    modes = np.flatnonzero(counts == counts.max()) + 1
    mode = float(modes[np.argmin(np.abs(modes - f["ih_mean"]))])  # ties: the one closest to the mean
    nz = p[p > 0]
    if n_levels > 1:
        grad = np.empty(n_levels)
        grad[0] = counts[1] - counts[0]
        grad[-1] = counts[-1] - counts[-2]
        grad[1:-1] = (counts[2:] - counts[:-2]) / 2.0
    else:
        grad = np.zeros(1)
    f.update({
        "ih_mode": mode,
        "ih_entropy": float(-(nz * np.log2(nz)).sum()),
        "ih_uniformity": float((p ** 2).sum()),
        "ih_max_grad": float(grad.max()), "ih_max_grad_g": float(np.argmax(grad) + 1),
        "ih_min_grad": float(grad.min()), "ih_min_grad_g": float(np.argmin(grad) + 1),
    })
    return f


def ivh_features(levels: np.ndarray, int_mask: np.ndarray, n_levels: int) -> dict[str, float]:
    """Intensity-volume histogram features ``ivh_*`` on the grey levels 1..Ng.

    ``nu_i`` is the fraction of the ROI with grey level >= i, ``gamma_i = (i - 1) / (Ng - 1)``;
    ``V_x`` is the largest ``nu_i`` with ``gamma_i >= x``, ``I_x`` the smallest i with ``nu_i <= x``.
    """
    x = levels[int_mask]
    i = np.arange(1, n_levels + 1)
    counts = np.bincount(x, minlength=n_levels + 1)[1:n_levels + 1].astype(np.float64)
    frac_below = np.concatenate([[0.0], np.cumsum(counts)[:-1]]) / counts.sum()
    nu = 1.0 - frac_below
    gamma = (i - 1) / (n_levels - 1) if n_levels > 1 else np.zeros(1)

    def v_at(frac: float) -> float:
        sel = nu[gamma >= frac - 1e-12]
        return float(sel.max()) if sel.size else 0.0

    def i_at(frac: float) -> float:
        sel = i[nu <= frac + 1e-12]
        return float(sel.min()) if sel.size else float(n_levels + 1)

    v10, v90, i10, i90 = v_at(0.1), v_at(0.9), i_at(0.1), i_at(0.9)
    return {"ivh_v10": v10, "ivh_v90": v90, "ivh_i10": i10, "ivh_i90": i90,
            "ivh_diff_v10_v90": v10 - v90, "ivh_diff_i10_i90": i10 - i90}
