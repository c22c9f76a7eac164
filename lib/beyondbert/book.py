"""Sphinx extension for the course book (listed in ``_config.yml``).

1. Offline math: MathJax 3 is served from the book's own ``_static/mathjax`` (copied from the PyPI
   package ``django-static-mathjax``), so no page needs a CDN to show its equations.
2. A clean browser console: scripts registered twice (sphinx-thebe adds its configuration twice
   under Jupyter Book 1, "Identifier 'THEBE_JS_URL' has already been declared") are written once,
   and the theme starts in light mode instead of an empty mode ("Got invalid theme mode").
3. Measured vs published: the ``results-table`` directive renders every figure the chapters
   recorded with :func:`beyondbert.results.record` in one table (paper, setting, their number,
   ours, ratio). A chapter that recorded nothing is a build warning (an error under ``-W``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from .results import results_dir

logger = logging.getLogger(__name__)

MATHJAX_ENTRY = "mathjax/tex-mml-chtml.js"
# The parts of MathJax's es5 build that tex-mml-chtml.js loads (fonts, TeX extensions, menu, a11y).
MATHJAX_PARTS = ("tex-mml-chtml.js", "output/chtml", "input", "ui", "a11y", "sre")


def _mathjax_source() -> Path:
    import mathjax  # the import name of django-static-mathjax

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _use_local_mathjax(app: Sphinx, config) -> None:
    config.mathjax_path = MATHJAX_ENTRY


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)


def _theme_defaults(app: Sphinx, config) -> None:
    config.html_context.setdefault("default_mode", "light")


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", str(script)) or ""  # inline scripts: None or ""
    return (filename, tuple(sorted(attributes.items())))


def _drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                            doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


class results_placeholder(nodes.General, nodes.Element):
    """Replaced by the results table once every chapter has executed."""


class ResultsTable(SphinxDirective):
    """``{results-table}``: all recorded figures, one row each."""

    def run(self) -> list[nodes.Node]:
        return [results_placeholder()]


def _load_rows(folder: Path) -> list[tuple[str, str, dict]]:
    rows = []
    for path in sorted(folder.glob("*.json")):
        for name, row in sorted(json.loads(path.read_text()).items()):
            rows.append((path.stem, name, row))
    return rows


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _table(rows: list[tuple[str, str, dict]]) -> nodes.table:
    headers = ["chapter", "figure", "ours", "unit", "published", "source", "setting", "ours / published"]
    table = nodes.table(classes=["results-table"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in headers)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body

    def add_row(parent: nodes.Element, cells: list[str]) -> None:
        row = nodes.row()
        for cell in cells:
            row += nodes.entry("", nodes.paragraph(text=cell))
        parent += row

    add_row(head, headers)
    for chapter, name, r in rows:
        ratio = r["value"] / r["published"] if r.get("published") else None
        add_row(body, [chapter, name, _fmt(r["value"]), r.get("unit") or "", _fmt(r.get("published")),
                       r.get("source") or "", r.get("setting") or "", _fmt(ratio)])
    return table


def _fill_results(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    placeholders = list(doctree.findall(results_placeholder))
    if not placeholders:
        return
    folder = results_dir(Path(app.srcdir))
    recorded = {p.stem for p in folder.glob("*.json")}
    for chapter_dir in sorted((Path(app.srcdir) / "chapters").glob("[0-9]*")):
        if chapter_dir.name not in recorded:
            logger.warning(f"chapter {chapter_dir.name} recorded no figures in {folder}",
                           location=docname)
    for placeholder in placeholders:
        placeholder.replace_self(_table(_load_rows(folder)))


def _always_rewrite_results(app, env, added, changed, removed) -> list[str]:
    return [d for d in env.found_docs if d == "results"]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _use_local_mathjax)
    app.connect("config-inited", _theme_defaults)
    app.connect("html-page-context", _drop_duplicate_scripts)
    app.connect("build-finished", _copy_mathjax)
    app.add_node(results_placeholder)
    app.add_directive("results-table", ResultsTable)
    app.connect("doctree-resolved", _fill_results)
    app.connect("env-get-outdated", _always_rewrite_results)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
