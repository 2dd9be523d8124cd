"""Grey level co-occurrence (GLCM) and run length (GLRLM) features with the IBSI aggregation variants
(IBSI sections 3.6-3.7).

Matrices are built per direction (4 in-plane directions in 2D, 13 in 3D) and per slice, from the grey
levels of the intensity mask (0 = outside, never paired, and it breaks runs). The six IBSI ways to
turn them into one value per feature:

=============  ===============================================================
``2d_avg``     features of every (slice, direction) matrix, averaged
``2d_s_mrg``   matrices of a slice summed over directions; features averaged over slices
``2.5d_d_mrg`` matrices of a direction summed over slices; features averaged over directions
``2.5d_v_mrg`` every 2D matrix summed into one
``3d_avg``     features of the 13 3D direction matrices, averaged
``3d_v_mrg``   the 13 3D matrices summed into one
=============  ===============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["DIRECTIONS_2D", "DIRECTIONS_3D", "glcm_features", "glrlm_features", "aggregate"]

# (dz, dy, dx); one of each pair of opposite directions
DIRECTIONS_2D: tuple[tuple[int, int, int], ...] = ((0, 0, 1), (0, 1, 1), (0, 1, 0), (0, 1, -1))
DIRECTIONS_3D: tuple[tuple[int, int, int], ...] = DIRECTIONS_2D + tuple(
    (1, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def _pairs(levels: np.ndarray, d: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey levels of voxel pairs (v, v + d) both inside the ROI, and the z index of v."""
    src, dst = [], []
    for k, n in zip(d, levels.shape):
        src.append(slice(max(0, -k), n - max(0, k)))
        dst.append(slice(max(0, k), n - max(0, -k)))
    a, b = levels[tuple(src)], levels[tuple(dst)]
    z = np.broadcast_to(np.arange(levels.shape[0])[src[0]][:, None, None], a.shape)
    ok = (a > 0) & (b > 0)
    return a[ok], b[ok], z[ok]


def glcm_stack(levels: np.ndarray, n_levels: int, d: tuple[int, int, int]) -> np.ndarray:
    """Symmetric co-occurrence counts per slice of the first voxel, shape (nz, Ng, Ng)."""
    a, b, z = _pairs(levels, d)
    ng, nz = n_levels, levels.shape[0]
    idx = (z * ng + (a - 1)) * ng + (b - 1)
    m = np.bincount(idx, minlength=nz * ng * ng).reshape(nz, ng, ng).astype(np.float64)
    return m + m.transpose(0, 2, 1)


def _cm_features(m: np.ndarray) -> dict[str, float]:
    ng = m.shape[0]
    p = m / m.sum()
    i = np.arange(1, ng + 1, dtype=np.float64)
    ii, jj = np.meshgrid(i, i, indexing="ij")
    pi = p.sum(1)
    pj = p.sum(0)
    mu_i = float((i * pi).sum())
    mu_j = float((i * pj).sum())
    diff = np.abs(ii - jj).astype(int)
    p_diff = np.bincount(diff.ravel(), weights=p.ravel(), minlength=ng)
    k_diff = np.arange(ng, dtype=np.float64)
    ssum = (ii + jj).astype(int)
    p_sum = np.bincount(ssum.ravel(), weights=p.ravel(), minlength=2 * ng + 1)
    k_sum = np.arange(2 * ng + 1, dtype=np.float64)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log2(q)).sum())

    diff_avg = float((k_diff * p_diff).sum())
    sum_avg = float((k_sum * p_sum).sum())
    var_i = float(((i - mu_i) ** 2 * pi).sum())
    var_j = float(((i - mu_j) ** 2 * pj).sum())
    hxy = entropy(p.ravel())
    hx = entropy(pi)
    pipj = np.outer(pi, pj)
    nzp = (p > 0) & (pipj > 0)
    hxy1 = float(-(p[nzp] * np.log2(pipj[nzp])).sum())
    nzq = pipj > 0
    hxy2 = float(-(pipj[nzq] * np.log2(pipj[nzq])).sum())
    ct = ii + jj - mu_i - mu_j
    f = {
        "joint_max": float(p.max()),
        "joint_avg": float((ii * p).sum()),
        "joint_var": float(((ii - float((ii * p).sum())) ** 2 * p).sum()),
        "joint_entr": hxy,
        "diff_avg": diff_avg,
        "diff_var": float(((k_diff - diff_avg) ** 2 * p_diff).sum()),
        "diff_entr": entropy(p_diff),
        "sum_avg": sum_avg,
        "sum_var": float(((k_sum - sum_avg) ** 2 * p_sum).sum()),
        "sum_entr": entropy(p_sum),
        "energy": float((p ** 2).sum()),
        "contrast": float(((ii - jj) ** 2 * p).sum()),
        "dissimilarity": float((np.abs(ii - jj) * p).sum()),
        "inv_diff": float((p / (1 + np.abs(ii - jj))).sum()),
        "inv_diff_norm": float((p / (1 + np.abs(ii - jj) / ng)).sum()),
        "inv_diff_mom": float((p / (1 + (ii - jj) ** 2)).sum()),
        "inv_diff_mom_norm": float((p / (1 + (ii - jj) ** 2 / ng ** 2)).sum()),
        "inv_var": float((p_diff[1:] / k_diff[1:] ** 2).sum()),
        "corr": float((((ii - mu_i) * (jj - mu_j) * p).sum()) / math.sqrt(var_i * var_j)) if var_i * var_j > 0
        else math.nan,
        "auto_corr": float((ii * jj * p).sum()),
        "clust_tend": float((ct ** 2 * p).sum()),
        "clust_shade": float((ct ** 3 * p).sum()),
        "clust_prom": float((ct ** 4 * p).sum()),
        "info_corr1": (hxy - hxy1) / hx if hx > 0 else math.nan,
        "info_corr2": math.sqrt(max(0.0, 1 - math.exp(-2 * (hxy2 - hxy)))),
    }
    return f


