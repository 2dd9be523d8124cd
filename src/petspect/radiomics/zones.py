"""Size-zone (GLSZM), distance-zone (GLDZM), neighbourhood grey tone difference (NGTDM) and neighbouring
grey level dependence (NGLDM) features (IBSI sections 3.8-3.11).

Aggregation: ``2d`` = features per slice averaged over slices; ``2.5d`` = per-slice matrices summed
over slices; ``3d`` = one matrix from the volume. Zones are 8-connected in 2D and 26-connected in 3D;
zone distances to the ROI edge are taxicab (4- / 6-connected) distances, 1 for an edge voxel.
"""

from __future__ import annotations

import numpy as np

from petspect.radiomics.texture import _size_features, fill_missing

__all__ = ["glszm_features", "gldzm_features", "ngtdm_features", "ngldm_features"]

_SZM = dict(short="sze", long="lze", lg="lgze", hg="hgze", s_lg="szlge", s_hg="szhge", l_lg="lzlge", l_hg="lzhge",
            nu="zsnu", var="zs_var", entr="zs_entr", perc="z_perc")
_DZM = dict(short="sde", long="lde", lg="lgze", hg="hgze", s_lg="sdlge", s_hg="sdhge", l_lg="ldlge", l_hg="ldhge",
            nu="zdnu", var="zd_var", entr="zd_entr", perc="z_perc")
_NGL = dict(short="lde", long="hde", lg="lgce", hg="hgce", s_lg="ldlge", s_hg="ldhge", l_lg="hdlge", l_hg="hdhge",
            nu="dcnu", var="dc_var", entr="dc_entr", perc="dc_perc")


