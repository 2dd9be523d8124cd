"""The files every ``petspect study <task>`` writes, in one shape.

A study folder holds:

* ``metrics.json`` -- ``{method: {metric: value, "<metric>_ci95": [low, high], "delta_<metric>_ci95": ...}}``
  (the shape :func:`petspect.evaluation.summarise_methods` returns);
* ``summary.json`` -- how the study was made (:class:`StudySummary`: task, preset, seeds, data provenance,
  ``inverse_crime``, ``test_scored``, tuned parameters, acceptance checks, timings, device);
* ``report/index.html`` -- the page built with :class:`petspect.report.HtmlReport`;
* any further files the task adds (figures, per-subject tables).

:func:`check_metrics` refuses a metrics mapping that breaks the contract (a metric without its interval,
a non-numeric value), so no study writes a table a reader cannot trust.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from petspect.errors import ConfigError

#: The kind written into the output marker of a study folder (``--overwrite`` replaces only this kind).
STUDY_KIND = "study"


@dataclass
class Check:
    """One acceptance check, written before the test split is read.

    ``passed`` is True, False, or None (not evaluated, with the reason in ``detail``).
    """

    check: str
    passed: bool | None = None
    detail: str = ""


@dataclass
class StudySummary:
    """What ``summary.json`` says about a study (see the module docstring).

    Attributes
    ----------
    task : str
        The study's name (``denoise``, ``recon``, ``ac``, ``segment``, ``cad``, ``dose``, ...).
    preset : str
        The preset run (``quick``, ``full``, ``tiny``).
    seed : int
        The study's master seed.
    data : dict
        How the data were made (simulator, phantom, grid and voxel size in mm, counts, seeds) or read.
    inverse_crime : bool or None
        False when simulation and reconstruction use different models (finer grid, blur, estimated
        corrections); None when the task involves no reconstruction.
    test_scored : int
        How many times this configuration has been scored on the test split (1 on a first run).
    splits : dict
        ``{"training": n, "validation": n, "test": n}`` (subjects).
    tuned : dict
        ``{method: {parameter: value}}`` chosen on validation, with the search and budget.
    checks : list of Check
    wall_s : dict
        ``{stage: seconds}``.
    device : str
    notes : list of str
        What the reader must know (what was left out, what failed).
    """

    task: str
    preset: str
    seed: int
    data: dict[str, Any]
    inverse_crime: bool | None
    test_scored: int
    splits: dict[str, int]
    tuned: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        return {**d, **extra}


def check_metrics(metrics: Mapping[str, Mapping[str, Any]], *, required: Sequence[str] = ()) -> None:
    """Refuse a metrics table that breaks the study contract.

    Every value is a finite number, None (not applicable, said so in the report) or, for a key ending
    in ``_ci95``, a ``[low, high]`` pair; every metric named in ``required`` is present for every method
    with its ``_ci95``.

    Raises
    ------
    ConfigError
        Naming the method and metric.
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise ConfigError("a study's metrics must be a non-empty mapping method -> {metric: value}")
    for method, row in metrics.items():
        if not isinstance(row, Mapping):
            raise ConfigError(f"metrics[{method!r}] is not a mapping of metric -> value")
        for key, value in row.items():
            if key.endswith("_ci95"):
                if value is None:
                    continue
                if (not isinstance(value, (list, tuple)) or len(value) != 2
                        or not all(isinstance(v, (int, float)) for v in value)):
                    raise ConfigError(f"metrics[{method!r}][{key!r}] must be [low, high], got {value!r}")
            elif value is not None and not isinstance(value, (int, float, str)):
                raise ConfigError(f"metrics[{method!r}][{key!r}] must be a number, got {type(value).__name__}")
            elif isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"metrics[{method!r}][{key!r}] is {value}; write None and say why in the report")
        for key in required:
            if key not in row:
                raise ConfigError(f"metrics[{method!r}] lacks the required metric {key!r}")
            if row[key] is not None and f"{key}_ci95" not in row:
                raise ConfigError(f"metrics[{method!r}][{key!r}] has no interval ({key}_ci95)")


def claim_study_folder(out: str | os.PathLike, *, overwrite: bool = False,
                       inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Check and claim ``out`` for a study before any work (refuses inputs, foreign folders, cwd).

    With ``overwrite`` the study's previous results (``metrics.json``, ``summary.json``, ``report/``) are
    removed at once, so that a rerun which stops part-way cannot leave the earlier run's figures looking
    like its own; anything else in the folder (a simulated cohort a rerun reuses, trained models) stays.
    """
    import shutil

    from petspect._fileio import claim_output_folder

    out_p = claim_output_folder(out, kind=STUDY_KIND, overwrite=overwrite, inputs=inputs)
    if overwrite:
        for name in ("metrics.json", "summary.json"):
            if (out_p / name).is_file():
                (out_p / name).unlink()
        if (out_p / "report").is_dir() and not (out_p / "report").is_symlink():
            shutil.rmtree(out_p / "report")
    return out_p


def write_study(out: str | os.PathLike, metrics: Mapping[str, Mapping[str, Any]], summary: StudySummary,
                report: Any, *, required: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``metrics.json``, ``summary.json`` and ``report/index.html`` into a claimed study folder.

    Parameters
    ----------
    out : path
        A folder claimed with :func:`claim_study_folder`.
    metrics : mapping
        method -> {metric: value, ``<metric>_ci95``: [low, high], ...}; checked by :func:`check_metrics`.
    summary : StudySummary
    report : petspect.report.HtmlReport
    required : sequence of str
        Metrics every method must have (with intervals).

    Returns
    -------
    dict
        ``{"metrics": path, "summary": path, "report": path}``.
    """
    from petspect._json import write_json

    check_metrics(metrics, required=required)
    if not isinstance(summary, StudySummary):
        raise ConfigError("summary must be a StudySummary")
    out_p = Path(out)
    paths = {"metrics": out_p / "metrics.json", "summary": out_p / "summary.json",
             "report": out_p / "report" / "index.html"}
    write_json(paths["metrics"], {m: dict(r) for m, r in metrics.items()}, nonfinite="null")
    write_json(paths["summary"], summary.to_dict(), nonfinite="null")
    report.write(paths["report"])
    return paths
