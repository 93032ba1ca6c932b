"""The chapters and the student edition as a Jupyter user sees them, not as the website does.

Two renderers are modelled:

- **JupyterLab and Binder** render Markdown cells with `jupyterlab-myst` (installed by
  requirements.txt and binder/requirements.txt). It parses MyST with mystmd's parser, which knows
  the default roles (`cite`, `ref`, `doc`, `math`, `eval`, ...) and directives (admonitions,
  `math`, figures, `exercise`/`solution` with their `-start`/`-end` gates, `prf:` proofs), and it
  evaluates ``{eval}`` inline expressions in the kernel when a cell is run. It does not know
  myst-nb's `{glue}` roles and directives: those would show raw.
- **Colab**, or Jupyter without the extension, renders CommonMark: every role or directive fence
  is visible as typed. The student edition must hold none; the chapters, which keep their MyST,
  print every number their prose quotes in a code cell above it.

MyST is tokenised with myst-parser (the Python twin of the syntax jupyterlab-myst parses);
CommonMark with markdown-it-py.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from mdit_py_plugins.dollarmath import dollarmath_plugin
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from notebook_utils import ROOT, cached_run

from vae_course.classroom.edition import chapter_notebooks, format_value

CHAPTERS = chapter_notebooks(ROOT)
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def _glued_eval():
    """The site's {eval} role (book/_ext/glued_eval.py), which answers expressions from glued values."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("glued_eval", ROOT / "book" / "_ext" / "glued_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EVAL_REGEX = _glued_eval()._EXPRESSION


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


hide_glue = _load_script("hide_glue")

# --- what jupyterlab-myst renders (mystmd's default roles and directives, plus its extensions) --------

JLAB_ROLES = re.compile(r"(?:abbr|chem|cite(?::\w+)?|del|math|ref|numref|eq|doc|download|index|term|si|eval|"
                        r"sc|sub|sup|u|kbd|raw:latex|raw:typst|underline|subscript|superscript|smallcaps|keyboard)")
JLAB_DIRECTIVES = re.compile(r"(?:admonition|attention|caution|danger|error|hint|important|note|seealso|tip|warning|"
                             r"dropdown|margin|aside|sidebar|topic|epigraph|glossary|math|code|code-block|figure|image|"
                             r"table|list-table|csv-table|iframe|mermaid|div|include|embed|tab-set|tab-item|card|grid|"
                             r"grid-item-card|exercise|exercise-start|exercise-end|solution|solution-start|solution-end|"
                             r"prf:\w+)")
_RAW_BODY = {"math", "code", "code-block", "mermaid", "csv-table"}
_MYST = create_md_parser(MdParserConfig(enable_extensions={"colon_fence", "dollarmath", "amsmath", "deflist"}),
                         RendererHTML)


def _tokens(tokens):
    for t in tokens:
        yield t
        if t.children:
            yield from _tokens(t.children)


def myst_syntax(text: str) -> list[tuple[str, str, str]]:
    """Every ('role' | 'directive', name, content) in a MyST Markdown text, directive bodies included."""
    found = []
    for t in _tokens(_MYST.parse(text)):
        if t.type == "myst_role":
            found.append(("role", t.meta["name"], t.content))
        elif t.type in ("fence", "colon_fence") and t.info.strip().startswith("{"):
            name = t.info.strip()[1:].split("}")[0]
            found.append(("directive", name, t.info))
            if name not in _RAW_BODY:
                body = [line for line in t.content.split("\n") if not re.match(r"^\s*:[\w-]+:", line)]
                found += myst_syntax("\n".join(body))
    return found


def jupyterlab_problems(text: str) -> list[str]:
    """What jupyterlab-myst would show raw: roles and directives its parser does not know."""
    return [f"{kind} {{{name}}} ({content.strip()[:40]!r})" for kind, name, content in myst_syntax(text)
            if not (JLAB_ROLES if kind == "role" else JLAB_DIRECTIVES).fullmatch(name)]


# --- what plain CommonMark (Colab) shows ------------------------------------------------------------

