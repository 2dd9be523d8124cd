"""``petspect study segment --preset tiny`` writes the study contract, and its model segments with --model."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.segmentation.metrics import METRIC_NAMES

runner = CliRunner()


def test_tiny_study_and_segment_with_its_model(tmp_path):
    out = tmp_path / "study"
    r = runner.invoke(app, ["study", "segment", "--preset", "tiny", "--out", str(out)])
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    for m in ("suv41", "suv50", "suv25", "percist", "adaptive", "gradient", "dynunet"):
        for k in METRIC_NAMES:
            assert k in metrics[m], (m, k)
            assert len(metrics[m][f"{k}_ci95"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_scored"] == 1 and summary["inverse_crime"] is None
    comparator = summary["comparator"]
    assert comparator in ("suv41", "suv50", "suv25", "percist", "adaptive", "gradient")
    assert "delta_dice_ci95" in metrics["dynunet"] and "delta_dice_ci95" not in metrics[comparator]
    assert [c["passed"] for c in summary["checks"]][2] is True
    assert all(t["budget"]["split"] == "validation" for k, t in summary["tuned"].items() if "budget" in t)
    assert (out / "report" / "index.html").exists()
    organs = summary["tuned"]["organs_dynunet"]["organs"]
    assert organs == ["liver", "bladder"]  # the toy's organs (organs_present on its training subjects)
    for k in [f"organ_dice_{o}" for o in organs] + ["organ_dice"]:
        assert 0.0 <= metrics["organs_dynunet"][k] <= 1.0 and len(metrics["organs_dynunet"][f"{k}_ci95"]) == 2
    assert summary["checks"][3]["check"].startswith("organs_dynunet") and summary["checks"][3]["passed"] is not None
    post = summary["tuned"]["dynunet"]["post_processing"]
    assert post["budget"]["split"] == "validation" and set(post["best"]) == {"threshold", "min_component_ml"}
    assert summary["tuned"]["dynunet"]["flips"] is True
    assert json.loads((out / "model_dynunet" / "segmenter.json").read_text())["flips"] is True
    assert summary["cpu_s"]["total"] > 0 and len(summary["load_average_start"]) == 3
    sub = out / "data" / "sub-007"
    seg = runner.invoke(app, ["segment", "--model", str(out / "model_dynunet"), "--input", str(sub / "image.nii.gz"),
                              "--ct", str(sub / "ct.nii.gz"), "--suv-factor", "4e-4", "--out", str(tmp_path / "s")])
    assert seg.exit_code == 0, seg.output
    from petspect.io import load

    mask = load(tmp_path / "s" / "lesions.nii.gz")
    assert mask.shape == (12, 32, 32) and set(np.unique(mask.numpy())) <= {0, 1}
    no_ct = runner.invoke(app, ["segment", "--model", str(out / "model_dynunet"), "--input",
                                str(sub / "image.nii.gz"), "--suv-factor", "4e-4", "--out", str(tmp_path / "s2")])
    assert no_ct.exit_code == 2 and "CT" in no_ct.output

    org = runner.invoke(app, ["segment", "--model", str(out / "model_organs_dynunet"), "--input",
                              str(sub / "ct.nii.gz"), "--out", str(tmp_path / "o")])
    assert org.exit_code == 0, org.output
    lab = load(tmp_path / "o" / "organs.nii.gz")
    assert lab.shape == (12, 32, 32) and set(np.unique(lab.numpy())) <= {0, 1, 2}
    rows = (tmp_path / "o" / "organs.csv").read_text().splitlines()
    assert rows[0] == "organ,label,voxels,volume_ml,mean_hu" and [r.split(",")[0] for r in rows[1:]] == organs
    pet_in = runner.invoke(app, ["segment", "--model", str(out / "model_organs_dynunet"), "--input",
                                 str(sub / "image.nii.gz"), "--out", str(tmp_path / "o2")])
    assert pet_in.exit_code == 2 and "HU" in pet_in.output
