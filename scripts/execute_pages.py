"""Execute the book's notebooks several at a time into Jupyter Book's execution cache.

    python scripts/execute_pages.py [--jobs N] [--book DIR] [PAGE ...]

Jupyter Book 1 (myst-nb, ``execute_notebooks: cache``) executes the pages one after another.
The course's pages run their tiny models on one PyTorch thread, so on 2 cores that leaves one
core idle. This script executes every page of ``_toc.yml`` that the cache does not hold yet,
``--jobs`` at a time (default: the number of CPU cores), each in its own process and kernel, on
one thread (``OMP_NUM_THREADS=1``, ``BEYONDBERT_TORCH_THREADS=1``), and stores each executed
notebook in the jupyter-cache of ``_config.yml`` exactly as myst-nb would (same cache, same
hash of the code cells, same ``execution_seconds`` record). The ``jupyter-book build`` that
follows then finds every page in the cache and executes nothing.

Pages start longest first (the times of the last run, kept in ``_build/execution-times.json``;
pages never timed first, in table-of-contents order). A page that fails is not cached: its
traceback is printed at the end and the script exits 1 (after the other pages ran), so the
build stops with every failing page's error. Work shared between pages goes through
``beyondbert.cache.cached``, which locks per entry, and ``beyondbert.results.record``, which
locks per chapter, so the order pages run in changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath

import yaml

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "BEYONDBERT_TORCH_THREADS": "1"}
TIMES_FILE = "execution-times.json"


def toc_files(toc: dict | list) -> list[str]:
    """Every ``file:`` of a ``_toc.yml`` (root first), in reading order."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def book_settings(book: Path) -> dict:
    """The execution settings of ``_config.yml`` the way Jupyter Book passes them to myst-nb."""
    config = yaml.safe_load((book / "_config.yml").read_text()) or {}
    execute = config.get("execute") or {}
    sphinx = ((config.get("sphinx") or {}).get("config") or {})
    mode = execute.get("execute_notebooks", sphinx.get("nb_execution_mode", "auto"))
    cache = execute.get("cache") or sphinx.get("nb_execution_cache_path") or ""
    return {
        "mode": "off" if mode is False else mode,
        "cache": Path(cache) if cache else Path("_build") / ".jupyter_cache",
        "timeout": execute.get("timeout", sphinx.get("nb_execution_timeout", 30)),
        "allow_errors": execute.get("allow_errors",
                                    sphinx.get("nb_execution_allow_errors", False)),
        "in_temp": execute.get("run_in_temp", sphinx.get("nb_execution_in_temp", False)),
        "exclude": list(execute.get("exclude_patterns")
                        or sphinx.get("nb_execution_excludepatterns") or []),
    }


def book_pages(book: Path, settings: dict) -> list[Path]:
    """The notebooks (``.ipynb``) of the table of contents that the build would execute."""
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    pages = []
    for name in toc_files(toc):
        path = book / name
        if path.suffix != ".ipynb":
            path = path.with_name(path.name + ".ipynb")
        if not path.is_file():
            continue  # a Markdown page: nothing to execute here (myst-nb handles MyST notebooks)
        posix = PurePosixPath(path.resolve().as_posix())
        if any(posix.match(pattern) for pattern in settings["exclude"]):
            continue
        pages.append(path.resolve())
    return pages


