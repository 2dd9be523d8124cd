"""I/O benchmark: write and read a whole-body-sized PET volume as DICOM, NIfTI and Interfile.

Prints seconds per operation and the round-trip error. Size: 200 x 200 x 200 float32 (32 MB), a
typical reconstructed PET matrix. Run: ``.venv/bin/python benchmarks/bench_io.py [--n 200]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

from petspect.io import load, save
from petspect.io.dicom_write import write_dicom_series
from petspect.volume import Volume


def _timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:38s} {time.perf_counter() - t0:7.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="matrix size per axis")
    n = parser.parse_args().n
    g = torch.Generator().manual_seed(0)
    data = torch.rand((n, n, n), generator=g) * 20000.0
    vol = Volume.centered(data, (2.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    print(f"volume {n}^3 float32 ({data.numel() * 4 / 1e6:.0f} MB)")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        rp = {"total_dose_bq": 300e6, "half_life_s": 6586.2, "start_datetime": datetime(2025, 1, 1, 9),
              "scan_datetime": datetime(2025, 1, 1, 10)}
        _timed(f"write DICOM series ({n} files)", lambda: write_dicom_series(
            vol, t / "dcm", patient={"weight_kg": 70, "size_m": 1.75, "sex": "M"}, radiopharmaceutical=rp))
        back = _timed("read DICOM series", lambda: load(t / "dcm"))
        err = float(((back.data - data).abs().amax(dim=(1, 2)) / data.abs().amax(dim=(1, 2))).max())
        print(f"{'DICOM max error / slice max':38s} {err:.2e} (half a uint16 step 7.63e-6 + float32 rounding)")
        _timed("load(suv='bw') from DICOM", lambda: load(t / "dcm", suv="bw"))
        for name in ("v.nii", "v.nii.gz", "v.hv"):
            _timed(f"write {name}", lambda: save(vol, t / name))
            b = _timed(f"read {name}", lambda: load(t / name))
            assert torch.equal(b.data, data)


if __name__ == "__main__":
    main()