_COMMONMARK = MarkdownIt("commonmark").enable("table").use(dollarmath_plugin)
_MATH_HTML = re.compile(r'<(span|div) class="math[^"]*">.*?</\1>', re.S)
_RAW_PATTERNS = {
    "a role shown raw": re.compile(r"\{[\w:+-]+\}<code>"),
    "a directive fence shown raw": re.compile(r":{3,}\{|<code class=\"language-\{"),
    "a glue or eval role": re.compile(r"\{(?:glue|eval)"),
    "a MyST target": re.compile(r"<p>\([\w\-.:]+\)=</p>"),
}


def commonmark_problems(text: str) -> list[str]:
    """Raw MyST that a CommonMark renderer (Colab) would show in this Markdown."""
    html = _MATH_HTML.sub(" ", _COMMONMARK.render(text))
    return [f"{what}: {m.group(0)!r}" for what, pattern in _RAW_PATTERNS.items() for m in pattern.finditer(html)]


def test_renderer_models_flag_what_they_cannot_show():
    glued = "The gap is {glue:text}`gap:.2f` nats.\n\n```{glue:figure} fig\nA.\n```"
    assert jupyterlab_problems(glued) == ["role {glue:text} ('gap:.2f')", "directive {glue:figure} ('{glue:figure} fig')"]
    fine = (':::{exercise} Title\n:label: ex-a\n\nWrite {eval}`f"{gap:.2f}"`, see {cite}`kingma2014`.\n:::\n\n'
            ":::{solution-start} ex-a\n:class: dropdown\n:::\n\n$$\n\\{0, 1\\}^{784}\n$$")
    assert jupyterlab_problems(fine) == []
    assert jupyterlab_problems(":::{note}\nInside {glue}`x`.\n:::") == ["role {glue} ('x')"]
    assert commonmark_problems(fine)  # plain Markdown shows all of it raw
    kinds = {p.split(":")[0] for p in commonmark_problems(fine + "\n\n(sec-a)=\n\n```{note}\nA.\n```")}
    assert kinds == {"a role shown raw", "a directive fence shown raw", "a glue or eval role", "a MyST target"}
    assert commonmark_problems("Plain $x_{n}$ text with `code {x}` and **bold**, $$\\{a\\}$$.") == []


# --- the chapters in JupyterLab and Binder ------------------------------------------------------------

def _markdown(nb) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_render_in_jupyterlab(path):
    nb = nbformat.read(path, as_version=4)
    problems = [f"cell {i}: {p}" for i, text in _markdown(nb) for p in jupyterlab_problems(text)]
    assert not problems, f"{path.name}: jupyterlab-myst would show these raw: {problems[:5]}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_inline_expressions_are_ones_the_website_evaluates(path):
    """Every {eval} is a name or f"{name:fmt}": what `nb_eval_name_regex` lets myst-nb evaluate."""
    nb = nbformat.read(path, as_version=4)
    evals = [(i, c) for i, text in _markdown(nb) for kind, name, c in myst_syntax(text)
             if kind == "role" and name == "eval"]
    assert evals, f"{path.name} quotes no computed number"
    bad = [(i, c) for i, c in evals if not EVAL_REGEX.match(c)]
    assert not bad, f"{path.name}: inline expressions the website refuses: {bad[:5]}"


def test_glue_cells_are_hidden_on_the_site_and_the_script_is_applied():
    """Every chapter is in the form scripts/hide_glue.py writes (rerun it after a merge)."""
    assert not [p.name for p in CHAPTERS if hide_glue.convert_file(p, check=True)], \
        "run: python scripts/hide_glue.py book/*.ipynb"
    for path in CHAPTERS:
        cells = nbformat.read(path, as_version=4).cells
        teaching = [i for i, c in enumerate(cells) if c.cell_type == "code" and "vc.glue(" in c.source
                    and not hide_glue.is_glue_cell(c)]
        assert teaching == [], f"{path.name}: vc.glue left in teaching cells {teaching}"
        for cell in filter(hide_glue.is_glue_cell, cells):
            # hidden on the site, but still executed and shown in JupyterLab, Binder and Colab
            assert {"remove-input", "remove-output"} <= set(cell.metadata.get("tags", []))
            assert "remove-cell" not in cell.metadata.get("tags", [])


# --- the chapters in Colab: every quoted number is printed above the prose --------------------------------

