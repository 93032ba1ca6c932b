"""Grading: run a copy of a student notebook, then check each exercise with the grader's own code.

Taught in: the preface ("Checking a notebook"). `python -m vae_course check NOTEBOOK` (alias
`grade`) copies the submission into a fresh temporary folder and executes the copy there, so
the submission is never opened for writing and nothing is written beside it. Student code that
raises does not stop the run (`allow_errors`); a cell that runs longer than `timeout` seconds is
interrupted, and a run longer than `total_timeout` seconds is stopped by killing the kernel.

How a verdict is obtained (and why printed text is never trusted)
-----------------------------------------------------------------
The check cells of the notebook only give the student feedback. Their output is not read:
a notebook can print a fake "✅ id: passed", define its own `check`, or monkeypatch
`vae_course.teaching.exercises.check`. Instead, after the student's last cell has run, the
grader adds cells of its own to the copy it executes (the submission never sees them):

0. A *warm-up* cell, first, imports torch and vae_course (no side effects), so that a slow
   first import on a busy machine is not charged to the student's first cell, and snapshots
   the namespaces the checkers use (see 1).
1. A *prelude* cell removes every `vae_course` module from `sys.modules` and imports the
   package again from the grader's own install (its location is checked, so a `vae_course.py`
   the notebook wrote into the working folder cannot stand in for it); patches made to the old
   modules by the notebook are thereby gone. It also clears IPython's event callbacks, so a
   hook the notebook registered does not run during the grader's cells, and puts back every
   attribute of torch, torch.Tensor, torch.nn.functional, torch.linalg, math and builtins that
   the notebook replaced (e.g. `torch.allclose = lambda *a, **k: True`), from a snapshot the
   warm-up cell took before the student's first cell.
2. One *verify* cell per exercise takes the student's function from the kernel's namespace by
   name (the name given to `check(...)` in the notebook, else the exercise id) and runs the
   freshly imported checker on it with `run_check`. The verdict comes back as one display of
   mime type `CHECK_MIME` (a JSON object), stamped with a random nonce created for this run.

The grader reads only those displays, only from its own cells, and only with the run's nonce:
text printed anywhere is ignored; a display forged by the notebook's cells is not in a verify
cell; a verify cell with more than one verdict (a background thread trying to add a forged one)
fails. Exercises a notebook registers itself (the test fixtures do) are checked with that
notebook's own checker, since the package does not know them.

Limits: the student's code runs in the same Python process as the checker. Code written to
defeat this grader on purpose (patching torch's C internals or other libraries, editing the
snapshot, reading the nonce out of the kernel's input history, rewriting the package's files
on disk, writing outside the working folder) is not stopped by it; for exams, run the command
inside a container or a throwaway account.
"""
from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from ..teaching.exercises import CHECK_MIME, FAIL_MARK, PASS_MARK, known_exercises

__all__ = ["GradeResult", "grade_notebook", "expected_exercises", "format_table", "to_json"]

# `check("some-id", some_function)` in a cell: the exercise id and the name of the student's function.
_CHECK_CALL = re.compile(r"check\(\s*['\"]([\w\-.]+)['\"]\s*(?:,\s*([A-Za-z_]\w*)\s*\))?")
_GRADER_TAG = "vae-course-grader"
_SETUP_TAG = "vae-course-grader-setup"  # the grader's own setup cells, which get `_SETUP_TIME` at least
_SETUP_TIME = 120.0


@dataclass(frozen=True)
class GradeResult:
    """One exercise of a graded notebook: `status` is 'pass', 'fail' or 'not run'."""

    exercise_id: str
    status: str
    message: str


def expected_exercises(nb, name: str = "") -> dict[str, str]:
    """The exercises a notebook is graded on, mapped to the name of the student's function.

    These are the ids its check cells name, plus every registered exercise of the same chapters
    (the chapter of a named id, or the chapter whose notebook is called `name`), so deleting a
    check cell does not remove an exercise from the table. The function's name is the one the
    check cell passes; without a check cell it is the exercise id (the course's convention).
    """
    found: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for exercise_id, fn in _CHECK_CALL.findall(cell.source):
                if fn or exercise_id not in found:
                    found[exercise_id] = fn or exercise_id
    registry = known_exercises()
    chapters = {registry[i].chapter for i in found if i in registry} | {Path(name).stem} - {""}
    for exercise_id, exercise in registry.items():
        if exercise.chapter in chapters:
            found.setdefault(exercise_id, exercise_id)
    return found


