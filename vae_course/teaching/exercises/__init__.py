"""Exercises: `check(exercise_id, answer)` and one module of checkers per chapter.

Taught in: the preface ("Exercises and checks"). Each chapter module registers its
checkers when this package is imported; nothing outside the package is touched.
"""
from . import ch01, ch02, ch03  # noqa: F401  (each registers its chapter's checkers)
from ._core import CheckResult, Failure, check, known_exercises, register

# isort: split
from . import ch02_more, ch03_more  # noqa: F401  (checkers added in the second edition)

__all__ = ["check", "known_exercises", "CheckResult", "Failure", "register"]
