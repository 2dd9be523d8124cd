"""Apply a trained denoiser to real data: DICOM series or NIfTI in, derived DICOM series or NIfTI out.

Geometry, unit and SUV facts of the input are kept: the output has the input's grid, the input's unit
(Bq/mL or SUV), and, for DICOM, the input series' patient, study and radiopharmaceutical facts (so its
SUV factors are the input's; :func:`petspect.io.write_dicom_series` with the input as ``source``).

Units
-----
The network saw PET divided by the training cohort's Bq/mL per SUV unit (``bqml_per_suv`` in the model
card; :mod:`petspect.tasks.denoise`). Real data are mapped onto that scale and back with one factor ``f``
(``x_model = f x``, ``y = y_model / f``; per slice when the SUV factors differ by slice):

==========================  ===========================================  ================================
input                        model records ``bqml_per_suv`` (petspect)    otherwise
==========================  ===========================================  ================================
SUV (``meta["suv_kind"]``)   ``f = bqml_per_suv``                          to Bq/mL: ``f = 1 / suv_factor``
Bq/mL with SUVbw factors     ``f = suv_bw * bqml_per_suv`` (to SUV, then   ``f = 1``
                             to the training scale)
Bq/mL without SUV factors    ``f = 1``                                    ``f = 1``
==========================  ===========================================  ================================

A model trained on SUV volumes (normalisation unit ``SUV...``) takes ``f = suv_factor`` for Bq/mL input.
Any other unit mismatch raises :class:`~petspect.errors.UnitError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from petspect._fileio import atomic_dir, atomic_write_bytes, check_output_path
from petspect.errors import DataNotFoundError, InputError, UnitError
from petspect.executor import Executor, import_ray, parse_executor, ray_actor_map, ray_session
from petspect.orientation import from_axial, to_axial
from petspect.progress import track
from petspect.volume import Volume


def _suv_factor(volume: Volume, kind: str) -> torch.Tensor | None:
    f = (volume.meta.get("suv_factors") or {}).get(kind)
    if f is None:
        return None
    t = torch.as_tensor(f, dtype=torch.float64)
    return t[:, None, None] if t.ndim == 1 else t


def model_scale(volume: Volume, model: Any) -> tuple[torch.Tensor, str]:
    """The factor ``f`` that puts ``volume`` on the model's training scale, and how it was chosen.

    Parameters
    ----------
    volume : Volume
        PET in Bq/mL or SUV (``meta["suv_kind"]`` and ``meta["suv_factors"]`` as :func:`petspect.io.load`
        sets them).
    model : petspect.train.TrainedModel

    Returns
    -------
    (torch.Tensor, str)
        ``f`` (scalar, or ``(z, 1, 1)`` per slice; float64) and a one-line description.
    """
    unit = model.input_normalizations[0].unit or ""
    per_suv = (model.card.get("data") or {}).get("bqml_per_suv")
    is_suv = volume.unit.startswith("SUV")
    one = torch.ones((), dtype=torch.float64)
    if unit.startswith("SUV"):
        if volume.unit == unit:
            return one, f"input already in {unit}"
        kind = "bw" if unit == "SUVbw" else unit[3:]
        f = _suv_factor(volume, kind)
        if volume.unit != "Bq/mL" or f is None:
            raise UnitError(f"the model takes {unit}; input in {volume.unit!r} without that SUV factor")
        return f, f"Bq/mL -> {unit} with the input's SUV factor"
    if unit not in ("", "Bq/mL"):
        if volume.unit != unit:
            raise UnitError(f"the model takes {unit!r}, the input is in {volume.unit!r}")
        return one, f"input already in {unit}"
    if is_suv:
        if per_suv:
            return one * float(per_suv), f"{volume.unit} x {float(per_suv):.6g} Bq/mL per SUV (training scale)"
        f = _suv_factor(volume, str(volume.meta.get("suv_kind", "bw")))
        if f is None:
            raise UnitError(f"input in {volume.unit} has no SUV factor to convert it to Bq/mL")
        return 1.0 / f, f"{volume.unit} -> Bq/mL with the input's SUV factor"
    if unit and volume.unit != unit:
        raise UnitError(f"the model takes {unit!r}, the input is in {volume.unit!r}")
    f = _suv_factor(volume, "bw")
    if per_suv and f is not None:
        return f * float(per_suv), "Bq/mL -> SUVbw -> training scale (Bq/mL per SUV of the training cohort)"
    return one, "Bq/mL used as is (no SUV factors)"


def denoise_physical(model: Any, volume: Volume, extra: tuple[Volume, ...] = (), *, overlap: float = 0.25,
                     device: Any = None, tta: bool = False, preserve_total: bool = False) -> tuple[Volume, str]:
    """Denoise a PET volume in any supported unit; returns (volume in the input's unit, conversion note).

    The network runs on the standard axial orientation: an input on any other axis-aligned grid (a NIfTI
    with nibabel's RAS affine, a flipped slice order) is reordered losslessly for it and the result put back
    on the input's grid; an oblique input is refused with the command that resamples it. The anatomical
    channels must lie on the input's grid (:func:`_load_extra` resamples them onto it).
    """
    from petspect.tasks.denoise import denoise_volume

    if volume.modality not in ("PT", "NM", "", None):
        raise InputError(f"expected a PET or SPECT image, got modality {volume.modality!r}")
    for name, v in (("input", volume), *((f"anatomical channel {i + 1}", e) for i, e in enumerate(extra))):
        if v.data.is_floating_point() and not bool(torch.isfinite(v.data).all()):
            n = int((~torch.isfinite(v.data)).sum())
            # a convolution spreads one NaN over its whole receptive field (243 voxels out for 1 in)
            raise InputError(f"the {name} holds {n} NaN or infinite voxels, which the network would spread to "
                             "their neighbours; replace them first (e.g. with 0 outside the body)")
    f, note = model_scale(volume, model)
    f = f.to(volume.device)
    scaled = volume.with_data((volume.data.double() * f).float(), unit=model.input_normalizations[0].unit or volume.unit)
    axial, view = to_axial(scaled, what="input image")
    axial_extra = tuple(to_axial(e, what=f"anatomical channel {i + 1}")[0] for i, e in enumerate(extra))
    pred = denoise_volume(model, axial, axial_extra, overlap=overlap, device=device, tta=tta,
                          preserve_total=preserve_total)
    pred = from_axial(pred, view)
    out = (pred.data.double() / f).to(volume.data.dtype if volume.data.is_floating_point() else torch.float32)
    return volume.with_data(out), note


def _load_extra(paths: Mapping[str, str | os.PathLike], model: Any, reference: Volume) -> tuple[Volume, ...]:
    from petspect.io import load

    want = list(model.input_keys[1:])
    missing = [k for k in want if k not in paths]
    if missing or set(paths) - set(want):
        raise InputError(f"the model takes anatomical channels {want}; got {sorted(paths)}")
    vols = []
    for k in want:
        v = load(paths[k])
        vols.append(v if v.same_grid(reference) and v.shape == reference.shape else v.resample_to(reference))
    return tuple(vols)


def apply_model(model_dir: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike, *,
                extra: Mapping[str, str | os.PathLike] | None = None, overwrite: bool = False,
                overlap: float = 0.25, device: Any = None, series_description: str | None = None,
                tta: bool = False, preserve_total: bool = False, anonymise: bool = False,
                secret_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Denoise a DICOM series or NIfTI file with a model folder and write the result.

    ``anonymise`` de-identifies a DICOM output (:mod:`petspect.io.anonymise`; key from ``secret_file``,
    else stored beside ``out``).

    Parameters
    ----------
    model_dir : path
        A model folder (``model.pt``, ``config.json``, ``normalization.json``, ``model_card.json``).
    input_path : path
        DICOM series folder (or one of its files), or a NIfTI file, in Bq/mL or SUV.
    out : path
        ``*.nii`` / ``*.nii.gz``: a NIfTI file; anything else: a folder for a new DICOM series (derived
        from the input series when the input is DICOM).
    extra : mapping key -> path, optional
        Anatomical channels the model takes (e.g. ``{"ct": "ct_dicom/"}``); resampled onto the PET grid.
    overwrite : bool
        Replace an existing output.
    overlap : float
        Sliding-window overlap.
    device : torch.device or str, optional
    series_description : str, optional
        Of the derived DICOM series.
    tta : bool
        Average over in-plane flips and turns (:func:`petspect.train.predict_volume`).
    preserve_total : bool
        Scale the output to the input's total activity (:func:`petspect.tasks.denoise.denoise_volume`).

    Returns
    -------
    dict
        ``{"output": Path, "unit": str, "conversion": str, "shape": tuple, "seconds": float}``.

    See Also
    --------
    apply_many : many studies with one model, in this process or on Ray.
    """
    from petspect.train import load_model

    from petspect.io import output_kind

    out_p = check_output_path(out, overwrite=overwrite, inputs=[input_path, model_dir], kind=output_kind(out))
    model = load_model(model_dir, device=device)
    secret = None
    if anonymise:
        from petspect.io.anonymise import secret_for_output

        secret = secret_for_output(out_p, secret_file)[0].secret
    options = ApplyOptions(overlap=overlap, series_description=series_description, tta=tta,
                           preserve_total=preserve_total, anonymise_secret=secret)
    return _apply_loaded(model, Path(model_dir).resolve().name, Study(Path(input_path), dict(extra or {})), out_p,
                         options, device=device, overwrite=overwrite)


def _apply_loaded(model: Any, name: str, study: Study, out_p: Path, options: ApplyOptions, *, device: Any,
                  overwrite: bool) -> dict[str, Any]:
    """Denoise ``study`` with a loaded model and write ``out_p`` (NIfTI by suffix, else a DICOM series)."""
    import time

    from petspect.io import load, save
    from petspect.io._meta import full_suffix

    t0 = time.perf_counter()
    inp = study.input
    vol = load(inp)
    extras = _load_extra(study.extra, model, vol)
    den, note = denoise_physical(model, vol, extras, overlap=options.overlap, device=device, tta=options.tta,
                                 preserve_total=options.preserve_total)
    den.meta = {**den.meta, "denoised_by": {"model": name, "card": model.card.get("data", {}), "units": note}}
    if full_suffix(out_p) in (".nii", ".nii.gz"):
        save(den, out_p, overwrite=overwrite)
    else:
        from petspect.io import write_dicom_series

        from petspect.io.anonymise import AnonymisationKey

        key = None if options.anonymise_secret is None else AnonymisationKey(options.anonymise_secret)
        write_dicom_series(den, out_p, source=inp if _is_dicom(inp) else None, overwrite=overwrite,
                           series_description=options.series_description or f"petspect denoised ({name})"[:64],
                           anonymize=key is not None, anonymisation_key=key)
    return {"output": out_p, "unit": den.unit, "conversion": note, "shape": tuple(den.shape),
            "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------- many studies
OUT_FORMATS = ("same", "nifti", "dicom")


@dataclass(frozen=True)
class Study:
    """One study to denoise: the PET/SPECT input and the anatomical channels the model takes.

    Attributes
    ----------
    input : Path
        DICOM series folder (or one of its files), NIfTI or Interfile image.
    extra : dict key -> Path
        Anatomical channels by the model's key (e.g. ``{"ct": Path("ct_dicom")}``).
    """

    input: Path
    extra: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class ApplyOptions:
    """Inference settings shared by every study (see :func:`apply_model`)."""

    overlap: float = 0.25
    series_description: str | None = None
    tta: bool = False
    preserve_total: bool = False
    anonymise_secret: bytes | None = None  # de-identify DICOM outputs with this key (petspect.io.anonymise)


def _is_dicom(path: Path) -> bool:
    from petspect.io._meta import full_suffix

    return path.is_dir() or full_suffix(path) not in (".nii", ".nii.gz", ".hv", ".h33")


def read_study_list(path: str | os.PathLike) -> list[Study]:
    """Read a list of studies: one per line, ``INPUT [KEY=PATH ...]`` (shell quoting for spaces).

    Blank lines and lines starting with ``#`` are skipped; relative paths are relative to the list
    file's folder. ``KEY=PATH`` gives an anatomical channel of that study (e.g. ``ct=ct/``).

    Raises
    ------
    DataNotFoundError
        The list file is missing.
    InputError
        A line cannot be parsed, or lists no input.
    """
    import shlex

    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError("list of inputs not found", path=p)
    studies = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            first, *rest = shlex.split(line)
        except ValueError as exc:
            raise InputError(f"line {n}: {exc}", path=p) from None
        extra = {}
        for token in rest:
            key, sep, value = token.partition("=")
            if not sep or not key or not value:
                raise InputError(f"line {n}: expected KEY=PATH after the input, got {token!r}", path=p)
            extra[key] = p.parent / value
        studies.append(Study(p.parent / first, extra))
    if not studies:
        raise InputError("lists no inputs", path=p)
    return studies


def output_path(study_input: str | os.PathLike, out_dir: str | os.PathLike, out_format: str = "same") -> Path:
    """Where :func:`apply_many` writes a study's result in ``out_dir``.

    The name is the input's: ``scan.nii.gz`` -> ``scan``, a DICOM series folder ``pet/`` (or a file in it)
    -> ``pet``. ``out_format`` "same" writes DICOM for DICOM input and NIfTI otherwise; "nifti" gives
    ``NAME.nii.gz``, "dicom" a folder ``NAME`` holding a derived series.
    """
    from petspect.io._meta import full_suffix

    if out_format not in OUT_FORMATS:
        raise InputError(f"out_format must be one of {OUT_FORMATS}, got {out_format!r}")
    inp = Path(study_input)
    dicom = _is_dicom(inp)
    if dicom:
        name = inp.name if inp.is_dir() else inp.parent.name
    else:
        suffix = full_suffix(inp)
        name = inp.name[:-len(suffix)] if suffix else inp.name
    as_dicom = out_format == "dicom" or (out_format == "same" and dicom)
    return Path(out_dir) / (name if as_dicom else f"{name}.nii.gz")


class _StudyWorker:
    """A loaded model that denoises studies into a private temporary folder and returns the files (Ray actor).

    The calling process writes the files, so the output folder need not be visible to the workers
    (the inputs must be: same path on every node).
    """

    def __init__(self, model_dir: str, options: ApplyOptions, device: Any) -> None:
        from petspect.train import load_model

        self.model, self.options, self.device = load_model(model_dir, device=device), options, device
        self.name = Path(model_dir).resolve().name

    def run(self, study: Study, out_name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="petspect-apply-") as tmp:
            out = Path(tmp) / out_name
            info = _apply_loaded(self.model, self.name, study, out, self.options, device=self.device, overwrite=False)
            if out.is_dir():
                files = {q.relative_to(out).as_posix(): q.read_bytes() for q in sorted(out.rglob("*")) if q.is_file()}
            else:
                files = {"": out.read_bytes()}
        return info, files


def _write_returned(target: Path, files: dict[str, bytes]) -> None:
    """Write a worker's output (one file: key ``""``; a folder: relative paths) atomically onto ``target``."""
    if set(files) == {""}:
        atomic_write_bytes(target, files[""])
        return
    from petspect.io.dicom_write import DICOM_KIND

    with atomic_dir(target, kind=DICOM_KIND) as tmp:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)


def apply_many(model_dir: str | os.PathLike, studies: Sequence[Study | str | os.PathLike], *,
               out_dir: str | os.PathLike | None = None, outputs: Sequence[str | os.PathLike] | None = None,
               out_format: str = "same", overwrite: bool = False, options: ApplyOptions = ApplyOptions(),
               device: Any = None, executor: str = "local", ray_address: str | None = None,
               workers: int | None = None, show_progress: bool | None = None) -> list[dict[str, Any]]:
    """Denoise many studies with one model, in this process or on Ray; same files either way.

    Every input and output is checked before any work: inputs exist, outputs are distinct, none is an
    input or lies in an input folder, and none exists unless ``overwrite``.

    Parameters
    ----------
    model_dir : path
        Model folder.
    studies : sequence of Study or paths
        The inputs (see :func:`read_study_list` for a list file).
    out_dir : path, optional
        Folder for the outputs, named by :func:`output_path`; or give ``outputs``.
    outputs : sequence of paths, optional
        One output path per study (NIfTI by suffix, else a DICOM series folder).
    out_format : {"same", "nifti", "dicom"}
        With ``out_dir``.
    overwrite : bool
    options : ApplyOptions
    device : torch.device or str, optional
        With Ray, each actor reserves one GPU when this is a CUDA device.
    executor : {"local", "ray"}
        ``"local"``: one model, studies in turn. ``"ray"``: a pool of Ray actors (``workers`` of them,
        default one per CPU, at most one per study), each loading the model once (:mod:`petspect.executor`).
    ray_address : str, optional
        A running Ray cluster; default: a local Ray instance of ``workers`` CPUs, started and stopped here.
    workers : int, optional
    show_progress : bool, optional

    Returns
    -------
    list of dict
        :func:`apply_model`'s record of each study, in the order of ``studies``.
    """
    from petspect.train import load_model

    kind = parse_executor(executor)
    if ray_address and kind is not Executor.RAY:
        raise InputError("ray_address is only used with executor='ray'")
    def absolute(p: str | os.PathLike) -> Path:  # Ray workers need not share this process's working folder
        return Path(p).expanduser().absolute()

    items = [Study(absolute(s.input), {k: absolute(v) for k, v in s.extra.items()}) if isinstance(s, Study)
             else Study(absolute(s)) for s in studies]
    if not items:
        raise InputError("no inputs to denoise")
    if (out_dir is None) == (outputs is None):
        raise InputError("give either out_dir or one output per input")
    outs = [Path(o) for o in outputs] if outputs is not None else [output_path(s.input, out_dir, out_format)
                                                                      for s in items]
    if len(outs) != len(items):
        raise InputError(f"{len(items)} inputs but {len(outs)} outputs")
    for s in items:
        for p in (s.input, *s.extra.values()):
            if not p.exists():
                raise DataNotFoundError("input not found", path=p)
    resolved = [o.expanduser().resolve() for o in outs]
    dupes = sorted({str(o) for o in resolved if resolved.count(o) > 1})
    if dupes:
        raise InputError(f"several inputs would be written to the same output: {dupes}; give them distinct names")
    all_inputs = [p for s in items for p in (s.input, *s.extra.values())] + [Path(model_dir)]
    from petspect.io import output_kind

    outs = [check_output_path(o, overwrite=overwrite, inputs=all_inputs, kind=output_kind(o)) for o in outs]
    if kind is Executor.RAY:
        import_ray()
    model = load_model(model_dir, device=device)  # refuses a bad model folder before any study is read
    name = Path(model_dir).resolve().name
    results: list[dict[str, Any] | None] = [None] * len(items)
    if kind is Executor.LOCAL:
        for i in track(range(len(items)), f"denoising {len(items)} studies", enabled=show_progress):
            results[i] = _apply_loaded(model, name, items[i], outs[i], options, device=device, overwrite=overwrite)
        return results
    del model
    n = max(1, min(workers or os.cpu_count() or 1, len(items)))
    gpu = 1 if str(device or "").startswith("cuda") else 0
    with ray_session(ray_address, num_cpus=None if ray_address else n) as ray:
        jobs = [(s, o.name) for s, o in zip(items, outs)]
        for i, (info, files) in ray_actor_map(ray, _StudyWorker, (str(Path(model_dir).resolve()), options, device),
                                              "run", jobs, n_actors=n, num_gpus=gpu,
                                              description=f"denoising {len(items)} studies (Ray)",
                                              show_progress=show_progress):
            _write_returned(outs[i], files)
            results[i] = {**info, "output": outs[i]}
    return results
