"""Phantoms made of disjoint compartments: activity, attenuation maps and label maps from occupancies.

A compartment is a region (its fractional occupancy of every voxel, from :mod:`petspect.phantoms.shapes`)
filled with one activity concentration and one material. Compartments of one phantom are disjoint, so
activity and mu are partial-volume mixtures and each voxel's label is the compartment holding most of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from petspect.errors import InputError
from petspect.phantoms.shapes import as_grid
from petspect.volume import Volume

__all__ = ["label_map", "Compartment", "compartment_volumes"]


def label_map(fractions: Sequence[torch.Tensor]) -> torch.Tensor:
    """Label of the compartment holding most of each voxel (0 = outside all of them).

    Parameters
    ----------
    fractions : sequence of tensors, each (nz, ny, nx)
        Disjoint occupancies (their sum is at most 1); compartment ``i`` gets label ``i + 1``.

    Returns
    -------
    torch.Tensor, int16, (nz, ny, nx)
    """
    if not fractions:
        raise InputError("label_map needs at least one compartment")
    total = torch.zeros_like(fractions[0], dtype=torch.float32)
    for f in fractions:
        total += f
    best = (1.0 - total).clamp(min=0)  # the outside's share
    labels = torch.zeros(best.shape, dtype=torch.int16, device=best.device)
    for i, f in enumerate(fractions):  # streaming argmax (ties keep the earlier label)
        better = f > best
        labels[better] = i + 1
        best = torch.maximum(best, f)
    return labels


@dataclass
class Compartment:
    """A region of a phantom: its occupancy, activity concentration and material.

    Attributes
    ----------
    name : str
        Label name (compartments sharing a name share a label).
    fraction : torch.Tensor, (nz, ny, nx)
        Occupancy in [0, 1]; the compartments of one phantom are disjoint.
    activity_bq_per_ml : float
        Activity concentration (Bq/mL) filling it.
    material : str or None
        Key of :func:`petspect.materials.linear_attenuation_per_mm`; None = vacuum (mu 0).
    """

    name: str
    fraction: torch.Tensor
    activity_bq_per_ml: float = 0.0
    material: str | None = "water"


def compartment_volumes(grid: Any, compartments: Sequence[Compartment], *, energies_kev: Sequence[float] = (511.0,),
                        meta: dict[str, Any] | None = None) -> tuple[dict[str, Volume], dict[int, str]]:
    """Activity (Bq/mL), mu maps (1/mm) and labels of disjoint compartments on a grid.

    ``activity = sum_i f_i a_i`` and ``mu_E = sum_i f_i mu_i(E)`` (partial-volume mixtures); the
    label of a voxel is the compartment occupying most of it (:func:`label_map`; 0 = outside).

    Returns
    -------
    volumes : dict
        ``"activity"``, ``"mu_<E>"`` for each energy (keV, rounded to an integer), ``"labels"``.
    label_names : dict of int to str
    """
    from petspect.materials import linear_attenuation_per_mm

    g = as_grid(grid)
    names = list(dict.fromkeys(c.name for c in compartments))
    activity = torch.zeros(g.shape, dtype=torch.float32, device=g.device)
    for c in compartments:
        activity += c.fraction * float(c.activity_bq_per_ml)
    meta = dict(meta or {})
    vols: dict[str, Volume] = {"activity": g.volume(activity, unit="Bq/mL", modality="PT", meta=meta)}
    for e in energies_kev:
        mu = torch.zeros(g.shape, dtype=torch.float32, device=g.device)
        for c in compartments:
            if c.material is not None:
                mu += c.fraction * linear_attenuation_per_mm(c.material, float(e))
        vols[f"mu_{int(round(float(e)))}"] = g.volume(mu, unit="1/mm", meta={**meta, "energy_kev": float(e)})
    merged = [sum(c.fraction for c in compartments if c.name == n) for n in names]
    vols["labels"] = g.volume(label_map(merged), unit="label", modality="SEG", meta=meta)
    return vols, {0: "outside", **{i + 1: n for i, n in enumerate(names)}}
