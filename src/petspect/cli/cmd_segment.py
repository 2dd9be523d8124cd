"""``petspect segment``, ``petspect register`` and ``petspect study segment``.

* ``segment --method suv41|suv50|suv25|percist|adaptive|gradient`` or ``--model M`` on a PET (DICOM series
  or NIfTI) writes NIfTI masks, a per-lesion MTV/TLG table and, for a DICOM input, a DICOM SEG and an
  RTSTRUCT referencing the series (:mod:`petspect.segmentation.apply`); ``--model`` with an organ model
  segments organs on a CT (``--input CT``) and writes a label map, an organ table and SEG/RTSTRUCT;
* ``register MOVING FIXED --out OUT`` writes the moved image and the transform: an ITK ``.tfm`` for the
  intensity-based rigid/affine registration (:mod:`petspect.registration.rigid`), a displacement field for
  ``--method learned --model M`` (:mod:`petspect.registration.learned`);
* ``study segment`` runs the segmentation study (:mod:`petspect.segmentation.study`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, get_device, handle_errors


#: every file ``petspect register`` can write into its folder (removed first on an --overwrite rerun)
REGISTRATION_OUTPUTS = ("moved.nii.gz", "transform.tfm", "transform.json", "displacement.nii.gz", "registration.json")


def register(app: typer.Typer) -> None:
    from petspect.cli._study import study_app

    app.command("segment")(segment)
    app.command("register")(register_images)
    study_app.command("segment")(study_segment)


#: the options each way of segmenting reads (a model reads none of them; --exclude is read by all)
_USES = {"suv41": {"--seeds", "--seed-suv", "--margin-mm"}, "suv50": {"--seeds", "--seed-suv", "--margin-mm"},
         "adaptive": {"--seeds", "--seed-suv", "--margin-mm"}, "gradient": {"--seeds", "--seed-suv", "--margin-mm"},
         "suv25": set(), "percist": {"--liver-mask"}}


def _refuse_unused(method: str | None, given: dict) -> None:
    """Fail on an option the method (``None``: a model) does not read, instead of dropping it."""
    uses = _USES.get(method.lower(), set(given)) if method is not None else set()
    unused = [k for k, v in given.items() if v is not None and k not in uses]
    if unused:
        what = f"--method {method}" if method is not None else "--model"
        fail(f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by {what}; drop "
             f"{'it' if len(unused) == 1 else 'them'}")


def _mask_on(path: Path | None, grid, what: str):
    if path is None:
        return None
    from petspect.errors import GeometryError
    from petspect.io import load

    vol = load(path)
    if not vol.same_grid(grid, atol_mm=1e-2):
        vol = vol.resample_to(grid, mode="nearest")
        if vol.numpy().sum() == 0:
            raise GeometryError(f"the {what} does not overlap the PET", path=path)
    return vol.numpy() != 0


@handle_errors
def segment(
    ctx: typer.Context,
    input: Path = typer.Option(..., "--input", help="PET: a DICOM series folder or a NIfTI file."),
    out: Path = typer.Option(..., "--out", help="Output folder (masks, lesions.csv, seg.dcm, rtstruct.dcm)."),
    method: str = typer.Option(None, "--method", help="suv41, suv50, suv25, percist, adaptive or gradient."),
    model: Path = typer.Option(None, "--model", help="A segmentation model folder (petspect study segment writes "
                                                     "OUT/model_<name>); an organ model (model_organs_*) takes "
                                                     "the CT as --input."),
    ct: Path = typer.Option(None, "--ct", help="CT (DICOM or NIfTI); resampled onto the PET for a model with a "
                                               "CT channel."),
    suv: str = typer.Option("bw", "--suv", help="SUV kind (bw, lbm_james, ...) from the DICOM or recorded factors."),
    suv_factor: float = typer.Option(None, "--suv-factor", help="Bq/mL -> SUV factor (g/mL) for a NIfTI without "
                                                                "one; for a DICOM series it replaces the header's."),
    unit: str = typer.Option(None, "--unit", help="Unit of an --input that carries none (a NIfTI from another "
                                                  "tool): Bq/mL (with --suv-factor) or SUV; HU for an organ model."),
    liver_mask: Path = typer.Option(None, "--liver-mask", help="Liver mask (percist's reference region)."),
    seeds: Path = typer.Option(None, "--seeds", help="Seed regions, one component per lesion (suv41, suv50, "
                                                     "adaptive, gradient); default: SUV >= --seed-suv."),
    exclude: Path = typer.Option(None, "--exclude", help="Mask of voxels never segmented (brain, bladder, ...)."),
    seed_suv: float = typer.Option(None, "--seed-suv", min=0.0, help="SUV that seeds a lesion (automatic seeds; "
                                                                     "suv41, suv50, adaptive, gradient); default 2.5."),
    margin_mm: float = typer.Option(None, "--margin-mm", min=0.0, help="How far a lesion grows past its seed (suv41, "
                                                                       "suv50, adaptive, gradient); default 15."),
    formats: str = typer.Option("nifti,seg,rtstruct", "--formats", help="Comma-separated: nifti, seg, rtstruct."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous segment output folder."),
) -> None:
    """Segment lesions on a PET with a threshold method or a trained model; write masks, SEG/RTSTRUCT and MTV/TLG."""
    from dataclasses import replace

    from petspect._fileio import check_output_path
    from petspect.io import load
    from petspect.io._paths import is_dicom_file
    from petspect.segmentation.apply import SEGMENT_KIND, to_suv, write_segmentation

    if (method is None) == (model is None):
        fail("give exactly one of --method M or --model DIR")
    _refuse_unused(method, {"--seeds": seeds, "--liver-mask": liver_mask, "--seed-suv": seed_suv,
                            "--margin-mm": margin_mm})
    check_output_path(out, overwrite=overwrite, kind=SEGMENT_KIND,
                      inputs=[p for p in (input, ct, model, liver_mask, seeds, exclude) if p is not None])
    is_dicom = input.is_dir() or is_dicom_file(input)
    if model is not None:
        from petspect.segmentation.networks import load_segmenter

        seg = load_segmenter(model, device=get_device(ctx))
        from petspect.segmentation.networks import CT_ONLY_INPUTS

        organ = seg.spec.inputs in CT_ONLY_INPUTS  # an organ model (CT alone)
        if ct is not None and seg.spec.inputs != "pet+ct":
            fail(f"{model}: this model takes {'the CT as --input' if organ else 'no CT channel'}; drop --ct")
        if organ:
            unused = [k for k, v in (("--suv-factor", suv_factor), ("--exclude", exclude)) if v is not None]
            if unused:
                fail(f"{', '.join(unused)}: not used by an organ model (it reads the CT only); drop them")
            return _segment_organs(seg, input, is_dicom, out, model, formats, overwrite, unit)
    if is_dicom and suv_factor is None and unit is None:
        pet = load(input, suv=suv)
    else:
        from petspect.io.stated_units import state_unit

        pet = to_suv(state_unit(load(input), unit, path=input), kind=suv, factor=suv_factor, path=input)
    import numpy as np

    bad = int((~np.isfinite(pet.numpy())).sum())
    if bad:  # a network would carry them through its convolutions into the masks around them
        fail(f"{input}: the PET holds {bad} NaN or infinite voxels")
    if not np.any(pet.numpy() > 0):
        fail(f"{input}: the PET has no positive SUV (all voxels zero or negative); nothing to segment")
    info = {"input": str(input), "suv_kind": suv}
    if suv_factor is not None:
        info["suv_factor_given"] = suv_factor
    if unit is not None:
        info["unit_stated"] = unit
    if method is not None:
        from petspect.segmentation.thresholds import DEFAULT_PARAMS, ThresholdMethod, segment_threshold

        try:
            m = ThresholdMethod(method.lower())
        except ValueError:
            fail(f"unknown --method {method!r}; choose one of {[x.value for x in ThresholdMethod]}")
        given = {k: v for k, v in (("seed_suv", seed_suv), ("margin_mm", margin_mm)) if v is not None}
        params = replace(DEFAULT_PARAMS[m], **given)
        mask = segment_threshold(m, pet.numpy(), pet.spacing_mm, params=params,
                                 liver=_mask_on(liver_mask, pet, "liver mask"), seeds=_mask_on(seeds, pet, "seed mask"),
                                 exclude=_mask_on(exclude, pet, "exclude mask"))
        name = m.value
        info["params"] = params
    else:
        from petspect.segmentation.networks import predict_lesions

        ct_vol = _ct_in_hu(ct).resample_to(pet, fill_value=-1000.0) if ct is not None else None
        mask = predict_lesions(seg, pet, ct_vol, exclude=_mask_on(exclude, pet, "exclude mask"))
        name = seg.name
        info["model"] = str(model)
        info["post_processing"] = {"threshold": seg.threshold, "min_component_ml": seg.min_component_ml}
    res = write_segmentation(out, pet, mask, method=name, source_dicom=input if is_dicom else None,
                             formats=tuple(f.strip() for f in formats.split(",") if f.strip()), info=info,
                             overwrite=overwrite, inputs=tuple(p for p in (ct, model) if p is not None))
    typer.echo(f"{name}: {res.n_lesions} lesions, MTV {res.mtv_ml:.2f} mL, TLG {res.tlg:.2f} (SUV x mL); wrote "
               + ", ".join(p.name for p in res.paths.values()) + f" in {out}")
    for what in res.not_written:
        typer.secho(f"not written: {what}", fg=typer.colors.YELLOW, err=True)


def _ct_in_hu(path: Path, unit: str | None = None, *, what: str = "--ct"):
    """The CT at ``path`` (its unit stated as ``unit`` when it carries none); refused unless in HU and finite."""
    import torch

    from petspect.io import load
    from petspect.io.stated_units import state_unit

    ct = state_unit(load(path), unit, path=path)
    bad = int((~torch.isfinite(ct.data)).sum())
    if bad:
        fail(f"{path}: the CT holds {bad} NaN or infinite voxels")
    if ct.unit != "HU":
        hint = " (a file without a unit: state it with --unit HU)" if ct.unit == "a.u." and what == "--input" else ""
        fail(f"{path}: the model takes a CT in HU as {what}; this image is in {ct.unit!r}{hint}")
    return ct


def _segment_organs(seg, input: Path, is_dicom: bool, out: Path, model: Path, formats: str, overwrite: bool,
                    unit: str | None = None) -> None:
    from petspect.segmentation.apply import write_organ_segmentation

    ct = _ct_in_hu(input, unit, what="--input")
    from petspect.segmentation.organs import segment_organs

    labels = segment_organs(seg, ct)  # at the model's voxel size, back on the CT's grid
    organs = seg.spec.classes[1:]
    res = write_organ_segmentation(out, ct, labels, organs, method=seg.name, source_dicom=input if is_dicom else None,
                                   formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
                                   info={"input": str(input), "model": str(model)}, overwrite=overwrite,
                                   inputs=(model,))
    typer.echo(f"{seg.name}: {res.n_lesions} of {len(organs)} organs found ({', '.join(organs)}), "
               f"{res.mtv_ml:.1f} mL in all; wrote " + ", ".join(p.name for p in res.paths.values()) + f" in {out}")
    for what in res.not_written:
        typer.secho(f"not written: {what}", fg=typer.colors.YELLOW, err=True)


@handle_errors
def register_images(
    moving: Path = typer.Argument(..., help="Image to move (PET, SPECT, CT, MR; DICOM or NIfTI)."),
    fixed: Path = typer.Argument(..., help="Reference image (its grid is the output's)."),
    out: Path = typer.Option(..., "--out", help="Output folder: moved.nii.gz and transform.tfm + transform.json "
                                                "(intensity) or displacement.nii.gz + registration.json (learned)."),
    method: str = typer.Option("intensity", "--method", help="intensity (SimpleITK, --transform) or learned "
                                                             "(a deformable network, --model)."),
    model: Path = typer.Option(None, "--model", help="A learned registration model folder (registration.json, "
                                                     "model.pt), e.g. from benchmarks/bench_registration.py "
                                                     "--save-model."),
    transform: str = typer.Option("rigid", "--transform", help="translation, rigid or affine."),
    metric: str = typer.Option("mi", "--metric", help="mi (Mattes mutual information) or mse (same modality)."),
    init: str = typer.Option("identity", "--init", help="identity (shared frame of reference) or geometry "
                                                        "(align the grid centres first)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the metric's voxel sampling."),
    moving_fwhm_mm: float = typer.Option(0.0, "--moving-fwhm-mm", min=0.0,
                                         help="Blur MOVING by this FWHM (mm) for the metric only, e.g. a CT to its "
                                              "SPECT's resolution."),
    fixed_fwhm_mm: float = typer.Option(0.0, "--fixed-fwhm-mm", min=0.0, help="Same for FIXED."),
    nearest: bool = typer.Option(False, "--nearest", help="Resample the moved image by nearest neighbour (labels)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous register output folder."),
) -> None:
    """Register MOVING onto FIXED; write the moved image and the transform (ITK .tfm or a displacement field).

    ``--method intensity`` (default): rigid/affine, Mattes mutual information (SimpleITK). ``--method learned
    --model M``: a learned deformable network (moving: PET or SPECT; fixed: the CT or MR it was trained
    for); MOVING is resampled onto FIXED's grid in world coordinates first.
    """
    import numpy as np

    from petspect._fileio import check_output_path, claim_output_folder
    from petspect.io import load, save

    if method not in ("intensity", "learned"):
        fail(f"unknown --method {method!r}; choose intensity or learned")
    if (method == "learned") != (model is not None):
        fail("--method learned needs --model M (and --model goes with --method learned only)")
    if method == "learned":
        return _register_learned(moving, fixed, out, model, nearest, overwrite)
    from petspect.registration.rigid import register as run, resample_with_matrix, write_transform

    # the folder is made only once the registration succeeded: a failed run leaves nothing behind
    check_output_path(out, overwrite=overwrite, kind="registration", inputs=[moving, fixed])
    mov, fix = load(moving), load(fixed)
    if init == "identity" and not _boxes_overlap(mov, fix):
        fail(f"{moving} and {fixed} do not overlap in patient coordinates, and --init identity starts from where "
             "they are; use --init geometry (align the grid centres first)")
    res = run(mov, fix, transform=transform, metric=metric, init=init, seed=seed, moving_fwhm_mm=moving_fwhm_mm,
              fixed_fwhm_mm=fixed_fwhm_mm)
    out_p = claim_output_folder(out, kind="registration", overwrite=overwrite, outputs=REGISTRATION_OUTPUTS, inputs=[moving, fixed])
    moved = resample_with_matrix(mov, fix, res.matrix, mode="nearest") if nearest else res.moved
    save(moved, out_p / "moved.nii.gz", overwrite=True)
    write_transform(res.matrix, out_p / "transform.tfm", overwrite=True,
                    info={"moving": str(moving), "fixed": str(fixed), "transform": transform,
                          "metric_value": res.metric, "settings": res.settings})
    shift = np.linalg.norm(res.matrix[:3, 3])
    typer.echo(f"{transform} registration ({res.settings['metric']}, final metric {res.metric:.4f}); translation "
               f"{shift:.2f} mm; wrote moved.nii.gz, transform.tfm, transform.json in {out_p}")


def _world_box(vol):
    """Lowest and highest LPS corner (mm) of the voxels' outer faces."""
    import itertools

    import numpy as np

    corners = [[-0.5 if c == 0 else n - 0.5 for c, n in zip(pick, vol.shape)]
               for pick in itertools.product((0, 1), repeat=3)]
    world = vol.voxel_to_world(np.asarray(corners))
    return world.min(axis=0), world.max(axis=0)


