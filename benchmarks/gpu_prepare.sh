#!/usr/bin/env bash
# Made on the CPU machine before a device check: .gpu/ (ignored by git) with three real images,
# what this machine's `ransform compress` writes for them and their decompressions (the
# reference for benchmarks/gpu_check.sh's cross-device section), and the pure-Python wheels of
# the dependencies a device image lacks (nothing can be downloaded there).
#
#   bash benchmarks/gpu_prepare.sh [KODAK_DIR]      # default ../shared/data/kodak
set -euo pipefail
KODAK="${1:-../shared/data/kodak}"
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/img .gpu/whl
cp "$KODAK/kodim05.png" "$KODAK/kodim06.png" .gpu/img/
# a 1536x1024 mosaic: its latent codes in two chunks, so the multi-chunk decode runs too
python3 - "$KODAK" <<'PY'
import sys
import numpy as np
from PIL import Image
tiles = [np.asarray(Image.open(f"{sys.argv[1]}/kodim{i:02d}.png").convert("RGB")) for i in (1, 2, 3, 7)]
top, bottom = np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)
Image.fromarray(np.concatenate([top, bottom], axis=0)).save(".gpu/img/big.png")
PY
OMP_NUM_THREADS=2 ransform compress .gpu/img/*.png --model mbt2018-mean-small --quality 3 --threads 2 -o .gpu/cpu_rfm/ --quiet
OMP_NUM_THREADS=1 ransform decompress .gpu/cpu_rfm/*.rfm -o .gpu/cpu_png/ --quiet
python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl "bjontegaard>=1.2"
du -sh .gpu
