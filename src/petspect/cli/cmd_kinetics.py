"""``petspect kinetics simulate|patlak|logan|fit``: tracer kinetics on region time-activity curves.

A TAC file is a CSV with columns ``start_s,duration_s`` and one column per region (Bq/mL, decay
corrected to injection). The plasma input is either a CSV of samples ``time_s,plasma_bq_per_ml``
(``--input``), or a column of the TAC file holding frame-mean plasma (``--input-column``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, handle_errors

kinetics_app = typer.Typer(help="Tracer kinetics: simulate FDG TACs, Patlak, Logan, compartment fits.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(kinetics_app, name="kinetics")


def _read_csv(path: Path) -> tuple[list[str], "object"]:
    import numpy as np

    from petspect._fileio import require_regular
    from petspect.errors import FormatError

    require_regular(path)
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: cannot read: {exc}") from exc
    if len(lines) < 3:
        raise FormatError(f"{path}: needs a header and at least two rows")
    header = [h.strip() for h in lines[0].split(",")]
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise FormatError(f"{path}: duplicate column name(s) {dup}; each column needs its own name")
    rows = []
    for i, ln in enumerate(lines[1:], start=2):
        cells = ln.split(",")
        if len(cells) != len(header):
            raise FormatError(f"{path}: data row {i - 1} has {len(cells)} values for {len(header)} columns")
        try:
            row = [float(v) for v in cells]
        except ValueError as exc:
            raise FormatError(f"{path}: data row {i - 1}: non-numeric value: {exc}") from exc
        bad = [h for h, v in zip(header, row) if not np.isfinite(v)]
        if bad:
            raise FormatError(f"{path}: data row {i - 1}: NaN or infinite value in column(s) {bad}")
        rows.append(row)
    return header, np.array(rows, dtype=float)


def _load(tacs: Path, input_csv: Path | None, input_column: str | None):
    from petspect.errors import FormatError, InputError
    from petspect.kinetics.idif import frames_to_input
    from petspect.kinetics.input_function import FrameSchedule, SampledInput

    header, data = _read_csv(tacs)
    for col in ("start_s", "duration_s"):
        if col not in header:
            raise FormatError(f"{tacs}: missing column {col!r} (have {header})")
    try:
        frames = FrameSchedule(data[:, header.index("start_s")], data[:, header.index("duration_s")])
    except InputError as exc:
        raise FormatError(f"{tacs}: {exc}") from exc
    regions = {h: data[:, i] for i, h in enumerate(header) if h not in ("start_s", "duration_s")}
    if (input_csv is None) == (input_column is None):
        fail("give the plasma input as --input FILE.csv (time_s,plasma_bq_per_ml) or --input-column NAME")
    if input_csv is not None:
        ih, idata = _read_csv(input_csv)
        if ih[:2] != ["time_s", "plasma_bq_per_ml"]:
            raise FormatError(f"{input_csv}: columns must be time_s,plasma_bq_per_ml (got {ih})")
        try:
            inp = SampledInput(idata[:, 0], idata[:, 1])
        except InputError as exc:
            raise FormatError(f"{input_csv}: {exc}") from exc
    else:
        if input_column not in regions:
            raise FormatError(f"{tacs}: no column {input_column!r} (have {sorted(regions)})")
        inp = frames_to_input(regions.pop(input_column), frames)
    if input_csv is not None and inp.times_s[-1] < frames.end_s[-1] - 1.0:
        # holding the last sample constant over minutes would bias Ki / V_T without a word
        raise FormatError(f"{input_csv}: the plasma samples end at {inp.times_s[-1]:.0f} s, before the last frame "
                          f"ends ({frames.end_s[-1]:.0f} s); add samples up to the end of the scan")
    if inp.times_s[-1] < frames.end_s[-1]:
        # frame-mean input (sampled at mid-frame) or a sample within 1 s of the end: hold the last value
        inp = SampledInput(list(inp.times_s) + [frames.end_s[-1] + 1.0], list(inp.values_bq_per_ml) +
                           [inp.values_bq_per_ml[-1]])
    if not regions:
        raise FormatError(f"{tacs}: no region column besides the frames and the input")
    return frames, inp, regions


def _write(out: Path, header: list[str], rows: list[list]) -> None:
    from petspect._fileio import atomic_write_text

    fmt = lambda v: repr(float(v)) if isinstance(v, float) or hasattr(v, "dtype") else str(v)  # noqa: E731
    atomic_write_text(out, ",".join(header) + "\n" + "".join(",".join(fmt(v) for v in r) + "\n" for r in rows))


@kinetics_app.command("simulate")
@handle_errors
def simulate(
    out: Path = typer.Option(..., "--out", help="TAC CSV to write (start_s,duration_s,blood,<tissues>)."),
    input_out: Path = typer.Option(None, "--input-out", help="Also write the true plasma input (1 s samples)."),
    framing: str = typer.Option("fdg-60min", "--framing", help="fdg-60min or dynamic-90min."),
    cov_last: float = typer.Option(0.0, "--cov-last", min=0.0, help="Frame noise: COV of the last frame (0 = noiseless)."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Simulate FDG region TACs (2TCM, k4 = 0) with Feng's input; print each region's true (1 - vB) Ki."""
    import numpy as np

    from petspect._fileio import check_output_path
    from petspect.kinetics.input_function import FRAMINGS, feng_fdg_for_patient
    from petspect.kinetics.simulate import FDG_TISSUES, add_frame_noise, simulate_tacs

    if framing not in FRAMINGS:
        fail(f"unknown framing {framing!r}; known: {sorted(FRAMINGS)}")
    check_output_path(out, overwrite=overwrite)
    if input_out is not None:
        if input_out.resolve() == out.resolve():
            fail(f"{input_out}: --input-out is the same file as --out; the TACs would be overwritten")
        check_output_path(input_out, overwrite=overwrite)
    fr = FRAMINGS[framing]
    inp = feng_fdg_for_patient().sampled(fr.end_s[-1])
    tacs = simulate_tacs(FDG_TISSUES, inp, fr)
    rng = np.random.default_rng(seed)
    blood = fr.frame_means(inp.times_s, inp.values_bq_per_ml)
    cols = {k: (add_frame_noise(v, fr, cov_last=cov_last, rng=rng) if cov_last > 0 else v) for k, v in tacs.items()}
    header = ["start_s", "duration_s", "blood"] + list(cols)
    rows = [[fr.start_s[i], fr.duration_s[i], blood[i]] + [cols[k][i] for k in cols] for i in range(len(fr))]
    _write(out, header, rows)
    if input_out is not None:
        _write(input_out, ["time_s", "plasma_bq_per_ml"], [[t, v] for t, v in zip(inp.times_s, inp.values_bq_per_ml)])
    for k, p in FDG_TISSUES.items():
        typer.echo(f"{k}: true Ki (1 - vB) K1 k3/(k2 + k3) = {p.ki_voxel_per_min:.5f} /min")
    typer.echo(f"wrote {out}" + (f" and {input_out}" if input_out else ""))


