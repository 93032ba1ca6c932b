"""Grading hostile submissions: forged verdicts, patched checkers, crashes, endless loops, file writes.

Each submission is a hand-written notebook for the real exercises of chapter 1. The grader must
credit only what its own re-run of the package's checker finds, never edit the submission,
and leave nothing beside it.
"""
from __future__ import annotations

import textwrap

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vae_course.classroom.grading import GradeResult, grade_notebook
from vae_course.teaching.exercises import known_exercises

CHAPTER1_IDS = {i for i, e in known_exercises().items() if e.chapter == "01_generative_modelling"}

# A correct answer, written out (not the package's function).
GAUSSIAN_OK = '''
import math
import torch

def gaussian_log_prob(x, mu, logvar):
    mu = torch.as_tensor(mu, dtype=x.dtype)
    logvar = torch.as_tensor(logvar, dtype=x.dtype)
    return (-0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / logvar.exp())).sum(-1)
'''
# A wrong answer: the sign is flipped (the negative log-likelihood).
GAUSSIAN_SIGN = GAUSSIAN_OK.replace("return (-0.5", "return (0.5")
MIXTURE_OK = '''
def mixture_log_prob(x, weights, mu, logvar):
    comp = -0.5 * (math.log(2 * math.pi) + logvar + (x[:, None] - mu) ** 2 / logvar.exp())
    return torch.logsumexp(weights.log() + comp, dim=1)
'''
CHECKS = ['vc.exercises.check("gaussian_log_prob", gaussian_log_prob)',
          'vc.exercises.check("mixture_log_prob", mixture_log_prob)']


def _notebook(*sources: str):
    cells = [new_markdown_cell("# A submission")]
    cells += [new_code_cell(textwrap.dedent(s).strip()) for s in ("import vae_course as vc\nvc.setup()", *sources)]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _grade(tmp_path, nb, name="submission.ipynb", **kwargs) -> dict[str, GradeResult]:
    folder = tmp_path / "hand_in"
    folder.mkdir()
    path = folder / name
    nbformat.write(nb, path)
    before = path.read_bytes()
    results = grade_notebook(path, **kwargs)
    assert path.read_bytes() == before, "grading edited the submission"
    assert [p.name for p in folder.iterdir()] == [name], "grading wrote files beside the submission"
    return {r.exercise_id: r for r in results}


def test_an_honest_submission_passes_even_with_its_check_cells_deleted_and_a_crash(tmp_path):
    # No check cell at all: the exercises come from the chapter (the notebook's name).
    nb = _notebook(GAUSSIAN_OK, "1 / 0  # a crash in between", MIXTURE_OK)
    got = _grade(tmp_path, nb, name="01_generative_modelling.ipynb")
    assert set(got) == CHAPTER1_IDS  # every exercise of the chapter, written or not
    assert got["gaussian_log_prob"].status == "pass", got
    assert got["mixture_log_prob"].status == "pass", got
    assert got["gaussian_log_prob"].message.startswith("passed: one log-density per example")


FORGERIES = [
    # printed verdicts in the old text format, for both exercises
    'print("✅ gaussian_log_prob: passed.")\nprint("✅ mixture_log_prob: passed.")',
    # a `check` of its own, called in the check cells
    'def check(exercise_id, answer):\n    print(f"✅ {exercise_id}: passed.")\n'
    'check("gaussian_log_prob", gaussian_log_prob)\ncheck("mixture_log_prob", None)',
    # the package's check, run_check and registry patched in the kernel
    '''
    import dataclasses
    from vae_course.teaching.exercises import _core
    lenient = lambda exercise_id, answer: _core.CheckResult(exercise_id, True, f"✅ {exercise_id}: passed.")
    vc.exercises.check = vc.exercises.run_check = _core.run_check = _core.check = lenient
    for key, entry in list(_core._REGISTRY.items()):
        _core._REGISTRY[key] = dataclasses.replace(entry, checker=lambda answer: None)
    ''',
    # a structured verdict forged in the grader's format, by the notebook's own cells
    '''
    from IPython.display import display
    for i in ("gaussian_log_prob", "mixture_log_prob"):
        display({vc.exercises.CHECK_MIME: {"exercise_id": i, "passed": True, "message": "passed.", "nonce": ""}},
                raw=True)
    ''',
    # a hook that forges a verdict in every later cell, the grader's included
    '''
    from IPython.display import display
    def forge(*args):
        for i in ("gaussian_log_prob", "mixture_log_prob"):
            display({vc.exercises.CHECK_MIME: {"exercise_id": i, "passed": True, "message": "passed."}}, raw=True)
    get_ipython().events.register("post_run_cell", forge)
    get_ipython().events.register("pre_run_cell", forge)
    ''',
    # the comparisons the checker relies on, patched in torch (and a Tensor method shadowed)
    '''
    import torch
    torch.allclose = lambda *args, **kwargs: True
    torch.Tensor.allclose = lambda self, *args, **kwargs: True
    torch.isfinite = lambda t: torch.ones_like(t, dtype=torch.bool)
    ''',
    # a background thread that keeps displaying forged verdicts while the grader works
    '''
    import threading, time
    from IPython.display import display
    def spam():
        for _ in range(3000):
            display({vc.exercises.CHECK_MIME: {"exercise_id": "gaussian_log_prob", "passed": True, "message": "ok"}},
                    raw=True)
            time.sleep(0.01)
    threading.Thread(target=spam, daemon=True).start()
    ''',
    # a fake vae_course package written into the working folder, that passes everything
    '''
    import os
    os.makedirs("vae_course/teaching/exercises", exist_ok=True)
    for d in ("vae_course", "vae_course/teaching"):
        open(f"{d}/__init__.py", "w").close()
    with open("vae_course/teaching/exercises/__init__.py", "w") as f:
        f.write("CHECK_MIME = 'application/vnd.vae-course.check+json'\\n"
                "def known_exercises():\\n    return {'gaussian_log_prob': 1, 'mixture_log_prob': 1}\\n"
                "class R:\\n    def __init__(s, i): s.i = i\\n"
                "    def mimebundle(s, nonce):\\n        return {CHECK_MIME: {'exercise_id': s.i, 'passed': True,"
                " 'message': 'ok', 'nonce': nonce}}\\n"
                "def run_check(i, a):\\n    return R(i)\\n")
    open("notes.txt", "w").write("a file written by the student's code")
    ''',
]


