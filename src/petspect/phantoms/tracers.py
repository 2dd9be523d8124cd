"""Tracer uptake models: per-organ SUV with inter-subject variability, SUV <-> Bq/mL, and organ TACs.

Every tracer holds, for each tissue, a typical SUV at the tracer's usual scan time, the literature
range it is drawn in, a log-normal inter-subject coefficient of variation, and an uptake/washout
half-time pair for time-activity curves. The numbers are typical adult values read from the sources
listed in each model's ``sources`` (they vary with scanner, reconstruction and population, so they are
marked *approx*; tests check the model against these stated ranges, not against a single study).

Conventions
-----------
* SUV is body-weight SUV: ``SUV = C [Bq/mL] * weight [g] / A(t)`` where ``A(t)`` is the injected
  activity decayed to the time of the image (QIBA; 1 g of tissue ~ 1 mL).
* Concentrations are Bq/mL at the scan time, **not** decay corrected to injection.
* Times are in s; half-lives come from :mod:`petspect.nuclides` (radioactivedecay underneath).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from petspect.errors import InputError
from petspect.units import BQ_PER_MBQ, S_PER_H, S_PER_MIN

INF = math.inf


@dataclass(frozen=True)
class OrganUptake:
    """Uptake of one tracer in one tissue.

    Attributes
    ----------
    suv : float
        Typical (population mean) SUVbw at the tracer's reference scan time.
    suv_range : (float, float)
        Literature range of organ SUVmean; sampled values are kept inside it.
    cv : float
        Inter-subject coefficient of variation of a log-normal distribution.
    uptake_half_time_s : float
        Half-time of the uptake phase ``1 - exp(-ln2 t / T_up)`` (s); 0 = instantaneous.
    washout_half_time_s : float
        Biological washout half-time ``exp(-ln2 t / T_bio)`` (s); ``inf`` = trapped tracer.
    """

    suv: float
    suv_range: tuple[float, float]
    cv: float = 0.2
    uptake_half_time_s: float = 10.0 * S_PER_MIN
    washout_half_time_s: float = INF


@dataclass(frozen=True)
class TracerModel:
    """A radiopharmaceutical: nuclide, usual protocol and per-tissue uptake."""

    name: str
    nuclide: str
    modality: str  # "PT" or "NM"
    scan_time_s: float  # usual time from injection to the image (s)
    injected_mbq: float  # typical adult injected activity (MBq) for 75 kg
    organs: dict[str, OrganUptake] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    mbq_per_kg: float | None = None  # weight-based dosing when the protocol uses it

    def injected_mbq_for(self, weight_kg: float) -> float:
        """Protocol injected activity (MBq) for a patient of ``weight_kg``."""
        return self.mbq_per_kg * weight_kg if self.mbq_per_kg else self.injected_mbq


def _u(suv, lo, hi, cv=0.2, up_min=10.0, wash_h=INF) -> OrganUptake:
    return OrganUptake(suv, (lo, hi), cv, up_min * S_PER_MIN, wash_h * S_PER_H)


# --- FDG, 60 min p.i. (approx SUVmean): Paquet N et al, J Nucl Med 2004;45:784-788 (liver ~2.2-2.6,
# mediastinal blood pool ~1.6-2.0); Zincirkeser S et al, Mol Imaging Radionucl Ther 2007;16:1-4 (normal
# organ SUVs); Kostakoglu L et al, Semin Nucl Med 2004 (physiological variants: myocardium, bowel,
# urinary tract); PERCIST, Wahl RL et al, J Nucl Med 2009;50:122S (liver reference); brain cortex
# SUV 6-10 (Berti V et al, Semin Nucl Med 2014).
_FDG = {
    "soft_tissue": _u(0.7, 0.5, 1.0, 0.2), "fat": _u(0.35, 0.2, 0.5, 0.25), "skin": _u(0.8, 0.5, 1.2),
    "lung": _u(0.5, 0.3, 0.8, 0.2), "airway": _u(0.0, 0.0, 0.0, 0.0),
    "myocardium": _u(4.0, 1.0, 15.0, 0.8, 15.0), "blood_pool": _u(1.8, 1.3, 2.4, 0.15, 0.5, 2.0),
    "aorta": _u(1.8, 1.3, 2.4, 0.15, 0.5, 2.0), "liver": _u(2.3, 1.8, 3.0, 0.15, 5.0, 6.0),
    "spleen": _u(1.9, 1.4, 2.6, 0.15), "kidney_cortex": _u(2.8, 1.8, 4.0, 0.25, 5.0, 3.0),
    "kidney_medulla": _u(6.0, 2.5, 15.0, 0.5, 10.0), "stomach": _u(1.8, 1.2, 3.0, 0.3),
    "bowel": _u(1.6, 1.0, 3.0, 0.35), "bladder": _u(15.0, 5.0, 40.0, 0.6, 30.0),
    "spine": _u(1.6, 1.0, 2.5, 0.2), "ribs": _u(1.0, 0.6, 1.6), "pelvis": _u(1.4, 0.9, 2.2),
    "long_bones": _u(0.8, 0.5, 1.3), "skull": _u(1.0, 0.6, 1.6), "spinal_cord": _u(1.5, 1.0, 2.2),
    "brain": _u(7.0, 5.0, 10.0, 0.2, 8.0), "grey_matter": _u(8.5, 6.0, 12.0, 0.2, 8.0),
    "white_matter": _u(2.2, 1.5, 3.0, 0.2, 8.0), "csf": _u(0.3, 0.1, 0.5, 0.3),
    "caudate": _u(8.0, 6.0, 11.0, 0.2, 8.0), "putamen": _u(8.5, 6.0, 12.0, 0.2, 8.0),
    "salivary_glands": _u(1.8, 1.2, 3.0, 0.3), "thyroid": _u(1.5, 1.0, 2.5, 0.3),
    "prostate": _u(1.6, 1.0, 2.5, 0.25),
}

# --- Ga-68 PSMA-11, 60 min p.i. (approx SUVmean): Prasad V et al, EJNMMI Res 2016 (biodistribution
# of 68Ga-PSMA-HBED-CC: kidneys ~ 20-40, parotid/submandibular ~ 10-15, liver ~ 4-6, spleen ~ 4-7);
# Demirci E et al, Nucl Med Commun 2018 (normal organ SUVs).
_PSMA = {
    "soft_tissue": _u(0.6, 0.4, 0.9), "fat": _u(0.25, 0.1, 0.4), "skin": _u(0.6, 0.3, 1.0),
    "lung": _u(0.5, 0.3, 0.8), "airway": _u(0.0, 0.0, 0.0, 0.0), "myocardium": _u(1.2, 0.8, 2.0),
    "blood_pool": _u(1.5, 1.0, 2.2, 0.2, 0.5, 1.5), "aorta": _u(1.5, 1.0, 2.2, 0.2, 0.5, 1.5),
    "liver": _u(5.0, 3.5, 7.5, 0.25), "spleen": _u(5.5, 3.0, 9.0, 0.3),
    "kidney_cortex": _u(30.0, 15.0, 45.0, 0.3, 20.0), "kidney_medulla": _u(15.0, 6.0, 30.0, 0.4),
    "stomach": _u(2.0, 1.0, 3.5, 0.3), "bowel": _u(5.0, 2.0, 10.0, 0.4),
    "bladder": _u(25.0, 5.0, 80.0, 0.8, 30.0), "spine": _u(1.0, 0.6, 1.6), "ribs": _u(0.8, 0.5, 1.3),
    "pelvis": _u(0.9, 0.5, 1.5), "long_bones": _u(0.6, 0.4, 1.0), "skull": _u(0.8, 0.5, 1.3),
    "spinal_cord": _u(0.4, 0.2, 0.7), "brain": _u(0.2, 0.1, 0.4), "salivary_glands": _u(12.0, 7.0, 18.0, 0.3),
    "thyroid": _u(1.5, 0.8, 2.5), "prostate": _u(3.0, 1.5, 5.0, 0.3),
}

# --- Ga-68 DOTATATE, 60 min p.i. (approx SUVmean): Boy C et al, Nuklearmedizin 2011 (normal SSTR uptake:
# spleen highest ~ 15-30, kidneys ~ 10-15, liver ~ 6-10); Kuyumcu S et al, Nucl Med Commun 2013.
_DOTATATE = {
    "soft_tissue": _u(0.8, 0.5, 1.2), "fat": _u(0.3, 0.1, 0.5), "skin": _u(0.8, 0.4, 1.2),
    "lung": _u(0.6, 0.3, 1.0), "airway": _u(0.0, 0.0, 0.0, 0.0), "myocardium": _u(1.5, 0.8, 2.5),
    "blood_pool": _u(1.3, 0.8, 2.0, 0.2, 0.5, 1.5), "aorta": _u(1.3, 0.8, 2.0, 0.2, 0.5, 1.5),
    "liver": _u(8.0, 5.0, 12.0, 0.25), "spleen": _u(22.0, 12.0, 35.0, 0.3),
    "kidney_cortex": _u(14.0, 8.0, 22.0, 0.3), "kidney_medulla": _u(8.0, 4.0, 15.0, 0.4),
    "stomach": _u(3.5, 1.5, 6.0, 0.35), "bowel": _u(3.0, 1.5, 5.0, 0.35),
    "bladder": _u(15.0, 3.0, 50.0, 0.8, 30.0), "spine": _u(1.8, 1.0, 3.0), "ribs": _u(1.2, 0.7, 2.0),
    "pelvis": _u(1.5, 0.8, 2.5), "long_bones": _u(0.8, 0.4, 1.3), "skull": _u(1.2, 0.6, 2.0),
    "spinal_cord": _u(0.5, 0.2, 0.8), "brain": _u(0.3, 0.1, 0.5), "salivary_glands": _u(2.5, 1.2, 4.0),
    "thyroid": _u(4.0, 2.0, 7.0, 0.3), "prostate": _u(2.0, 1.0, 3.5),
}

# --- Tc-99m MDP, 3 h p.i. (approx SUVmean of quantitative SPECT/CT): Kuji I et al, Ann Nucl Med
# 2017;31:136-144 (normal vertebrae SUVmax ~ 5-7, SUVmean ~ 4); Cachovan M et al, EJNMMI Phys 2013.
_MDP = {
    "soft_tissue": _u(0.4, 0.2, 0.7), "fat": _u(0.2, 0.1, 0.4), "skin": _u(0.4, 0.2, 0.7),
    "lung": _u(0.2, 0.1, 0.4), "airway": _u(0.0, 0.0, 0.0, 0.0), "myocardium": _u(0.4, 0.2, 0.7),
    "blood_pool": _u(0.4, 0.2, 0.7, 0.3, 0.5, 1.0), "aorta": _u(0.4, 0.2, 0.7, 0.3, 0.5, 1.0),
    "liver": _u(0.4, 0.2, 0.7), "spleen": _u(0.4, 0.2, 0.7), "kidney_cortex": _u(2.0, 1.0, 4.0, 0.3),
    "kidney_medulla": _u(4.0, 1.5, 10.0, 0.5), "stomach": _u(0.4, 0.2, 0.7), "bowel": _u(0.4, 0.2, 0.7),
    "bladder": _u(30.0, 5.0, 100.0, 0.8, 60.0), "spine": _u(4.5, 3.0, 7.0, 0.2, 20.0),
    "ribs": _u(3.0, 2.0, 5.0, 0.2, 20.0), "pelvis": _u(4.0, 2.5, 6.5, 0.2, 20.0),
    "long_bones": _u(3.0, 1.8, 5.0, 0.2, 20.0), "skull": _u(3.5, 2.0, 6.0, 0.2, 20.0),
    "spinal_cord": _u(0.3, 0.1, 0.5), "brain": _u(0.1, 0.05, 0.3), "salivary_glands": _u(0.4, 0.2, 0.8),
    "thyroid": _u(0.5, 0.2, 1.0), "prostate": _u(0.4, 0.2, 0.7),
}

# --- Tc-99m sestamibi, rest, 60 min p.i.: myocardial uptake ~1.2 %ID (Wackers FJ et al, J Nucl Med
# 1989;30:301-311) ~ SUV 4-8 for ~150 mL myocardium in 75 kg; hepatobiliary and bowel activity high
# (same source); values approx.
_MIBI = {
    "soft_tissue": _u(0.6, 0.3, 1.0), "fat": _u(0.2, 0.1, 0.4), "skin": _u(0.4, 0.2, 0.8),
    "lung": _u(0.4, 0.2, 0.7), "airway": _u(0.0, 0.0, 0.0, 0.0), "myocardium": _u(6.0, 4.0, 9.0, 0.2, 5.0),
    "blood_pool": _u(0.3, 0.1, 0.6, 0.3, 0.5, 0.5), "aorta": _u(0.3, 0.1, 0.6, 0.3, 0.5, 0.5),
    "liver": _u(4.0, 2.0, 7.0, 0.3, 5.0, 1.5), "spleen": _u(2.0, 1.0, 3.5), "kidney_cortex": _u(6.0, 3.0, 10.0),
    "kidney_medulla": _u(4.0, 2.0, 8.0), "stomach": _u(2.0, 1.0, 4.0), "bowel": _u(5.0, 2.0, 12.0, 0.5),
    "bladder": _u(5.0, 1.0, 15.0, 0.6), "spine": _u(0.8, 0.4, 1.3), "ribs": _u(0.5, 0.3, 0.9),
    "pelvis": _u(0.7, 0.4, 1.2), "long_bones": _u(0.4, 0.2, 0.8), "skull": _u(0.5, 0.3, 0.9),
    "spinal_cord": _u(0.3, 0.1, 0.6), "brain": _u(0.1, 0.05, 0.3), "salivary_glands": _u(3.0, 1.5, 5.0),
    "thyroid": _u(3.0, 1.5, 5.0), "prostate": _u(0.6, 0.3, 1.0),
}

# --- I-123 ioflupane (DaTscan), 3-4 h p.i.: striatal specific binding ratio (striatum/occipital - 1)
# ~ 2.5-4 in normal adults (Varrone A et al, EJNMMI 2013;40:213-227, EANM normal database); body
# distribution approx (Booij J et al, J Nucl Med 1998): liver and lungs early.
_DAT = {
    "soft_tissue": _u(0.5, 0.3, 0.8), "fat": _u(0.2, 0.1, 0.4), "skin": _u(0.4, 0.2, 0.7),
    "lung": _u(1.5, 0.7, 2.5, 0.3), "airway": _u(0.0, 0.0, 0.0, 0.0), "myocardium": _u(0.8, 0.4, 1.4),
    "blood_pool": _u(0.4, 0.2, 0.7, 0.3, 0.5, 2.0), "aorta": _u(0.4, 0.2, 0.7, 0.3, 0.5, 2.0),
    "liver": _u(3.0, 1.5, 5.0, 0.3), "spleen": _u(1.0, 0.5, 1.8), "kidney_cortex": _u(1.5, 0.7, 2.5),
    "kidney_medulla": _u(2.0, 0.8, 4.0), "stomach": _u(1.0, 0.5, 2.0), "bowel": _u(1.2, 0.5, 2.5),
    "bladder": _u(6.0, 1.0, 20.0, 0.6), "spine": _u(0.6, 0.3, 1.0), "ribs": _u(0.4, 0.2, 0.7),
    "pelvis": _u(0.5, 0.3, 0.9), "long_bones": _u(0.4, 0.2, 0.7), "skull": _u(0.5, 0.3, 0.9),
    "spinal_cord": _u(0.5, 0.3, 0.8), "brain": _u(1.0, 0.7, 1.5), "grey_matter": _u(1.0, 0.7, 1.4),
    "white_matter": _u(0.8, 0.5, 1.1), "csf": _u(0.2, 0.1, 0.4), "caudate": _u(4.0, 2.8, 5.5, 0.15, 60.0),
    "putamen": _u(4.0, 2.8, 5.5, 0.15, 60.0), "salivary_glands": _u(1.5, 0.8, 2.5),
    "thyroid": _u(1.0, 0.5, 2.0), "prostate": _u(0.5, 0.3, 0.8),
}

# --- F-18 florbetapir (amyloid), 50 min p.i.: amyloid-negative cortex SUVR ~1.0-1.1 vs cerebellum with
# white matter higher (~1.5-2); positive cortex SUVR > 1.1-1.5 (Clark CM et al, JAMA 2011;305:275-283;
# Joshi AD et al, J Nucl Med 2012;53:378-384). SUVs approx (cerebellar grey SUV ~1.2).
_AMYLOID = {
    "grey_matter": _u(1.3, 1.0, 1.6, 0.15), "white_matter": _u(2.1, 1.6, 2.8, 0.15), "csf": _u(0.3, 0.1, 0.5),
    "caudate": _u(1.5, 1.1, 2.0), "putamen": _u(1.6, 1.1, 2.1), "soft_tissue": _u(0.6, 0.3, 0.9),
    "skull": _u(0.6, 0.3, 1.0), "fat": _u(0.3, 0.1, 0.5), "skin": _u(0.5, 0.2, 0.8),
    "brain": _u(1.6, 1.2, 2.2),
}

# --- Lu-177 therapies, SPECT at 24 h p.i. (approx): PSMA-617 kidneys ~0.4-0.8 Gy/GBq, salivary glands
# ~0.5-1.4 Gy/GBq, effective half-lives kidneys ~ 30-40 h (Delker A et al, EJNMMI 2016;43:42-51;
# Kratochwil C et al, J Nucl Med 2016;57:1170-1176). DOTATATE kidney effective half-life ~ 50 h, spleen
# ~ 70 h (Sandstrom M et al, J Nucl Med 2013;54:33-41). Uptake half-times ~ 1-3 h.
_LU_PSMA = {k: v for k, v in _PSMA.items()} | {
    "kidney_cortex": _u(5.0, 2.5, 9.0, 0.3, 60.0, 60.0), "kidney_medulla": _u(2.5, 1.0, 5.0, 0.4, 60.0, 60.0),
    "salivary_glands": _u(4.0, 2.0, 7.0, 0.35, 90.0, 45.0), "liver": _u(0.8, 0.4, 1.5, 0.3, 60.0, 80.0),
    "spleen": _u(0.8, 0.3, 1.5, 0.3, 60.0, 80.0), "blood_pool": _u(0.05, 0.02, 0.1, 0.3, 1.0, 4.0),
    "aorta": _u(0.05, 0.02, 0.1, 0.3, 1.0, 4.0), "bladder": _u(0.5, 0.1, 2.0, 0.6),
    "bowel": _u(1.0, 0.3, 2.5, 0.4, 60.0, 30.0), "prostate": _u(1.0, 0.5, 2.0),
}
_LU_DOTATATE = {k: v for k, v in _DOTATATE.items()} | {
    "kidney_cortex": _u(4.0, 2.0, 7.0, 0.3, 60.0, 60.0), "kidney_medulla": _u(2.0, 1.0, 4.0, 0.4, 60.0, 60.0),
    "spleen": _u(6.0, 3.0, 10.0, 0.35, 120.0, 100.0), "liver": _u(2.0, 1.0, 3.5, 0.3, 120.0, 100.0),
    "blood_pool": _u(0.05, 0.02, 0.1, 0.3, 1.0, 4.0), "aorta": _u(0.05, 0.02, 0.1, 0.3, 1.0, 4.0),
    "bladder": _u(0.5, 0.1, 2.0, 0.6),
}

TRACERS: dict[str, TracerModel] = {
    "fdg": TracerModel("fdg", "F-18", "PT", 60 * S_PER_MIN, 260.0, _FDG,
                       ("Paquet 2004 JNM", "Zincirkeser 2007 MIRT", "Wahl 2009 JNM (PERCIST)"), 3.5),
    "psma": TracerModel("psma", "Ga-68", "PT", 60 * S_PER_MIN, 150.0, _PSMA,
                        ("Prasad 2016 EJNMMI Res", "Demirci 2018 NMC"), 2.0),
    "dotatate": TracerModel("dotatate", "Ga-68", "PT", 60 * S_PER_MIN, 150.0, _DOTATATE,
                            ("Boy 2011 Nuklearmedizin", "Kuyumcu 2013 NMC")),
    "mdp": TracerModel("mdp", "Tc-99m", "NM", 3 * S_PER_H, 700.0, _MDP, ("Kuji 2017 Ann Nucl Med",)),
    "sestamibi": TracerModel("sestamibi", "Tc-99m", "NM", 60 * S_PER_MIN, 400.0, _MIBI, ("Wackers 1989 JNM",)),
    "dat": TracerModel("dat", "I-123", "NM", 4 * S_PER_H, 185.0, _DAT, ("Varrone 2013 EJNMMI", "Booij 1998 JNM")),
    "amyloid": TracerModel("amyloid", "F-18", "PT", 50 * S_PER_MIN, 370.0, _AMYLOID,
                           ("Clark 2011 JAMA", "Joshi 2012 JNM")),
    "lu177-psma": TracerModel("lu177-psma", "Lu-177", "NM", 24 * S_PER_H, 7400.0, _LU_PSMA,
                              ("Delker 2016 EJNMMI", "Kratochwil 2016 JNM")),
    "lu177-dotatate": TracerModel("lu177-dotatate", "Lu-177", "NM", 24 * S_PER_H, 7400.0, _LU_DOTATATE,
                                  ("Sandstrom 2013 JNM",)),
}


def get_tracer(name: str) -> TracerModel:
    """The :class:`TracerModel` registered as ``name`` (case-insensitive)."""
    try:
        return TRACERS[name.lower()]
    except (KeyError, AttributeError):
        raise InputError(f"unknown tracer {name!r}; choose one of {sorted(TRACERS)}") from None


def nuclide_of_tracer(name: str) -> str:
    """The radionuclide that labels tracer ``name`` ("dat" -> "I-123"): the one tracer -> nuclide table."""
    return get_tracer(name).nuclide


def pet_nuclide(nuclide: str, tracer: str | None = None) -> str:
    """``nuclide`` (canonical name) when it emits positrons; else a :class:`~petspect.errors.InputError`
    saying that the tracer belongs on a SPECT system (e.g. "dat" is labelled with I-123)."""
    from petspect.nuclides import get_nuclide

    n = get_nuclide(nuclide)
    if not n.is_positron_emitter:
        what = f"tracer {tracer!r} is labelled with {n.name}" if tracer else f"{n.name}"
        raise InputError(f"{what}, which emits no positrons: simulate it on a SPECT system, not a PET scanner")
    return n.name


def half_life_s(nuclide: str) -> float:
    """Physical half-life (s) of ``nuclide`` ("F-18", "Tc-99m", ...), from :mod:`petspect.nuclides`."""
    from petspect.nuclides import half_life_s as _half_life_s

    return float(_half_life_s(nuclide))


def decay_factor(nuclide: str, elapsed_s: float | np.ndarray) -> float | np.ndarray:
    """Fraction ``exp(-ln2 t / T_half)`` of activity left after ``elapsed_s`` seconds."""
    return np.exp(-math.log(2.0) * np.asarray(elapsed_s, dtype=np.float64) / half_life_s(nuclide))


def suv_to_bq_per_ml(suv, *, injected_bq: float, weight_kg: float, elapsed_s: float, nuclide: str):
    """Activity concentration (Bq/mL at the scan time) of a body-weight SUV.

    ``C = SUV * A_inj * exp(-lambda t) / (1000 weight_kg)`` with the injected activity decayed over
    ``elapsed_s`` (QIBA SUVbw; tissue density 1 g/mL).
    """
    _check_positive(injected_bq=injected_bq, weight_kg=weight_kg)
    return suv * injected_bq * decay_factor(nuclide, elapsed_s) / (weight_kg * 1000.0)


def bq_per_ml_to_suv(bq_per_ml, *, injected_bq: float, weight_kg: float, elapsed_s: float, nuclide: str):
    """Body-weight SUV of a concentration (Bq/mL at the scan time); inverse of :func:`suv_to_bq_per_ml`."""
    _check_positive(injected_bq=injected_bq, weight_kg=weight_kg)
    return bq_per_ml * weight_kg * 1000.0 / (injected_bq * decay_factor(nuclide, elapsed_s))


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (np.isfinite(v) and v > 0):
            raise InputError(f"{name} must be positive and finite, got {v!r}")


def lognormal_sample(mean: float, cv: float, rng: np.random.Generator) -> float:
    """One draw of a log-normal variable with the given arithmetic mean and coefficient of variation."""
    if cv <= 0 or mean <= 0:
        return float(mean)
    s2 = math.log1p(cv * cv)
    return float(rng.lognormal(math.log(mean) - 0.5 * s2, math.sqrt(s2)))


def sample_organ_suv(tracer: str, organs: Iterable[str], *, seed: int | np.random.Generator) -> dict[str, float]:
    """Per-subject organ SUVs: log-normal around the typical value, kept inside the literature range.

    Parameters
    ----------
    tracer : str
        A key of :data:`TRACERS`.
    organs : iterable of str
        Tissue names; each must be in the tracer's table.
    seed : int or numpy.random.Generator
        Randomness (organs are drawn in the given order).

    Returns
    -------
    dict of str to float
        SUVbw per organ at the tracer's scan time.
    """
    model = get_tracer(tracer)
    rng = np.random.default_rng(seed)
    out = {}
    for organ in organs:
        u = _organ(model, organ)
        lo, hi = u.suv_range
        out[organ] = float(np.clip(lognormal_sample(u.suv, u.cv, rng), lo, hi))
    return out


def _organ(model: TracerModel, organ: str) -> OrganUptake:
    try:
        return model.organs[organ]
    except KeyError:
        raise InputError(f"tracer {model.name!r} has no uptake for {organ!r}; "
                         f"known: {sorted(model.organs)}") from None


def kinetic_shape(u: OrganUptake, times_s: np.ndarray) -> np.ndarray:
    """Biological time course ``(1 - exp(-ln2 t/T_up)) exp(-ln2 t/T_bio)`` (no physical decay), t >= 0."""
    t = np.maximum(np.asarray(times_s, dtype=np.float64), 0.0)
    up = -np.expm1(-math.log(2.0) * t / u.uptake_half_time_s) if u.uptake_half_time_s > 0 else np.ones_like(t)
    if math.isfinite(u.washout_half_time_s):
        up = up * np.exp(-math.log(2.0) * t / u.washout_half_time_s)
    return up


def time_activity_curves(tracer: str, organs: Iterable[str], times_s, *, seed: int | np.random.Generator,
                         injected_mbq: float | None = None, weight_kg: float = 75.0,
                         suv: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Per-organ activity concentration over time (Bq/mL), physical decay included.

    Each organ follows ``C(t) = C_ref * g(t) / g(t_ref) * exp(-lambda (t - t_ref))`` where
    ``g(t) = (1 - exp(-ln2 t/T_up)) exp(-ln2 t/T_bio)`` is a bi-exponential uptake/washout, ``t_ref``
    the tracer's usual scan time and ``C_ref`` the concentration of the organ's SUV at ``t_ref``
    (:func:`suv_to_bq_per_ml`). So the curves pass exactly through the static phantom's values.

    Parameters
    ----------
    tracer : str
        A key of :data:`TRACERS`.
    organs : iterable of str
        Tissues to model.
    times_s : array_like, shape (T,)
        Times after injection (s), >= 0.
    seed : int or numpy.random.Generator
        Draws the organ SUVs (:func:`sample_organ_suv`) when ``suv`` is not given.
    injected_mbq : float, optional
        Injected activity (MBq); the tracer's protocol value for ``weight_kg`` by default.
    weight_kg : float
        Body weight (kg).
    suv : mapping, optional
        Organ SUVs at the reference time (e.g. those of a phantom) instead of sampling.

    Returns
    -------
    dict of str to numpy.ndarray, each shape (T,)
        Activity concentration (Bq/mL) at each time.
    """
    model = get_tracer(tracer)
    organs = list(organs)
    t = np.asarray(times_s, dtype=np.float64).reshape(-1)
    if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
        raise InputError("times_s must be finite and >= 0 (seconds after injection)")
    suv = dict(suv) if suv is not None else sample_organ_suv(tracer, organs, seed=seed)
    a_inj = (injected_mbq if injected_mbq is not None else model.injected_mbq_for(weight_kg)) * BQ_PER_MBQ
    t_ref = model.scan_time_s
    out = {}
    for organ in organs:
        u = _organ(model, organ)
        if organ not in suv:
            raise InputError(f"no SUV given for organ {organ!r}")
        c_ref = suv_to_bq_per_ml(suv[organ], injected_bq=a_inj, weight_kg=weight_kg, elapsed_s=t_ref,
                                 nuclide=model.nuclide)
        g_ref = float(kinetic_shape(u, np.array([t_ref]))[0])
        shape = kinetic_shape(u, t) / g_ref if g_ref > 0 else np.zeros_like(t)
        out[organ] = c_ref * shape * decay_factor(model.nuclide, t - t_ref)
    return out
