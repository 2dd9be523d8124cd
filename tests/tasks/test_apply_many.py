"""Denoising many studies with one model: list files, output names, checks before work, local and Ray executors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import DataNotFoundError, InputError, MissingDependencyError, OutputExistsError
from petspect.tasks.apply import Study, apply_many, apply_model, output_path, read_study_list
from test_apply import _dicom_series, _pet_volume  # noqa: E402  (pytest's prepend import mode: tests/tasks on sys.path)


def _studies(tmp_path):
    """Two NIfTI studies (different noise) and one DICOM series, and a list file naming them."""
    from petspect.io import save

    save(_pet_volume(1), tmp_path / "in" / "a.nii.gz")
    save(_pet_volume(2), tmp_path / "in" / "b scan.nii.gz")
    _dicom_series(tmp_path / "in" / "pet")
    listing = tmp_path / "in" / "studies.txt"
    listing.write_text("# studies of the test\na.nii.gz\n\n'b scan.nii.gz'\npet\n")
    return listing


def test_list_file_and_output_names(tmp_path):
    listing = _studies(tmp_path)
    studies = read_study_list(listing)
    assert [s.input.name for s in studies] == ["a.nii.gz", "b scan.nii.gz", "pet"] and studies[0].extra == {}
    (tmp_path / "ct.txt").write_text("in/a.nii.gz ct=in/ct.nii.gz\n")
    assert read_study_list(tmp_path / "ct.txt")[0].extra == {"ct": tmp_path / "in" / "ct.nii.gz"}
    assert output_path(studies[0].input, tmp_path / "o").name == "a.nii.gz"
    assert output_path(studies[2].input, tmp_path / "o").name == "pet"  # DICOM in, DICOM series out
    assert output_path(studies[2].input, tmp_path / "o", "nifti").name == "pet.nii.gz"
    assert output_path(studies[0].input, tmp_path / "o", "dicom").name == "a"
    first_file = sorted((tmp_path / "in" / "pet").iterdir())[0]
    assert output_path(first_file, tmp_path / "o").name == "pet"  # a file of a series names it by its folder
    for bad in ("", "# only a comment\n", "a.nii.gz ct\n", "'unclosed\n"):
        (tmp_path / "bad.txt").write_text(bad)
        with pytest.raises(InputError):
            read_study_list(tmp_path / "bad.txt")
    with pytest.raises(DataNotFoundError):
        read_study_list(tmp_path / "none.txt")
    with pytest.raises(InputError):
        output_path(studies[0].input, tmp_path, "analyze")


def test_local_batch_equals_one_by_one_and_checks_before_work(tiny_model, tmp_path):
    from petspect.io import load

    listing = _studies(tmp_path)
    infos = apply_many(tiny_model, read_study_list(listing), out_dir=tmp_path / "out", show_progress=False)
    assert [i["output"].name for i in infos] == ["a.nii.gz", "b scan.nii.gz", "pet"]
    single = apply_model(tiny_model, tmp_path / "in" / "a.nii.gz", tmp_path / "single.nii.gz")
    assert torch.equal(load(infos[0]["output"]).data, load(single["output"]).data)
    assert load(tmp_path / "out" / "pet").same_grid(load(tmp_path / "in" / "pet"))
    # every output is checked before any study is denoised
    with pytest.raises(OutputExistsError):
        apply_many(tiny_model, read_study_list(listing), out_dir=tmp_path / "out", show_progress=False)
    with pytest.raises(OutputExistsError):  # an output inside an input folder
        apply_many(tiny_model, [tmp_path / "in" / "pet"], outputs=[tmp_path / "in" / "pet" / "x.nii.gz"])
    (tmp_path / "in2").mkdir()
    (tmp_path / "in2" / "a.nii.gz").write_bytes((tmp_path / "in" / "a.nii.gz").read_bytes())
    with pytest.raises(InputError, match="same output"):
        apply_many(tiny_model, [tmp_path / "in" / "a.nii.gz", tmp_path / "in2" / "a.nii.gz"], out_dir=tmp_path / "o2")
    with pytest.raises(DataNotFoundError):
        apply_many(tiny_model, [tmp_path / "in" / "a.nii.gz", tmp_path / "missing.nii.gz"], out_dir=tmp_path / "o2")
    with pytest.raises(InputError):
        apply_many(tiny_model, [], out_dir=tmp_path / "o2")
    with pytest.raises(InputError):
        apply_many(tiny_model, [tmp_path / "in" / "a.nii.gz"], out_dir=tmp_path / "o2", outputs=[tmp_path / "x"])
    assert not (tmp_path / "o2").exists()
    # the model's anatomical channels are checked per study (this model takes none)
    with pytest.raises(InputError, match="anatomical"):
        apply_many(tiny_model, [Study(tmp_path / "in" / "a.nii.gz", {"ct": tmp_path / "in" / "a.nii.gz"})],
                   out_dir=tmp_path / "o3", show_progress=False)


def test_cli_several_inputs_and_missing_ray(tiny_model, tmp_path, monkeypatch):
    listing = _studies(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["denoise", "apply", "--model", str(tiny_model), "--input", str(tmp_path / "in" / "a.nii.gz"),
                              "--inputs", str(listing), "--out-format", "nifti", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "same output" in res.output  # a.nii.gz twice
    res = runner.invoke(app, ["denoise", "apply", "--model", str(tiny_model), "--inputs", str(listing),
                              "--out-format", "nifti", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.nii.gz", "b scan.nii.gz", "pet.nii.gz"]
    res = runner.invoke(app, ["denoise", "apply", "--model", str(tiny_model), "--inputs", str(listing),
                              "--extra", "ct=x", "--out", str(tmp_path / "o4")])
    assert res.exit_code == 2 and "--extra" in res.output
    res = runner.invoke(app, ["denoise", "apply", "--model", str(tiny_model), "--out", str(tmp_path / "o4")])
    assert res.exit_code == 2 and "--input" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)
    res = runner.invoke(app, ["denoise", "apply", "--model", str(tiny_model), "--inputs", str(listing),
                              "--executor", "ray", "--out", str(tmp_path / "o5")])
    assert res.exit_code == 2 and "petspect[ray]" in res.output and not (tmp_path / "o5").exists()
    with pytest.raises(MissingDependencyError):
        apply_many(tiny_model, read_study_list(listing), out_dir=tmp_path / "o5", executor="ray")


@pytest.mark.slow
def test_ray_executor_matches_local_and_reports_task_errors(tiny_model, tmp_path):
    """Through the CLI on a 2-CPU local Ray (two actors, each loading the model once): the same outputs as the
    local executor (NIfTI voxels to float tolerance: the actors run torch on one thread; DICOM geometry and
    unit); a petspect error raised in a Ray task reaches the caller as that error."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'petspect[ray]')")
    from petspect.executor import parse_executor, ray_map, ray_session
    from petspect.io import load

    listing = _studies(tmp_path)
    local = apply_many(tiny_model, read_study_list(listing), out_dir=tmp_path / "local", show_progress=False)
    with ray_session(num_cpus=2) as ray:
        res = CliRunner().invoke(app, ["denoise", "apply", "--model", str(tiny_model), "--inputs", str(listing),
                                       "--executor", "ray", "--workers", "2", "--out", str(tmp_path / "ray")])
        assert res.exit_code == 0, res.output
        assert ray.is_initialized()  # a Ray the command did not start is left running
        out = dict(ray_map(ray, parse_executor, [("local",), ("ray",)], show_progress=False))
        assert out == {0: parse_executor("local"), 1: parse_executor("ray")}
        with pytest.raises(InputError, match="unknown executor"):
            list(ray_map(ray, parse_executor, [("local",), ("dask",)], show_progress=False))
    assert not ray.is_initialized()
    for info in local:
        a, b = load(info["output"]), load(tmp_path / "ray" / info["output"].name)
        assert a.same_grid(b) and a.unit == b.unit and a.shape == b.shape
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-3 * float(a.data.abs().max()))
    assert load(tmp_path / "ray" / "pet").meta["suv_factors"]["bw"] == pytest.approx(
        load(tmp_path / "local" / "pet").meta["suv_factors"]["bw"], rel=1e-9)
