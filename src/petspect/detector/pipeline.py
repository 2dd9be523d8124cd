"""Presets and the simulate -> train -> evaluate pipeline of the detector study.

``simulate`` writes a data folder (pencil-beam training grid, offset pencil-beam test grid, fan
beams, coincidence waveforms) with ``dataset.json`` recording the preset and seeds; ``train``
writes a models folder (neural positioners and the timing CNN as model folders); ``evaluate``
fits the fast baselines (Anger logic, kNN, gradient tree boosting), applies every method to the
test data and writes ``metrics.json`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

import petspect
from petspect._fileio import atomic_write_text, claim_output_folder
from petspect._json import json_default
from petspect._registry import Registry
from petspect.detector.berg_cherry import (BERG_CHERRY_2018_PUBLISHED_CTR_PS, BERG_CHERRY_2018_SETUP,
                                          BERG_CHERRY_2018_TIMING, BERG_CHERRY_CFD_FRACTIONS,
                                          BERG_CHERRY_LED_THRESHOLDS_SPE, CitedParameter)
from petspect.detector.joint import JointConfig, JointEvents, simulate_joint
from petspect.detector.metrics import energy_resolution, positioning_metrics
from petspect.detector.models import TrainSettings
from petspect.detector.photodetector import SiPMArray
from petspect.detector.simulate import (DetectorConfig, EventData, fan_beams, load_events, pencil_grid, save_events,
                                        simulate_events)
from petspect.detector.waveforms import Coincidences, TimingConfig, simulate_coincidences
from petspect.errors import ConfigError, DataNotFoundError

PHOTOPEAK_WINDOW_KEV = (435.0, 585.0)


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything that defines one study (sizes, statistics, training lengths).

    ``timing_arch`` is the timing CNN's architecture (:class:`~petspect.detector.timing.CNNTimer`);
    ``timing_train_source_range_mm`` (mm, ``None``: that of ``timing``) spreads the training sources
    wider than the validation and test sources, so that no estimator can narrow its errors by
    learning where the test sources lie. ``joint`` (``None``: not run) sizes the study of the joint network
    (:mod:`petspect.detector.joint_study`): pairs of monolithic blocks with the preset's detector and timing
    electronics, the separate positioner, energy calibration and timing CNN trained on the same events.
    ``timing_window`` is the aligned CNN's ``(pre, post)`` window
    (samples); ``timing_thresholds_spe`` and ``timing_fractions`` (``None``: the defaults of
    :mod:`petspect.detector.timing`) are the leading-edge thresholds (spe) and constant fractions scanned
    on the validation set (the fractions also on the training set, for the CNN's trigger).
    ``published_ctr_ps`` and ``published_setup`` (presets that reproduce a published set-up) are the published
    CTRs and the set-up's parameters with their sources (:mod:`petspect.detector.berg_cherry`); ``evaluate``
    writes both to metrics.json and the report.
    """

    name: str
    description: str
    detector: DetectorConfig
    train_step_mm: float
    train_events_per_beam: int
    test_step_mm: float
    test_events_per_beam: int
    fan_step_mm: float
    fan_events: int
    timing: TimingConfig
    timing_events: tuple[int, int, int]  # train, validation, test coincidences
    position_training: TrainSettings
    timing_training: TrainSettings
    gbt_iterations: int = 300
    knn_k: int = 30
    edge_mm: float = 2.0
    seed: int = 0
    timing_arch: str = "aligned"
    timing_train_source_range_mm: float | None = None  # None: that of the test data (timing.source_range_mm)
    timing_window: tuple[int, int] = (6, 16)
    timing_thresholds_spe: tuple[float, ...] | None = None
    timing_fractions: tuple[float, ...] | None = None
    joint: JointConfig | None = None  # the joint network's study (petspect.detector.joint_study); None: not run
    published_ctr_ps: tuple[tuple[str, float], ...] | None = None  # published CTRs of the set-up (method, ps)
    published_setup: tuple[CitedParameter, ...] | None = None  # the reproduced set-up's parameters and their sources

    @property
    def cfd_fractions(self) -> tuple[float, ...]:
        """Constant fractions scanned (``timing_fractions``, else the defaults of :mod:`petspect.detector.timing`)."""
        from petspect.detector.timing import CFD_FRACTIONS

        return self.timing_fractions or CFD_FRACTIONS

    @property
    def led_thresholds_spe(self) -> tuple[float, ...]:
        """Leading-edge thresholds scanned (spe; ``timing_thresholds_spe``, else the defaults)."""
        from petspect.detector.timing import LED_THRESHOLDS_SPE

        return self.timing_thresholds_spe or LED_THRESHOLDS_SPE

    def to_dict(self) -> dict:
        """JSON record."""
        d = dataclasses.asdict(self)
        d["detector"] = self.detector.to_dict()
        d["timing"] = self.timing.to_dict()
        return d


