"""Every command that writes loses no input and no bystander file, whatever --out and --overwrite say (issue 14).

Each case points the output at the folder that holds the input, at the current folder, or at a folder
petspect did not write, with --overwrite, and checks a clean refusal (exit 2, no traceback) and that
every file in the folder is byte for byte what it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.testing import samples

runner = CliRunner()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    src = tmp_path_factory.mktemp("inputs")
    return {"dcm": samples.dicom_pet(src), "nii": samples.nifti(src, gz=True), "model": samples.model_folder(src),
            "acq": samples.acquisition_folder(src), "ds": _tiny_dataset(src)}


def _tiny_dataset(root: Path) -> Path:
    """Three imported cases with full- and low-dose reconstructions (a dataset denoise train accepts)."""
    import torch

    from petspect.io import save
    from petspect.simulate.importer import import_cases
    from petspect.volume import Volume

    g = torch.Generator().manual_seed(5)
    for case in ("p1", "p2", "p3"):
        ref = Volume.centered(torch.rand(4, 16, 16, generator=g), (3, 2, 2), unit="Bq/mL", modality="PT")
        save(ref, root / "cases" / case / "recon_d100_osem_ac.nii.gz")
        save(ref.with_data(ref.data * 0.9), root / "cases" / case / "recon_d010_osem_ac.nii.gz")
    return import_cases(root / "cases", root / "ds", reference_key="recon_d100_osem_ac")


@pytest.fixture()
def D(tmp_path, inputs):
    """A user's folder: the inputs, a thesis and a data folder."""
    import shutil

    d = tmp_path / "D"
    d.mkdir()
    for key in ("dcm", "acq", "model"):
        shutil.copytree(inputs[key], d / inputs[key].name)
    shutil.copy2(inputs["nii"], d / "pet.nii.gz")
    (d / "thesis.pdf").write_bytes(b"%PDF years of work")
    (d / "data").mkdir()
    (d / "data" / "table.csv").write_text("a,b\n1,2\n")
    return d


def _refused(args, root: Path, match: str | None = None):
    before = _tree(root)
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    if match:
        assert match in res.output, res.output
    assert _tree(root) == before, "a file changed or vanished"
    return res


