#!/usr/bin/env bash
# The device check a session with a lent GPU runs in one go (about 10 minutes on an H200):
# build with CUDA for that GPU only, run every GPU test, the kernel benchmarks, and the
# portable (decode-anywhere) path's CPU/GPU bit identity. Results go to $OUT (or ./gpu-check).
#
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=590)
set -uo pipefail
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# one architecture: the build takes a minute instead of four
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
timeout 300 python3 -m pip install -q ".[test]" -Ccmake.define.RANSFORM_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="${ARCH}-real" \
    > "$OUT/install.txt" 2>&1 || { tail -40 "$OUT/install.txt"; exit 1; }
python3 -c "import ransform; print('backend', ransform.backend())" | tee "$OUT/backend.txt"
timeout 240 python3 -m pytest -q -rs tests/test_fused.py tests/test_fused_bottleneck.py tests/test_table_builders.py \
    tests/test_mixture_model.py tests/test_portable.py 2>&1 | tail -40 | tee "$OUT/gpu-tests.txt"
timeout 120 python3 benchmarks/likelihood.py 2>&1 | tee "$OUT/likelihood.txt"
timeout 120 python3 benchmarks/tables.py 2>&1 | tee "$OUT/tables.txt"
