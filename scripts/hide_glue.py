"""Move the glue bookkeeping out of the teaching cells and let the prose quote numbers with `{eval}`.

    python scripts/hide_glue.py book/01_generative_modelling.ipynb [more notebooks...]
    python scripts/hide_glue.py --check book/*.ipynb     # exit 1 if a notebook would change

For each notebook, in place (idempotent: running it twice changes nothing the second time):

1. Every top-level `vc.glue(...)` statement of a code cell (and every `for` loop that only glues)
   moves, in its original order, into a code cell of its own right after that cell, tagged
   `remove-input` and `remove-output`: hidden on the website but still executed there
   (myst-nb's inline execution runs every cell it renders; a `remove-cell` cell would not run
   before the prose that quotes it), by nbval, and in JupyterLab. `display=False` (the default)
   is dropped. If the next cell already is such a glue cell, the statements join it.
2. Each glue cell ends with a `print` of every number the prose quotes from it, formatted as the
   prose formats it, for readers whose Markdown does not evaluate `{eval}` (Colab). The print is
   regenerated on every run, so it follows edits to the prose.
3. In the Markdown, ``{glue:text}`name:fmt` `` becomes ``{eval}`f"{name:fmt}"` `` and
   ``{glue:text}`name` `` or ``{glue}`name` `` becomes ``{eval}`name` ``: an inline expression
   that myst-nb (`execute_notebooks: inline` in `_config.yml`) and jupyterlab-myst both evaluate.
   `vc.glue` binds each glued name as a variable of the notebook for this.

After merging a branch that edited chapters (new `vc.glue` lines or `{glue:text}` roles), run the
script again on the chapters; it only touches what is not converted yet, plus the prints.

One rule the script cannot apply for you: the prose may quote a number only after the cell that
glues it. Inline execution (the website) and JupyterLab evaluate `{eval}` in reading order, and a
Colab reader needs the printed value above the text. `tests/test_rendering.py` and the strict
site build fail on a number quoted too early; move the sentence, or the computation, up.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

HIDDEN_TAGS = ["remove-input", "remove-output"]
HEADER = ("# The numbers the text quotes (this cell is hidden on the website). vc.glue records each one\n"
          "# for the tests and makes its name a variable, which the text's {eval} roles display.")
PRINT_MARK = "# For readers whose Markdown shows {eval} roles unevaluated (Colab), the same numbers:"

_GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`(?P<name>[A-Za-z_]\w*)(?::(?P<fmt>[^`]*))?`")
_EVAL_ROLE = re.compile(r"\{eval\}`(?:(?P<name>[A-Za-z_]\w*)|f\"\{(?P<fname>[A-Za-z_]\w*)(?::(?P<fmt>[^\"{}]*))?\}\")`")
_DISPLAY_FALSE = re.compile(r",\s*display\s*=\s*False(?=\s*\))")


# --- Markdown -----------------------------------------------------------------------------------

def glue_role_to_eval(text: str) -> str:
    """``{glue:text}`x:.2f` `` -> ``{eval}`f"{x:.2f}"` ``; ``{glue:text}`x` `` -> ``{eval}`x` ``."""
    def sub(m: re.Match) -> str:
        fmt = m["fmt"]
        return f'{{eval}}`f"{{{m["name"]}:{fmt}}}"`' if fmt else f"{{eval}}`{m['name']}`"
    return _GLUE_ROLE.sub(sub, text)


def quoted_names(markdown: list[str]) -> dict[str, str]:
    """Each name the prose shows with `{eval}`, with the first format it is shown in ('' for none)."""
    found: dict[str, str] = {}
    for text in markdown:
        for m in _EVAL_ROLE.finditer(text):
            name = m["name"] or m["fname"]
            if not found.get(name):
                found[name] = m["fmt"] or ""
    return found


# --- code cells ---------------------------------------------------------------------------------

def _python(source: str) -> str | None:
    """The cell as Python (IPython magics turned into calls, line for line), or None."""
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager().transform_cell(source)
    if len(python.rstrip("\n").split("\n")) != len(source.rstrip("\n").split("\n")):
        return None  # a cell magic reshaped the cell: leave it alone
    return python


def _is_glue_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "vc.glue")


def _only_glues(node: ast.stmt) -> bool:
    if _is_glue_call(node):
        return True
    return isinstance(node, ast.For) and not node.orelse and all(_only_glues(s) for s in node.body)


def split_glue(source: str) -> tuple[str, list[str]]:
    """(the cell without its top-level glue statements, those statements' source in order)."""
    python = _python(source)
    if python is None or "vc.glue" not in source:
        return source, []
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return source, []
    lines = source.split("\n")
    moved, drop = [], set()
    for node in tree.body:
        if _only_glues(node):
            span = range(node.lineno - 1, node.end_lineno)
            moved.append(_DISPLAY_FALSE.sub("", "\n".join(lines[i] for i in span)))
            drop.update(span)
    if not moved:
        return source, []
    rest = [node for node in tree.body if not _only_glues(node)]
    if rest and isinstance(rest[-1], ast.Expr) and not isinstance(rest[-1].value, ast.Call) and \
            rest[-1].lineno - 1 < max(drop):
        return source, []  # moving the glue would make a bare expression the cell's last, displayed line
    kept = [line for i, line in enumerate(lines) if i not in drop]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")
    return text, moved


def is_glue_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.source.startswith(HEADER.split("\n")[0])


def _glue_statements(cell) -> list[str]:
    """The glue statements of an existing glue cell (header and print block removed)."""
    body = cell.source.split(PRINT_MARK)[0]
    body = body[len(HEADER):] if body.startswith(HEADER) else body.split("\n", 1)[-1]
    return [body.strip("\n")] if body.strip() else []


def _glue_patterns(statements: list[str]) -> list[tuple[str, int]]:
    """(regex of the glued name, how specific it is) for each `vc.glue` call of these statements.

    A literal name is matched exactly (most specific); `vc.glue(f"kl_{k}", ...)` matches every name
    of that shape, ranked by the length of its literal text.
    """
    patterns = []
    for node in ast.walk(ast.parse("\n".join(statements))):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "vc.glue" and node.args):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            patterns.append((re.escape(first.value), sys.maxsize))
        elif isinstance(first, ast.JoinedStr):
            literal = [v.value for v in first.values if isinstance(v, ast.Constant)]
            regex = "".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in first.values)
            patterns.append((regex, len("".join(literal))))
    return patterns


