"""The installed package: `python -m ransform` works, and the wheel's metadata carries the license."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import ransform


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "ransform", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ransform {ransform.__version__}"


def test_metadata_names_the_license():
    meta = metadata.metadata("ransform")
    assert meta["License-Expression"] == "Apache-2.0"
