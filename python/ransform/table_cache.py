"""Scale-table rows cached on disk, so a process does not spend 0.3 s rebuilding the default
Gaussian table (160 rows, 160 KB) that every earlier process built identically.

An entry is keyed by everything the rows depend on: the family, scales, precision and tail
mass, and the SHA-256 of the ``_core`` extension that computes them, so a rebuilt library
never reads rows an older one wrote. An entry also carries the SHA-256 of its key and rows and
is rebuilt when they do not match, so a damaged or misplaced file costs a rebuild, never a
wrong table (which would write streams other machines cannot decode).

The folder is ``$RANSFORM_CACHE_DIR``, else ``$XDG_CACHE_HOME/ransform`` or
``~/.cache/ransform``; ``RANSFORM_CACHE_DIR=off`` turns the cache off. A folder that cannot
be written only means no cache.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ransform import _core

_FIELDS = ("radius", "frequencies", "crossings")


def cache_dir() -> Path | None:
    """The cache folder, or None when ``RANSFORM_CACHE_DIR=off``."""
    configured = os.environ.get("RANSFORM_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ransform"


@functools.lru_cache(maxsize=1)
def _library_digest() -> str:
    with open(_core.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _entry_digest(key: str, rows) -> str:
    """Binds the rows to their key: an entry copied under another name does not verify."""
    return _digest(key.encode(), *(np.ascontiguousarray(a).tobytes() for a in rows))


def scale_rows(family: str, scales: np.ndarray | None, precision: int, tail_mass: float, version: int):
    """(radius, frequencies, crossings) of a scale table of format version ``version``: read
    from the cache when a valid entry is there, else built by ``_core`` and stored."""
    folder = cache_dir()
    if folder is None:
        return _core.build_scale_rows(family, scales, precision, tail_mass, version)
    key = _digest(b"scale-rows-1", _library_digest().encode(), family.encode(),
                  b"default" if scales is None else scales.tobytes(), str(precision).encode(),
                  float(tail_mass).hex().encode(), str(version).encode())
    path = folder / "tables" / f"{key}.npz"
    rows = _read(path, key)
    if rows is None:
        rows = _core.build_scale_rows(family, scales, precision, tail_mass, version)
        _write(path, key, rows)
    return rows


def _read(path: Path, key: str):
    try:
        with np.load(path, allow_pickle=False) as entry:
            rows = tuple(entry[name] for name in _FIELDS)
            stored = str(entry["digest"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):  # absent or damaged: rebuild
        return None
    return rows if stored == _entry_digest(key, rows) else None


def _write(path: Path, key: str, rows) -> None:
    from ransform.files import write_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **dict(zip(_FIELDS, rows)), digest=np.array(_entry_digest(key, rows)))
    try:
        write_atomic(path, buffer.getvalue())
    except OSError:
        pass  # a read-only home: no cache, the table was built all the same