def owners(glue_cells: list[list[str]], quoted: dict[str, str]) -> list[list[str]]:
    """For each glue cell (its statements), the quoted names it glues, in the prose's order.

    A name that several calls could glue belongs to the most specific one (a literal name beats
    `f"ch2_{name}"`), so each number is printed once, by the cell that computes it.
    """
    ranked = [_glue_patterns(statements) for statements in glue_cells]
    owned: list[list[str]] = [[] for _ in glue_cells]
    for name in quoted:
        best = max(((rank, -i) for i, patterns in enumerate(ranked) for regex, rank in patterns
                    if re.fullmatch(regex, name)), default=None)
        if best is not None:
            owned[-best[1]].append(name)
    return owned


def _print_block(names: list[str], quoted: dict[str, str]) -> str:
    if not names:
        return ""
    parts = [f'f"{{{n} = :{quoted[n]}}}"' if quoted[n] else f'f"{{{n} = }}"' for n in names]
    lines, line = [], "print("
    for part in [*parts, 'sep="\\n")']:
        piece = part if part.endswith(")") else part + ","
        if len(line) + len(piece) + 1 > 118 and line.strip() != "print(":
            lines.append(line.rstrip())
            line = "      "
        line += piece + " "
    lines.append(line.rstrip())
    return PRINT_MARK + "\n" + "\n".join(lines)


def glue_cell_source(statements: list[str], quoted: dict[str, str], names: list[str] = ()) -> str:
    block = _print_block(list(names), quoted)
    return "\n".join([HEADER, *statements] + ([block] if block else []))


def _new_glue_cell(statements: list[str], quoted: dict[str, str]):
    cell = nbformat.v4.new_code_cell(glue_cell_source(statements, quoted))
    cell.metadata["tags"] = list(HIDDEN_TAGS)
    return cell


# --- a notebook ---------------------------------------------------------------------------------

def convert(nb):
    """Convert `nb` in place (see the module docstring); return it."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = glue_role_to_eval(cell.source)
    quoted = quoted_names([c.source for c in nb.cells if c.cell_type == "markdown"])
    cells, consumed = [], set()
    for index, cell in enumerate(nb.cells):
        if is_glue_cell(cell):
            if index not in consumed:  # a glue cell after a Markdown cell: keep it, refresh its print
                cell.source = glue_cell_source(_glue_statements(cell), quoted)
                cells.append(cell)
            continue
        cells.append(cell)
        if cell.cell_type != "code":
            continue
        cell.source, moved = split_glue(cell.source)
        following = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
        existing = _glue_statements(following) if following is not None and is_glue_cell(following) else []
        statements = existing + moved
        if statements:
            glue_cell = following if existing else _new_glue_cell(statements, quoted)
            consumed.add(index + 1)
            glue_cell.source = glue_cell_source(statements, quoted)
            tags = glue_cell.metadata.setdefault("tags", [])
            tags += [t for t in HIDDEN_TAGS if t not in tags]
            cells.append(glue_cell)
    nb.cells = cells
    glue_cells = [c for c in cells if is_glue_cell(c)]
    statements = [_glue_statements(c) for c in glue_cells]
    for cell, body, names in zip(glue_cells, statements, owners(statements, quoted)):
        cell.source = glue_cell_source(body, quoted, names)
    return nb


def convert_file(path: Path, check: bool = False) -> bool:
    """Convert the notebook at `path`; return whether it changed (with `check`, write nothing)."""
    before = nbformat.read(path, as_version=4)
    after = convert(nbformat.read(path, as_version=4))
    changed = nbformat.writes(before) != nbformat.writes(after)
    if changed and not check:
        nbformat.validate(after)
        nbformat.write(after, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook would change")
    args = parser.parse_args(argv)
    changed = [p for p in args.notebooks if convert_file(p, check=args.check)]
    for path in changed:
        print(f"{'would change' if args.check else 'converted'}: {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
