"""Browser test of the built book: every page of ``_build/html`` in headless Chromium.

The site is served on 127.0.0.1 and opened with Playwright in Debian's Chromium with the
network closed: any request not to the local server is aborted and recorded, so a page that
needs a CDN fails. Each page is visited once (fresh browser context, empty cache); the tests
below then each check one property over all pages and report every failing page at once.

Run alone with ``pytest -m browser`` after building the book. Needs /usr/bin/chromium
(``scripts/install-system-deps.sh``); never ``playwright install``. ``BEYONDBERT_SKIP_BROWSER=1``
skips. Screenshots and a page-weight report are written to ``artifacts/``.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("BEYONDBERT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOT_PAGES = {"index.html", "genindex.html", "search.html", "py-modindex.html"}  # index: a redirect
PAGE_WEIGHT_BUDGET = 10 * 2**20  # bytes of HTML + local resources per page
# axe-core (npm, pinned in tests/axe/package-lock.json; `make test` installs it) checks WCAG 2 A/AA.
AXE_JS = ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN_JS = """async () => (await axe.run(document, {
  runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}, resultTypes: ['violations']}))
  .violations.map(v => ({id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
                         first: v.nodes[0] ? v.nodes[0].target.join(' ') : ''}))"""
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),  # one worker, one server, one browser
    pytest.mark.skipif(os.environ.get("BEYONDBERT_SKIP_BROWSER") == "1",
                       reason="BEYONDBERT_SKIP_BROWSER=1"),
]

# Runs in the page after load: waits for MathJax and images, returns what the checks need.
INSPECT_JS = """async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const math = [...document.querySelectorAll('.math')];
  if (math.length) {
    for (let i = 0; i < 30 && !window.MathJax?.startup?.promise; i++) await sleep(100);
    await window.MathJax?.startup?.promise;
  }
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? 0 : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 5000); })));
  const skip = 'pre, code, script, style, textarea, noscript, mjx-container';
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const prose = [];
  while (walk.nextNode()) {
    const el = walk.currentNode.parentElement;
    if (el && !el.closest(skip) && el.checkVisibility()) prose.push(walk.currentNode.data);
  }
  return {
    math: math.length,
    unrendered_math: math.filter(m => !m.querySelector('mjx-container')).length,
    prose: prose.join(''),
    visible_text: document.body.innerText,
    all_text: document.body.textContent,
    broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                       .map(i => i.getAttribute('src')),
    sidenav: [...document.querySelectorAll('.bd-sidenav a')].map(a => a.href),
    launch: [...document.querySelectorAll('.dropdown-launch-buttons a')].map(a => a.href),
  };
}"""


@dataclass
class Visit:
    """What one page did in the browser."""

    path: str
    url: str = ""
    console_errors: list[str] = field(default_factory=list)
    bad_requests: list[str] = field(default_factory=list)  # local: failed or status >= 400
    external: list[str] = field(default_factory=list)      # blocked non-local requests
    weight: int = 0                                          # bytes loaded from the server
    info: dict = field(default_factory=dict)                 # what `inspect` returned
    error: str = ""                                          # why it could not be inspected


def _rel(path: Path) -> str:
    """Path of a built page relative to _build/html, with forward slashes."""
    return Path(path).relative_to(HTML).as_posix()


def built_pages() -> list[str]:
    """Every content page of the built site (no index redirect, search, indices or assets)."""
    return sorted(rel for p in HTML.rglob("*.html")
                  if (rel := _rel(p)) not in NOT_PAGES
                  and not any(part[0] in "._" for part in Path(rel).parts))


def toc_pages() -> list[str]:
    """The .html path of every `file:` in _toc.yml, root first."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            files.extend([node["file"]] if "file" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(toc)
    return [re.sub(r"\.(md|ipynb|rst)$", "", f) + ".html" for f in files]


def book_mentions(term: str) -> bool:
    """Whether any page source copied into the built site contains `term`."""
    sources = HTML / "_sources"
    return sources.is_dir() and any(term in p.read_text(errors="ignore")
                                    for p in sources.rglob("*") if p.is_file())


