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
) -> float:
    """Store one measured figure of ``chapter`` and return ``value`` (so it can be printed).

    ``label`` is the readable name the results page shows ("Spearman ρ, mean pooling, Lee");
    ``section`` the title of the chapter heading under which it was measured (the page links
    there). ``published``/``source``/``setting`` name the paper's number this figure reproduces,
    if any, and the paper's setting; ``our_setting`` says how ours differs.
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
    path = results_dir() / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pages of one chapter may execute at the same time: read, change and write under a lock.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(path.read_text()) if path.exists() else {}
        rows[name] = {"value": value, "unit": unit, "label": label, "section": section,
                      "published": published, "source": source, "setting": setting,
                      "our_setting": our_setting}
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(rows, indent=2, sort_keys=True))
        partial.replace(path)
    return value



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
    for the results page (:func:`record`) and glues it under ``name`` for the prose.

    ``section`` is the default heading the figures are under; pass ``section=`` to a call (or set
    ``rec.section = "..."``) when the page moves on to another heading.
    """
    def rec(name: str, value: float, unit: str = "", *, label: str, fmt: str = "{:.3f}",
            section: str | None = None, **paper: object) -> float:
        value = record(chapter, name, value, unit, label=label,
                       section=section or rec.section, **paper)
        glue_text(name, value, fmt)
        return value

    rec.section = section
    return rec
