"""Typed configuration of a simulated cohort, mapped from TOML onto dataclasses.

A configuration is a plain TOML file whose tables are the dataclasses below (no language of its own):

.. code-block:: toml

    name = "my-cohort"
    subjects = 12
    seed = 7
    dose_percents = [100, 25, 10]
    time_percents = [50]
    realisations = 2

    [phantom]
    kind = "torso"
    voxel_mm = 4.0
    tracer = "fdg"
    [phantom.params]
    fov = "chest-abdomen"

    [scanner]
    modality = "pet"
    preset = "wholebody"
    tof = false

    [acquisition]
    scan_s = 120.0
    randoms_fraction = 0.2

    [recon]
    algorithms = ["osem"]
    iterations = 3
    subsets = 8

Unknown keys are refused (ConfigError), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petspect.errors import ConfigError


@dataclass
class PhantomConfig:
    """Which phantom generator makes each subject (see ``petspect.phantoms.REGISTRY``)."""

    kind: str = "torso"
    voxel_mm: float = 4.0
    tracer: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScannerConfig:
    """Scanner model: PET preset (wholebody, brain, small-animal) or SPECT preset (spect-lehr, spect-me)."""

    modality: str = "pet"
    preset: str = "wholebody"
    tof: bool = False
    max_ring_difference: int | None = None  # None: all ring differences
    view_mashing: int = 1
    psf_fwhm_mm: float | None = None
    n_views: int | None = None  # SPECT only: views over 360 degrees
    radius_mm: float | None = None  # SPECT only: orbit radius
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class AcquisitionConfig:
    """Acquisition physics and statistics of the full-dose scan."""

    scan_s: float = 300.0
    injected_mbq: float | None = None  # None: the phantom's tracer model decides
    sensitivity_scale: float = 1.0
    attenuation: bool = True
    normalisation: bool = True
    scatter: bool = True
    randoms: bool = True
    scatter_fraction: float | None = None  # None: the scatter model's own, object-dependent magnitude
    randoms_fraction: float = 0.15
    # no inverse crime (h4, simulate/no_inverse_crime.py): the truth on a grid truth_oversample times finer, with
    # detector blur truth_psf_fwhm_mm; reconstructions get scatter and randoms estimated as a scanner would
    truth_oversample: int = 2
    truth_psf_fwhm_mm: float | None = 4.0
    additive_estimate: bool = True


@dataclass
class ReconConfig:
    """Reconstructions made for every dose/time level."""

    algorithms: list[str] = field(default_factory=lambda: ["osem"])
    iterations: int = 3
    subsets: int = 8
    beta: float = 0.05  # relative to the data's scale: times the mean sensitivity (recon.reconstruct.absolute_beta)
    prior: str = "rdp"
    post_filter_fwhm_mm: float | None = None
    nac: bool = True


@dataclass
class SplitConfig:
    """Subject-wise split fractions (train, validation, test)."""

    train: float = 0.6
    validation: float = 0.2
    test: float = 0.2


@dataclass
class DatasetConfig:
    """A whole cohort: subjects, phantom, scanner, acquisition, dose/time levels and reconstructions."""

    name: str = "cohort"
    description: str = ""
    subjects: int = 4
    seed: int = 0
    dose_percents: list[float] = field(default_factory=lambda: [100.0, 10.0])
    time_percents: list[float] = field(default_factory=list)
    realisations: int = 1
    #: hours after injection of repeated scans of every subject (therapy time points, e.g. Lu-177 at 4, 24,
    #: 96 h); empty: one scan at the tracer's usual time. Anatomy is shared, activity follows the tracer's
    #: time-activity curves; every time-point key ends in ``_h<HHH>`` (hours, e.g. ``_h024``).
    time_points_h: list[float] = field(default_factory=list)
    phantom: PhantomConfig = field(default_factory=PhantomConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    recon: ReconConfig = field(default_factory=ReconConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def validate(self) -> "DatasetConfig":
        """Check ranges and consistency; returns self. Raises ConfigError."""
        if self.subjects < 1:
            raise ConfigError(f"subjects must be >= 1, got {self.subjects}")
        for name, levels in (("dose_percents", self.dose_percents), ("time_percents", self.time_percents)):
            for p in levels:
                if not 0 < float(p) <= 100:
                    raise ConfigError(f"{name} must be in (0, 100], got {p}")
        if 100.0 not in [float(p) for p in self.dose_percents]:
            raise ConfigError("dose_percents must include 100 (the full-dose reference that lower doses are thinned from)")
        if self.realisations < 1:
            raise ConfigError(f"realisations must be >= 1, got {self.realisations}")
        for p in self.dose_percents:
            if float(p) < 100 and self.realisations * float(p) > 100:
                raise ConfigError(f"{self.realisations} independent realisations at {p} % need more than the full-dose "
                                  f"counts; lower realisations or the dose")
        if self.time_points_h:
            if self.phantom.kind not in ("torso", "brain"):
                raise ConfigError("time_points_h needs a phantom with kinetics (torso or brain), "
                                  f"not {self.phantom.kind!r}")
            if min(float(h) for h in self.time_points_h) <= 0 or len(set(self.time_points_h)) != len(self.time_points_h):
                raise ConfigError(f"time_points_h must be distinct positive hours, got {self.time_points_h}")
        if self.scanner.modality not in ("pet", "spect"):
            raise ConfigError(f"scanner.modality must be 'pet' or 'spect', got {self.scanner.modality!r}")
        unknown = set(self.recon.algorithms) - {"osem", "mlem", "map", "fbp"}
        if unknown or not self.recon.algorithms:
            raise ConfigError(f"recon.algorithms must be from osem, mlem, map, fbp; got {self.recon.algorithms}")
        s = self.split
        if min(s.train, s.validation, s.test) < 0 or abs(s.train + s.validation + s.test - 1.0) > 1e-6:
            raise ConfigError("split fractions must be >= 0 and add up to 1")
        sf = self.acquisition.scatter_fraction
        if sf is not None and not 0 <= sf < 1:
            raise ConfigError(f"acquisition.scatter_fraction must be in [0, 1), got {sf}")
        if self.acquisition.scan_s <= 0 or self.phantom.voxel_mm <= 0:
            raise ConfigError("scan_s and voxel_mm must be positive")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-serialisable form (inverse of :func:`config_from_dict`)."""
        return dataclasses.asdict(self)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {sorted(unknown)}; allowed: {sorted(fields)}")
    kwargs = {}
    nested = {"phantom": PhantomConfig, "scanner": ScannerConfig, "acquisition": AcquisitionConfig,
              "recon": ReconConfig, "split": SplitConfig}
    for key, value in data.items():
        if cls is DatasetConfig and key in nested:
            kwargs[key] = _build(nested[key], value, f"{where}.{key}" if where != "config" else key)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise ConfigError(f"{where}: {exc}") from exc


def config_from_dict(data: dict[str, Any]) -> DatasetConfig:
    """Map a nested dict (from TOML or dataset.json) onto :class:`DatasetConfig` and validate it."""
    return _build(DatasetConfig, dict(data), "config").validate()


def load_config(path: str | Path) -> DatasetConfig:
    """Read a TOML configuration file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("configuration file not found", path=p)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=p) from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=p) from exc


def config_to_toml(config: DatasetConfig) -> str:
    """The configuration as TOML text that :func:`load_config` reads back to an equal configuration."""
    data = config.to_dict()

    def value(v):
        if v is None:
            raise ValueError  # TOML has no null: such keys are left out (they default to None)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def table(d: dict, prefix: str) -> list[str]:
        lines, subtables = [], []
        for k, v in d.items():
            if isinstance(v, dict):
                subtables.append((k, v))
                continue
            try:
                lines.append(f"{k} = {value(v)}")
            except ValueError:
                continue
        for k, v in subtables:
            name = f"{prefix}.{k}" if prefix else k
            lines += ["", f"[{name}]"] + table(v, name)
        return lines

    return "\n".join(table(data, "")) + "\n"
