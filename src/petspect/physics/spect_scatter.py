"""SPECT energy windows and scatter: single-scatter spectrum, window fractions, a scatter model, TEW.

Energy model
------------
A photon line of energy ``E`` detected with Gaussian energy resolution ``sigma(E')`` contributes

* primaries: a Gaussian at ``E``; the fraction in window ``[lo, hi]`` is
  ``Phi((hi - E)/sigma) - Phi((lo - E)/sigma)``;
* scatter: the first-order Compton spectrum. With ``r = E'/E`` and ``eps = E / 511 keV`` the
  Klein-Nishina cross-section per unit scattered energy is proportional to
  ``r + 1/r - sin^2(theta)``, ``cos(theta) = 1 - (1/r - 1)/eps``, on ``E/(1 + 2 eps) <= E' <= E``
  (Klein & Nishina 1929; Attix, *Introduction to Radiological Physics*, ch. 7). Each scattered
  energy is smeared by the resolution and integrated over the window. Multiple scatter (which adds
  counts at lower energies) is not modelled.

Spatial scatter model (for simulation)
--------------------------------------
Scatter in a 20 % window around a line is the broad-beam build-up: projecting with the broad-beam
attenuation ``mu_bb = beta * mu`` counts primaries plus the scatter that a 20 % window accepts
(Chang 1978 and Jaszczak et al 1981 use mu_bb = 0.11-0.12/cm for Tc-99m in water against the
narrow-beam 0.154/cm; petspect takes 0.11/cm, ``beta = 0.72``). The scatter projection is therefore

    s_20(v) = K * [ P_{beta mu}(x) - P_mu(x) ]_+

with ``K`` a broad Gaussian (``kernel_fwhm_mm``) in the detector plane for the scatter's spread.
It is zero without a scattering medium, grows with depth and decays deep inside, as scatter does.
Other windows get ``s_w = s_20 * F_s(w) / F_s(20 %)`` from the Compton spectrum. The scatter-to-
primary ratio this gives in the photopeak (~0.25 over an 18 cm water cylinder, rising with depth,
for Tc-99m) is in the range of Monte Carlo values for such phantoms (Ljungberg & Strand, Comput
Methods Programs Biomed 29 (1989) 257).

Triple energy window
--------------------
``S = (C_low / W_low + C_up / W_up) * W_peak / 2`` (Ogawa et al, IEEE TMI 10 (1991) 408): the
scatter under the photopeak estimated by a trapezoid from the count densities in two narrow
windows beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from petspect.errors import InputError
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.operators.pixel_response import pixel_response_matrices
from petspect.units import FWHM_PER_SIGMA

ELECTRON_REST_KEV = 510.99895


def compton_energy_density(energy_kev: float, scattered_kev: torch.Tensor) -> torch.Tensor:
    """Klein-Nishina density per keV of single-scattered photon energies (unnormalised), 0 outside the range.

    Parameters
    ----------
    energy_kev : float
        Incident photon energy.
    scattered_kev : torch.Tensor
        Scattered energies at which to evaluate.
    """
    eps = energy_kev / ELECTRON_REST_KEV
    r = scattered_kev / energy_kev
    inside = (r >= 1.0 / (1.0 + 2.0 * eps)) & (r <= 1.0)
    r_safe = torch.where(inside, r, torch.ones_like(r))
    cos_t = 1.0 - (1.0 / r_safe - 1.0) / eps
    dens = r_safe + 1.0 / r_safe - (1.0 - cos_t ** 2)
    return torch.where(inside, dens, torch.zeros_like(dens))


def _in_window(energy_kev: torch.Tensor, sigma_kev: torch.Tensor, window: EnergyWindow) -> torch.Tensor:
    return (torch.special.ndtr((window.upper_kev - energy_kev) / sigma_kev)
            - torch.special.ndtr((window.lower_kev - energy_kev) / sigma_kev))


def window_fractions(line_kev: float, windows: Sequence[EnergyWindow], energy_fwhm_kev: Callable[[float], float],
                     *, n_steps: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Fractions of a line's primary and single-scatter counts that fall in each window.

    Parameters
    ----------
    line_kev : float
        Photon energy.
    windows : sequence of EnergyWindow
    energy_fwhm_kev : callable
        Energy resolution FWHM in keV as a function of energy (e.g. ``SpectSystem.energy_fwhm_kev``).
    n_steps : int
        Integration steps over the Compton spectrum.

    Returns
    -------
    primary, scatter : torch.Tensor, shape (n_windows,), float64
        Fraction of the detected primaries / scattered photons (all energies) in each window.
    """
    e_min = line_kev / (1.0 + 2.0 * line_kev / ELECTRON_REST_KEV)
    step = (line_kev - e_min) / n_steps
    e = e_min + step * (torch.arange(n_steps, dtype=torch.float64) + 0.5)
    dens = compton_energy_density(line_kev, e)
    dens = dens / dens.sum()
    sig = torch.tensor([energy_fwhm_kev(v) for v in e.tolist()], dtype=torch.float64) / FWHM_PER_SIGMA
    sig_line = torch.tensor(energy_fwhm_kev(line_kev) / FWHM_PER_SIGMA, dtype=torch.float64)
    line = torch.tensor(line_kev, dtype=torch.float64)
    primary = torch.stack([_in_window(line, sig_line, w) for w in windows])
    scatter = torch.stack([(dens * _in_window(e, sig, w)).sum() for w in windows])
    return primary, scatter


