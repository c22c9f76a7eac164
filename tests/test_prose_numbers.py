"""No measured number is typed into a chapter's prose by hand.

A number next to a unit a measurement has (×, %, nats, s, ms, points) or with two decimals or more
must come from the run (``{glue:text}`name```) or be marked as not measured on the page:
``{paper}`…``` (quoted from a paper) or ``{fact}`…``` (a fixed fact, a setting of the page).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "chapters").glob("*/*.ipynb"))

# What may hold digits without being a typed-in measurement: code, math, roles, links, HTML.
ALLOWED = [
    re.compile(r"```.*?```", re.S),                       # code blocks and directives' fences
    re.compile(r"\$\$.*?\$\$", re.S),                     # display math
    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),            # inline math
    re.compile(r"\{(?:glue:text|glue|paper|fact|term|ref|doc|numref|eq|cite)\}`[^`]*`"),
    re.compile(r"`[^`\n]*`"),                             # inline code
    re.compile(r"\]\([^)]*\)"),                           # link targets
    re.compile(r"<[^>\n]+>"),                             # HTML tags
    re.compile(r"https?://\S+"),
    re.compile(r"arXiv:\s?\d+\.\d+", re.I),                # paper identifiers
]
UNIT = r"(?:×|x\b|%|‰|nats?\b|bits? per (?:character|token)\b|s\b|ms\b|µs\b|seconds?\b|" \
       r"minutes?\b|min\b|points?\b|pts\b|pp\b|percentage points\b)"
NUMBER = r"(?<![\w.])[-−+]?\d[\d,]*(?:\.\d+)?"
SUSPECT = [
    re.compile(NUMBER + r"\s?" + UNIT),                   # 0.99×, 13.9 %, 6.84 nats, 21 s
    re.compile(r"×\s?" + NUMBER),                         # ×4
    re.compile(r"(?<![\w.])\d+\.\d{2,}(?![\w.])"),        # 0.756: a measured-looking decimal
]


def unmarked_numbers(markdown: str) -> list[str]:
    """The suspect numbers of ``markdown`` that are neither glued nor marked."""
    for pattern in ALLOWED:
        markdown = pattern.sub(" ", markdown)
    found = []
    for pattern in SUSPECT:  # each hit is blanked out, so a later pattern does not count it again
        found += [m.group(0).strip() for m in pattern.finditer(markdown)]
        markdown = pattern.sub(" ", markdown)
    return found


def _markdown_cells(page: Path) -> list[str]:
    cells = json.loads(page.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_measured_number_is_typed_into_prose(page):
    problems = []
    for index, text in enumerate(_markdown_cells(page)):
        for line in text.splitlines():
            hits = unmarked_numbers(line)
            if hits:
                problems.append(f"markdown cell {index}: {hits} in: {line.strip()[:120]}")
    assert not problems, (
        f"{page.relative_to(ROOT)} types numbers into prose by hand; glue measured ones "
        "({glue:text}`name`), mark quoted ones {paper}`…` and fixed facts {fact}`…`:\n"
        + "\n".join(problems))


@pytest.mark.parametrize("text, hits", [
    ("the student is close to twice as fast: 0.99× here", ["0.99×"]),
    ("accuracy 13.9 % and a loss of 6.84 nats", ["13.9 %", "6.84 nats"]),
    ("it took 21 s", ["21 s"]),
    ("a gain of 1.8 points", ["1.8 points"]),
    ("AUC 0.756 against 0.991", ["0.756", "0.991"]),
    ("{glue:text}`speedup`× faster, {paper}`92.5 %` in the paper", []),
    ("{fact}`448` is E4M3's largest value; $2^{-6}$ and `0.125`", []),
    ("BERT (Devlin et al., 2019) has 12 layers and 768 dimensions", []),
])
def test_the_scan_finds_typed_numbers_and_passes_marked_ones(text, hits):
    assert unmarked_numbers(text) == hits
