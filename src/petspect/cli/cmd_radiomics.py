"""``petspect radiomics``: IBSI features of an ROI as a ``tag,value`` CSV; ``petspect radiomics-ibsi-check``:
the IBSI digital phantom against its published reference values."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, handle_errors


def register(app: typer.Typer) -> None:
    app.command("radiomics")(radiomics)
    app.command("radiomics-ibsi-check")(radiomics_ibsi_check)


def _csv(rows: list[tuple]) -> str:
    return "\n".join(",".join("" if v is None else (repr(float(v)) if isinstance(v, float) else str(v)) for v in r)
                     for r in rows) + "\n"


@handle_errors
def radiomics(
    image: Path = typer.Argument(..., help="Image (NIfTI, DICOM series, Interfile .hv); features carry its unit."),
    mask: Path = typer.Option(..., "--mask", help="ROI mask or label map on the image's grid."),
    out: Path = typer.Option(..., "--out", help="Output CSV with columns tag,value."),
    settings: str = typer.Option("ibsi-digital-phantom", "--settings",
                                 help="Named settings (ibsi-digital-phantom, pet-suv-fbs0.25, pet-iso2mm-fbn64) "
                                      "or a JSON file of settings fields."),
    label: int = typer.Option(None, "--label", help="Use the voxels of this label only (needed when the mask holds several labels)."),
    suv: str = typer.Option(None, "--suv", help="Convert PET to SUV first: bw, bsa, lbm_james, lbm_janmahasatian, ibw."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Compute IBSI radiomic features of the ROI MASK in IMAGE and write them as a CSV (tag,value)."""
    import numpy as np

    from petspect._fileio import atomic_write_text, check_output_path
    from petspect.errors import InputError
    from petspect.io import load
    from petspect.radiomics import extract_features, load_settings

    check_output_path(out, overwrite=overwrite, inputs=[image, mask])
    cfg = load_settings(settings)
    vol = load(image, suv=suv)
    if cfg.bin_width is not None and "suv" in cfg.name.lower() and not str(vol.unit).upper().startswith("SUV"):
        fail(f"{image}: settings {cfg.name!r} bin SUV values but the image is in {vol.unit!r}; "
             f"add --suv bw (DICOM PET or a petspect-converted NIfTI) or choose fixed bin number settings")
    roi = load(mask)
    if tuple(roi.shape) != tuple(vol.shape) or not vol.same_grid(roi):
        fail(f"{mask}: mask grid {tuple(roi.shape)} / {tuple(round(s, 4) for s in roi.spacing_mm)} mm differs from "
             f"the image's {tuple(vol.shape)} / {tuple(round(s, 4) for s in vol.spacing_mm)} mm; "
             f"resample it first (petspect resample MASK --like IMAGE --nearest)")
    m = roi.data.detach().cpu().numpy()
    if not np.isfinite(m).all() or (m != np.round(m)).any():
        fail(f"{mask}: the mask holds non-integer values (a probability or resampled mask?); threshold it to "
             f"integer labels first")
    labels = sorted(int(v) for v in np.unique(m) if v != 0)
    if label is None and len(labels) > 1:
        fail(f"{mask}: the mask holds {len(labels)} labels {labels[:10]}{' ...' if len(labels) > 10 else ''}; "
             f"choose one ROI with --label")
    sel = (m == label) if label is not None else (m != 0)
    if not sel.any():
        fail(f"{mask}: no voxel with {'label ' + str(label) if label is not None else 'a nonzero value'}")
    try:
        fs = extract_features(vol.data.detach().cpu().numpy(), sel, vol.spacing_mm, cfg)
    except InputError as exc:
        hint = (f"; settings {cfg.name!r} are for integer grey-level images such as the IBSI phantom: for PET choose "
                f"--settings pet-iso2mm-fbn64 or pet-suv-fbs0.25" if cfg.discretisation.value == "none" else "")
        raise InputError(f"{image} (ROI {mask}): {exc}{hint}") from exc
    atomic_write_text(out, _csv([("tag", "value")] + [(k, v) for k, v in fs.values.items()]))
    n_nan = sum(1 for v in fs.values.values() if v != v)
    typer.echo(f"{len(fs.values)} features ({n_nan} undefined for this ROI) with settings {cfg.name!r} from "
               f"{fs.n_voxels_int} voxels, {fs.n_levels} grey levels; wrote {out}")


@handle_errors
def radiomics_ibsi_check(
    out: Path = typer.Option(None, "--out", help="Optional CSV: tag,value,reference,tolerance,match."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Compute the IBSI digital phantom's features with the ibsi-digital-phantom settings and compare them
    with the IBSI reference values; exits 1 when fewer than 95 % match."""
    from petspect._fileio import atomic_write_text, check_output_path
    from petspect.radiomics import extract_features, load_settings
    from petspect.radiomics.reference import compare, digital_phantom, digital_phantom_reference

    if out is not None:
        check_output_path(out, overwrite=overwrite)
    img, msk, sp = digital_phantom()
    fs = extract_features(img, msk, sp, load_settings("ibsi-digital-phantom"))
    ref = digital_phantom_reference()
    cmp = compare(fs.values, ref)
    if out is not None:
        rows = [("tag", "value", "reference", "tolerance", "match")]
        for k, v in fs.values.items():
            r = ref.get(k)
            rows.append((k, v, r.value if r else None, r.tolerance if r else None,
                         ("yes" if r.matches(v) else "no") if r else None))
        atomic_write_text(out, _csv(rows))
    typer.echo(f"IBSI digital phantom: {cmp.n_computed} features computed, {cmp.n_referenced} with a reference, "
               f"{cmp.n_matched} within tolerance ({100 * cmp.fraction_matched:.1f} %); "
               f"{len(cmp.missing)} reference features not computed")
    for tag, (v, r, tol) in cmp.mismatches.items():
        typer.echo(f"  mismatch {tag}: {v:.6g} vs {r:g} +/- {tol:g}")
    if cmp.fraction_matched < 0.95:
        raise typer.Exit(code=1)
