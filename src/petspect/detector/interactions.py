"""Gamma-ray transport in a rectangular crystal: photoelectric absorption and Compton scattering.

Each photon is followed from its entry point: free path ``s ~ Exp(mu(E))``, interaction type by
the photoelectric fraction ``mu_photo / mu``, Compton angles from the Klein-Nishina cross-section
(Geant4's composition-rejection method, G4KleinNishinaCompton), until photo-absorption, escape or
``max_interactions``. Electrons deposit their energy locally (range < 0.5 mm in LYSO at 511 keV);
fluorescence X-rays are absorbed locally (no escape peaks).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from petspect.detector.crystals import Crystal
from petspect.errors import InputError

ELECTRON_MASS_KEV = 510.99895


@dataclasses.dataclass
class Interactions:
    """Interaction points of ``n`` gamma histories (padded to ``k`` points).

    Attributes
    ----------
    points_mm : numpy.ndarray, shape (n, k, 3)
        ``(x, y, doi)`` of each interaction (mm); unused slots are NaN.
    edep_kev : numpy.ndarray, shape (n, k)
        Energy deposited at each point (keV); 0 in unused slots.
    kind : numpy.ndarray, shape (n, k), int8
        0 unused, 1 photoelectric, 2 Compton.
    """

    points_mm: np.ndarray
    edep_kev: np.ndarray
    kind: np.ndarray

    @property
    def total_kev(self) -> np.ndarray:
        """Total deposited energy per history (keV), shape (n,)."""
        return self.edep_kev.sum(axis=1)

    @property
    def n_points(self) -> np.ndarray:
        """Number of interactions per history, shape (n,)."""
        return (self.kind > 0).sum(axis=1)

    def first_point(self) -> np.ndarray:
        """First interaction point (mm), shape (n, 3); NaN when the photon crossed without interacting."""
        return self.points_mm[:, 0, :]

    def centroid(self) -> np.ndarray:
        """Energy-weighted centroid of the interactions (mm), shape (n, 3); NaN without deposit."""
        w = self.edep_kev[..., None]
        pts = np.nan_to_num(self.points_mm)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w * pts).sum(axis=1) / w.sum(axis=1)


def sample_klein_nishina(energy_kev: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Sample ``epsilon = E'/E`` of Compton-scattered photons from the Klein-Nishina cross-section.

    Parameters
    ----------
    energy_kev : numpy.ndarray, shape (n,)
        Incident photon energies (keV).
    generator : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (n,)
        Energy ratio ``epsilon`` in ``[1 / (1 + 2k), 1]`` with ``k = E / m_e c^2``; the scattering
        angle follows from ``cos(theta) = 1 - (1 - epsilon) / (k epsilon)``.
    """
    k = np.asarray(energy_kev, dtype=np.float64) / ELECTRON_MASS_KEV
    eps0 = 1.0 / (1.0 + 2.0 * k)
    a1 = -np.log(eps0)
    a2 = 0.5 * (1.0 - eps0**2)
    out = np.empty_like(k)
    todo = np.arange(k.size)
    while todo.size:
        r1, r2, r3 = generator.random((3, todo.size))
        kk, e0, b1, b2 = k[todo], eps0[todo], a1[todo], a2[todo]
        first = b1 / (b1 + b2) > r1
        eps = np.where(first, np.exp(-b1 * r2), np.sqrt(e0**2 + (1.0 - e0**2) * r2))
        onecost = (1.0 - eps) / (eps * kk)
        sint2 = onecost * (2.0 - onecost)
        accept = 1.0 - eps * sint2 / (1.0 + eps**2) >= r3
        out[todo[accept]] = eps[accept]
        todo = todo[~accept]
    return out