# State-of-the-art high-frequency (HF) SiPM timing readout on the same 3 x 3 x 20 mm LYSO pixels (the clinical
# length). Sources of the numbers:
# - SPTR 80 ps FWHM: 70-135 ps FWHM measured for whole-area illumination of Ketek, HPK, FBK, SensL and Broadcom
#   SiPMs with HF readout, FBK NUV-HD at the low end (Gundacker et al, PMB 64 (2019) 055012; Cates et al,
#   PMB 63 (2018) 185022, HF readout that reduces the influence of electronic noise on the SPTR).
# - single-photon response: 70 ps rise constant (10-90 % rise 0.10 ns, i.e. ~3.5 GHz analog bandwidth) and a
#   1 ns decay: the fast, high-pass-filtered spike of HF readouts (balun / RF amplifier, GHz bandwidth) instead
#   of the ~10 ns recovery of a standard readout; the slow component carries no timing information.
# - 20 GS/s (50 ps) with 12-bit resolution: the oscilloscope-class digitisation of those measurements
#   (3.5-4 GHz analog bandwidth, 20-40 GS/s) with the vertical resolution of current 12-bit 20 GS/s
#   oscilloscopes; full scale 400 spe keeps the ~110 spe pulse maximum (constant fraction) in range.
# - electronic noise 0.1 spe rms: single-photon signal-to-noise of ~10, the order HF readouts are built to
#   reach (chosen, not a quoted measurement).
# - PDE 0.55: FBK NUV-HD / Broadcom NUV-MT at high overvoltage, ~55-60 % at 420 nm (data sheets; Gundacker
#   et al 2019); the rest (light collection, crystal, 10 % gain spread, 2 ns trigger jitter) as
#   ``realistic``.
HF_READOUT_TIMING = TimingConfig(length_mm=20.0, pde=0.55, sptr_fwhm_ps=80.0, spr_rise_ns=0.07, spr_decay_ns=1.0,
                                 noise_spe=0.1, sample_ps=50.0, n_samples=256, max_shift=4, adc_bits=12,
                                 adc_full_scale_spe=400.0, trigger_jitter_ps=2000.0)
HF_LED_THRESHOLDS_SPE = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0, 10.0,
                         15.0)
HF_CFD_FRACTIONS = tuple(float(f) for f in np.round(np.geomspace(0.002, 0.3, 50), 5))

# BGO with prompt Cherenkov emission on the same HF readout (3 x 3 x 20 mm, the clinical length, as the LYSO pair and
# the 3 x 3 x 20 mm BGO of Roncali et al, Biomed Phys Eng Express 5 (2019) 035033 and Kwon et al, PMB 2016):
# - BGO scintillation (crystals.py): 8.2 ph/keV, 300 ns decay, 90 ps rise, n = 2.15; 943 photoelectrons with the
#   light collection 0.45 and a PDE of 0.50 at BGO's 480 nm emission (NUV-HD / NUV-MT, below their ~420 nm peak).
# - Cherenkov: ~17 photons produced per 511 keV photoelectric event in BGO (310-850 nm; Kwon et al, PMB 61 (2016)
#   L38; Brunner and Schaart, PMB 62 (2017) 4421), emitted at the interaction time; detected with the same light
#   collection and a PDE of 0.35 averaged over their UV-blue spectrum: 17 x 0.45 x 0.35 = 2.7 photoelectrons per
#   event (Poisson; 7 % of the detectors see none), the "few" detected Cherenkov photons of Gundacker et al, PMB 65
#   (2020) 025001 and Kratochwil et al, PMB 2020/2021 (chosen within that range, not fitted to a measurement).
# - ADC full scale 50 spe (the pulse maximum within the 12.8 ns record is ~5-12 spe; LSB 0.012 spe).
BGO_CHERENKOV_TIMING = dataclasses.replace(HF_READOUT_TIMING, crystal="BGO", pde=0.50, cherenkov_yield=17.0,
                                           cherenkov_pde=0.35, adc_full_scale_spe=50.0)
BGO_LED_THRESHOLDS_SPE = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
BGO_CFD_FRACTIONS = tuple(float(f) for f in np.round(np.geomspace(0.01, 0.6, 50), 5))

