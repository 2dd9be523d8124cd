"""A reader's warning reaches the CLI user as one ``warning: ...`` line, not Python's ``file:line: UserWarning``
followed by a line of petspect's source code (which looked like the start of a traceback)."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

import dicom_factory as fac
from petspect.cli.main import app

runner = CliRunner()


def test_pet_without_units_warns_in_one_clean_line(tmp_path):
    attrs = fac.pet_attrs()
    del attrs["Units"]
    fac.write(fac.slice_stack(np.full((2, 3, 3), 100.0), **attrs), tmp_path / "pet")
    res = runner.invoke(app, ["convert", str(tmp_path / "pet"), str(tmp_path / "o.nii.gz"), "--unit", "Bq/mL"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "Units" in ln]
    assert lines and all(ln.startswith("warning: ") for ln in lines)
    assert "UserWarning" not in res.output and "return func(" not in res.output
