"""Digitised SiPM waveforms of coincident 511 keV events for time-of-flight estimation.

Two identical detectors (a ``width x width x length`` crystal on one SiPM) face a point source
on the line between them. For each coincidence the source sits at ``s`` (mm, towards detector b),
so the true time difference is ``dt = t_a - t_b = 2 s / c``. In each detector:

- the gamma interacts at depth ``z ~ Exp(mu)`` (photopeak events: 511 keV deposited) and arrives
  ``z / c`` after entering;
- ``N ~ Poisson(LY * E * light_collection * PDE * (1 + intrinsic spread))`` photoelectrons;
- each photon is emitted after ``Exp(rise) + Exp(decay)`` (the bi-exponential scintillation
  pulse); optionally (``cherenkov_yield > 0``, e.g. BGO) ``Poisson(cherenkov_yield * light_collection *
  cherenkov_pde)`` further photoelectrons come from prompt Cherenkov photons emitted at the interaction
  time (no rise or decay); every photon travels to the SiPM at the back directly or after a reflection
  on the front face,
  ``path = (L - z) / cos(theta)`` or ``(L + z) / cos(theta)`` with ``cos(theta)`` uniform within the
  escape cone, at speed ``c / n``, and is registered with a Gaussian single-photon time
  resolution (SPTR);
- the analog pulse is the sum of single-photoelectron responses (bi-exponential, gain spread; optionally
  prompt optical crosstalk and dark counts of the SiPM), plus white electronic noise, sampled every
  ``sample_ps`` and digitised by an ADC.

Waveforms are simulated ``2 * max_shift`` samples longer than the analysed window so that they can
be digitally shifted by whole samples (an exact change of the label, see :func:`crop_windows`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from petspect.detector.crystals import get_crystal
from petspect.errors import ConfigError, InputError
from petspect.units import C_MM_PER_PS


@dataclasses.dataclass(frozen=True)
class TimingConfig:
    """Coincidence timing set-up.

    Parameters
    ----------
    crystal : str
        Crystal preset.
    length_mm : float
        Crystal length along the gamma direction (mm).
    light_collection : float
        Fraction of scintillation photons reaching the SiPM (wrapped pixel crystal).
    pde : float
        SiPM photon detection efficiency.
    sptr_fwhm_ps : float
        Single-photon time resolution of the SiPM and electronics (FWHM, ps).
    top_reflectivity : float
        Fraction of the backward-emitted photons returned by the front-face reflector.
    spr_rise_ns, spr_decay_ns : float
        Single-photoelectron response time constants (ns).
    gain_spread : float
        Relative rms of the single-photoelectron amplitude.
    noise_spe : float
        Electronic noise rms in single-photoelectron amplitudes.
    sample_ps : float
        Sampling period (ps).
    n_samples : int
        Samples in the analysed window.
    max_shift : int
        Extra samples simulated on each side for digital shifting.
    onset_ns : float
        Mean arrival time of the gamma in the analysed window (ns).
    adc_bits : int
        ADC resolution; full scale is ``adc_full_scale_spe``.
    adc_full_scale_spe : float
        ADC range in single-photoelectron amplitudes.
    source_range_mm : float
        Source positions are uniform in ``[-range, range]`` (mm).
    cherenkov_yield : float
        Cherenkov photons produced per 511 keV photopeak event (0: none, the default). They are emitted at
        the interaction time and share the light transport of the scintillation photons.
    cherenkov_pde : float
        Photon detection efficiency averaged over the Cherenkov spectrum that reaches the SiPM.
    crosstalk : float
        Probability that a fired SiPM cell fires a neighbour (prompt optical crosstalk, a geometric chain:
        ``crosstalk / (1 - crosstalk)`` extra avalanches per photoelectron on average); 0: none (default).
    dark_rate_hz_per_mm2 : float
        SiPM dark-count rate (single avalanches at random times in the record, crosstalk included); 0: none.
    sipm_area_mm2 : float
        Active area of the SiPM behind each crystal (mm^2), for the dark counts.
    trigger_jitter_ps : float or None
        Width of the uniform spread of the pair's mean arrival time in the window (ps); ``None``: one
        sample (only the phase to the sampling clock is random). The window then locates the
        annihilation itself to within this width, information a self-triggered digitiser does not
        have; a width of a few ns keeps an estimator from learning it.
    source_step_mm : float or None
        ``None`` (default): source positions continuous within the range. A step (mm): positions rounded to
        a grid of that step, the stepped point source of a bench experiment (Berg and Cherry, PMB 63 (2018)
        02LT01: 5 mm steps over 15 cm), so that training and test sources share a few discrete positions.
    """

    crystal: str = "LYSO"
    length_mm: float = 20.0
    light_collection: float = 0.45
    pde: float = 0.40
    sptr_fwhm_ps: float = 150.0
    top_reflectivity: float = 0.9
    spr_rise_ns: float = 0.5
    spr_decay_ns: float = 10.0
    gain_spread: float = 0.10
    noise_spe: float = 1.0
    sample_ps: float = 200.0
    n_samples: int = 64
    max_shift: int = 8
    onset_ns: float = 3.0
    adc_bits: int = 12
    adc_full_scale_spe: float = 1500.0
    source_range_mm: float = 30.0
    trigger_jitter_ps: float | None = None
    cherenkov_yield: float = 0.0
    cherenkov_pde: float = 0.35
    crosstalk: float = 0.0
    dark_rate_hz_per_mm2: float = 0.0
    sipm_area_mm2: float = 9.0
    source_step_mm: float | None = None

    @property
    def cherenkov_mean_pe(self) -> float:
        """Mean number of detected Cherenkov photoelectrons per event."""
        return self.cherenkov_yield * self.light_collection * self.cherenkov_pde

    def __post_init__(self) -> None:
        get_crystal(self.crystal)
        positive = ("length_mm", "light_collection", "pde", "sptr_fwhm_ps", "spr_rise_ns", "spr_decay_ns",
                    "sample_ps", "adc_full_scale_spe")
        if any(getattr(self, f) <= 0 for f in positive):
            raise ConfigError(f"timing config: {', '.join(positive)} must be positive")
        if self.n_samples < 8 or self.n_samples % 4 or self.max_shift < 0 or self.adc_bits < 4:
            raise ConfigError("n_samples >= 8 (multiple of 4), max_shift >= 0, adc_bits >= 4 are required")
        if self.trigger_jitter_ps is not None and self.trigger_jitter_ps < 0:
            raise ConfigError("trigger_jitter_ps must be >= 0")
        if self.cherenkov_yield < 0 or not 0 <= self.cherenkov_pde <= 1:
            raise ConfigError("cherenkov_yield must be >= 0 and cherenkov_pde within [0, 1]")
        if not 0 <= self.crosstalk < 1 or self.dark_rate_hz_per_mm2 < 0 or self.sipm_area_mm2 <= 0:
            raise ConfigError("crosstalk must lie in [0, 1), dark_rate_hz_per_mm2 >= 0 and sipm_area_mm2 > 0")
        if self.source_step_mm is not None and not 0 < self.source_step_mm <= 2 * self.source_range_mm:
            raise ConfigError("source_step_mm must be positive and at most the width of the source range")
        if self.spr_rise_ns >= self.spr_decay_ns:
            raise ConfigError("spr_rise_ns must be shorter than spr_decay_ns")

    def to_dict(self) -> dict:
        """JSON-serialisable record (crystal properties included)."""
        return {**dataclasses.asdict(self), "crystal_properties": get_crystal(self.crystal).to_dict()}


@dataclasses.dataclass
class Coincidences:
    """Simulated coincidences.

    Attributes
    ----------
    waveforms : numpy.ndarray, shape (n, 2, n_samples + 2 max_shift), float32
        ADC values in single-photoelectron amplitudes (baseline 0) of detectors a and b.
    dt_ps : numpy.ndarray, shape (n,)
        True ``t_a - t_b`` (ps) from the source position, for the central (unshifted) window.
    source_mm : numpy.ndarray, shape (n,)
    doi_mm : numpy.ndarray, shape (n, 2)
        Interaction depths (mm).
    n_pe : numpy.ndarray, shape (n, 2)
        Scintillation photoelectrons.
    n_cherenkov : numpy.ndarray, shape (n, 2), or None
        Cherenkov photoelectrons (``None`` when the set-up has no Cherenkov emission).
    """

    waveforms: np.ndarray
    dt_ps: np.ndarray
    source_mm: np.ndarray
    doi_mm: np.ndarray
    n_pe: np.ndarray
    n_cherenkov: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.dt_ps)

    def subset(self, index) -> Coincidences:
        """Coincidences selected by a mask or index array."""
        return Coincidences(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                               for f in dataclasses.fields(self)})


def single_photon_response(config: TimingConfig, dt_ps: float) -> np.ndarray:
    """Single-photoelectron pulse on a grid of step ``dt_ps`` (peak 1), shape (m,)."""
    t = np.arange(0.0, 6.0 * config.spr_decay_ns * 1e3, dt_ps) / 1e3
    pulse = np.exp(-t / config.spr_decay_ns) - np.exp(-t / config.spr_rise_ns)
    return pulse / pulse.max()


def escape_cone_cos(config: TimingConfig) -> float:
    """Cosine of the half-angle of the escape cone from the crystal into the n = 1.5 optical coupling."""
    return math.cos(math.asin(min(1.0, 1.5 / get_crystal(config.crystal).refractive_index)))


def backward_fraction(config: TimingConfig) -> float:
    """Fraction of the registered photons that left backwards and came back from the front-face reflector."""
    return 0.5 * config.top_reflectivity / (0.5 + 0.5 * config.top_reflectivity)


def depth_quantile_mm(config: TimingConfig, u: np.ndarray) -> np.ndarray:
    """Photopeak interaction depth (mm from the front face) at quantiles ``u`` in [0, 1) of its distribution.

    The depth is exponential with the crystal's 511 keV attenuation, truncated to the crystal length.
    """
    mu = float(get_crystal(config.crystal).attenuation().transport(511.0))
    return -np.log1p(-(np.asarray(u) * (1.0 - math.exp(-mu * config.length_mm)))) / mu


def photon_times_ps(config: TimingConfig, n_pe: np.ndarray, doi_mm: np.ndarray,
                    generator: np.random.Generator, n_prompt: np.ndarray | None = None) -> list[np.ndarray]:
    """Registration times (ps, relative to the gamma entering the crystal) of each event's photons.

    Parameters
    ----------
    n_pe : numpy.ndarray, shape (m,)
        Photoelectrons per event.
    doi_mm : numpy.ndarray, shape (m,)
        Interaction depth from the front face (mm).
    n_prompt : numpy.ndarray of int, shape (m,), optional
        The last ``n_prompt`` of each event's ``n_pe`` photons are prompt (Cherenkov): emitted at the
        interaction time instead of after the scintillation delay.

    Returns
    -------
    list of numpy.ndarray
        One array of times per event.
    """
    xtal = get_crystal(config.crystal)
    total = int(n_pe.sum())
    z = np.repeat(doi_mm, n_pe)
    emit = generator.exponential(xtal.rise_ns, total) + generator.exponential(xtal.decay_ns, total)
    if n_prompt is not None:  # zero emission delay for the last n_prompt photons of each event
        rank_from_end = np.repeat(np.cumsum(n_pe), n_pe) - np.arange(total)
        emit = np.where(rank_from_end <= np.repeat(n_prompt, n_pe), 0.0, emit)
    cos_t = generator.uniform(escape_cone_cos(config), 1.0, total)
    backward = generator.random(total) < backward_fraction(config)
    path = np.where(backward, config.length_mm + z, config.length_mm - z) / cos_t
    t = (z / C_MM_PER_PS + emit * 1e3 + path * xtal.refractive_index / C_MM_PER_PS
         + generator.normal(0.0, config.sptr_fwhm_ps / 2.3548, total))
    return np.split(t, np.cumsum(n_pe)[:-1])


def mean_photoelectrons(config: TimingConfig) -> float:
    """Mean number of scintillation photoelectrons of a 511 keV photopeak event."""
    xtal = get_crystal(config.crystal)
    return xtal.light_yield_ph_per_kev * 511.0 * config.light_collection * config.pde


def draw_interactions(config: TimingConfig, n: int, generator: np.random.Generator):
    """Depths and photoelectron numbers of ``n`` coincidences (two detectors each).

    Returns
    -------
    doi_mm : numpy.ndarray, shape (n, 2)
        Photopeak interaction depths from the front face (mm), exponential within the crystal length.
    n_pe : numpy.ndarray of int, shape (n, 2)
        Scintillation photoelectrons: Poisson around the mean times ``1 + intrinsic spread``.
    n_cherenkov : numpy.ndarray of int, shape (n, 2), or None
        Prompt Cherenkov photoelectrons (``None`` without Cherenkov emission).
    """
    xtal = get_crystal(config.crystal)
    doi = np.zeros((n, 2))
    for d in range(2):  # photopeak events within the crystal length
        doi[:, d] = depth_quantile_mm(config, generator.random(n))
    spread = np.clip(1.0 + xtal.intrinsic_resolution / 2.3548 * generator.standard_normal((n, 2)), 0.0, None)
    n_pe = generator.poisson(mean_photoelectrons(config) * spread)
    # prompt Cherenkov photoelectrons (drawn only when enabled, so that other set-ups keep their random stream)
    n_ch = generator.poisson(config.cherenkov_mean_pe, (n, 2)) if config.cherenkov_yield > 0 else None
    return doi, n_pe, n_ch


def simulate_coincidences(config: TimingConfig, n: int, generator: np.random.Generator, *,
                          fine_ps: float = 10.0) -> Coincidences:
    """Simulate ``n`` photopeak coincidences and their digitised waveforms.

    Parameters
    ----------
    config : TimingConfig
    n : int
        Number of coincidences.
    generator : numpy.random.Generator
    fine_ps : float
        Step of the fine time grid on which photons are histogrammed before convolution with the
        single-photon response (ps); ``sample_ps`` must be a multiple of it.

    Returns
    -------
    Coincidences
    """
    if n < 1:
        raise InputError("n must be >= 1")
    source = generator.uniform(-config.source_range_mm, config.source_range_mm, n)
    if config.source_step_mm is not None:  # a stepped point source (same random stream as the continuous one)
        source = np.round(source / config.source_step_mm) * config.source_step_mm
    dt = 2.0 * source / C_MM_PER_PS
    # a common (random) trigger phase; detector b is closer when the source moves towards it (s > 0)
    jitter = config.sample_ps if config.trigger_jitter_ps is None else config.trigger_jitter_ps
    t0 = config.onset_ns * 1e3 + config.max_shift * config.sample_ps + generator.uniform(0.0, jitter, n)
    arrival = np.stack([t0 + dt / 2.0, t0 - dt / 2.0], axis=1)
    doi, n_pe, n_ch = draw_interactions(config, n, generator)
    n_tot = n_pe if n_ch is None else n_pe + n_ch
    waves = render_waveforms(config, arrival.ravel(), doi.ravel(), n_tot.ravel(), generator,
                             n_prompt=None if n_ch is None else n_ch.ravel(), fine_ps=fine_ps)
    waves = waves.reshape(n, 2, -1)
    return Coincidences(waves, dt, source, doi, n_pe, n_ch)


def render_waveforms(config: TimingConfig, arrival_ps: np.ndarray, doi_mm: np.ndarray, n_pe: np.ndarray,
                     generator: np.random.Generator, *, n_prompt: np.ndarray | None = None,
                     fine_ps: float = 10.0) -> np.ndarray:
    """Digitised waveforms of single detectors, given when the gamma enters, its depth and the photoelectrons.

    Photon registration times (:func:`photon_times_ps`) are shifted by ``arrival_ps``, histogrammed on a
    ``fine_ps`` grid with the single-photoelectron gain spread (and the SiPM's dark counts and crosstalk when
    the set-up has them), convolved with the single-photoelectron response, sampled every ``sample_ps``,
    given white electronic noise and digitised (:func:`digitise`).

    Parameters
    ----------
    config : TimingConfig
    arrival_ps : numpy.ndarray, shape (m,)
        Time at which the gamma enters each detector (ps from the start of the simulated record, which is
        ``n_samples + 2 max_shift`` samples long).
    doi_mm : numpy.ndarray, shape (m,)
        Interaction depths from the front face (mm), within ``[0, length_mm]``.
    n_pe : numpy.ndarray of int, shape (m,)
        Photoelectrons of each detector (prompt ones included).
    generator : numpy.random.Generator
    n_prompt : numpy.ndarray of int, shape (m,), optional
        Prompt (Cherenkov) photoelectrons among ``n_pe``.
    fine_ps : float
        Step of the fine grid (ps); ``sample_ps`` must be a multiple of it.

    Returns
    -------
    numpy.ndarray, shape (m, n_samples + 2 max_shift), float32
        ADC values in single-photoelectron amplitudes (baseline 0).
    """
    from scipy.signal import fftconvolve

    arrival_ps, doi_mm = np.asarray(arrival_ps, dtype=np.float64), np.asarray(doi_mm, dtype=np.float64)
    n_pe = np.asarray(n_pe).astype(np.int64)
    m_all = len(arrival_ps)
    if doi_mm.shape != (m_all,) or n_pe.shape != (m_all,) or np.any(n_pe < 0):
        raise InputError("arrival_ps, doi_mm and n_pe must be (m,) arrays, n_pe >= 0")
    step = int(round(config.sample_ps / fine_ps))
    if abs(step * fine_ps - config.sample_ps) > 1e-6:
        raise InputError("sample_ps must be a multiple of fine_ps")
    total_samples = config.n_samples + 2 * config.max_shift
    n_fine = total_samples * step
    spr = single_photon_response(config, fine_ps)
    waves = np.zeros((m_all, total_samples), dtype=np.float32)
    chunk = 1024  # rows (512 coincidences): the random stream of simulate_coincidences is kept
    for start in range(0, m_all, chunk):
        sl = slice(start, min(m_all, start + chunk))
        m = sl.stop - sl.start
        fine = np.zeros((m, n_fine))
        if n_prompt is None:
            times = photon_times_ps(config, n_pe[sl], doi_mm[sl], generator)
        else:
            times = photon_times_ps(config, n_pe[sl], doi_mm[sl], generator, n_prompt=np.asarray(n_prompt)[sl])
        for row, (t, t_arr) in enumerate(zip(times, arrival_ps[sl])):
            idx = np.floor((t + t_arr) / fine_ps).astype(np.int64)
            idx = idx[(idx >= 0) & (idx < n_fine)]
            gains = 1.0 + config.gain_spread * generator.standard_normal(len(idx))
            if config.dark_rate_hz_per_mm2 > 0 or config.crosstalk > 0:  # drawn only when enabled (same stream)
                idx, gains = _sipm_extras(config, idx, gains, n_fine, fine_ps, generator)
            fine[row] = np.bincount(idx, weights=gains, minlength=n_fine)
        analog = fftconvolve(fine, spr[None, :], axes=1)[:, :n_fine]
        sampled = analog[:, ::step] + generator.normal(0.0, config.noise_spe, (m, total_samples))
        waves[sl] = digitise(sampled, config)
    return waves


def _sipm_extras(config: TimingConfig, idx: np.ndarray, gains: np.ndarray, n_fine: int, fine_ps: float,
                 generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Add dark counts (uniform in the record) and prompt crosstalk (geometric chains) to one detector's avalanches.

    ``idx`` are the bins (of ``fine_ps``, ``n_fine`` in the record) of the photoelectrons and ``gains`` their
    amplitudes (spe); a crosstalk chain of ``k`` extra cells fires with its primary and adds ``k``
    single-cell amplitudes.
    """
    n_dark = generator.poisson(config.dark_rate_hz_per_mm2 * config.sipm_area_mm2 * n_fine * fine_ps * 1e-12)
    if n_dark:
        idx = np.concatenate([idx, generator.integers(0, n_fine, n_dark)])
        gains = np.concatenate([gains, 1.0 + config.gain_spread * generator.standard_normal(n_dark)])
    if config.crosstalk > 0:
        extra = generator.geometric(1.0 - config.crosstalk, len(idx)) - 1  # P(k) = (1 - p) p^k, k >= 0
        gains = gains + extra + config.gain_spread * np.sqrt(extra) * generator.standard_normal(len(idx))
    return idx, gains


