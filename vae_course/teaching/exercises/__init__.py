"""Exercises: `check(exercise_id, answer)` and one module of checkers per chapter.

Taught in: the preface ("Exercises and checks"). Each chapter module registers its
checkers when this package is imported; nothing outside the package is touched.
The names below are the public face of the checker machinery, for the chapters, the grader
(`run_check`, `CHECK_MIME`) and checkers written outside the package (`call`, `expect_*`).
"""
from . import ch01, ch01_more, ch02, ch02_more, ch03, ch03_more, ch04, ch05, ch06, ch07, ch08  # noqa: F401  (checkers)
from ._core import (
    CHECK_MIME,
    FAIL_MARK,
    NOT_IMPLEMENTED,
    PASS_MARK,
    CheckResult,
    Exercise,
    Failure,
    call,
    check,
    expect_close,
    expect_grad,
    expect_tensor,
    known_exercises,
    register,
    run_check,
)

__all__ = ["check", "run_check", "known_exercises", "CheckResult", "Exercise", "Failure", "register",
           "call", "expect_tensor", "expect_close", "expect_grad",
           "CHECK_MIME", "PASS_MARK", "FAIL_MARK", "NOT_IMPLEMENTED"]