# LaBr3:Ce on the same HF readout (3 x 3 x 20 mm, the geometry of the LYSO pair, so that only the crystal changes):
# - LaBr3:Ce 5 % (crystals.py): 63 ph/keV, 16 ns decay, ~0.5 ns rise (Glodo et al, IEEE TNS 2005), n = 1.9; the
#   LaBr3 TOF-PET scanner of Daube-Witherspoon et al, PMB 55 (2010) 45 (4 x 4 x 30 mm crystals, PMTs) used it.
# - PDE 0.50 at its 380 nm emission (NUV-HD / NUV-MT SiPMs a little below their ~420 nm maximum; chosen from the
#   data sheets): ~7200 photoelectrons with the light collection 0.45.
# - ADC full scale 1500 spe (pulse maximum ~470 spe within the record).
# Why this preset: the slow rise spreads the timing information over the hundreds of photons that arrive during
# it, which one threshold crossing cannot combine (BENCHMARKS.md, "Detector": photon-level figures).
LABR3_HF_TIMING = dataclasses.replace(HF_READOUT_TIMING, crystal="LaBr3", pde=0.50, adc_full_scale_spe=1500.0)
LABR3_LED_THRESHOLDS_SPE = HF_LED_THRESHOLDS_SPE + (20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0)  # steeper, taller edge

# Berg and Cherry, PMB 63 (2018) 02LT01: the timing pair, its discriminator scans, the published CTRs and where each
# number comes from (read / assumed / chosen) live in petspect.detector.berg_cherry (BERG_CHERRY_2018_SETUP).

PRESETS: Registry[Preset] = Registry("detector preset", {
    "quick": Preset(
        "quick", "6x6 SiPM (3.2 mm) on 19.2 x 19.2 x 10 mm LYSO; small statistics for tests (about a minute)",
        DetectorConfig("LYSO", 10.0, SiPMArray(n_x=6, n_y=6)), 1.0, 16, 2.0, 30, 1.0, 60,
        TimingConfig(length_mm=10.0, max_shift=4, trigger_jitter_ps=2000.0), (2500, 800, 800),
        TrainSettings(epochs=12, batch_size=128, lr=3e-3),
        TrainSettings(epochs=6, batch_size=128, lr=2e-3, loss="mse", average_last=2),
        gbt_iterations=100, knn_k=20, timing_train_source_range_mm=150.0,
        joint=JointConfig(pairs=(1500, 800, 800), training=TrainSettings(epochs=12, batch_size=128, lr=3e-3,
                                                                          average_last=4), max_trials=2,
                          time_weights=(0.1,))),
    "realistic": Preset(
        "realistic", "8x8 SiPM (3.2 mm) on 25.6 x 25.6 x 12 mm LYSO (cf. Muller et al 2018, 12 mm LYSO); "
        "1 mm calibration grid; 3x3x20 mm LYSO pair for timing",
        DetectorConfig("LYSO", 12.0, SiPMArray()), 1.0, 60, 1.6, 100, 1.0, 300,
        TimingConfig(length_mm=20.0, max_shift=4, trigger_jitter_ps=2000.0), (20000, 20000, 20000),
        TrainSettings(epochs=30, batch_size=256, lr=2e-3),
        TrainSettings(epochs=30, batch_size=256, lr=2e-3, loss="mse", average_last=10),
        timing_train_source_range_mm=150.0, joint=JointConfig()),
    "hf-readout": Preset(
        "hf-readout", "as realistic, but the 3x3x20 mm LYSO timing pair is read out by state-of-the-art "
        "high-frequency SiPM electronics (SPTR 80 ps, 20 GS/s, 0.1 spe noise; see HF_READOUT_TIMING)",
        DetectorConfig("LYSO", 12.0, SiPMArray()), 1.0, 60, 1.6, 100, 1.0, 300,
        HF_READOUT_TIMING, (60000, 20000, 20000),
        TrainSettings(epochs=30, batch_size=256, lr=2e-3),
        TrainSettings(epochs=30, batch_size=256, lr=2e-3, loss="mse", average_last=10),
        timing_train_source_range_mm=150.0, timing_window=(8, 24), timing_thresholds_spe=HF_LED_THRESHOLDS_SPE,
        timing_fractions=HF_CFD_FRACTIONS),
})
PRESETS["bgo-cherenkov"] = dataclasses.replace(
    PRESETS["hf-readout"], name="bgo-cherenkov",
    description="as hf-readout, but the 3x3x20 mm timing pair is BGO with prompt Cherenkov emission (2.7 detected "
                "Cherenkov photoelectrons per event; see BGO_CHERENKOV_TIMING)",
    timing=BGO_CHERENKOV_TIMING, timing_thresholds_spe=BGO_LED_THRESHOLDS_SPE, timing_fractions=BGO_CFD_FRACTIONS,
    # Cauchy loss: BGO's timing errors have long tails (detectors without a detected Cherenkov photon); on
    # validation 153.9 ps vs 158.7 (smooth L1) and 192.5 ps (MSE)
    timing_training=TrainSettings(epochs=30, batch_size=256, lr=2e-3, loss="cauchy", average_last=10))


