"""Sphinx extension: make the built book render with no internet connection.

Listed in ``_config.yml`` under ``sphinx: extra_extensions``. With it, a plain
``jupyter-book build .`` writes pages that load their math typesetter and their widget
scripts from the build folder instead of content delivery networks (CDNs):

- **MathJax 3** (``tex-svg.js``, self-contained, SVG output so no web fonts are fetched) comes
  from the PyPI package ``django-static-mathjax`` (listed in ``requirements.txt``). It is copied
  to ``_vendor/mathjax/`` in the build, with the TeX extensions MathJax autoloads on demand
  (``\\boldsymbol``, ``\\cancel``, ...), and ``mathjax_path`` points there. The MathJax
  configuration that MyST sets (``mathjax3_config``) is left untouched.
- **ipywidgets** need the ``@jupyter-widgets/html-manager`` bundle and RequireJS, which are on
  npm only. They are fetched once with ``npm pack`` into a cache folder outside the repository
  (``$VAE_COURSE_ASSETS``, else ``$XDG_CACHE_HOME/vae_course/book_assets``, else
  ``~/.cache/vae_course/book_assets``), checked against the SHA-256 digests below, copied to
  ``_vendor/`` in the build, and myst-nb's ``nb_ipywidgets_js`` is pointed at them.

Fallback: when MathJax's package is not installed, or npm is missing, offline, or hands back
files with the wrong digest, the extension logs one message saying what is missing and how to
get it, and leaves that part at the CDN defaults of Sphinx and myst-nb. It never emits a
warning for this, so a ``-W`` build still succeeds; the pages then need internet for math or
widgets. Setting ``VAE_COURSE_NPM`` to an empty string skips npm (the CDN fallback); setting it
to a path uses that npm executable. Values the user sets explicitly in ``_config.yml``
(``mathjax_path``, ``nb_ipywidgets_js``) are respected.

Not taught in a chapter: this is the book's build machinery.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sphinx.util import logging

__all__: list[str] = []  # build machinery; nothing for `import vae_course as vc`

logger = logging.getLogger(__name__)

#: Folder of the build output (relative to its root) that receives every vendored asset. It is
#: not `_static`: Jupyter Book injects every .js under a source `_static/` into every page.
VENDOR_DIR = "_vendor"
#: Sphinx writes script paths relative to `_static/`; this prefix reaches the output root from
#: there, and Sphinx then makes the result relative to each page (works from file:// too).
_FROM_STATIC = "../"

MATHJAX_VERSION = "3.2.2"
MATHJAX_REL = f"{_FROM_STATIC}{VENDOR_DIR}/mathjax/tex-svg.js"

HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"  # the bundle matching ipywidgets 8.1
REQUIREJS = "requirejs@2.3.7"

#: SHA-256 of the npm tarballs (as the registry serves them) and of the two scripts pages load.
NPM_TARBALLS = {
    "jupyter-widgets-html-manager-1.0.15.tgz":
        "2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638",
    "requirejs-2.3.7.tgz": "31f3330c978fb28684622fe71165dc946432cf0210b2ea8a1ca0233e70f2737d",
}
WIDGET_FILES = {
    "html-manager-1.0.15/embed-amd.js":
        "ca87dff57c70ffb2658794fde0eab0e27e5f5472a1f5df7ab2b08e1039fc4b72",
    "requirejs-2.3.7/require.js": "8215b90000b571bd241d28512c83f59855cecc3158db94b79b2d974c9923b5d2",
}
#: Files of html-manager's dist/ that pages never load (source maps, the non-AMD bundle).
_SKIP_DIST = {"embed.js", "embed.js.map", "libembed-amd.js"}

#: Where embed-amd.js would look for third-party widget modules (the course uses none: the
#: base, controls and output widgets are inside the bundle). A local folder, so no CDN is asked.
WIDGETS_CDN_REL = f"{VENDOR_DIR}/jupyter-widgets-cdn/"
EMBED_REL = f"{VENDOR_DIR}/jupyter-widgets/embed-amd.js"

#: Inline script put before require.js and embed-amd.js on pages with widgets (placeholder: the
#: page-relative folder of embed-amd.js). (1) The bundle defines the AMD module
#: `@jupyter-widgets/html-manager/dist/libembed-amd` and loads its icon fonts from that module's
#: folder, so RequireJS (configured by a global `require` object before require.js runs) maps the
#: folder to ours; `__jupyter_widgets_assets_path__` does the same for later chunks. (2) The controls call the
#: MathJax 2 API `MathJax.Hub.Queue(["Typeset", MathJax.Hub, el])` whenever `window.MathJax`
#: exists; with MathJax 3 that is a TypeError in the console. The shim maps it to MathJax 3's
#: `typesetPromise`; it is (re)installed at DOMContentLoaded, after the deferred MathJax has
#: replaced its configuration object and before embed-amd.js renders the widgets.
_WIDGET_PAGE_JS = """window.__jupyter_widgets_assets_path__ = new URL(%s, document.baseURI).href;
var require = {paths: {"@jupyter-widgets/html-manager/dist":
                       window.__jupyter_widgets_assets_path__.replace(/\\/$/, "")}};
