"""Make a simulated cohort: many subjects in parallel, resumable, verifiable, in the decathlon layout.

:func:`simulate_cohort` runs :func:`petspect.simulate.subject.simulate_subject` for each subject in a
pool of worker processes, or as Ray tasks on a local or remote Ray cluster (one torch thread each, so
results do not depend on the number of workers or on the executor),
writes each subject into a temporary folder that is moved into place when complete, and assembles
``dataset.json`` at the end. A killed run, started again with the same configuration, skips the
complete subjects and ends identical to an uninterrupted run. :func:`rebuild_subject` re-creates a
case from ``dataset.json`` and returns whether it matches the stored files bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

import petspect
from petspect._fileio import atomic_dir
from petspect.errors import InputError, OutputExistsError
from petspect.executor import Executor, import_ray, parse_executor, ray_map, ray_session
from petspect.progress import track
from petspect.simulate.config import DatasetConfig, config_from_dict
from petspect.simulate.layout import (DATASET_JSON, SUBJECT_RECORD, read_json, sha256_file, split_subjects,
                                      subject_id, write_json)

CONFIG_RECORD = "petspect_config.json"


def subject_seeds(seed: int, n_subjects: int) -> list[int]:
    """Independent 63-bit seeds of the subjects, from one cohort seed (numpy SeedSequence.spawn)."""
    children = np.random.SeedSequence(int(seed)).spawn(int(n_subjects))
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch with one intra-op thread (bit-for-bit reproducible reductions), then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def estimate_disk_bytes(config: DatasetConfig, subject_shape: tuple[int, int, int] | None = None) -> int:
    """Upper estimate of the dataset size in bytes (uncompressed float32 volumes and projections).

    ``subject_shape`` is the image shape (z, y, x); by default it is taken from one phantom made with
    the configuration (cheap at dataset voxel sizes).
    """
    from petspect.simulate.subject import planned_outputs

    n_vol, n_proj_voxels, shape = planned_outputs(config, subject_shape)
    per_subject = 4 * (n_vol * math.prod(shape) + n_proj_voxels)
    return int(per_subject * config.subjects)


def _run_subject(config_dict: dict[str, Any], out_dir: str, index: int, seed: int) -> dict[str, Any]:
    """Worker: simulate one subject and write it atomically; returns its record."""
    from petspect.simulate.subject import simulate_subject, write_subject

    config = config_from_dict(config_dict)
    target = Path(out_dir) / subject_id(index)
    with single_thread():
        result = simulate_subject(config, index, seed)
        with atomic_dir(target) as tmp:
            record = write_subject(result, tmp)
    return record


def _subject_files(config_dict: dict[str, Any], index: int, seed: int) -> dict[str, bytes]:
    """Ray task: simulate one subject in a private temporary folder and return its files' bytes.

    The files travel back through Ray's object store, so the calling process writes them and the
    cluster's nodes need no shared file system; the bytes are those :func:`_run_subject` writes.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="petspect-subject-") as tmp:
        _run_subject(config_dict, tmp, index, seed)
        folder = Path(tmp) / subject_id(index)
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_subject_files(target: Path, files: dict[str, bytes]) -> None:
    """Write one subject's files (from :func:`_subject_files`) into ``target`` atomically."""
    with atomic_dir(target) as tmp:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _simulate_on_ray(cfg_dict: dict[str, Any], out: Path, todo: list[int], seeds: list[int], *,
                     address: str | None, workers: int | None, show_progress: bool | None) -> None:
    num_cpus = None if address else max(1, min(workers or os.cpu_count() or 1, len(todo)))
    with ray_session(address, num_cpus=num_cpus) as ray:
        jobs = [(cfg_dict, i, seeds[i]) for i in todo]
        where = address or f"local Ray, {num_cpus} CPUs"
        for k, files in ray_map(ray, _subject_files, jobs, description=f"simulating {len(todo)} subjects ({where})",
                                show_progress=show_progress):
            _write_subject_files(out / subject_id(todo[k]), files)


def _prepare_output(config: DatasetConfig, out: Path, overwrite: bool) -> None:
    from petspect._fileio import check_not_protected, is_petspect_output

    check_not_protected(out)
    rec_path = out / CONFIG_RECORD
    wanted = {"config": config.to_dict()}
    if out.exists() and any(out.iterdir()):
        if rec_path.is_file():
            old = read_json(rec_path)
            if old.get("config") == wanted["config"]:
                return  # resume
            if not overwrite:
                raise OutputExistsError("holds a dataset made with another configuration; use another folder or "
                                        "overwrite=True (CLI --overwrite) to replace it", path=out)
        else:  # never clear a folder petspect did not write, --overwrite or not
            raise OutputExistsError("exists and is not a petspect dataset; choose an empty or new folder", path=out)
        for child in out.iterdir():
            if child.is_dir() and child.name.startswith("sub-") and is_petspect_output(child):
                shutil.rmtree(child)
            elif child.name in (DATASET_JSON, CONFIG_RECORD):
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(rec_path, {**wanted, "petspect_version": petspect.__version__})