PRESETS["labr3-hf"] = dataclasses.replace(
    PRESETS["hf-readout"], name="labr3-hf",
    description="as hf-readout, but the 3x3x20 mm timing pair is LaBr3:Ce (0.5 ns scintillation rise, ~7200 "
                "photoelectrons; see LABR3_HF_TIMING)",
    timing=LABR3_HF_TIMING, timing_thresholds_spe=LABR3_LED_THRESHOLDS_SPE)


PRESETS["berg-cherry-2018"] = dataclasses.replace(
    PRESETS["realistic"], name="berg-cherry-2018",
    description="as realistic, but the timing pair is the set-up of Berg and Cherry, PMB 63 (2018) 02LT01: two "
                "PMT-read detectors sampled at 10 GS/s by an oscilloscope (read, abstract); LYSO 3x3x10 mm, "
                "R9800-like tubes (TTS 270 ps), 8-bit ADC (assumed; see berg_cherry.BERG_CHERRY_2018_SETUP); "
                "this study's unbiased protocol (training sources over +-150 mm, test within +-30 mm, 2 ns jitter)",
    timing=BERG_CHERRY_2018_TIMING, timing_thresholds_spe=BERG_CHERRY_LED_THRESHOLDS_SPE,
    timing_fractions=BERG_CHERRY_CFD_FRACTIONS, timing_window=(6, 24), joint=None,
    published_ctr_ps=tuple(BERG_CHERRY_2018_PUBLISHED_CTR_PS.items()), published_setup=BERG_CHERRY_2018_SETUP)
# The published protocol: the point source stepped in 5 mm increments over 15 cm (+-75 mm) for training, validation
# and test alike, the pair's arrival within one sample of the same place in the record (a coincidence trigger), and
# a CNN on the whole pair of records, as in the paper; the unbiased preset above removes these three.
PRESETS["berg-cherry-2018-stepped"] = dataclasses.replace(
    PRESETS["berg-cherry-2018"], name="berg-cherry-2018-stepped",
    description="berg-cherry-2018 with the published protocol: source stepped 5 mm over 15 cm for training and "
                "test, fixed trigger, CNN on the whole pair of records (can learn the source positions)",
    timing=dataclasses.replace(BERG_CHERRY_2018_TIMING, source_range_mm=75.0, source_step_mm=5.0,
                               trigger_jitter_ps=None),
    timing_train_source_range_mm=None, timing_arch="pair",
    timing_training=TrainSettings(epochs=30, batch_size=256, lr=2e-3, select_by="fwhm"))

