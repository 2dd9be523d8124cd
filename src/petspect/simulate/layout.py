"""File layout of a petspect dataset: keys, file names, checksums, dataset.json and its verification.

See docs/DEVELOPING.md ("Dataset layout"). Each subject is a folder ``sub-<NNN>`` holding one NIfTI file
per key and ``subject.json`` (the subject's record: seeds, phantom record, counts per level, file
checksums and shapes). ``subject.json`` is written last, inside a folder that is moved into place
atomically, so a subject folder that exists is complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from petspect._fileio import atomic_write_text
from petspect._json import json_default
from petspect.errors import ConfigError, DataNotFoundError, FormatError

SUBJECT_RECORD = "subject.json"
DATASET_JSON = "dataset.json"


def subject_id(index: int) -> str:
    """Folder name of subject ``index``: ``sub-000``, ``sub-001``, ..."""
    return f"sub-{index:03d}"


# ----------------------------------------------------------------------------- dataset keys
#: Kinds of count reduction and the letter that tags them in keys.
LEVEL_PREFIX = {"dose": "d", "time": "t"}
_FRACTION_STEP = 1000  # levels and hours are written to 1/1000 (``012p500`` = 12.5)
_NUMBER = r"\d{3,}(?:p\d{3})?"
_LEVEL_RE = re.compile(rf"(?P<prefix>[dt])(?P<number>{_NUMBER})")
_KEY_RE = re.compile(
    rf"(?:(?P<scan>recon)_(?P<rlevel>[dt]{_NUMBER})_(?P<algorithm>[a-z0-9]+)_(?P<ac>ac|nac)"
    rf"|(?P<leveled>prompts|additive)_(?P<plevel>[dt]{_NUMBER})"
    rf"|(?P<name>[a-z][a-z0-9]*(?:_(?!h\d)[a-z0-9]+)*))"
    rf"(?:_r(?P<realisation>[1-9]\d*))?(?:_h(?P<hours>{_NUMBER}))?")
#: Base names whose keys carry a level (``prompts_d010``) and those that carry a reconstruction.
LEVELED_NAMES = ("prompts", "additive")
RECON_NAME = "recon"


def _format_number(value: float) -> str:
    """``010`` for 10, ``012p500`` for 12.5 (three decimals at most)."""
    v = float(value)
    return f"{int(round(v)):03d}" if abs(v - round(v)) < 1e-9 else f"{v:07.3f}".replace(".", "p")


def _parse_number(text: str) -> float:
    return float(text.replace("p", "."))


def _check_steps(what: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or abs(v * _FRACTION_STEP - round(v * _FRACTION_STEP)) > 1e-6 * max(1.0, abs(v)):
        raise ConfigError(f"{what} must be a finite number with at most three decimals (it is written into "
                          f"file names), got {value!r}")
    return round(v, 3)


@dataclass(frozen=True)
class ScanLevel:
    """A reduced-count level: ``ScanLevel("dose", 10)`` is written ``d010``, ``ScanLevel("time", 12.5)`` ``t012p500``.

    Parameters
    ----------
    source : {"dose", "time"}
        Thinned counts (low dose) or the first part of the scan time (fast scan).
    percent : float
        Percentage of the full-dose counts or scan time, in (0, 100], at most three decimals.
    """

    source: str
    percent: float

    def __post_init__(self) -> None:
        if self.source not in LEVEL_PREFIX:
            raise ConfigError(f"level source must be one of {sorted(LEVEL_PREFIX)}, got {self.source!r}")
        pct = _check_steps("a level's percent", self.percent)
        if not 0 < pct <= 100:
            raise ConfigError(f"a level's percent must be in (0, 100], got {self.percent!r}")
        object.__setattr__(self, "percent", pct)

    def format(self) -> str:
        """The tag, e.g. ``d010``."""
        return LEVEL_PREFIX[self.source] + _format_number(self.percent)

    __str__ = format

    @classmethod
    def parse(cls, tag: str) -> ScanLevel:
        """Inverse of :meth:`format`; raises :class:`~petspect.errors.ConfigError` on anything else."""
        m = _LEVEL_RE.fullmatch(str(tag))
        if m is None:
            raise ConfigError(f"not a level tag (d<PCT> or t<PCT>, e.g. d010, t012p500): {tag!r}")
        level = cls("dose" if m["prefix"] == "d" else "time", _parse_number(m["number"]))
        if level.format() != tag:
            raise ConfigError(f"level tag {tag!r} is not written canonically (expected {level.format()!r})")
        return level


@dataclass(frozen=True)
class DatasetKey:
    """The name of one file of a subject, with its format and parse in one place.

    Grammar (docs/DEVELOPING.md, "Dataset layout")::

        recon_<LEVEL>_<ALGO>_<ac|nac>[_r<K>][_h<HOURS>]   reconstruction (e.g. recon_d010_osem_ac_r1)
        prompts_<LEVEL>[_r<K>][_h<HOURS>]                  prompts of a level (.npy)
        additive_<LEVEL>[_h<HOURS>]                        expected scatter + randoms (.npy)
        <NAME>[_h<HOURS>]                                  anything else (activity, labels, ct, mu_511, ...)

    ``LEVEL`` is a :class:`ScanLevel` tag (``d010``, ``t050``, ``d012p500``), ``K >= 1`` the noise
    realisation (realisation 0 has no suffix), ``HOURS`` the scan time point after injection (``h024``,
    ``h004p500``).

    Parameters
    ----------
    name : str
        ``"recon"``, ``"prompts"``, ``"additive"`` or a plain lower-case name.
    level : ScanLevel, optional
        Required for recon, prompts and additive keys; absent for the others.
    algorithm : str, optional
        Reconstruction algorithm (recon keys only), lower-case letters and digits.
    ac : bool
        Attenuation corrected (recon keys only).
    realisation : int
        Independent noise realisation (recon and prompts keys), 0 = the first.
    hours : float, optional
        Time point of the scan in hours after injection (multi-time-point cohorts).
    """

    name: str
    level: ScanLevel | None = None
    algorithm: str | None = None
    ac: bool = True
    realisation: int = 0
    hours: float | None = None

    def __post_init__(self) -> None:
        is_recon, leveled = self.name == RECON_NAME, self.name in LEVELED_NAMES
        if (is_recon or leveled) != (self.level is not None):
            raise ConfigError(f"dataset key {self.name!r}: a level is needed for recon/prompts/additive keys and "
                              f"only for them, got level={self.level!r}")
        if self.level is not None and not isinstance(self.level, ScanLevel):
            raise ConfigError(f"level must be a ScanLevel, got {self.level!r}")
        if is_recon != (self.algorithm is not None):
            raise ConfigError(f"dataset key {self.name!r}: an algorithm belongs to recon keys only, got "
                              f"algorithm={self.algorithm!r}")
        if self.algorithm is not None and re.fullmatch(r"[a-z0-9]+", self.algorithm) is None:
            raise ConfigError(f"algorithm must be lower-case letters and digits, got {self.algorithm!r}")
        if not (is_recon or self.ac):
            raise ConfigError(f"only recon keys are non-attenuation-corrected, got {self.name!r} with ac=False")
        if int(self.realisation) != self.realisation or self.realisation < 0:
            raise ConfigError(f"realisation must be a non-negative integer, got {self.realisation!r}")
        if self.realisation and self.name not in (RECON_NAME, "prompts"):
            raise ConfigError(f"only recon and prompts keys have realisations, got {self.name!r}")
        if not (is_recon or leveled):
            if re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*", self.name) is None:
                raise ConfigError(f"a dataset key name is lower-case letters, digits and single underscores, got "
                                  f"{self.name!r}")
            if self.name.split("_")[0] in (RECON_NAME, *LEVELED_NAMES) or re.search(r"_(h\d|r\d)", self.name):
                raise ConfigError(f"{self.name!r} would read as a recon, prompts, realisation or time-point key")
        if self.hours is not None:
            h = _check_steps("a time point (hours)", self.hours)
            if h <= 0:
                raise ConfigError(f"a time point must be positive hours after injection, got {self.hours!r}")
            object.__setattr__(self, "hours", h)
        object.__setattr__(self, "realisation", int(self.realisation))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def recon(cls, level: ScanLevel, algorithm: str, *, ac: bool = True, realisation: int = 0,
              hours: float | None = None) -> DatasetKey:
        """Key of a reconstruction, e.g. ``recon_d010_osem_ac``."""
        return cls(RECON_NAME, level, algorithm, ac, realisation, hours)

    @classmethod
    def prompts(cls, level: ScanLevel, *, realisation: int = 0, hours: float | None = None) -> DatasetKey:
        """Key of the prompts of a level, e.g. ``prompts_d010_r1``."""
        return cls("prompts", level, realisation=realisation, hours=hours)

    # ------------------------------------------------------------------ format / parse
    def format(self) -> str:
        """The key as written in ``dataset.json`` and in file names."""
        parts = [self.name]
        if self.level is not None:
            parts.append(self.level.format())
        if self.algorithm is not None:
            parts += [self.algorithm, "ac" if self.ac else "nac"]
        if self.realisation:
            parts.append(f"r{self.realisation}")
        if self.hours is not None:
            parts.append("h" + _format_number(self.hours))
        return "_".join(parts)

    __str__ = format

    @classmethod
    def parse(cls, key: str) -> DatasetKey:
        """Inverse of :meth:`format`; raises :class:`~petspect.errors.ConfigError` for anything it cannot write."""
        m = _KEY_RE.fullmatch(str(key))
        if m is None or (m["name"] and re.match(r"(recon|prompts|additive)_", m["name"])):
            raise ConfigError(f"not a dataset key: {key!r}; keys are recon_<LEVEL>_<ALGO>_<ac|nac>[_r<K>][_h<HOURS>], "
                              f"prompts_<LEVEL>[_r<K>][_h<HOURS>], additive_<LEVEL>[_h<HOURS>] or <name>[_h<HOURS>] "
                              f"with LEVEL like d010, t050 or d012p500 and HOURS like 024 or 004p500")
        hours = _parse_number(m["hours"]) if m["hours"] else None
        realisation = int(m["realisation"] or 0)
        if m["scan"]:
            out = cls.recon(ScanLevel.parse(m["rlevel"]), m["algorithm"], ac=m["ac"] == "ac",
                            realisation=realisation, hours=hours)
        elif m["leveled"]:
            out = cls(m["leveled"], ScanLevel.parse(m["plevel"]), realisation=realisation, hours=hours)
        else:
            out = cls(m["name"], realisation=realisation, hours=hours)
        if out.format() != key:
            raise ConfigError(f"dataset key {key!r} is not written canonically (expected {out.format()!r})")
        return out

    # ------------------------------------------------------------------ derived keys
    def with_(self, **changes: Any) -> DatasetKey:
        """A copy with some fields changed (e.g. ``key.with_(realisation=1)``)."""
        return replace(self, **changes)


def level_tag(kind: str, percent: float) -> str:
    """``d010`` for 10 % dose, ``t050`` for a 50 % time window (kind "dose" or "time")."""
    return ScanLevel(kind, percent).format()


def time_point_suffix(hours: float | None) -> str:
    """Key suffix of a scan time point: ``_h024`` for 24 h after injection; empty for a single scan."""
    return "" if hours is None else DatasetKey("activity", hours=hours).format()[len("activity"):]


def recon_key(kind: str, percent: float, algorithm: str, ac: bool = True, realisation: int = 0,
              hours: float | None = None) -> str:
    """Dataset key of a reconstruction, e.g. ``recon_d010_osem_ac`` or ``recon_d010_osem_ac_r1``."""
    return DatasetKey.recon(ScanLevel(kind, percent), algorithm, ac=ac, realisation=realisation, hours=hours).format()


def projection_key(kind: str, percent: float, realisation: int = 0, hours: float | None = None) -> str:
    """Dataset key of the prompts of a level (saved as .npy arrays)."""
    return DatasetKey.prompts(ScanLevel(kind, percent), realisation=realisation, hours=hours).format()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON object, with petspect errors for a missing or corrupt file."""
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError("file not found", path=p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"not valid JSON: {exc}", path=p) from exc
    if not isinstance(data, dict):
        raise FormatError("expected a JSON object", path=p)
    return data


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write a JSON object atomically (sorted keys, 2-space indent)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=json_default) + "\n")