def execute_one(notebook: Path, output: Path, timeout: int | None, allow_errors: bool,
                in_temp: bool) -> int:
    """Child process: execute ``notebook`` as myst-nb does, write the executed notebook and a
    JSON report (seconds, CPU seconds, error and traceback) next to ``output``."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as temp:
        cwd = temp if in_temp else str(notebook.parent)
        result = single_nb_execution(nb, cwd=cwd, timeout=timeout, allow_errors=allow_errors,
                                     meta_override=True)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                 resource.RUSAGE_CHILDREN)]
    nbformat.write(result.nb, output)
    output.with_suffix(".json").write_text(json.dumps({
        "seconds": result.time,
        "cpu_seconds": sum(u.ru_utime + u.ru_stime for u in usage),
        "error": type(result.err).__name__ if result.err else None,
        "traceback": result.exc_string,
    }))
    return 0


class Runner:
    """Runs pages in child processes and stores results in the cache (one writer: this process)."""

    def __init__(self, book: Path, settings: dict, jobs: int, temp: Path):
        from jupyter_cache import get_cache

        self.book, self.settings, self.jobs, self.temp = book, settings, jobs, temp
        cache_path = settings["cache"]
        self.cache = get_cache(str(cache_path if cache_path.is_absolute()
                                   else (book / cache_path).resolve()))
        self.db_lock = threading.Lock()
        self.print_lock = threading.Lock()

    def is_cached(self, page: Path) -> bool:
        import nbformat

        try:
            self.cache.match_cache_notebook(nbformat.read(page, as_version=4))
        except KeyError:
            return False
        return True

    def run(self, page: Path) -> dict:
        from jupyter_cache.base import CacheBundleIn
        from jupyter_cache.cache.db import NbProjectRecord

        output = self.temp / f"{abs(hash(str(page)))}-{page.name}"
        env = dict(os.environ)
        env.update({k: v for k, v in ONE_THREAD.items() if k not in os.environ})
        args = [sys.executable, __file__, "--child", str(page), str(output),
                json.dumps([self.settings["timeout"], bool(self.settings["allow_errors"]),
                            bool(self.settings["in_temp"])])]
        start = time.perf_counter()
        done = subprocess.run(args, env=env, cwd=self.book, capture_output=True, text=True)
        wall = time.perf_counter() - start
        report_file = output.with_suffix(".json")
        if done.returncode != 0 or not report_file.is_file():
            report = {"seconds": wall, "cpu_seconds": None, "error": "ExecutorFailed",
                      "traceback": f"the executing process exited {done.returncode}:\n"
                                   f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"}
        else:
            report = json.loads(report_file.read_text())
        with self.db_lock:
            record = self.cache.add_nb_to_project(str(page))
            NbProjectRecord.remove_tracebacks([record.pk], self.cache.db)
            if report["error"]:
                NbProjectRecord.set_traceback(record.uri, report["traceback"], self.cache.db)
            else:
                import nbformat

                self.cache.cache_notebook_bundle(
                    CacheBundleIn(nbformat.read(output, as_version=4), record.uri,
                                  data={"execution_seconds": report["seconds"]}),
                    check_validity=False, overwrite=True)
        report["wall"] = wall
        return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        timeout, allow_errors, in_temp = json.loads(argv[3])
        return execute_one(Path(argv[1]), Path(argv[2]), timeout, allow_errors, in_temp)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path,
                        help="only these notebooks (default: every page of _toc.yml)")
    parser.add_argument("--book", type=Path, default=Path("."), help="the book's folder")
    parser.add_argument("--jobs", "-j", type=int,
                        default=int(os.environ.get("BEYONDBERT_BUILD_JOBS") or os.cpu_count()
                                    or 1),
                        help="pages executed at a time (default: $BEYONDBERT_BUILD_JOBS, else "
                             "the number of CPU cores)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    book = args.book.resolve()
    settings = book_settings(book)
    if settings["mode"] != "cache":
        print(f"execute_pages: execute_notebooks is {settings['mode']!r}, not 'cache': "
              f"nothing to do (Jupyter Book executes the pages itself)")
        return 0
    pages = book_pages(book, settings)
    if args.pages:
        wanted = {p.resolve() for p in args.pages}
        pages = [p for p in pages if p in wanted]
        if missing := wanted - set(pages):
            parser.error(f"not pages of the book's _toc.yml: {sorted(map(str, missing))}")

    times_file = book / "_build" / TIMES_FILE
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}
    rel = {p: p.relative_to(book).as_posix() for p in pages}

    with tempfile.TemporaryDirectory(prefix="execute-pages-") as temp:
        runner = Runner(book, settings, args.jobs, Path(temp))
        todo = [p for p in pages if not runner.is_cached(p)]
        # longest first, so the last page to start is a short one; never-timed pages first
        todo.sort(key=lambda p: -times.get(rel[p], float("inf")))
        print(f"execute_pages: {len(todo)} of {len(pages)} pages to execute, {args.jobs} at a "
              f"time, one thread each (the rest are in the cache)", flush=True)
        failed: dict[Path, dict] = {}
        start = time.perf_counter()
        with ThreadPoolExecutor(max(1, min(args.jobs, len(todo) or 1))) as pool:
            futures = {pool.submit(runner.run, page): page for page in todo}
            for n, future in enumerate(as_completed(futures), 1):
                page = futures[future]
                report = future.result()
                cpu = report["cpu_seconds"]
                status = "FAILED" if report["error"] else "ok"
                print(f"  [{n:>2}/{len(todo)}] {report['wall']:6.1f} s wall"
                      f"{'' if cpu is None else f', {cpu:6.1f} s CPU'}  {status:6} {rel[page]}",
                      flush=True)
                if report["error"]:
                    failed[page] = report
                else:
                    times[rel[page]] = round(report["wall"], 1)
        wall = time.perf_counter() - start

    if todo:
        times_file.parent.mkdir(parents=True, exist_ok=True)
        times_file.write_text(json.dumps(times, indent=2, sort_keys=True))
        total = sum(times.get(rel[p], 0) for p in todo if p not in failed)
        print(f"execute_pages: {len(todo) - len(failed)} pages executed in {wall:.1f} s "
              f"(their own times add up to {total:.1f} s)", flush=True)
    for page, report in failed.items():
        print(f"\n=== {rel[page]} failed ({report['error']}) ===\n{report['traceback']}",
              file=sys.stderr)
    if failed:
        print(f"execute_pages: {len(failed)} page(s) failed: "
              f"{', '.join(rel[p] for p in failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