def _boxes_overlap(a, b) -> bool:
    """Whether the world boxes of two grids intersect (a necessary condition for their voxels to)."""
    import numpy as np

    (lo_a, hi_a), (lo_b, hi_b) = _world_box(a), _world_box(b)
    return not (np.any(hi_a <= lo_b) or np.any(hi_b <= lo_a))


def _check_learned_pair(mov, fix, fixed_kind: str, moving: Path, fixed: Path) -> None:
    """Refuse what a learned network would turn into a field anyway: NaN/inf voxels, a CT as the moving image
    (arguments swapped) or a non-CT as the fixed one of a CT model, and images that do not overlap (the moving
    one would be resampled to a constant)."""
    import torch

    for vol, path in ((mov, moving), (fix, fixed)):
        bad = int((~torch.isfinite(vol.data)).sum())
        if bad:
            fail(f"{path}: the image holds {bad} NaN or infinite voxels")
    if mov.unit == "HU":
        fail(f"{moving}: MOVING is a CT (HU); the learned model moves a PET or SPECT onto the {fixed_kind.upper()} "
             "(give MOVING FIXED in that order)")
    if fixed_kind == "ct" and fix.unit not in ("HU", "a.u."):
        fail(f"{fixed}: the model registers onto a CT; FIXED is in {fix.unit!r}")
    if not _boxes_overlap(mov, fix):
        (lo_m, hi_m), (lo_f, hi_f) = _world_box(mov), _world_box(fix)
        fail(f"{moving} and {fixed} do not overlap in patient coordinates (LPS mm: moving {lo_m.round(1).tolist()} to "
             f"{hi_m.round(1).tolist()}, fixed {lo_f.round(1).tolist()} to {hi_f.round(1).tolist()}); the learned "
             "model needs images in one frame of reference")


