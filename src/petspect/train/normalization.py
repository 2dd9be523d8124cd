"""Invertible, unit-aware intensity normalisations, saved with a trained model.

A network sees normalised values; predictions are mapped back to physical units with ``inverse``.
Each normalisation records the unit it expects, so a model trained on SUV is not fed Bq/mL silently.

======================  =========================================  ====================================
class                   forward ``y = f(x)``                       use
======================  =========================================  ====================================
:class:`Identity`       ``x``                                      data already scaled
:class:`SuvScaling`     ``x / factor``                             PET in Bq/mL (factor ~ injected/weight)
                                                                   or SUV (factor 1 or a typical SUV)
:class:`Log1p`          ``log(1 + x / scale)``                     PET with a wide dynamic range
:class:`Affine`         ``(x - offset) / scale``                   CT in HU (offset -1000 .. 0, scale 1000)
======================  =========================================  ====================================

``SuvScaling`` and ``Log1p`` map 0 to 0 and are increasing, so a non-negative network output stays a
non-negative activity after ``inverse``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from petspect.errors import ConfigError, InputError


def _positive(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return v


class Normalization(abc.ABC):
    """An invertible element-wise intensity map; ``unit`` is the unit ``forward`` expects ('' = any)."""

    kind: str = ""
    unit: str = ""

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical values (``unit``) to network values; any shape, dtype and device kept."""

    @abc.abstractmethod
    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Network values back to physical values (``unit``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description; :func:`normalization_from_dict` rebuilds it."""
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]

    def check_unit(self, unit: str | None, *, path: Any = None) -> None:
        """Raise :class:`InputError` when a volume's ``unit`` differs from the one this map expects."""
        if self.unit and unit and unit != self.unit:
            raise InputError(f"normalisation {self.kind} expects values in {self.unit!r}, got {unit!r}", path=path)


@dataclass
class Identity(Normalization):
    """No change."""

    unit: str = ""
    kind = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y


@dataclass
class SuvScaling(Normalization):
    """``y = x / factor``: divide activity concentration by a fixed factor (e.g. to a body-weight SUV scale).

    Parameters
    ----------
    factor : float
        In the unit of ``x`` (e.g. Bq/mL per SUV unit = injected activity / body weight).
    unit : str
        Unit of ``x`` ("Bq/mL", "SUVbw", ...), or '' to accept any.
    """

    factor: float = 1.0
    unit: str = ""
    kind = "suv_scaling"

    def __post_init__(self) -> None:
        self.factor = _positive(self.factor, "factor")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.factor

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.factor


@dataclass
class Log1p(Normalization):
    """``y = log(1 + x / scale)``; inverse ``x = scale * expm1(y)``. Compresses hot lesions and bladder.

    Parameters
    ----------
    scale : float
        In the unit of ``x``: values well below ``scale`` are mapped almost linearly.
    unit : str
    """

    scale: float = 1.0
    unit: str = ""
    kind = "log1p"

    def __post_init__(self) -> None:
        self.scale = _positive(self.scale, "scale")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x / self.scale)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.expm1(y)


@dataclass
class Affine(Normalization):
    """``y = (x - offset) / scale`` (anatomical channels: CT in HU, MR intensities, attenuation maps)."""

    offset: float = 0.0
    scale: float = 1.0
    unit: str = ""
    kind = "affine"

    def __post_init__(self) -> None:
        self.scale = _positive(self.scale, "scale")
        self.offset = float(self.offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) / self.scale

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale + self.offset


KINDS: dict[str, type[Normalization]] = {c.kind: c for c in (Identity, SuvScaling, Log1p, Affine)}


def normalization_from_dict(spec: dict[str, Any] | Normalization | None) -> Normalization:
    """Rebuild a normalisation from :meth:`Normalization.to_dict` output (None gives :class:`Identity`)."""
    if spec is None:
        return Identity()
    if isinstance(spec, Normalization):
        return spec
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind not in KINDS:
        raise ConfigError(f"unknown normalisation kind {kind!r}; choose one of {sorted(KINDS)}")
    try:
        return KINDS[kind](**params)
    except TypeError as exc:
        raise ConfigError(f"invalid parameters for normalisation {kind!r}: {exc}") from exc
