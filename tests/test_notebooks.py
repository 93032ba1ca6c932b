"""The student edition runs top to bottom under nbval (--nbval-lax), each notebook once.

The chapters themselves are executed once per session for all their checks (glued numbers,
"every cell runs", figures, files, the site build: tests/test_chapters_run.py and conftest.py);
nbval runs the student edition, which is each chapter with its solutions replaced by stubs, so
nbval still executes every cell of every chapter except the solution bodies, and the synthetic
book below shows that nbval runs the chapters and their editions and fails on a wrong verdict.

The student edition is checked in one execution: each check cell of the test copy is tagged
`nbval-check-output` with the verdict a stub must print stored as its expected output, so one
execution shows both that the edition runs and that every check reports the stub as not
implemented (and prints nothing else: no `True`/`False` echo of the returned object).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from notebook_utils import check_ids, run_nbval, snapshot, solution_blocks, student_edition_for_nbval, tail
from synthetic_book import make_book

from vae_course.classroom.edition import chapter_notebooks, count_solutions, write_student_edition
from vae_course.teaching.exercises import known_exercises
from vae_course.teaching.exercises._core import FAIL_MARK, NOT_IMPLEMENTED

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = chapter_notebooks(REPO)
NBVAL_RESULT = r"^(\S+?)(?:\.ipynb|::ipynb)::Cell \d+ (PASSED|FAILED)"


def pattern_problems(nb, name: str) -> list[str]:
    """Where a notebook departs from the exercise pattern of COURSE.md."""
    problems, cells = [], nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or not count_solutions(cell.source):
            continue
        before = [c.source for c in cells[max(i - 2, 0):i]]
        after = cells[i + 1:i + 3]
        if len(before) < 2 or "{exercise}" not in before[0] or "{solution-start}" not in before[1]:
            problems.append(f"{name} cell {i}: not preceded by an {{exercise}} and a {{solution-start}} cell")
        if len(after) < 2 or "{solution-end}" not in after[0].source or not check_ids(after[1]):
            problems.append(f"{name} cell {i}: not followed by a {{solution-end}} cell and a check cell")
    return problems


# --- fast: the sources follow the exercise pattern ----------------------------------------------

@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_exercise_pattern(chapter):
    nb = nbformat.read(chapter, as_version=4)
    assert not pattern_problems(nb, chapter.name)
    ids = [i for c in nb.cells for i in check_ids(c)]
    registry = known_exercises()
    unknown = [i for i in ids if i not in registry]
    assert not unknown, f"{chapter.name} checks exercises that are not registered: {unknown}"
    wrong = [i for i in ids if registry[i].chapter != chapter.stem]
    assert not wrong, f"{chapter.name}: exercises registered for another chapter: {wrong}"
    unchecked = sorted(i for i, ex in registry.items() if ex.chapter == chapter.stem and i not in ids)
    assert not unchecked, f"{chapter.name} has no check cell for registered exercises {unchecked}"


def test_pattern_detector_finds_a_missing_check_cell(tmp_path):
    from synthetic_book import demo_notebook

    nb = demo_notebook()
    assert pattern_problems(nb, "demo") == []
    del nb.cells[8]  # the first check cell
    assert pattern_problems(nb, "demo") == ["demo cell 6: not followed by a {solution-end} cell and a check cell"]


# --- slow: execution -------------------------------------------------------------------------------

def test_synthetic_chapter_and_its_student_edition_run(tmp_path):
    book = make_book(tmp_path / "repo")
    edition = student_edition_for_nbval(book, tmp_path / "student")
    assert edition.stubs == solution_blocks(chapter_notebooks(book)) == 2
    control = tmp_path / "control" / "control.ipynb"  # proves that a wrong verdict fails the run
    control.parent.mkdir()
    cell = new_code_cell('print("something else")', metadata={"tags": ["nbval-check-output"]})
    cell.outputs = [new_output("stream", name="stdout", text=f"{FAIL_MARK} demo-square: {NOT_IMPLEMENTED}\n")]
    cell.execution_count = 1
    nbformat.write(new_notebook(cells=[cell]), control)
    before = snapshot(book)
    done = run_nbval([*chapter_notebooks(book), *edition.files, control], tmp_path)
    results = re.findall(NBVAL_RESULT, done.stdout, re.M)
    failed = {f for f, r in results if r == "FAILED"}
    assert failed == {"control/control"}, tail(done)
    assert {f for f, _ in results} == {"repo/book/01_demo", "student/01_demo", "control/control"}, tail(done)
    assert snapshot(book) == before


@pytest.mark.skipif(not CHAPTERS, reason="no chapter notebooks in _toc.yml")
def test_student_edition_runs(student_edition_run):
    """nbval-lax on the student edition of every chapter (run in the background: conftest.py)."""
    edition, done = student_edition_run
    assert edition.stubs == solution_blocks(CHAPTERS), "every solution block becomes exactly one stub"
    assert [p.name for p in edition.files] == [p.name for p in CHAPTERS]
    assert done.returncode == 0, f"nbval failed:\n{tail(done)}"
    results = re.findall(NBVAL_RESULT, done.stdout, re.M)
    assert {f for f, r in results if r == "PASSED"} == {f"student/{p.stem}" for p in edition.files}, tail(done)
    assert snapshot(edition.folder) == edition.before, "executing the student edition wrote files next to it"


def test_grading_a_submission_survives_bad_code_and_never_edits_it(tmp_path):
    """`python -m vae_course check` on a student's copy: one solved, one crash, one endless loop."""
    book = make_book(tmp_path / "repo")
    (submission,) = write_student_edition(tmp_path / "student", book=book)
    nb = nbformat.read(submission, as_version=4)
    square = next(c for c in nb.cells if c.source.startswith("def square"))
    square.source = "def square(x):\n    return x * x"  # a correct answer
    nb.cells.insert(nb.cells.index(square) + 1, new_code_cell("1 / 0  # student code that crashes"))
    scale = next(c for c in nb.cells if c.source.startswith("class Scaler"))
    scale.source = "while True:\n    pass"  # student code that never ends; `scale` stays undefined
    nbformat.write(nb, submission)
    before = submission.read_bytes()
    # The per-cell timeout stops the endless loop; it must leave the import cell (torch) time to
    # finish on a busy 2-core machine, where 5 s was seen to be too short.
    args = [sys.executable, "-m", "vae_course", "check", str(submission), "--timeout", "20", "--json"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = {r["exercise_id"]: r for r in __import__("json").loads(done.stdout)}
    assert results["demo-square"]["status"] == "pass", results["demo-square"]
    assert results["demo-scale"] == {"exercise_id": "demo-scale", "status": "fail",
                                     "message": "the check cell raised NameError: name 'scale' is not defined"}
    assert submission.read_bytes() == before
    assert sorted(p.name for p in submission.parent.iterdir()) == ["01_demo.ipynb"]