def secret_lines(notebook: Path) -> set[str]:
    """Non-trivial lines that exist only inside solution / hidden-test regions of a source notebook."""
    inside, outside = set(), set()
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"]).splitlines()
        whole = cell.get("metadata", {}).get("nbgrader", {}).get("solution") and not any(
            "BEGIN SOLUTION" in line for line in source)  # whole-cell answers are replaced too
        region = bool(whole)
        for line in source:
            if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
                region = True
            elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
                region = bool(whole)
            else:
                (inside if region else outside).add(" ".join(line.split()))
    return {line for line in inside - outside if len(line) >= 12}


def fail_if_any(problems: list[str], what: str) -> None:
    """Fail with every problem listed, one per line."""
    assert not problems, f"{len(problems)} {what}:\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def site():
    """Base URL of _build/html served by a local threaded http.server."""
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML / 'index.html'} is missing: build the book first "
                    "(`make book`), or set BEYONDBERT_SKIP_BROWSER=1 to skip the browser test")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright."""
    if not AXE_JS.is_file():
        pytest.fail(f"{AXE_JS} is missing: run `npm ci --prefix tests/axe` (make test does)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run scripts/install-system-deps.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def inspect_page(page, screenshot: Path | None = None) -> dict:
    """Run INSPECT_JS on a loaded page; optionally save a screenshot of its first screen."""
    info = page.evaluate(INSPECT_JS)
    page.add_script_tag(path=str(AXE_JS))
    info["axe"] = page.evaluate(AXE_RUN_JS)
    if screenshot:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=screenshot)
    return info


def visit(browser, site: str, path: str, inspect=inspect_page) -> Visit:
    """Open one page in a fresh context with the network closed; `inspect(page)` fills info."""
    result = Visit(path)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)

    def route(r):
        if r.request.url.startswith(site):
            r.continue_()
        else:
            result.external.append(r.request.url)
            r.abort()
    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error"  # failed loads: reported as requests
            and not m.text.startswith("Failed to load resource")
            and result.console_errors.append(f"{m.text} ({m.location.get('url', '')})"))
    page.on("pageerror", lambda e: result.console_errors.append(f"uncaught {e}"))
    page.on("requestfailed", lambda r: r.url.startswith(site) and result.bad_requests.append(
        f"{r.url} ({r.failure})"))
    page.on("response", lambda r: r.url.startswith(site) and r.status >= 400 and
            result.bad_requests.append(f"{r.url} (HTTP {r.status})"))
    finished = []
    page.on("requestfinished", lambda r: finished.append(r))
    try:
        page.goto(site + path, wait_until="networkidle")
        result.url = page.url
        result.info = inspect(page)
        result.weight = sum(r.sizes()["responseBodySize"] for r in finished
                            if r.url.startswith(site))
    except Exception as exc:  # a page that cannot even be inspected is a finding, not a crash
        result.error = f"could not load or inspect the page: {exc}".splitlines()[0]
    finally:
        context.close()
    return result


def screenshot_name(path: str) -> str:
    """File name of a page's screenshot: chapters/01-x/x.html -> chapters__01-x__x.png."""
    return path.removesuffix(".html").replace("/", "__") + ".png"


def key_pages() -> list[str]:
    """index, the first chapter and the first exercise (those that are built)."""
    toc = toc_pages()
    def first(prefix):
        return [p for p in toc if p.startswith(prefix) and (HTML / p).is_file()][:1]
    return ["index.html", *first("chapters/"), *first("exercises/")]


@pytest.fixture(scope="module")
def visits(browser, site) -> dict[str, Visit]:
    """Every built page (and index.html) visited once; screenshots of the key pages."""
    start = time.perf_counter()
    shutil.rmtree(ARTIFACTS / "screenshots", ignore_errors=True)  # no stale pictures
    keys = key_pages()
    def shot(path):
        return ARTIFACTS / "screenshots" / screenshot_name(path) if path in keys else None
    out = {path: visit(browser, site, path, functools.partial(inspect_page, screenshot=shot(path)))
           for path in ["index.html", *built_pages()]}
    elapsed = time.perf_counter() - start
    lines = [f"{v.weight:>10,d}  {p}" for p, v in sorted(out.items(), key=lambda kv: -kv[1].weight)]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-report.txt").write_text(
        f"{len(out)} pages visited in {elapsed:.1f} s\nbytes loaded (HTML + local resources):\n"
        + "\n".join(lines) + "\n")
    return out


