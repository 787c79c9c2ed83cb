"""Files in and out, so that nothing is lost and nothing runs.

- :func:`load_checkpoint` reads with ``torch.load(weights_only=True)``: tensors and plain
  containers only. A pickle that needs code to load is refused; its code never runs.
- :func:`output_path` refuses to replace an existing file unless told to (``--force``), and
  refuses an input file always.
- :func:`write_atomic` writes a temporary file next to the target, flushes it to disk and
  renames it over the target, so a killed process leaves the old file or none, never half.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import tempfile
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"


class UnsafeCheckpointError(ValueError):
    """A checkpoint that is not plain data (loading it would run code it carries)."""


def existing_checkpoint(path) -> Path:
    """``path``, or the ValueError :func:`load_checkpoint` gives for a missing file or a folder:
    without torch, so that the CLI refuses those at once."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a checkpoint file")
    if not path.exists():
        raise ValueError(f"no such checkpoint: {path}")
    return path


def load_checkpoint(path, map_location="cpu"):
    """What ``torch.load`` returns for a checkpoint of tensors and plain containers; a
    gzip-compressed checkpoint (as ransform ships its weights) is read through gzip."""
    path = existing_checkpoint(path)
    import torch

    try:
        data = path.read_bytes()
        if data[:2] == GZIP_MAGIC:
            data = gzip.decompress(data)
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc) or "Unsupported global" in str(exc):  # an object that loads by running code
            raise UnsafeCheckpointError(
                f"{path} is not a plain checkpoint: it holds Python objects that would run code when loaded; "
                "ransform loads only tensors and plain containers, and did not run it") from None
        raise ValueError(f"{path} is not a PyTorch checkpoint (it is not a pickle of tensors)") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = str(exc) or "it ends too early (an empty or truncated file)"  # an EOFError says nothing
        raise ValueError(f"cannot read checkpoint {path}: {reason}") from None
    except Exception as exc:  # torch reports a foreign or damaged file in many ways: KeyError, RuntimeError...
        detail = f" ({str(exc).strip().splitlines()[0]})" if isinstance(exc, RuntimeError) and str(exc).strip() else ""
        raise ValueError(f"cannot read checkpoint {path}: not a PyTorch checkpoint file{detail}") from None


def output_path(path, force: bool = False, inputs=()) -> Path:
    """``path`` as a place to write: never one of ``inputs``, an existing file only with
    ``force``, never a directory."""
    path = Path(path)
    for source in inputs:
        if source is not None and Path(source).exists() and path.exists() and path.samefile(source):
            raise ValueError(f"refusing to write {path}: it is the input")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name")
    if path.exists() and not force:
        raise ValueError(f"{path} exists; pass --force (-f) to replace it")
    check_writable(path)
    return path


def check_writable(path) -> None:
    """Refuses, before any work, a file that cannot be created: one under a file, or in a
    folder this user may not write into (missing folders on the way are created when writing)."""
    path = Path(path)
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: {folder} is not writable")


def write_atomic(path, data: bytes) -> None:
    """Writes ``data`` to ``path`` all at once: the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # name the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # mkstemp makes the file private (0600); give it what open() would have: the mode
            # of the file it replaces, else 0666 less the umask.
            os.fchmod(f.fileno(), _mode_for(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def save_atomic(obj, path) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`write_atomic`)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue())