def tew_scatter(c_low: torch.Tensor, c_up: torch.Tensor, w_low_kev: float, w_up_kev: float,
                w_peak_kev: float) -> torch.Tensor:
    """Triple-energy-window scatter estimate ``(C_low / W_low + C_up / W_up) * W_peak / 2``.

    Parameters
    ----------
    c_low, c_up : torch.Tensor
        Counts in the lower and upper scatter windows (same shape; pass zeros without an upper window).
    w_low_kev, w_up_kev, w_peak_kev : float
        Window widths in keV.

    Returns
    -------
    torch.Tensor
        Estimated scatter counts in the photopeak window, shape of ``c_low``.
    """
    if min(w_low_kev, w_up_kev, w_peak_kev) <= 0:
        raise InputError(f"TEW window widths must be positive, got {w_low_kev}, {w_up_kev}, {w_peak_kev} keV")
    return (c_low / w_low_kev + c_up / w_up_kev) * (0.5 * w_peak_kev)


def tew_from_projections(projections: SpectProjections, *, peak: str | None = None, low: str = "scatter_low",
                         up: str | None = "scatter_up", smooth_fwhm_mm: float | None = None) -> torch.Tensor:
    """TEW scatter estimate for the photopeak of a :class:`SpectProjections`, shape (views, rows, cols).

    ``peak`` defaults to the projections' photopeak window; ``up=None`` uses the lower window alone
    (the upper density taken as 0). ``smooth_fwhm_mm`` optionally smooths the (noisy) estimate with a
    Gaussian in the detector plane, as is usual before using it as an additive term.
    """
    wins = {w.name: w for w in projections.energy_windows}
    peak_win = projections.energy_windows[projections.photopeak_window] if peak is None else wins.get(peak)
    for name, w in (("peak", peak_win), ("low", wins.get(low))):
        if w is None:
            raise InputError(f"TEW: no {name} window; have {sorted(wins)}")
    c_low = projections.window(low).to(torch.float64)
    if up is None:
        c_up, w_up = torch.zeros_like(c_low), 1.0
    else:
        c_up, w_up = projections.window(up).to(torch.float64), wins[up].width_kev
    est = tew_scatter(c_low, c_up, wins[low].width_kev, w_up, peak_win.width_kev)
    if smooth_fwhm_mm:
        est = detector_blur(est, projections.pixel_spacing_mm, smooth_fwhm_mm)
    return est


def detector_blur(projections: torch.Tensor, pixel_mm: tuple[float, float], fwhm_mm: float) -> torch.Tensor:
    """Gaussian blur of FWHM ``fwhm_mm`` over rows and columns of ``(views, rows, cols)`` projections.

    Pixel-integrated Gaussian matrices (counts leaving the detector edges are lost, as they are
    physically).
    """
    _, rows, cols = projections.shape
    sigma = torch.tensor([fwhm_mm / FWHM_PER_SIGMA], dtype=torch.float64)
    mats = []
    for n, w in ((rows, pixel_mm[0]), (cols, pixel_mm[1])):
        c = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * w
        mats.append(pixel_response_matrices(c, w, c, w, sigma)[0].to(projections))
    return mats[0] @ projections @ mats[1].t()


@dataclass(frozen=True)
class ScatterModel:
    """Parameters of the simulation's scatter model (module docstring).

    Parameters
    ----------
    broad_beam_ratio : float
        ``beta = mu_bb / mu`` for a 20 % window around the line (0.11/0.154 = 0.72 for Tc-99m).
    kernel_fwhm_mm : float
        FWHM of the Gaussian spread of scatter in the detector plane.
    """

    broad_beam_ratio: float = 0.72
    kernel_fwhm_mm: float = 40.0

    def __post_init__(self) -> None:
        if not 0.0 < self.broad_beam_ratio < 1.0:
            raise InputError(f"broad_beam_ratio must be in (0, 1), got {self.broad_beam_ratio}")
        if self.kernel_fwhm_mm <= 0:
            raise InputError(f"kernel_fwhm_mm must be positive, got {self.kernel_fwhm_mm}")
