"""``petspect study recon --preset tiny`` end to end, and ``petspect recon DATA --model M`` on its models.

The tiny preset trains every network for one or two epochs, so only the study's contract is tested here (files,
metric keys with intervals, checks written before the test split was read and judged, test_scored, the trained
models applied to an acquisition folder with their data-consistency map, refusals); the figures of the quick
preset are in BENCHMARKS.md.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.learned_recon.study import ACCEPTANCE_CHECKS, PET_METHODS, REQUIRED, SPECT_METHODS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("recon_study") / "study"
    r = CliRunner().invoke(app, ["--device", "cpu", "study", "recon", "--preset", "tiny", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_study_writes_every_method_with_intervals_and_the_checks(study):
    out, output = study
    metrics = json.loads((out / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert set(PET_METHODS) | set(SPECT_METHODS) <= set(metrics)
    for m in PET_METHODS + SPECT_METHODS:
        for k in REQUIRED:
            assert k in metrics[m], (m, k)
        assert metrics[m]["wall_s"] > 0 and metrics[m]["wall_s_ci95"][0] <= metrics[m]["wall_s_ci95"][1]
    assert "delta_nrmse_pct_ci95" in metrics["unrolled"]
    assert "nrmse_vs_full_osem_pct" in metrics["synth_views_osem"]
    assert "cho_dprime" in summary["notes"][0]  # a value, or the reason there is none (too few lesion ROIs)
    assert summary["test_scored"] == 1 and summary["inverse_crime"] is False
    assert summary["inverse_crime_by_part"] == {"pet": False, "spect": False}
    assert [c["check"] for c in summary["checks"]] == ACCEPTANCE_CHECKS
    assert all(c["passed"] in (True, False, None) and c["detail"] for c in summary["checks"])
    pre = json.loads((out / "acceptance_checks.json").read_text())
    assert pre["checks"] == ACCEPTANCE_CHECKS and pre["written_before_the_test_split_was_read"]
    assert (out / "report" / "index.html").read_text().count("<img") >= 4
    assert "PASSED" in output or "FAILED" in output


def test_models_apply_to_an_acquisition_folder_and_refuse_other_data(study, tmp_path):
    out, _ = study
    splits = json.loads((out / "pet_dataset" / "dataset.json").read_text())
    sub = out / "pet_dataset" / splits["test"][0]["subject"]
    runner = CliRunner()
    for kind in ("unrolled", "direct", "projection_unet"):
        img = tmp_path / f"{kind}.nii.gz"
        r = runner.invoke(app, ["recon", str(sub), "--level", "d010", "--model", str(out / "models" / kind),
                                "--out", str(img)])
        assert r.exit_code == 0, r.output
        cons = json.loads((tmp_path / f"{kind}_consistency.json").read_text())
        assert np.load(tmp_path / f"{kind}_consistency_map.npy").shape == tuple(cons["map_shape"])
        assert cons["kind"] == kind and cons["deviance_per_bin"] > 0
    # the projection-domain model was trained for 10 % dose data
    r = runner.invoke(app, ["recon", str(sub), "--level", "d100", "--model", str(out / "models" / "projection_unet"),
                            "--out", str(tmp_path / "full.nii.gz")])
    assert r.exit_code == 2 and "count_fraction" in r.output
    # a SPECT acquisition is another system
    spect = json.loads((out / "spect_dataset" / "dataset.json").read_text())
    ssub = out / "spect_dataset" / spect["test"][0]["subject"]
    r = runner.invoke(app, ["recon", str(ssub), "--level", "d100", "--model", str(out / "models" / "unrolled"),
                            "--out", str(tmp_path / "spect.nii.gz")])
    assert r.exit_code == 2 and "trained for another acquisition" in r.output and "modality" in r.output
    r = runner.invoke(app, ["recon", str(sub), "--level", "d010", "--model", str(out / "models" / "unrolled"),
                            "--iterations", "3", "--out", str(tmp_path / "it.nii.gz")])
    assert r.exit_code == 2 and "own settings" in r.output  # never a silently ignored option
    (tmp_path / "not_a_model").mkdir()
    r = runner.invoke(app, ["recon", str(sub), "--level", "d010", "--model", str(tmp_path / "not_a_model"), "--out",
                            str(tmp_path / "x.nii.gz")])
    assert r.exit_code == 2 and "learned_model.json" in r.output


def test_unknown_preset_and_cuda_are_refused(tmp_path):
    r = CliRunner().invoke(app, ["study", "recon", "--preset", "huge", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "tiny" in r.output
    from petspect.errors import InputError
    from petspect.learned_recon.study import run_recon_study

    with pytest.raises(InputError, match="CPU"):
        run_recon_study(tmp_path / "s2", preset="tiny", device="cuda")
    assert not (tmp_path / "s2").exists()  # refused before anything was written
