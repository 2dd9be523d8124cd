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
