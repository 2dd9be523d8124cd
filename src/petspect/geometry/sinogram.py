"""3D PET sinograms: michelogram segments (span, maximum ring difference), views, radial bins.

Layout
------
A sinogram has shape ``(n_planes, n_views, n_radial)`` (non-TOF) or
``(n_planes, n_views, n_radial, n_tof_bins)`` (TOF); the view axis is axis 1.

* **Radial bins are not arc-corrected.** Bin ``t`` (``-n_radial/2 <= t < n_radial/2``) of view ``v``
  joins crystals ``a`` and ``b = a + N/2 + t`` (``N`` crystals per ring) with ``a + b = 2 v`` or
  ``2 v + 1`` (mod ``N``): the usual interleaved sinogram, whose radial positions are
  ``R sin(pi t / N)`` (about half a crystal pitch apart at the centre, closer at the edge).
* **Views** run over 180 degrees (``N / 2`` views). With view mashing ``m`` each stored view sums
  ``m`` neighbouring views.
* **Planes** follow the michelogram: a LOR from ring ``r_a`` (crystal ``a``) to ring ``r_b``
  (crystal ``b``) has ring difference ``d = r_b - r_a`` (``|d| <= max_ring_diff``); with ``span`` s
  (odd) segment 0 holds ``|d| <= (s - 1) / 2`` and segment ``+-k`` holds ``d`` in
  ``+-k s +- (s - 1) / 2``. Within a segment the planes are the ring sums ``r_a + r_b`` (axial
  positions half a ring apart). Segments are stored in the order 0, +1, -1, +2, -2, ...

Each bin stands for several crystal pairs (``m`` views times the ring pairs of its plane). The
projectors trace one representative LOR per bin, from the mean position of its first crystals to
the mean position of its second crystals; the number of crystal pairs a bin sums is its
*multiplicity*, which belongs to the efficiencies (:mod:`petspect.physics.normalization`), not to
the line integrals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from petspect.errors import InputError
from petspect.geometry.pet import PetScanner

__all__ = ["SinogramDefinition", "default_n_radial", "join_endpoints"]


def default_n_radial(scanner: PetScanner) -> int:
    """Even number of radial bins that covers the scanner's transaxial FOV (non-arc-corrected)."""
    half = scanner.crystals_per_ring / math.pi * math.asin(0.5 * scanner.fov_diameter_mm / scanner.ring_radius_mm)
    return int(2 * math.ceil(half))