def get_preset(name: str) -> Preset:
    """The preset ``name`` (one of :data:`PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def _rng(preset: Preset, stream: int) -> np.random.Generator:
    return np.random.default_rng([preset.seed, stream])


def calibrate_energy(events: EventData, pitch_mm: float) -> dict:
    """Per-region gain calibration (beam positions binned to the SiPM pitch) and energy resolution."""
    beam = np.nan_to_num(events.beam_mm, nan=0.0)
    groups = np.unique(np.floor(beam / pitch_mm), axis=0, return_inverse=True)[1].ravel()
    return energy_resolution(events.total_signal, groups)


def photopeak(events: EventData, pitch_mm: float) -> EventData:
    """Events whose calibrated energy lies in the photopeak window 435-585 keV."""
    e = calibrate_energy(events, pitch_mm)["energy_kev"]
    return events.subset((e > PHOTOPEAK_WINDOW_KEV[0]) & (e < PHOTOPEAK_WINDOW_KEV[1]))


def simulate(preset: Preset, out_dir: str | os.PathLike, *, device="cpu", overwrite: bool = False) -> Path:
    """Simulate the calibration, test and timing data of ``preset`` into ``out_dir``.

    Returns the folder; it holds ``train.npz``, ``test.npz``, ``fan.npz`` (events with JSON records),
    ``timing_{train,val,test}.npz`` and ``dataset.json``.
    """
    out = claim_output_folder(out_dir, overwrite=overwrite, kind="detector-data")
    det = preset.detector
    beams = {
        "train": pencil_grid(det, preset.train_step_mm, preset.train_events_per_beam),
        "test": pencil_grid(det, preset.test_step_mm, preset.test_events_per_beam, offset_mm=preset.test_step_mm / 4),
        "fan": fan_beams(det, preset.fan_step_mm, preset.fan_events, _rng(preset, 10)),
    }
    counts = {}
    for stream, (name, (entry, mask)) in enumerate(beams.items()):
        ev = simulate_events(det, entry, mask, _rng(preset, stream), device=device)
        rec = {"kind": name, "preset": preset.name, "seed": [preset.seed, stream], "gammas": int(len(entry)),
               "detected": int(len(ev)), "detector": det.to_dict(), "petspect": petspect.__version__}
        save_events(out / f"{name}.npz", ev, rec)
        counts[name] = int(len(ev))
    wide = preset.timing_train_source_range_mm
    train_cfg = preset.timing if wide is None else dataclasses.replace(preset.timing, source_range_mm=wide)
    for stream, (name, n) in enumerate(zip(("timing_train", "timing_val", "timing_test"), preset.timing_events)):
        co = simulate_coincidences(train_cfg if name == "timing_train" else preset.timing, n, _rng(preset, 20 + stream))
        with open(out / f"{name}.npz", "wb") as fh:
            np.savez_compressed(fh, **{f.name: getattr(co, f.name) for f in dataclasses.fields(co)
                                       if getattr(co, f.name) is not None})
        counts[name] = n
    if preset.joint is not None:
        jt = preset.joint
        for stream, (name, n) in enumerate(zip(("joint_train", "joint_val", "joint_test"), jt.pairs)):
            ev = simulate_joint(det, preset.timing, n, _rng(preset, 30 + stream), device=device,
                                source_range_mm=jt.train_source_range_mm if name == "joint_train" else None)
            ev.save(out / f"{name}.npz")
            counts[name] = n
    record = {"name": f"detector-{preset.name}", "preset": preset.to_dict(), "counts": counts,
              "petspect": petspect.__version__,
              "description": "Monolithic-detector calibration data (pencil-beam grid, offset test grid, fan "
                             "beams) and coincidence waveforms; see petspect.detector.pipeline."}
    atomic_write_text(out / "dataset.json", json.dumps(record, indent=2, default=json_default))
    return out


def load_data(data_dir: str | os.PathLike) -> dict:
    """Read a folder written by :func:`simulate` into a dict of EventData / Coincidences and ``record``."""
    d = Path(data_dir)
    if not (d / "dataset.json").exists():
        raise DataNotFoundError("not a detector data folder (dataset.json missing)", path=d)
    data: dict = {"record": json.loads((d / "dataset.json").read_text())}
    for name in ("train", "test", "fan"):
        data[name] = load_events(d / f"{name}.npz")[0]
    for name in ("timing_train", "timing_val", "timing_test"):
        with np.load(d / f"{name}.npz") as z:
            data[name] = Coincidences(**{f.name: z[f.name] if f.name in z.files else None
                                         for f in dataclasses.fields(Coincidences)})
    for name in ("joint_train", "joint_val", "joint_test"):  # written only by presets with a joint study
        if (d / f"{name}.npz").exists():
            data[name] = JointEvents.load(d / f"{name}.npz")
    return data


def train(preset: Preset, data_dir: str | os.PathLike, out_dir: str | os.PathLike, *, device="cpu",
          overwrite: bool = False) -> Path:
    """Train the neural positioners (pencil beams: mlp, cnn; fan beams: cnn_fan) and the timing CNN.

    Each model is written as a folder ``out_dir/<name>`` (weights.pt, config.json, model_card.md).
    """
    from petspect.detector.neural import NeuralPositioner

    out = claim_output_folder(out_dir, overwrite=overwrite, inputs=[data_dir], kind="detector-models")
    data = load_data(data_dir)
    det, pitch = preset.detector, preset.detector.sipm.pitch_mm
    record = {"data_dir": str(Path(data_dir).resolve()), "dataset": data["record"].get("name"), "preset": preset.name}
    sets = {"mlp": ("mlp", photopeak(data["train"], pitch)), "cnn": ("cnn", photopeak(data["train"], pitch)),
            "cnn_fan": ("cnn", photopeak(data["fan"], pitch))}
    for name, (kind, ev) in sets.items():
        model = NeuralPositioner(kind, det.sipm, det.thickness_mm, settings=preset.position_training, device=device)
        model.fit(ev.signals, ev.position_mm, ev.label_mask)
        model.save(out / name, {**record, "events": int(len(ev)), "calibration": "fan beams" if "fan" in name
                                else "pencil-beam grid", "photopeak_window_kev": PHOTOPEAK_WINDOW_KEV})
    _train_timing(preset, data, record, out, device)
    if preset.joint is not None:
        _train_joint(preset, data, record, out, device)
    return out


def _train_joint(preset: Preset, data: dict, record: dict, out: Path, device, *, reuse_separate: bool = False) -> None:
    """Separate models and the joint network (loss weights chosen on the validation pairs) on the joint events.

    ``reuse_separate``: load the separate models already in ``out`` (seeded training would rebuild the same ones).
    """
    from petspect.detector.joint_study import SeparateModels, tune_joint

    if "joint_train" not in data:
        raise DataNotFoundError("the data folder has no joint events (simulated by a preset with a joint study)",
                                path=record["data_dir"])
    jt, det = preset.joint, preset.detector
    rec = {**record, "events": "joint_train", "pairs": len(data["joint_train"])}
    if reuse_separate and (out / "joint_separate_energy.json").exists():
        sep = SeparateModels.load(out, det, device=device)
    else:
        sep = SeparateModels.train(det, preset.timing, data["joint_train"], position_settings=preset.position_training,
                                   timing_settings=preset.timing_training, timing_window=preset.timing_window,
                                   fractions=preset.cfd_fractions, device=device)
        sep.save(out, rec)
    best, tuning, val_fig = tune_joint(jt, det, preset.timing, data["joint_train"], data["joint_val"], sep,
                                       fractions=preset.cfd_fractions, device=device)
    best.save(out / "joint", {**rec, "tuning": tuning.to_dict()})
    atomic_write_text(out / "joint_tuning.json", json.dumps({"tuning": tuning.to_dict(), "validation": val_fig},
                                                            indent=1, default=json_default))


def _train_timing(preset: Preset, data: dict, record: dict, out: Path, device) -> None:
    from petspect.detector.timing import CNNTimer

    timer = CNNTimer(preset.timing, settings=preset.timing_training, device=device, arch=preset.timing_arch,
                     window=preset.timing_window, fractions=preset.cfd_fractions)
    timer.fit(data["timing_train"])
    labels = "source positions" + ("" if timer.arch == "aligned" else " + digital whole-sample shifts")
    timer.save(out / "timing_cnn", {**record, "events": len(data["timing_train"]), "arch": timer.arch, "labels": labels,
                                    "train_source_range_mm": preset.timing_train_source_range_mm})


def train_timing(preset: Preset, data_dir: str | os.PathLike, models_dir: str | os.PathLike, *, device="cpu") -> Path:
    """Retrain only the timing CNN of an existing models folder (``models_dir/timing_cnn`` is replaced)."""
    data = load_data(data_dir)
    out = Path(models_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"data_dir": str(Path(data_dir).resolve()), "dataset": data["record"].get("name"), "preset": preset.name}
    _train_timing(preset, data, record, out, device)
    return out


def train_joint(preset: Preset, data_dir: str | os.PathLike, models_dir: str | os.PathLike, *, device="cpu") -> Path:
    """Retrain only the joint study's models (separate and joint) of an existing models folder (replaced)."""
    if preset.joint is None:
        raise ConfigError(f"preset {preset.name!r} has no joint study")
    data = load_data(data_dir)
    out = Path(models_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"data_dir": str(Path(data_dir).resolve()), "dataset": data["record"].get("name"), "preset": preset.name}
    _train_joint(preset, data, record, out, device, reuse_separate=True)
    return out


