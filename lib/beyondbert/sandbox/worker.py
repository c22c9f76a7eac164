"""The process that runs inside the sandbox: executes student cells, answers look-ups and calls.

Requests and replies travel as length-prefixed JSON (see ``plaindata``) on two pipe fds named on
the command line; fds 1 and 2 are not the channel, so what student code prints cannot break it.
In the sandbox, each worker is a child the warm ``zygote`` forks, which sets ``sys.argv`` as if it
had been started as ``python -m beyondbert.sandbox.worker SEED REQUEST_FD REPLY_FD FILES``; the
grader starts that command itself only without a sandbox. With FILES (the files handed in,
mounted read-only in the sandbox) the worker first copies them into its working folder.

Requests: ``exec`` (run a cell), ``describe`` (what a name is), ``call`` (call a function on plain
data, return plain data) and ``gradient`` (call a function, then return the gradient of its scalar
tensor result with respect to chosen arguments: see :func:`compute_gradient`, which
``beyondbert.grading.student.gradient`` also runs in a student's own kernel, so a loss is judged
the same way there and when graded).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import types
from pathlib import Path

from .plaindata import (MalformedMessage, NotPlainData, from_plain, read_message, to_plain,
                        write_message)

MAX_STREAM_CHARS = 4000
CELL_FILENAME = "<student cell {}>"


class _NoMagics:
    """Stands in for IPython's shell: magics and shell escapes do nothing when grading."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _seed(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)


def _error(err: BaseException) -> dict:
    try:
        ename, evalue = str(type(err).__name__)[:100], str(err)[:500]
    except BaseException:  # noqa: BLE001 - a student's __str__ may raise anything
        ename, evalue = "Exception", "(the error's message could not be shown)"
    return {"ename": ename, "evalue": evalue}


def _copy_files(source: Path) -> None:
    """Copy the files handed in into the working folder (the sandbox's fresh home)."""
    for path in source.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, path.name, symlinks=True)
        else:
            shutil.copy2(path, path.name, follow_symlinks=False)


def _to_python(source: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _wrt_positions(wrt: object, n_args: int) -> tuple[int, ...]:
    positions = (wrt,) if type(wrt) is int else wrt
    if (not isinstance(positions, (tuple, list)) or not positions
            or any(type(i) is not int for i in positions)):
        raise TypeError(f"wrt must be an int or a tuple of ints, got {wrt!r}")
    for i in positions:
        if not -n_args <= i < n_args:
            raise IndexError(f"wrt={i}: the function was given only {n_args} positional "
                             f"argument(s)")
    return tuple(i % n_args for i in positions)


def _arguments(positions) -> str:
    names = [str(i) for i in positions]
    if len(names) == 1:
        return f"argument {names[0]}"
    return f"arguments {', '.join(names[:-1])} and {names[-1]}"


def compute_gradient(function, args: tuple, kwargs: dict, wrt: object = 0,
                     output: object = None) -> tuple:
    """The gradient of the scalar tensor ``function(*args, **kwargs)`` with respect to the
    positional arguments at ``wrt`` (an int or a tuple of ints): a tuple of tensors, one per
    position, each of its argument's shape and dtype. With ``output`` (an int or a string), the
    loss is that element of what the function returns (``dpo_loss(...)[0]`` of a ``(loss,
    weights)`` pair).

    Each chosen argument must be a floating-point tensor; the function gets a fresh copy that
    requires grad (the caller's tensor is not touched). Raises ``AssertionError`` with a message a
    student understands when the result is not a one-element tensor attached to those arguments
    (a loss computed with ``.item()``, ``float()`` or NumPy).
    """
    import torch

    args = list(args)
    positions = _wrt_positions(wrt, len(args))
    for i in positions:
        if not (isinstance(args[i], torch.Tensor) and args[i].is_floating_point()):
            raise TypeError(f"argument {i} must be a floating-point tensor to take a gradient "
                            f"with respect to it, got {type(args[i]).__name__}"
                            + (f" of dtype {args[i].dtype}" if isinstance(args[i], torch.Tensor)
                               else ""))
        args[i] = args[i].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = function(*args, **kwargs)
    if output is not None:
        if type(output) not in (int, str):
            raise TypeError(f"output must be an int or a string, got {output!r}")
        try:
            out = out[output]
        except (IndexError, KeyError, TypeError):
            raise AssertionError(f"the function must return a tuple, list or dict holding the "
                                 f"loss at [{output!r}], got a {type(out).__name__}") from None
    asked = (f"your loss has no gradient with respect to {_arguments(positions)}: did you use "
             f".item(), float() or NumPy?")
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{asked} It returned a {type(out).__name__}, not a tensor: keep the "
                             f"whole computation in torch and return the tensor")
    if out.numel() != 1:
        raise AssertionError(f"a loss must be a single number (a tensor of shape ()), got shape "
                             f"{tuple(out.shape)}: reduce it with .mean() or .sum()")
    if not out.requires_grad:
        raise AssertionError(f"{asked} The tensor it returned is detached from its inputs "
                             f"(.item(), float(), .detach(), torch.tensor(...) of a result and "
                             f"NumPy all cut the graph): keep the whole computation in torch")
    grads = torch.autograd.grad(out.reshape(()), [args[i] for i in positions], allow_unused=True)
    missing = [i for i, g in zip(positions, grads) if g is None]
    if missing:
        raise AssertionError(
            f"your loss has no gradient with respect to {_arguments(missing)}: did you use "
            f".item(), float() or NumPy? The result does not depend on that argument through "
            f"torch operations (or went through .detach())")
    return tuple(g.detach() for g in grads)