(function () {
  function typeset(el) {
    var mj = window.MathJax;
    var run = function () { return mj.typesetPromise(el ? [el] : undefined); };
    if (mj.typesetPromise) { run().catch(function () {}); }
    else if (mj.startup && mj.startup.promise) { mj.startup.promise.then(run).catch(function () {}); }
  }
  function shim() {
    var mj = window.MathJax;
    if (!mj || mj.Hub) { return; }
    mj.Hub = { Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset") { typeset(job[2]); }
      }
    } };
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
})();"""

NPM_TIMEOUT_S = 180


def cache_dir() -> Path:
    """The folder that keeps the npm assets between builds (never inside the repository)."""
    if os.environ.get("VAE_COURSE_ASSETS"):
        return Path(os.environ["VAE_COURSE_ASSETS"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vae_course" / "book_assets"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _widget_files_ok(cache: Path) -> bool:
    return all((cache / rel).is_file() and _sha256(cache / rel) == sha
               for rel, sha in WIDGET_FILES.items())


def mathjax_source() -> Path | None:
    """The ``es5`` folder of the installed ``django-static-mathjax`` package, or None."""
    try:
        import mathjax  # the import name of django-static-mathjax
    except ImportError:
        return None
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    return es5 if (es5 / "tex-svg.js").is_file() else None


def fetch_widget_assets(cache: Path, npm: str = "npm") -> str | None:
    """Fetch html-manager and RequireJS with ``npm pack`` into `cache`.

    Returns None on success, or a sentence saying why it failed (nothing is left half-written).
    """
    exe = shutil.which(npm)
    if exe is None:
        return f"npm ({npm!r}) was not found on PATH"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        cmd = [exe, "pack", HTML_MANAGER, REQUIREJS, "--pack-destination", str(tmp),
               "--prefer-offline", "--no-audit", "--no-fund", "--fetch-retries=1",
               "--fetch-timeout=30000", "--loglevel=error"]
        try:
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                                  timeout=NPM_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`npm pack` did not finish: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"`npm pack` exited with {done.returncode}: {' | '.join(tail)}"
        for name, sha in NPM_TARBALLS.items():
            if not (tmp / name).is_file():
                return f"`npm pack` did not produce {name}"
            if _sha256(tmp / name) != sha:
                return f"{name} has an unexpected SHA-256 (expected {sha})"
        staged = tmp / "staged"
        _extract(tmp / "jupyter-widgets-html-manager-1.0.15.tgz", "package/dist/",
                 staged / "html-manager-1.0.15", skip=_SKIP_DIST)
        _extract(tmp / "requirejs-2.3.7.tgz", "package/require.js", staged / "requirejs-2.3.7")
        if not _widget_files_ok(staged):
            return "the unpacked widget scripts do not match their recorded SHA-256"
        for folder in staged.iterdir():
            target = cache / folder.name
            if target.exists():
                shutil.rmtree(target)
            os.replace(folder, target)
    return None


def _extract(tarball: Path, prefix: str, dest: Path, skip=frozenset()) -> None:
    """Copy the regular files of `tarball` under `prefix` (flat) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if not member.isfile() or not name.startswith(prefix):
                continue
            base = os.path.basename(name)
            if base in skip or "/" in name[len(prefix):]:
                continue
            with tar.extractfile(member) as src, open(dest / base, "wb") as out:
                shutil.copyfileobj(src, out)


def _widget_js(cache: Path) -> dict:
    """The value of myst-nb's ``nb_ipywidgets_js`` that loads the vendored scripts.

    Paths are relative to the build root; Sphinx rewrites them relative to each page, so they
    work from nested pages and from ``file://``. No ``crossorigin`` attribute: on ``file://``
    it would make Chromium refuse the script.
    """
    return {
        f"{_FROM_STATIC}{VENDOR_DIR}/requirejs/require.js": {},
        f"{_FROM_STATIC}{EMBED_REL}": {},  # its data-jupyter-widgets-cdn: see _widget_page_setup
    }


