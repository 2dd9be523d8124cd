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
