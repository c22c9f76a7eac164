"""Where the course's exercises live: ``solutions/NN-slug.ipynb`` in the course repository.

An exercise's name is the stem of its solution notebook (``01-encoders-and-bert``); the student
version generated from it is ``exercises/NN-slug.ipynb``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import GradingError

REPO_ENV = "BEYONDBERT_REPO"


def _is_repo(folder: Path) -> bool:
    return (folder / "_toc.yml").is_file() and (folder / "solutions").is_dir()


def find_repo(repo: str | Path | None = None) -> Path:
    """The course repository: ``repo``, else ``$BEYONDBERT_REPO``, else searched for.

    The search looks at the current folder and its parents for the folder holding ``_toc.yml``
    and ``solutions/``, then at the checkout this package is installed from (editable install).
    """
    given = repo if repo is not None else os.environ.get(REPO_ENV) or None
    if given is not None:
        path = Path(given).expanduser().resolve()
        if not (path / "solutions").is_dir():
            raise GradingError(f"{path} is not the course repository: it has no solutions/ folder")
        return path
    here = Path.cwd().resolve()
    package_checkout = Path(__file__).resolve().parents[3]  # lib/beyondbert/grading/ -> repo
    for folder in (here, *here.parents, package_checkout):
        if _is_repo(folder):
            return folder
    raise GradingError(
        f"cannot find the course repository (the folder with _toc.yml and solutions/) from {here}: "
        f"pass --repo DIR or set {REPO_ENV}"
    )


def list_exercises(repo: Path) -> list[str]:
    """Names of all exercises, sorted: the stems of ``solutions/*.ipynb``."""
    return sorted(p.stem for p in (repo / "solutions").glob("*.ipynb"))


def check_exercise(name: str, repo: Path) -> str:
    """Return ``name`` if it is a known exercise; otherwise raise listing the known ones."""
    known = list_exercises(repo)
    if name not in known:
        listing = ", ".join(known) if known else "none: solutions/ holds no notebook"
        raise GradingError(f"unknown exercise {name!r}; known exercises: {listing}")
    return name


def solution_path(name: str, repo: Path) -> Path:
    """``solutions/<name>.ipynb``: the nbgrader source notebook of an exercise."""
    return repo / "solutions" / f"{check_exercise(name, repo)}.ipynb"


def student_path(name: str, repo: Path) -> Path:
    """``exercises/<name>.ipynb``: the committed student version of an exercise."""
    return repo / "exercises" / f"{check_exercise(name, repo)}.ipynb"


def course_config(repo: Path) -> Path:
    """The course's ``nbgrader_config.py`` at the repository root."""
    path = repo / "nbgrader_config.py"
    if not path.is_file():
        raise GradingError(f"the course's nbgrader configuration is missing: {path}")
    return path
