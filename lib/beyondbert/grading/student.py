"""What exercise test cells use on a student's functions: the same in the student's own kernel,
in ``beyondbert check`` and when graded.

When an exercise is graded, the student's code runs in a sandbox and the test cells run in the
grader; a student's function is a proxy there, and what it returns crosses the boundary as plain
data (``beyondbert.sandbox.plaindata``). These helpers make a test cell see the same thing
wherever it runs, so what passes locally passes graded.

Usage in a test cell (the exercise author copies these lines)::

    from beyondbert.grading.student import gradient, hidden_rng, hidden_seed, plain

    # 1. What a function returns, as the grader sees it: a Counter or defaultdict becomes a
    #    dict, np.float64 a float, a tensor a detached tensor; anything that cannot be graded
    #    raises NotPlainData naming the type and the fix, *before* the student hands in.
    counts = plain(count_pairs(toy))
    assert type(counts) is dict, f"expected a dict, got {type(counts).__name__}"
    score = plain(recall_at_k(ranked, relevant, 10))
    assert isinstance(score, float), f"expected a float, got {type(score).__name__}"

    # 2. The gradient of a loss with respect to argument 0 (an int) or several (a tuple): float
    #    tensors of the arguments' shapes. A loss computed with .item(), float() or NumPy fails
    #    with "your loss has no gradient with respect to argument 0: did you use .item() ...".
    grad = gradient(triplet_loss, anchor, positive, negative, wrt=0, margin=1.0)
    assert torch.allclose(grad, expected_grad, atol=1e-6), "wrong gradient for the anchor"
    # a function that returns (loss, weights): the loss is element 0 (never wrap it in a lambda)
    grad = gradient(dpo_loss, pc, pr, rc, rr, 0.5, wrt=0, output=0)
    got = gradient(triplet_loss, anchor, positive, negative, wrt=(0, 1, 2), margin=1.0)
    want = gradient(reference_triplet_loss, anchor, positive, negative, wrt=(0, 1, 2), margin=1.0)
    for name, g, w in zip(("anchor", "positive", "negative"), got, want):
        assert g.shape == w.shape and torch.allclose(g, w, atol=1e-6), f"wrong gradient: {name}"

    # 3. Hidden inputs (in a hidden test): drawn from the course's secret when graded, from a
    #    fixed public seed in the book and in a student's kernel. Name each draw uniquely in the
    #    course ("exercise/what"); the same name always gives the same inputs in one course.
    g = hidden_rng("03-sentence-bert/triplet")           # a seeded torch.Generator
    anchor = torch.randn(6, 16, generator=g, dtype=torch.float64)
    rng = numpy.random.default_rng(hidden_seed("04-search/ranks"))   # NumPy, random.Random...

Import the helpers in the test cells (they run in the grader when graded); an import in the
set-up cell also works, but costs each submission's sandbox about a quarter CPU-second.

``gradient`` called on the grader's own function (a reference from the course library) runs in
the grader; on a student's function it runs where the student's code runs (in the sandbox when
graded), through :func:`beyondbert.sandbox.worker.compute_gradient` either way.

The course secret is a file, ``.beyondbert-course-secret``, in the instructor's course folder
(``beyondbert release`` creates it; never commit it). It is looked for in ``$BEYONDBERT_COURSE_DIR``
(set on the course's JupyterHub instructor server), then in the current folder and its parents
(nbgrader grades with the course folder as its current folder). Student code never sees it: the
sandbox mounts only the submission. Without it, ``hidden_seed`` uses a fixed public key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Callable

from ..sandbox.plaindata import NotPlainData, round_trip
from ..sandbox.worker import compute_gradient

__all__ = ["NotPlainData", "course_secret", "create_course_secret", "gradient", "hidden_rng",
           "hidden_seed", "plain"]

SECRET_FILE = ".beyondbert-course-secret"
COURSE_ENV = "BEYONDBERT_COURSE_DIR"
PUBLIC_KEY = b"beyond-bert public inputs: not a secret"  # the book's and a student's kernel's


def plain(value: Any) -> Any:
    """``value`` as the grader receives it from the student's sandbox: the same conversion and
    the same encoding (see ``beyondbert.sandbox.plaindata``). Raises ``NotPlainData`` with the
    type and the fix for a value that cannot be graded. On values already plain (in the grader)
    it changes nothing."""
    return round_trip(value)


def _student_function(fn: object) -> bool:
    executor = sys.modules.get("beyondbert.sandbox.executor")
    return executor is not None and isinstance(fn, getattr(executor, "StudentFunction", ()))


def _calls_a_student_function(fn: object) -> str | None:
    """The name of a sandboxed student function that ``fn`` (a test's lambda or helper) calls by
    a global name, if any: such a wrapper gets detached results from the sandbox."""
    code, names = getattr(fn, "__code__", None), getattr(fn, "__globals__", {})
    if code is None:
        return None
    for name in code.co_names:
        if _student_function(names.get(name)):
            return name
    return None


def gradient(fn: Callable[..., Any], *args: Any, wrt: int | tuple[int, ...] = 0,
             output: int | str | None = None, **kwargs: Any):
    """The gradient of the scalar tensor ``fn(*args, **kwargs)`` with respect to the positional
    argument(s) at ``wrt``.

    ``wrt`` an int gives one tensor (that argument's shape and dtype); a tuple of ints gives a
    tuple of them. Each chosen argument must be a floating-point tensor (``fn`` gets a copy that
    requires grad). ``output`` picks the loss out of what ``fn`` returns (``output=0`` for a
    ``(loss, weights)`` pair): pass the student's function itself, never a lambda around it
    (when graded, a lambda runs in the grader and the student's function returns detached
    values). Raises ``AssertionError`` when ``fn`` returns something without a gradient (a
    float, a detached tensor, a loss computed with ``.item()`` or NumPy) or more than one number.
    """
    if _student_function(fn):
        from ..sandbox.session import SandboxError

        try:
            grads = fn.gradient(tuple(args), dict(kwargs), wrt, output)
        except SandboxError as failure:
            if failure.ename == "AssertionError":  # as in the student's kernel
                raise AssertionError(failure.evalue) from None
            raise
    else:
        if getattr(fn, "__name__", "") == "<lambda>":  # the same refusal locally and graded
            raise TypeError("gradient() needs the student's function itself, not a lambda: "
                            "a lambda runs in the grader when graded, where the student's "
                            "results come back detached; use output=0 to take the loss out of a "
                            "tuple the function returns")
        wrapped = _calls_a_student_function(fn)
        if wrapped is not None:
            raise TypeError(f"gradient() got a function that calls the student's {wrapped}(): "
                            f"pass {wrapped} itself (and output=0 to take the loss out of a "
                            f"tuple it returns), so that the gradient is taken where it runs")
        grads = plain(compute_gradient(fn, tuple(args), dict(kwargs), wrt, output))
    if isinstance(wrt, int):
        return grads[0]
    return tuple(grads)


# ------------------------------------------------------------------------- hidden inputs
def _secret_in(folder: Path) -> bytes | None:
    path = folder / SECRET_FILE
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return bytes.fromhex(text) if text else None


def course_secret() -> bytes | None:
    """The course's secret (bytes), or None where there is none (the book, a student's kernel,
    ``beyondbert grade`` on one file): see the module's docstring for where it is looked for."""
    folders = []
    if os.environ.get(COURSE_ENV):
        folders.append(Path(os.environ[COURSE_ENV]).expanduser())
    here = Path.cwd()
    folders += [here, *here.parents]
    for folder in folders:
        try:
            secret = _secret_in(folder)
        except ValueError:  # not hex: a damaged file must not silently fall back
            raise RuntimeError(f"{folder / SECRET_FILE} is not a course secret (hex digits); "
                               f"restore it from a backup, or the hidden inputs change") from None
        if secret is not None:
            return secret
    return None


def create_course_secret(course: str | Path) -> Path:
    """Create the course's secret in ``course`` (32 random bytes, hex, mode 0600) unless it
    exists; returns its path. Called by ``beyondbert release``; never commit the file."""
    path = Path(course) / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
    return path


def hidden_seed(name: str) -> int:
    """A seed (0 <= seed < 2**63) for the hidden inputs called ``name``: from the course's secret
    when there is one, else from a fixed public key. The same name gives the same seed."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    key = course_secret() or PUBLIC_KEY
    digest = hmac.new(key, name.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def hidden_rng(name: str):
    """A ``torch.Generator`` seeded with :func:`hidden_seed` ``(name)``: pass it as
    ``generator=`` to ``torch.randn``, ``torch.randint``, ``torch.randperm``..."""
    import torch

    return torch.Generator().manual_seed(hidden_seed(name))
