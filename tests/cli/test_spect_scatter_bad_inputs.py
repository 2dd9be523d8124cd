"""``petspect ac spect-scatter`` on bad inputs: NaN or negative counts and NaN attenuation maps gave NaN or
negative scatter with exit code 0, and a refusal after the folder was claimed left half of the outputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from petspect.ac.networks import save_model, train_translation
    from petspect.ac.spect_scatter import make_spect_case

    tmp = tmp_path_factory.mktemp("spect_scatter")
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, 2, 16, 16, generator=g)
    y = torch.rand(4, 1, 16, 16, generator=g)
    trained_on = {"system": "spect-lehr", "pixel_mm": 12.0, "inputs": ["photopeak", "tew"], "residual": "tew",
                  "tew_smooth_fwhm_mm": 24.0}  # as the study records an emission-only model
    model, _ = train_translation("spect_scatter", x, y, x, y, target_scale=1.0, epochs=1, seed=1,
                                 trained_on=trained_on, mirror=False)
    case = make_spect_case("mdp", 4, voxel_mm=12.0, shape=(2, 32, 32), n_views=8)
    return {"tmp": tmp, "model": save_model(model, tmp / "model"), "case": case}


def _write(setup, name: str, counts: torch.Tensor | None = None):
    from petspect.io.interfile import write_interfile_projections

    proj = setup["case"].projections
    if (setup["tmp"] / f"{name}.hs").is_file():
        return setup["tmp"] / f"{name}.hs"
    return write_interfile_projections(proj if counts is None else replace(proj, counts=counts),
                                       setup["tmp"] / f"{name}.hs")


@pytest.mark.parametrize("case", ["nan", "negative", "zero"])
def test_projections_without_finite_nonnegative_counts_are_refused(setup, tmp_path, case):
    counts = setup["case"].projections.counts.clone()
    if case == "nan":
        counts[0, 0, 0, 0] = float("nan")
    elif case == "negative":
        counts = -counts
    else:
        counts.zero_()
    hs = _write(setup, f"proj_{case}", counts)
    res = _run(["ac", "spect-scatter", hs, "--model", setup["model"], "--collimator", "siemens-lehr",
                "--out", tmp_path / "out"])
    assert res.exit_code == 2, res.output
    assert {"nan": "NaN", "negative": "negative", "zero": "no photopeak counts"}[case] in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_a_nan_attenuation_map_is_refused(setup, tmp_path):
    from petspect.io.nifti import write_nifti

    case = setup["case"]
    mu = torch.as_tensor(case.mu_per_mm).clone()
    mu[0, 5, 5] = float("nan")
    mu_path = write_nifti(case.data.grid.volume(mu, unit="1/mm"), tmp_path / "mu.nii.gz")
    res = _run(["ac", "spect-scatter", _write(setup, "proj"), "--model", setup["model"], "--collimator",
                "siemens-lehr", "--mu", mu_path, "--out", tmp_path / "out"])
    assert res.exit_code == 2 and "NaN" in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_a_refused_reconstruction_leaves_no_half_written_folder(setup, tmp_path):
    """--recon with more subsets than views failed after scatter_dl.npy and scatter_tew.npy were written (no
    scatter.json): a half-filled folder that a rerun refused as existing."""
    hs = _write(setup, "proj")
    res = _run(["ac", "spect-scatter", hs, "--model", setup["model"], "--collimator", "siemens-lehr", "--recon",
                "--iterations", 1, "--subsets", 100, "--out", tmp_path / "out"])
    assert res.exit_code == 2 and "subsets" in res.output, res.output
    assert not (tmp_path / "out").exists()
    for bad in (["--iterations", 0], ["--subsets", 0]):
        res = _run(["ac", "spect-scatter", hs, "--model", setup["model"], "--out", tmp_path / "out", *bad])
        assert res.exit_code == 2 and not (tmp_path / "out").exists(), res.output
    ok = _run(["ac", "spect-scatter", hs, "--model", setup["model"], "--collimator", "siemens-lehr", "--recon",
               "--iterations", 1, "--subsets", 4, "--out", tmp_path / "out"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "out" / "spect_dl_scatter.nii.gz").is_file() and (tmp_path / "out" / "scatter.json").is_file()


def test_overwrite_without_recon_removes_the_earlier_images(setup, tmp_path):
    """A rerun with --overwrite and no --recon kept the earlier run's spect_*_scatter.nii.gz."""
    hs = _write(setup, "proj")
    args = ["ac", "spect-scatter", hs, "--model", setup["model"], "--collimator", "siemens-lehr", "--out",
            tmp_path / "out"]
    assert _run([*args, "--recon", "--iterations", 1, "--subsets", 4]).exit_code == 0
    assert (tmp_path / "out" / "spect_dl_scatter.nii.gz").is_file()
    res = _run([*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "scatter.json", "scatter_dl.npy", "scatter_tew.npy"]