def _prelude(package_root: str) -> str:
    """The grader's first cell: a clean copy of vae_course, no notebook hooks, and the verify function."""
    return f'''# vae_course grader: prelude
import importlib as _g_importlib
import sys as _g_sys

from IPython.core.getipython import get_ipython as _g_get_ipython

_g_ip = _g_get_ipython()
for _g_callbacks in _g_ip.events.callbacks.values():
    _g_callbacks.clear()
# Undo what the notebook patched in torch, torch.Tensor, torch.nn.functional, torch.linalg, math, builtins.
for _g_obj, _g_before in _g_saved:
    _g_is_builtins = getattr(_g_obj, "__name__", "") == "builtins"
    for _g_key, _g_value in _g_before.items():
        if _g_is_builtins and (_g_key.startswith("_") or _g_key == "input"):
            continue  # IPython's own per-cell entries
        if vars(_g_obj).get(_g_key, _g_before) is not _g_value:
            try:
                setattr(_g_obj, _g_key, _g_value)
            except (AttributeError, TypeError):
                pass
    if isinstance(_g_obj, type):  # a method added to torch.Tensor shadows the real one: remove it
        for _g_key in [k for k in vars(_g_obj) if k not in _g_before]:
            delattr(_g_obj, _g_key)
_g_old_core = _g_sys.modules.get("vae_course.teaching.exercises._core")
_g_old_run_check = getattr(_g_old_core, "run_check", None)
for _g_name in [n for n in _g_sys.modules if n == "vae_course" or n.startswith("vae_course.")]:
    del _g_sys.modules[_g_name]
_g_sys.path.insert(0, {package_root!r})
_g_exercises = _g_importlib.import_module("vae_course.teaching.exercises")
_g_sys.path.remove({package_root!r})
if not _g_exercises.__file__.startswith({package_root!r}):
    raise ImportError(f"the grader loaded vae_course from {{_g_exercises.__file__}}, not from {package_root!r}")
_g_ns = _g_ip.user_ns
from IPython.display import display as _g_display


def _g_verify(exercise_id, name, nonce):
    answer = _g_ns.get(name)
    if name not in _g_ns:
        _g_display({{_g_exercises.CHECK_MIME: {{"exercise_id": exercise_id, "passed": False, "missing": True,
                    "message": name, "nonce": nonce}}}}, raw=True)
        return
    if exercise_id in _g_exercises.known_exercises() or _g_old_run_check is None:
        result = _g_exercises.run_check(exercise_id, answer)
    else:  # an exercise the notebook registered itself: only its own checker knows it
        result = _g_old_run_check(exercise_id, answer)
    _g_display(result.mimebundle(nonce=nonce), raw=True)
'''


def _grader_cell(source: str, setup: bool = False):
    return nbformat.v4.new_code_cell(source, metadata={"tags": [_GRADER_TAG] + ([_SETUP_TAG] if setup else [])})


# Run first, before any student code: import torch and the package (a slow first import on a busy
# machine must not count against the student's first cell, and an interrupted import leaves torch
# broken), and snapshot the namespaces the checkers rely on, which the prelude restores.
_WARM_UP = """# vae_course grader: warm-up (imports, and a snapshot taken before any student code)
import builtins as _g_builtins
import math as _g_math

import torch as _g_torch
import torch.nn.functional as _g_F
import vae_course

_g_saved = [(_g_m, dict(vars(_g_m))) for _g_m in (_g_torch, _g_torch.Tensor, _g_F, _g_torch.linalg, _g_math,
                                                  _g_builtins)]
"""