# ------------------------------------------------------------------------------------- tests
def test_pages_load_cleanly(visits):
    """No console errors, no failed or 4xx/5xx local requests, no external requests."""
    problems = []
    for path, v in visits.items():
        problems += [f"{path}: {v.error}"] if v.error else []
        problems += [f"{path}: console error: {e}" for e in v.console_errors]
        problems += [f"{path}: bad request: {r}" for r in v.bad_requests]
        problems += [f"{path}: needed an external request (blocked): {u}" for u in v.external]
    fail_if_any(problems, "load problems")


def test_pages_are_accessible(visits):
    """axe-core finds no WCAG 2 A or AA violation on any page (alt text, contrast, labels...)."""
    problems = [f"{path}: {v['id']} ({v['impact']}, {v['count']}x, first at {v['first']}): "
                f"{v['help']}"
                for path, visit_ in visits.items() if visit_.info
                for v in visit_.info.get("axe", [])]
    fail_if_any(problems, "accessibility violations")


def test_math_is_rendered(visits):
    """No raw TeX delimiters left in the prose; every .math element holds MathJax output."""
    problems = []
    for path, v in visits.items():
        if not v.info:
            continue  # reported by test_pages_load_cleanly
        for raw in sorted(set(re.findall(r"(?:\$\$|\\\(|\\\[)[\s\S]{0,30}", v.info["prose"]))):
            problems.append(f"{path}: raw TeX in the text: {' '.join(raw.split())!r}")
        if v.info["unrendered_math"]:
            problems.append(f"{path}: {v.info['unrendered_math']} of {v.info['math']} "
                            "formulas not rendered by MathJax (no mjx-container)")
    fail_if_any(problems, "math problems")


def test_images_load(visits):
    """Every <img> loaded (naturalWidth > 0)."""
    fail_if_any([f"{path}: image did not load: {src}" for path, v in visits.items()
                 for src in v.info.get("broken_images", [])], "broken images")


def test_sidebar_reaches_every_toc_page(visits, site):
    """Each page of _toc.yml is built, linked from the index page's sidebar, and answers 200."""
    links = {link.split("#")[0] for link in visits["index.html"].info.get("sidenav", [])}
    local = {link.removeprefix(site) or "index.html" for link in links if link.startswith(site)}
    problems = [] if links else ["index.html: no links in the left navigation (.bd-sidenav a)"]
    for page in toc_pages():
        if not (HTML / page).is_file():
            problems.append(f"{page}: listed in _toc.yml but not built")
        elif page not in local:
            problems.append(f"{page}: not linked from the sidebar of index.html")
    for link in sorted(links & {site + p for p in local}):
        try:
            status = urllib.request.urlopen(link, timeout=10).status
        except urllib.error.HTTPError as err:
            status = err.code
        if status != 200:
            problems.append(f"sidebar link {link}: HTTP {status}")
    fail_if_any(problems, "navigation problems")


def test_notebook_pages_have_launch_buttons(visits):
    """Every page built from a notebook offers launch links (Binder, Colab) to that notebook."""
    problems = []
    for path, v in visits.items():
        notebook = Path(path).with_suffix(".ipynb").as_posix()
        if (HTML / "_sources" / notebook).is_file() and not any(
                link.endswith(notebook) for link in v.info.get("launch", [])):
            problems.append(f"{path}: no launch button opening {notebook}")
    fail_if_any(problems, "pages without launch buttons")


