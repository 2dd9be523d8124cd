"""``petspect phantom NAME --out DIR``: make any registered phantom and write it to a folder.

The folder gets every volume as NIfTI (``activity.nii.gz``, ``mu_511.nii.gz``, ``labels.nii.gz``,
...), ``label_names.json``, ``record.json`` (rebuilds the phantom exactly), each table as
``<table>.json`` and ``<table>.csv``, and ``montage.png`` (axial, coronal and sagittal views of
the activity, the first mu map and the labels). The folder is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from petspect.cli._common import get_device, handle_errors
from petspect.errors import InputError, OutputExistsError


def register(app: typer.Typer) -> None:
    app.command("phantom")(phantom)


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are JSON when they parse as JSON (numbers, lists, true), else text."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--param takes KEY=VALUE, got {item!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def _check_param_types(name: str, kwargs: dict[str, Any], sig: Any) -> None:
    """Refuse a --param whose JSON type cannot be what the generator's default is (``radius_mm=abc`` for a
    number), instead of a TypeError deep inside the generator."""
    for key, value in kwargs.items():
        p = sig.get(key)
        if p is None or p.default is p.empty or p.default is None or key == "device":
            continue
        d = p.default
        if isinstance(d, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(d, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            want = "a finite number"
        elif isinstance(d, (tuple, list)):
            ok, want = isinstance(value, list), "a JSON list such as [1, 2]"
        elif isinstance(d, str):
            ok, want = isinstance(value, str), "a text value"
        else:
            continue
        if not ok:
            raise InputError(f"phantom {name!r}: --param {key} takes {want}, got {value!r}")


def _write_table(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    import csv
    import json

    (folder / f"{name}.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})


def write_montage(phantom, path: Path) -> None:
    """PNG: the axial slice where the activity varies most, the central coronal and sagittal slices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = ["activity"] + sorted(k for k in phantom.volumes if k.startswith("mu_"))[:1] + ["labels"]
    keys = [k for k in keys if k in phantom.volumes]
    act = phantom.volumes[keys[0]].numpy().astype(np.float64)
    # axial: the most structured slice (largest spread of activity); coronal, sagittal: the centre
    idx = [int(np.argmax(act.std(axis=(1, 2)))), act.shape[1] // 2, act.shape[2] // 2]
    fig, axes = plt.subplots(len(keys), 3, figsize=(10, 3.3 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        vol = phantom.volumes[key]
        data = vol.numpy()
        dz, dy, dx = vol.spacing_mm
        views = [(data[idx[0]], dy / dx, "axial"), (data[:, idx[1]], dz / dx, "coronal"),
                 (data[:, :, idx[2]], dz / dy, "sagittal")]
        for col, (img, aspect, title) in enumerate(views):
            ax = axes[row, col]
            img = img[::-1] if col else img  # superior up in coronal and sagittal views
            im = ax.imshow(img, cmap="tab20" if key == "labels" else "gray", aspect=aspect,
                           interpolation="nearest")
            ax.set_title(f"{key} ({vol.unit}) {title}", fontsize=8)
            ax.axis("off")
        fig.colorbar(im, ax=axes[row, 2], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_phantom(phantom, folder: Path) -> None:
    """Write a phantom's volumes, record, label names, tables and montage into ``folder``."""
    import json

    from petspect.io import save

    for key, vol in phantom.volumes.items():
        save(vol.to("cpu"), folder / f"{key}.nii.gz")
    (folder / "record.json").write_text(json.dumps(phantom.record, indent=2), encoding="utf-8")
    (folder / "label_names.json").write_text(json.dumps({str(k): v for k, v in phantom.label_names.items()}, indent=2),
                                             encoding="utf-8")
    for name, rows in phantom.tables.items():
        _write_table(folder, name, rows)
    write_montage(phantom, folder / "montage.png")


@handle_errors
def phantom(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Registered phantom: nema-iec, jaszczak, derenzo, cylinder, point-sources, "
                                         "line-source, shepp-logan, torso, brain."),
    out: Path = typer.Option(..., "--out", help="Output folder (must be new or empty unless --overwrite)."),
    voxel_mm: float = typer.Option(None, "--voxel-mm", help="Voxel size in mm (default: the phantom's)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (phantoms with random parts)."),
    tracer: str = typer.Option(None, "--tracer", help="Tracer (e.g. fdg, psma; default: the phantom's)."),
    param: list[str] = typer.Option([], "--param", help="Extra generator argument KEY=VALUE (JSON value); repeatable."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an output folder this command wrote before (never a folder "
                                                            "petspect did not write)."),
) -> None:
    """Make a digital phantom and write its volumes (NIfTI), record, tables and a PNG montage."""
    import inspect

    from petspect._fileio import atomic_dir, check_output_path
    from petspect.phantoms.base import get_generator

    gen = get_generator(name)
    if out.exists() and not out.is_dir():
        raise OutputExistsError("output exists and is a file, not a folder; choose another path", path=out)
    check_output_path(out, overwrite=overwrite, kind="phantom")
    kwargs: dict[str, Any] = {"seed": seed, **_parse_params(param)}
    if voxel_mm is not None:
        if not 0 < voxel_mm < math.inf:
            raise InputError(f"--voxel-mm must be a positive number of mm, got {voxel_mm}")
        kwargs["voxel_mm"] = voxel_mm
    if tracer is not None:
        kwargs["tracer"] = tracer
    sig = inspect.signature(gen).parameters
    if "device" in sig and "device" not in kwargs:
        kwargs["device"] = get_device(ctx)
    unknown = sorted(set(kwargs) - set(sig))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in sig.values()):
        raise InputError(f"phantom {name!r} takes no argument(s) {unknown}; it takes {sorted(sig)}")
    _check_param_types(name, kwargs, sig)
    ph = gen(**kwargs)
    with atomic_dir(out, kind="phantom") as tmp:
        write_phantom(ph, tmp)
    typer.echo(f"wrote {name} phantom to {out}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in ph.volumes.items()))