def fit_baselines(preset: Preset, train_ev: EventData, fan_ev: EventData) -> dict:
    """Fit Anger logic, kNN and gradient tree boosting (pencil beams) and GBT on fan beams."""
    from petspect.detector.positioning import AngerLogic, GradientTreeBoosting, NearestNeighbours

    det = preset.detector
    ests = {"anger": AngerLogic(det.sipm), "knn": NearestNeighbours(k=preset.knn_k),
            "gbt": GradientTreeBoosting(max_iter=preset.gbt_iterations, seed=preset.seed)}
    for est in ests.values():
        est.fit(train_ev.signals, train_ev.position_mm, train_ev.label_mask)
    fan = GradientTreeBoosting(max_iter=preset.gbt_iterations, seed=preset.seed)
    ests["gbt_fan"] = fan.fit(fan_ev.signals, fan_ev.position_mm, fan_ev.label_mask)
    return ests


def evaluate(preset: Preset, out_dir: str | os.PathLike, *, data_dir=None, models_dir=None, device="cpu",
             overwrite: bool = False) -> dict:
    """Evaluate every method on the test data; simulate and train first when not given.

    Writes ``metrics.json`` (method -> metric -> value) and ``report.html`` into ``out_dir`` and
    returns the metrics.
    """
    from petspect.detector.neural import NeuralPositioner
    from petspect.detector.report import write_report
    from petspect.detector.timing import CNNTimer, evaluate_timing
    from petspect.metrics.distribution import fwhm_improvement_ci
    from petspect.detector.timing_limits import photon_level_ctr

    inputs = [p for p in (data_dir, models_dir) if p is not None]
    out = claim_output_folder(out_dir, overwrite=overwrite, inputs=inputs, kind="detector-evaluate")
    if data_dir is None:
        data_dir = simulate(preset, out / "data", device=device, overwrite=overwrite)
    if models_dir is None:
        models_dir = train(preset, data_dir, out / "models", device=device, overwrite=overwrite)
    data = load_data(data_dir)
    det, pitch = preset.detector, preset.detector.sipm.pitch_mm
    train_ev, fan_ev = photopeak(data["train"], pitch), photopeak(data["fan"], pitch)
    test_all = data["test"]
    test = photopeak(test_all, pitch)
    # evaluation protocol (h4): the test data's reading is recorded in a ledger beside it (test_scored)
    from petspect.evaluation import record_test_scoring
    scoring = record_test_scoring(data_dir, {"study": "detector", "preset": preset.name,
                                             "models_dir": str(Path(models_dir).resolve())},
                                  f"detector {preset.name}: positioning, energy and timing on the test data")
    ests = fit_baselines(preset, train_ev, fan_ev)
    for name in ("mlp", "cnn", "cnn_fan"):
        ests[name] = NeuralPositioner.load(Path(models_dir) / name, device=device)
    metrics: dict = {}
    preds = {}
    for name, est in ests.items():
        preds[name] = est.predict(test.signals)
        metrics[name] = positioning_metrics(preds[name], test.position_mm, size_mm=det.size_mm, edge_mm=preset.edge_mm)
    energy = calibrate_energy(test_all, pitch)
    centre = np.all(np.abs(test_all.beam_mm) < pitch, axis=1)
    energy_centre = calibrate_energy(test_all.subset(centre), pitch)
    metrics["energy"] = {"energy_resolution_pct": energy_centre["energy_resolution_pct"],
                         "energy_resolution_all_pct": energy["energy_resolution_pct"],
                         "photopeak_signal_centre": energy_centre["photopeak_signal"],
                         "note": "centre: beams within one SiPM pitch of the centre, one gain; all: whole face, "
                                 "gain calibrated per pitch-sized region; Gaussian fit of the photopeak"}
    timer = CNNTimer.load(Path(models_dir) / "timing_cnn", device=device)
    timing = evaluate_timing(data["timing_val"], data["timing_test"], preset.timing, timer,
                             thresholds_spe=preset.led_thresholds_spe, fractions=preset.cfd_fractions)
    for name in ("led", "cfd"):
        metrics[name] = timing[name]
    metrics["cnn_timing"] = timing["cnn"]
    metrics["cnn_timing_single_window"] = timing["cnn_single_window"]
    metrics["timing_val"] = timing["val"]
    est, true = timing["estimates"], timing["true_dt_ps"]
    metrics["cnn_timing_improvement_ci"] = fwhm_improvement_ci(est["cfd"] - true, est["cnn"] - true, seed=preset.seed)
    metrics["timing_photon_limits"] = {**photon_level_ctr(preset.timing, min(5000, max(200, len(data["timing_test"]))),
                                                          _rng(preset, 40)), "seed": [preset.seed, 40]}
    if preset.joint is not None and "joint_test" in data:
        metrics.update(_evaluate_joint(preset, data, Path(models_dir), device))
    if preset.published_ctr_ps:
        metrics["published_ctr_ps"] = dict(preset.published_ctr_ps)
    if preset.published_setup:
        metrics["published_setup"] = [p.to_dict() for p in preset.published_setup]
    metrics["summary"] = _summary(metrics)
    metrics["provenance"] = {"preset": preset.name, "data_dir": str(Path(data_dir).resolve()),
                             "models_dir": str(Path(models_dir).resolve()), "petspect": petspect.__version__,
                             "test_events_photopeak": int(len(test)), "test_scored": scoring.test_scored,
                             "test_scoring": scoring.to_dict(),
                             "width_method": "plain keys: interpolation; *_gauss: Gaussian fit"}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=json_default))
    write_report(out / "report.html", preset, metrics, test, preds, energy["energy_kev"], timing)
    return metrics


