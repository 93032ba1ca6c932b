"""A small book (a `_toc.yml` and one chapter with two exercises) for the edition and notebook tests.

The chapter registers its own checkers in a cell, so it runs whether or not the real chapters
have exercises yet. It follows the exercise pattern of the course exactly.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

INSTALL = ("try:\n    import vae_course  # noqa: F401\nexcept ImportError:  # on Colab\n"
           "    %pip install --quiet vae-course\n")

REGISTER = '''import torch
from vae_course.teaching.exercises import register
from vae_course.teaching.exercises._core import call, expect_close, expect_tensor


def _square(x):
    return x ** 2


def _scaled(x, a):
    return a * x


def _make_checker(reference, args):
    def checker(answer):
        where = "at the test input"
        out = expect_tensor(call(answer, *args, where=where), shape=reference(*args).shape, where=where)
        expect_close(out, reference(*args), where=where)
    return checker


for _id, _ref, _args in [("demo-square", _square, (torch.tensor([1.0, -2.0, 3.0]),)),
                         ("demo-scale", _scaled, (torch.tensor([1.0, 2.0]), 3.0))]:
    if _id not in vc.exercises.known_exercises():
        register(_id, chapter="01_demo", reference=_ref)(_make_checker(_ref, _args))'''

SOLUTION_SQUARE = '''def square(x):
    """Return x squared, elementwise."""
    ### BEGIN SOLUTION
    y = x * x
    return y
    ### END SOLUTION'''

SOLUTION_SCALE = '''class Scaler:
    def scale(self, x, a):
        """Return a * x."""
        if a is None:
            raise ValueError("a")
        ### BEGIN SOLUTION
        return a * x
        ### END SOLUTION


scale = Scaler().scale'''


def exercise_cells(label: str, title: str, solution: str, exercise_id: str, fn: str) -> list:
    return [
        new_markdown_cell(f":::{{exercise}} {title}\n:label: {label}\n\nWrite `{fn}`.\n:::"),
        new_markdown_cell(f":::{{solution-start}} {label}\n:class: dropdown\n:::"),
        new_code_cell(solution, metadata={"tags": ["hide-input"]}),
        new_markdown_cell(":::{solution-end}\n:::"),
        new_code_cell(f'vc.exercises.check("{exercise_id}", {fn})'),
    ]


def demo_notebook():
    cells = [
        new_markdown_cell("# 1. Demo\n\n(sec-demo)=\n## Intro\n\nSee {cite}`kingma2014` and {ref}`sec-demo`."),
        new_code_cell(INSTALL),
        new_code_cell("import vae_course as vc\n\nvc.setup()"),
        new_code_cell(REGISTER, metadata={"tags": ["remove-cell"]}),
        *exercise_cells("ex-demo-square", "Squares", SOLUTION_SQUARE, "demo-square", "square"),
        new_code_cell("from myst_nb import glue\n\nvalue = float(_square(torch.tensor(1.5)))\n"
                      "glue(\"demo_value\", value, display=False)"),
        new_markdown_cell("The value is {glue:text}`demo_value:.2f` (a plain number).\n\n"
                          ":::{note}\nStubs never crash the notebook.\n:::"),
        *exercise_cells("ex-demo-scale", "Scaling", SOLUTION_SCALE, "demo-scale", "scale"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def make_book(root: Path, nb=None) -> Path:
    """Write a book with a preface and one chapter under `root`; return `root`."""
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/preface\nchapters:\n  - file: book/01_demo\n")
    (root / "book" / "preface.md").write_text("# Preface\n")
    nbformat.write(nb if nb is not None else demo_notebook(), root / "book" / "01_demo.ipynb")
    return root
