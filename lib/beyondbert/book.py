"""Sphinx extension for the course book (listed in ``_config.yml``).

1. Offline math: MathJax 3 is served from the book's own ``_static/mathjax`` (copied from the PyPI
   package ``django-static-mathjax``), so no page needs a CDN to show its equations.
2. A clean browser console: scripts registered twice (sphinx-thebe adds its configuration twice
   under Jupyter Book 1, "Identifier 'THEBE_JS_URL' has already been declared") are written once,
   and the theme starts in light mode instead of an empty mode ("Got invalid theme mode").
3. Measured vs published: the ``results-table`` directive renders the figures the chapters
   recorded with :mod:`beyondbert.results`: ``published`` — ours beside a paper's number (the
   ratio only where quantity and setting are the same, else "settings differ"); ``quoted`` — a
   paper's number the page quotes without reproducing it; ``other`` — each chapter's other
   figures, folded, in page and heading order. Chapters appear under their titles; each figure
   links to the heading of the chapter page that measured it. A chapter that recorded nothing, or a record naming a heading no page has,
   is a build warning (an error under ``-W``).
4. Prose roles for numbers that are not measured on the page: ``{paper}`92.5 %``` (quoted from a
   paper) and ``{fact}`448``` (a fixed fact); they render as text, and the prose-number test
   (``tests/test_prose_numbers.py``) accepts digits inside them (measured numbers come from glue).
5. Alt text: a figure shown with :func:`beyondbert.plotting.show` carries its alt text in the PNG;
   it becomes the image's ``alt``. A notebook figure without one is a build warning.
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


# The results tables fit the content column: fixed layout, long words wrap, no horizontal scroll.
RESULTS_CSS = """\
table.results-table { table-layout: fixed; width: 100%; }
table.results-table td, table.results-table th { overflow-wrap: anywhere; white-space: normal; }
details.results-chapter { margin: 0.5em 0; }
details.results-chapter > summary { cursor: pointer; font-weight: 600; }
"""


def _write_css(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        (Path(app.outdir) / "_static" / "beyondbert.css").write_text(RESULTS_CSS)


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


def _text_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{paper}`…``` and ``{fact}`…```: the text itself, marked with a class for styling."""
    return [nodes.inline(rawtext, text, classes=[f"{name}-figure"])], []


def _image_alt_text(app: Sphinx, doctree: nodes.document) -> None:
    """Give every notebook figure the alt text :func:`beyondbert.plotting.show` stored in it."""
    from .plotting import alt_text

    docname = app.env.docname
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        uri = image.get("uri", "")
        if not uri.endswith(".png") or "://" in uri:
            continue
        # Sphinx's image collector may already have made the URI relative to the source folder.
        path = str(Path(app.srcdir) / uri.lstrip("/"))
        if not Path(path).is_file():
            _, path = app.env.relfn2path(uri, docname)
        try:
            text = alt_text(path)
        except OSError:
            text = None
        if text:
            image["alt"] = text
        elif "jupyter_execute" in path or "jupyter_execute" in uri:
            logger.warning(f"a figure on {docname} has no alt text: show it with "
                           f"beyondbert.plotting.show(fig, alt=...)", location=image)


class results_placeholder(nodes.General, nodes.Element):
    """Replaced by the results table once every chapter has executed."""


class ResultsTable(SphinxDirective):
    """``{results-table} published`` (ours beside a paper's number), ``quoted`` (a paper's number
    only) or ``other`` (measured figures with no paper's number)."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        kind = self.arguments[0] if self.arguments else "published"
        if kind not in {"published", "quoted", "other"}:
            raise self.error(f"results-table takes 'published', 'quoted' or 'other', got {kind!r}")
        return [results_placeholder(kind=kind)]


def _load_rows(folder: Path) -> dict[str, dict[str, dict]]:
    """``{chapter: {name: row}}`` of every results file, chapters in course order."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


# The results page names chapters by their titles (the folder names are slugs).
CHAPTER_TITLES = {
    "01-encoders-and-bert": "1 · Encoders and BERT",
    "02-roberta-and-modern-encoders": "2 · Tokenizers, RoBERTa and the modern encoder",
    "03-sentence-bert": "3 · Sentence-BERT",
    "04-search": "4 · Search: re-ranking, ColBERT, Matryoshka, quantized embeddings",
    "05-finetuning-distillation-lora": "5 · Fine-tuning, distillation and LoRA",
    "06-quantization": "6 · Quantization",
    "07-decoders-and-rlhf": "7 · Decoders, in-context learning and RLHF",
}


