"""Monolithic-detector event simulation: gamma transport -> scintillation -> light transport -> SiPM.

Calibration-style irradiations are provided: a grid of pencil beams (labels in x, y and, in
simulation, the true depth), fan beams (a line of beams whose label is known only across the fan)
and a uniform flood. Each produces :class:`EventData` with the per-pixel signals and the true 3D
first-interaction point; :func:`save_events` writes them with a JSON record of how they were made.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from petspect._fileio import atomic_path, atomic_write_text
from petspect._json import json_default
from petspect.detector.crystals import Crystal, get_crystal
from petspect.detector.interactions import track_gammas
from petspect.detector.light_transport import Optics, light_collection
from petspect.detector.photodetector import SiPMArray, sipm_response
from petspect.errors import ConfigError, DataNotFoundError, FormatError, InputError


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """A monolithic block read out by a SiPM array that covers its exit face.

    Parameters
    ----------
    crystal : str
        Preset name in :data:`petspect.detector.crystals.CRYSTALS`.
    thickness_mm : float
        Crystal thickness (mm), at most 30.
    sipm : SiPMArray
        Photodetector; the crystal face equals the array extent.
    optics : Optics
        Surface finish and light-transport expansion.
    energy_kev : float
        Gamma energy (keV).
    fano : float
        Fano factor of the scintillation photon number (1 = Poisson).
    max_interactions : int
        Interactions followed per gamma.
    """

    crystal: str = "LYSO"
    thickness_mm: float = 12.0
    sipm: SiPMArray = dataclasses.field(default_factory=SiPMArray)
    optics: Optics = dataclasses.field(default_factory=Optics)
    energy_kev: float = 511.0
    fano: float = 1.0
    max_interactions: int = 6

    def __post_init__(self) -> None:
        get_crystal(self.crystal)
        if not 0 < self.thickness_mm <= 30.0:
            raise ConfigError(f"thickness_mm must be in (0, 30], got {self.thickness_mm}")
        if self.energy_kev <= 0 or self.fano <= 0:
            raise ConfigError("energy_kev and fano must be positive")

    @property
    def crystal_props(self) -> Crystal:
        """The :class:`Crystal` preset."""
        return get_crystal(self.crystal)

    @property
    def size_mm(self) -> tuple[float, float]:
        """Crystal face ``(size_x, size_y)`` (mm)."""
        return (self.sipm.size_x_mm, self.sipm.size_y_mm)

    def to_dict(self) -> dict:
        """JSON-serialisable record (crystal properties included)."""
        d = dataclasses.asdict(self)
        d["crystal_properties"] = self.crystal_props.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DetectorConfig:
        """Rebuild from :meth:`to_dict` output."""
        d = {k: v for k, v in d.items() if k != "crystal_properties"}
        return cls(**{**d, "sipm": SiPMArray(**d["sipm"]), "optics": Optics(**d["optics"])})


@dataclasses.dataclass
class EventData:
    """Detected events.

    Attributes
    ----------
    signals : numpy.ndarray, shape (n, n_y, n_x), float32
        Fired SiPM cells per pixel.
    position_mm : numpy.ndarray, shape (n, 3)
        True first-interaction point ``(x, y, doi)`` (mm).
    centroid_mm : numpy.ndarray, shape (n, 3)
        Energy-weighted centroid of all interactions (mm).
    edep_kev : numpy.ndarray, shape (n,)
        Deposited energy (keV).
    n_interactions : numpy.ndarray, shape (n,)
    beam_mm : numpy.ndarray, shape (n, 2)
        Beam entry ``(x, y)`` (mm); NaN along the free coordinate of a fan beam.
    label_mask : numpy.ndarray, shape (n, 3), bool
        Which of ``(x, y, doi)`` an experiment would know (fan beams: one coordinate).
    """

    signals: np.ndarray
    position_mm: np.ndarray
    centroid_mm: np.ndarray
    edep_kev: np.ndarray
    n_interactions: np.ndarray
    beam_mm: np.ndarray
    label_mask: np.ndarray

    def __len__(self) -> int:
        return self.signals.shape[0]

    def subset(self, index) -> EventData:
        """Events selected by a boolean mask or index array."""
        return EventData(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    @property
    def total_signal(self) -> np.ndarray:
        """Sum of the pixel signals per event, shape (n,)."""
        return self.signals.reshape(len(self), -1).sum(axis=1)


def pencil_grid(config: DetectorConfig, step_mm: float, events_per_beam: int, *, margin_mm: float = 0.0,
                offset_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Entry points of a square grid of normally incident pencil beams, centred on the face.

    ``margin_mm`` keeps the beams that far from the lateral faces; ``offset_mm`` shifts the grid.

    Returns
    -------
    entry_mm : numpy.ndarray, shape (beams * events_per_beam, 3)
    label_mask : numpy.ndarray, same rows, 3 columns, all True (simulation knows the depth too)
    """
    if step_mm <= 0 or events_per_beam < 1:
        raise InputError("step_mm and events_per_beam must be positive")
    axes = []
    for size in config.size_mm:
        n = int(np.floor((size - 2.0 * margin_mm - 2.0 * abs(offset_mm)) / step_mm)) + 1
        if n < 1:
            raise InputError("the beam grid does not fit on the crystal face")
        axes.append((np.arange(n) - (n - 1) / 2.0) * step_mm + offset_mm)
    gx, gy = np.meshgrid(axes[0], axes[1], indexing="xy")
    beams = np.stack([gx.ravel(), gy.ravel()], axis=1)
    xy = np.repeat(beams, events_per_beam, axis=0)
    entry = np.concatenate([xy, np.zeros((xy.shape[0], 1))], axis=1)
    return entry, np.ones_like(entry, dtype=bool)


