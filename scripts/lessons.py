"""``make lessons``: re-run every chapter page with other seeds and tabulate its lessons.

Each page executes with ``BEYONDBERT_PAGE_SEED`` set to each seed (1, 2, 3 unless given), two
pages at a time on one PyTorch thread each. With the variable set, :func:`beyondbert.lessons.lesson`
records a failed claim instead of raising, so one run of a page reports all its lessons. The table
(printed, and written to ``_build/lessons.md``) gives each lesson, the seeds on which it held, and
the figures behind it per seed. Exit status 1 when a lesson failed on some seed or a page failed.

    python scripts/lessons.py [--seeds 1 2 3] [--jobs 2] [chapters/NN-slug/page.ipynb ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "_build" / "lessons"


def run_page(page: Path, seed: int) -> tuple[Path, int, float, str]:
    """Execute ``page`` with ``seed``; returns (page, seed, seconds, error or "")."""
    folder = WORK / f"{page.parent.name}--{page.stem}--seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lessons.jsonl").unlink(missing_ok=True)
    env = dict(os.environ, BEYONDBERT_PAGE_SEED=str(seed), BEYONDBERT_RESULTS_DIR=str(folder),
               BEYONDBERT_CACHE_DIR=str(WORK / "cache"), BEYONDBERT_TORCH_THREADS="1",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=1800", "--output-dir", str(folder),
         "--output", page.name, str(page)],
        env=env, capture_output=True, text=True)
    error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]
    return page, seed, time.perf_counter() - start, error


def read_lessons(page: Path, seed: int) -> list[dict]:
    path = WORK / f"{page.parent.name}--{page.stem}--seed{seed}" / "lessons.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(pages: list[Path], seeds: list[int], errors: dict) -> tuple[str, bool]:
    """The Markdown table of every lesson and whether all held on every seed."""
    lines = ["| page | lesson | held | figures per seed |", "|---|---|---|---|"]
    all_held = True
    for page in pages:
        claims: dict[str, dict[int, dict]] = {}
        for seed in seeds:
            for row in read_lessons(page, seed):
                claims.setdefault(row["claim"], {})[seed] = row
        name = f"{page.parent.name}/{page.stem}"
        for seed in seeds:
            if (page, seed) in errors:
                all_held = False
                lines.append(f"| {name} | **page failed on seed {seed}** | | {errors[page, seed]} |")
        for claim, by_seed in claims.items():
            held = sum(1 for row in by_seed.values() if row["held"])
            all_held &= held == len(seeds)
            figures = "; ".join(
                f"seed {s}: " + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                          for k, v in by_seed[s]["evidence"].items())
                + ("" if by_seed[s]["held"] else " (FAILED)")
                for s in seeds if s in by_seed)
            lines.append(f"| {name} | {claim} | {held}/{len(seeds)} | {figures} |")
    return "\n".join(lines), all_held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    pages = [p.resolve() for p in args.pages] or sorted((ROOT / "chapters").glob("*/*.ipynb"))
    missing = [str(p) for p in pages if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    if any(s < 0 for s in args.seeds) or args.jobs < 1:
        parser.error("seeds must be >= 0 and --jobs >= 1")
    runs = [(page, seed) for seed in args.seeds for page in pages]
    errors = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for page, seed, seconds, error in pool.map(lambda r: run_page(*r), runs):
            status = f"FAILED: {error}" if error else "ok"
            print(f"{page.parent.name}/{page.stem} seed {seed}: {seconds:.1f} s, {status}", flush=True)
            if error:
                errors[page, seed] = error
    text, all_held = table(pages, args.seeds, errors)
    (WORK / "..").resolve().mkdir(parents=True, exist_ok=True)
    (ROOT / "_build" / "lessons.md").write_text(text + "\n")
    print(text)
    return 0 if all_held else 1


if __name__ == "__main__":
    sys.exit(main())
