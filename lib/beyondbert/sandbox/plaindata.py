"""Plain data across the sandbox boundary: JSON plus ``.npy`` arrays, never pickles.

Allowed: None, bool, int, float, str, lists/tuples/dicts of those (string keys), NumPy arrays of
numeric or bool dtype, and torch tensors (sent as arrays, rebuilt as tensors). Anything else raises
``NotPlainData`` — an object with a custom ``__eq__`` cannot cross.
"""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float


class NotPlainData(TypeError):
    """A value that is not plain data was asked to cross the sandbox boundary."""


def _array_payload(array: np.ndarray) -> str:
    if array.dtype.kind not in _ARRAY_KINDS or array.dtype.hasobject:
        raise NotPlainData(f"arrays must be numeric or bool, got dtype {array.dtype}")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def to_plain(value: object, depth: int = 0) -> object:
    """Turn ``value`` into JSON-able data; arrays and tensors become tagged ``.npy`` payloads."""
    if depth > 20:
        raise NotPlainData("nesting deeper than 20 levels")
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value
    if kind is float:
        return {"__float__": repr(value)} if not math.isfinite(value) else value
    if kind in (list, tuple):
        items = [to_plain(v, depth + 1) for v in value]
        return {"__tuple__": items} if kind is tuple else items
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise NotPlainData("dict keys must be strings")
        return {"__dict__": {k: to_plain(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, np.generic) and type(value).__module__ == "numpy":
        return to_plain(np.asarray(value), depth)
    if kind is np.ndarray:
        return {"__ndarray__": _array_payload(value)}
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a course requirement
        torch = None
    if torch is not None and kind in (torch.Tensor, torch.nn.Parameter):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            raise NotPlainData("bfloat16 tensors are not supported; convert to float32")
        return {"__tensor__": _array_payload(tensor.numpy()), "requires_grad": False}
    raise NotPlainData(f"values of type {kind.__module__}.{kind.__qualname__} are not plain data")


def _load_array(payload: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(payload)), allow_pickle=False)


def from_plain(data: object) -> object:
    """Inverse of :func:`to_plain`; tensors come back as torch tensors."""
    if isinstance(data, list):
        return [from_plain(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__tuple__" in data:
        return tuple(from_plain(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {k: from_plain(v) for k, v in data["__dict__"].items()}
    if "__float__" in data:
        return float(data["__float__"])
    if "__ndarray__" in data:
        return _load_array(data["__ndarray__"])
    if "__tensor__" in data:
        import torch

        return torch.from_numpy(_load_array(data["__tensor__"]).copy())
    raise NotPlainData(f"unknown plain-data tag in {sorted(data)[:3]}")


def write_message(stream, message: dict) -> None:
    """Write one length-prefixed JSON message to a binary stream."""
    body = json.dumps(message).encode("utf-8")
    stream.write(len(body).to_bytes(8, "big") + body)
    stream.flush()


def read_message(stream) -> dict:
    """Read one length-prefixed JSON message; raise EOFError when the other side is gone."""
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the sandbox closed its channel")
    size = int.from_bytes(header, "big")
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {size} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the sandbox closed its channel mid-message")
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("malformed message from the sandbox")
    return message
