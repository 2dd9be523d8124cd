"""Dynamic series an outside quality pass tried: frames with gaps (multi-pass whole-body dynamic PET, a late
start) and regions whose graphical fit is undefined."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.kinetics.compartments import KineticParams, Model, model_frames
from petspect.kinetics.graphical import logan
from petspect.kinetics.input_function import FRAMINGS, FrameSchedule, feng_fdg_for_patient

runner = CliRunner()


def _gapped(fr: FrameSchedule) -> FrameSchedule:
    """The first 16 frames, then every other frame: gaps of 2-5 min between the late frames."""
    keep = np.r_[np.arange(16), np.arange(16, len(fr), 2)]
    return FrameSchedule(fr.start_s[keep], fr.duration_s[keep])


@pytest.mark.parametrize("first_start_s", [0.0, 120.0])
def test_logan_v_t_does_not_depend_on_gaps_between_frames(first_start_s):
    """1TCM: Logan is exact once ``int C_T`` is right, V_T = K1/k2 (Logan J et al., JCBFM 1990;10:740). Gaps
    between frames must be integrated over, not dropped (dropping them halved V_T)."""
    fr = FRAMINGS["dynamic-90min"]
    inp = feng_fdg_for_patient().sampled(fr.end_s[-1])
    p = KineticParams(0.3, 0.2)  # V_T = 1.5
    g = _gapped(fr)
    if first_start_s:
        keep = g.start_s >= first_start_s
        g = FrameSchedule(g.start_s[keep], g.duration_s[keep])
    tac = model_frames(p, Model.ONE_TCM, inp, g)
    assert float(logan(tac, inp, g).slope) == pytest.approx(p.vt, rel=0.02)


def test_logan_cli_says_why_a_region_is_undefined(tmp_path):
    tacs, inp = tmp_path / "t.csv", tmp_path / "i.csv"
    res = runner.invoke(app, ["kinetics", "simulate", "--out", str(tacs), "--input-out", str(inp)])
    assert res.exit_code == 0, res.output
    rows = [ln.split(",") for ln in tacs.read_text().splitlines()]
    rows[-1][3] = "-5"  # grey_matter's last frame below zero (noise)
    tacs.write_text("".join(",".join(r) + "\n" for r in rows))
    res = runner.invoke(app, ["kinetics", "logan", str(tacs), "--input", str(inp), "--out", str(tmp_path / "l.csv")])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("grey_matter"))
    assert "undefined" in line and "<= 0" in line
    assert "white_matter: V_T = " in res.output


def test_parametric_overwrite_replaces_the_maps_of_an_earlier_method(tmp_path):
    """A Logan rerun with --overwrite into a Patlak folder must not leave the old Ki map beside the new V_T map
    (a reader would take ki_per_min.nii.gz for this run's)."""
    import torch

    from petspect.io import save
    from petspect.volume import Volume

    fr = FRAMINGS["fdg-60min"]
    inp = feng_fdg_for_patient().sampled(fr.end_s[-1])
    a = model_frames(KineticParams(0.3, 0.2), Model.ONE_TCM, inp, fr)
    rows = ["start_s,duration_s,file"]
    for i in range(len(fr)):
        save(Volume(torch.full((2, 2, 2), float(a[i])), (2.0, 2.0, 2.0), unit="Bq/mL", modality="PT"),
             tmp_path / f"f{i:02d}.nii.gz")
        rows.append(f"{fr.start_s[i]},{fr.duration_s[i]},f{i:02d}.nii.gz")
    (tmp_path / "frames.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "plasma.csv").write_text("time_s,plasma_bq_per_ml\n" + "".join(
        f"{t},{v}\n" for t, v in zip(inp.times_s, inp.values_bq_per_ml)))
    base = ["kinetics", "parametric", str(tmp_path / "frames.csv"), "--input", str(tmp_path / "plasma.csv"),
            "--out", str(tmp_path / "maps")]
    assert runner.invoke(app, base).exit_code == 0
    (tmp_path / "notes.txt").write_text("mine")
    res = runner.invoke(app, base + ["--method", "logan", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "maps").glob("*.nii.gz")} == {"vt.nii.gz"}
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "f00.nii.gz").exists()
    (tmp_path / "maps" / "mine.txt").write_text("a file the user put there")
    res = runner.invoke(app, base + ["--overwrite"])
    assert res.exit_code == 2 and "mine.txt" in res.output
    assert (tmp_path / "maps" / "mine.txt").exists() and (tmp_path / "maps" / "vt.nii.gz").exists()
