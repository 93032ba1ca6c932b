"""The website: a strict build of a fresh copy, and every page opened in a real browser offline.

- `test_book_builds_strictly`: `jupyter-book build -W -n --keep-going` of a fresh copy of the
  repository succeeds (built once per session by the `site_build` fixture in conftest.py).
- `test_strict_build_fails_on_*`: the same strictness really fails on a failing cell and on a
  broken reference (tiny books, so they stay cheap).
- `test_pages_render_offline_in_chromium`: headless Debian Chromium opens every built page served
  on 127.0.0.1, with every other host blocked, and checks math, images, links, console, requests.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, site_run_build

CHROMIUM = Path("/usr/bin/chromium")


@functools.lru_cache(maxsize=1)
def _book_assets():
    """The book's Sphinx extension `book/_ext/book_assets.py` (not part of the installed package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("book_assets", REPO / "book" / "_ext" / "book_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# --- 3. the strict build -------------------------------------------------------------------------

def test_book_builds_strictly(site_build):
    assert site_build.returncode == 0, (
        f"jupyter-book build -W -n --keep-going failed (exit {site_build.returncode}); "
        f"last lines of the log:\n{site_build.tail()}")
    pages = sorted(p.relative_to(site_build.html).as_posix() for p in site_build.html.rglob("*.html"))
    assert "book/preface.html" in pages and "book/api.html" in pages, pages


def _tiny_book(tmp_path: Path, pages: dict[str, str | nbformat.NotebookNode]) -> Path:
    """A book with the course's own _config.yml (same strictness and extensions) and `pages`."""
    root = tmp_path / "tiny"
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    shutil.copy(REPO / "book" / "references.bib", root / "book" / "references.bib")
    shutil.copytree(REPO / "book" / "_ext", root / "book" / "_ext")  # the book's own Sphinx extension
    names = list(pages)
    toc = f"format: jb-book\nroot: book/{names[0]}\n"
    if len(names) > 1:
        toc += "chapters:\n" + "".join(f"  - file: book/{n}\n" for n in names[1:])
    (root / "_toc.yml").write_text(toc)
    for name, content in pages.items():
        if isinstance(content, str):
            (root / "book" / f"{name}.md").write_text(content)
        else:
            nbformat.write(content, root / "book" / f"{name}.ipynb")
    return root