def _describe(namespace: dict, name: str) -> dict:
    if name not in namespace:
        return {"kind": "missing"}
    obj = namespace[name]
    if isinstance(obj, types.ModuleType):
        return {"kind": "module", "module": obj.__name__}
    if isinstance(obj, types.FunctionType):
        filename = obj.__code__.co_filename
        return {"kind": "function", "module": str(obj.__module__), "qualname": obj.__qualname__,
                "defined_in_notebook": filename.startswith("<student cell")}
    if callable(obj):
        return {"kind": "callable", "module": str(getattr(obj, "__module__", "")),
                "defined_in_notebook": False}
    try:
        return {"kind": "data", "value": to_plain(obj)}
    except NotPlainData as err:
        return {"kind": "object", "reason": str(err)}


def _run(namespace: dict, request: dict, cell_counter: list[int]) -> dict:
    op = request.get("op")
    out, err = io.StringIO(), io.StringIO()
    reply: dict = {"ok": True}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if op == "exec":
                cell_counter[0] += 1
                code = compile(_to_python(request["code"]), CELL_FILENAME.format(cell_counter[0]), "exec")
                exec(code, namespace)
            elif op == "describe":
                reply.update(_describe(namespace, request["name"]))
            elif op == "call":
                function = namespace[request["name"]]
                result = function(*from_plain(request["args"]), **from_plain(request["kwargs"]))
                reply["value"] = to_plain(result)
            elif op == "gradient":
                function = namespace[request["name"]]
                grads = compute_gradient(function, tuple(from_plain(request["args"])),
                                         from_plain(request["kwargs"]), from_plain(request["wrt"]),
                                         from_plain(request.get("output")))
                reply["value"] = to_plain(grads)
            else:
                raise ValueError(f"unknown operation {op!r}")
    except BaseException as failure:  # noqa: BLE001 - SystemExit and friends fail the cell only
        reply = {"ok": False, "error": _error(failure)}
    reply["stdout"] = out.getvalue()[:MAX_STREAM_CHARS]
    reply["stderr"] = err.getvalue()[:MAX_STREAM_CHARS]
    return reply


def serve(seed: int, request_fd: int, reply_fd: int, files: Path | None) -> None:
    """Copy ``files`` here, seed, say "ready", then answer requests until the grader hangs up."""
    requests, replies = os.fdopen(request_fd, "rb"), os.fdopen(reply_fd, "wb")
    if files is not None:
        _copy_files(files)
    _seed(seed)
    from .forbidden import refuse_listed

    refuse_listed(Path(__file__).resolve().parents[1])  # the functions the exercise forbids
    namespace: dict = {"__name__": "__main__", "get_ipython": lambda: _NoMagics()}
    cell_counter = [0]
    write_message(replies, {"ok": True, "ready": True})
    while True:
        try:
            request = read_message(requests)
        except EOFError:
            return
        reply = _run(namespace, request, cell_counter)
        try:
            write_message(replies, reply)
        except MalformedMessage as failure:
            error = {"ename": "NotPlainData",
                     "evalue": f"too large or too deeply nested to leave the sandbox: {failure}"}
            write_message(replies, {"ok": False, "error": error, "stdout": "", "stderr": ""})
        except (TypeError, ValueError) as failure:
            write_message(replies, {"ok": False, "error": _error(failure), "stdout": "", "stderr": ""})


def hide_modules(names: list[str]) -> None:
    """Make ``import`` of each named module (and its submodules) fail as if it were absent: how
    an unsandboxed worker (``beyondbert check`` without bubblewrap) hides an exercise's forbidden
    modules, which the sandbox leaves out of its copy of the library."""
    import importlib.abc

    names = [n for n in names if n]
    if not names:
        return

    def hidden(fullname: str) -> bool:
        return any(fullname == n or fullname.startswith(n + ".") for n in names)

    class _Hidden(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if hidden(fullname):
                raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
            return None

    for name in [m for m in sys.modules if hidden(m)]:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and hasattr(sys.modules[parent], child):
            delattr(sys.modules[parent], child)
    sys.meta_path.insert(0, _Hidden())


def main() -> None:
    hide_modules(os.environ.get("BEYONDBERT_HIDE_MODULES", "").split(","))
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    request_fd, reply_fd = (int(a) for a in sys.argv[2:4])
    serve(seed, request_fd, reply_fd, Path(sys.argv[4]) if len(sys.argv) > 4 else None)


if __name__ == "__main__":
    main()
