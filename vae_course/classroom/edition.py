"""The student edition: every chapter with its solutions replaced by stubs, in plain Markdown.

Taught in: the preface ("The student edition"). `python -m vae_course student-edition OUTDIR`
(or `vae-course student-edition OUTDIR`) reads the chapters listed in `_toc.yml` and writes,
for each, a notebook in which

- every solution body (the lines strictly between `### BEGIN SOLUTION` and `### END SOLUTION`)
  becomes `# YOUR CODE HERE` and `raise NotImplementedError(...)` at the same indentation;
- MyST-only syntax (directives such as `:::{exercise}`, roles such as `{cite}`) becomes plain
  Markdown, so the notebook reads well in Jupyter and Colab;
- every number the prose quotes (an inline expression, MyST's ``{eval}`` role holding
  ``f"{gap:.2f}"``, or a ``{glue:text}`` role holding ``gap:.2f``) becomes the number itself,
  formatted as the prose asks: each
  chapter is executed once, with its solutions, to read the values it glues (`vc.glue`). Cells
  after an exercise use the package's reference implementation, so a student's run prints the
  same numbers. With `run=False` nothing executes and each number becomes a pointer to the
  value the cell above prints;
- a short note at the top says how to work with it.

Everything else (cells, tags, metadata) is kept. Cells after an exercise call the package's
reference implementation, so the student edition runs top to bottom before any exercise is done.
"""
from __future__ import annotations

import ast
import copy
import re
import tempfile
from pathlib import Path

import nbformat

__all__ = ["EditionError", "find_book_root", "toc_files", "chapter_notebooks", "stub_solutions",
           "count_solutions", "to_plain_markdown", "glued_values", "chapter_values", "student_notebook",
           "write_student_edition"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB_MESSAGE = "Replace this line with your solution, then run the check cell below."
INTRO = """**Student edition.** This copy of the chapter leaves the exercises to you.

- Each exercise is a function whose body reads `# YOUR CODE HERE` and `raise NotImplementedError(...)`:
  replace those two lines with your code and run the cell.
- Then run the check cell right after it: it prints ✅, or one specific problem (a wrong shape, a wrong
  value at a named input, a missing gradient).
- Later cells use the course package's own implementation, so the notebook runs top to bottom before
  you solve anything.
- The numbers in the text are those the chapter computes with the reference solutions; the cells print
  them too, and your run gives the same ones. The course website shows the full chapter, with its
  solutions behind a toggle."""
STUDENT_TAG = "student-edition-note"


class EditionError(ValueError):
    """A chapter cannot be turned into its student edition (the message names notebook and cell)."""


# --- finding the chapters -------------------------------------------------------------------

def find_book_root(book: str | Path | None = None) -> Path:
    """The folder holding `_toc.yml`: `book` if given, else the repository around this package."""
    candidates = [Path(book)] if book is not None else [Path(__file__).resolve().parents[2], Path.cwd()]
    for root in candidates:
        if (root / "_toc.yml").is_file():
            return root.resolve()
    where = " or ".join(str(c) for c in candidates)
    raise EditionError(f"no _toc.yml found in {where}; pass --book with the folder that holds _toc.yml")


def _toc_entries(node) -> list[str]:
    if isinstance(node, list):
        return [f for item in node for f in _toc_entries(item)]
    if not isinstance(node, dict):
        return []
    found = [node[key] for key in ("root", "file") if isinstance(node.get(key), str)]
    return found + [f for key in ("parts", "chapters", "sections") for f in _toc_entries(node.get(key))]


def toc_files(root: Path) -> list[tuple[str, Path | None]]:
    """Each `_toc.yml` entry in reading order, with the file it names (None if there is none)."""
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8"))
    out = []
    for entry in _toc_entries(toc):
        path = Path(root) / entry
        matches = [p for p in (path, *(path.with_name(path.name + s) for s in (".ipynb", ".md")))
                   if p.is_file()]
        out.append((entry, matches[0] if matches else None))
    return out


def chapter_notebooks(root: Path) -> list[Path]:
    """The notebooks listed in `_toc.yml`, in reading order."""
    return [p for _, p in toc_files(root) if p is not None and p.suffix == ".ipynb"]


# --- solutions -> stubs ----------------------------------------------------------------------

def _marker(line: str) -> str | None:
    text = line.strip()
    return text if text in (BEGIN, END) else None


def stub_solutions(source: str, where: str = "cell", markdown: bool = False) -> str:
    """Replace every solution body of `source` with a stub at the markers' indentation."""
    out, begin_indent = [], None
    for line in source.split("\n"):
        mark = _marker(line)
        if mark == BEGIN:
            if begin_indent is not None:
                raise EditionError(f"{where}: nested {BEGIN!r} (the previous block has no {END!r})")
            begin_indent = line[: len(line) - len(line.lstrip())]
        elif mark == END:
            if begin_indent is None:
                raise EditionError(f"{where}: {END!r} without a {BEGIN!r} before it")
            out += _stub(begin_indent, markdown)
            begin_indent = None
        elif begin_indent is None:
            out.append(line)
    if begin_indent is not None:
        raise EditionError(f"{where}: {BEGIN!r} without a matching {END!r}")
    return "\n".join(out)


def _stub(indent: str, markdown: bool) -> list[str]:
    if markdown:
        return [f"{indent}*YOUR ANSWER HERE*"]
    return [f"{indent}# YOUR CODE HERE", f'{indent}raise NotImplementedError("{STUB_MESSAGE}")']


def count_solutions(source: str) -> int:
    """How many solution blocks `source` holds."""
    return sum(_marker(line) == BEGIN for line in source.split("\n"))


# --- MyST -> plain Markdown --------------------------------------------------------------------

_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
_PLAIN_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_OPTION = re.compile(r"^\s*:(?P<key>[\w-]+):\s*(?P<value>.*)$")
_TARGET = re.compile(r"^\s*\([\w\-.:]+\)=\s*$")
_LABELLED_MATH = re.compile(r"(\$\$)\s*\([\w\-.:]+\)\s*$")
_ROLE_OR_CODE = re.compile(r"\{(?P<name>[\w:+-]+)\}`(?P<content>[^`]*)`|```.*?```|`[^`\n]*`", re.S)

ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger",
               "error", "seealso", "admonition", "dropdown", "margin", "sidebar", "topic", "epigraph"}