def _evaluate_joint(preset: Preset, data: dict, models_dir: Path, device) -> dict:
    """``joint`` and ``joint_separate`` figures on the joint test pairs, and their comparison."""
    from petspect.detector.joint import JointModel
    from petspect.detector.joint_study import SeparateModels, compare, judge

    joint = JointModel.load(models_dir / "joint", device=device)
    sep = SeparateModels.load(models_dir, preset.detector, device=device)
    c = compare(joint, sep, data["joint_val"], data["joint_test"], preset.detector, preset.timing,
                thresholds_spe=preset.led_thresholds_spe, fractions=preset.cfd_fractions, edge_mm=preset.edge_mm,
                seed=preset.seed)
    tuning = json.loads((models_dir / "joint_tuning.json").read_text()) if (models_dir / "joint_tuning.json").exists() else {}
    return {"joint": c["joint"], "joint_separate": c["separate"],
            "joint_comparison": {"ratios_joint_over_separate": c["ratios"], "criteria": judge(c),
                                 "led": c["led"], "cfd": c["cfd"], "ctr_improvement_ci": c["ctr_improvement_ci"],
                                 "selection": c["selection"], "loss_weights": tuning.get("tuning", {}).get("best"),
                                 "tuning": tuning,
                                 "separate_methods": "positioner: residual CNN on the light map; energy: summed signal "
                                                     "with per-pitch-region gains; timing: aligned timing CNN"}}


