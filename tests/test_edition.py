"""The student edition: stubs for solutions, plain Markdown for MyST, and a safe command line."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from synthetic_book import demo_notebook, make_book

from vae_course.classroom import edition
from vae_course.classroom.edition import (
    EditionError,
    count_solutions,
    stub_solutions,
    student_notebook,
    to_plain_markdown,
    write_student_edition,
)

REPO = Path(__file__).resolve().parent.parent
MYST_LEFT = re.compile(r"\{[\w:-]+\}`|^\s*(:::|```)\{|^\s*\([\w\-.:]+\)=\s*$", re.M)


# --- stubs -------------------------------------------------------------------------------------

def test_stub_replaces_body_at_marker_indentation():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x\n    return y\n    ### END SOLUTION\n"
    out = stub_solutions(src)
    assert out == ("def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n"
                   f'    raise NotImplementedError("{edition.STUB_MESSAGE}")\n')
    assert "return y" not in out and "SOLUTION" not in out


def test_stub_keeps_deeper_indentation_and_code_around():
    src = ("class A:\n    def m(self):\n        pre = 1\n        ### BEGIN SOLUTION\n        return 2\n"
           "        ### END SOLUTION\n\nafter = A()")
    lines = stub_solutions(src).split("\n")
    assert lines[3] == "        # YOUR CODE HERE"
    assert lines[4].startswith("        raise NotImplementedError(")
    assert lines[2] == "        pre = 1" and lines[-1] == "after = A()"
    compile(stub_solutions(src), "<stub>", "exec")  # the stub is valid Python


def test_stub_handles_two_blocks_and_counts_them():
    src = "def f():\n  ### BEGIN SOLUTION\n  return 1\n  ### END SOLUTION\n\ndef g():\n\t### BEGIN SOLUTION\n\treturn 2\n\t### END SOLUTION"
    out = stub_solutions(src)
    assert count_solutions(src) == 2 and out.count("raise NotImplementedError") == 2
    assert "\traise NotImplementedError" in out and "  raise NotImplementedError" in out


@pytest.mark.parametrize("src, problem", [
    ("### BEGIN SOLUTION\nx = 1\n", "without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx\n### END SOLUTION\n", "nested"),
    ("x = 1\n### END SOLUTION\n", "without a '### BEGIN SOLUTION'"),
])
def test_unbalanced_markers_are_errors_naming_the_cell(src, problem):
    with pytest.raises(EditionError, match=problem) as info:
        stub_solutions(src, where="ch.ipynb, cell 7")
    assert "ch.ipynb, cell 7" in str(info.value)


def test_markdown_solution_becomes_answer_placeholder():
    out = stub_solutions("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", markdown=True)
    assert out == "Why?\n\n*YOUR ANSWER HERE*"


# --- MyST -> Markdown -----------------------------------------------------------------------------

def test_exercise_directive_becomes_bold_paragraph():
    out = to_plain_markdown(":::{exercise} Gaussian log-density\n:label: ex-gauss\n\nWrite `f(x)`.\n:::")
    assert out == "**Exercise (Gaussian log-density).**\n\nWrite `f(x)`."


def test_exercise_without_title():
    assert to_plain_markdown(":::{exercise}\n:label: ex-a\nDo it.\n:::") == "**Exercise.**\n\nDo it."


def test_solution_start_and_end():
    assert to_plain_markdown(":::{solution-start} ex-a\n:class: dropdown\n:::") == "Write your answer in the next cell."
    assert to_plain_markdown(":::{solution-end}\n:::") == ""


def test_written_solution_is_left_out():
    out = to_plain_markdown(":::{solution} ex-a\n:class: dropdown\nThe answer is 42.\n:::")
    assert "42" not in out and "left out" in out


def test_quoted_numbers_become_their_formatted_values():
    values = {"gap": "0.123456", "n": "2000", "tiny": "np.float64(1.5e-07)"}
    src = ('the gap is {eval}`f"{gap:.2f}"` nats over {eval}`f"{n:,d}"` points ({eval}`n`), '
           '{glue:text}`gap:.3f` and {eval}`f"{tiny:.1e}"`')
    assert to_plain_markdown(src, values=values) == "the gap is 0.12 nats over 2,000 points (2000), 0.123 and 1.5e-07"


def test_quoted_numbers_without_values_point_at_the_printed_value():
    out = to_plain_markdown('the gap is {eval}`f"{gap:.2f}"` nats and {glue}`n`')
    assert out == "the gap is (the value of `gap` printed above) nats and (the value of `n` printed above)"


def test_eval_role_with_an_arbitrary_expression_is_an_error():
    with pytest.raises(EditionError, match=r"\{eval\} role must hold a name.*'x \+ 1'"):
        to_plain_markdown("{eval}`x + 1`", values={"x": "1"})


@pytest.mark.parametrize("src, expected", [
    ("see {cite}`kingma2014`.", "see [kingma2014]."),
    ("see {cite:p}`kingma2014, rezende2014`.", "see [kingma2014; rezende2014]."),
    ("{ref}`the section <sec-elbo>` and {ref}`sec-elbo`", "the section and sec-elbo"),
    ("{numref}`Figure %s <fig-a>` shows", "Figure shows"),
    ("{numref}`fig-a`", "fig-a"),
    ("{doc}`the preface <preface>`", "the preface"),
    ("{doc}`next chapter <02_lvm>`", "[next chapter](02_lvm.ipynb)"),
    ("{doc}`02_lvm`", "[2. Latent variables](02_lvm.ipynb)"),
    ("{term}`ELBO`", "ELBO"),
    ("{math}`x^2`", "$x^2$"),
    ("see {eq}`eq-elbo`", "see (eq-elbo)"),
])
def test_roles(src, expected):
    assert to_plain_markdown(src, notebooks={"02_lvm": "2. Latent variables"}) == expected


@pytest.mark.parametrize("src, title", [
    (":::{note}\nBe careful.\n:::", "Note"),
    (":::{tip}\nBe careful.\n:::", "Tip"),
    (":::{warning}\nBe careful.\n:::", "Warning"),
    ("```{admonition} Why logits?\n:class: tip\nBe careful.\n```", "Why logits?"),
    ("```{note}\nBe careful.\n```", "Note"),
])
def test_admonitions_become_blockquotes(src, title):
    assert to_plain_markdown(src) == f"> **{title}**\n>\n> Be careful."


def test_nested_directives():
    out = to_plain_markdown("::::{tip}\nOuter\n:::{warning}\ninner {cite}`k`\n:::\n::::")
    assert out.split("\n") == ["> **Tip**", ">", "> Outer", ">", "> > **Warning**", "> >", "> > inner [k]"]


def test_math_stays_and_math_directive_becomes_dollars():
    src = "Inline $\\sigma^2 = 0.5$ and\n\n$$\n\\log p(x) \\ge 0\n$$"
    assert to_plain_markdown(src) == src
    assert to_plain_markdown("```{math}\n:label: eq-a\na = b\n```") == "$$\na = b\n$$"
    assert to_plain_markdown("$$ a = b $$ (eq-b)") == "$$ a = b $$"


def test_figure_and_glue_directives_become_text():
    fig = to_plain_markdown("```{figure} images/x.png\n:name: fig-x\n:alt: digits\nDecoder means.\n```")
    assert fig == "*Figure: Decoder means.*"
    glued = to_plain_markdown("```{glue:figure} fig_recon\n:name: fig-recon\nReconstructions.\n```")
    assert "fig_recon" in glued and "Reconstructions." in glued and "{glue" not in glued


def test_targets_comments_and_code_are_handled():
    src = "(sec-a)=\n## A\n% a MyST comment\nText with `{cite}` in code.\n\n```python\nx = {'a': 1}  # {cite}`k`\n```"
    out = to_plain_markdown(src)
    assert out == "## A\nText with `{cite}` in code.\n\n```python\nx = {'a': 1}  # {cite}`k`\n```"


def test_plain_markdown_is_unchanged():
    src = "## Title\n\nSome *text* with a [link](https://example.org) and a list:\n\n- one\n- two"
    assert to_plain_markdown(src) == src


# --- notebooks --------------------------------------------------------------------------------------

def test_student_notebook_keeps_everything_else():
    nb = demo_notebook()
    nb.metadata["custom"] = {"keep": True}
    student = student_notebook(nb, "01_demo.ipynb")
    assert nb.cells[6].source.count("BEGIN SOLUTION") == 1  # the source is not modified
    assert student.metadata == nb.metadata
    assert edition.STUDENT_TAG in student.cells[0].metadata["tags"]
    assert student.cells[2].source == nb.cells[1].source  # the Colab install cell stays first
    sources = [c.source for c in student.cells]
    assert sum("raise NotImplementedError" in c.source for c in student.cells if c.cell_type == "code") == 2
    assert not any("SOLUTION" in s or MYST_LEFT.search(s) for s in sources)
    code_in, code_out = ([c for c in n.cells if c.cell_type == "code"] for n in (nb, student))
    assert [c.metadata for c in code_in] == [c.metadata for c in code_out]
    unchanged = [a.source for a in code_in if "SOLUTION" not in a.source]
    assert unchanged == [b.source for b in code_out if "NotImplementedError" not in b.source]
    # markdown: the two `{solution-end}` cells are gone, nothing else
    assert len(student.cells) == 1 + len(nb.cells) - 2
    nbformat.validate(student)


def test_error_names_notebook_and_cell():
    nb = new_notebook(cells=[new_markdown_cell("# T"), new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n")])
    with pytest.raises(EditionError, match=r"ch\.ipynb, cell 1"):
        student_notebook(nb, "ch.ipynb")


def test_write_student_edition(tmp_path):
    book = make_book(tmp_path / "repo")
    out = tmp_path / "student"
    written = write_student_edition(out, book=book)
    assert [p.name for p in written] == ["01_demo.ipynb"] and sorted(os.listdir(out)) == ["01_demo.ipynb"]
    student = nbformat.read(written[0], as_version=4)
    assert student.cells[0].metadata["tags"] == [edition.STUDENT_TAG]
    # The demo glues 1.5 ** 2 = 2.25 and the prose quotes it with two decimals.
    prose = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert "The value is 2.25 (a plain number)." in prose
    source = (book / "book" / "01_demo.ipynb").read_text()
    assert "### BEGIN SOLUTION" in source  # the chapter itself is untouched


def test_refuses_non_empty_outdir_unless_forced(tmp_path):
    book = make_book(tmp_path / "repo")
    out = tmp_path / "student"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(EditionError, match="not empty.*--force"):
        write_student_edition(out, book=book, run=False)
    write_student_edition(out, book=book, force=True, run=False)
    assert (out / "mine.txt").read_text() == "keep me" and (out / "01_demo.ipynb").is_file()


@pytest.mark.parametrize("target", ["book", ".", "book/sub", ".."])
def test_refuses_to_write_over_the_sources(tmp_path, target):
    book = make_book(tmp_path / "repo")
    before = {p: p.read_bytes() for p in book.rglob("*") if p.is_file()}
    with pytest.raises(EditionError, match="source chapters"):
        write_student_edition(book / target, book=book, force=True)
    assert {p: p.read_bytes() for p in book.rglob("*") if p.is_file()} == before


def test_bad_chapter_writes_nothing(tmp_path):
    nb = demo_notebook()
    nb.cells[6].source = nb.cells[6].source.replace("### END SOLUTION", "")
    book = make_book(tmp_path / "repo", nb)
    with pytest.raises(EditionError, match="01_demo.ipynb, cell 6"):
        write_student_edition(tmp_path / "student", book=book)
    assert not (tmp_path / "student").exists()


def test_missing_toc_is_a_clear_error(tmp_path):
    with pytest.raises(EditionError, match="_toc.yml.*--book"):
        edition.find_book_root(tmp_path)


def test_default_book_root_is_this_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert edition.find_book_root() == REPO


def test_toc_files_resolve_suffixes(tmp_path):
    book = make_book(tmp_path)
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/preface\nparts:\n  - chapters:\n"
                                   "    - file: book/01_demo\n    - file: book/missing\n")
    entries = edition.toc_files(book)
    assert [(e, p.name if p else None) for e, p in entries] == [
        ("book/preface", "preface.md"), ("book/01_demo", "01_demo.ipynb"), ("book/missing", None)]
    assert edition.chapter_notebooks(book) == [book / "book" / "01_demo.ipynb"]


# --- the real chapters --------------------------------------------------------------------------------

def test_real_chapters_have_a_student_edition(tmp_path):
    # Without running the chapters (fast); tests/test_rendering.py checks the edition with its numbers.
    written = write_student_edition(tmp_path / "student", run=False)
    chapters = edition.chapter_notebooks(REPO)
    assert [p.name for p in written] == [p.name for p in chapters] and chapters
    for chapter, student in zip(chapters, written):
        blocks = sum(count_solutions(c.source) for c in nbformat.read(chapter, as_version=4).cells)
        cells = nbformat.read(student, as_version=4).cells
        stubs = sum(c.source.count("raise NotImplementedError(") for c in cells if c.cell_type == "code")
        assert stubs >= blocks
        assert not any("### BEGIN SOLUTION" in c.source for c in cells)
        left = [c.source for c in cells if c.cell_type == "markdown" and MYST_LEFT.search(c.source)]
        assert not left, f"{student.name}: MyST syntax left for Jupyter: {left[:2]}"


# --- the command line ------------------------------------------------------------------------------------

def _run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_module_and_console_script(tmp_path):
    book = make_book(tmp_path / "repo")
    done = _run([sys.executable, "-m", "vae_course", "student-edition", "out", "--book", str(book)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "01_demo.ipynb").is_file() and "1 student notebook" in done.stdout
    script = shutil.which("vae-course") or str(Path(sys.executable).parent / "vae-course")
    again = _run([script, "student-edition", "out", "--book", str(book)], tmp_path)
    assert again.returncode == 2 and "not empty; pass --force" in again.stderr


def test_cli_force_and_refusals(tmp_path, monkeypatch, capsys):
    from vae_course.__main__ import main

    book = make_book(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    assert main(["student-edition", "out", "--book", str(book), "--no-run"]) == 0
    assert main(["student-edition", "out", "--book", str(book), "--force", "--no-run"]) == 0
    assert main(["student-edition", str(book / "book"), "--book", str(book), "--force"]) == 2
    monkeypatch.chdir(REPO)
    assert main(["student-edition", "book", "--force"]) == 2  # the real chapters, default book root
    err = capsys.readouterr().err
    assert err.count("source chapters") >= 2


# --- grading (what is graded, and the table; running hostile submissions is in test_grading.py) ----

def test_grading_finds_exercises_from_check_cells_and_the_chapter():
    from vae_course.classroom.grading import expected_exercises

    nb = new_notebook(cells=[new_code_cell('vc.exercises.check("gaussian_log_prob", my_gauss)'),
                             new_code_cell('vc.exercises.check("not-in-package", f)\ncheck("x-ref", vc.f)')])
    # the chapter of gaussian_log_prob brings in its other exercise, whose check cell is missing;
    # a name that is not a plain identifier (vc.f) falls back to the exercise id
    from vae_course.teaching.exercises import known_exercises

    def chapter(name):
        return {i: i for i, e in known_exercises().items() if e.chapter == name}

    assert expected_exercises(nb) == {**chapter("01_generative_modelling"), "gaussian_log_prob": "my_gauss",
                                      "not-in-package": "f", "x-ref": "x-ref"}
    assert {"gaussian_log_prob", "mixture_log_prob"} <= set(chapter("01_generative_modelling"))
    # with every check cell deleted, the notebook's name still names the chapter
    found = expected_exercises(new_notebook(cells=[]), "03_linear_models.ipynb")
    assert found == chapter("03_linear_models") and {"ppca_log_likelihood", "ppca_posterior"} <= set(found)
    assert expected_exercises(new_notebook(cells=[]), "homework.ipynb") == {}


def test_grading_formats_a_table():
    from vae_course.classroom.grading import GradeResult, format_table

    table = format_table([GradeResult("a-one", "pass", "passed."), GradeResult("a-two", "fail", "wrong value")])
    lines = table.splitlines()
    assert lines[0].split() == ["exercise", "status", "message"]
    assert lines[2].split() == ["a-one", "pass", "passed."] and lines[3].split()[:2] == ["a-two", "fail"]
    assert lines[-1] == "passed 1 of 2"
    assert format_table([]) == "no exercises found in this notebook"
