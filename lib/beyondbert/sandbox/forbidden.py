"""Refuse named library functions an exercise forbids (``torch.fake_quantize_per_tensor_affine``).

``forbidden_modules`` in ``nbgrader_config.py`` lists, per exercise, the ``beyondbert`` modules
hidden from student code and, by their exact dotted names, other functions the exercise forbids
(any entry that does not start with ``beyondbert``). :func:`refuse` replaces each named function
with one that raises :class:`ForbiddenFunction`; the sandbox's worker calls it before any student
cell runs (the filtered library carries the list in :data:`NAMES_FILE`), and an exercise's set-up
cell calls it too, so the student's own run of the visible tests shows the same message.
Only the standard library is used here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

NAMES_FILE = "_forbidden_names.txt"  # in the sandbox's copy of the beyondbert package


class ForbiddenFunction(RuntimeError):
    """A function the exercise forbids was called."""


def library_names(entries) -> list[str]:
    """The entries of a ``forbidden_modules`` list that name functions outside ``beyondbert``."""
    return [e for e in entries if e != "beyondbert" and not e.startswith("beyondbert.")]


def _refusal(name: str):
    def refused(*args, **kwargs):
        raise ForbiddenFunction(f"{name} is not allowed in this exercise: write the arithmetic "
                                f"yourself with plain tensor operations")

    refused.__name__ = refused.__qualname__ = name.rsplit(".", 1)[-1]
    refused.__forbidden__ = name
    return refused


def refuse(*names: str) -> list[str]:
    """Replace each function named ``module.attribute`` by one that raises ForbiddenFunction.

    Returns the names refused (a name whose module cannot be imported is skipped).
    """
    done = []
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attribute):
            setattr(module, attribute, _refusal(name))
            done.append(name)
    return done


def refuse_listed(package_dir: Path) -> list[str]:
    """Refuse the names listed in ``package_dir / NAMES_FILE`` (one per line), if it exists."""
    path = Path(package_dir) / NAMES_FILE
    if not path.is_file():
        return []
    return refuse(*(line.strip() for line in path.read_text().splitlines() if line.strip()))
