"""Grading: run a copy of a student notebook and list each exercise's check as pass or fail.

Taught in: the preface ("Checking a notebook"). `python -m vae_course check NOTEBOOK` (alias
`grade`) executes a copy of the notebook in a fresh temporary folder, so the submission is
never edited and nothing is written beside it. Student code that raises does not stop the run
(`allow_errors`), and a cell that runs longer than the per-cell timeout is interrupted. The
verdicts are the lines the check cells print (`✅ id: ...` / `❌ id: ...`); an exercise whose
check cell never printed (it was deleted, or the kernel died first) is reported as not run.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from ..teaching.exercises._core import FAIL_MARK, PASS_MARK, known_exercises

__all__ = ["GradeResult", "grade_notebook", "format_table", "to_json"]

_CHECK_CALL = re.compile(r"check\(\s*['\"]([\w\-.]+)['\"]")
_VERDICT = re.compile(rf"^({PASS_MARK}|{FAIL_MARK}) ([\w\-.]+): (.*)$")


@dataclass(frozen=True)
class GradeResult:
    """One exercise of a graded notebook: `status` is 'pass', 'fail' or 'not run'."""

    exercise_id: str
    status: str
    message: str


def _expected_ids(nb) -> list[str]:
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    ids = list(dict.fromkeys(_CHECK_CALL.findall(sources)))
    chapters = {known_exercises()[i].chapter for i in ids if i in known_exercises()}
    more = [i for i, ex in known_exercises().items() if ex.chapter in chapters and i not in ids]
    return ids + more


def _verdicts(nb) -> dict[str, GradeResult]:
    found = {}
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":  # e.g. the function is not defined at all
                for exercise_id in _CHECK_CALL.findall(cell.source):
                    message = f"the check cell raised {output.get('ename')}: {output.get('evalue')}"
                    found.setdefault(exercise_id, GradeResult(exercise_id, "fail", message))
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            for line in text.splitlines():
                if m := _VERDICT.match(line):
                    status = "pass" if m[1] == PASS_MARK else "fail"
                    found[m[2]] = GradeResult(m[2], status, m[3])
    return found


def _execute(nb, folder: Path, timeout: float) -> str:
    """Run `nb` in place inside `folder`; return a note if the run stopped early."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    except DeadKernelError as e:
        return f"the kernel died ({e}); later cells did not run"
    except Exception as e:  # a notebook that cannot run at all still gets a table
        return f"the run stopped: {type(e).__name__}: {e}"
    return ""


def grade_notebook(path: str | Path, timeout: float = 120) -> list[GradeResult]:
    """Execute a copy of the notebook at `path` and return one result per exercise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    folder = Path(tempfile.mkdtemp(prefix="vae_course_grade_"))
    try:
        nb = nbformat.read(path, as_version=4)
        note = _execute(nb, folder, timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    verdicts = _verdicts(nb)
    missing = "its check cell did not print a verdict" + (f" ({note})" if note else "")
    ids = _expected_ids(nb) + [i for i in verdicts if i not in _expected_ids(nb)]
    return [verdicts.get(i, GradeResult(i, "not run", missing)) for i in ids]


def format_table(results: list[GradeResult]) -> str:
    """A plain-text table: exercise id, status, message; then the score."""
    if not results:
        return "no exercises found in this notebook"
    width = max(len("exercise"), *(len(r.exercise_id) for r in results))
    lines = [f"{'exercise':<{width}}  {'status':<7}  message", "-" * (width + 30)]
    lines += [f"{r.exercise_id:<{width}}  {r.status:<7}  {r.message}" for r in results]
    passed = sum(r.status == "pass" for r in results)
    return "\n".join(lines + [f"passed {passed} of {len(results)}"])


def to_json(results: list[GradeResult]) -> str:
    """The results as a JSON list of {exercise_id, status, message}."""
    return json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=1)
