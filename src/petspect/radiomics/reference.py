"""The IBSI digital phantom and its published reference values, and the comparison against them.

Data (``petspect/data/ibsi/``, see its README): the IBSI chapter 1 digital phantom (5 x 4 x 4 voxels of
2 mm with its ROI mask; CC BY 4.0, theibsi/data_sets) and its 482 reference values with tolerances
(IBSI reference manual, Zwanenburg A et al., arXiv:1612.07003, tables "dig. phantom").

A computed value matches when ``|value - reference| <= tolerance + rounding``, where ``rounding`` is half a
unit in the third significant digit of the reference: the IBSI states phantom values to three significant
digits with tolerance 0, so the comparison is on the value rounded as the IBSI rounded it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from petspect.errors import DataNotFoundError

__all__ = ["ReferenceValue", "digital_phantom", "digital_phantom_reference", "Comparison", "compare"]


@dataclass(frozen=True)
class ReferenceValue:
    tag: str
    value: float
    tolerance: float

    @property
    def rounding(self) -> float:
        if self.value == 0:
            return 5e-4
        return 0.5 * 10 ** (math.floor(math.log10(abs(self.value))) - 2)

    def matches(self, computed: float) -> bool:
        if not math.isfinite(computed):
            return False
        return abs(computed - self.value) <= self.tolerance + self.rounding * (1 + 1e-9)


def _data(name: str):
    try:
        return resources.files("petspect").joinpath("data", "ibsi", name)
    except (ModuleNotFoundError, FileNotFoundError) as exc:  # pragma: no cover - broken install
        raise DataNotFoundError(f"petspect/data/ibsi/{name} is missing from this installation") from exc


def digital_phantom() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """The IBSI digital phantom: image (4, 4, 5) float, mask (4, 4, 5) bool, spacing (2, 2, 2) mm, (z, y, x)."""
    d = json.loads(_data("digital_phantom.json").read_text())
    return (np.asarray(d["image"], dtype=np.float64), np.asarray(d["mask"], dtype=bool),
            tuple(float(s) for s in d["spacing_mm"]))


def digital_phantom_reference() -> dict[str, ReferenceValue]:
    """IBSI reference values of the digital phantom keyed by tag."""
    rows = csv.DictReader(_data("digital_phantom_reference.csv").read_text().splitlines())
    return {r["tag"]: ReferenceValue(r["tag"], float(r["value"]), float(r["tolerance"])) for r in rows}


@dataclass(frozen=True)
class Comparison:
    """Computed features against the reference.

    Attributes
    ----------
    n_computed : int
        Features computed (finite or not).
    n_referenced : int
        Computed features that have a reference value.
    n_matched : int
    mismatches : dict of tag -> (computed, reference, tolerance + rounding)
    missing : tuple of str
        Reference tags petspect did not compute.
    """

    n_computed: int
    n_referenced: int
    n_matched: int
    mismatches: dict[str, tuple[float, float, float]]
    missing: tuple[str, ...]

    @property
    def fraction_matched(self) -> float:
        return self.n_matched / self.n_referenced if self.n_referenced else math.nan

    def failing_families(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for tag in self.mismatches:
            fam = tag.split("_")[0]
            out[fam] = out.get(fam, 0) + 1
        return out


def compare(values: dict[str, float], reference: dict[str, ReferenceValue] | None = None) -> Comparison:
    """Match computed ``values`` against the reference (default: the digital phantom's)."""
    ref = digital_phantom_reference() if reference is None else reference
    matched, mism = 0, {}
    referenced = [t for t in values if t in ref]
    for tag in referenced:
        r = ref[tag]
        if r.matches(values[tag]):
            matched += 1
        else:
            mism[tag] = (values[tag], r.value, r.tolerance + r.rounding)
    missing = tuple(t for t in ref if t not in values)
    return Comparison(len(values), len(referenced), matched, mism, missing)