def fan_beams(config: DetectorConfig, step_mm: float, events_per_fan: int,
              generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Entry points of fan beams: lines at fixed x (label x only) and lines at fixed y (label y only).

    Returns
    -------
    entry_mm : numpy.ndarray, shape (n, 3)
        Along each fan the free coordinate is uniform over the face.
    label_mask : numpy.ndarray, shape (n, 3), bool
        True for the coordinate fixed by the fan.
    """
    if step_mm <= 0 or events_per_fan < 1:
        raise InputError("step_mm and events_per_fan must be positive")
    entries, masks = [], []
    for axis in (0, 1):
        size, other = config.size_mm[axis], config.size_mm[1 - axis]
        for c in np.arange(-size / 2 + step_mm / 2, size / 2, step_mm):
            e = np.zeros((events_per_fan, 3))
            e[:, axis] = c
            e[:, 1 - axis] = generator.uniform(-other / 2, other / 2, events_per_fan)
            m = np.zeros((events_per_fan, 3), dtype=bool)
            m[:, axis] = True
            entries.append(e)
            masks.append(m)
    return np.concatenate(entries), np.concatenate(masks)


def flood(config: DetectorConfig, n: int, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Entry points of a uniform flood irradiation at normal incidence (all labels known)."""
    sx, sy = config.size_mm
    entry = np.stack([generator.uniform(-sx / 2, sx / 2, n), generator.uniform(-sy / 2, sy / 2, n),
                      np.zeros(n)], axis=1)
    return entry, np.ones_like(entry, dtype=bool)


def simulate_events(config: DetectorConfig, entry_mm: np.ndarray, label_mask: np.ndarray,
                    generator: np.random.Generator, *, device: torch.device | str = "cpu") -> EventData:
    """Simulate the detector response to gammas entering at ``entry_mm`` along +doi.

    Parameters
    ----------
    config : DetectorConfig
    entry_mm : numpy.ndarray, shape (n, 3)
        Entry points ``(x, y, 0)`` (mm).
    label_mask : numpy.ndarray, shape (n, 3), bool
    generator : numpy.random.Generator
    device : torch.device or str
        Where the light transport runs.

    Returns
    -------
    EventData
        Only gammas that deposited energy (the others do not trigger).
    """
    crystal = config.crystal_props
    inter = track_gammas(crystal, config.size_mm, config.thickness_mm, entry_mm, np.array([0.0, 0.0, 1.0]),
                         generator, energy_kev=config.energy_kev, max_interactions=config.max_interactions)
    hit = inter.n_points > 0
    pts = inter.points_mm[hit]
    edep = inter.edep_kev[hit]
    n, k = edep.shape
    used = edep > 0
    # scintillation photons per interaction: Fano statistics times a per-event intrinsic factor
    gain = 1.0 + crystal.intrinsic_resolution / 2.3548 * generator.standard_normal((n, 1))
    mean_ph = crystal.light_yield_ph_per_kev * edep * np.clip(gain, 0.0, None)
    photons = np.clip(mean_ph + np.sqrt(config.fano * mean_ph) * generator.standard_normal((n, k)), 0.0, None)
    flat_pts = torch.as_tensor(pts[used], dtype=torch.float32, device=device)
    frac = light_collection(flat_pts, size_mm=config.size_mm, thickness_mm=config.thickness_mm,
                            n_crystal=crystal.refractive_index, sipm=config.sipm, optics=config.optics)
    frac = frac.cpu().numpy().astype(np.float64)
    expected = np.zeros((n, config.sipm.n_y, config.sipm.n_x))
    rows = np.nonzero(used)[0]
    np.add.at(expected, rows, photons[used][:, None, None] * frac)
    signals = sipm_response(expected, config.sipm, generator)
    beam = entry_mm[hit, :2].copy()
    mask = np.asarray(label_mask, dtype=bool)[hit]
    beam[~mask[:, :2]] = np.nan
    return EventData(signals, inter.points_mm[hit, 0].copy(), inter.centroid()[hit], edep.sum(axis=1),
                     inter.n_points[hit], beam, mask)


def save_events(path: str | os.PathLike, events: EventData, record: dict) -> None:
    """Write events to ``path`` (.npz) and their record to ``path`` with suffix ``.json``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{f.name: getattr(events, f.name) for f in dataclasses.fields(events)})
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2, default=json_default))


def load_events(path: str | os.PathLike) -> tuple[EventData, dict]:
    """Read events written by :func:`save_events`; returns ``(events, record)``."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError("event file not found", path=path)
    try:
        with np.load(path) as z:
            events = EventData(**{f.name: z[f.name] for f in dataclasses.fields(EventData)})
    except (KeyError, ValueError, OSError) as exc:
        raise FormatError(f"not a petspect event file ({exc})", path=path) from exc
    rec_path = path.with_suffix(".json")
    record = json.loads(rec_path.read_text()) if rec_path.exists() else {}
    return events, record
