"""``petspect dose kernel`` output paths: the kernel's unit and provenance are kept by NIfTI and Interfile only."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from petspect.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("name", ["kernel_dir", "kernel.txt", "kernel.dcm"])
def test_dose_kernel_refuses_a_non_nifti_output_before_computing(tmp_path, monkeypatch, name):
    """`--out DIR` wrote the kernel as a DICOM series that reads back as an MR in a.u. (unit mGy/(MBq s) and
    provenance lost); `--out k.txt` was refused only after the (possibly long) kernel computation."""
    import petspect.dosimetry.kernels as kernels

    def not_called(*args, **kwargs):
        raise AssertionError("the kernel was computed before the output path was checked")

    monkeypatch.setattr(kernels, "voxel_kernel", not_called)
    r = runner.invoke(app, ["dose", "kernel", "--nuclide", "Lu-177", "--voxel-mm", "4", "--out", str(tmp_path / name)])
    assert r.exit_code == 2 and ".nii.gz" in r.output, r.output
    assert list(tmp_path.iterdir()) == []


def test_dose_kernel_refuses_a_seed_without_electrons(tmp_path):
    """--seed without --electrons was dropped without a word (the shipped seed-0 kernels were used)."""
    r = runner.invoke(app, ["dose", "kernel", "--nuclide", "Lu-177", "--voxel-mm", "4", "--seed", "7", "--out",
                            str(tmp_path / "k.nii.gz")])
    assert r.exit_code == 2 and "--electrons" in r.output, r.output
    assert not (tmp_path / "k.nii.gz").exists()