def _quoted(text: str) -> list[tuple[str, str]]:
    out = []
    for kind, name, content in myst_syntax(text):
        if kind == "role" and name == "eval":
            m = re.fullmatch(r'\s*(?:(\w+)|f"\{(\w+)(?::([^"{}]*))?\}")\s*', content)
            out.append((m[1] or m[2], m[3] or ""))
    return out


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_quoted_number_is_printed_by_a_cell_above(path):
    """A Colab reader sees {eval} roles raw; the number each one stands for is in an output above it."""
    run = cached_run(path)
    printed, missing = "", []
    for cell in run.nb.cells:
        if cell.cell_type == "code":
            printed += _stdout(cell)
            continue
        for name, fmt in _quoted(cell.source):
            if name not in run.glue_raw:
                missing.append(f"{name} (not glued above this cell)")
                continue
            shown = format_value(run.glue_raw[name]["text/plain"], fmt)
            if f"{name} = {shown}" not in printed:
                missing.append(f"{name} = {shown}")
    assert not missing, f"{path.name}: numbers the prose quotes that no cell above prints: {missing[:8]}"


# --- the student edition --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def student_edition(student_edition_run):
    """The session's student edition (its numbers filled in from the session's chapter runs)."""
    edition, _ = student_edition_run
    return edition.files


def test_student_edition_reads_cleanly_as_plain_markdown(student_edition):
    for path in student_edition:
        nb = nbformat.read(path, as_version=4)
        problems = [f"cell {i}: {p}" for i, text in _markdown(nb) for p in commonmark_problems(text)]
        assert not problems, f"{path.name}: raw MyST a Colab reader would see: {problems[:5]}"
        left = [i for i, text in _markdown(nb) if "printed above)" in text]
        assert not left, f"{path.name}: cells {left} point at a printed value instead of quoting it"


def test_student_edition_quotes_the_chapters_numbers_not_their_names(student_edition):
    """Each number is the one the chapter glued, formatted as the prose asks, and no glued name is left."""
    for chapter, path in zip(CHAPTERS, student_edition):
        run = cached_run(chapter)
        prose = "\n".join(text for _, text in _markdown(nbformat.read(path, as_version=4)))
        spans = set(re.findall(r"`([^`\n]+)`", prose))
        named = sorted(spans & set(run.glue))
        assert not named, f"{path.name}: glued names where numbers belong: {named[:5]}"
        quoted = [q for _, text in _markdown(nbformat.read(chapter, as_version=4)) for q in _quoted(text)]
        absent = [(n, f) for n, f in quoted if format_value(run.glue_raw[n]["text/plain"], f) not in prose]
        assert quoted and not absent, f"{path.name}: numbers missing from the text: {absent[:5]}"


# --- the mechanism: vc.glue makes a name {eval} can read; the site evaluates it ------------------------------

def _run_cells(sources: list[str]):
    from nbclient import NotebookClient

    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb


def test_glue_records_the_value_and_binds_the_name():
    nb = _run_cells(["import torch\nimport vae_course as vc\nvc.glue('gap', torch.tensor(0.25))\n"
                     "for k in (1, 3):\n    vc.glue(f'kl_{k}', 1.5 * k)",
                     "print(repr(gap), kl_1, kl_3)"])
    assert _stdout(nb.cells[1]) == "0.25 1.5 4.5\n"  # a Python float, not a tensor
    records = [o.metadata["scrapbook"]["name"] for o in nb.cells[0].outputs if "scrapbook" in o.get("metadata", {})]
    assert records == ["gap", "kl_1", "kl_3"]  # the outputs tests/notebook_utils.collect_glue reads


def test_glue_rejects_names_that_cannot_be_variables():
    import vae_course as vc

    for bad in ("not a name", "class", "1st"):
        with pytest.raises(ValueError, match=r"name must be a Python identifier.*" + re.escape(repr(bad))):
            vc.glue(bad, 1.0)


