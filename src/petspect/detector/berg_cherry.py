"""The timing set-up of Berg and Cherry (2018), with where each of its numbers comes from.

Berg E and Cherry S R, "Using convolutional neural networks to estimate time-of-flight from PET detector
waveforms", Phys. Med. Biol. 63 (2018) 02LT01, doi:10.1088/1361-6560/aa9dc5. The presets
``berg-cherry-2018`` and ``berg-cherry-2018-stepped`` (:mod:`petspect.detector.pipeline`) simulate it.

Texts read (2026-12-05, stored copies): the abstract in full (PubMed 29182151,
https://pubmed.ncbi.nlm.nih.gov/29182151/); the first part of T. Freeman, "Neural networks improve PET
time-of-flight estimates", medicalphysicsweb, 5 Feb 2018 (http://medicalphysicsweb.org/cws/article/research/71017);
Table I of Gong, Berg, Cherry and Qi, "Machine learning in PET: from photon detection to quantitative image
reconstruction", Proc. IEEE 108 (2020) 51 (https://pmc.ncbi.nlm.nih.gov/articles/PMC10691821/); the abstract of
Deng and Xie, IEEE TNS 62 (2015) 805 (a bench set-up with R9800 tubes, for the assumed tube). The paper's full
text, with the crystal, tube and digitiser, was not found. :data:`BERG_CHERRY_2018_SETUP` therefore records
each parameter with its :class:`Source`: ``read`` (found in a text read, named in ``reference``), ``assumed``
(not found in any text read; the stand-in and why) or ``chosen`` (this study's protocol, not a property of
the set-up). BENCHMARKS.md carries the same table (:func:`setup_table_markdown`); a test keeps the two, and
the presets, equal.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from petspect.detector.waveforms import TimingConfig

# The texts read (full citations and addresses in the module docstring and BENCHMARKS.md).
ABSTRACT = "abstract (PubMed 29182151), read in full"
NEWS = "medicalphysicsweb news piece of 5 Feb 2018, first part read"
REVIEW = "Gong, Berg, Cherry and Qi, Proc. IEEE 2020, Table I (PMC10691821), read"
R9800_BENCH = ("as in the bench set-up of Deng and Xie, IEEE TNS 62 (2015) 805 (abstract read: Hamamatsu R9800 tubes "
               "read directly by a Tektronix DPO71604 oscilloscope, CTR 175-191 ps)")


class Source(str, enum.Enum):
    """Where a parameter of the reproduced set-up comes from."""

    READ = "read"  # found in a text read here (``reference``)
    ASSUMED = "assumed"  # not found in any text read here; a named stand-in
    CHOSEN = "chosen"  # this study's choice (protocol, scan), not a property of the set-up


@dataclasses.dataclass(frozen=True)
class CitedParameter:
    """One parameter of the set-up, its value as simulated, and where the value comes from.

    ``field`` names the :class:`~petspect.detector.waveforms.TimingConfig` attribute of ``preset`` that
    holds it (``None``: no single attribute, e.g. a published figure or a description), ``field_value`` the
    value that attribute must have.
    """

    name: str
    value: str
    source: Source
    reference: str
    field: str | None = None
    field_value: float | int | str | None = None
    preset: str = "berg-cherry-2018"

    def to_dict(self) -> dict:
        return {"parameter": self.name, "value": self.value, "source": self.source.value,
                "reference": self.reference, "field": self.field, "field_value": self.field_value,
                "preset": self.preset}


BERG_CHERRY_2018_PUBLISHED_CTR_PS = {"led": 231.0, "cfd": 242.0, "cnn": 185.0}  # abstract (read)

# Assumed values, each with its stand-in (see BERG_CHERRY_2018_SETUP): Hamamatsu R9800 data sheet (25 mm fast
# bialkali tube: anode rise 1.0 ns, transit-time spread 0.27 ns FWHM, ~25 % quantum efficiency at LYSO's 420 nm);
# single-photoelectron response rise/decay constants 1.2 / 2.5 ns (10-90 % rise 0.96 ns; the oscilloscope's analog
# bandwidth folded in); 35 % rms gain spread (dynode tubes); 8-bit oscilloscope ADC over 280 spe (pulse maxima
# 150-220 spe); 0.1 spe rms noise (tube gain ~1e6 puts the scope's noise far below one photoelectron).
BERG_CHERRY_2018_TIMING = TimingConfig(crystal="LYSO", length_mm=10.0, light_collection=0.45, pde=0.25,
                                       sptr_fwhm_ps=270.0, spr_rise_ns=1.2, spr_decay_ns=2.5, gain_spread=0.35,
                                       noise_spe=0.1, sample_ps=100.0, n_samples=128, max_shift=4, adc_bits=8,
                                       adc_full_scale_spe=280.0, trigger_jitter_ps=2000.0)
# Thresholds from ~2 ADC steps (1.1 spe) up: below that a leading edge only says which sample first left the
# baseline code, and its times fall on the 100 ps sample grid, whose comb with the 33 ps steps of the source makes
# the FWHM of a histogram meaningless (seen: "143 ps" for a threshold of 0.75 spe, with a FWTM like the others').
BERG_CHERRY_LED_THRESHOLDS_SPE = (2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0)
BERG_CHERRY_CFD_FRACTIONS = tuple(float(f) for f in np.round(np.geomspace(0.01, 0.5, 40), 5))  # >= 2 spe

_R, _A, _C = Source.READ, Source.ASSUMED, Source.CHOSEN
_STEPPED = "berg-cherry-2018-stepped"
BERG_CHERRY_2018_SETUP: tuple[CitedParameter, ...] = (
    CitedParameter("detectors", "two PMT-based scintillation detectors in coincidence, point source between them",
                   _R, ABSTRACT),
    CitedParameter("source positions", "stepped in 5 mm increments over 15 cm (the -stepped protocol)", _R, ABSTRACT,
                   "source_step_mm", 5.0, _STEPPED),
    CitedParameter("source range", "+-75 mm (15 cm)", _R, ABSTRACT, "source_range_mm", 75.0, _STEPPED),
    CitedParameter("labels", "true time-of-flight from the path-length difference", _R, ABSTRACT + "; " + REVIEW),
    CitedParameter("sampling", "10 GS/s (100 ps per sample)", _R, ABSTRACT, "sample_ps", 100.0),
    CitedParameter("digitiser", "bench-top oscilloscope", _R, ABSTRACT),
    CitedParameter("CNN input", "the pair of digitised waveforms of a coincidence", _R, ABSTRACT + "; " + NEWS),
    CitedParameter("CNN output", "described as a ground-truth class (the predicted TOF); regression or classification "
                   "over the source steps not stated in the abstract", _R, NEWS),
    CitedParameter("CNN architecture", "depth (convolutional and fully connected layers) mattered most, filter size "
                   "little", _R, ABSTRACT),
    CitedParameter("published CTR FWHM", "LED 231 ps, CFD 242 ps, CNN 185 ps (20 % / 23 %)", _R, ABSTRACT),
    CitedParameter("scintillator", "LYSO", _A, "not in the abstract or the texts read; the fast lutetium "
                   "silicate of TOF-PET (the issue's description, unverified)", "crystal", "LYSO"),
    CitedParameter("crystal length", "10 mm (3 x 3 mm section)", _A, "not in the texts read; a short timing crystal",
                   "length_mm", 10.0),
    CitedParameter("light collection", "0.45 (about 1720 photoelectrons at 511 keV)", _A,
                   "as the other presets; not in the texts read", "light_collection", 0.45),
    CitedParameter("PMT quantum efficiency", "0.25", _A, "tube model not in the texts read; Hamamatsu R9800 data "
                   "sheet (bialkali, ~25 % at 420 nm), " + R9800_BENCH, "pde", 0.25),
    CitedParameter("PMT transit-time spread", "270 ps FWHM", _A, "R9800 data sheet (0.27 ns)", "sptr_fwhm_ps", 270.0),
    CitedParameter("single-photoelectron rise constant", "1.2 ns (10-90 % rise 0.96 ns)", _A,
                   "R9800 data sheet anode rise 1.0 ns; oscilloscope bandwidth not in the texts read, folded in",
                   "spr_rise_ns", 1.2),
    CitedParameter("single-photoelectron decay constant", "2.5 ns (pulse FWHM 4.3 ns, wider than a real tube's)", _A,
                   "not in the texts read", "spr_decay_ns", 2.5),
    CitedParameter("gain spread", "35 % rms", _A, "typical of dynode PMTs; not in the texts read", "gain_spread", 0.35),
    CitedParameter("ADC resolution", "8 bits", _A, "an oscilloscope's usual 8 bits; model not in the texts read",
                   "adc_bits", 8),
    CitedParameter("ADC full scale", "280 spe (pulse maxima 150-220 spe, 1.1 spe per step)", _A,
                   "vertical range not in the texts read; set just above the pulses", "adc_full_scale_spe", 280.0),
    CitedParameter("electronic noise", "0.1 spe rms", _A, "not in the texts read; tube gain ~1e6 makes it small",
                   "noise_spe", 0.1),
    CitedParameter("energy window", "photopeak events only (full 511 keV deposit)", _A,
                   "the window was not in the texts read"),
    CitedParameter("source", "back-to-back 511 keV photons, no positron range", _A,
                   "isotope and activity not in the texts read (a 22Na point source is usual)"),
    CitedParameter("trigger (published protocol)", "the pair's pulses at a fixed place in the record, within one "
                   "sample", _A, "an oscilloscope's coincidence trigger; not in the texts read", "trigger_jitter_ps",
                   None, _STEPPED),
    CitedParameter("record length", "128 samples (12.8 ns)", _C, "covers the rising edge and the first 9 ns",
                   "n_samples", 128),
    CitedParameter("trigger jitter (unbiased protocol)", "2 ns uniform", _C, "keeps an estimator from locating the "
                   "annihilation by the pulse's place in the record", "trigger_jitter_ps", 2000.0),
    CitedParameter("events", "20 000 training / 20 000 validation / 20 000 test pairs", _C,
                   "numbers of the paper not in the texts read"),
    CitedParameter("discriminator scans", "LED 14 thresholds 2-30 spe, CFD 40 fractions 0.01-0.5, on validation", _C,
                   "the paper's settings not in the texts read"),
)


def setup_table_markdown() -> str:
    """The markdown table of :data:`BERG_CHERRY_2018_SETUP` (BENCHMARKS.md carries it verbatim)."""
    rows = ["| parameter | value | source | where from / why |", "|---|---|---|---|"]
    rows += [f"| {p.name} | {p.value} | {p.source.value} | {p.reference} |" for p in BERG_CHERRY_2018_SETUP]
    return "\n".join(rows)
