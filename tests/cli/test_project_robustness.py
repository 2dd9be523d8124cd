"""``petspect project`` options an outside quality pass tried: a negative or NaN randoms/scatter fraction and a
negative --activity-mbq are refused naming the option (a negative randoms fraction was silently dropped, a NaN
one passed every check), and the summary line names the modality as PET, not ``Modality.PET``."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import save
from petspect.volume import Volume

runner = CliRunner()


@pytest.fixture(scope="module")
def activity(tmp_path_factory):
    p = tmp_path_factory.mktemp("proj") / "act.nii.gz"
    x = torch.zeros(3, 24, 24)
    x[:, 8:16, 8:16] = 1000.0
    save(Volume(x, (8.0, 8.0, 8.0), unit="Bq/mL", modality="PT"), p)
    return p


@pytest.mark.parametrize("opts, says", [
    (["--counts", "1e4", "--randoms-fraction", "-0.1"], "randoms_fraction"),
    (["--counts", "1e4", "--scatter-fraction", "nan"], "scatter_fraction"),
    (["--scan-s", "60", "--activity-mbq", "-3"], "activity_mbq"),
])
def test_bad_fractions_and_activity_exit_2(activity, tmp_path, opts, says):
    out = tmp_path / "acq"
    res = runner.invoke(app, ["project", str(activity), "--out", str(out), "--system", "brain", "--2d", *opts])
    assert res.exit_code == 2, res.output
    assert says in res.output and not out.exists()


def test_summary_names_the_modality_plainly(activity, tmp_path):
    res = runner.invoke(app, ["project", str(activity), "--out", str(tmp_path / "acq"), "--system", "brain", "--2d",
                              "--counts", "1e4"])
    assert res.exit_code == 0, res.output
    assert "PET brain" in res.output and "Modality." not in res.output