def simulate_cohort(config: DatasetConfig, out_dir: str | os.PathLike, *, workers: int | None = None,
                    overwrite: bool = False, show_progress: bool | None = None, executor: str = "local",
                    ray_address: str | None = None, device: Any = None) -> Path:
    """Simulate every subject of ``config`` into ``out_dir`` and write ``dataset.json``.

    Parameters
    ----------
    config : DatasetConfig
        The cohort (validated here).
    out_dir : path
        New or empty folder, or a folder holding an interrupted run of the same configuration (resumed).
    workers : int, optional
        Worker processes; default: all cores (``os.cpu_count()``), at most the number of subjects.
        ``1`` runs in this process. With the Ray executor and no ``ray_address``: the CPUs of the local
        Ray instance.
    overwrite : bool
        Replace a dataset made with another configuration.
    show_progress : bool, optional
        Progress bar with ETA (default: on unless PETSPECT_NO_PROGRESS is set).
    executor : {"local", "ray"}
        ``"ray"``: one Ray task per subject (:mod:`petspect.executor`); the files are byte-identical
        to the local executor's (every subject is a function of the configuration and its seed, on one
        torch thread).
    ray_address : str, optional
        Ray cluster to use (``"auto"``, ``"HOST:6379"``); default: a local Ray instance started and
        stopped here. Only with ``executor="ray"``.
    device : str or torch.device, optional
        The CPU (default); any other device is refused with InputError before any work
        (:func:`petspect._device.cohort_device`).

    Returns
    -------
    Path
        The ``dataset.json`` written.
    """
    from petspect._device import cohort_device

    cohort_device(device)  # refused before any file is written
    kind = parse_executor(executor)
    if ray_address and kind is not Executor.RAY:
        raise InputError("ray_address is only used with executor='ray'")
    config.validate()
    if kind is Executor.RAY:
        import_ray()  # a missing extra is reported before any file is written
    out = Path(out_dir)
    _prepare_output(config, out, overwrite)
    seeds = subject_seeds(config.seed, config.subjects)
    todo = [i for i in range(config.subjects) if not (out / subject_id(i) / SUBJECT_RECORD).is_file()]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    cfg_dict = config.to_dict()
    if todo:
        if kind is Executor.RAY:
            _simulate_on_ray(cfg_dict, out, todo, seeds, address=ray_address, workers=workers,
                             show_progress=show_progress)
        elif n_workers == 1:
            for i in track(todo, f"simulating {len(todo)} subjects", enabled=show_progress):
                _run_subject(cfg_dict, str(out), i, seeds[i])
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_run_subject, cfg_dict, str(out), i, seeds[i]) for i in todo]
                for fut in track(as_completed(futures), f"simulating {len(todo)} subjects ({n_workers} workers)",
                                 total=len(futures), enabled=show_progress):
                    fut.result()
    return write_dataset_json(config, out)


def _nic_describe(config: DatasetConfig) -> dict[str, Any]:
    from petspect.simulate.no_inverse_crime import describe

    return describe(config)


def write_dataset_json(config: DatasetConfig, out: Path) -> Path:
    """Assemble ``dataset.json`` (decathlon layout + petspect records) from the subject records."""
    subjects = [subject_id(i) for i in range(config.subjects)]
    records = {s: read_json(out / s / SUBJECT_RECORD) for s in subjects}
    splits = split_subjects(subjects, config.split.train, config.split.validation)
    first = records[subjects[0]]
    label_names = first.get("label_names", {})
    modality = "PT" if config.scanner.modality == "pet" else "NM"
    data: dict[str, Any] = {
        "name": config.name,
        "description": config.description or f"petspect simulated cohort ({config.phantom.kind}, {config.scanner.preset})",
        "reference": "petspect simulation; every case rebuilds from the records under 'petspect'",
        "licence": "CC0 (synthetic data)",
        "tensorImageSize": "3D",
        "modality": {"0": modality},
        "labels": {str(k): v for k, v in sorted(label_names.items(), key=lambda kv: int(kv[0]))},
        "numTraining": len(splits["training"]),
        "numValidation": len(splits["validation"]),
        "numTest": len(splits["test"]),
    }
    for split, subs in splits.items():
        data[split] = [{"subject": s, **records[s]["entry"]} for s in subs]
    data["petspect"] = {
        "version": petspect.__version__,
        "config": config.to_dict(),
        "simulation": _nic_describe(config),  # h4: inverse crime or not, and how the data were made
        "subjects": {s: {k: v for k, v in records[s].items() if k != "files"} for s in subjects},
    }
    path = out / DATASET_JSON
    write_json(path, data)
    return path


def load_dataset(folder: str | os.PathLike) -> dict[str, Any]:
    """Read a dataset's ``dataset.json``."""
    return read_json(Path(folder) / DATASET_JSON)


def rebuild_subject(folder: str | os.PathLike, subject: str, out_dir: str | os.PathLike) -> dict[str, bool]:
    """Re-create one subject from ``dataset.json`` into ``out_dir`` and compare it file by file.

    Returns
    -------
    dict of str to bool
        File name -> True when the rebuilt file is bit-for-bit identical to the stored one.
    """
    meta = load_dataset(folder)
    try:
        sub = meta["petspect"]["subjects"][subject]
    except KeyError:
        raise InputError(f"no subject {subject!r} in {folder}") from None
    config = config_from_dict(meta["petspect"]["config"])
    target = Path(out_dir) / subject
    if target.exists():
        raise OutputExistsError("exists; choose an empty folder for the rebuilt case", path=target)
    _run_subject(config.to_dict(), str(out_dir), int(sub["index"]), int(sub["seed"]))
    stored = read_json(Path(folder) / subject / SUBJECT_RECORD)["files"]
    return {name: sha256_file(target / name) == info["sha256"] for name, info in sorted(stored.items())}
