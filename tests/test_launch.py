"""Launch buttons open notebooks that run: the install cell and the Binder environment.

The unit tests check every notebook carries the install cell for the repository in _config.yml.
The two environment tests build fresh virtual environments the way the services do, with no
access to this checkout's .venv, and run course code in them:

- Binder: exactly what binder/ declares (requirements.txt, then postBuild), then a chapter page
  executed top to bottom;
- Colab (or any bare Jupyter): the install cell itself, pointed at this checkout instead of GitHub.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from beyondbert.launch import (INSTALL_TAG, expected_cell, install_cell_source, is_install_cell,
                               notebooks, repository, sync_notebook)

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def student_notebooks() -> list[Path]:
    return sorted(REPO.glob("exercises/*.ipynb"))


@pytest.mark.parametrize("path", [*notebooks(REPO), *student_notebooks()],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_notebook_starts_with_the_install_cell(path):
    cells = nbformat.read(path, as_version=4).cells
    expected = expected_cell(REPO)
    assert cells[0].cell_type == "markdown", f"{path.name}: the title cell comes first"
    first_code = next(c for c in cells if c.cell_type == "code")
    assert is_install_cell(first_code) and first_code is cells[1], (
        f"{path.name}: the first code cell must be the install cell (run `make install-cells`)")
    assert first_code.source == expected.source, (
        f"{path.name}: its install cell names another repository than _config.yml "
        f"({repository(REPO)[0]}): run `make install-cells`")
    assert first_code.metadata.get("tags") == [INSTALL_TAG], "the book hides it by its tag"


def test_a_fork_changes_one_line(tmp_path):
    """Changing repository.url in _config.yml and syncing rewrites every install cell."""
    fork = tmp_path / "fork"
    (fork / "chapters" / "01-x").mkdir(parents=True)
    (fork / "solutions").mkdir()
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["repository"]["url"] = "https://github.com/someone/beyond-bert-fork"
    (fork / "_config.yml").write_text(yaml.safe_dump(config))
    for target in (fork / "chapters" / "01-x" / "page.ipynb", fork / "solutions" / "01-x.ipynb"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"),
                                             nbformat.v4.new_code_cell("import beyondbert")])
        nbformat.write(nb, target)
        shutil.copy(target, target.with_suffix(".orig"))
    cell = expected_cell(fork)
    assert "someone/beyond-bert-fork" in cell.source
    for target in notebooks(fork):
        assert sync_notebook(target, cell) is True
        assert sync_notebook(target, cell) is False  # idempotent
        cells = nbformat.read(target, as_version=4).cells
        assert [c.source for c in cells][::2] == ["# Title", "import beyondbert"]
        assert cells[1].source == cell.source


def test_config_without_repository_is_a_clear_error(tmp_path):
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="repository.url"):
        repository(tmp_path)


def fresh_venv(folder: Path) -> Path:
    """A new virtual environment with nothing but pip; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    return folder / "bin" / "python"


def run(args: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}")
    return result


def first_chapter_page() -> Path:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return REPO / f"{next(f for f in files if f.startswith('chapters/'))}.ipynb"


@pytest.mark.xdist_group("binder")
def test_binder_environment_executes_a_chapter(tmp_path):
    """repo2docker's steps: pip install -r binder/requirements.txt, run binder/postBuild."""
    python = fresh_venv(tmp_path / "venv")
    env = {**os.environ, **OFFLINE, "PATH": f"{python.parent}:{os.environ['PATH']}",
           "BEYONDBERT_RESULTS_DIR": str(tmp_path / "results"), "MPLBACKEND": "Agg"}
    env.pop("VIRTUAL_ENV", None)
    run([python, "-m", "pip", "install", "--quiet", "-r", REPO / "binder" / "requirements.txt"],
        cwd=REPO, env=env)
    # postBuild installs "." into the environment: copy the checkout so nothing is written to it
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        ".venv", "_build", ".git", "artifacts", "course", "*.egg-info", "__pycache__"))
    run(["bash", checkout / "binder" / "postBuild"], cwd=checkout, env=env)
    shutil.rmtree(checkout / "lib")  # the chapter must run from the installed package alone
    page = checkout / first_chapter_page().relative_to(REPO)
    run([python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=600", "--output-dir", tmp_path / "out", page],
        cwd=page.parent, env=env)
    executed = nbformat.read(tmp_path / "out" / page.name, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors and any(c.get("outputs") for c in executed.cells if c.cell_type == "code")


@pytest.mark.xdist_group("colab")
def test_install_cell_installs_the_course_in_a_bare_python(tmp_path):
    """The install cell, pointed at this checkout, gives a bare Python a working course library."""
    python = fresh_venv(tmp_path / "venv")
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        ".venv", "_build", ".git", "artifacts", "course", "*.egg-info", "__pycache__"))
    cell = install_cell_source(str(checkout))
    assert re.search(r"^COURSE_REPO, COURSE_BRANCH = ", cell, re.M)
    probe = (cell + "\n\nimport beyondbert.models, beyondbert.pooling\n"
             "tokenizer, model = beyondbert.models.load_encoder()\n"
             "batch = tokenizer(['a launch button that works'], return_tensors='pt')\n"
             "out = model(**batch).last_hidden_state\n"
             "print('vector', beyondbert.pooling.mean_pool(out, batch['attention_mask']).shape)\n")
    env = {**os.environ, **OFFLINE}
    env.pop("VIRTUAL_ENV", None)
    before = subprocess.run([python, "-c", "import beyondbert"], capture_output=True)
    assert before.returncode != 0, "the fresh environment must start without the course library"
    result = run([python, "-c", probe], cwd=tmp_path, env=env)
    assert "vector torch.Size([1, 384])" in result.stdout
