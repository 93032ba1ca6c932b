"""What every executed chapter must show: every cell ran, no errors, no files written, every glue
resolved, and every exercise's reference solution passing its own check.

All of it is read from the session's one execution of each chapter (`executed_chapter`, see
conftest.py), the same execution the chapter's number tests and the site build read. This is the
chapters' "every cell runs" check (nbval runs the student edition: tests/test_notebooks.py).
Timing is reported at the end of the session and by `benchmarks/run.py`, not asserted.
"""
import re

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from notebook_utils import ROOT, run_notebook

from vae_course.classroom.edition import chapter_notebooks
from vae_course.teaching.exercises._core import PASS_MARK

CHAPTERS = chapter_notebooks(ROOT)


def stdout(run) -> str:
    return "".join(o.get("text", "") for c in run.nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream" and o.get("name") == "stdout")


def run_problems(run) -> list[str]:
    """Why a run does not count as a chapter that runs top to bottom."""
    if run.error is not None:
        return [run.error.describe()]
    name = run.path.name
    problems = [f"{name} cell {i} raised {o.get('ename')}: {o.get('evalue')}"
                for i, c in enumerate(run.nb.cells) if c.cell_type == "code" for o in c.outputs
                if o.output_type == "error"]
    problems += [f"{name} cell {i} did not run" for i, c in enumerate(run.nb.cells)
                 if c.cell_type == "code" and c.source.strip() and c.execution_count is None]
    return problems


def test_a_failing_cell_is_reported_with_its_chapter_and_cell(tmp_path):
    """The detectors on a tiny notebook: a file written, an allowed error, then a real one."""
    nb = new_notebook(cells=[
        new_markdown_cell("# A chapter"),
        new_code_cell("open('left-behind.txt', 'w').close()"),
        new_code_cell("1 / 0", metadata={"tags": ["raises-exception"]}),  # allowed, as in the build
        new_code_cell("raise ValueError('deliberately broken')"),
        new_code_cell("y = 2"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, path)
    run = run_notebook(path)
    assert (run.error.notebook, run.error.index, run.error.ename) == ("07_broken.ipynb", 3, "ValueError")
    assert run_problems(run)[0].startswith("07_broken.ipynb cell 3 raised ValueError: deliberately broken")
    assert "raise ValueError('deliberately broken')" in run.error.describe()
    assert run.nb.cells[4].execution_count is None  # the run stopped there, as the site build would
    assert run.files_written == ["left-behind.txt"]
    del run.nb.cells[2:]
    run.error = None
    assert run_problems(run) == []


def test_every_cell_runs(executed_chapter):
    problems = run_problems(executed_chapter)
    assert not problems, "\n".join(problems)


def test_chapter_writes_nothing(executed_chapter):
    run = executed_chapter
    assert run.files_written == [], f"{run.path.name} wrote {run.files_written} into its working directory"


def test_every_glue_the_prose_shows_is_computed(executed_chapter):
    run = executed_chapter
    prose = "\n".join(c.source for c in run.nb.cells if c.cell_type == "markdown")
    shown = set(re.findall(r"\{glue(?::\w+)?\}`([\w-]+)|\{eval\}`(?:f\"\{)?(\w+)", prose))
    shown = {a or b for a, b in shown}
    missing = shown - set(run.glue)
    assert not missing, f"{run.path.name}: the prose shows glue names no cell computed: {sorted(missing)}"


def test_reference_solutions_pass_their_checks(executed_chapter):
    run = executed_chapter
    ids = [m for c in run.nb.cells if c.cell_type == "code"
           for m in re.findall(r"exercises\.check\(\s*[\"'](\w+)[\"']", c.source)]
    assert len(ids) >= 2, f"{run.path.name}: a chapter has at least two exercises"
    text = stdout(run)
    for exercise_id in ids:
        assert f"{PASS_MARK} {exercise_id}:" in text, f"{run.path.name}: the solution of {exercise_id} fails its check"
