"""Hygiene of the book's sources: no stored outputs, a complete table of contents, no typed numbers.

Every number the prose states must be computed by a cell and glued (`{glue:text}`), so the text
cannot drift from the code. The detectors are tested on small synthetic inputs first, so a
detector that cannot fail would show up here.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from synthetic_book import make_book

from vae_course.classroom.edition import toc_files

REPO = Path(__file__).resolve().parent.parent
SKIP_DIRS = {"_build", ".ipynb_checkpoints", "__pycache__"}

# --- detectors ------------------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[\w:-]+)\}")
_OPTION = re.compile(r"^\s*:[\w-]+:.*$")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S)
_CODE_SPAN = re.compile(r"(?:\{[\w:+-]+\})?(`+)[^`]*?\1")
_LINK = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+|<[^>]+>")
_NUMBER = re.compile(r"(?<![\w.])(?:\d+(?:\.\d+)?\s*%|[-−+]?\d+(?:\.\d+)+)(?![\w.]*\d)")
# Version numbers are not claims: licences, languages and tools.
_VERSION = re.compile(r"\b(?:CC[ -]BY(?:-[A-Z]{2})*|[Vv]ersion|v|Python|PyTorch|torch|NumPy|numpy|"
                      r"Jupyter Book|jupyter-book|Apache|GPL)\s*\d+(?:\.\d+)*")
# A glued name shown in the prose: `{glue:text}` roles and directives, and the inline expressions
# ({eval}`name`, {eval}`f"{name:.2f}"`) that the chapters use (scripts/hide_glue.py).
_GLUE_USE = re.compile(r"\{glue(?::\w*)?\}`([^`:]+)(?::[^`]*)?`|^\s*(?:`{3,}|:{3,})\{glue(?::\w+)?\}\s*(\S+)"
                       r"|\{eval\}`(?:f\"\{)?([A-Za-z_]\w*)", re.M)
_GLUE_CALL = re.compile(r"\bglue\(\s*(f?)([\"'])(.+?)\2")


def _prose_lines(text: str) -> list[str]:
    """The lines of `text` that are prose: code blocks, math blocks and directive options removed."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        directive = _DIRECTIVE.match(m["info"].strip())
        end = next((j for j in range(i + 1, len(lines))
                    if set(lines[j].strip()) == {m["fence"][0]} and len(lines[j].strip()) >= len(m["fence"])), len(lines))
        if directive and directive["name"] not in ("math", "code", "code-block", "code-cell"):
            out += [line for line in lines[i + 1:end] if not _OPTION.match(line)]
        i = end + 1
    return out


def literal_numbers(markdown: str) -> list[str]:
    """Decimal numbers and percentages typed into prose (outside math, code, links and options)."""
    text = "\n".join(_prose_lines(markdown))
    for pattern in (_MATH, _CODE_SPAN, _LINK, _VERSION):
        text = pattern.sub(" ", text)
    text = re.sub(r"^\s*#+\s+[\d.]+\s", "", text, flags=re.M)  # heading numbers such as `# 3. Title`
    text = re.sub(r"^\s*%.*$", "", text, flags=re.M)  # MyST comments
    found = [m.group(0).strip() for m in _NUMBER.finditer(text)]
    return [n for n in found if n.endswith("%") or n.count(".") == 1]  # 1.2.3 is a version


def glue_problems(nb, name: str = "notebook", read_by_tests: str = "") -> list[str]:
    """Glue names used in markdown but never glued, and glued names that nothing reads.

    A glued name is read when the text shows it or a test quotes it (`read_by_tests`: test sources).
    """
    used = {a or b or e for c in nb.cells if c.cell_type == "markdown" for a, b, e in _GLUE_USE.findall(c.source)}
    used = {u for u in used if "::" not in u}  # a name glued in another notebook
    quoted = set(re.findall(r"[\"']([\w.-]+)[\"']", read_by_tests))
    literal, patterns = set(), []
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for is_f, _, glued in _GLUE_CALL.findall(cell.source):
            if is_f:  # glue(f"kl_{k}", ...): any name of that shape
                parts = re.split(r"\{[^}]*\}", glued)
                patterns.append(re.compile(".+".join(re.escape(p) for p in parts) + "$"))
            else:
                literal.add(glued)
    missing = sorted(u for u in used if u not in literal and not any(p.match(u) for p in patterns))
    unused = sorted(literal - used - quoted) + [p.pattern for p in patterns if not any(p.match(u) for u in used)]
    return ([f"{name}: {{glue}} name '{u}' is not glued by any code cell" for u in missing]
            + [f"{name}: glued name '{u}' is neither shown in the text nor read by a test" for u in unused])


def output_problems(nb, name: str = "notebook") -> list[str]:
    return [f"{name} cell {i}: stored {'outputs' if c.outputs else 'execution count'}"
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]


def book_pages(root: Path) -> list[Path]:
    folder = root / "book"
    return sorted(p for p in folder.rglob("*") if p.suffix in (".ipynb", ".md")
                  and not SKIP_DIRS & set(p.relative_to(folder).parts))


def toc_problems(root: Path) -> list[str]:
    entries = toc_files(root)
    listed = {p.resolve() for _, p in entries if p is not None}
    missing = [f"_toc.yml entry '{e}' has no file" for e, p in entries if p is None]
    unlisted = [f"{p.relative_to(root)} is not in _toc.yml" for p in book_pages(root) if p.resolve() not in listed]
    return missing + unlisted


