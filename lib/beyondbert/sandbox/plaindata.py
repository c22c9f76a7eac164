"""Plain data across the sandbox boundary: JSON plus ``.npy`` arrays, never pickles.

Allowed: None, bool, int, float, str, lists/tuples/dicts of those (string keys), NumPy arrays of
numeric or bool dtype, and torch tensors (sent as arrays, rebuilt as tensors, detached).

**The one plain-data rule** (the same in the sandbox, in ``beyondbert check`` and in the student's
own kernel, where visible tests call ``beyondbert.grading.student.plain`` on what a function
returns): values are *converted, not refused*, where the conversion is unambiguous —

* a dict subclass (``Counter``, ``defaultdict``, ``OrderedDict``) becomes a ``dict``;
* a list or tuple subclass (a ``namedtuple``, ``torch.return_types``) becomes a ``list``/``tuple``;
* a NumPy scalar becomes a Python ``bool``, ``int`` or ``float`` (``np.float64(0.5)`` -> ``0.5``),
  and a ``str`` or ``int`` subclass (``np.str_``, an ``IntEnum``) becomes a ``str`` or ``int``.

Anything else (a set, a complex number, a dict with tuple keys, an object with a custom
``__eq__``) raises ``NotPlainData`` with a message that names the type and says how to fix it. A
converted value is a fresh plain object: nothing of the student's class crosses.

Messages are length-prefixed JSON. Both sides check every message against the same limits
(:func:`encode_message`, :func:`decode_message`): at most ``MAX_MESSAGE_BYTES`` bytes and
``MAX_JSON_DEPTH`` levels of nesting, checked on the raw bytes *before* JSON is parsed (no
recursion). The worker never sends a message over the limits (it replies with an error instead),
so a message that breaks them was forged by student code.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math

import numpy as np

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 20  # nesting of a plain value (lists, tuples, dicts)
MAX_JSON_DEPTH = 2 * MAX_DEPTH + 8  # a level of plain data is up to 2 JSON levels, plus the message
# Counts of JSON's structural bytes in one message, so checking it costs bounded memory.
MAX_BRACKETS = 8_000_000
MAX_QUOTES = 8_000_000
MAX_BACKSLASHES = 16_000_000
_ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[[ord("["), ord("{")]] = 1
_BRACKET_STEP[[ord("]"), ord("}")]] = -1


class NotPlainData(TypeError):
    """A value that is not plain data was asked to cross the sandbox boundary."""


class MalformedMessage(ValueError):
    """A message that breaks the protocol: too large, too deeply nested, not JSON, not a dict."""


def _array_payload(array: np.ndarray) -> str:
    if array.dtype.kind not in _ARRAY_KINDS or array.dtype.hasobject:
        raise NotPlainData(f"arrays must be numeric or bool, got dtype {array.dtype}")
    buffer = io.BytesIO()
    # np.ascontiguousarray turns a 0-d array (a loss, a mean) into shape (1,): keep 0-d as is
    np.save(buffer, array if array.ndim == 0 else np.ascontiguousarray(array), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_FIXES = {  # what a student should return instead, by the type's name
    "set": "return a sorted list instead (sorted(the_set))",
    "frozenset": "return a sorted list instead (sorted(the_set))",
    "complex": "return the real and imaginary parts as two floats, or a complex tensor's "
               "torch.view_as_real(...)",
    "generator": "return a list (list(...)) instead of a generator",
    "map": "return a list (list(...)) instead",
    "filter": "return a list (list(...)) instead",
    "zip": "return a list of tuples (list(zip(...))) instead",
    "dict_keys": "return a list (list(d.keys())) instead",
    "dict_values": "return a list (list(d.values())) instead",
    "dict_items": "return a list (list(d.items())) instead",
    "range": "return a list (list(range(...))) instead",
    "Tensor": "return a torch.Tensor, not a subclass of it",
}


def _type_name(kind: type) -> str:
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", None) or getattr(kind, "__name__", "?")
    return str(name) if module == "builtins" else f"{module}.{name}"


def _not_plain(kind: type) -> NotPlainData:
    fix = _FIXES.get(getattr(kind, "__name__", ""),
                     "return numbers, strings, lists, tuples, dicts with string keys, NumPy "
                     "arrays or torch tensors")
    return NotPlainData(f"a value of type {_type_name(kind)} is not plain data: {fix}")


def _key(key: object) -> str:
    if isinstance(key, str):
        return str.__str__(key)  # np.str_ or another str subclass: the plain string
    if isinstance(key, tuple) and all(isinstance(k, str) for k in key):
        fix = f"join the pair into one string, e.g. {' '.join(key)!r} for {key!r}"
    else:
        fix = "use string keys (str(key))"
    raise NotPlainData(f"dict keys must be strings, got a key of type "
                       f"{_type_name(type(key))}: {fix}")


def _numpy_scalar(value: np.generic) -> object:
    """A NumPy scalar as the Python scalar it stands for (NotPlainData if there is none)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.str_):
        return str.__str__(value)
    if isinstance(value, np.complexfloating):
        raise _not_plain(complex)
    raise NotPlainData(f"a NumPy scalar of dtype {value.dtype} is not plain data: return a "
                       f"number, or an array of a numeric dtype")


