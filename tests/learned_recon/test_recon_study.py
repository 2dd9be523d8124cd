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
from petspect.learned_recon.study import ACCEPTANCE_CHECKS, PET_METHODS, REQUIRED, SPECT_METHODS, TOF_METHODS

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
    methods = PET_METHODS + TOF_METHODS + SPECT_METHODS
    assert set(methods) <= set(metrics) and len(methods) == 14
    for m in methods:
        for k in REQUIRED:
            assert k in metrics[m], (m, k)
        assert metrics[m]["wall_s"] > 0 and metrics[m]["wall_s_ci95"][0] <= metrics[m]["wall_s_ci95"][1]
    assert "delta_nrmse_pct_ci95" in metrics["unrolled"]
    assert "nrmse_vs_full_osem_pct" in metrics["synth_views_osem"]
    # each group's deltas are against its own baseline: TOF against tof_osem, SPECT low count against spect_low_osem
    assert "delta_nrmse_pct" in metrics["tof_projection_unet"] and "delta_nrmse_pct" not in metrics["tof_osem"]
    assert "delta_nrmse_pct" in metrics["spect_projection_unet"] and "delta_nrmse_pct" not in metrics["spect_low_osem"]
    # cho_dprime: a value, or the reason there is none (too few lesion ROIs), for each part
    for part, note in zip(("PET", "TOF PET", "SPECT"), summary["notes"][:3]):
        assert note.startswith(part + ": ") and ("CHO" in note or "cho_dprime not evaluated" in note)
    assert summary["test_scored"] == 1 and summary["inverse_crime"] is False
    assert summary["inverse_crime_by_part"] == {"pet": False, "tof": False, "spect": False}
    assert summary["data"]["tof"]["cohort"]["scanner"]["tof"] is True
    assert [c["check"] for c in summary["checks"]] == ACCEPTANCE_CHECKS
    assert all(c["passed"] in (True, False, None) and c["detail"] for c in summary["checks"])
    pre = json.loads((out / "acceptance_checks.json").read_text())
    assert pre["checks"] == ACCEPTANCE_CHECKS and pre["written_before_the_test_split_was_read"]
    assert (out / "report" / "index.html").read_text().count("<img") >= 6
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
    # the projection-domain model was trained for 10 % dose data: full-dose data are 10x its count level
    r = runner.invoke(app, ["recon", str(sub), "--level", "d100", "--model", str(out / "models" / "projection_unet"),
                            "--out", str(tmp_path / "full.nii.gz")])
    assert r.exit_code == 2 and "count level" in r.output
    # the TOF and SPECT projection-domain models apply to their own cohorts' 10 % data
    for part, model in (("tof_dataset", "tof_projection_unet"), ("spect_dataset", "spect_projection_unet")):
        entry = json.loads((out / part / "dataset.json").read_text())["test"][0]["subject"]
        img = tmp_path / f"{model}.nii.gz"
        r = runner.invoke(app, ["recon", str(out / part / entry), "--level", "d010", "--model",
                                str(out / "models" / model), "--out", str(img)])
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / f"{model}_consistency.json").read_text())["deviance_per_bin"] > 0
    # a TOF model refuses non-TOF data of the same scanner
    r = runner.invoke(app, ["recon", str(sub), "--level", "d010", "--model", str(out / "models" / "tof_projection_unet"),
                            "--out", str(tmp_path / "tof_on_nontof.nii.gz")])
    assert r.exit_code == 2 and "tof" in r.output
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


def test_full_preset_builds_valid_cohorts_without_running():
    """The GPU-sized preset: its three cohort configurations validate, the TOF cohort keeps the scanner's own TOF
    binning, the SPECT views are a multiple of the sparse-view factor, and the splits leave test subjects."""
    from petspect.learned_recon.study_setup import pet_config, spect_config, study_settings, tof_config

    s = study_settings("full")
    pet, tof, spect = pet_config(s), tof_config(s), spect_config(s)
    assert pet.phantom.params["shape"] == [12, 128, 128] and pet.subjects == 40
    assert tof.scanner.tof and "n_tof_bins" not in tof.scanner.params and tof.phantom.params["shape"] == [12, 128, 128]
    assert spect.scanner.n_views % s.sparse.every == 0 and spect.dose_percents == [100.0, 10.0]
    for cfg, n in ((pet, s.pet_subjects), (tof, s.tof_subjects), (spect, s.spect_subjects)):
        assert round(cfg.split.test * n) >= 5 and round(cfg.split.validation * n) >= 2


def test_unknown_preset_and_cuda_are_refused(tmp_path):
    r = CliRunner().invoke(app, ["study", "recon", "--preset", "huge", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "tiny" in r.output
    from petspect.errors import InputError
    from petspect.learned_recon.study import run_recon_study

    with pytest.raises(InputError, match="CPU"):
        run_recon_study(tmp_path / "s2", preset="tiny", device="cuda")
    assert not (tmp_path / "s2").exists()  # refused before anything was written
