"""Importing petspect.nn, petspect.train and petspect.metrics is cheap: MONAI, scikit-image and TensorBoard load
only when used (docs/CONVENTIONS.md, "Errors, files and output": cheap, silent import)."""

from __future__ import annotations

import subprocess
import sys


def test_lazy_imports():
    code = ("import sys, petspect.nn, petspect.train, petspect.metrics\n"
            "heavy = [m for m in ('monai', 'skimage', 'tensorboard', 'petspect.train.trainer') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "from petspect.train import TrainConfig\n"
            "assert 'monai' not in sys.modules\n"
            "import petspect.metrics as m\n"
            "assert callable(m.psnr) and callable(m.region_bias)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
