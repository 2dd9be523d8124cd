"""Bad inputs found by an outside quality pass, and Patlak against an analytic model."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import InputError
from petspect.kinetics.graphical import patlak
from petspect.kinetics.input_function import FRAMINGS, FrameSchedule, SampledInput

runner = CliRunner()


def _frame_means(fun, fr: FrameSchedule, n: int = 4001) -> np.ndarray:
    """Frame means by brute-force trapezoid integration (independent of petspect's own frame_means)."""
    out = []
    for s, d in zip(fr.start_s, fr.duration_s):
        t = np.linspace(s, s + d, n)
        y = fun(t)
        out.append(np.sum((y[1:] + y[:-1]) / 2 * np.diff(t)) / d)
    return np.array(out)


def test_patlak_slope_is_k1_of_an_analytic_irreversible_one_tissue_model():
    # Cp = A exp(-b t); irreversible one-tissue model C_T' = K1 Cp gives C_T = K1 A / b (1 - exp(-b t)),
    # so C_T = K1 int Cp exactly: the Patlak slope is K1 and the intercept 0, from any t*.
    a_bq, b_per_s, k1_per_min = 5e4, 0.002, 0.07
    fr = FRAMINGS["fdg-60min"]
    t = np.arange(0.0, fr.end_s[-1] + 1.0, 1.0)
    inp = SampledInput(t, a_bq * np.exp(-b_per_s * t))
    ct = _frame_means(lambda tt: k1_per_min / 60.0 * a_bq / b_per_s * (1 - np.exp(-b_per_s * tt)), fr)
    fit = patlak(ct, inp, fr, t_star_s=600.0)
    assert float(fit.slope) == pytest.approx(k1_per_min, rel=2e-3)  # 1 s linear input sampling
    assert abs(float(fit.intercept)) < 2e-3 and float(fit.r2) > 0.9999


def test_frame_schedule_names_the_bad_frame():
    with pytest.raises(InputError, match="frame 3"):
        FrameSchedule(np.array([0.0, 10.0, 15.0]), np.array([10.0, 10.0, 10.0]))
    with pytest.raises(InputError, match="frame 2"):
        FrameSchedule(np.array([0.0, 10.0]), np.array([10.0, 0.0]))
    with pytest.raises(InputError, match="finite"):
        FrameSchedule(np.array([0.0, np.nan]), np.array([10.0, 10.0]))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinq")
    tacs, inp = d / "tacs.csv", d / "input.csv"
    res = runner.invoke(app, ["kinetics", "simulate", "--out", str(tacs), "--input-out", str(inp)])
    assert res.exit_code == 0, res.output
    return d, tacs, inp


def _patlak(tacs, inp, out):
    return runner.invoke(app, ["kinetics", "patlak", str(tacs), "--input", str(inp), "--out", str(out)])


def test_a_plasma_csv_ending_before_the_scan_is_refused_not_extrapolated(files, tmp_path):
    _, tacs, inp = files
    short = tmp_path / "short.csv"
    short.write_text("".join(inp.read_text().splitlines(keepends=True)[:200]))  # 198 s of a 60 min scan
    res = _patlak(tacs, short, tmp_path / "p.csv")
    assert res.exit_code == 2 and "end at" in res.output and str(short) in res.output
    assert not (tmp_path / "p.csv").exists()


def test_tac_csv_problems_name_the_file_and_row(files, tmp_path):
    _, tacs, inp = files
    lines = tacs.read_text().splitlines()
    header = lines[0].split(",")
    cases = {}
    dup = [",".join(header[:4] + [header[3]])] + [",".join(ln.split(",")[:5]) for ln in lines[1:]]
    cases["duplicate column"] = dup
    nan = [ln.split(",") for ln in lines]
    nan[7][4] = "nan"
    cases["NaN or infinite"] = [",".join(r) for r in nan]
    ragged = lines[:]
    ragged[3] = ragged[3].rsplit(",", 1)[0]
    cases["data row 3 has"] = ragged
    swapped = lines[:]
    swapped[5], swapped[6] = swapped[6], swapped[5]
    cases["frame 6"] = swapped
    for i, (msg, rows) in enumerate(cases.items()):
        p = tmp_path / f"bad{i}.csv"
        p.write_text("\n".join(rows) + "\n")
        res = _patlak(p, inp, tmp_path / f"p{i}.csv")
        assert res.exit_code == 2 and msg in res.output and str(p) in res.output, (msg, res.output)


def test_simulate_refuses_the_same_file_for_tacs_and_input(tmp_path):
    out = tmp_path / "x.csv"
    res = runner.invoke(app, ["kinetics", "simulate", "--out", str(out), "--input-out", str(out)])
    assert res.exit_code == 2 and "same file" in res.output and not out.exists()


def test_negative_t_star_is_refused(files, tmp_path):
    _, tacs, inp = files
    res = runner.invoke(app, ["kinetics", "patlak", str(tacs), "--input", str(inp), "--t-star-min", "-5",
                              "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 2


def _series(tmp_path, rows_extra=None, nan_frame=None):
    import torch

    from petspect.io import save
    from petspect.volume import Volume

    fr = FRAMINGS["fdg-60min"]
    rows = ["start_s,duration_s,file"]
    for i in range(len(fr)):
        img = np.full((2, 3, 4), 100.0 + i, np.float32)
        if i == nan_frame:
            img[0, 0, 0] = np.nan
        save(Volume(torch.from_numpy(img), (2.0, 2.0, 2.0), unit="Bq/mL", modality="PT"), tmp_path / f"f{i:02d}.nii.gz",
             overwrite=True)
        rows.append(f"{fr.start_s[i]},{fr.duration_s[i]},f{i:02d}.nii.gz")
    if rows_extra:
        rows[3] = rows_extra
    (tmp_path / "frames.csv").write_text("\n".join(rows) + "\n")
    t = np.arange(0.0, fr.end_s[-1] + 1.0, 10.0)
    (tmp_path / "plasma.csv").write_text("time_s,plasma_bq_per_ml\n" + "".join(
        f"{a},{1e4 * np.exp(-a / 600) + 100}\n" for a in t))
    return tmp_path / "frames.csv", tmp_path / "plasma.csv"


def test_parametric_bad_frame_rows_and_files_give_clean_errors_and_no_folder(tmp_path):
    frames, plasma = _series(tmp_path, rows_extra="20,10")
    out = tmp_path / "maps"
    res = runner.invoke(app, ["kinetics", "parametric", str(frames), "--input", str(plasma), "--out", str(out)])
    assert res.exit_code == 2 and "frame row 3" in res.output and "Traceback" not in res.output
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    res = runner.invoke(app, ["kinetics", "parametric", str(tmp_path / "bin.csv"), "--input", str(plasma),
                              "--out", str(out)])
    assert res.exit_code == 2 and "UTF-8" in res.output
    frames, plasma = _series(tmp_path)
    (tmp_path / "f05.nii.gz").unlink()
    res = runner.invoke(app, ["kinetics", "parametric", str(frames), "--input", str(plasma), "--out", str(out)])
    assert res.exit_code == 2 and "f05" in res.output
    assert not out.exists()  # a failed run leaves no folder that would block the rerun
    frames, plasma = _series(tmp_path)
    res = runner.invoke(app, ["kinetics", "parametric", str(frames), "--input", str(plasma), "--out", str(out)])
    assert res.exit_code == 0, res.output


def test_parametric_refuses_nan_voxels_instead_of_writing_zero(tmp_path):
    frames, plasma = _series(tmp_path, nan_frame=4)
    res = runner.invoke(app, ["kinetics", "parametric", str(frames), "--input", str(plasma),
                              "--out", str(tmp_path / "maps")])
    assert res.exit_code == 2 and "f04" in res.output and "NaN" in res.output


def test_voxel_1tcm_marks_a_nan_voxel_undefined_not_zero_and_fit_region_names_bad_models():
    from petspect.kinetics.compartments import KineticParams, Model, fit_1tcm_voxels, fit_region, model_frames
    from petspect.kinetics.input_function import feng_fdg_for_patient

    fr = FRAMINGS["fdg-60min"]
    inp = feng_fdg_for_patient().sampled(fr.end_s[-1])
    tac = model_frames(KineticParams(0.1, 0.2, 0.0, 0.0, 0.05), Model.ONE_TCM, inp, fr)
    y = np.stack([tac, tac])
    y[1, 3] = np.nan
    m = fit_1tcm_voxels(y, inp, fr)
    assert m["k1_per_min"][0] == pytest.approx(0.1, rel=0.01) and np.isnan(m["k1_per_min"][1])
    with pytest.raises(InputError, match="unknown compartment model"):
        fit_region(tac, inp, fr, "3tcm")
    with pytest.raises(InputError, match=r"frame\(s\) \[4\]"):
        fit_region(y[1], inp, fr, Model.ONE_TCM)


def test_fit_csv_gives_the_ki_patlak_measures_beside_the_tissue_ki(files, tmp_path):
    import csv

    from petspect.kinetics.simulate import FDG_TISSUES

    _, tacs, inp = files
    res = runner.invoke(app, ["kinetics", "fit", str(tacs), "--input", str(inp), "--out", str(tmp_path / "f.csv")])
    assert res.exit_code == 0, res.output
    assert _patlak(tacs, inp, tmp_path / "p.csv").exit_code == 0
    fit = {r["region"]: r for r in csv.DictReader((tmp_path / "f.csv").open())}
    pat = {r["region"]: float(r["ki_per_min"]) for r in csv.DictReader((tmp_path / "p.csv").open())}
    liver = FDG_TISSUES["liver"]  # vB = 0.1: the two Ki definitions differ by 10 %
    assert float(fit["liver"]["ki_per_min"]) == pytest.approx(liver.ki_voxel_per_min / (1 - liver.vb), rel=0.01)
    assert float(fit["liver"]["ki_voxel_per_min"]) == pytest.approx(liver.ki_voxel_per_min, rel=0.01)
    assert float(fit["liver"]["ki_voxel_per_min"]) == pytest.approx(pat["liver"], rel=0.03)