@dataclass(frozen=True, eq=False)
class SinogramDefinition:
    """Binning of coincidences into a (TOF) sinogram for a :class:`PetScanner`.

    Parameters
    ----------
    scanner : PetScanner
        The scanner.
    span : int
        Axial compression (odd, >= 1). 1 keeps every ring pair as its own plane.
    max_ring_diff : int or None
        Largest ``|r_b - r_a|`` kept; None keeps all (``n_rings - 1``).
    view_mashing : int
        Number of neighbouring views summed into one (divides ``crystals_per_ring / 2``).
    n_radial : int or None
        Radial bins (even); None covers the scanner's transaxial FOV.
    """

    scanner: PetScanner
    span: int = 1
    max_ring_diff: int | None = None
    view_mashing: int = 1
    n_radial: int | None = None

    def __post_init__(self) -> None:
        s = self.scanner
        mrd = s.n_rings - 1 if self.max_ring_diff is None else int(self.max_ring_diff)
        if not (0 <= mrd <= s.n_rings - 1):
            raise InputError(f"max_ring_diff must be in 0..{s.n_rings - 1}, got {self.max_ring_diff}")
        if int(self.span) < 1 or int(self.span) % 2 == 0:
            raise InputError(f"span must be an odd number >= 1, got {self.span}")
        half_views = s.crystals_per_ring // 2
        if int(self.view_mashing) < 1 or half_views % int(self.view_mashing):
            raise InputError(f"view_mashing must divide crystals_per_ring / 2 = {half_views}, got {self.view_mashing}")
        n_rad = default_n_radial(s) if self.n_radial is None else int(self.n_radial)
        if n_rad < 2 or n_rad % 2 or n_rad >= s.crystals_per_ring:
            raise InputError(f"n_radial must be even, >= 2 and < crystals_per_ring, got {self.n_radial}")
        object.__setattr__(self, "max_ring_diff", mrd)
        object.__setattr__(self, "n_radial", n_rad)

    @classmethod
    def preset_default(cls, scanner: PetScanner, **overrides) -> "SinogramDefinition":
        """The vendor-like default binning of a preset scanner (:data:`petspect.geometry.pet.PRESET_COMPRESSION`).

        ``overrides`` (``span``, ``max_ring_diff``, ``view_mashing``, ``n_radial``) replace single values;
        None keeps the default. The radial bins are capped to what the scanner's ring allows.
        """
        from petspect.geometry.pet import default_compression

        c = default_compression(scanner)
        values = {"span": c.span, "max_ring_diff": min(c.max_ring_diff, scanner.n_rings - 1),
                  "view_mashing": c.view_mashing, "n_radial": min(c.n_radial, scanner.crystals_per_ring - 2)}
        unknown = set(overrides) - set(values)
        if unknown:
            raise InputError(f"unknown sinogram settings {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(scanner, **values)

    @property
    def n_lors(self) -> int:
        """Number of (non-TOF) sinogram bins, i.e. projected LORs: planes x views x radial bins."""
        return self.n_planes * self.n_views * self.n_radial

    # ------------------------------------------------------------------ sizes
    @property
    def n_views(self) -> int:
        """Stored views (after mashing)."""
        return self.scanner.crystals_per_ring // 2 // self.view_mashing

    @property
    def n_planes(self) -> int:
        """Number of sinogram planes over all segments."""
        return int(self._planes["n_planes"])

    @property
    def n_tof_bins(self) -> int:
        return self.scanner.n_tof_bins

    def shape(self, tof: bool = False) -> tuple[int, ...]:
        """``(n_planes, n_views, n_radial)``, with ``n_tof_bins`` appended when ``tof``."""
        base = (self.n_planes, self.n_views, self.n_radial)
        return base + (self.scanner.n_tof_bins,) if tof else base

    # ------------------------------------------------------------------ michelogram
    def segment_of_ring_diff(self, ring_diff: np.ndarray) -> np.ndarray:
        """Segment number (0, +-1, ...) of ring differences ``r_b - r_a``."""
        return np.sign(ring_diff) * ((np.abs(ring_diff) + (self.span - 1) // 2) // self.span)

    @cached_property
    def _planes(self) -> dict:
        n = self.scanner.n_rings
        ra, rb = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        ra, rb = ra.ravel(), rb.ravel()
        keep = np.abs(rb - ra) <= self.max_ring_diff
        ra, rb = ra[keep], rb[keep]
        seg = self.segment_of_ring_diff(rb - ra)
        seg_order = np.where(seg > 0, 2 * seg - 1, -2 * seg)  # 0, +1, -1, +2, -2, ...
        key = seg_order * (2 * n) + (ra + rb)
        uniq, plane = np.unique(key, return_inverse=True)
        return {"n_planes": len(uniq), "plane": plane, "ring_a": ra, "ring_b": rb,
                "segment": (uniq // (2 * n)), "seg_of_pair": seg}

    def ring_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All kept ring pairs: ``(ring_a, ring_b, plane_index)`` arrays of equal length."""
        p = self._planes
        return p["ring_a"], p["ring_b"], p["plane"]

    def plane_segments(self) -> np.ndarray:
        """Segment number (0, +1, -1, ...) of every plane, shape (n_planes,)."""
        order = self._planes["segment"]
        return np.where(order % 2 == 1, (order + 1) // 2, -(order // 2))

    def plane_multiplicity(self) -> np.ndarray:
        """Number of ring pairs summed in each plane, shape (n_planes,)."""
        return np.bincount(self._planes["plane"], minlength=self.n_planes)

    def plane_z_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean axial positions (z_a, z_b) of each plane's first and second crystals, mm, (n_planes,) each."""
        z = self.scanner.ring_z_mm()
        ra, rb, plane = self.ring_pairs()
        cnt = self.plane_multiplicity()
        za = np.bincount(plane, weights=z[ra], minlength=self.n_planes) / cnt
        zb = np.bincount(plane, weights=z[rb], minlength=self.n_planes) / cnt
        return za, zb

    # ------------------------------------------------------------------ transaxial
    def radial_index(self) -> np.ndarray:
        """Signed radial bin numbers ``t`` (n_radial,)."""
        return np.arange(self.n_radial) - self.n_radial // 2

    def crystal_pairs(self, mash_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Unwrapped crystal indices (a, b), each (n_views, n_radial), of one mashed member view.

        Member ``k`` (``0 <= k < view_mashing``) of stored view ``v`` is the unmashed view
        ``v * view_mashing + k``. Indices are not reduced modulo ``crystals_per_ring`` so they can
        be averaged; take them ``% crystals_per_ring`` to address crystals.
        """
        n = self.scanner.crystals_per_ring
        v = np.arange(self.n_views)[:, None] * self.view_mashing + mash_offset
        t = self.radial_index()[None, :]
        p = (n // 2 + t) % 2
        a = (2 * v + p - n // 2 - t) // 2
        return a, a + n // 2 + t

    def transaxial_endpoints_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Representative (x, y) of the first and second crystal, each (n_views, n_radial, 2), mm.

        The representative crystal of a mashed view sits at the mean angle of its member crystals.
        """
        members = [self.crystal_pairs(k) for k in range(self.view_mashing)]
        a = np.mean([m[0] for m in members], axis=0)
        b = np.mean([m[1] for m in members], axis=0)
        r = self.scanner.ring_radius_mm
        pa = self.scanner.crystal_angles_rad(a)
        pb = self.scanner.crystal_angles_rad(b)
        return (r * np.stack([np.cos(pa), np.sin(pa)], -1), r * np.stack([np.cos(pb), np.sin(pb)], -1))

    def sum_over_members(self, crystal_a: torch.Tensor, crystal_b: torch.Tensor | None = None, *,
                         pairs_per_chunk: int = 256) -> torch.Tensor:
        """``sum over the crystal pairs (i, j) of each bin of a[i] * b[j]``, shape (n_planes, n_views, n_radial).

        ``crystal_a`` and ``crystal_b`` (default: ``crystal_a``) have shape (n_rings, crystals_per_ring)
        and are indexed by the first and second crystal of each pair. With all ones this gives each
        bin's multiplicity; with efficiencies the bin efficiency; with singles rates the randoms rate.
        Device and dtype follow ``crystal_a``.
        """
        b_vals = crystal_a if crystal_b is None else crystal_b
        shape = (self.scanner.n_rings, self.scanner.crystals_per_ring)
        if tuple(crystal_a.shape) != shape or tuple(b_vals.shape) != shape:
            raise InputError(f"crystal values must have shape {shape}")
        ra, rb, plane = (torch.as_tensor(v, device=crystal_a.device) for v in self.ring_pairs())
        out = crystal_a.new_zeros((self.n_planes, self.n_views * self.n_radial))
        n = self.scanner.crystals_per_ring
        for k in range(self.view_mashing):
            ia, ib = (torch.as_tensor(v % n, device=crystal_a.device).reshape(-1) for v in self.crystal_pairs(k))
            ea, eb = crystal_a[:, ia], b_vals[:, ib]  # (n_rings, V * R)
            for s in range(0, len(ra), pairs_per_chunk):
                sl = slice(s, s + pairs_per_chunk)
                out.index_add_(0, plane[sl], ea[ra[sl]] * eb[rb[sl]])
        return out.reshape(self.shape())

    def radial_positions_mm(self) -> np.ndarray:
        """Signed distance of each radial bin's LOR from the scanner axis, mm, (n_radial,)."""
        return self.scanner.ring_radius_mm * np.sin(np.pi * self.radial_index() / self.scanner.crystals_per_ring)

    def lor_endpoints_mm(self, *, device=None, dtype: torch.dtype = torch.float64,
                         planes: slice | None = None, views: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """LPS endpoints (start, end), each (n_planes, n_views, n_radial, 3), of every bin's LOR, mm.

        ``planes`` (a slice) and ``views`` (an index tensor) select part of the sinogram.
        """
        ta, tb = (torch.as_tensor(e, dtype=dtype, device=device) for e in self.transaxial_endpoints_mm())
        za, zb = (torch.as_tensor(z, dtype=dtype, device=device) for z in self.plane_z_mm())
        if planes is not None:
            za, zb = za[planes], zb[planes]
        if views is not None:
            ta, tb = ta[views.to(ta.device)], tb[views.to(tb.device)]
        return join_endpoints(ta, za), join_endpoints(tb, zb)


def join_endpoints(xy: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Broadcast transaxial (V, R, 2) and axial (P,) coordinates to points (P, V, R, 3)."""
    p, (v, r) = z.shape[0], xy.shape[:2]
    return torch.cat([xy.expand(p, v, r, 2), z[:, None, None, None].expand(p, v, r, 1)], dim=-1)