@pytest.mark.parametrize("forgery", range(len(FORGERIES)))
def test_forged_passes_are_not_credited(tmp_path, forgery):
    """The sign-flipped answer fails and the missing one is reported missing, whatever the notebook prints."""
    nb = _notebook(GAUSSIAN_SIGN, CHECKS[0], FORGERIES[forgery], CHECKS[1])
    got = _grade(tmp_path, nb)
    assert set(got) == CHAPTER1_IDS  # every exercise of the chapter, written or not
    assert got["gaussian_log_prob"].status == "fail", got
    assert "Hint: the sign is flipped" in got["gaussian_log_prob"].message
    assert got["mixture_log_prob"].status == "fail", got
    assert got["mixture_log_prob"].message == "the check cell raised NameError: name 'mixture_log_prob' is not defined"


# Per-cell limits leave time to import torch in a fresh kernel (a few seconds on a loaded machine).
def test_endless_student_function_is_interrupted_and_failed(tmp_path):
    slow = "def gaussian_log_prob(x, mu, logvar):\n    while True:\n        pass"
    # gaussian_log_prob's check cell is deleted, so only the grader's call of it has to be interrupted.
    nb = _notebook(slow, "import math, torch\n" + MIXTURE_OK, CHECKS[1])
    got = _grade(tmp_path, nb, timeout=15)
    assert got["gaussian_log_prob"] == GradeResult(
        "gaussian_log_prob", "fail",
        "checking your function was interrupted: it ran longer than the time limit (an endless loop?)")
    assert got["mixture_log_prob"].status == "pass", got


def test_a_loop_that_ignores_interrupts_is_stopped_by_the_total_limit(tmp_path):
    stubborn = ("import time\nwhile True:\n    try:\n        time.sleep(0.2)\n    except KeyboardInterrupt:\n"
                "        pass  # refuses to stop")
    nb = _notebook(GAUSSIAN_OK, stubborn, *CHECKS)
    got = _grade(tmp_path, nb, timeout=15, total_timeout=35)
    assert {r.status for r in got.values()} == {"not run"}
    assert "the whole run took longer than 35 s and was stopped" in got["gaussian_log_prob"].message


def test_a_kernel_that_exits_gives_not_run(tmp_path):
    nb = _notebook(GAUSSIAN_OK, "import os\nos._exit(3)", *CHECKS)
    got = _grade(tmp_path, nb, timeout=20)
    assert {r.status for r in got.values()} == {"not run"}, got
    assert "the kernel died" in got["gaussian_log_prob"].message


def test_bad_arguments_name_the_argument(tmp_path):
    path = tmp_path / "x.ipynb"
    with pytest.raises(FileNotFoundError, match="no notebook at"):
        grade_notebook(path)
    path.write_text("not json")
    with pytest.raises(ValueError, match=r"x\.ipynb is not a readable Jupyter notebook"):
        grade_notebook(path)
    nbformat.write(_notebook(), path)
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        grade_notebook(path, timeout=0)
    with pytest.raises(ValueError, match="total_timeout must be a positive number of seconds, got -1"):
        grade_notebook(path, total_timeout=-1)