def test_exercise_pages_are_student_versions(visits):
    """Exercise pages show the stubs and none of the solution or hidden-test code."""
    problems = []
    for path, v in visits.items():
        if not path.startswith("exercises/") or not v.info:
            continue
        if not any(s in v.info["visible_text"] for s in ("YOUR CODE HERE", "NotImplementedError")):
            problems.append(f"{path}: no 'YOUR CODE HERE' / NotImplementedError visible")
        text = " ".join(v.info["all_text"].split())
        problems += [f"{path}: shows marker {m!r}" for m in SOLUTION_MARKERS if m in text]
        solution = ROOT / "solutions" / Path(path).with_suffix(".ipynb").name
        if not solution.is_file():
            problems.append(f"{path}: no {solution.relative_to(ROOT)} to compare against")
            continue
        # whole lines: a hidden line is often a fragment of a longer visible one
        shown = {" ".join(line.split()) for line in v.info["all_text"].splitlines()}
        problems += [f"{path}: shows solution line {line!r}"
                     for line in sorted(secret_lines(solution)) if line in shown]
    fail_if_any(problems, "exercise problems")


@pytest.mark.parametrize("term", [
    "attention",
    pytest.param("LoRA", marks=pytest.mark.skipif(
        not book_mentions("LoRA"),
        reason="no page mentions LoRA yet (no LoRA chapter); checked once _sources does")),
])
def test_search_finds(term, browser, site):
    """search.html?q=TERM lists at least one page, for a term the built book contains."""
    assert book_mentions(term), f"no page of the built book contains {term!r}"

    def results(page) -> dict:
        page.wait_for_function(
            "() => document.querySelector('#search-results .search-summary')?.innerText")
        return {"summary": page.inner_text("#search-results .search-summary"),
                "hits": page.locator("#search-results ul.search li").count()}

    v = visit(browser, site, f"search.html?q={term}", results)
    # console errors of the shared page template are reported by test_pages_load_cleanly
    problems = [v.error] if v.error else []
    problems += [f"bad request: {r}" for r in v.bad_requests]
    problems += [f"needed an external request (blocked): {u}" for u in v.external]
    problems += [] if v.info.get("hits") else [f"no results: {v.info.get('summary')!r}"]
    fail_if_any([f"search.html?q={term}: {p}" for p in problems], "search problems")


RESULTS_LAYOUT_JS = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const tables = [...document.querySelectorAll('table.results-table')];
  const problems = [];
  tables.forEach((t, i) => {
    const box = (t.closest('article') || t.parentElement).getBoundingClientRect();
    const right = t.getBoundingClientRect().right;
    if (right > box.right + 1) problems.push(`table ${i} ends at ${right}px, past the content's ${box.right}px`);
    t.querySelectorAll('td, th').forEach(c => {
      if (c.scrollWidth > c.clientWidth + 1) problems.push(`table ${i}: a cell is clipped ("${c.innerText.slice(0, 40)}")`);
    });
  });
  return {tables: tables.length, problems,
          published_rows: document.querySelectorAll('table.results-published tbody tr').length,
          linked: document.querySelectorAll('table.results-table tbody a[href*="chapters/"]').length,
          folded: document.querySelectorAll('details.results-chapter').length};
}"""


def test_results_page_fits_and_links(browser, site):
    """At 1280 px the results tables fit the content column, no cell is clipped, figures link."""
    v = visit(browser, site, "results.html", lambda page: page.evaluate(RESULTS_LAYOUT_JS))
    problems = [v.error] if v.error else list(v.info.get("problems", []))
    info = v.info or {}
    if not info.get("published_rows"):
        problems.append("no figure is shown beside a published number")
    if not info.get("linked"):
        problems.append("no figure links to the chapter section that measured it")
    if not info.get("folded"):
        problems.append("the other figures are not folded by chapter")
    fail_if_any([f"results.html: {p}" for p in problems], "results page problems")


def test_screenshots_of_key_pages(visits):
    """index, first chapter and first exercise were captured to artifacts/screenshots/."""
    missing = [p for p in key_pages()
               if not (ARTIFACTS / "screenshots" / screenshot_name(p)).is_file()]
    fail_if_any([f"{p}: no screenshot" for p in missing], "missing screenshots")


def test_page_weight(visits):
    """No page loads more than PAGE_WEIGHT_BUDGET bytes (report: artifacts/browser-report.txt)."""
    fail_if_any([f"{p}: {v.weight:,d} bytes > {PAGE_WEIGHT_BUDGET:,d}" for p, v in visits.items()
                 if v.weight > PAGE_WEIGHT_BUDGET], "pages over the weight budget")