def _summary(metrics: dict) -> dict:
    anger = metrics["anger"]["xy_fwhm_mm"]
    limits = metrics["timing_photon_limits"]
    ceiling = min(limits["best_linear_ps"], limits["max_likelihood_ps"])
    best_dl = min(("mlp", "cnn"), key=lambda k: metrics[k]["xy_fwhm_mm"])
    cfd, cnn_t = metrics["cfd"]["ctr_fwhm_ps"], metrics["cnn_timing"]["ctr_fwhm_ps"]
    joint = {}
    if "joint_comparison" in metrics:
        joint = {"joint_over_separate": metrics["joint_comparison"]["ratios_joint_over_separate"],
                 "joint_criteria": {k: v for k, v in metrics["joint_comparison"]["criteria"].items() if k != "change_pct"}}
    return {**joint, "best_dl_method": best_dl,
            "dl_over_anger_fwhm_ratio": metrics[best_dl]["xy_fwhm_mm"] / anger,
            "cnn_over_anger_fwhm_ratio": metrics["cnn"]["xy_fwhm_mm"] / anger,
            "dl_edge_bias_mm": metrics[best_dl]["edge_bias_mm"],
            "positioning_target_met": bool(metrics[best_dl]["xy_fwhm_mm"] <= 0.6 * anger
                                           and abs(metrics[best_dl]["edge_bias_mm"]) < 0.5),
            "cnn_ctr_improvement_over_cfd_pct": 100.0 * (1.0 - cnn_t / cfd),
            "cnn_ctr_improvement_over_cfd_val_pct": 100.0 * (1.0 - metrics["timing_val"]["cnn"]["ctr_fwhm_ps"]
                                                             / metrics["timing_val"]["cfd"]["ctr_fwhm_ps"]),
            "cnn_ctr_improvement_over_cfd_ci95_pct": [metrics["cnn_timing_improvement_ci"]["ci_low_pct"],
                                                      metrics["cnn_timing_improvement_ci"]["ci_high_pct"]],
            "cnn_timing_slope": metrics["cnn_timing"]["slope"],
            # the most any waveform method could gain over this CFD: photon-level ceiling (exact photon times)
            "photon_ceiling_ps": ceiling,
            "cfd_headroom_to_photon_ceiling_pct": 100.0 * (1.0 - ceiling / cfd),
            "timing_target_met": bool(cnn_t <= 0.85 * cfd)}
