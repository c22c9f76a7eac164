"""A clean repository: no large committed files, generated outputs never committed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT = 2**20  # 1 MiB
# Data the course ships inside the library may be larger; it must carry its licence beside it.
ALLOWED_LARGE = ("lib/beyondbert/data/",)
GENERATED = ("_build", "artifacts", "course", ".venv")


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"not a git checkout ({result.stderr.strip()})")
    return result.stdout


def test_no_large_files_are_committed():
    tracked = [line for line in git("ls-files", "-z").split("\0") if line]
    large = {p: (REPO / p).stat().st_size for p in tracked
             if (REPO / p).is_file() and (REPO / p).stat().st_size > LIMIT}
    unexpected = {p: s for p, s in large.items() if not p.startswith(ALLOWED_LARGE)}
    assert not unexpected, (
        f"files over {LIMIT:,d} bytes are committed (a wheel, a build output, data?): "
        + ", ".join(f"{p} ({s:,d} bytes)" for p, s in sorted(unexpected.items())))
    for path in large:  # allowed data: its licence lies beside it
        folder = (REPO / path).parent
        assert any(folder.glob("LICENSE*")), f"{path} is shipped without a LICENSE file beside it"


@pytest.mark.parametrize("folder", GENERATED)
def test_generated_outputs_are_ignored(folder):
    probe = f"{folder}/probe.txt"
    result = subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO)
    assert result.returncode == 0, f"{folder}/ is not in .gitignore: generated files could be committed"
    assert not git("ls-files", folder).strip(), f"files under {folder}/ are committed"