def _demo_chapter():
    nb = new_notebook(cells=[
        new_markdown_cell("# 1. Demo"),
        new_code_cell("import vae_course as vc\n\nx = 1234.5678\nn = 2000\nprint('computed')\n"
                      "vc.glue('x_value', x)\nfor k in (1, 2):\n    vc.glue(f'n_{k}', k * n, display=False)"),
        new_markdown_cell("The value is {glue:text}`x_value:.2f` over {glue:text}`n_2:,d` points ({glue}`n_1`)."),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_hide_glue_moves_the_bookkeeping_and_is_idempotent():
    nb = hide_glue.convert(_demo_chapter())
    teaching, glue_cell, prose = nb.cells[1:]
    assert "vc.glue" not in teaching.source and teaching.source.endswith("print('computed')")
    assert glue_cell.metadata["tags"] == ["remove-input", "remove-output"]
    assert "vc.glue('x_value', x)\nfor k in (1, 2):\n    vc.glue(f'n_{k}', k * n)\n" in glue_cell.source
    assert 'print(f"{x_value = :.2f}", f"{n_2 = :,d}", f"{n_1 = }", sep="\\n")' in glue_cell.source
    assert prose.source == 'The value is {eval}`f"{x_value:.2f}"` over {eval}`f"{n_2:,d}"` points ({eval}`n_1`).'
    again = hide_glue.convert(nbformat.from_dict(nb))
    assert nbformat.writes(again) == nbformat.writes(nb)
    # A new glue line after a merge joins the existing glue cell, and the print follows the prose.
    nb.cells[1].source += "\nvc.glue('late', 7)"
    nb.cells[3].source += " Late: {glue:text}`late`."
    merged = hide_glue.convert(nb)
    assert len(merged.cells) == 4 and "vc.glue('late', 7)" in merged.cells[2].source
    assert 'f"{late = }"' in merged.cells[2].source and "vc.glue" not in merged.cells[1].source
    # A cell whose display would change (a bare expression would become its last line) is left alone.
    assert hide_glue.split_glue('x = 1\nx\nvc.glue("a", x)') == ('x = 1\nx\nvc.glue("a", x)', [])


def test_site_evaluates_inline_expressions_and_hides_the_glue_cell(tmp_path):
    """A one-chapter book with this repository's execution and eval settings, built strictly."""
    import subprocess

    nb = hide_glue.convert(_demo_chapter())
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: demo\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    config = {"title": "t", "execute": CONFIG["execute"], "parse": CONFIG["parse"],
              "sphinx": {"local_extensions": {"glued_eval": "_ext"}}}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    nbformat.write(nb, tmp_path / "demo.ipynb")
    exe = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run([str(exe), "build", "-W", "-n", "--keep-going", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html = (tmp_path / "_build" / "html" / "demo.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "The value is 1234.57 over 4,000 points (2000)." in text
    assert "computed" in text and "vc.glue" not in html and "x_value = " not in text


# --- JupyterLab itself: jupyterlab-myst evaluates the prose's numbers in a real browser ---------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_myst_shows_the_numbers_after_running(tmp_path):
    """Open a converted chapter in JupyterLab (headless Chromium), run it, read the rendered prose.

    jupyterlab-myst evaluates a Markdown cell's {eval} roles when the cell runs, but it shows the
    results only from the cell's second run (jupyter-book/jupyterlab-myst#289, open): after one
    "Run All" the expressions show as code, after a second the numbers. The preface says so.
    """
    import shutil
    import subprocess
    import time
    import urllib.request

    pytest.importorskip("jupyterlab_myst")
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine")
    nbformat.write(hide_glue.convert(_demo_chapter()), tmp_path / "demo.ipynb")
    port, token = _free_port(), "rendering-test"
    log = open(tmp_path / "lab.log", "w")
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
                            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(1)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/lab/tree/demo.ipynb?token={token}", timeout=180_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000)
            prose = page.locator(".jp-MarkdownCell").nth(1)
            time.sleep(3)
            dialogs = []
            for _ in range(3):  # first-run notices (news, kernel choice): record and accept them
                if page.locator(".jp-Dialog").count() == 0:
                    break
                dialogs.append(page.locator(".jp-Dialog").first.inner_text())
                page.locator(".jp-Dialog .jp-mod-accept").first.click()
                time.sleep(1)
            for _ in range(2):
                page.click("text=Run", timeout=30_000)
                page.click("text=Run All Cells", timeout=30_000)
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000)
                time.sleep(3)
            text = prose.inner_text()
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=60)
        log.close()
    assert "The value is 1234.57 over 4,000 points (2000)." in text, (text, dialogs)