def runs(levels: np.ndarray, d: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey level, length and start slice of every run along unit direction ``d`` inside the ROI."""
    lp = np.pad(levels, 1)
    prev = np.roll(lp, shift=d, axis=(0, 1, 2))  # prev[v] = lp[v - d]; the zero pad stops runs
    starts = (lp > 0) & (prev != lp)
    pos = np.argwhere(starts)
    lvl = lp[starts]
    length = np.ones(len(lvl), dtype=np.int64)
    step = np.asarray(d)
    cur = pos + step
    active = lp[cur[:, 0], cur[:, 1], cur[:, 2]] == lvl
    while active.any():
        length[active] += 1
        cur[active] += step
        idx = np.flatnonzero(active)
        c = cur[idx]
        active[idx] = lp[c[:, 0], c[:, 1], c[:, 2]] == lvl[idx]
    return lvl, length, pos[:, 0] - 1


def glrlm_stack(levels: np.ndarray, n_levels: int, d: tuple[int, int, int], max_len: int) -> np.ndarray:
    """Run length counts per start slice, shape (nz, Ng, max_len)."""
    lvl, length, z = runs(levels, d)
    nz = levels.shape[0]
    idx = (z * n_levels + (lvl - 1)) * max_len + (length - 1)
    return np.bincount(idx, minlength=nz * n_levels * max_len).reshape(nz, n_levels, max_len).astype(np.float64)


def _size_features(m: np.ndarray, n_voxels: float, *, short: str, long: str, lg: str, hg: str, s_lg: str,
                   s_hg: str, l_lg: str, l_hg: str, nu: str, var: str, entr: str, perc: str) -> dict[str, float]:
    """Features shared by run-length, size-zone, distance-zone and dependence matrices.

    ``m[i-1, j-1]`` counts grey level i with run length / zone size / distance / dependence j.
    """
    ns = m.sum()
    p = m / ns
    i = np.arange(1, m.shape[0] + 1, dtype=np.float64)[:, None]
    j = np.arange(1, m.shape[1] + 1, dtype=np.float64)[None, :]
    mi, mj = m.sum(1), m.sum(0)
    mu_i, mu_j = float((i * p).sum()), float((j * p).sum())
    q = p[p > 0]
    return {
        short: float((m / j ** 2).sum() / ns), long: float((m * j ** 2).sum() / ns),
        lg: float((m / i ** 2).sum() / ns), hg: float((m * i ** 2).sum() / ns),
        s_lg: float((m / (i ** 2 * j ** 2)).sum() / ns), s_hg: float((m * i ** 2 / j ** 2).sum() / ns),
        l_lg: float((m * j ** 2 / i ** 2).sum() / ns), l_hg: float((m * i ** 2 * j ** 2).sum() / ns),
        "glnu": float((mi ** 2).sum() / ns), "glnu_norm": float((mi ** 2).sum() / ns ** 2),
        nu: float((mj ** 2).sum() / ns), nu + "_norm": float((mj ** 2).sum() / ns ** 2),
        perc: float(ns / n_voxels),
        "gl_var": float(((i - mu_i) ** 2 * p).sum()), var: float(((j - mu_j) ** 2 * p).sum()),
        entr: float(-(q * np.log2(q)).sum()),
    }


def _rlm_features(m: np.ndarray, n_voxels: float) -> dict[str, float]:
    return _size_features(m, n_voxels, short="sre", long="lre", lg="lgre", hg="hgre", s_lg="srlge",
                          s_hg="srhge", l_lg="lrlge", l_hg="lrhge", nu="rlnu", var="rl_var", entr="rl_entr",
                          perc="r_perc")


def _mean_dicts(ds: list[dict[str, float]]) -> dict[str, float]:
    if not ds:
        return {}
    return {k: float(np.mean([d[k] for d in ds])) for k in ds[0]}


def aggregate(stacks2d: list[np.ndarray], nv2d: list[np.ndarray], stacks3d: list[np.ndarray], nv3d: float,
              fn: Callable[[np.ndarray, float], dict[str, float]]) -> dict[str, dict[str, float]]:
    """Apply ``fn(matrix, n_voxels)`` under the six IBSI aggregations.

    ``stacks2d[d]`` is (nz, ...) per in-plane direction, ``nv2d[d]`` the voxel count per slice, and
    ``stacks3d[d]`` the full-volume matrix of each 3D direction. Empty matrices are skipped.
    """
    out: dict[str, dict[str, float]] = {}
    nz = stacks2d[0].shape[0]
    per = [fn(s[z], nv[z]) for s, nv in zip(stacks2d, nv2d) for z in range(nz) if s[z].sum() > 0]
    out["2d_avg"] = _mean_dicts(per)
    slice_m = [(sum(s[z] for s in stacks2d), sum(nv[z] for nv in nv2d)) for z in range(nz)]
    out["2d_s_mrg"] = _mean_dicts([fn(m, nv) for m, nv in slice_m if m.sum() > 0])
    dir_m = [(s.sum(0), float(nv.sum())) for s, nv in zip(stacks2d, nv2d)]
    out["2.5d_d_mrg"] = _mean_dicts([fn(m, nv) for m, nv in dir_m if m.sum() > 0])
    allm = sum(m for m, _ in dir_m)
    out["2.5d_v_mrg"] = fn(allm, sum(nv for _, nv in dir_m)) if allm.sum() > 0 else {}
    out["3d_avg"] = _mean_dicts([fn(m, nv3d) for m in stacks3d if m.sum() > 0])
    all3 = sum(stacks3d)
    out["3d_v_mrg"] = fn(all3, nv3d * len(stacks3d)) if all3.sum() > 0 else {}
    return fill_missing(out)


def fill_missing(out: dict[str, dict[str, float]], names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Give every aggregation the same feature names, NaN where its matrices were empty (e.g. the 3D
    directions of a single-slice ROI, or any direction of a single-voxel ROI), so every ROI yields the same
    tags; ``names`` are used when no aggregation has any."""
    names = next((list(d) for d in out.values() if d), names or [])
    return {a: (d if d else {k: math.nan for k in names}) for a, d in out.items()}


def glcm_features(levels: np.ndarray, n_levels: int, distance: int = 1) -> dict[str, float]:
    """GLCM features keyed ``cm_<name>_d<distance>_<aggregation>``."""
    d2 = [tuple(distance * c for c in d) for d in DIRECTIONS_2D]
    d3 = [tuple(distance * c for c in d) for d in DIRECTIONS_3D]
    s2 = [glcm_stack(levels, n_levels, d) for d in d2]
    nv = [np.zeros(levels.shape[0]) for _ in d2]
    s3 = [glcm_stack(levels, n_levels, d).sum(0) for d in d3]
    agg = fill_missing(aggregate(s2, nv, s3, 0.0, lambda m, _nv: _cm_features(m)), list(_cm_features(np.ones((1, 1)))))
    return {f"cm_{k}_d{distance}_{a}": v for a, fs in agg.items() for k, v in fs.items()}


def glrlm_features(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """GLRLM features keyed ``rlm_<name>_<aggregation>``."""
    max_len = max(levels.shape)
    roi = levels > 0
    nv_slice = roi.sum((1, 2)).astype(np.float64)
    s2 = [glrlm_stack(levels, n_levels, d, max_len) for d in DIRECTIONS_2D]
    s3 = [glrlm_stack(levels, n_levels, d, max_len).sum(0) for d in DIRECTIONS_3D]
    agg = aggregate(s2, [nv_slice] * len(s2), s3, float(roi.sum()), _rlm_features)
    return {f"rlm_{k}_{a}": v for a, fs in agg.items() for k, v in fs.items()}
