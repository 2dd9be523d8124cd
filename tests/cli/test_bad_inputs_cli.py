"""Bad and hostile inputs on the command line: one clean ``error:`` line, exit 2, never a traceback (issue 14)."""

from __future__ import annotations

import os
import threading

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.testing import samples

runner = CliRunner()


def _clean_error(res, match: str):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert match in res.output, res.output


def test_fifo_input_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pet.nii.gz"
    os.mkfifo(fifo)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("res", runner.invoke(app, ["info", str(fifo)])),
                         daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():  # unblock the reader so the test run can finish, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("petspect info blocked on a FIFO")
    _clean_error(result["res"], "FIFO")


def test_damaged_gzip_is_a_clean_error(tmp_path):
    p = samples.nifti(tmp_path, gz=True)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    p.write_bytes(bytes(raw))
    _clean_error(runner.invoke(app, ["info", str(p)]), "error:")


def test_damaged_model_and_acquisition_folders(tmp_path):
    model = samples.model_folder(tmp_path)
    (model / "normalization.json").write_bytes(b"\xff\xfe not json")
    pet = samples.nifti(tmp_path, gz=True)
    res = runner.invoke(app, ["denoise", "apply", "--model", str(model), "--input", str(pet), "--out",
                              str(tmp_path / "den.nii.gz")])
    _clean_error(res, "normalization.json")
    acq = samples.acquisition_folder(tmp_path)
    (acq / "acquisition.json").write_text('{"format": "petspect-acquisition", "version": 1}')
    _clean_error(runner.invoke(app, ["recon", str(acq), "--out", str(tmp_path / "r.nii.gz")]), "error:")


def test_one_nan_voxel_is_refused_by_denoise_apply(tmp_path):
    """A NaN used to spread through the network's receptive field (1 voxel in, 243 out)."""
    from petspect.io import load, save

    model = samples.model_folder(tmp_path)
    vol = load(samples.nifti(tmp_path, gz=True))
    data = vol.data.clone()
    data[1, 2, 2] = float("nan")
    save(vol.with_data(data), tmp_path / "nan.nii.gz")
    res = runner.invoke(app, ["denoise", "apply", "--model", str(model), "--input", str(tmp_path / "nan.nii.gz"),
                              "--out", str(tmp_path / "den.nii.gz")])
    _clean_error(res, "NaN")
    assert not (tmp_path / "den.nii.gz").exists()


def test_interfile_outside_data_needs_the_explicit_option(tmp_path):
    from petspect.io import save
    from petspect.volume import Volume

    save(Volume.centered(torch.ones(2, 2, 2), (1.0, 1.0, 1.0), unit="Bq/mL", modality="PT"), tmp_path / "a" / "i.hv")
    (tmp_path / "x.v").write_bytes(b"\0" * 32)
    hdr = tmp_path / "a" / "i.hv"
    hdr.write_text(hdr.read_text().replace("name of data file := i.v", "name of data file := ../x.v"))
    _clean_error(runner.invoke(app, ["info", str(hdr)]), "outside the header's folder")
    res = runner.invoke(app, ["info", str(hdr), "--allow-outside-data"])
    assert res.exit_code == 0, res.output