def to_plain_markdown(text: str, notebooks: dict[str, str] | None = None, values: dict[str, str] | None = None) -> str:
    """Rewrite MyST directives and roles of a markdown cell as plain Markdown.

    `notebooks` maps the names (without suffix) of the edition's notebooks to their titles:
    `{doc}` links to them become Markdown links. `values` maps glued names to the `text/plain`
    form of their values (see `glued_values`): an ``{eval}`` role holding ``f"{gap:.2f}"`` and a
    ``{glue:text}`` role holding ``gap:.2f`` become the formatted number; a name without a value becomes a
    pointer to the value the cells above print.
    """
    lines = _convert_blocks(text.split("\n"))
    body = "\n".join(lines)
    body = _convert_roles(body, notebooks or {}, values or {})
    return re.sub(r"\n{3,}", "\n\n", body).strip("\n")


def _convert_blocks(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        plain = _PLAIN_FENCE.match(line)
        opened = _OPEN.match(line)
        if opened:
            end = _closing(lines, i + 1, opened["fence"])
            out += _render_directive(opened, lines[i + 1:end])
            i = end + 1
        elif plain:
            end = _closing(lines, i + 1, plain.group(1))
            out += lines[i:end + 1]
            i = end + 1
        elif _TARGET.match(line) or line.lstrip().startswith("% "):
            i += 1  # MyST targets `(label)=` and comments `% ...` mean nothing in Jupyter
        else:
            out.append(_LABELLED_MATH.sub(r"\1", line))
            i += 1
    return out


def _closing(lines: list[str], start: int, fence: str) -> int:
    char, n = fence[0], len(fence)
    for j in range(start, len(lines)):
        stripped = lines[j].strip()
        if len(stripped) >= n and set(stripped) == {char}:
            return j
    return len(lines)


def _split_options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    options, i = {}, 0
    if body and body[0].strip() == "---":  # YAML block of options
        end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), 0)
        for line in body[1:end]:
            key, _, value = line.partition(":")
            options[key.strip()] = value.strip()
        return options, body[end + 1:]
    while i < len(body) and (m := _OPTION.match(body[i])):
        options[m["key"]] = m["value"]
        i += 1
    return options, body[i:]


def _render_directive(opened: re.Match, raw_body: list[str]) -> list[str]:
    name, arg, indent = opened["name"], opened["arg"].strip(), opened["indent"]
    options, body = _split_options([b[len(indent):] if b.startswith(indent) else b for b in raw_body])
    if name != "math" and not name.startswith(("code", "glue")):
        body = _convert_blocks(body)
    rendered = _render(name, arg, options, body)
    return [indent + r if r else r for r in rendered]


def _trim(body: list[str]) -> list[str]:
    text = "\n".join(body).strip("\n")
    return text.split("\n") if text else []