def digitise(analog: np.ndarray, config: TimingConfig) -> np.ndarray:
    """ADC: quantise to ``2**adc_bits`` levels over ``[-5 % , 95 %]`` of the full scale, with clipping."""
    lsb = config.adc_full_scale_spe / 2**config.adc_bits
    lo = -0.05 * config.adc_full_scale_spe
    codes = np.clip(np.round((analog - lo) / lsb), 0, 2**config.adc_bits - 1)
    return (codes * lsb + lo).astype(np.float32)


def crop_windows(waveforms: np.ndarray, dt_ps: np.ndarray, shifts: np.ndarray, config: TimingConfig):
    """Cut the analysed windows with per-detector digital shifts (whole samples).

    Parameters
    ----------
    waveforms : numpy.ndarray or torch.Tensor, shape (n, 2, n_samples + 2 max_shift)
    dt_ps : array, shape (n,)
        True time differences of the central windows (ps).
    shifts : array of int, shape (n, 2)
        Shift of each detector's window in samples, in ``[-max_shift, max_shift]``.
    config : TimingConfig

    Returns
    -------
    (windows (n, 2, n_samples), dt_ps (n,))
        A window started ``k`` samples later sees its pulse ``k * sample_ps`` earlier, so the label
        becomes ``dt - (k_a - k_b) * sample_ps`` exactly.
    """
    k = config.max_shift
    if np.any(np.abs(np.asarray(shifts)) > k):
        raise InputError(f"shifts must lie within +-max_shift = {k}")
    idx = np.arange(config.n_samples)[None, None, :] + k + np.asarray(shifts)[:, :, None]
    windows = np.take_along_axis(np.asarray(waveforms), idx, axis=2)
    new_dt = np.asarray(dt_ps) - (np.asarray(shifts)[:, 0] - np.asarray(shifts)[:, 1]) * config.sample_ps
    return windows, new_dt
