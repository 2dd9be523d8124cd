"""Count statistics: Poisson acquisitions, low-dose thinning and list-mode time windows.

Emission data are Poisson: a bin whose expected number of counts is ``ybar_i`` records
``y_i ~ Poisson(ybar_i)``, independently of every other bin (Shepp & Vardi 1982). This module turns
expected data into counts in the two ways a simulation needs, and emulates shorter or lower-dose
acquisitions from a full one:

* **At a stated number of counts** (:func:`poisson_at_total_counts`): the expected *true* counts are
  scaled so that their sum is ``N`` and the additive background (randoms, scatter) by the same factor,
  then sampled. The scale factor ``c`` is returned: it plays the part of an effective scan time, so a
  reconstruction with the operator ``c A`` returns the activity in the units of ``x``.
* **From activity, scan time and sensitivity** (:func:`expected_counts`): with a system model ``A``
  that maps activity concentration ``x`` in Bq/mL to detected counts per second in each bin (voxel
  volume in mL and absolute sensitivity included), the expected counts in a scan of ``scan_s``
  seconds are ``scan_s * (A x)``; with a half-life the decay during the scan reduces this to
  ``(1 - exp(-lambda T)) / lambda * (A x)`` (activity at the scan start).

Two emulations of a shorter acquisition are named apart, because they are not the same experiment:

* **Low dose** (:func:`thin_counts`): each recorded count is kept with probability ``f``. Binomial
  thinning of a Poisson variable gives exactly ``Poisson(f * ybar)``, so the thinned data are a
  genuine acquisition at dose fraction ``f`` -- same scan time, same kinetics and decay, ``f`` times
  the injected activity -- and they are *paired* with (a subset of) the full-dose data, which is what
  denoising networks train on. (Randoms scale with the square of the singles rate, so a true
  low-injected-dose scan has relatively fewer randoms; thinning keeps the full-dose randoms fraction.)
* **Fast scan** (:func:`events_in_time_window`): list-mode events carry timestamps and the events of a
  shorter window ``[t0, t1)`` are kept. This is the same injected dose seen for less time: the counts
  in the window follow the activity *during that window* (radioactive decay, tracer kinetics), so a
  10 % time window at the start of a scan holds more than 10 % of the counts for a short-lived nuclide
  and a window late in the scan holds fewer; images from different windows also show different
  kinetics. The window fraction of the expected counts is given by :func:`decay_window_fraction`.

Timestamped list-mode events are held by :class:`TimedEvents` (flat projection-bin index and time in
s per event, and optionally a TOF bin; the LOR endpoints of a bin come from the sinogram definition,
see :class:`petspect.geometry.pet.ListmodeEvents` for events addressed by endpoints); :func:`sample_listmode` draws them from expected data and
:func:`histogram_events` bins them back into projection data.

Every random function takes a ``torch.Generator`` (or a seed); nothing touches the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from petspect.errors import InputError
from petspect.geometry.pet import ListmodeEvents

__all__ = [
    "TimedEvents", "as_generator", "check_nonnegative", "decay_window_fraction", "effective_scan_s", "events_in_time_window",
    "expected_counts", "histogram_events", "listmode_lors", "poisson_at_total_counts", "poisson_sample", "sample_listmode",
    "thin_counts",
]


# --------------------------------------------------------------------------- helpers
def as_generator(generator: torch.Generator | int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` from a generator or an integer seed (None is refused)."""
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None or isinstance(generator, bool) or not isinstance(generator, int):
        raise InputError(f"pass a torch.Generator or an integer seed, got {generator!r}")
    return torch.Generator(device=torch.device(device)).manual_seed(int(generator))


def check_nonnegative(expected: torch.Tensor, name: str = "expected") -> torch.Tensor:
    """``expected`` as a floating tensor; InputError unless it is a finite, non-negative tensor."""
    if not isinstance(expected, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(expected).__name__}")
    if not expected.is_floating_point():
        expected = expected.to(torch.get_default_dtype())
    if not bool(torch.isfinite(expected).all()):
        raise InputError(f"{name} holds non-finite values")
    if bool((expected < 0).any()):
        raise InputError(f"{name} must be non-negative, min is {float(expected.min()):.3g}")
    return expected


