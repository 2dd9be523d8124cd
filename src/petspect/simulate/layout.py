"""File layout of a petspect dataset: keys, file names, checksums, dataset.json and its verification.

See docs/DEVELOPING.md ("Dataset layout"). Each subject is a folder ``sub-<NNN>`` holding one NIfTI file
per key and ``subject.json`` (the subject's record: seeds, phantom record, counts per level, file
checksums and shapes). ``subject.json`` is written last, inside a folder that is moved into place
atomically, so a subject folder that exists is complete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from petspect._fileio import atomic_write_text
from petspect.errors import DataNotFoundError, FormatError

SUBJECT_RECORD = "subject.json"
DATASET_JSON = "dataset.json"


def subject_id(index: int) -> str:
    """Folder name of subject ``index``: ``sub-000``, ``sub-001``, ..."""
    return f"sub-{index:03d}"


def level_tag(kind: str, percent: float) -> str:
    """``d010`` for 10 % dose, ``t050`` for a 50 % time window (kind "dose" or "time")."""
    prefix = {"dose": "d", "time": "t"}[kind]
    pct = float(percent)
    return f"{prefix}{int(round(pct)):03d}" if abs(pct - round(pct)) < 1e-9 else f"{prefix}{pct:07.3f}".replace(".", "p")


def time_point_suffix(hours: float | None) -> str:
    """Key suffix of a scan time point: ``_h024`` for 24 h after injection; empty for a single scan."""
    if hours is None:
        return ""
    h = float(hours)
    return f"_h{int(round(h)):03d}" if abs(h - round(h)) < 1e-9 else f"_h{h:07.3f}".replace(".", "p")


def recon_key(kind: str, percent: float, algorithm: str, ac: bool = True, realisation: int = 0) -> str:
    """Dataset key of a reconstruction, e.g. ``recon_d010_osem_ac`` or ``recon_d010_osem_ac_r1``."""
    key = f"recon_{level_tag(kind, percent)}_{algorithm}_{'ac' if ac else 'nac'}"
    return key if realisation == 0 else f"{key}_r{realisation}"


def projection_key(kind: str, percent: float, realisation: int = 0) -> str:
    """Dataset key of the prompts of a level (saved as .npy arrays)."""
    key = f"prompts_{level_tag(kind, percent)}"
    return key if realisation == 0 else f"{key}_r{realisation}"


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
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc}", path=p) from exc
    if not isinstance(data, dict):
        raise FormatError("expected a JSON object", path=p)
    return data


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write a JSON object atomically (sorted keys, 2-space indent)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


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
