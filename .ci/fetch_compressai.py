"""Puts CompressAI 1.2.8's Python sources under .ci/cache/compressai (from its PyPI wheel) for
tests/test_compressai_port.py, which runs CompressAI's own model code on ransform.compressai.
Prints the package folder; prints nothing when PyPI cannot be reached (the tests then skip)."""
import pathlib
import subprocess
import sys
import zipfile

CACHE = pathlib.Path(__file__).resolve().parent / "cache"
PACKAGE = CACHE / "compressai"

if not (PACKAGE / "models" / "google.py").is_file():
    CACHE.mkdir(exist_ok=True)
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "compressai==1.2.8",
                              "-d", str(CACHE)], capture_output=True)
    wheels = sorted(CACHE.glob("compressai-1.2.8-*.whl"))
    if fetched.returncode != 0 or not wheels:
        sys.exit(0)
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(CACHE, [n for n in wheel.namelist() if n.startswith("compressai/") and n.endswith(".py")])
print(PACKAGE)