def notebook_problems(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    numbers = [f"{path.name} cell {i}: typed number {n!r} (compute it and glue it)"
               for i, c in enumerate(nb.cells) if c.cell_type == "markdown" for n in literal_numbers(c.source)]
    return output_problems(nb, path.name) + numbers + glue_problems(nb, path.name, read_test_sources())


def read_test_sources() -> str:
    """The tests that read glued values (this file excluded: its examples would count)."""
    return "\n".join(p.read_text() for p in sorted(Path(__file__).parent.glob("*.py")) if p.name != Path(__file__).name)


# --- the detectors on synthetic inputs -------------------------------------------------------------

@pytest.mark.parametrize("text, found", [
    ("the gap is 0.52 nats", ["0.52"]),
    ("a loss of -103.4 nats per example", ["-103.4"]),
    ("about 12% of the pixels and 3.5 % of the rest", ["12%", "3.5 %"]),
    (":::{note}\nThe KL is 1.25 nats.\n:::", ["1.25"]),
    ("| model | nats |\n|---|---|\n| VAE | 98.1 |", ["98.1"]),
])
def test_detector_flags_typed_numbers(text, found):
    assert literal_numbers(text) == found


@pytest.mark.parametrize("text", [
    "$\\sigma^2 = 0.5$ is the variance",
    "$$\n\\log p(x) \\approx -0.69\n$$",
    "\\begin{align}\na &= 0.5\n\\end{align}",
    "the gap is {glue:text}`gap:.2f` nats",
    "see {cite}`kingma2014` and [the paper](https://arxiv.org/abs/1312.6114)",
    "call `torch.manual_seed(0.5)` first",
    "```python\nx = 0.25\n```",
    "```{math}\n:label: eq-a\nb = 0.5\n```",
    "```{figure} img.png\n:width: 80%\n:scale: 0.5\nA figure.\n```",
    "# 3. Linear models\n\nWe use 784 pixels, 4,000 images and 2^784 states.",
    "Python 3.11 and torch 2.13.0 are fine, and 1.4.0 too; so is <img width=\"50%\">.",
    "MNIST, licensed CC BY-SA 3.0, version 2.1.",
    "% a comment with 0.5 in it",
    "Chapter 2. Then 3 more.",
])
def test_detector_ignores_math_code_links_and_integers(text):
    assert literal_numbers(text) == []


def _glue_nb(code: str, md: str):
    return new_notebook(cells=[new_code_cell(code), new_markdown_cell(md)])


def test_glue_names_must_match():
    ok = _glue_nb('glue("gap", 0.5, display=False)\nglue("fig", f)', "gap {glue:text}`gap:.2f`\n\n```{glue:figure} fig\nA.\n```")
    assert glue_problems(ok) == []
    missing = _glue_nb('glue("gap", 0.5)', "{glue:text}`gap:.2f` and {glue:text}`kl:.1f`")
    assert glue_problems(missing, "nb") == ["nb: {glue} name 'kl' is not glued by any code cell"]
    unused = _glue_nb('glue("gap", 0.5)\nglue("kl", 1.0)', "{glue}`gap`")
    assert glue_problems(unused, "nb") == ["nb: glued name 'kl' is neither shown in the text nor read by a test"]
    assert glue_problems(unused, "nb", read_by_tests='assert glued["kl"] == 1.0') == []
    looped = _glue_nb('for k in range(2):\n    glue(f"kl_{k}", 1.0)', "{glue:text}`kl_0:.2f`, {glue:text}`kl_1`")
    assert glue_problems(looped) == []


def test_outputs_and_execution_counts_are_flagged():
    nb = new_notebook(cells=[new_code_cell("1"), new_code_cell("2", execution_count=3), new_code_cell("3")])
    nb.cells[2].outputs = [new_output("stream", name="stdout", text="3\n")]
    assert output_problems(nb, "nb") == ["nb cell 1: stored execution count", "nb cell 2: stored outputs"]


def test_toc_problems_on_a_synthetic_book(tmp_path):
    book = make_book(tmp_path)
    assert toc_problems(book) == []
    (book / "book" / "extra.md").write_text("# Extra\n")
    (book / "book" / "_build").mkdir()
    (book / "book" / "_build" / "ignored.md").write_text("# built\n")
    (book / "_toc.yml").write_text((book / "_toc.yml").read_text() + "  - file: book/gone\n")
    assert toc_problems(book) == ["_toc.yml entry 'book/gone' has no file", "book/extra.md is not in _toc.yml"]


def test_synthetic_chapter_is_clean_and_a_typed_number_is_caught(tmp_path):
    book = make_book(tmp_path)
    path = book / "book" / "01_demo.ipynb"
    assert notebook_problems(path) == []
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_markdown_cell("So the loss is 98.25 nats."))
    nbformat.write(nb, path)
    assert notebook_problems(path) == [f"01_demo.ipynb cell {len(nb.cells) - 1}: typed number '98.25' (compute it and glue it)"]


# --- the real book -------------------------------------------------------------------------------------

def test_table_of_contents_matches_the_files():
    assert not toc_problems(REPO), "\n".join(toc_problems(REPO))


@pytest.mark.parametrize("path", [p for p in book_pages(REPO) if p.suffix == ".ipynb"], ids=lambda p: p.stem)
def test_notebook_is_clean(path):
    problems = notebook_problems(path)
    assert not problems, "\n".join(problems)
