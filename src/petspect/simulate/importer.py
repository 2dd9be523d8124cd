"""Bring a user's own cases (NIfTI or DICOM) into petspect's dataset layout.

Input: a folder with one sub-folder per case, each holding files or DICOM series folders whose names
(without extension) are dataset keys, e.g.::

    my_cases/
      patient01/ recon_d100_osem_ac.nii.gz  recon_d010_osem_ac/ (a DICOM series)  ct/  labels.nii.gz
      patient02/ ...

Every image is read with :func:`petspect.io.load` (DICOM PET as Bq/mL or SUV as asked) and written as
NIfTI under ``sub-<NNN>/KEY.nii.gz`` with its checksum; optional images are resampled onto the grid of
the case's reference key so that every key of a case shares one grid. ``dataset.json`` gets the same
layout as a simulated cohort, with the source path of every file recorded (never patient identifiers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import petspect
from petspect._fileio import atomic_dir
from petspect.errors import DataNotFoundError, InputError, OutputExistsError
from petspect.progress import track
from petspect.simulate.layout import (DATASET_JSON, SUBJECT_RECORD, sha256_file, split_subjects, subject_id,
                                      write_json)

_NIFTI = (".nii.gz", ".nii")


def _key_of(path: Path) -> str | None:
    name = path.name
    for sfx in _NIFTI:
        if name.endswith(sfx):
            return name[: -len(sfx)]
    if path.is_dir():
        return name
    return None


def discover_cases(source: Path) -> dict[str, dict[str, Path]]:
    """``{case name: {key: path}}`` for each sub-folder of ``source`` (sorted by name)."""
    if not source.is_dir():
        raise DataNotFoundError("not a folder of cases", path=source)
    cases: dict[str, dict[str, Path]] = {}
    for case in sorted(p for p in source.iterdir() if p.is_dir()):
        items = {}
        for item in sorted(case.iterdir()):
            key = _key_of(item)
            if key is not None:
                items[key] = item
        if items:
            cases[case.name] = items
    if not cases:
        raise DataNotFoundError("no case folders with NIfTI files or DICOM series found", path=source)
    return cases


def import_cases(source: str | os.PathLike, out_dir: str | os.PathLike, *, reference_key: str,
                 label_keys: tuple[str, ...] = ("labels", "lesions", "label"), suv: str | None = None,
                 train: float = 0.6, validation: float = 0.2, overwrite: bool = False,
                 show_progress: bool | None = None) -> Path:
    """Import cases into a dataset folder and write its ``dataset.json``.

    Parameters
    ----------
    source : path
        Folder of case folders (see the module docstring).
    out_dir : path
        New or empty dataset folder.
    reference_key : str
        Key whose grid every other image of a case is resampled onto (e.g. ``"recon_d100_osem_ac"``).
    label_keys : tuple of str
        Keys resampled with nearest neighbour (label maps).
    suv : str, optional
        Convert DICOM PET series to this SUV kind ("bw", ...); None keeps Bq/mL.
    train, validation : float
        Subject-wise split fractions (the rest is test), in the cases' sorted order.
    overwrite : bool
        Allow a non-empty ``out_dir`` (existing subject folders are replaced).

    Returns
    -------
    Path
        The ``dataset.json`` written.
    """
    from petspect.io import load, save

    src, out = Path(source), Path(out_dir)
    from petspect._fileio import check_output_path

    check_output_path(out, overwrite=True, inputs=[src])  # input, cwd and home checks; emptiness below
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError("is not empty; choose a new folder or overwrite=True", path=out)
    cases = discover_cases(src)
    entries: dict[str, dict[str, str]] = {}
    records: dict[str, Any] = {}
    for i, (case, items) in enumerate(track(list(cases.items()), "importing cases", enabled=show_progress)):
        if reference_key not in items:
            raise InputError(f"case {case!r} has no {reference_key!r} image (has {sorted(items)})", path=src / case)
        sub = subject_id(i)
        ref = load(items[reference_key], suv=suv)
        files, entry = {}, {}
        with atomic_dir(out / sub) as tmp:
            for key, path in items.items():
                vol = ref if key == reference_key else load(path, suv=suv if key not in label_keys else None)
                if not vol.same_grid(ref):
                    vol = vol.resample_to(ref, mode="nearest" if key in label_keys else "linear")
                name = f"{key}.nii.gz"
                save(vol, tmp / name, overwrite=True)
                files[name] = {"sha256": sha256_file(tmp / name), "shape": list(vol.shape), "unit": vol.unit,
                               "source": str(path.relative_to(src))}
                entry[key] = f"{sub}/{name}"
            entry["image"] = entry[reference_key]
            label = next((k for k in label_keys if k in entry), None)
            if label:
                entry["label"] = entry[label]
            record = {"subject": sub, "index": i, "case": case, "files": files, "entry": entry, "imported": True}
            write_json(tmp / SUBJECT_RECORD, record)
        entries[sub] = entry
        records[sub] = {k: v for k, v in record.items() if k != "files"}
    subs = sorted(entries)
    splits = split_subjects(subs, train, validation)
    data: dict[str, Any] = {"name": src.name, "description": f"imported from {src.name}", "tensorImageSize": "3D",
                            "modality": {"0": "PT"}, "labels": {},
                            "numTraining": len(splits["training"]), "numTest": len(splits["test"])}
    for split, members in splits.items():
        data[split] = [{"subject": s, **entries[s]} for s in members]
    data["petspect"] = {"version": petspect.__version__, "imported": True, "subjects": records}
    write_json(out / DATASET_JSON, data)
    return out / DATASET_JSON