def _register_learned(moving: Path, fixed: Path, out: Path, model: Path, nearest: bool, overwrite: bool) -> None:
    import json

    import numpy as np

    from petspect._fileio import atomic_write_text, check_output_path, claim_output_folder
    from petspect.io import load, save
    from petspect.registration.learned import load_learned_registration, register_learned_on, write_displacement

    check_output_path(out, overwrite=overwrite, kind="registration", inputs=[moving, fixed, model])
    net = load_learned_registration(model)
    mov, fix = load(moving), load(fixed)
    _check_learned_pair(mov, fix, str(net.record.get("fixed_kind", "ct")), moving, fixed)
    moved, field = register_learned_on(net, mov, fix, nearest=nearest)
    out_p = claim_output_folder(out, kind="registration", overwrite=overwrite, outputs=REGISTRATION_OUTPUTS, inputs=[moving, fixed, model])
    save(moved, out_p / "moved.nii.gz", overwrite=True)
    write_displacement(field, fix, out_p / "displacement.nii.gz", overwrite=True)
    mag = np.linalg.norm(field, axis=-1)
    doc = {"method": "learned", "model": str(model), "moving": str(moving), "fixed": str(fixed),
           "fixed_kind": net.record.get("fixed_kind", "ct"),
           "convention": "displacement.nii.gz: ITK displacement field, LPS mm on the fixed grid; a fixed-space point "
                         "x maps to x + v(x) in moving space; moved(x) = moving(x + v(x))",
           "displacement_mm": {"mean": float(mag.mean()), "max": float(mag.max())}}
    atomic_write_text(out_p / "registration.json", json.dumps(doc, indent=1) + "\n")
    typer.echo(f"learned deformable registration: displacement mean {mag.mean():.2f} mm, max {mag.max():.2f} mm; "
               f"wrote moved.nii.gz, displacement.nii.gz, registration.json in {out_p}")


@handle_errors
def study_segment(
    ctx: typer.Context,
    preset: str = typer.Option("quick", "--preset", help="tiny (seconds, tests), quick (<= ~10 min, 2-core CPU) "
                                                          "or full (GPU)."),
    out: Path = typer.Option(..., "--out", help="Study folder (metrics.json, summary.json, report/)."),
    dataset: Path = typer.Option(None, "--dataset", help="An existing cohort (dataset.json with lesions); "
                                                         "default: simulate the preset's cohort into OUT/data."),
    seed: int = typer.Option(0, "--seed", help="Study seed (networks, bootstrap)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous study folder."),
) -> None:
    """Lesion segmentation study: thresholds vs networks on held-out subjects (autoPET metrics, intervals)."""
    from petspect.cli._study import study_preset
    from petspect.segmentation.study import run_segment_study

    summary = run_segment_study(out, preset=study_preset(preset), dataset=dataset, seed=seed,
                                device=get_device(ctx), overwrite=overwrite)
    typer.echo(summary)