def _zones(levels: np.ndarray, n_levels: int, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey level, size and label map of every connected zone; returns (lvl, size, labels)."""
    from scipy.ndimage import label

    lab = np.zeros(levels.shape, dtype=np.int64)
    lvls, sizes = [], []
    offset = 0
    for g in np.unique(levels[levels > 0]):
        lg, n = label(levels == g, structure=structure)
        if n == 0:
            continue
        sel = lg > 0
        lab[sel] = lg[sel] + offset
        sizes.append(np.bincount(lg[sel], minlength=n + 1)[1:])
        lvls.append(np.full(n, g))
        offset += n
    if not lvls:
        return np.zeros(0, int), np.zeros(0, int), lab
    return np.concatenate(lvls), np.concatenate(sizes), lab


def _edge_distance(roi: np.ndarray) -> np.ndarray:
    from scipy.ndimage import distance_transform_cdt

    padded = np.pad(roi, 1)
    d = distance_transform_cdt(padded, metric="taxicab")
    return d[tuple(slice(1, -1) for _ in range(roi.ndim))]


def _zone_matrices(levels: np.ndarray, n_levels: int, structure: np.ndarray, with_distance: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(size-zone matrix, distance-zone matrix) of one 2D slice or 3D volume."""
    from scipy.ndimage import minimum

    lvl, size, lab = _zones(levels, n_levels, structure)
    szm = np.zeros((n_levels, int(size.max()) if len(size) else 1), dtype=np.float64)
    np.add.at(szm, (lvl - 1, size - 1), 1.0)
    dzm = np.zeros((n_levels, max(levels.shape) + 1), dtype=np.float64)
    if with_distance and len(lvl):
        dist = _edge_distance(levels > 0)
        zd = np.asarray(minimum(dist, lab, index=np.arange(1, len(lvl) + 1))).astype(int)
        np.add.at(dzm, (lvl - 1, zd - 1), 1.0)
    return szm, dzm


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of two count matrices of the same grey levels and possibly different widths."""
    w = max(a.shape[1], b.shape[1])
    out = np.zeros((a.shape[0], w))
    out[:, : a.shape[1]] += a
    out[:, : b.shape[1]] += b
    return out


def _three_ways(levels: np.ndarray, n_levels: int, matrices, features) -> dict[str, dict[str, float]]:
    """Features under 2d (slice average), 2.5d (merged slices) and 3d, from ``matrices(array, is3d)``."""
    per, merged, nv_total = [], None, 0.0
    for z in range(levels.shape[0]):
        sl = levels[z][None]
        nv = float((sl > 0).sum())
        if nv == 0:
            continue
        m = matrices(sl, False)
        per.append(features(m, nv))
        merged = m if merged is None else _add(merged, m)
        nv_total += nv
    out = {"2d": {k: float(np.mean([d[k] for d in per])) for k in per[0]}}
    out["2.5d"] = features(merged, nv_total)
    out["3d"] = features(matrices(levels, True), float((levels > 0).sum()))
    return out


_S2 = np.zeros((3, 3, 3), bool)
_S2[1] = True
_S3 = np.ones((3, 3, 3), bool)


def glszm_features(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """GLSZM features keyed ``szm_<name>_<2d|2.5d|3d>``."""
    def mats(a, is3d):
        return _zone_matrices(a, n_levels, _S3 if is3d else _S2, False)[0]

    agg = _three_ways(levels, n_levels, mats, lambda m, nv: _size_features(m, nv, **_SZM))
    return {f"szm_{k}_{a}": v for a, fs in agg.items() for k, v in fs.items()}


def gldzm_features(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """GLDZM features keyed ``dzm_<name>_<2d|2.5d|3d>`` (distances in voxels to the intensity-mask edge)."""
    def mats(a, is3d):
        if is3d:
            return _zone_matrices(a, n_levels, _S3, True)[1]
        return _zone_matrices(a[0], n_levels, _S2[1], True)[1]  # 2D distance map of the slice

    agg = _three_ways(levels, n_levels, mats, lambda m, nv: _size_features(m, nv, **_DZM))
    return {f"dzm_{k}_{a}": v for a, fs in agg.items() for k, v in fs.items()}


def _kernel(is3d: bool, distance: int = 1) -> np.ndarray:
    r = distance
    k = np.ones((2 * r + 1 if is3d else 1, 2 * r + 1, 2 * r + 1))
    k[tuple(s // 2 for s in k.shape)] = 0.0
    return k


def _ngtdm_sums(levels: np.ndarray, n_levels: int, is3d: bool) -> tuple[np.ndarray, np.ndarray]:
    """(s_i, n_i): summed |i - neighbourhood mean| and voxel counts of grey level i (IBSI 3.10)."""
    from scipy.ndimage import convolve

    roi = levels > 0
    k = _kernel(is3d)
    tot = convolve(levels.astype(np.float64), k, mode="constant", cval=0.0)
    cnt = convolve(roi.astype(np.float64), k, mode="constant", cval=0.0)
    ok = roi & (cnt > 0)
    lv = levels[ok]
    dev = np.abs(lv - tot[ok] / cnt[ok])
    s = np.bincount(lv - 1, weights=dev, minlength=n_levels)
    n = np.bincount(lv - 1, minlength=n_levels).astype(np.float64)
    return s, n


def _ngtdm(s: np.ndarray, n: np.ndarray) -> dict[str, float]:
    nvc = n.sum()
    p = n / nvc
    i = np.arange(1, len(s) + 1, dtype=np.float64)
    ok = p > 0
    ngp = int(ok.sum())
    pi, si, ii = p[ok], s[ok], i[ok]
    dp = pi[:, None] * pi[None, :]
    di = ii[:, None] - ii[None, :]
    ps = float((p * s).sum())
    coarse = 1.0 / ps if ps > 0 else 1e6
    contrast = float((dp * di ** 2).sum()) / (ngp * (ngp - 1)) * s.sum() / nvc if ngp > 1 else 0.0
    bden = float(np.abs(ii[:, None] * pi[:, None] - ii[None, :] * pi[None, :]).sum())
    busy = ps / bden if bden > 0 else 0.0
    comp = float((np.abs(di) * (pi[:, None] * si[:, None] + pi[None, :] * si[None, :])
                  / (pi[:, None] + pi[None, :])).sum()) / nvc
    strength = float(((pi[:, None] + pi[None, :]) * di ** 2).sum()) / s.sum() if s.sum() > 0 else 0.0
    return {"coarseness": coarse, "contrast": contrast, "busyness": busy, "complexity": comp, "strength": strength}


def ngtdm_features(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """NGTDM features keyed ``ngt_<name>_<2d|2.5d|3d>`` (8 in-plane or 26 neighbours inside the ROI)."""
    per, s_tot, n_tot = [], np.zeros(n_levels), np.zeros(n_levels)
    for z in range(levels.shape[0]):
        sl = levels[z][None]
        if not (sl > 0).any():
            continue
        s, n = _ngtdm_sums(sl, n_levels, False)
        if n.sum() > 0:
            per.append(_ngtdm(s, n))
        s_tot += s
        n_tot += n
    out = {}
    if per:
        out["2d"] = {k: float(np.mean([d[k] for d in per])) for k in per[0]}
    if n_tot.sum() > 0:
        out["2.5d"] = _ngtdm(s_tot, n_tot)
    s3, n3 = _ngtdm_sums(levels, n_levels, True)
    out["3d"] = _ngtdm(s3, n3) if n3.sum() > 0 else {}
    out = fill_missing({a: out.get(a, {}) for a in ("2d", "2.5d", "3d")},
                       ["coarseness", "contrast", "busyness", "complexity", "strength"])
    return {f"ngt_{k}_{a}": v for a, fs in out.items() for k, v in fs.items()}


def _ngldm_matrix(levels: np.ndarray, n_levels: int, is3d: bool, distance: int, alpha: float) -> np.ndarray:
    from scipy.ndimage import convolve

    k = _kernel(is3d, distance)
    kmax = int(k.sum())
    present = np.unique(levels[levels > 0])
    conv = {g: convolve((levels == g).astype(np.float64), k, mode="constant", cval=0.0) for g in present}
    m = np.zeros((n_levels, kmax + 1), dtype=np.float64)
    for g in present:
        at = levels == g
        dep = sum(conv[h][at] for h in present if abs(int(h) - int(g)) <= alpha)
        j = np.rint(dep).astype(int)  # number of dependent neighbours; dependence k = j + 1
        m[g - 1] += np.bincount(j, minlength=kmax + 1)
    return m


def ngldm_features(levels: np.ndarray, n_levels: int, distance: int = 1, alpha: float = 0.0) -> dict[str, float]:
    """NGLDM features keyed ``ngl_<name>_d<distance>_a<alpha>_<2d|2.5d|3d>``."""
    def feats(m, nv):
        f = _size_features(m, nv, **_NGL)
        p = m / m.sum()
        f["dc_energy"] = float((p ** 2).sum())
        return f

    agg = _three_ways(levels, n_levels, lambda a, is3d: _ngldm_matrix(a, n_levels, is3d, distance, alpha), feats)
    a_txt = f"{alpha:.1f}"
    return {f"ngl_{k}_d{distance}_a{a_txt}_{a}": v for a, fs in agg.items() for k, v in fs.items()}