def _notebook(*code: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter\n\n(sec-chapter)=\n## A section")]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in code]
    return nb


INTRO = "# Intro\n\nSee {ref}`sec-chapter`.\n"


def test_tiny_book_control_builds(tmp_path):
    """The tiny book itself is fine: the failures below come from the defect alone."""
    build = site_run_build(_tiny_book(tmp_path, {"intro": INTRO, "chapter": _notebook("x = 1 + 1")}))
    assert build.returncode == 0, build.tail()


def test_strict_build_fails_on_a_failing_cell(tmp_path):
    nb = _notebook("x = 1 + 1", "raise RuntimeError('deliberately broken cell')")
    build = site_run_build(_tiny_book(tmp_path, {"intro": INTRO, "chapter": nb}))
    assert build.returncode != 0, "a failing cell did not fail the build:\n" + build.tail()
    assert "deliberately broken cell" in build.log


def test_strict_build_fails_on_a_broken_reference(tmp_path):
    pages = {"intro": "# Intro\n\nSee {ref}`sec-does-not-exist`.\n", "chapter": "# Chapter\n"}
    build = site_run_build(_tiny_book(tmp_path, pages))
    assert build.returncode != 0, "a broken {ref} did not fail the build:\n" + build.tail()
    assert "sec-does-not-exist" in build.log


# --- the offline assets and their fallback (no build needed) -----------------------------------------

def _fresh_config():
    from types import SimpleNamespace

    from myst_nb.core.config import ipywidgets_js_factory
    from sphinx.ext.mathjax import MATHJAX_URL
    return SimpleNamespace(mathjax_path=MATHJAX_URL, nb_ipywidgets_js=ipywidgets_js_factory())


def test_assets_fall_back_to_the_cdn_without_npm(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from myst_nb.core.config import ipywidgets_js_factory

    book_assets = _book_assets()
    monkeypatch.setenv("VAE_COURSE_ASSETS", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VAE_COURSE_NPM", "")
    config, app = _fresh_config(), SimpleNamespace()
    book_assets._configure(app, config)
    assert config.nb_ipywidgets_js == ipywidgets_js_factory()  # myst-nb's CDN defaults, untouched
    assert app._vae_course_assets["widgets"] is None
    # MathJax does not need npm: it comes from the pip package
    assert config.mathjax_path == book_assets.MATHJAX_REL


def test_assets_from_a_bad_npm_are_rejected(tmp_path, monkeypatch):
    """A registry (or npm) that hands back other bytes never reaches the site."""
    book_assets = _book_assets()
    fake = tmp_path / "npm"
    fake.write_text("#!/bin/sh\n# wrong tarballs, written into its cwd (the pack destination)\n"
                    "for f in jupyter-widgets-html-manager-1.0.15.tgz requirejs-2.3.7.tgz; do\n"
                    "  echo tampered > \"$f\"\ndone\n")
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    reason = book_assets.fetch_widget_assets(cache, str(fake))
    assert reason is not None and "SHA-256" in reason
    assert not book_assets._widget_files_ok(cache)
    assert [p.name for p in cache.iterdir()] == []  # nothing half-written
    monkeypatch.setenv("VAE_COURSE_ASSETS", str(cache))
    monkeypatch.setenv("VAE_COURSE_NPM", str(fake))
    config, app = _fresh_config(), type("App", (), {})()
    book_assets._configure(app, config)
    assert "cdn.jsdelivr.net" in " ".join(config.nb_ipywidgets_js)


def test_missing_npm_is_reported_not_raised(tmp_path):
    book_assets = _book_assets()
    reason = book_assets.fetch_widget_assets(tmp_path / "cache", "npm-that-does-not-exist")
    assert "not found" in reason


# --- 4. every page in a real browser, offline ------------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def site_server(site_build):
    if site_build.returncode != 0:
        pytest.fail("the book did not build; see test_book_builds_strictly")
    handler = functools.partial(_Quiet, directory=str(site_build.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site_build.html
    server.shutdown()
    server.server_close()


def _chromium_or_skip():
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (Debian: apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the Python package playwright is not installed"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser test must run: {reason}")
        pytest.skip(reason)


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def _ids_of(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


# Runs in the page: the state of math, images and widgets once everything has settled.
PAGE_STATE_JS = r"""
async () => {
  document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; });
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const deadline = Date.now() + 15000;
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const rendered = () => document.querySelectorAll('.jupyter-widgets').length;
  const imgsDone = () => Array.from(document.images).every(i => i.complete);
  while ((rendered() < views || !imgsDone()) && Date.now() < deadline) {
    await new Promise(r => setTimeout(r, 100));
  }
  const raw = [];
  const math = Array.from(document.querySelectorAll('.math'));
  for (const el of math) {
    const copy = el.cloneNode(true);
    copy.querySelectorAll('mjx-container').forEach(c => c.remove());
    const left = copy.textContent.trim();
    if (!el.querySelector('mjx-container') || /\\\(|\\\[|\$|\\begin/.test(left)) {
      raw.push(el.textContent.trim().slice(0, 80));
    }
  }
  return {
    math: math.length,
    rawMath: raw,
    mathErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    brokenImages: Array.from(document.images)
      .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    images: document.images.length,
    widgetViews: views,
    widgetsRendered: rendered(),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  };
}
"""


REDIRECT = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.I)


def _check_link(href: str, base: str, html: Path) -> str | None:
    """None if `href` is external or resolves inside the build; otherwise what is wrong."""
    url = urllib.parse.urlsplit(href)
    if url.scheme not in ("http", "https") or f"{url.scheme}://{url.netloc}" != base:
        return None  # mailto:, external sites (repository, launch buttons): not part of the build
    rel = urllib.parse.unquote(url.path).lstrip("/")
    target = html / rel
    if rel == "" or target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href}: {target.relative_to(html)} does not exist"
    anchor = urllib.parse.unquote(url.fragment)
    if anchor and target.suffix == ".html" and anchor not in _ids_of(target):
        return f"{href}: no id {anchor!r} in {target.relative_to(html)}"
    return None


def test_pages_render_offline_in_chromium(site_server):
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    base, html = site_server
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0].startswith("_"))
    assert pages, "no pages were built"
    external, problems, current = [], [], [""]
    totals = {"math": 0, "images": 0, "widgets": 0}

    def route(r):
        if urllib.parse.urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            external.append(f"{current[0]}: {r.request.url}")
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(
                f"{current[0]}: console error: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"{current[0]}: page error: {e}"))
            page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
                    and problems.append(f"{current[0]}: HTTP {r.status} for {r.url}"))
            for name in pages:
                current[0] = name
                redirect = REDIRECT.search((html / name).read_text(encoding="utf-8"))
                if redirect:  # index.html: a meta refresh to the root page; check its target only
                    bad = _check_link(urllib.parse.urljoin(f"{base}/{name}", redirect.group(1)),
                                      base, html)
                    if bad:
                        problems.append(f"{name}: broken redirect {bad}")
                    continue
                page.goto(f"{base}/{name}", wait_until="load")
                state = page.evaluate(PAGE_STATE_JS)
                totals["math"] += state["math"]
                totals["images"] += state["images"]
                totals["widgets"] += state["widgetViews"]
                if state["rawMath"]:
                    problems.append(f"{name}: math not typeset: {state['rawMath'][:5]}")
                if state["mathErrors"]:
                    problems.append(f"{name}: {state['mathErrors']} MathJax errors")
                if state["brokenImages"]:
                    problems.append(f"{name}: images that did not load: {state['brokenImages']}")
                if state["widgetsRendered"] < state["widgetViews"]:
                    problems.append(f"{name}: {state['widgetViews']} widgets saved, "
                                    f"{state['widgetsRendered']} rendered")
                for href in sorted(set(state["links"])):
                    bad = _check_link(href, base, html)
                    if bad:
                        problems.append(f"{name}: broken link {bad}")
        finally:
            browser.close()
    assert not external, "requests to hosts other than 127.0.0.1:\n" + "\n".join(external)
    assert not problems, "\n".join(problems)
    print(f"checked {len(pages)} pages: {totals}")
