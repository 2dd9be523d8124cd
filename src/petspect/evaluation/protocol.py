"""Fixed splits and the one door to the test split, with a ledger of how often it was scored.

Splits are fixed in ``dataset.json`` (``training``, ``validation``, ``test``, subject-wise). Tuning and model
selection read :func:`read_splits` ``.training`` / ``.validation`` only; the test split is read through
:func:`read_test_split`, which records the reading in a ledger file (``test_ledger.json`` beside
``dataset.json``) under a hash of the study's configuration, so a study's ``summary.json`` can say how many
times this exact configuration has been scored on this test set (``test_scored``: 1 the first time).

A configuration is any JSON-serialisable mapping that fixes what is scored (methods, their settings, the
model's checksum, the task): its hash is the SHA-256 of its canonical JSON (sorted keys), first 16 hex digits.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from petspect.errors import ConfigError, DataNotFoundError, FormatError

__all__ = ["Splits", "TestScoring", "read_splits", "config_hash", "record_test_scoring", "read_test_split",
           "LEDGER_NAME", "SPLITS"]

LEDGER_NAME = "test_ledger.json"
SPLITS = ("training", "validation", "test")


@dataclass(frozen=True)
class Splits:
    """The subject-wise splits of a dataset (entries as in dataset.json, paths relative to ``root``).

    ``test`` is deliberately not an attribute: read it with :func:`read_test_split`.
    """

    root: Path
    training: list[dict[str, str]]
    validation: list[dict[str, str]]
    n_test: int
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    def subjects(self, split: str) -> list[str]:
        return [str(e.get("subject", i)) for i, e in enumerate(getattr(self, split))]


@dataclass(frozen=True)
class TestScoring:
    """One recorded scoring of a test split.

    Attributes
    ----------
    test_scored : int
        How many times this configuration has been scored on this test split, this time included.
    config_hash : str
    what : str
        What was scored (e.g. "denoise: 7 methods on 6 test subjects").
    subjects : list of str
    ledger : str
        The ledger file.
    all_configurations : int
        How many distinct configurations have been scored on this test split (1 when only this one).
    """

    test_scored: int
    config_hash: str
    what: str
    subjects: list[str]
    ledger: str
    all_configurations: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dataset_json(dataset: str | os.PathLike) -> Path:
    p = Path(dataset)
    js = p / "dataset.json" if p.is_dir() else p
    if not js.is_file():
        raise DataNotFoundError("no dataset.json", path=js)
    return js


def read_splits(dataset: str | os.PathLike) -> Splits:
    """Training and validation entries of a dataset (and the size of its test split).

    Raises
    ------
    FormatError
        When a split is not a list of entries, or a subject appears in two splits.
    """
    js = _dataset_json(dataset)
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
    except ValueError as e:
        raise FormatError(f"not valid JSON: {e}", path=js) from None
    lists = {}
    for s in SPLITS:
        entries = meta.get(s, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise FormatError(f"split {s!r} must be a list of entries", path=js)
        lists[s] = entries
    seen: dict[str, str] = {}
    for s, entries in lists.items():
        for e in entries:
            sub = str(e.get("subject", ""))
            if sub and sub in seen:
                raise FormatError(f"subject {sub} is in both {seen[sub]!r} and {s!r}: splits must be subject-wise",
                                  path=js)
            seen[sub] = s
    return Splits(js.parent, lists["training"], lists["validation"], len(lists["test"]), meta)


def config_hash(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the configuration's canonical JSON (sorted keys)."""
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"the scoring configuration is not JSON-serialisable: {e}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def record_test_scoring(ledger_dir: str | os.PathLike, config: Mapping[str, Any], what: str,
                        subjects: Sequence[str] = ()) -> TestScoring:
    """Record that ``config`` is being scored on the test data of ``ledger_dir``; returns the count.

    Parameters
    ----------
    ledger_dir : path
        The folder that holds the test data (the ledger ``test_ledger.json`` is written there).
    config : mapping
        What fixes the scored configuration (see the module docstring).
    what : str
        A one-line description kept in the ledger.
    subjects : sequence of str
        The scored subjects (or items).
    """
    from petspect._fileio import atomic_write_text

    folder = Path(ledger_dir)
    if not folder.is_dir():
        raise DataNotFoundError("the test data folder does not exist", path=folder)
    path = folder / LEDGER_NAME
    ledger: dict[str, Any] = {"configurations": {}}
    if path.exists():
        try:
            ledger = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise FormatError(f"the test ledger is not valid JSON ({e}); it records how often the test split was "
                              "scored, so it is not replaced silently", path=path) from None
        if not isinstance(ledger.get("configurations"), dict):
            raise FormatError("the test ledger has no 'configurations' mapping", path=path)
    h = config_hash(config)
    rec = ledger["configurations"].setdefault(h, {"config": json.loads(json.dumps(config, default=str)), "reads": []})
    rec["reads"].append({"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "what": what,
                         "subjects": list(subjects)})
    atomic_write_text(path, json.dumps(ledger, indent=1) + "\n")
    return TestScoring(len(rec["reads"]), h, what, [str(s) for s in subjects], str(path),
                       len(ledger["configurations"]))


def read_test_split(dataset: str | os.PathLike, config: Mapping[str, Any], what: str,
                    max_subjects: int | None = None) -> tuple[list[dict[str, str]], TestScoring]:
    """The test entries of a dataset, recorded in its ledger (the only reader of the test split).

    Returns
    -------
    (list of dict, TestScoring)
        The entries (paths relative to the dataset folder) and the scoring record for summary.json.
    """
    js = _dataset_json(dataset)
    meta = json.loads(js.read_text(encoding="utf-8"))
    entries = meta.get("test", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError("the dataset has no test subjects", path=js)
    entries = entries[:max_subjects] if max_subjects else entries
    scoring = record_test_scoring(js.parent, config, what, [str(e.get("subject", i)) for i, e in enumerate(entries)])
    return entries, scoring
