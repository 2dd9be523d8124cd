"""SPECT DL scatter against TEW (the ``spect-scatter`` study) and the speed of ``petspect ac apply`` on DICOM.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_spect_scatter.py [--preset quick] [--apply-only]

Part 1 runs ``petspect study spect-scatter --preset PRESET`` into a temporary folder and prints the methods'
scatter NRMSE and regional bias (means with 95 % intervals over the test subjects) and the per-tracer means.
Part 2 times ``ac apply`` end to end (DICOM read, network, DICOM CT and NIfTI write) on a 96 x 128 x 128 NAC PET
series (4 mm voxels) with a freshly initialised NAC -> sCT network (speed only: its HU are not meaningful).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def study(preset: str) -> None:
    from typer.testing import CliRunner

    from petspect.cli.main import app

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "study"
        t = time.time()
        res = CliRunner().invoke(app, ["study", "spect-scatter", "--preset", preset, "--out", str(out)])
        print(res.output)
        if res.exit_code != 0:
            raise SystemExit(res.exit_code)
        print(f"study wall {time.time() - t:.0f} s")
        metrics = json.loads((out / "metrics.json").read_text())
        for m, row in metrics.items():
            cells = []
            for k in ("scatter_nrmse_pct", "scatter_total_bias_pct", "suv_bias_pct_max_abs", "suv_bias_pct_mean"):
                if k in row:
                    lo, hi = row[f"{k}_ci95"]
                    cells.append(f"{k} {row[k]:.2f} [{lo:.2f}, {hi:.2f}]")
            print(m, "; ".join(cells))
        summary = json.loads((out / "summary.json").read_text())
        print("TEW smoothing chosen on validation:", summary["tuned"]["tew"]["smooth_fwhm_mm"], "mm")
        for tracer, d in summary["by_tracer"].items():
            print(tracer, {m: {k: round(v, 2) for k, v in vals.items()} for m, vals in d.items()})


def apply_speed() -> None:
    from typer.testing import CliRunner

    from petspect.ac.networks import AcModel, build_unet, save_model
    from petspect.cli.main import app
    from petspect.io.dicom_write import write_dicom_series
    from petspect.volume import Volume

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        g = torch.Generator().manual_seed(0)
        nac = torch.rand(96, 128, 128, generator=g) * 5000.0
        write_dicom_series(Volume(nac, (4.0, 4.0, 4.0), (-256.0, -256.0, -190.0), unit="Bq/mL", modality="PT"),
                           tmp / "nac", radiopharmaceutical={"total_dose_bq": 3.7e8, "half_life_s": 6586.2})
        with torch.random.fork_rng():
            torch.random.manual_seed(0)
            net = build_unet(1)
        save_model(AcModel("nac_sct", 1, {"in_channels": 1}, 1000.0, {"note": "untrained (speed only)"}, net),
                   tmp / "model")
        t = time.time()
        res = CliRunner().invoke(app, ["ac", "apply", "--model", str(tmp / "model"), "--input", str(tmp / "nac"),
                                       "--out", str(tmp / "out")])
        if res.exit_code != 0:
            raise SystemExit(res.output)
        print(f"ac apply, 96 x 128 x 128 DICOM NAC PET -> DICOM CT + NIfTI: {time.time() - t:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--apply-only", action="store_true")
    args = ap.parse_args()
    if not args.apply_only:
        study(args.preset)
    apply_speed()


if __name__ == "__main__":
    main()
