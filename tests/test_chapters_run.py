"""What every executed chapter must show: no errors, no files written, every glue resolved,
and every exercise's reference solution passing its own check.

Each chapter is executed once per session (shared with the chapter's own number tests through
`notebook_utils.cached_run`). Timing is not asserted here: `benchmarks/run.py` measures it.
"""
import re

import pytest
from notebook_utils import ROOT, cached_run

from vae_course.classroom.edition import chapter_notebooks
from vae_course.teaching.exercises._core import PASS_MARK

CHAPTERS = chapter_notebooks(ROOT)


def stdout(run) -> str:
    return "".join(o.get("text", "") for c in run.nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream" and o.get("name") == "stdout")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_cleanly_and_writes_nothing(path):
    run = cached_run(path)
    errors = [o.get("ename") for c in run.nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert run.files_written == [], f"{path.name} wrote {run.files_written} into its working directory"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_glue_the_prose_shows_is_computed(path):
    run = cached_run(path)
    prose = "\n".join(c.source for c in run.nb.cells if c.cell_type == "markdown")
    shown = set(re.findall(r"\{glue(?::\w+)?\}`([\w-]+)|\{eval\}`(?:f\"\{)?(\w+)", prose))
    shown = {a or b for a, b in shown}
    missing = shown - set(run.glue)
    assert not missing, f"{path.name}: the prose shows glue names no cell computed: {sorted(missing)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_reference_solutions_pass_their_checks(path):
    run = cached_run(path)
    ids = [m for c in run.nb.cells if c.cell_type == "code"
           for m in re.findall(r"exercises\.check\(\s*[\"'](\w+)[\"']", c.source)]
    assert len(ids) >= 2, f"{path.name}: a chapter has at least two exercises"
    text = stdout(run)
    for exercise_id in ids:
        assert f"{PASS_MARK} {exercise_id}:" in text, f"{path.name}: the solution of {exercise_id} fails its check"