def _configure(app, config) -> None:
    """config-inited: choose local or CDN assets and remember what to copy."""
    from sphinx.ext.mathjax import MATHJAX_URL

    state = app._vae_course_assets = {"mathjax": None, "widgets": None}

    # MathJax
    if config.mathjax_path != MATHJAX_URL:
        logger.info("[book_assets] mathjax_path is set in the configuration; kept as is.")
    else:
        source = mathjax_source()
        if source is None:
            logger.info("[book_assets] MathJax is not installed "
                        "(`pip install django-static-mathjax`): pages load MathJax from its CDN.")
        else:
            config.mathjax_path = MATHJAX_REL
            state["mathjax"] = source

    # Widgets
    try:
        from myst_nb.core.config import ipywidgets_js_factory
    except ImportError:  # myst-nb absent: nothing renders widgets anyway
        return
    if config.nb_ipywidgets_js != ipywidgets_js_factory():
        logger.info("[book_assets] nb_ipywidgets_js is set in the configuration; "
                    "kept as is.")
        return
    cache = cache_dir()
    if not _widget_files_ok(cache):
        npm = os.environ.get("VAE_COURSE_NPM", "npm")
        if not npm:
            reason = "VAE_COURSE_NPM is empty (npm disabled)"
        else:
            logger.info(f"[book_assets] fetching {HTML_MANAGER} and {REQUIREJS} "
                        f"with npm into {cache}")
            reason = fetch_widget_assets(cache, npm)
        if reason is not None:
            logger.info(f"[book_assets] widget scripts are not available offline: "
                        f"{reason}. Pages with widgets load them from the CDN (myst-nb's "
                        f"default). Install Node.js/npm and rebuild to vendor them.")
            return
    config.nb_ipywidgets_js = _widget_js(cache)
    state["widgets"] = cache


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy the files of `src` into `dest`, skipping files that are already identical."""
    for path in src.rglob("*"):
        if not path.is_file():
            continue
        target = dest / path.relative_to(src)
        if target.is_file() and target.stat().st_size == path.stat().st_size \
                and target.stat().st_mtime >= path.stat().st_mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _copy_assets(app, exception) -> None:
    """build-finished: copy the vendored files into the HTML output (not into ``_static``)."""
    if exception is not None or app.builder is None or app.builder.format != "html":
        return
    state = getattr(app, "_vae_course_assets", {})
    out = Path(app.builder.outdir) / VENDOR_DIR
    if state.get("mathjax"):
        es5 = state["mathjax"]
        (out / "mathjax").mkdir(parents=True, exist_ok=True)
        shutil.copy2(es5 / "tex-svg.js", out / "mathjax" / "tex-svg.js")
        _copy_tree(es5 / "input" / "tex" / "extensions", out / "mathjax" / "input" / "tex" / "extensions")
        licence = es5.parent / "LICENSE"
        if licence.is_file():
            shutil.copy2(licence, out / "mathjax" / "LICENSE")
    if state.get("widgets"):
        cache = state["widgets"]
        _copy_tree(cache / "html-manager-1.0.15", out / "jupyter-widgets")
        _copy_tree(cache / "requirejs-2.3.7", out / "requirejs")
        cdn = out / "jupyter-widgets-cdn"
        cdn.mkdir(parents=True, exist_ok=True)
        (cdn / "README.txt").write_text(
            "Third-party ipywidgets modules would be looked up here instead of a CDN.\n"
            "The course only uses the widgets bundled in ../jupyter-widgets/embed-amd.js.\n")


def _page_scripts(app, pagename, templatename, context, doctree) -> None:
    """html-page-context: widget-page set-up, then drop repeated <script> entries."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    if getattr(app, "_vae_course_assets", {}).get("widgets") and any(
            (getattr(js, "filename", None) or "").endswith(EMBED_REL) for js in scripts):
        _widget_page_setup(app, context)
    _dedupe_scripts(scripts)


def _widget_page_setup(app, context) -> None:
    """Put the inline script of `_WIDGET_PAGE_JS` before embed-amd.js on this page only.

    It also carries `data-jupyter-widgets-cdn`, relative to this page: embed-amd.js reads that
    attribute from every <script> and would fetch third-party widget modules from there.
    """
    import json

    pathto = context["pathto"]
    assets = pathto(f"{VENDOR_DIR}/jupyter-widgets/", 1)
    cdn = pathto(WIDGETS_CDN_REL, 1)
    app.builder.add_js_file(None, body=_WIDGET_PAGE_JS % json.dumps(assets), priority=499,
                            **{"data-jupyter-widgets-cdn": cdn})


def _dedupe_scripts(scripts: list) -> None:
    """Drop repeated <script> entries of a page.

    With Jupyter Book 1.0.4 and Sphinx 7.4, the inline configuration scripts of sphinx-thebe and
    sphinx-togglebutton end up twice in every page; the second `const THEBE_JS_URL = ...`
    is a JavaScript error ("Identifier has already been declared") in the browser console.
    """
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", None) or "", tuple(sorted(attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app):
    app.setup_extension("sphinx.ext.mathjax")
    # after myst-nb and myst-parser registered their config values; before myst-nb reads them
    app.connect("config-inited", _configure, priority=800)
    app.connect("build-finished", _copy_assets)
    app.connect("html-page-context", _page_scripts, priority=900)  # after myst-nb adds its own
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