def _rotate(direction: np.ndarray, cos_t: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Rotate unit vectors by polar angle ``arccos(cos_t)`` and azimuth ``phi`` about themselves."""
    u = direction
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, 1.0))
    # an orthonormal pair perpendicular to u
    helper = np.where(np.abs(u[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(u, e1)
    new = (cos_t[:, None] * u + (sin_t * np.cos(phi))[:, None] * e1 + (sin_t * np.sin(phi))[:, None] * e2)
    return new / np.linalg.norm(new, axis=1, keepdims=True)


def _distance_to_exit(pos: np.ndarray, direction: np.ndarray, half: np.ndarray, thickness_mm: float) -> np.ndarray:
    lo = np.array([-half[0], -half[1], 0.0])
    hi = np.array([half[0], half[1], thickness_mm])
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = np.where(direction > 0, (hi - pos) / direction, np.inf)
        t_lo = np.where(direction < 0, (lo - pos) / direction, np.inf)
    return np.minimum(t_hi, t_lo).min(axis=1)


def track_gammas(crystal: Crystal, size_mm: tuple[float, float], thickness_mm: float, entry_mm: np.ndarray,
                 direction: np.ndarray, generator: np.random.Generator, *, energy_kev: float = 511.0,
                 max_interactions: int = 6) -> Interactions:
    """Transport gamma photons through a crystal block.

    Parameters
    ----------
    crystal : Crystal
        Scintillator.
    size_mm : (float, float)
        Face size ``(size_x, size_y)`` (mm).
    thickness_mm : float
        Block thickness (mm).
    entry_mm : numpy.ndarray, shape (n, 3)
        Entry points ``(x, y, doi)`` (mm), normally on the entrance face (``doi = 0``).
    direction : numpy.ndarray, shape (n, 3) or (3,)
        Unit propagation directions (``(0, 0, 1)`` is normal incidence into the block).
    generator : numpy.random.Generator
    energy_kev : float
        Incident energy (keV).
    max_interactions : int
        Histories are stopped after this many interactions (the rest of the energy escapes).

    Returns
    -------
    Interactions
    """
    entry = np.atleast_2d(np.asarray(entry_mm, dtype=np.float64))
    n = entry.shape[0]
    d = np.broadcast_to(np.asarray(direction, dtype=np.float64), (n, 3)).copy()
    if entry.shape != (n, 3) or not np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6):
        raise InputError("entry_mm must be (n, 3) and directions unit vectors")
    if thickness_mm <= 0 or min(size_mm) <= 0 or energy_kev <= 0 or max_interactions < 1:
        raise InputError("size, thickness, energy and max_interactions must be positive")
    att = crystal.attenuation()
    half = np.asarray(size_mm, dtype=np.float64) / 2.0
    points = np.full((n, max_interactions, 3), np.nan)
    edep = np.zeros((n, max_interactions))
    kind = np.zeros((n, max_interactions), dtype=np.int8)
    pos, energy = entry.copy(), np.full(n, float(energy_kev))
    alive = np.arange(n)
    for step in range(max_interactions):
        if alive.size == 0:
            break
        e = energy[alive]
        path = generator.exponential(1.0, alive.size) / att.transport(e)
        inside = path < _distance_to_exit(pos[alive], d[alive], half, thickness_mm)
        alive = alive[inside]
        path, e = path[inside], e[inside]
        pos[alive] += path[:, None] * d[alive]
        points[alive, step] = pos[alive]
        photo = generator.random(alive.size) < att.photo_fraction(e)
        eps = np.ones_like(e)
        if np.any(~photo):
            eps[~photo] = sample_klein_nishina(e[~photo], generator)
        deposit = np.where(photo, e, e * (1.0 - eps))
        edep[alive, step] = deposit
        kind[alive, step] = np.where(photo, 1, 2)
        scat = alive[~photo]
        if scat.size:
            k = energy[scat] / ELECTRON_MASS_KEV
            cos_t = np.clip(1.0 - (1.0 - eps[~photo]) / (k * eps[~photo]), -1.0, 1.0)
            d[scat] = _rotate(d[scat], cos_t, generator.uniform(0.0, 2.0 * np.pi, scat.size))
            energy[scat] = energy[scat] * eps[~photo]
        alive = scat
    return Interactions(points, edep, kind)