CASES = {
    "convert dicom into its folder": lambda D: ["convert", str(D / "pet_dcm"), str(D), "--overwrite"],
    "convert nifti into its folder": lambda D: ["convert", str(D / "pet.nii.gz"), str(D), "--overwrite"],
    "convert onto itself": lambda D: ["convert", str(D / "pet.nii.gz"), str(D / "pet.nii.gz"), "--overwrite"],
    "recon into its folder": lambda D: ["recon", str(D / "acq"), "--out", str(D), "--overwrite",
                                        "--algorithm", "fbp"],
    "denoise apply into its folder": lambda D: ["denoise", "apply", "--model", str(D / "model"), "--input",
                                                str(D / "pet_dcm"), "--out", str(D), "--overwrite"],
    "project into its folder": lambda D: ["project", str(D / "pet.nii.gz"), "--out", str(D), "--system",
                                          "spect-lehr", "--counts", "1000", "--overwrite"],
    "nema json onto its input": lambda D: ["nema", str(D / "pet.nii.gz"), "--json", str(D / "pet.nii.gz"),
                                           "--overwrite"],
    "dataset import into its source": lambda D: ["dataset", "import", str(D), "--out", str(D), "--reference-key",
                                                 "pet", "--overwrite"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_holding_the_input_is_refused(case, D):
    _refused(CASES[case](D), D.parent, "input")


CWD_CASES = {
    "phantom": ["phantom", "cylinder", "--out", ".", "--overwrite"],
    "simulate": ["simulate", "quick", "--out", ".", "--overwrite", "--subjects", "1"],
    "detector simulate": ["detector", "simulate", "--out", ".", "--overwrite"],
    "detector limits": ["detector", "limits", "--out", ".", "--overwrite"],
    "detector train": ["detector", "train", "--data", "{acq}", "--out", ".", "--overwrite"],
    "detector evaluate": ["detector", "evaluate", "--out", ".", "--overwrite"],
    "denoise train": ["denoise", "train", "--dataset", "{ds}", "--out", ".", "--epochs", "1", "--mode", "2d"],
    "anonymise": ["anonymise", "{acq}", ".", "--overwrite"],
    "nema json": ["nema", "{nii}", "--json", ".", "--overwrite"],
    "project": ["project", "{nii}", "--out", ".", "--system", "spect-lehr", "--counts", "100", "--overwrite"],
    "demo": ["demo", "--out", ".", "--overwrite", "--epochs", "1"],
    "recon": ["recon", "{acq}", "--out", ".", "--overwrite"],
    "convert": ["convert", "{nii}", ".", "--overwrite"],
}


@pytest.mark.parametrize("case", sorted(CWD_CASES))
def test_current_folder_is_never_an_output(case, tmp_path, monkeypatch, inputs):
    cwd = tmp_path / "home"
    cwd.mkdir()
    (cwd / "thesis.pdf").write_bytes(b"%PDF years of work")
    (cwd / "data").mkdir()
    (cwd / "data" / "x.csv").write_text("1\n")
    monkeypatch.chdir(cwd)
    args = [a.format(acq=inputs["acq"], nii=inputs["nii"], ds=inputs["ds"]) for a in CWD_CASES[case]]
    _refused(args, cwd, "current folder")


FOREIGN_CASES = {
    "phantom": ["phantom", "cylinder", "--out", "{out}", "--overwrite"],
    "simulate": ["simulate", "quick", "--out", "{out}", "--overwrite", "--subjects", "1"],
    "demo": ["demo", "--out", "{out}", "--overwrite", "--epochs", "1"],
    "convert to dicom": ["convert", "{nii}", "{out}", "--overwrite"],
    "recon to dicom": ["recon", "{acq}", "--out", "{out}", "--overwrite", "--algorithm", "fbp"],
}


@pytest.mark.parametrize("case", sorted(FOREIGN_CASES))
def test_overwrite_never_clears_a_folder_petspect_did_not_write(case, tmp_path, inputs):
    out = tmp_path / "results"
    (out / "sub-01").mkdir(parents=True)
    (out / "sub-01" / "scan.nii.gz").write_bytes(b"precious")
    (out / "model").mkdir()
    (out / "model" / "weights.bin").write_bytes(b"mine")
    (out / "dataset.json").write_text("{}")
    args = [a.format(out=out, acq=inputs["acq"], nii=inputs["nii"]) for a in FOREIGN_CASES[case]]
    _refused(args, tmp_path)


def test_phantom_overwrite_replaces_its_own_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["phantom", "cylinder", "--out", "ph", "--voxel-mm", "8"])
    assert res.exit_code == 0, res.output
    first = _tree(tmp_path / "ph")
    res = runner.invoke(app, ["phantom", "cylinder", "--out", "ph", "--voxel-mm", "8"])
    assert res.exit_code == 2 and "overwrite" in res.output
    res = runner.invoke(app, ["phantom", "cylinder", "--out", "ph", "--voxel-mm", "8", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert set(_tree(tmp_path / "ph")) == set(first)
    (tmp_path / "ph" / "my_notes.txt").write_text("keep me")
    _refused(["phantom", "cylinder", "--out", "ph", "--voxel-mm", "8", "--overwrite"], tmp_path, "my_notes.txt")


def test_convert_overwrite_replaces_its_own_dicom_output(tmp_path, inputs):
    out = tmp_path / "dcm_out"
    assert runner.invoke(app, ["convert", str(inputs["nii"]), str(out)]).exit_code == 0
    res = runner.invoke(app, ["convert", str(inputs["nii"]), str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["phantom", "cylinder", "--out", str(out), "--overwrite"])
    assert res.exit_code == 2 and "another kind" in res.output  # only the same command's output


def test_unexpected_bug_prints_traceback_and_how_to_report(monkeypatch, tmp_path, inputs):
    import petspect.io.convert as conv

    def boom(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(conv, "describe", boom)
    res = runner.invoke(app, ["info", str(inputs["nii"])])
    assert res.exit_code == 1
    assert "report" in res.output and "bug" in res.output
