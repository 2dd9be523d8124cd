#!/usr/bin/env bash
# One prepared GPU check for a session that is lent an accelerator (see docs/DEVELOPING.md).
# Part 1 (always, < 5 min on an H100): the PET projectors on CUDA -- the device-parametrised projector and
# operator tests, the side-by-side projector benchmark with petspect on the GPU (1.5 M LORs, TOF sinogram,
# TOF list-mode; the C++ peer is skipped unless PEER=path/to/libparallelproj.so is given), and the quick
# sinogram projector benchmark. Part 2 (ALL=1): the other device-parametrised tests and every benchmark
# that takes --device. Writes logs into ${OUT:-gpu_out}/.
# Usage on the device machine, from the repository root, after `make setup TORCH_SPEC=... TORCH_INDEX=...`
# (or with the machine's own torch):   bash benchmarks/gpu_check.sh      (ALL=1 bash ... for part 2)
set -uo pipefail
out="${OUT:-gpu_out}"
mkdir -p "$out"
py="${PYTHON:-.venv/bin/python}"
export PETSPECT_NO_PROGRESS=1 PYTHONUNBUFFERED=1
start=$(date +%s)
"$py" - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY
# --- part 1: PET projectors on the GPU (each step bounded; ~3-4 min in all)
timeout 120 "$py" -m pytest -q -p no:cacheprovider -k "cuda" tests/projectors tests/operators 2>&1 \
  | tee "$out/tests_projectors_cuda.log"
peer=()
if [ -n "${PEER:-}" ] && [ -f "${PEER}" ]; then peer=(--peer "$PEER"); fi
timeout 90 "$py" benchmarks/bench_pet_vs_parallelproj.py --device cuda --repeats 3 "${peer[@]}" 2>&1 \
  | tee "$out/bench_pet_vs_parallelproj_cuda.log"
timeout 90 "$py" benchmarks/bench_pet.py --quick --device cuda 2>&1 | tee "$out/bench_pet_cuda.log"
echo "part 1 (projectors) took $(( $(date +%s) - start )) s" | tee "$out/timing.txt"
# --- part 2 (ALL=1): the rest
if [ "${ALL:-0}" = "1" ]; then
  "$py" -m pytest -q -p no:cacheprovider -k "cuda" tests/physics tests/recon tests/test_volume.py 2>&1 \
    | tee "$out/tests_cuda.log"
  for b in bench_spect bench_train bench_denoise bench_phantoms; do
    timeout 300 "$py" "benchmarks/$b.py" --device cuda 2>&1 | tee "$out/$b.log"
  done
  echo "all parts took $(( $(date +%s) - start )) s" | tee -a "$out/timing.txt"
fi