def to_plain(value: object, depth: int = 0) -> object:
    """Turn ``value`` into JSON-able data; arrays and tensors become tagged ``.npy`` payloads.

    Applies the module's conversions (dict/list/tuple subclasses, NumPy scalars); raises
    ``NotPlainData`` naming the type and the fix for anything else.
    """
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nesting deeper than {MAX_DEPTH} levels")
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
        return {"__dict__": {_key(k): to_plain(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, np.generic):  # before float/int: np.float64 is a float subclass
        return to_plain(_numpy_scalar(value), depth)
    if kind is np.ndarray:
        return {"__ndarray__": _array_payload(value)}
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a course requirement
        torch = None
    if torch is not None and kind in (torch.Tensor, torch.nn.Parameter):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            raise NotPlainData("bfloat16 tensors are not supported: convert to float32 "
                               "(.float()) before returning")
        if tensor.is_complex():
            raise NotPlainData("complex tensors are not plain data: return "
                               "torch.view_as_real(...) (real and imaginary parts)")
        return {"__tensor__": _array_payload(tensor.numpy()), "requires_grad": False}
    # The conversions: subclasses of dict, list and tuple, str and int (bool cannot be subclassed)
    if isinstance(value, dict):
        items = dict.items(value)  # the dict's own items, whatever the subclass overrides
        return {"__dict__": {_key(k): to_plain(v, depth + 1) for k, v in items}}
    if isinstance(value, tuple):
        return {"__tuple__": [to_plain(v, depth + 1) for v in tuple.__iter__(value)]}
    if isinstance(value, list):
        return [to_plain(v, depth + 1) for v in list.__iter__(value)]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__index__(value)
    if isinstance(value, float):
        return to_plain(float.__float__(value), depth)
    raise _not_plain(kind)


def round_trip(value: object) -> object:
    """``value`` as the other side of the sandbox boundary receives it: converted by
    :func:`to_plain`, encoded as a message (checked against the limits), decoded and rebuilt by
    :func:`from_plain`. What ``beyondbert.grading.student.plain`` applies in a student's kernel."""
    message = decode_message(encode_message({"value": to_plain(value)})[8:])  # no length prefix
    return from_plain(message["value"])


def _load_array(payload: object) -> np.ndarray:
    if type(payload) is not str:
        raise NotPlainData("an array payload must be a string")
    try:
        array = np.load(io.BytesIO(base64.b64decode(payload, validate=True)), allow_pickle=False)
    except (ValueError, TypeError, EOFError, OSError, binascii.Error) as err:
        raise NotPlainData(f"not an .npy array: {type(err).__name__}") from None
    if type(array) is not np.ndarray or array.dtype.kind not in _ARRAY_KINDS:
        raise NotPlainData(f"arrays must be numeric or bool, got {getattr(array, 'dtype', '?')}")
    return array


def from_plain(data: object, depth: int = 0) -> object:
    """Inverse of :func:`to_plain`; tensors come back as torch tensors.

    Anything :func:`to_plain` cannot have produced raises ``NotPlainData`` (never another error).
    """
    if depth > MAX_DEPTH + 1:
        raise NotPlainData(f"nesting deeper than {MAX_DEPTH} levels")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [from_plain(v, depth + 1) for v in data]
    if type(data) is not dict:
        raise NotPlainData(f"not plain data: {type(data).__name__}")
    if set(data) == {"__tensor__", "requires_grad"}:
        import torch

        return torch.from_numpy(_load_array(data["__tensor__"]).copy())
    if len(data) != 1:
        raise NotPlainData(f"unknown plain-data tag in {sorted(data)[:3]}")
    tag, content = next(iter(data.items()))
    if tag == "__tuple__" and type(content) is list:
        return tuple(from_plain(v, depth + 1) for v in content)
    if tag == "__dict__" and type(content) is dict:
        return {k: from_plain(v, depth + 1) for k, v in content.items()}
    if tag == "__float__" and content in ("inf", "-inf", "nan"):
        return float(content)
    if tag == "__ndarray__":
        return _load_array(content)
    raise NotPlainData(f"unknown plain-data tag in {sorted(data)[:3]}")


def check_message(body: bytes) -> None:
    """Raise :class:`MalformedMessage` unless ``body`` is within the size and nesting limits.

    Works on the raw bytes, before any parsing: the brackets outside JSON strings are counted
    with NumPy (a quote preceded by an odd number of backslashes is inside a string), so neither
    the depth nor the length of a forged message can make the grader recurse or run for long.
    Where ``body`` is not valid JSON, the depth found is still an upper bound of what a JSON
    parser reaches before it fails.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"{len(body)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")
    counts = {c: body.count(c) for c in (b'"', b"\\", b"[", b"{", b"]", b"}")}
    brackets = counts[b"["] + counts[b"{"] + counts[b"]"] + counts[b"}"]
    if (brackets > MAX_BRACKETS or counts[b'"'] > MAX_QUOTES
            or counts[b"\\"] > MAX_BACKSLASHES):
        raise MalformedMessage("too many brackets, quotes or escapes")
    if counts[b"["] + counts[b"{"] <= MAX_JSON_DEPTH:
        return  # cannot nest deeper than it has openers (most replies: a few keys and arrays)
    raw = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(raw == ord('"'))
    slashes = np.flatnonzero(raw == ord("\\"))
    if slashes.size and quotes.size:
        new_run = np.ones(slashes.size, dtype=bool)
        new_run[1:] = np.diff(slashes) != 1
        run_start = np.maximum.accumulate(np.where(new_run, np.arange(slashes.size), 0))
        last = np.searchsorted(slashes, quotes) - 1  # the last backslash before each quote
        touching = (last >= 0) & (slashes[np.maximum(last, 0)] == quotes - 1)
        run = last - run_start[np.maximum(last, 0)] + 1
        quotes = quotes[~(touching & (run % 2 == 1))]
    if quotes.size % 2:
        raise MalformedMessage("a string is not terminated")
    steps = _BRACKET_STEP[raw]
    where = np.flatnonzero(steps)
    outside = np.searchsorted(quotes, where) % 2 == 0  # an even number of quotes before it
    depth = np.cumsum(steps[where[outside]], dtype=np.int64)
    if depth.size and (depth.max() > MAX_JSON_DEPTH or depth.min() < 0):
        raise MalformedMessage(f"nesting deeper than {MAX_JSON_DEPTH} levels or unbalanced")


def encode_message(message: dict) -> bytes:
    """The length-prefixed JSON of ``message``; :class:`MalformedMessage` if over the limits."""
    body = json.dumps(message).encode("utf-8")
    check_message(body)
    return len(body).to_bytes(8, "big") + body


def decode_message(body: bytes) -> dict:
    """Parse one message body (checked first); :class:`MalformedMessage` if it is not a dict of
    JSON within the limits."""
    check_message(body)
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise MalformedMessage(f"not JSON: {type(err).__name__}") from None
    if not isinstance(message, dict):
        raise MalformedMessage(f"a message must be a JSON object, got {type(message).__name__}")
    return message


def write_message(stream, message: dict) -> None:
    """Write one length-prefixed JSON message to a binary stream (checked against the limits)."""
    stream.write(encode_message(message))
    stream.flush()


def read_message(stream) -> dict:
    """Read one length-prefixed JSON message; raise EOFError when the other side is gone."""
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the sandbox closed its channel")
    size = int.from_bytes(header, "big")
    if size > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {size} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the sandbox closed its channel mid-message")
    return decode_message(body)