def _paragraph(title: str, body: list[str]) -> list[str]:
    return ["", title, "", *body, ""]


def _render(name: str, arg: str, options: dict, body: list[str]) -> list[str]:
    text = "\n".join(body).strip()
    if name == "exercise":
        return _paragraph(f"**Exercise ({arg}).**" if arg else "**Exercise.**", body)
    if name == "solution-start":
        return ["", "Write your answer in the next cell.", ""]
    if name == "solution-end":
        return []
    if name == "solution":
        return ["", "*(The solution is left out of the student edition.)*", ""]
    if name in ADMONITIONS:
        title = arg if name in ("admonition", "dropdown", "topic", "sidebar") and arg else name.capitalize()
        return ["", f"> **{title}**", ">", *[f"> {b}".rstrip() for b in _trim(body)], ""]
    if name == "math":
        return ["", "$$", *body, "$$", ""]
    if name in ("code", "code-block", "code-cell", "sourcecode"):
        return ["", f"```{arg.split()[0] if arg else ''}", *body, "```", ""]
    if name.startswith("glue"):
        caption = f" {text}" if text else ""
        return ["", f"*(The output `{arg}` appears when you run the cells above.){caption}*", ""]
    if name in ("figure", "image"):
        caption = text or options.get("alt", "")
        return ["", f"*Figure: {caption}*" if caption else "", ""]
    if name.startswith("prf:"):
        kind = name[4:].capitalize()
        head = f"**{kind} ({arg}).**" if arg else f"**{kind}.**"
        return _paragraph(f"*{kind}.*" if kind == "Proof" else head, body)
    return _paragraph(f"**{arg or name.capitalize()}**", body) if arg or body else []


def _role_text(content: str) -> tuple[str, str]:
    """`text <target>` -> (text, target); `target` -> (target, target)."""
    m = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", content.strip(), re.S)
    return (m["text"], m["target"]) if m else (content.strip(), content.strip())


_EVAL_CONTENT = re.compile(r'^\s*(?:(?P<name>[A-Za-z_]\w*)|f"\{(?P<fname>[A-Za-z_]\w*)(?::(?P<fmt>[^"{}]*))?\}")\s*$')


def format_value(text: str, fmt: str = "") -> str:
    """A glued `text/plain` value formatted by a format spec, as myst-nb formats `{glue:text}`."""
    m = re.fullmatch(r"np\.\w+\((.*)\)", text.strip())  # NumPy 2 scalars print as np.float64(1.5)
    try:
        value = ast.literal_eval(m.group(1) if m else text)
    except (ValueError, SyntaxError):
        value = text
    if not fmt:
        return str(value)
    kind = fmt[-1]
    if kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    elif kind == "s":
        value = str(value)
    return format(value, fmt)


def _quoted_number(name: str, fmt: str, values: dict[str, str]) -> str:
    if name in values:
        return format_value(values[name], fmt)
    return f"(the value of `{name}` printed above)"


def _render_role(name: str, content: str, notebooks: dict[str, str], values: dict[str, str]) -> str:
    if name == "eval":
        m = _EVAL_CONTENT.match(content)
        if m is None:
            raise EditionError(f"an {{eval}} role must hold a name or f\"{{name:format}}\", got {content!r}")
        return _quoted_number(m["name"] or m["fname"], m["fmt"] or "", values)
    if name.startswith("glue"):
        key, _, fmt = content.partition(":")
        return _quoted_number(key.strip(), fmt.strip(), values)
    if name.startswith("cite"):
        return "[" + "; ".join(k.strip() for k in content.split(",")) + "]"
    if name == "math":
        return f"${content}$"
    if name == "eq":
        return f"({content})"
    text, target = _role_text(content)
    if name == "numref":
        text = text.replace("%s", "").replace("{number}", "").strip() or target
    if name == "doc":
        stem = target.rstrip("/").split("/")[-1]
        if stem not in notebooks:
            return text
        return f"[{notebooks[stem] if text == target else text}]({stem}.ipynb)"
    return text


def _convert_roles(body: str, notebooks: dict[str, str], values: dict[str, str]) -> str:
    """Rewrite roles; code spans and fenced code are left as they are."""
    def sub(m: re.Match) -> str:
        return _render_role(m["name"], m["content"], notebooks, values) if m["name"] else m[0]
    return _ROLE_OR_CODE.sub(sub, body)


# --- the notebook and the edition ------------------------------------------------------------

def _intro_cell():
    cell = nbformat.v4.new_markdown_cell(INTRO)
    cell.metadata["tags"] = [STUDENT_TAG]
    return cell


