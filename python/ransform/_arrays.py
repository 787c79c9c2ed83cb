"""Conversion of user arrays (numpy arrays, CPU torch tensors, sequences) to the flat,
C-contiguous int32 / float32 arrays the native coder takes. Zero-copy when the input already
is one; other integer dtypes are range-checked and converted; anything else raises."""
from __future__ import annotations

import numpy as np

_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


def _from_torch(x, name: str):
    """A CPU torch tensor as a numpy array (shared memory); GPU tensors are rejected."""
    device = getattr(x, "device", None)
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        raise ValueError(
            f"{name} is on device '{device}'; the coder runs on the CPU: pass {name}.cpu()"
        )
    return x.detach().numpy()


def to_numpy(x, name: str) -> np.ndarray:
    if type(x).__module__.split(".")[0] == "torch":
        x = _from_torch(x, name)
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array, got {type(x).__name__}") from exc
    return x


def as_int32(x, name: str) -> np.ndarray:
    """int32, C-contiguous, same shape. Integer dtypes only; values must fit int32."""
    a = to_numpy(x, name)
    if a.dtype == np.int32:
        return _contiguous(a, a.dtype)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")
    if a.size and (a.min() < _INT32_MIN or a.max() > _INT32_MAX):
        raise ValueError(f"{name} has values outside the int32 range")
    return _contiguous(a, np.int32)


def as_float32(x, name: str) -> np.ndarray:
    """float32, C-contiguous, same shape (float64 and float16 are rounded to float32)."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must have a floating-point dtype, got {a.dtype}")
    return _contiguous(a, np.float32)


def _contiguous(a: np.ndarray, dtype) -> np.ndarray:
    """C-contiguous copy or view with dtype and the same shape (0-d arrays stay 0-d)."""
    return np.ascontiguousarray(a, dtype=dtype).reshape(a.shape)


def output_for(out, inputs: np.ndarray, name: str = "out") -> np.ndarray | None:
    """``out=`` of a call that writes one int32 per element of ``inputs``: None, or a numpy
    array the core checks (int32, C-contiguous, writeable, as many elements); one that
    overlaps the inputs is refused here, as the core would read what it has overwritten."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    if np.may_share_memory(out, inputs):
        raise ValueError(f"{name} must not overlap the input array")
    return out