def _sample_on(fn, *tensors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Run a torch sampler where the generator lives, and return the result on the inputs' device."""
    dev = tensors[0].device
    gdev = generator.device
    out = fn(*(t.to(gdev) for t in tensors), generator=generator)
    return out.to(dev)


# --------------------------------------------------------------------------- Poisson data
def poisson_sample(expected: torch.Tensor, generator: torch.Generator | int) -> torch.Tensor:
    """Poisson counts ``y ~ Poisson(expected)`` per element (same shape, dtype and device).

    Parameters
    ----------
    expected : torch.Tensor
        Expected counts (non-negative, finite), any shape.
    generator : torch.Generator or int
        Source of randomness (a seed makes a CPU generator).

    Returns
    -------
    torch.Tensor
        Integer-valued counts in ``expected``'s floating dtype.
    """
    expected = check_nonnegative(expected)
    gen = as_generator(generator)
    return _sample_on(torch.poisson, expected, generator=gen)


def poisson_at_total_counts(expected_trues: torch.Tensor, n_true_counts: float, generator: torch.Generator | int,
                            *, additive: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """Poisson data whose expected *true* counts sum to ``n_true_counts``.

    The scale ``c = N / sum(expected_trues)`` multiplies the trues and the additive background alike,
    and ``y ~ Poisson(c (trues + additive))``.

    Parameters
    ----------
    expected_trues : torch.Tensor
        Expected true coincidences (or primary photons) ``A x``, any shape, non-negative, positive sum.
    n_true_counts : float
        Expected total number of true counts ``N`` (> 0). The sampled total fluctuates by ``sqrt(N)``.
    generator : torch.Generator or int
        Source of randomness.
    additive : torch.Tensor, optional
        Expected randoms + scatter on the same scale as ``expected_trues`` (same shape).

    Returns
    -------
    counts : torch.Tensor
        Sampled prompts, same shape as ``expected_trues``.
    scale : float
        ``c``; reconstructing with the operator ``c A`` (and additive ``c * additive``) recovers ``x``.
    """
    expected_trues = check_nonnegative(expected_trues, "expected_trues")
    if not (n_true_counts > 0 and math.isfinite(n_true_counts)):
        raise InputError(f"n_true_counts must be positive and finite, got {n_true_counts}")
    total = float(expected_trues.sum())
    if total <= 0:
        raise InputError("expected_trues sums to zero: nothing is seen by the system, cannot scale to counts")
    scale = float(n_true_counts) / total
    mean = expected_trues * scale
    if additive is not None:
        additive = check_nonnegative(additive, "additive")
        if additive.shape != expected_trues.shape:
            raise InputError(f"additive shape {tuple(additive.shape)} != data shape {tuple(expected_trues.shape)}")
        mean = mean + additive.to(mean) * scale
    return poisson_sample(mean, generator), scale


def effective_scan_s(scan_s: float, *, half_life_s: float | None = None, t_start_s: float = 0.0) -> float:
    """Time-integral of the decay factor over the scan: the factor turning counts/s into counts.

    ``int_{t0}^{t0+T} exp(-lambda t) dt = exp(-lambda t0) (1 - exp(-lambda T)) / lambda`` with
    ``lambda = ln 2 / half_life_s``, for activity given at time 0 (e.g. the reference time of the image).
    Without a half-life it is simply ``T``.

    Parameters
    ----------
    scan_s : float
        Scan duration ``T`` in s (> 0).
    half_life_s : float, optional
        Half-life of the nuclide in s; None ignores decay.
    t_start_s : float
        Scan start relative to the activity reference time, in s (>= 0).
    """
    if not (scan_s > 0 and math.isfinite(scan_s)):
        raise InputError(f"scan_s must be positive and finite, got {scan_s}")
    if t_start_s < 0:
        raise InputError(f"t_start_s must be >= 0, got {t_start_s}")
    if half_life_s is None:
        return float(scan_s)
    if not half_life_s > 0:
        raise InputError(f"half_life_s must be positive, got {half_life_s}")
    lam = math.log(2.0) / half_life_s
    return math.exp(-lam * t_start_s) * -math.expm1(-lam * scan_s) / lam


def expected_counts(rate_per_s: torch.Tensor, scan_s: float, *, half_life_s: float | None = None,
                    t_start_s: float = 0.0) -> torch.Tensor:
    """Expected counts of a scan from the count rate ``A x`` (counts/s per bin).

    ``ybar = effective_scan_s(scan_s, half_life_s, t_start_s) * (A x)`` where ``A`` maps activity in
    Bq/mL to counts/s (it holds the voxel volume in mL and the absolute sensitivity).

    Parameters
    ----------
    rate_per_s : torch.Tensor
        ``A x`` in counts/s per bin (non-negative).
    scan_s, half_life_s, t_start_s
        See :func:`effective_scan_s`.
    """
    rate_per_s = check_nonnegative(rate_per_s, "rate_per_s")
    return rate_per_s * effective_scan_s(scan_s, half_life_s=half_life_s, t_start_s=t_start_s)


# --------------------------------------------------------------------------- low dose
def thin_counts(counts: torch.Tensor, fraction: float, generator: torch.Generator | int) -> torch.Tensor:
    """Low-dose emulation by binomial thinning: keep each count with probability ``fraction``.

    If ``y ~ Poisson(ybar)`` then ``Binomial(y, f) ~ Poisson(f ybar)``: the result is an exact
    acquisition at dose fraction ``f`` (same scan time and kinetics, ``f`` times the injected
    activity), paired count-by-count with the full-dose data (the thinned counts never exceed them).

    Parameters
    ----------
    counts : torch.Tensor
        Recorded counts (non-negative integers stored in any dtype), any shape.
    fraction : float
        Dose fraction in ``[0, 1]``.
    generator : torch.Generator or int
        Source of randomness.

    Returns
    -------
    torch.Tensor
        Thinned counts, same shape, dtype and device as ``counts``.
    """
    if not (0.0 <= fraction <= 1.0):
        raise InputError(f"dose fraction must be in [0, 1], got {fraction}")
    c = check_nonnegative(counts, "counts")
    if not bool(torch.equal(c, torch.round(c))):
        raise InputError("thin_counts needs integer counts (recorded data), not expected values")
    gen = as_generator(generator)
    work = c.to(torch.float64 if c.dtype == torch.float64 else torch.float32)
    prob = torch.full_like(work, float(fraction))
    out = _sample_on(torch.binomial, work, prob, generator=gen)
    return out.to(counts.dtype)


# --------------------------------------------------------------------------- list mode
@dataclass
class TimedEvents:
    """Detected list-mode events addressed by projection bin, with timestamps, one entry per event.

    Parameters
    ----------
    bin_index : torch.Tensor, shape (n_events,), int64
        Flat (C-order) index of each event's bin in projection data of shape ``data_shape``
        (a sinogram bin, a detector pair index, or a SPECT detector pixel and view).
    time_s : torch.Tensor, shape (n_events,)
        Detection time of each event in s from the scan start, non-decreasing after :meth:`sorted`.
    data_shape : tuple of int
        Shape of the projection data the events histogram into.
    tof_bin : torch.Tensor, shape (n_events,), int64, optional
        TOF bin of each event (counted inside ``data_shape`` when that has a TOF axis).
    """

    bin_index: torch.Tensor
    time_s: torch.Tensor
    data_shape: tuple[int, ...]
    tof_bin: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.bin_index = torch.as_tensor(self.bin_index).to(torch.int64).reshape(-1)
        self.time_s = torch.as_tensor(self.time_s).reshape(-1)
        self.data_shape = tuple(int(s) for s in self.data_shape)
        if self.time_s.numel() != self.bin_index.numel():
            raise InputError(f"{self.bin_index.numel()} events but {self.time_s.numel()} timestamps")
        if self.tof_bin is not None:
            self.tof_bin = torch.as_tensor(self.tof_bin).to(torch.int64).reshape(-1)
            if self.tof_bin.numel() != self.bin_index.numel():
                raise InputError(f"{self.bin_index.numel()} events but {self.tof_bin.numel()} TOF bins")
        n_bins = math.prod(self.data_shape)
        if self.bin_index.numel() and (int(self.bin_index.min()) < 0 or int(self.bin_index.max()) >= n_bins):
            raise InputError(f"bin_index out of range 0..{n_bins - 1} for data shape {self.data_shape}")

    def __len__(self) -> int:
        return int(self.bin_index.numel())

    def select(self, mask: torch.Tensor) -> "TimedEvents":
        """The events where ``mask`` (bool, shape (n_events,)) is true."""
        return TimedEvents(self.bin_index[mask], self.time_s[mask], self.data_shape,
                              None if self.tof_bin is None else self.tof_bin[mask])

    def sorted(self) -> "TimedEvents":
        """The events in time order."""
        order = torch.argsort(self.time_s, stable=True)
        return self.select(order)


def decay_window_fraction(t0_s: float, t1_s: float, scan_s: float, *, half_life_s: float | None) -> float:
    """Fraction of a scan's expected counts that fall in the window ``[t0, t1)`` (decay only).

    ``(exp(-lambda t0) - exp(-lambda t1)) / (1 - exp(-lambda T))``; without decay ``(t1 - t0) / T``.
    Tracer kinetics change this further; they are not modelled here.
    """
    if not (0.0 <= t0_s < t1_s <= scan_s):
        raise InputError(f"need 0 <= t0 < t1 <= scan_s, got t0={t0_s}, t1={t1_s}, scan_s={scan_s}")
    if half_life_s is None:
        return (t1_s - t0_s) / scan_s
    lam = math.log(2.0) / half_life_s
    return (math.exp(-lam * t0_s) - math.exp(-lam * t1_s)) / -math.expm1(-lam * scan_s)


def sample_listmode(expected: torch.Tensor, scan_s: float, generator: torch.Generator | int, *,
                    half_life_s: float | None = None) -> TimedEvents:
    """Draw list-mode events from expected counts of a whole scan.

    The number of events per bin is ``Poisson(expected)``; each event's time is drawn independently
    on ``[0, scan_s)`` with density proportional to the activity ``exp(-lambda t)`` (uniform without a
    half-life). Events are returned in time order. The histogram of the result is distributed as
    :func:`poisson_sample` of ``expected``; the events inside a window are a Poisson acquisition of
    that window (a thinned Poisson process).

    Parameters
    ----------
    expected : torch.Tensor
        Expected counts per bin for the whole scan (non-negative), any shape (the ``data_shape``).
    scan_s : float
        Scan duration in s.
    generator : torch.Generator or int
        Source of randomness.
    half_life_s : float, optional
        Half-life for the decay of the activity during the scan (activity at the scan start).
    """
    expected = check_nonnegative(expected)
    if not scan_s > 0:
        raise InputError(f"scan_s must be positive, got {scan_s}")
    gen = as_generator(generator)
    counts = _sample_on(torch.poisson, expected.reshape(-1).to(torch.float64), generator=gen)
    bins = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts.to(torch.int64))
    u = torch.rand(bins.numel(), generator=gen, dtype=torch.float64, device=gen.device).to(counts.device)
    if half_life_s is None:
        t = u * scan_s
    else:  # inverse CDF of the truncated exponential on [0, T)
        lam = math.log(2.0) / half_life_s
        t = -torch.log1p(u * math.expm1(-lam * scan_s)) / lam
    return TimedEvents(bins, t.to(expected.dtype), tuple(expected.shape)).sorted()


def events_in_time_window(events: TimedEvents, t0_s: float, t1_s: float) -> TimedEvents:
    """Fast-scan emulation: the events detected in ``[t0_s, t1_s)``.

    Unlike :func:`thin_counts` (low dose), a time window keeps the full injected dose and sees it for
    a shorter time: the expected counts in the window follow the decay (and kinetics) during the
    window, see :func:`decay_window_fraction`.

    Parameters
    ----------
    events : TimedEvents
        Events with timestamps in s.
    t0_s, t1_s : float
        Window start (inclusive) and end (exclusive) in s, ``t0 < t1``.
    """
    if not isinstance(events, TimedEvents):
        raise InputError(f"events must be TimedEvents, got {type(events).__name__}")
    if not t1_s > t0_s:
        raise InputError(f"time window must have t1 > t0, got [{t0_s}, {t1_s})")
    mask = (events.time_s >= t0_s) & (events.time_s < t1_s)
    return events.select(mask)


def listmode_lors(events: TimedEvents, sino_def):
    """The LOR endpoints of each event's sinogram bin: :class:`petspect.geometry.pet.ListmodeEvents`.

    ``events.data_shape`` must be ``sino_def.shape(tof)``; with a TOF axis the events' TOF bins are the
    last index of their bin. The result feeds :class:`petspect.projectors.pet.PetListmodeProjector`
    (list-mode reconstruction of a time window, see :func:`petspect.recon.em.osem`).
    """
    shape = tuple(events.data_shape)
    tof = len(shape) == 4
    if shape != tuple(sino_def.shape(tof)):
        raise InputError(f"events address data of shape {shape}, the sinogram is {sino_def.shape(tof)}")
    start, end = sino_def.lor_endpoints_mm()
    lor = events.bin_index // shape[3] if tof else events.bin_index
    tof_bin = events.bin_index % shape[3] if tof else None
    idx = lor.cpu()
    return ListmodeEvents(start.reshape(-1, 3)[idx], end.reshape(-1, 3)[idx], tof_bin)


def histogram_events(events: TimedEvents, *, dtype: torch.dtype = torch.float32,
                     data_shape: Sequence[int] | None = None) -> torch.Tensor:
    """Bin list-mode events into projection data (counts per bin, shape ``events.data_shape``).

    Parameters
    ----------
    events : TimedEvents
        The events.
    dtype : torch.dtype
        Floating dtype of the result.
    data_shape : sequence of int, optional
        Override the shape (must hold as many bins as ``events.data_shape``).
    """
    shape = tuple(events.data_shape if data_shape is None else (int(s) for s in data_shape))
    if math.prod(shape) != math.prod(events.data_shape):
        raise InputError(f"data_shape {shape} does not match the events' {events.data_shape}")
    hist = torch.bincount(events.bin_index, minlength=math.prod(shape))
    return hist.to(dtype).reshape(shape)
