"""petspect._fileio: outputs never replace inputs, bystanders or folders petspect did not write (issue 14)."""

from __future__ import annotations

import os
import stat

import pytest

from petspect._fileio import (MARKER_NAME, atomic_dir, atomic_path, atomic_write_text, check_output_path,
                              current_umask, is_petspect_output, require_regular)
from petspect.errors import FormatError, OutputExistsError


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_output_holding_an_input_is_refused(tmp_path):
    d = tmp_path / "D"
    (d / "pet_dcm").mkdir(parents=True)
    (d / "pet_dcm" / "0001.dcm").write_bytes(b"x")
    for out in (d, tmp_path):  # the input's folder and a folder above it
        with pytest.raises(OutputExistsError, match="holds the input"):
            check_output_path(out, overwrite=True, inputs=[d / "pet_dcm"])
    with pytest.raises(OutputExistsError, match="overwrite the input"):
        check_output_path(d / "pet_dcm" / "sub", overwrite=True, inputs=[d / "pet_dcm"])
    with pytest.raises(OutputExistsError, match="overwrite the input"):
        check_output_path(d / "pet_dcm", overwrite=True, inputs=[d / "pet_dcm"])
    assert check_output_path(d / "new.nii.gz", inputs=[d / "pet_dcm"]) == (d / "new.nii.gz").resolve()


def test_current_folder_and_its_parents_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        with pytest.raises(OutputExistsError, match="current folder"):
            check_output_path(out, overwrite=True)


def test_overwrite_replaces_only_marked_folders_of_the_same_kind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.pdf").write_bytes(b"years of work")
    with pytest.raises(OutputExistsError, match="did not write"):
        check_output_path(out, overwrite=True, kind="phantom")
    with pytest.raises(OutputExistsError, match="did not write"), atomic_dir(out, kind="phantom") as tmp:
        (tmp / "a.txt").write_text("new")
    assert (out / "thesis.pdf").read_bytes() == b"years of work"
    # a folder petspect wrote is replaced, atomically, by the same kind only
    ours = tmp_path / "ours"
    with atomic_dir(ours, kind="phantom") as tmp:
        (tmp / "a.txt").write_text("1")
    assert is_petspect_output(ours, "phantom") and (ours / MARKER_NAME).is_file()
    check_output_path(ours, overwrite=True, kind="phantom")
    with pytest.raises(OutputExistsError, match="another kind"):
        check_output_path(ours, overwrite=True, kind="dicom-series")
    with atomic_dir(ours, kind="phantom") as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in ours.iterdir()) == [MARKER_NAME, "b.txt"]
    # a file the user added to our folder protects it
    (ours / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        check_output_path(ours, overwrite=True, kind="phantom")
    assert (ours / "notes.txt").read_text() == "mine"


def test_failed_write_leaves_the_old_output(tmp_path):
    ours = tmp_path / "ours"
    with atomic_dir(ours, kind="k") as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(ours, kind="k") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash")
    assert (ours / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours"]  # no temporary left behind


def test_outputs_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        assert current_umask() == 0o022
        atomic_write_text(tmp_path / "a.json", "{}")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_fifo_is_refused_before_opening(tmp_path):
    fifo = tmp_path / "pipe.nii"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="FIFO"):
        require_regular(fifo)
    from petspect.io import load

    with pytest.raises(FormatError, match="FIFO"):  # used to block forever
        load(fifo)
    with pytest.raises(FormatError, match="FIFO"):
        load(tmp_path / "pipe.nii")
    with pytest.raises((OutputExistsError, FormatError)):
        with atomic_path(fifo):
            pass


def test_file_output_never_replaces_a_folder(tmp_path):
    (tmp_path / "x.nii.gz").mkdir()
    with pytest.raises(OutputExistsError, match="folder"), atomic_path(tmp_path / "x.nii.gz"):
        pass
    assert (tmp_path / "x.nii.gz").is_dir()


def test_interfile_never_replaces_a_data_file_no_header_names(tmp_path):
    import torch

    from petspect.io import save
    from petspect.volume import Volume

    vol = Volume.centered(torch.ones(2, 2, 2), (1.0, 1.0, 1.0), unit="Bq/mL", modality="PT")
    (tmp_path / "img.v").write_bytes(b"someone's raw data")
    with pytest.raises(OutputExistsError, match="img.v"):
        save(vol, tmp_path / "img.hv", overwrite=True)
    assert (tmp_path / "img.v").read_bytes() == b"someone's raw data"
    save(vol, tmp_path / "own.hv")
    save(vol, tmp_path / "own.hv", overwrite=True)  # its own pair is replaced


def test_claimed_folder_rerun_removes_the_commands_earlier_outputs_only(tmp_path):
    """An --overwrite rerun of a command that writes some files only on some runs (a DICOM SEG for a DICOM
    input, a displacement field for the learned method) must not leave the earlier run's file beside the new
    ones; files the command never writes stay (found by QA on kinetics parametric, fixed here for all)."""
    from petspect._fileio import claim_output_folder

    out = claim_output_folder(tmp_path / "o", kind="segmentation", outputs=("seg.dcm", "lesions.csv"))
    (out / "seg.dcm").write_text("from the first run")
    (out / "lesions.csv").write_text("first")
    (out / "notes.txt").write_text("the user's")
    again = claim_output_folder(tmp_path / "o", kind="segmentation", overwrite=True, outputs=("seg.dcm", "lesions.csv"))
    assert not (again / "seg.dcm").exists() and not (again / "lesions.csv").exists()
    assert (again / "notes.txt").read_text() == "the user's"
    with pytest.raises(ValueError):
        claim_output_folder(tmp_path / "o", kind="segmentation", overwrite=True, outputs=("../x",))


def test_segment_and_register_and_dose_declare_their_outputs():
    """Every file name the segmentation, registration and dose writers use is in their declared outputs."""
    import re
    from pathlib import Path

    import petspect
    from petspect.cli.cmd_segment import REGISTRATION_OUTPUTS
    from petspect.segmentation.apply import SEGMENT_OUTPUTS

    src = Path(petspect.__file__).parent
    for path, declared in ((src / "segmentation" / "apply.py", SEGMENT_OUTPUTS),
                           (src / "cli" / "cmd_segment.py", REGISTRATION_OUTPUTS)):
        written = set(re.findall(r'out(?:_p)? / "([a-z_]+\.(?:dcm|csv|nii\.gz|json|tfm))"', path.read_text()))
        assert written and written <= set(declared), (path.name, written - set(declared))