def split_subjects(subjects: list[str], train: float, validation: float) -> dict[str, list[str]]:
    """Deterministic subject-wise split in order: first ``train``, then ``validation``, rest ``test``.

    Subjects are already randomised by their seeds, so taking them in order is an unbiased split; each
    non-empty fraction gets at least one subject when there are enough subjects.
    """
    n = len(subjects)
    n_train = max(1, int(round(train * n))) if train > 0 else 0
    n_val = int(round(validation * n))
    if validation > 0 and n_val == 0 and n - n_train >= 2:
        n_val = 1
    n_train = min(n_train, n)
    n_val = min(n_val, n - n_train)
    if n - n_train - n_val == 0 and n_train > 1 and (1.0 - train - validation) > 1e-9:
        n_train -= 1
    return {"training": subjects[:n_train], "validation": subjects[n_train:n_train + n_val],
            "test": subjects[n_train + n_val:]}


def check_dataset(folder: str | Path) -> list[str]:
    """See :func:`_check_dataset`; a damaged dataset.json or subject.json raises a FormatError naming it."""
    from petspect.io._guard import reading

    with reading(folder, "dataset folder"):
        return _check_dataset(folder)


def _check_dataset(folder: str | Path) -> list[str]:
    """Re-verify every file of a dataset against the checksums and shapes recorded in ``subject.json``.

    Returns
    -------
    list of str
        One line per problem (missing subject, missing file, checksum or shape mismatch); empty when
        the dataset is intact.
    """
    root = Path(folder)
    meta = read_json(root / DATASET_JSON)
    problems: list[str] = []
    entries = [e for split in ("training", "validation", "test") for e in meta.get(split, [])]
    for entry in entries:
        for key, rel in entry.items():
            if key == "subject":
                continue
            if not (root / rel).is_file():
                problems.append(f"{rel}: listed in dataset.json but missing")
    for sub in sorted(meta.get("petspect", {}).get("subjects", {})):
        rec_path = root / sub / SUBJECT_RECORD
        if not rec_path.is_file():
            problems.append(f"{sub}/{SUBJECT_RECORD}: missing")
            continue
        record = read_json(rec_path)
        for name, info in sorted(record.get("files", {}).items()):
            path = root / sub / name
            if not path.is_file():
                problems.append(f"{sub}/{name}: missing")
                continue
            if sha256_file(path) != info["sha256"]:
                problems.append(f"{sub}/{name}: checksum mismatch (file changed or corrupt)")
                continue
            if "shape" in info and list(_stored_shape(path)) != list(info["shape"]):
                problems.append(f"{sub}/{name}: shape {list(_stored_shape(path))} != recorded {info['shape']}")
    return problems


def _stored_shape(path: Path) -> tuple[int, ...]:
    if path.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        return tuple(int(s) for s in reversed(nib.load(str(path)).shape))  # stored (x, y, z) -> (z, y, x)
    if path.suffix == ".npy":
        import numpy as np

        return tuple(np.load(path, mmap_mode="r").shape)
    return ()