def _execute(nb, folder: Path, timeout: float, total_timeout: float) -> str:
    """Run `nb` in place inside `folder`; return a note if the run stopped early."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from nbclient.util import run_sync

    def cell_timeout(cell):
        return max(timeout, _SETUP_TIME) if _SETUP_TAG in cell.metadata.get("tags", []) else timeout

    client = NotebookClient(nb, timeout=timeout, timeout_func=cell_timeout, allow_errors=True,
                            interrupt_on_timeout=True, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})

    late = []

    async def run():
        task = asyncio.ensure_future(client.async_execute())
        done, _ = await asyncio.wait({task}, timeout=total_timeout)
        if not done:  # stop the kernel: the cell ignores interrupts
            late.append(True)
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: B036  (the cancelled run's own errors say nothing more)
                pass
            return
        task.result()

    try:
        run_sync(run)()
    except DeadKernelError as e:
        return f"the kernel died ({e}); later cells did not run"
    except Exception as e:  # a notebook that cannot run at all still gets a table
        return f"the run stopped: {type(e).__name__}: {e}"
    if late:
        return f"the whole run took longer than {total_timeout:g} s and was stopped"
    return ""


def _strip_mark(exercise_id: str, message: str) -> str:
    for mark in (PASS_MARK, FAIL_MARK):
        prefix = f"{mark} {exercise_id}: "
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _check_cell_error(student_cells, exercise_id: str) -> str:
    """Why the check cell of `exercise_id` failed to run, if it raised (e.g. the function is undefined)."""
    for cell in student_cells:
        if cell.cell_type == "code" and any(i == exercise_id for i, _ in _CHECK_CALL.findall(cell.source)):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    return f"the check cell raised {output.get('ename')}: {output.get('evalue')}"
    return ""


def _verdict(cell, exercise_id: str, name: str, nonce: str, student_cells, note: str) -> GradeResult:
    """The grade read from one verify cell's outputs (displays of CHECK_MIME with this run's nonce)."""
    outputs = cell.get("outputs", [])
    found = [o["data"][CHECK_MIME] for o in outputs
             if o.get("output_type") == "display_data" and CHECK_MIME in o.get("data", {})]
    found = [f for f in found if isinstance(f, dict) and f.get("nonce") == nonce]
    if len(found) > 1:
        return GradeResult(exercise_id, "fail", "more than one verdict appeared while grading this exercise "
                                                "(output forged by the notebook's code?)")
    if len(found) == 1:
        data = found[0]
        if data.get("exercise_id") != exercise_id:
            return GradeResult(exercise_id, "fail", "the verdict does not name this exercise (forged output?)")
        if data.get("missing"):
            message = _check_cell_error(student_cells, exercise_id) or \
                f"no function named `{name}` was defined (its cell was deleted, renamed or never ran)"
            return GradeResult(exercise_id, "fail", message)
        status = "pass" if data.get("passed") is True else "fail"
        message = _strip_mark(exercise_id, str(data.get("message", "")))
        if exercise_id not in known_exercises():
            message += " [not a vae_course exercise: checked by a checker the notebook registered itself]"
        return GradeResult(exercise_id, status, message)
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if errors and errors[0].get("ename") == "KeyboardInterrupt":
        return GradeResult(exercise_id, "fail", "checking your function was interrupted: it ran longer than "
                                                "the time limit (an endless loop?)")
    if errors:
        return GradeResult(exercise_id, "not run", f"the grader could not check it ({errors[0].get('ename')}: "
                                                   f"{errors[0].get('evalue')})")
    return GradeResult(exercise_id, "not run", "the grader's check did not run" + (f" ({note})" if note else ""))


def grade_notebook(path: str | Path, timeout: float = 120, total_timeout: float | None = None) -> list[GradeResult]:
    """Execute a copy of the notebook at `path` and return one result per exercise.

    `timeout` is the limit per cell of the notebook in seconds (an endless cell is interrupted;
    the grader's own setup cells, which import torch and the package, get two minutes at least);
    `total_timeout` (default 10 x `timeout` + 120) caps the whole run (the kernel is stopped, for
    code that ignores the interrupt). The file at `path` is only read. See the module docstring for how verdicts are
    obtained without trusting anything the notebook prints.
    """
    from .. import __file__ as package_init

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    total_timeout = 10 * timeout + _SETUP_TIME if total_timeout is None else total_timeout
    if not total_timeout > 0:
        raise ValueError(f"total_timeout must be a positive number of seconds, got {total_timeout!r}")
    package_root = str(Path(package_init).resolve().parent.parent)
    nonce = secrets.token_hex(16)
    folder = Path(tempfile.mkdtemp(prefix="vae_course_grade_"))
    try:
        copy = folder / "submission.ipynb"
        shutil.copyfile(path, copy)
        try:
            nb = nbformat.read(copy, as_version=4)
        except Exception as e:  # not JSON, not a notebook
            raise ValueError(f"{path} is not a readable Jupyter notebook ({type(e).__name__}: {e})") from None
        copy.unlink()  # the kernel's working folder starts empty
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        student_cells = list(nb.cells)
        expected = expected_exercises(nb, path.name)
        verify = {}
        prelude = _grader_cell(_prelude(package_root), setup=True)
        if expected:
            nb.cells.insert(0, _grader_cell(_WARM_UP, setup=True))
            nb.cells.append(prelude)
            for exercise_id, name in expected.items():
                verify[exercise_id] = _grader_cell(f"_g_verify({exercise_id!r}, {name!r}, {nonce!r})")
                nb.cells.append(verify[exercise_id])
        note = _execute(nb, folder, timeout, total_timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    failed = [o for o in prelude.get("outputs", []) if o.get("output_type") == "error"]
    if failed:
        message = f"the grader could not prepare its checks ({failed[0].get('ename')}: {failed[0].get('evalue')})"
        return [GradeResult(i, "not run", message) for i in expected]
    return [_verdict(verify[i], i, name, nonce, student_cells, note) for i, name in expected.items()]


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
