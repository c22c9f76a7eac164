"""Record the figures a chapter measures, so no measured number is typed into prose by hand.

A chapter calls :func:`record` while it executes; each call adds one row to
``_build/results/<chapter>.json`` (the book's results page renders them all, beside the published
number each one reproduces, when there is one).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path


def results_dir(start: Path | None = None) -> Path:
    """``$BEYONDBERT_RESULTS_DIR``, else ``_build/results`` of the book (the folder with _toc.yml)."""
    if os.environ.get("BEYONDBERT_RESULTS_DIR"):
        return Path(os.environ["BEYONDBERT_RESULTS_DIR"])
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "_build" / "results"
    raise FileNotFoundError(
        f"no _toc.yml in {here} or its parents: run inside the book, or set BEYONDBERT_RESULTS_DIR"
    )


def _store(chapter: str, name: str, row: dict) -> None:
    path = results_dir() / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pages of one chapter may execute at the same time: read, change and write under a lock.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(path.read_text()) if path.exists() else {}
        rows[name] = row
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(rows, indent=2, sort_keys=True))
        partial.replace(path)


def record(
    chapter: str,
    name: str,
    value: float,
    unit: str = "",
    *,
    label: str | None = None,
    section: str | None = None,
    published: float | None = None,
    source: str | None = None,
    setting: str | None = None,
    our_setting: str | None = None,
    comparable: bool = False,
) -> float:
    """Store one measured figure of ``chapter`` and return ``value`` (so it can be printed).

    ``label`` is the readable name the results page shows ("Spearman ρ, mean pooling, Lee");
    ``section`` the title of the chapter heading under which it was measured (the page links
    there). ``published``/``source``/``setting`` name the paper's number this figure is set beside,
    and the paper's setting; ``our_setting`` says ours. ``comparable=True`` only where the quantity
    and the setting are the same (an 80/10/10 share, a parameter count, a format's limit): only then
    does the results page divide ours by theirs; otherwise it says "settings differ".
    A paper's number that is quoted but not reproduced goes through :func:`quote` instead.
    """
    if not chapter or not name:
        raise ValueError("chapter and name must be non-empty strings")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{chapter}/{name}: value must be finite, got {value}")
    if not label:
        raise ValueError(f"{chapter}/{name}: give a readable label= (what the results page shows)")
    if (published is None) != (source is None):
        raise ValueError(f"{chapter}/{name}: a published number and its source (paper, year) "
                         f"go together; got published={published!r}, source={source!r}")
    if comparable and published is None:
        raise ValueError(f"{chapter}/{name}: comparable=True needs the published number it is "
                         f"compared with")
    _store(chapter, name, {"value": value, "unit": unit, "label": label, "section": section,
                           "published": published, "source": source, "setting": setting,
                           "our_setting": our_setting, "comparable": bool(comparable)})
    return value


def quote(chapter: str, name: str, published: float, unit: str = "", *, label: str, source: str,
          setting: str, section: str | None = None) -> float:
    """Store a paper's number the page quotes but does not reproduce; return it.

    The results page lists it as quoted: the paper's number and setting, no "ours", no ratio.
    """
    if not chapter or not name or not label or not source or not setting:
        raise ValueError(f"{chapter}/{name}: a quoted figure needs a label, its source and its "
                         f"setting")
    published = float(published)
    if not math.isfinite(published):
        raise ValueError(f"{chapter}/{name}: published must be finite, got {published}")
    _store(chapter, name, {"value": None, "unit": unit, "label": label, "section": section,
                           "published": published, "source": source, "setting": setting,
                           "our_setting": None, "comparable": False})
    return published


class _GluedText:
    """A value whose plain-text form is exactly ``text`` (a glued ``str`` would show its quotes)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def glue_text(name: str, value: object, fmt: str = "{:.3f}") -> str:
    """Make ``value`` (formatted with ``fmt``) available to the page's prose as ``{glue:text}`name```.

    Returns the formatted text. Use it for a measured number the prose quotes but the results page
    does not need (a count, an intermediate); :func:`page_recorder` records and glues at once.
    """
    if not name or not str(name).replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"glue name must be letters, digits, '_' or '-', got {name!r}")
    text = fmt.format(value)
    from myst_nb import glue

    glue(name, _GluedText(text), display=False)
    return text


def page_recorder(chapter: str, section: str | None = None):
    """A page's recording helper: ``rec(name, value, unit, label=..., fmt=...)`` records the figure
    for the results page (:func:`record`) and glues it under ``name`` for the prose;
    ``rec.quote(name, published, unit, label=..., source=..., setting=...)`` does the same for a
    paper's number the page quotes without reproducing it (:func:`quote`).

    ``section`` is the default heading the figures are under; pass ``section=`` to a call (or set
    ``rec.section = "..."``) when the page moves on to another heading.
    """
    def rec(name: str, value: float, unit: str = "", *, label: str, fmt: str = "{:.3f}",
            section: str | None = None, **paper: object) -> float:
        value = record(chapter, name, value, unit, label=label,
                       section=section or rec.section, **paper)
        glue_text(name, value, fmt)
        return value

    def quoted(name: str, published: float, unit: str = "", *, label: str, source: str,
               setting: str, fmt: str = "{:g}", section: str | None = None) -> float:
        published = quote(chapter, name, published, unit, label=label, source=source,
                          setting=setting, section=section or rec.section)
        glue_text(name, published, fmt)
        return published

    rec.section = section
    rec.quote = quoted
    return rec
