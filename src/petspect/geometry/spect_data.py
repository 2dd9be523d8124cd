"""SPECT projection data as acquired: counts per energy window and view, with the orbit.

This is the object that :mod:`petspect.io` reads from NM DICOM (multi-frame TOMO data) and
Interfile, that :mod:`petspect.physics` / :mod:`petspect.projectors` SPECT models simulate, and that
SPECT reconstruction takes.

Conventions
-----------
* ``counts`` has shape ``(n_windows, n_views, n_rows, n_cols)``: rows run along the patient axis
  (z, superior first as stored in DICOM frames), columns along the detector's transverse axis.
* ``angles_deg`` are the detector angles of each view in degrees, in petspect's convention
  (:mod:`petspect.geometry.spect`): 0 deg = detector anterior (above a supine patient), increasing
  clockwise seen from the feet. DICOM's angles (0 at the patient's back, counter-clockwise) are
  converted by the reader (``180 - DICOM angle``).
* ``radius_mm`` is the distance from the rotation axis to the collimator face for each view (a
  circular orbit has equal values; a body-contour orbit differs per view).
* ``pixel_spacing_mm`` is (row, col) spacing on the detector in mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from petspect.errors import InputError


@dataclass(frozen=True)
class EnergyWindow:
    """An energy window: name and limits in keV (lower < upper)."""

    name: str
    lower_kev: float
    upper_kev: float

    def __post_init__(self) -> None:
        if not (0 < self.lower_kev < self.upper_kev):
            raise InputError(f"energy window {self.name!r}: need 0 < lower_kev < upper_kev, "
                             f"got {self.lower_kev}, {self.upper_kev}")

    @property
    def width_kev(self) -> float:
        return self.upper_kev - self.lower_kev

    @property
    def centre_kev(self) -> float:
        return 0.5 * (self.lower_kev + self.upper_kev)


@dataclass
class SpectProjections:
    """Counts per window and view, the orbit, and the acquisition facts needed to reconstruct.

    Parameters
    ----------
    counts : torch.Tensor, shape (n_windows, n_views, n_rows, n_cols)
        Detected counts (non-negative).
    angles_deg : torch.Tensor, shape (n_views,)
        Detector angle of each view in degrees.
    radius_mm : torch.Tensor, shape (n_views,)
        Collimator-face distance from the rotation axis per view (mm).
    pixel_spacing_mm : (float, float)
        Detector pixel size (row, col) in mm.
    energy_windows : list of EnergyWindow
        One per first axis entry of ``counts``; the photopeak is named in ``photopeak_window``.
    frame_duration_s : float
        Acquisition time per view in s.
    photopeak_window : int
        Index of the photopeak window in ``energy_windows``.
    nuclide : str, optional
        E.g. "Tc-99m", "Lu-177".
    meta : dict
        Further JSON-serialisable facts (detector count, collimator name, orbit type, ...).
    """

    counts: torch.Tensor
    angles_deg: torch.Tensor
    radius_mm: torch.Tensor
    pixel_spacing_mm: tuple[float, float]
    energy_windows: list[EnergyWindow]
    frame_duration_s: float = 1.0
    photopeak_window: int = 0
    nuclide: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = torch.as_tensor(self.counts)
        if self.counts.ndim == 3:
            self.counts = self.counts[None]
        if self.counts.ndim != 4:
            raise InputError(f"SPECT counts must be (windows, views, rows, cols), got {tuple(self.counts.shape)}")
        n_win, n_views = self.counts.shape[:2]
        self.angles_deg = torch.as_tensor(self.angles_deg, dtype=torch.float64).reshape(-1)
        self.radius_mm = torch.as_tensor(self.radius_mm, dtype=torch.float64).reshape(-1)
        if self.radius_mm.numel() == 1:
            self.radius_mm = self.radius_mm.expand(n_views).clone()
        if self.angles_deg.numel() != n_views or self.radius_mm.numel() != n_views:
            raise InputError(f"{n_views} views but {self.angles_deg.numel()} angles and "
                             f"{self.radius_mm.numel()} radii")
        if len(self.energy_windows) != n_win:
            raise InputError(f"{n_win} windows of counts but {len(self.energy_windows)} energy windows")
        if not 0 <= self.photopeak_window < n_win:
            raise InputError(f"photopeak_window {self.photopeak_window} out of range 0..{n_win - 1}")
        if self.frame_duration_s <= 0:
            raise InputError(f"frame_duration_s must be positive, got {self.frame_duration_s}")
        self.pixel_spacing_mm = (float(self.pixel_spacing_mm[0]), float(self.pixel_spacing_mm[1]))

    @property
    def n_views(self) -> int:
        return int(self.counts.shape[1])

    @property
    def photopeak(self) -> torch.Tensor:
        """Counts of the photopeak window, shape (n_views, n_rows, n_cols)."""
        return self.counts[self.photopeak_window]

    def window(self, name: str) -> torch.Tensor:
        """Counts of the window with this name, shape (n_views, n_rows, n_cols)."""
        for i, w in enumerate(self.energy_windows):
            if w.name == name:
                return self.counts[i]
        raise InputError(f"no energy window named {name!r}; have {[w.name for w in self.energy_windows]}")
