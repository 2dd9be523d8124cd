"""``petspect kinetics`` commands on simulated FDG TACs."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.kinetics.simulate import FDG_TISSUES

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kin")
    tacs, inp = d / "tacs.csv", d / "input.csv"
    res = runner.invoke(app, ["kinetics", "simulate", "--out", str(tacs), "--input-out", str(inp)])
    assert res.exit_code == 0, res.output
    return d, tacs, inp


def test_patlak_cli_recovers_ki_with_sampled_or_frame_input(files):
    d, tacs, inp = files
    for opt, val, tol in (("--input", str(inp), 0.05), ("--input-column", "blood", 0.05)):
        out = d / f"patlak{opt}.csv"
        res = runner.invoke(app, ["kinetics", "patlak", str(tacs), opt, val, "--out", str(out)])
        assert res.exit_code == 0, res.output
        rows = {r["region"]: float(r["ki_per_min"]) for r in csv.DictReader(out.open())}
        assert ("blood" in rows) == (opt == "--input")  # the input column is not a region
        assert rows["tumour"] == pytest.approx(FDG_TISSUES["tumour"].ki_voxel_per_min, rel=tol)


def test_fit_and_logan_cli(files):
    d, tacs, inp = files
    out = d / "fit.csv"
    res = runner.invoke(app, ["kinetics", "fit", str(tacs), "--input", str(inp), "--model", "2tcm-irr", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["region"]: r for r in csv.DictReader(out.open())}
    assert float(rows["tumour"]["k3_per_min"]) == pytest.approx(0.10, rel=0.05)
    res = runner.invoke(app, ["kinetics", "logan", str(tacs), "--input", str(inp), "--out", str(d / "logan.csv")])
    assert res.exit_code == 0, res.output


def test_kinetics_cli_bad_inputs(files, tmp_path):
    d, tacs, inp = files
    res = runner.invoke(app, ["kinetics", "patlak", str(tacs), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 2 and "--input" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("start_s,duration_s,x\n0,10,abc\n10,10,2\n")
    res = runner.invoke(app, ["kinetics", "patlak", str(bad), "--input", str(inp), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 2 and "non-numeric" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["kinetics", "fit", str(tacs), "--input", str(inp), "--model", "3tcm",
                              "--out", str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and "unknown model" in res.output
    res = runner.invoke(app, ["kinetics", "patlak", str(tacs), "--input", str(inp), "--out", str(tacs)])
    assert res.exit_code == 2


def test_parametric_patlak_and_1tcm_maps(tmp_path):
    """A 4-voxel-wide dynamic series of two tissues: the Ki map holds each tissue's Ki."""
    import numpy as np
    import torch

    from petspect.io import load, save
    from petspect.kinetics.compartments import Model, model_frames
    from petspect.kinetics.input_function import FRAMINGS, feng_fdg_for_patient
    from petspect.volume import Volume

    fr = FRAMINGS["fdg-60min"]
    inp = feng_fdg_for_patient().sampled(fr.end_s[-1])
    a = model_frames(FDG_TISSUES["tumour"], Model.TWO_TCM_IRREVERSIBLE, inp, fr)
    b = model_frames(FDG_TISSUES["muscle"], Model.TWO_TCM_IRREVERSIBLE, inp, fr)
    rows = ["start_s,duration_s,file"]
    for i in range(len(fr)):
        img = np.zeros((2, 3, 4), np.float32)
        img[:, :, :2], img[:, :, 2:] = a[i], b[i]
        save(Volume(torch.from_numpy(img), (2.0, 2.0, 2.0), unit="Bq/mL", modality="PT"), tmp_path / f"f{i:02d}.nii.gz")
        rows.append(f"{fr.start_s[i]},{fr.duration_s[i]},f{i:02d}.nii.gz")
    (tmp_path / "frames.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "plasma.csv").write_text("time_s,plasma_bq_per_ml\n" + "".join(
        f"{t},{v}\n" for t, v in zip(inp.times_s, inp.values_bq_per_ml)))
    res = runner.invoke(app, ["kinetics", "parametric", str(tmp_path / "frames.csv"), "--input",
                              str(tmp_path / "plasma.csv"), "--out", str(tmp_path / "maps")])
    assert res.exit_code == 0, res.output
    ki = load(tmp_path / "maps" / "ki_per_min.nii.gz").data.numpy()
    assert ki[0, 0, 0] == pytest.approx(FDG_TISSUES["tumour"].ki_voxel_per_min, rel=0.05)
    assert ki[1, 2, 3] == pytest.approx(FDG_TISSUES["muscle"].ki_voxel_per_min, rel=0.06)
    res = runner.invoke(app, ["kinetics", "parametric", str(tmp_path / "frames.csv"), "--input",
                              str(tmp_path / "plasma.csv"), "--method", "1tcm", "--out", str(tmp_path / "maps2")])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "maps2").glob("*.nii.gz")} == {"k1_per_min.nii.gz", "k2_per_min.nii.gz",
                                                                        "vb.nii.gz"}
    res = runner.invoke(app, ["kinetics", "parametric", str(tmp_path / "frames.csv"), "--input",
                              str(tmp_path / "plasma.csv"), "--out", str(tmp_path / "maps")])
    assert res.exit_code == 2  # an existing output folder is not overwritten without --overwrite
