"""The code style CI holds the tree to: ruff for Python (pyflakes, pycodestyle, import order;
ruff.toml) and clang-format for C++/CUDA (.clang-format; the version is pinned in the [test]
extra because each clang-format release formats a little differently)."""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff")  # in the [test] extra
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def _native_sources() -> list[str]:
    run = subprocess.run(["git", "ls-files", "csrc", "benchmarks"], capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in run.stdout.split() if f.endswith((".hpp", ".cpp", ".cu", ".cuh", ".h"))]


def test_clang_format_finds_nothing():
    tool = shutil.which("clang-format")
    if tool is None:
        pytest.skip("clang-format is not installed (pip install clang-format; it is in the [test] extra)")
    sources = _native_sources()
    assert len(sources) > 30, sources  # the listing found the tree
    run = subprocess.run([tool, "--dry-run", "--Werror", *sources], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, "run clang-format -i on these:\n" + run.stderr[-4000:]
