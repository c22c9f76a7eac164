"""The book build: pages executed two at a time give the serial build's book, and publishing.

A toy Jupyter Book (three small pages in two chapters, a page excluded from execution) is built
twice: serially by ``jupyter-book build`` alone, and by ``scripts/execute_pages.py --jobs 2``
followed by the same ``jupyter-book build``. Both must record the same results, execute the same
cells with the same outputs, and the second build must execute nothing itself (each page runs
once, in the parallel step). A failing page fails the parallel step with its traceback.
``make publish`` (``scripts/publish.sh``) is run against a local bare repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXECUTE_PAGES = REPO / "scripts" / "execute_pages.py"

pytestmark = pytest.mark.xdist_group("build")

# What `make book` sets for the pages: one thread each (two pages run at once on 2 cores).
BOOK_ENV = {"OMP_NUM_THREADS": "1", "BEYONDBERT_TORCH_THREADS": "1", "PYTHONHASHSEED": "0",
            "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}


def page(title: str, chapter: str, name: str, extra: str = "",
         prose: str = "The toy figure is {{glue:text}}`{name}`.") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\n" + prose.format(name=name)),
        nbformat.v4.new_code_cell(textwrap.dedent(f"""\
            from pathlib import Path
            from beyondbert.results import page_recorder
            with open(Path("runs.txt"), "a") as runs:  # one line per execution of this page
                runs.write("{name}\\n")
            rec = page_recorder("{chapter}", section="{title}")""")),
        nbformat.v4.new_code_cell(f'rec("{name}", {len(name)} / 7, "", label="{title} figure")'),
        nbformat.v4.new_code_cell("print(sum(i * i for i in range(100)))" + extra),
    ]
    return nb


def make_book(folder: Path, failing: bool = False) -> Path:
    folder.mkdir()
    (folder / "_config.yml").write_text(textwrap.dedent("""\
        title: Toy
        only_build_toc_files: true
        execute:
          execute_notebooks: cache
          cache: _build/.jupyter_cache
          timeout: 300
          exclude_patterns: ["drafts/*"]
        sphinx:
          config:
            nb_execution_raise_on_error: true
            nb_execution_show_tb: true
        """))
    (folder / "_toc.yml").write_text(textwrap.dedent("""\
        format: jb-book
        root: intro
        chapters:
          - file: one/first
          - file: one/second
          - file: two/third
          - file: drafts/unfinished
        """))
    (folder / "intro.md").write_text("# Toy book\n\nThree pages.\n")
    for sub in ("one", "two", "drafts"):
        (folder / sub).mkdir()
    threads = ("\nimport os, torch\nfrom beyondbert.seeding import seed_everything\n"
               "seed_everything(0)\nprint('threads', torch.get_num_threads(), "
               "os.environ.get('OMP_NUM_THREADS'))")
    nbformat.write(page("First page", "toy-one", "first_figure", threads),
                   folder / "one" / "first.ipynb")
    nbformat.write(page("Second page", "toy-one", "second_figure",
                        "\nraise ValueError('the second page is broken')" if failing else ""),
                   folder / "one" / "second.ipynb")
    nbformat.write(page("Third page", "toy-two", "third_figure"), folder / "two" / "third.ipynb")
    draft = page("Unfinished", "toy-two", "draft_figure", "\nraise NotImplementedError",
                 prose="Not executed: its code raises.")
    nbformat.write(draft, folder / "drafts" / "unfinished.ipynb")
    return folder


def run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **BOOK_ENV, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    for key in ("BEYONDBERT_RESULTS_DIR", "BEYONDBERT_CACHE_DIR"):
        env.pop(key, None)
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def jupyter_book(book: Path) -> subprocess.CompletedProcess:
    return run([BIN / "jupyter-book", "build", ".", "--all", "-W", "-n", "--keep-going"], book)


def executed(book: Path) -> dict[str, list]:
    """Per page, as the book shows it (from the execution cache): each code cell's execution
    count and its outputs' text. (``_build/jupyter_execute`` is no help: myst-nb writes the
    unexecuted notebook there whenever it takes a page from the cache.)"""
    from jupyter_cache import get_cache

    cache = get_cache(str(book / "_build" / ".jupyter_cache"))
    found = {}
    for path in sorted(book.glob("*/*.ipynb")):
        try:
            _, nb = cache.merge_match_into_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            continue  # not executed (excluded)
        found[path.relative_to(book).as_posix()] = [
            (cell.execution_count, [o.get("text") or o.get("data", {}).get("text/plain")
                                    for o in cell.outputs])
            for cell in nb.cells if cell.cell_type == "code"]
    return found


def html(book: Path) -> dict[str, str]:
    return {p.relative_to(book).as_posix(): p.read_text()
            for p in sorted((book / "_build" / "html").glob("*/*.html"))}


def results(book: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text())
            for p in sorted((book / "_build" / "results").glob("*.json"))}


def runs(book: Path) -> list[str]:
    return sorted(line for f in book.rglob("runs.txt") for line in f.read_text().split())


def test_parallel_execution_gives_the_serial_build(tmp_path):
    serial = make_book(tmp_path / "serial")
    built = jupyter_book(serial)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    parallel = make_book(tmp_path / "parallel")
    done = run([sys.executable, EXECUTE_PAGES, "--jobs", "2"], parallel)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 of 3 pages to execute, 2 at a time" in done.stdout, done.stdout
    assert runs(parallel) == ["first_figure", "second_figure", "third_figure"]
    built = jupyter_book(parallel)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert runs(parallel) == runs(serial), "the book build executed a page again"

    assert results(parallel) == results(serial)
    assert set(results(parallel)) == {"toy-one.json", "toy-two.json"}
    assert executed(parallel) == executed(serial)
    cells = executed(parallel)
    assert sorted(cells) == ["one/first.ipynb", "one/second.ipynb", "two/third.ipynb"]
    assert all(count is not None for page_cells in cells.values() for count, _ in page_cells)
    # one PyTorch thread per page, also where a page calls seed_everything() without threads=
    assert cells["one/first.ipynb"][-1][1][-1].endswith("threads 1 1\n")
    pages = html(parallel)
    assert pages == html(serial), "the parallel build's pages differ from the serial build's"
    for name in ("first", "second", "third"):  # the glued figure reached the prose
        page_html = pages[f"_build/html/{'two' if name == 'third' else 'one'}/{name}.html"]
        assert (f'The toy figure is <span class="pasted-text">{len(name + "_figure") / 7:.3f}'
                in page_html)

    again = run([sys.executable, EXECUTE_PAGES], parallel)  # everything is in the cache now
    assert again.returncode == 0 and "0 of 3 pages to execute" in again.stdout, again.stdout
    times = json.loads((parallel / "_build" / "execution-times.json").read_text())
    assert sorted(times) == ["one/first.ipynb", "one/second.ipynb", "two/third.ipynb"]


def test_a_failing_page_fails_the_parallel_step_with_its_traceback(tmp_path):
    book = make_book(tmp_path / "book", failing=True)
    done = run([sys.executable, EXECUTE_PAGES, "--jobs", "2"], book)
    assert done.returncode == 1
    assert "one/second.ipynb failed (CellExecutionError)" in done.stderr, done.stderr
    assert "ValueError: the second page is broken" in re.sub(r"\x1b\[[0-9;]*m", "", done.stderr)
    assert "FAILED one/second.ipynb" in done.stdout
    assert runs(book) == ["first_figure", "second_figure", "third_figure"]  # the others ran
    again = run([sys.executable, EXECUTE_PAGES, "--jobs", "2"], book)
    assert "1 of 3 pages to execute" in again.stdout, "only the failed page is not cached"
    assert again.returncode == 1


def git(*args, cwd: Path) -> str:
    done = subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(map(str, args))}: {done.stderr}"
    return done.stdout


def publish(work: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    for key in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(key, None)
    return subprocess.run(["bash", REPO / "scripts" / "publish.sh"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)


def test_publish_pushes_the_built_book_to_gh_pages(tmp_path):
    """`make publish` against a local bare repository standing in for GitHub."""
    remote = tmp_path / "course.git"
    git("init", "-q", "--bare", remote, cwd=tmp_path)
    work = tmp_path / "course"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / ".gitignore").write_text("_build/\n")
    git("add", ".gitignore", cwd=work)
    git("-c", "user.name=Author", "-c", "user.email=a@example.org", "commit", "-q", "-m", "course",
        cwd=work)
    git("remote", "add", "origin", remote, cwd=work)

    refused = publish(work)
    assert refused.returncode == 2 and "build the book first" in refused.stderr

    site = work / "_build" / "html"
    pages = {"index.html": "<p>home</p>", "chapters/one.html": "<p>one</p>",
             "_static/style.css": "p {}", "_images/plot.png": "png"}
    for name, text in pages.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    done = publish(work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 files on origin/gh-pages" in done.stdout
    published = git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split()
    assert sorted(published) == sorted([*pages, ".nojekyll"])  # .nojekyll: _static is served
    assert git("show", "gh-pages:chapters/one.html", cwd=remote) == "<p>one</p>"
    assert git("branch", "--show-current", cwd=work).strip() == "main"
    assert git("status", "--porcelain", cwd=work) == ""  # the course's own branch is untouched

    (site / "chapters" / "one.html").write_text("<p>one, rebuilt</p>")
    (site / "_images" / "plot.png").unlink()
    assert publish(work).returncode == 0
    assert git("show", "gh-pages:chapters/one.html", cwd=remote) == "<p>one, rebuilt</p>"
    assert "_images/plot.png" not in git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote)
    assert len(git("log", "--format=%s", "gh-pages", cwd=remote).splitlines()) == 2


def test_make_publish_runs_the_publish_script():
    dry = subprocess.run(["make", "-n", "publish"], cwd=REPO, capture_output=True, text=True)
    assert dry.returncode == 0 and "scripts/publish.sh" in dry.stdout, dry.stdout + dry.stderr


def test_workflow_passes_actionlint():
    """The GitHub Actions workflow cannot run here; actionlint checks its syntax, expressions,
    job graph and the shell of its steps."""
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (requirements-dev.txt, Linux x86-64 only)")
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert [w.name for w in workflows] == ["book.yml"]
    done = subprocess.run([actionlint, "-no-color", *workflows], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_runs_the_readme_commands_and_publishes_from_main():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    steps = {name: " ".join(str(step.get("run", "")) for step in job["steps"])
             for name, job in workflow["jobs"].items()}
    readme = (REPO / "README.md").read_text()
    for command in ("make book", "make test"):
        assert command in readme
        assert any(command in run for run in steps.values()), f"no job runs `{command}`"
    publish_job = next(job for job in workflow["jobs"].values()
                       if "make publish" in " ".join(str(s.get("run", "")) for s in job["steps"]))
    assert "refs/heads/main" in publish_job["if"]
    assert set(publish_job["needs"]) >= {"book", "test"}


def test_pages_take_the_builds_thread_count(monkeypatch):
    """`seed_everything(seed)` without threads= gives the build's count (1: two pages run at
    once on 2 cores), 2 outside the build; a page that names a count keeps it."""
    import torch

    from beyondbert.seeding import seed_everything

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("BEYONDBERT_TORCH_THREADS", "1")
        seed_everything(0)
        assert torch.get_num_threads() == 1
        seed_everything(0, threads=2)
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("BEYONDBERT_TORCH_THREADS")
        seed_everything(0, threads=1)
        seed_everything(0)
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("BEYONDBERT_TORCH_THREADS", "two")
        with pytest.raises(ValueError, match="BEYONDBERT_TORCH_THREADS"):
            seed_everything(0)
    finally:
        torch.set_num_threads(before)
