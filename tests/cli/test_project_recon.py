"""`petspect project` and `petspect recon`: NIfTI in, data folder, image in Bq/mL out (PET and SPECT)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load, save
from petspect.volume import Volume

CONC = 5000.0
PET2D = ["--system", "small-animal", "--2d", "--view-mashing", "2", "--radial-bins", "110"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A 20x20 water cylinder (radius 30 mm, 4 mm pixels): activity 5000 Bq/mL and mu at 511 keV."""
    folder = tmp_path_factory.mktemp("imgs")
    c = (torch.arange(20) - 9.5) * 4.0
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    disc = (r < 30).float()[None]
    save(Volume.centered(CONC * disc, (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT"), folder / "act.nii.gz")
    save(Volume.centered(0.0096 * disc, (4.0, 4.0, 4.0), unit="1/mm"), folder / "mu.nii.gz")
    save(Volume.centered(CONC * disc.expand(2, -1, -1), (4.0, 4.0, 4.0), unit="Bq/mL"), folder / "act2.nii.gz")
    return folder, r


def _run(args):
    res = CliRunner().invoke(app, args)
    return res


@pytest.mark.parametrize("mode", [["--counts", "2e6"], ["--activity-mbq", "5", "--scan-s", "600"]],
                         ids=["counts", "activity"])
def test_pet_project_recon_bq_per_ml(images, tmp_path, mode):
    """Both ways of making the data reconstruct to the true concentration (central ROI within 5 % at these
    counts); the image keeps the activity image's grid."""
    folder, r = images
    res = _run(["project", str(folder / "act.nii.gz"), "--mu", str(folder / "mu.nii.gz"), *PET2D, *mode,
                "--seed", "4", "--out", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "data" / "acquisition.json").read_text())
    assert doc["system"]["preset"] == "small-animal" and doc["calibration"]["unit"] == "Bq/mL"
    expected = CONC if mode[0] == "--counts" else doc["calibration"]["activity_scale"] * CONC
    res = _run(["recon", str(tmp_path / "data"), "--algorithm", "osem", "--iterations", "3", "--subsets", "8",
                "--out", str(tmp_path / "osem.nii.gz")])
    assert res.exit_code == 0, res.output
    img = load(tmp_path / "osem.nii.gz")
    assert img.unit == "Bq/mL" and img.same_grid(load(folder / "act.nii.gz"))
    assert float(img.data[0][r < 20].mean()) == pytest.approx(expected, rel=0.05)


def test_recon_algorithms_and_objective(images, tmp_path):
    folder, r = images
    assert _run(["project", str(folder / "act.nii.gz"), "--mu", str(folder / "mu.nii.gz"), *PET2D,
                 "--counts", "1e6", "--out", str(tmp_path / "d")]).exit_code == 0
    res = _run(["recon", str(tmp_path / "d"), "--algorithm", "map", "--beta", "1", "--prior", "rdp",
                "--iterations", "2", "--subsets", "4", "--objective", "--out", str(tmp_path / "map.nii.gz")])
    assert res.exit_code == 0, res.output
    values = [float(line.split()[-1]) for line in res.output.splitlines() if line.startswith("iteration")]
    assert len(values) == 2 and values[1] > values[0]
    res = _run(["recon", str(tmp_path / "d"), "--algorithm", "fbp", "--filter", "hann", "--post-filter-mm", "6",
                "--out", str(tmp_path / "fbp.nii.gz")])
    assert res.exit_code == 0, res.output
    assert float(load(tmp_path / "fbp.nii.gz").data[0][r < 20].mean()) == pytest.approx(CONC, rel=0.05)


def test_spect_project_recon(images, tmp_path):
    folder, r = images
    res = _run(["project", str(folder / "act2.nii.gz"), "--system", "spect-lehr", "--views", "32",
                "--radius-mm", "120", "--counts", "2e6", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    res = _run(["recon", str(tmp_path / "s"), "--algorithm", "osem", "--iterations", "10", "--subsets", "4",
                "--out", str(tmp_path / "s.nii.gz")])
    assert res.exit_code == 0, res.output
    img = load(tmp_path / "s.nii.gz")
    assert img.modality == "NM" and float(img.data[:, r < 18].mean()) == pytest.approx(CONC, rel=0.05)


def test_cli_errors(images, tmp_path):
    folder, _ = images
    act = str(folder / "act.nii.gz")
    res = _run(["project", act, *PET2D, "--counts", "1e5", "--scan-s", "10", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "either" in res.output
    res = _run(["project", act, "--system", "nope", "--counts", "1e5", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown system" in res.output
    res = _run(["project", act, *PET2D, "--counts", "1e5", "--out", str(folder)])
    assert res.exit_code == 2
    res = _run(["recon", str(tmp_path / "missing"), "--out", str(tmp_path / "y.nii.gz")])
    assert res.exit_code == 2 and "acquisition" in res.output