def chapter_title(chapter: str) -> str:
    """``5 · Fine-tuning, distillation and LoRA`` for ``05-finetuning-distillation-lora``."""
    if chapter in CHAPTER_TITLES:
        return CHAPTER_TITLES[chapter]
    number, _, slug = chapter.partition("-")
    return f"{number.lstrip('0')} · {slug.replace('-', ' ').capitalize()}"


# Units the reader knows by another name: a share is a percentage.
_PERCENT_UNITS = {"share", "fraction", "rate", "accuracy"}


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if unit in _PERCENT_UNITS:
        return f"{100 * x:.4g} %"
    return f"{x:.4g} {unit}".strip()


# Sphinx turns straight quotes and dashes into typographic ones in titles ("smart quotes").
_PLAIN = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def _title_key(title: str) -> str:
    return " ".join(title.translate(_PLAIN).split())


def _page_order(app: Sphinx) -> dict[str, int]:
    """``{docname: position}`` in the table of contents."""
    import yaml

    toc = yaml.safe_load((Path(app.srcdir) / "_toc.yml").read_text())
    files = [entry["file"] for part in toc.get("parts", [])
             for entry in part.get("chapters", []) if "file" in entry]
    return {name: index for index, name in enumerate(files)}


def _section_index(app: Sphinx) -> dict[tuple[str, str], tuple[str, str, tuple[int, int]]]:
    """``{(chapter, section title): (docname, anchor, (page position, heading position))}``."""
    index, order = {}, _page_order(app)
    for docname in sorted(app.env.found_docs):
        parts = docname.split("/")
        if len(parts) < 3 or parts[0] != "chapters":
            continue
        for position, section in enumerate(app.env.get_doctree(docname).findall(nodes.section)):
            title = section.next_node(nodes.title)
            if title is not None and section["ids"]:
                index.setdefault((parts[1], _title_key(title.astext())),
                                 (docname, section["ids"][0],
                                  (order.get(docname, len(order)), position)))
    return index


class _Links:
    """Resolves a record's ``section`` to a link into the chapter page that measured it."""

    def __init__(self, app: Sphinx, docname: str):
        self.app, self.docname, self.index = app, docname, _section_index(app)

    def _target(self, chapter: str, row: dict):
        return self.index.get((chapter, _title_key(row.get("section") or "")))

    def order(self, chapter: str, name: str, row: dict) -> tuple:
        """Sort key: page, then heading, then name (figures without a heading last)."""
        target = self._target(chapter, row)
        return (*(target[2] if target else (10**6, 0)), name)

    def paragraph(self, chapter: str, name: str, row: dict) -> nodes.paragraph:
        text = row.get("label") or name
        para = nodes.paragraph()
        target = self._target(chapter, row)
        if target is None:
            if row.get("section"):
                logger.warning(f"results: {chapter}/{name} names section {row['section']!r}, "
                               f"which no page of chapters/{chapter} has", location=self.docname)
            para += nodes.Text(text)
            return para
        uri = self.app.builder.get_relative_uri(self.docname, target[0]) + "#" + target[1]
        para += nodes.reference("", text, refuri=uri, internal=True)
        return para


def _details(summary: str, text: str | None) -> nodes.Node:
    """A short cell that unfolds to the full text (a long setting must not make a tall row)."""
    if not text:
        return nodes.paragraph(text="—")
    if len(text) <= 60:
        return nodes.paragraph(text=text)
    from html import escape

    return nodes.raw("", f"<details><summary>{escape(summary)}</summary>{escape(text)}</details>",
                     format="html")


def _table(headers: list[str], widths: list[int], rows: list[list], classes: list[str]) -> nodes.table:
    """A docutils table; a cell is a string or a ready node."""
    table = nodes.table(classes=["results-table", *classes])
    group = nodes.tgroup(cols=len(headers))
    table += group
    group.extend(nodes.colspec(colwidth=w) for w in widths)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    for parent, cells in [(head, headers)] + [(body, r) for r in rows]:
        row = nodes.row()
        for cell in cells:
            row += nodes.entry("", cell if isinstance(cell, nodes.Node)
                               else nodes.paragraph(text=cell))
        parent += row
    return table


