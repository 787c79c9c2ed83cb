#!/usr/bin/env bash
# Create the benchmark virtual environment with the peer coders (CompressAI, constriction)
# and, if it builds, the ransform package itself.
#
#   benchmarks/setup_peers.sh [VENV_PATH]      (default: <repo>/.venv-bench)
#
# Only PyPI (plus the local wheel directory configured for pip) is used.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${1:-$REPO/.venv-bench}"
PYTHON="${PYTHON:-python3}"

echo "==> creating venv at $VENV"
"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install --upgrade pip wheel

echo "==> torch (CPU wheel)"
"$PIP" install torch==2.13.0

echo "==> numpy, scipy"
"$PIP" install numpy scipy

echo "==> constriction"
"$PIP" install constriction==0.5.0

echo "==> compressai (no deps: its top-level deps pull torchvision etc.; the benchmark imports"
echo "    only compressai.ans and compressai.entropy_models)"
"$PIP" install --no-deps compressai==1.2.8

echo "==> ransform from $REPO"
if "$PIP" install "$REPO"; then
    echo "ransform installed"
else
    echo "NOTE: 'pip install $REPO' failed; ransform rows will read 'not installed'." >&2
    echo "      Re-run later:  $PIP install $REPO" >&2
fi

echo "==> done. Run:  $VENV/bin/python $HERE/coders.py --quick"