def _graphical(method, tacs: Path, out: Path, input_csv: Path | None, input_column: str | None, t_star_min: float,
               overwrite: bool, slope_column: str, slope_text: str) -> None:
    """Run a graphical analysis (Patlak or Logan) on every region of a TAC CSV and write
    ``region,<slope_column>,intercept,r2,n_frames``; frames from ``t_star_min`` (min) on are fitted."""
    import math

    from petspect._fileio import check_output_path

    check_output_path(out, overwrite=overwrite, inputs=[tacs] + ([input_csv] if input_csv else []))
    frames, inp, regions = _load(tacs, input_csv, input_column)
    rows = []
    for name, tac in regions.items():
        f = method(tac, inp, frames, t_star_s=t_star_min * 60.0)
        rows.append([name, float(f.slope), float(f.intercept), float(f.r2), len(f.frames_used)])
        if not math.isfinite(float(f.slope)):
            # say why, instead of a bare "nan": Logan divides by C_T in every fitted frame
            why = ("the TAC is <= 0 in a fitted frame" if (tac[f.frames_used] <= 0).any()
                   else "the plot's points do not define a line")
            typer.echo(f"{name}: {slope_text.split(' =')[0]} undefined ({why}); written as nan")
            continue
        r2 = f"R^2 {float(f.r2):.4f}" if math.isfinite(float(f.r2)) else "R^2 undefined: the plot is flat"
        typer.echo(f"{name}: {slope_text.format(float(f.slope))} ({r2})")
    _write(out, ["region", slope_column, "intercept", "r2", "n_frames"], rows)