def _kind(row: dict) -> str:
    """``quoted`` (a paper's number only), ``compared`` (ours beside theirs) or ``measured``."""
    if row.get("published") is None:
        return "measured"
    return "quoted" if row.get("value") is None else "compared"


def _sorted(chapter: str, figures: dict[str, dict], links: _Links, kind: str) -> list:
    chosen = [(n, r) for n, r in figures.items() if _kind(r) == kind]
    return sorted(chosen, key=lambda item: links.order(chapter, *item))


def _compared_tables(rows: dict[str, dict[str, dict]], links: _Links) -> list[nodes.Node]:
    out = []
    for chapter, figures in rows.items():
        compared = _sorted(chapter, figures, links, "compared")
        if not compared:
            continue
        body = []
        for name, r in compared:
            unit = r.get("unit", "")
            same = bool(r.get("comparable")) and r["published"]
            ratio = _fmt(r["value"] / r["published"]) if same else "settings differ"
            setting = f"Theirs: {r.get('setting') or '—'}. Ours: {r.get('our_setting') or '—'}."
            body.append([links.paragraph(chapter, name, r), r.get("source") or "",
                         _details("settings", setting), _fmt(r["published"], unit),
                         _fmt(r["value"], unit), ratio])
        out.append(nodes.rubric(text=chapter_title(chapter)))
        out.append(_table(["figure", "paper", "settings", "theirs", "ours", "ours / theirs"],
                          [26, 20, 14, 12, 12, 16], body, ["results-published"]))
    return out


def _quoted_tables(rows: dict[str, dict[str, dict]], links: _Links) -> list[nodes.Node]:
    out = []
    for chapter, figures in rows.items():
        quoted = _sorted(chapter, figures, links, "quoted")
        if not quoted:
            continue
        body = [[links.paragraph(chapter, n, r), r.get("source") or "",
                 _details("their setting", r.get("setting")), _fmt(r["published"], r.get("unit", ""))]
                for n, r in quoted]
        out.append(nodes.rubric(text=chapter_title(chapter)))
        out.append(_table(["figure", "paper", "their setting", "their number"], [34, 26, 24, 16],
                          body, ["results-quoted"]))
    return out


def _other_tables(rows: dict[str, dict[str, dict]], links: _Links) -> list[nodes.Node]:
    out = []
    for chapter, figures in rows.items():
        others = _sorted(chapter, figures, links, "measured")
        if not others:
            continue
        body = [[links.paragraph(chapter, n, r), _fmt(r["value"], r.get("unit") or ""),
                 _details("setting", r.get("our_setting"))] for n, r in others]
        out.append(nodes.raw("", f"<details class=\"results-chapter\"><summary>"
                                 f"{chapter_title(chapter)}: {len(others)} figures</summary>",
                             format="html"))
        out.append(_table(["figure", "measured", "setting"], [50, 20, 30], body,
                          ["results-other"]))
        out.append(nodes.raw("", "</details>", format="html"))
    return out


_TABLES = {"published": _compared_tables, "quoted": _quoted_tables, "other": _other_tables}


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
    rows, links = _load_rows(folder), _Links(app, docname)
    for placeholder in placeholders:
        placeholder.replace_self(_TABLES[placeholder.get("kind", "published")](rows, links))


def _always_rewrite_results(app, env, added, changed, removed) -> list[str]:
    return [d for d in env.found_docs if d == "results"]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _use_local_mathjax)
    app.connect("config-inited", _theme_defaults)
    app.connect("html-page-context", _drop_duplicate_scripts)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _write_css)
    app.add_css_file("beyondbert.css")
    app.add_role("paper", _text_role)
    app.add_role("fact", _text_role)
    app.connect("doctree-read", _image_alt_text)
    app.add_node(results_placeholder)
    app.add_directive("results-table", ResultsTable)
    app.connect("doctree-resolved", _fill_results)
    app.connect("env-get-outdated", _always_rewrite_results)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
