#!/usr/bin/env bash
# One prepared GPU check for a session that is lent an accelerator (see docs/DEVELOPING.md):
# the device-parametrised tests (tests/conftest.py adds "cuda" to the device matrix when present) and
# every benchmark that takes --device, on CUDA. Writes logs into ${OUT:-gpu_out}/.
# Usage on the device machine, from the repository root, after `make setup TORCH_SPEC=... TORCH_INDEX=...`
# (or with the machine's own torch):   bash benchmarks/gpu_check.sh
set -uo pipefail
out="${OUT:-gpu_out}"
mkdir -p "$out"
py="${PYTHON:-.venv/bin/python}"
export PETSPECT_NO_PROGRESS=1 PYTHONUNBUFFERED=1
"$py" - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY
# tests that take the `device` fixture run on cpu and cuda
"$py" -m pytest -q -k "cuda" tests/operators tests/projectors tests/physics tests/recon tests/test_volume.py 2>&1 | tee "$out/tests_cuda.log"
for b in bench_pet bench_spect bench_train bench_denoise bench_phantoms; do
  timeout 300 "$py" "benchmarks/$b.py" --device cuda 2>&1 | tee "$out/$b.log"
done
