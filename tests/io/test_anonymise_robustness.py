"""``petspect anonymise`` on inputs an outside quality pass tried: a failed run leaves nothing behind (no stray
pseudonym key that a later run would silently adopt)."""

from __future__ import annotations

from typer.testing import CliRunner

from petspect.cli.main import app

runner = CliRunner()


def test_a_failed_anonymisation_leaves_no_new_key_file(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "notes.txt").write_text("not DICOM")
    out = tmp_path / "out"
    res = runner.invoke(app, ["anonymise", str(src), str(out)])
    assert res.exit_code == 2 and "no DICOM" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_an_existing_key_is_kept_when_a_run_fails(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    key = tmp_path / "out.petspect-anon-key"
    key.write_text("00" * 32 + "\n")
    res = runner.invoke(app, ["anonymise", str(src), str(tmp_path / "out")])
    assert res.exit_code == 2
    assert key.read_text() == "00" * 32 + "\n"
