#!/usr/bin/env bash
# The device check a session with a lent GPU runs in one go (about 8 minutes on an H200), most
# important first: build with CUDA for that GPU only, run every test file that has GPU tests,
# check the decode-anywhere promise across devices on real images, run the kernel benchmarks,
# then the rest of the suite. Results go to $OUT (or ./gpu-check).
#
#   bash benchmarks/gpu_prepare.sh                  # here, first: makes .gpu/ (ignored)
#   run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=590)
#
# Tests run with -v: under xdist only -v names a failure as it happens, and a step cut at its
# time limit prints no summary.
set -uo pipefail
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv | tee "$LOG"
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200 | tee -a "$LOG"
# one architecture: the build takes a minute instead of four
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)

# Nothing can be downloaded on a device machine: build against its own scikit-build-core,
# pybind11 and torch (no build isolation, no dependency resolution); plain CMake if that fails.
if ! timeout 240 python3 -m pip install -q --no-build-isolation --no-deps . -Cbuild-dir=build/gpu \
    -Ccmake.define.RANSFORM_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="${ARCH}-real" > "$OUT/install.txt" 2>&1; then
  tail -30 "$OUT/install.txt"
  echo "pip install failed; building with CMake"
  cmake -S . -B build/gpu-cmake -DCMAKE_BUILD_TYPE=Release -DRANSFORM_PYTHON=ON -DRANSFORM_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="${ARCH}-real" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >> "$OUT/install.txt" 2>&1 &&
    cmake --build build/gpu-cmake -j "$(nproc)" >> "$OUT/install.txt" 2>&1 || { tail -40 "$OUT/install.txt"; exit 1; }
  cp build/gpu-cmake/_core*.so build/gpu-cmake/_cuda*.so build/gpu-cmake/_build_config.py python/ransform/
  export PYTHONPATH="$PWD/python"
fi
if [ -d .gpu/whl ]; then  # pure-Python dependencies the image lacks (bjontegaard)
  python3 -m pip install -q --no-index --no-deps .gpu/whl/*.whl >> "$OUT/install.txt" 2>&1
fi
RF="python3 -m ransform"
XDIST8="" XDIST16=""
if python3 -c "import xdist" 2>/dev/null; then XDIST8="-n 8" XDIST16="-n 16"; fi
python3 -c "import ransform, torch; print('backend', ransform.backend(), 'torch', torch.__version__)" | tee -a "$LOG"

# every test file with GPU tests; -rs lists what skipped and why (no test here may say "no CUDA")
timeout 240 python3 -m pytest -v -rfs -p no:cacheprovider $XDIST8 tests/test_fused.py tests/test_fused_bottleneck.py \
    tests/test_table_builders.py tests/test_mixture_model.py tests/test_portable.py tests/test_careless_inputs.py \
    tests/test_errors.py > "$OUT/gpu-tests.txt" 2>&1
grep -E "FAILED|SKIPPED|passed|failed" "$OUT/gpu-tests.txt" | grep -v "^\[gw" | tee -a "$LOG"
grep -E "^\[gw.*FAILED" "$OUT/gpu-tests.txt" | tee -a "$LOG"

# Decode anywhere, across devices. The analysis transform runs in float, so the GPU may round a
# latent differently and write other bytes than a CPU; what must hold is that every file decodes
# on either device (checksummed), to the same pixels up to the synthesis transform's float
# rounding. The tar comes back so the CPU machine decodes the GPU's files too.
if [ -d .gpu/img ]; then
  XD=$(mktemp -d)
  {
    for dev in cpu cuda; do
      $RF compress .gpu/img/*.png --model mbt2018-mean-small --quality 3 --threads 4 --device $dev -o "$XD/$dev-rfm/" --quiet
    done
    for f in "$XD"/cuda-rfm/*.rfm; do
      n=$(basename "$f")
      cmp -s "$f" "$XD/cpu-rfm/$n" && echo "same bytes from both devices: $n" || echo "other bytes from the GPU: $n"
    done
    for dev in cpu cuda; do
      $RF decompress .gpu/cpu_rfm/*.rfm --device $dev -o "$XD/$dev-png/" --quiet
    done
    $RF decompress "$XD"/cuda-rfm/*.rfm --device cpu -o "$XD/gpu-written-png/" --quiet
    # pixels, not PNG bytes: another zlib may deflate the same pixels differently
    XD="$XD" python3 - <<'PY'
import os
import pathlib
import numpy as np
from PIL import Image
xd = pathlib.Path(os.environ["XD"])
for f in sorted((xd / "cuda-png").glob("*.png")):
    gpu = np.asarray(Image.open(f))
    for where, other in (("this machine's CPU", xd / "cpu-png" / f.name), ("the CPU machine", pathlib.Path(".gpu/cpu_png") / f.name)):
        if other.exists():
            diff = np.abs(gpu.astype(np.int32) - np.asarray(Image.open(other)).astype(np.int32))
            print(f"GPU decode vs {where}: {f.name}: {np.count_nonzero(diff)} of {diff.size} values differ, max {diff.max()}")
PY
    tar -cf "$OUT/cuda-rfm.tar" -C "$XD" cuda-rfm
  } 2>&1 | tee -a "$LOG"
fi

timeout 100 python3 benchmarks/likelihood.py 2>&1 | tee -a "$LOG"
timeout 60 python3 benchmarks/tables.py 2>&1 | tee -a "$LOG"

# the rest of the suite under this machine's Python and torch (Kodak tests skip: ../shared is
# not here); about 220 s on 16 cores
timeout 240 python3 -m pytest -v -p no:cacheprovider $XDIST16 tests --ignore tests/test_fused.py \
    --ignore tests/test_fused_bottleneck.py --ignore tests/test_table_builders.py --ignore tests/test_mixture_model.py \
    --ignore tests/test_portable.py --ignore tests/test_careless_inputs.py --ignore tests/test_errors.py > "$OUT/suite.txt" 2>&1
grep -E "^\[gw.*FAILED" "$OUT/suite.txt" | tee -a "$LOG"
tail -1 "$OUT/suite.txt" | tee -a "$LOG"
