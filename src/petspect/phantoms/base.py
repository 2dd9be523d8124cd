"""What every phantom generator returns, and the registry the CLI and dataset engine use.

A generator is a pure function ``make_<name>(*, voxel_mm, seed, tracer=None, **params) -> Phantom``
(keyword-only). Same arguments, same output, bit for bit. ``Phantom.record`` holds every argument
and sampled parameter, JSON-serialisable, so ``rebuild(record)`` returns the same phantom.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from petspect.errors import InputError
from petspect.volume import Volume

# name -> "module:function"; modules are imported only when a phantom is made
REGISTRY: dict[str, str] = {
    "nema-iec": "petspect.phantoms.nema_iec:make_nema_iec",
    "jaszczak": "petspect.phantoms.spect_phantoms:make_jaszczak",
    "derenzo": "petspect.phantoms.spect_phantoms:make_derenzo",
    "cylinder": "petspect.phantoms.spect_phantoms:make_cylinder",
    "point-sources": "petspect.phantoms.spect_phantoms:make_point_sources",
    "line-source": "petspect.phantoms.spect_phantoms:make_line_source",
    "shepp-logan": "petspect.phantoms.shepp_logan:make_shepp_logan",
    "torso": "petspect.phantoms.torso:make_torso",
    "brain": "petspect.phantoms.brain:make_brain",
    "myocardium": "petspect.phantoms.myocardium:make_myocardium",
}


@dataclass
class Phantom:
    """A phantom: named volumes on one grid, tables, and the record that rebuilds it.

    Attributes
    ----------
    volumes : dict of str to Volume
        Standard keys where they apply: ``"activity"`` (Bq/mL), ``"mu_511"``, ``"mu_140"``,
        ``"mu_208"`` (1/mm), ``"ct"`` (HU), ``"mr_t1"``, ``"mr_t2"`` (a.u.), ``"labels"`` (organ or
        compartment label map, unit "label"), ``"lesions"`` (lesion instance map, 0 = none).
    label_names : dict of int to str
        Meaning of each value of ``volumes["labels"]``.
    tables : dict of str to list of dict
        E.g. ``"lesions"``: one row per lesion with ``id``, ``centre_mm`` (LPS x, y, z),
        ``volume_ml``, ``mean_activity_bq_per_ml``, ``organ``, ``kind``.
    record : dict
        ``{"generator": name, "params": {...}, "nuclide": ..., "petspect_version": ...}``; JSON-serialisable.
        ``nuclide`` (e.g. "F-18", "I-123") is filled in from the tracer named in ``params`` through the one
        tracer table (:data:`petspect.phantoms.tracers.TRACERS`) when the generator does not set it; None
        when the phantom names no tracer.
    """

    volumes: dict[str, Volume]
    label_names: dict[int, str] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.record and "nuclide" not in self.record:
            tracer = (self.record.get("params") or {}).get("tracer")
            if tracer is not None:
                from petspect.phantoms.tracers import nuclide_of_tracer

                self.record["nuclide"] = nuclide_of_tracer(tracer)
            else:
                self.record["nuclide"] = None

    @property
    def nuclide(self) -> str | None:
        """Radionuclide of the activity (canonical name, e.g. "Ga-68"), or None when no tracer was named."""
        return self.record.get("nuclide")

    def __getitem__(self, key: str) -> Volume:
        try:
            return self.volumes[key]
        except KeyError:
            raise InputError(f"phantom has no volume {key!r}; it has {sorted(self.volumes)}") from None


def get_generator(name: str):
    """The generator function registered under ``name`` (see :data:`REGISTRY`)."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown phantom {name!r}; choose one of {sorted(REGISTRY)}") from None
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)


def make_phantom(name: str, **params: Any) -> Phantom:
    """Make a registered phantom by name with keyword parameters."""
    return get_generator(name)(**params)


def rebuild(record: dict[str, Any]) -> Phantom:
    """Rebuild a phantom exactly from its ``record``."""
    if "generator" not in record or "params" not in record:
        raise InputError("a phantom record needs 'generator' and 'params'")
    return make_phantom(record["generator"], **record["params"])