@kinetics_app.command("patlak")
@handle_errors
def patlak_cmd(
    tacs: Path = typer.Argument(..., help="TAC CSV (start_s,duration_s,<regions>)."),
    out: Path = typer.Option(..., "--out", help="Result CSV: region,ki_per_min,intercept,r2,n_frames."),
    input_csv: Path = typer.Option(None, "--input", help="Plasma samples CSV (time_s,plasma_bq_per_ml)."),
    input_column: str = typer.Option(None, "--input-column", help="TAC column holding frame-mean plasma."),
    t_star_min: float = typer.Option(20.0, "--t-star-min", min=0.0, help="Fit frames starting at or after t* (min)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Patlak graphical analysis: net influx rate Ki (1/min) of each region."""
    from petspect.kinetics.graphical import patlak

    _graphical(patlak, tacs, out, input_csv, input_column, t_star_min, overwrite, "ki_per_min", "Ki = {:.5f} /min")


@kinetics_app.command("logan")
@handle_errors
def logan_cmd(
    tacs: Path = typer.Argument(..., help="TAC CSV (start_s,duration_s,<regions>)."),
    out: Path = typer.Option(..., "--out", help="Result CSV: region,vt,intercept,r2,n_frames."),
    input_csv: Path = typer.Option(None, "--input", help="Plasma samples CSV (time_s,plasma_bq_per_ml)."),
    input_column: str = typer.Option(None, "--input-column", help="TAC column holding frame-mean plasma."),
    t_star_min: float = typer.Option(30.0, "--t-star-min", min=0.0, help="Fit frames starting at or after t* (min)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Logan graphical analysis: distribution volume V_T of each region (reversible tracers)."""
    from petspect.kinetics.graphical import logan

    _graphical(logan, tacs, out, input_csv, input_column, t_star_min, overwrite, "vt", "V_T = {:.4f}")


@kinetics_app.command("fit")
@handle_errors
def fit_cmd(
    tacs: Path = typer.Argument(..., help="TAC CSV (start_s,duration_s,<regions>)."),
    out: Path = typer.Option(..., "--out", help="Result CSV of micro- and macro-parameters per region: ki_per_min is the tissue's K1 k3/(k2+k3), "
                                          "ki_voxel_per_min = (1 - vB) ki_per_min is what Patlak measures."),
    model: str = typer.Option("2tcm-irr", "--model", help="1tcm, 2tcm-irr (k4 = 0) or 2tcm."),
    input_csv: Path = typer.Option(None, "--input", help="Plasma samples CSV (time_s,plasma_bq_per_ml)."),
    input_column: str = typer.Option(None, "--input-column", help="TAC column holding frame-mean plasma."),
    no_vb: bool = typer.Option(False, "--no-vb", help="Fix the blood volume to 0."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Weighted least-squares compartment-model fit per region."""
    from petspect._fileio import check_output_path
    from petspect.kinetics.compartments import Model, fit_region

    try:
        m = Model(model)
    except ValueError:
        fail(f"unknown model {model!r}; known: {[x.value for x in Model]}")
    check_output_path(out, overwrite=overwrite, inputs=[tacs] + ([input_csv] if input_csv else []))
    frames, inp, regions = _load(tacs, input_csv, input_column)
    rows = []
    for name, tac in regions.items():
        f = fit_region(tac, inp, frames, m, fit_vb=not no_vb)
        p = f.params
        rows.append([name, p.k1_per_min, p.k2_per_min, p.k3_per_min, p.k4_per_min, p.vb, p.ki_per_min,
                     p.vt, f.aic, p.ki_voxel_per_min])
        typer.echo(f"{name}: K1 {p.k1_per_min:.4f} k2 {p.k2_per_min:.4f} k3 {p.k3_per_min:.4f} "
                   f"k4 {p.k4_per_min:.4f} vB {p.vb:.3f}; Ki {p.ki_per_min:.5f} /min (tissue), "
                   f"{p.ki_voxel_per_min:.5f} /min as Patlak measures it ((1 - vB) Ki)")
    # ki_per_min is the tissue's K1 k3 / (k2 + k3); Patlak on the PET signal measures (1 - vB) of it, so the
    # comparable number is written too (the same column name meant two things in fit.csv and patlak.csv)
    _write(out, ["region", "k1_per_min", "k2_per_min", "k3_per_min", "k4_per_min", "vb", "ki_per_min", "vt", "aic",
                 "ki_voxel_per_min"], rows)


@kinetics_app.command("parametric")
@handle_errors
def parametric_cmd(
    frames_csv: Path = typer.Argument(..., help="CSV start_s,duration_s,file: one 3D image per frame (paths relative "
                                                "to the CSV), decay corrected, Bq/mL."),
    out: Path = typer.Option(..., "--out", help="Output folder for the parametric maps (.nii.gz)."),
    input_csv: Path = typer.Option(..., "--input", help="Plasma samples CSV (time_s,plasma_bq_per_ml)."),
    method: str = typer.Option("patlak", "--method", help="patlak (ki, intercept), logan (vt) or 1tcm (k1, k2, vb)."),
    t_star_min: float = typer.Option(None, "--t-star-min", min=0.0, help="Graphical methods: t* (default 20 min Patlak, "
                                                                "30 min Logan)."),
    mask: Path = typer.Option(None, "--mask", help="Only voxels where this image is nonzero (others 0)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Voxelwise Patlak Ki, Logan V_T or 1TCM (basis functions) maps of a framed dynamic series."""
    import numpy as np
    import torch

    from petspect._fileio import atomic_dir
    from petspect.errors import FormatError, InputError
    from petspect.io import load, save
    from petspect.kinetics.compartments import fit_1tcm_voxels
    from petspect.kinetics.graphical import logan, patlak
    from petspect.kinetics.input_function import FrameSchedule, SampledInput

    if method not in ("patlak", "logan", "1tcm"):
        fail(f"unknown method {method!r}; known: patlak, logan, 1tcm")
    from petspect._fileio import require_regular

    require_regular(frames_csv)
    try:
        text = frames_csv.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{frames_csv}: not a UTF-8 text CSV: {exc}") from exc
    lines = [ln.split(",") for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines or [h.strip() for h in lines[0]] != ["start_s", "duration_s", "file"] or len(lines) < 3:
        raise FormatError(f"{frames_csv}: needs a header start_s,duration_s,file and at least two frames")
    for i, r in enumerate(lines[1:], start=1):
        if len(r) != 3 or not r[2].strip():
            raise FormatError(f"{frames_csv}: frame row {i} needs 3 values start_s,duration_s,file, got {','.join(r)!r}")
    try:
        frames = FrameSchedule(np.array([float(r[0]) for r in lines[1:]]), np.array([float(r[1]) for r in lines[1:]]))
    except ValueError as exc:
        raise FormatError(f"{frames_csv}: bad frame row: {exc}") from exc
    except InputError as exc:
        raise FormatError(f"{frames_csv}: {exc}") from exc
    files = [(frames_csv.parent / r[2].strip()) for r in lines[1:]]
    ih, idata = _read_csv(input_csv)
    if ih[:2] != ["time_s", "plasma_bq_per_ml"]:
        raise FormatError(f"{input_csv}: columns must be time_s,plasma_bq_per_ml (got {ih})")
    try:
        inp = SampledInput(idata[:, 0], idata[:, 1])
    except InputError as exc:
        raise FormatError(f"{input_csv}: {exc}") from exc
    if inp.times_s[-1] < frames.end_s[-1]:
        raise InputError(f"{input_csv}: the plasma samples end at {inp.times_s[-1]:.0f} s, before the last frame "
                         f"ends ({frames.end_s[-1]:.0f} s)")
    # refuse an existing output now, but create the folder only once every input has been read and checked:
    # a run that fails on a bad frame must not leave a folder that blocks the rerun
    from petspect._fileio import check_output_path

    all_inputs = [frames_csv, input_csv, *files] + ([mask] if mask else [])
    out_p = check_output_path(out, overwrite=overwrite, inputs=all_inputs, kind="kinetics-parametric")
    vols = [load(f) for f in files]
    ref = vols[0]
    for f, v in zip(files, vols):
        if not ref.same_grid(v):
            raise InputError(f"{f}: frame grid differs from {files[0]}")
    data = np.stack([v.data.detach().cpu().numpy().astype(np.float64) for v in vols], axis=-1)
    sel = np.ones(ref.shape, bool)
    if mask is not None:
        mv = load(mask)
        if not ref.same_grid(mv):
            raise InputError(f"{mask}: mask grid differs from the frames'")
        sel = mv.data.detach().cpu().numpy() != 0
    if not sel.any():
        raise InputError(f"{mask}: the mask is empty")
    finite = np.isfinite(data[sel]).all(axis=-1)
    if not finite.all():
        k = int(np.flatnonzero(~np.isfinite(data[sel]).all(axis=0))[0])
        raise InputError(f"{files[k]}: {int((~finite).sum())} voxel(s) of the fitted region hold NaN or infinite "
                         f"values; mask them out with --mask")
    maps: dict[str, np.ndarray] = {}
    if method == "patlak":
        fit = patlak(data[sel], inp, frames, t_star_s=60.0 * (20.0 if t_star_min is None else t_star_min))
        maps = {"ki_per_min": fit.slope, "intercept": fit.intercept}
        units = {"ki_per_min": "1/min", "intercept": "mL/mL"}
    elif method == "logan":
        fit = logan(data[sel], inp, frames, t_star_s=60.0 * (30.0 if t_star_min is None else t_star_min))
        maps = {"vt": fit.slope}
        units = {"vt": "mL/mL"}
    else:
        maps = fit_1tcm_voxels(data[sel], inp, frames)
        units = {"k1_per_min": "mL/min/mL", "k2_per_min": "1/min", "vb": "fraction"}
    # every map is written into a fresh folder that then replaces OUT whole: a rerun with another --method must
    # not leave the earlier method's maps beside the new ones
    n_undef = 0
    with atomic_dir(out_p, kind="kinetics-parametric") as tmp:
        for name, vals in maps.items():
            full = np.zeros(ref.shape, np.float32)
            n_undef = max(n_undef, int((~np.isfinite(vals)).sum()))
            full[sel] = np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0)
            save(ref.with_data(torch.from_numpy(full), unit=units[name], modality="PT"), tmp / f"{name}.nii.gz")
    typer.echo(f"{method}: {int(sel.sum())} voxels, {len(frames)} frames; wrote {', '.join(maps)} to {out_p}"
               + (f"; {n_undef} voxel(s) where the fit is undefined (e.g. TAC <= 0 for Logan) are set to 0"
                  if n_undef else ""))
