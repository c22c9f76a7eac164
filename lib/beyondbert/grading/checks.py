"""Checks that exercise notebooks' hidden tests call on the student's functions.

When grading, test cells run in the grader and a student's function is a
``beyondbert.sandbox.executor.StudentFunction`` that knows where it was defined; when a solution
notebook runs in one kernel (nbval, a student's own run), the function itself is inspected.
Only the standard library is used here: this module is imported by graded test cells.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The folder of the ``beyondbert`` package: code from files under it is "the library's".
_LIBRARY_DIR = Path(__file__).resolve().parents[1]


def _library_file(filename: str) -> bool:
    """True when ``filename`` is a source file of the beyondbert package."""
    try:
        return Path(filename).resolve().is_relative_to(_LIBRARY_DIR)
    except (OSError, ValueError):
        return False


def library_calls(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[str]:
    """Call ``fn(*args, **kwargs)`` and list the beyondbert functions it ran (``module.name``).

    ``fn`` itself counts when it *is* a library function (``from beyondbert.pooling import
    mean_pool``); a wrapper written in the notebook that calls the library is caught as well.
    """
    seen: list[str] = []

    def profile(frame, event, arg):  # noqa: ANN001 - sys.setprofile's signature
        if event == "call" and _library_file(frame.f_code.co_filename):
            name = f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"
            if name not in seen:
                seen.append(name)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return seen


def assert_own_work(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Fail unless ``fn`` is written in the notebook and never calls the beyondbert library.

    ``args``/``kwargs`` are one valid input for ``fn``; the call's result is discarded.
    """
    name = getattr(fn, "__name__", repr(fn))
    sandbox = sys.modules.get("beyondbert.sandbox.executor")
    if sandbox is not None and isinstance(fn, getattr(sandbox, "StudentFunction", ())):
        # A stand-in for a function of beyondbert.sandbox's student process: the sandbox tells
        # where it was defined, and hides the library modules an exercise asks students to write.
        if not fn.defined_in_notebook:
            raise AssertionError(f"{name} is not written in this notebook: write it yourself "
                                 f"with torch to earn the points")
        return
    code = getattr(fn, "__code__", None)
    if code is None or _library_file(code.co_filename):
        raise AssertionError(
            f"{name} is not written in this notebook (it comes from "
            f"{getattr(fn, '__module__', '?')}): write it yourself with torch to earn the points"
        )
    used = library_calls(fn, *args, **kwargs)
    if used:
        raise AssertionError(
            f"{name} calls the course library ({', '.join(used)}): write it yourself with torch "
            f"to earn the points"
        )