GLUE_PREFIX = "application/papermill.record/"


def glued_values(nb) -> dict[str, str]:
    """The values an executed notebook glued (myst-nb's `glue` outputs), as `text/plain`, by name."""
    found = {}
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook")
            if not record:
                continue
            prefix = record.get("mime_prefix", GLUE_PREFIX)
            text = out.get("data", {}).get(prefix + "text/plain")
            if text is not None:
                found[record["name"]] = text
    return found


def chapter_values(path: str | Path, timeout: float = 300) -> dict[str, str]:
    """Execute a copy of the chapter at `path` once, in a temporary folder; return `glued_values`.

    Raises EditionError, naming the chapter and the failing cell, if it does not run.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="vae-course-edition-") as folder:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": folder}})
        try:
            client.execute()
        except CellExecutionError as e:
            raise EditionError(f"{path.name} does not run, so its numbers are unknown: {e}") from e
    return glued_values(nb)


def student_notebook(nb, name: str = "notebook", notebooks: dict[str, str] | None = None,
                     values: dict[str, str] | None = None):
    """A copy of `nb` with stubs for solutions and plain Markdown; raises EditionError.

    `values` (from `chapter_values`) supplies the numbers the prose quotes.
    """
    nb = copy.deepcopy(nb)
    cells = [_intro_cell()]
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        source = stub_solutions(cell.source, where, markdown=cell.cell_type == "markdown")
        if cell.cell_type == "markdown":
            source = to_plain_markdown(source, notebooks, values)
            if not source.strip():
                continue  # e.g. a `{solution-end}` cell
        elif cell.cell_type == "code" and source != cell.source:
            cell.outputs, cell.execution_count = [], None
        cell.source = source
        cells.append(cell)
    nb.cells = cells
    return nb


def _title(nb, default: str) -> str:
    """The text of the notebook's first `# ` heading."""
    for cell in (c for c in nb.cells if c.cell_type == "markdown"):
        for line in cell.source.split("\n"):
            if line.startswith("# "):
                return line[2:].strip()
    return default


def _check_outdir(out: Path, root: Path, force: bool) -> None:
    out_r, root_r = out.resolve(), root.resolve()
    chapters = {p.parent.resolve() for p in chapter_notebooks(root)} - {root_r}
    inside_chapters = any(out_r == d or d in out_r.parents for d in chapters)
    if inside_chapters or out_r == root_r or out_r in root_r.parents:
        raise EditionError(f"refusing to write the student edition into {out}: it would mix with "
                           "the source chapters. Choose a folder outside the book's chapters.")
    if out.exists() and not out.is_dir():
        raise EditionError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise EditionError(f"{out} is not empty; pass --force to write into it anyway")


def _quotes_numbers(nb) -> bool:
    return any(re.search(r"\{(?:eval|glue[\w:]*)\}`", c.source) for c in nb.cells if c.cell_type == "markdown")


def _all_values(paths: list[Path]) -> dict[Path, dict[str, str]]:
    """`chapter_values` of each chapter, the chapters running side by side (one kernel each)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    if not paths:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        return dict(zip(paths, pool.map(chapter_values, paths)))


def write_student_edition(outdir: str | Path, book: str | Path | None = None,
                          force: bool = False, run: bool = True,
                          values: dict[str, dict[str, str]] | None = None) -> list[Path]:
    """Write the student edition of every chapter into `outdir`; return the files written.

    With `run` (the default), each chapter that quotes numbers is executed once to fill them in
    (a few seconds per chapter); `run=False` executes nothing. `values` maps a chapter's file
    name without suffix (``"03_linear_models"``) to the glued values of an execution made
    elsewhere (`glued_values` of an executed copy); those chapters are not executed again.
    """
    root, out = find_book_root(book), Path(outdir)
    _check_outdir(out, root, force)
    sources = chapter_notebooks(root)
    chapters = [nbformat.read(p, as_version=4) for p in sources]
    titles = {p.stem: _title(nb, p.stem) for p, nb in zip(sources, chapters)}
    for path, nb in zip(sources, chapters):  # marker errors surface before anything executes
        student_notebook(nb, path.name, titles)
    given = dict(values or {})
    ran = _all_values([p for p, nb in zip(sources, chapters)
                       if run and p.stem not in given and _quotes_numbers(nb)])
    values = [given.get(p.stem, ran.get(p, {})) for p in sources]
    editions = [student_notebook(nb, p.name, titles, v) for p, nb, v in zip(sources, chapters, values)]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, nb in zip(sources, editions):  # every chapter converted before anything is written
        nbformat.validate(nb)
        target = out / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written
