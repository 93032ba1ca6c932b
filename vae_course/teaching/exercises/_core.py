"""The exercise checker: `check(exercise_id, answer)` prints a pass or one specific failure.

Taught in: the preface ("Exercises and checks"). A checker is a function registered with
`@register(...)`; it calls the student's function through `call()`, and reports the first
problem by raising `Failure` with a message that names the input, and the expected and
obtained shape, dtype or value. It never shows the reference code. `check()` never raises.

`run_check(exercise_id, answer)` is the same verdict without printing; the grader
(`vae_course.classroom.grading`) calls it from its own code after a submission has run, and
reads `CheckResult.to_dict()` back as a display of mime type `CHECK_MIME`, never the printed text.

Registering is reload-safe: when a module that registers checkers is reloaded (`importlib.reload`,
IPython's `%autoreload`), its checkers replace their earlier versions; a *different* module that
registers an id already taken is an error.
"""
from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["CheckResult", "Failure", "Exercise", "register", "check", "run_check", "known_exercises",
           "call", "expect_tensor", "expect_close", "expect_grad", "CHECK_MIME", "PASS_MARK", "FAIL_MARK",
           "NOT_IMPLEMENTED"]

PASS_MARK, FAIL_MARK = "✅", "❌"
# What check() reports for a stub of the student edition (the grader and the tests rely on it).
NOT_IMPLEMENTED = "not implemented yet: replace the `raise NotImplementedError` line with your code."
# The mime type of a verdict in machine-readable form (a JSON object, see `CheckResult.to_dict`).
CHECK_MIME = "application/vnd.vae-course.check+json"


@dataclass(frozen=True)
class CheckResult:
    """What `check()` found. `passed` is a bool; `message` is what was printed."""

    exercise_id: str
    passed: bool
    message: str

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"CheckResult(exercise_id={self.exercise_id!r}, passed={self.passed})"

    def to_dict(self) -> dict:
        """The verdict as JSON-ready data: {"exercise_id", "passed", "message"}."""
        return {"exercise_id": self.exercise_id, "passed": self.passed, "message": self.message}

    def mimebundle(self, **extra) -> dict:
        """A display bundle: the message as text/plain and `to_dict()` (plus `extra`) as `CHECK_MIME`."""
        return {"text/plain": self.message, CHECK_MIME: {**self.to_dict(), **extra}}

    def _ipython_display_(self) -> None:
        # check() has printed the message already; showing the object again would only add noise.
        return None


class Failure(Exception):
    """Raised inside a checker to report one specific problem with the student's answer."""


class StudentError(Exception):
    """The student's function raised; carries a readable description of where."""


@dataclass(frozen=True)
class Exercise:
    exercise_id: str  # the id passed to check()
    chapter: str  # the chapter notebook that holds it, e.g. "01_generative_modelling"
    checker: Callable[[Callable], str | None]  # raises Failure; may return a success detail
    reference: Callable  # the package's reference implementation (used by tests, never printed)
    module: str = ""  # the module that registered it (a reload of that module may replace it)


# Kept across a reload of this module, so the checkers registered so far are not lost.
try:
    _REGISTRY  # type: ignore[used-before-def]  # noqa: B018
except NameError:
    _REGISTRY: dict[str, Exercise] = {}


def register(exercise_id: str, *, chapter: str, reference: Callable):
    """Decorator that registers `checker(answer)` under `exercise_id`.

    Registering an id again from the module that registered it (a reload) replaces the entry;
    registering it from another module raises RuntimeError.
    """

    def wrap(checker):
        module = getattr(checker, "__module__", "") or ""
        old = _REGISTRY.get(exercise_id)
        if old is not None and old.module != module:
            raise RuntimeError(f"exercise id {exercise_id!r} registered twice: by {old.module!r} "
                               f"and again by {module!r}")
        _REGISTRY[exercise_id] = Exercise(exercise_id, chapter, checker, reference, module)
        return checker

    return wrap


def known_exercises() -> dict[str, Exercise]:
    """All registered exercises, by id."""
    return dict(_REGISTRY)


def run_check(exercise_id: str, answer) -> CheckResult:
    """The verdict of `check()` without printing it. Never raises (except KeyboardInterrupt)."""
    if exercise_id not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        return _result(exercise_id, False, f"unknown exercise id {exercise_id!r}. Known ids: {known}")
    if not callable(answer):
        return _result(exercise_id, False,
                       f"expected your function (a callable), got {type(answer).__name__}. "
                       "Pass the function itself, without calling it.")
    try:
        detail = _REGISTRY[exercise_id].checker(answer)
    except NotImplementedError:
        return _result(exercise_id, False, NOT_IMPLEMENTED)
    except Failure as e:
        return _result(exercise_id, False, str(e))
    except StudentError as e:
        return _result(exercise_id, False, str(e))
    except Exception as e:  # a bug in a checker must not crash a student's notebook
        return _result(exercise_id, False, f"the checker itself failed ({type(e).__name__}: {e}); please report this.")
    return _result(exercise_id, True, "passed" + (f": {detail}" if detail else "."))


def check(exercise_id: str, answer) -> CheckResult:
    """Check a student's function against the reference; print and return the verdict. Never raises."""
    result = run_check(exercise_id, answer)
    print(result.message)
    return result


def _result(exercise_id: str, passed: bool, message: str) -> CheckResult:
    return CheckResult(exercise_id, passed, f"{PASS_MARK if passed else FAIL_MARK} {exercise_id}: {message}")


# --- helpers for writing checkers -------------------------------------------------------------

def call(answer: Callable, *args, where: str):
    """Call the student's function on copies of `args`; describe any exception it raises.

    In-place edits of the copies never reach the caller's tensors; a tensor that requires grad
    is copied with `clone()`, so gradients of the result still reach the caller's tensor
    (`expect_grad(out, {"mu": mu}, ...)` works on the tensors passed to `call`).
    """
    copies = [_copy(a) for a in args]
    try:
        return answer(*copies)
    except NotImplementedError:
        raise
    except Exception as e:
        frames = traceback.extract_tb(e.__traceback__)
        line = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames and frames[-1].line else ""
        raise StudentError(f"your function raised {type(e).__name__}: {e}{line}, {where}.") from None


def _copy(a):
    if not isinstance(a, torch.Tensor):
        return a
    return a.clone() if a.requires_grad else a.detach().clone()


def expect_tensor(out, *, shape: tuple, where: str, dtype: torch.dtype | None = None, name: str = "the result"):
    """Fail unless `out` is a tensor of `shape` (and `dtype`) with only finite values."""
    if not isinstance(out, torch.Tensor):
        raise Failure(f"{name} should be a torch.Tensor, got {type(out).__name__}, {where}.")
    if tuple(out.shape) != tuple(shape):
        raise Failure(f"{name} should have shape {tuple(shape)}, got {tuple(out.shape)}, {where}.")
    if dtype is not None and out.dtype != dtype:
        raise Failure(f"{name} should have dtype {dtype}, got {out.dtype}, {where}.")
    if out.is_floating_point() and not torch.isfinite(out).all():
        bad = "NaN" if torch.isnan(out).any() else "inf"
        raise Failure(f"{name} contains {bad}, {where}.")
    return out


def _fmt(t: torch.Tensor, k: int = 4) -> str:
    flat = t.detach().reshape(-1)
    vals = ", ".join(f"{v:.4g}" for v in flat[:k].tolist())
    return f"[{vals}{', ...' if flat.numel() > k else ''}]" if t.dim() else f"{t.item():.6g}"


def expect_close(out: torch.Tensor, expected: torch.Tensor, *, where: str, rtol: float = 1e-4,
                 atol: float = 1e-5, name: str = "the result"):
    """Fail with expected and obtained values unless `out` matches `expected` elementwise."""
    expected = expected.to(out.dtype)
    if not torch.allclose(out.detach(), expected, rtol=rtol, atol=atol):
        diff = (out.detach() - expected).abs()
        i = int(diff.reshape(-1).argmax())
        idx = tuple(int(j) for j in torch.unravel_index(torch.tensor(i), out.shape)) if out.dim() else ()
        at = f" (largest error at index {idx})" if idx else ""
        raise Failure(f"wrong value of {name} {where}: expected {_fmt(expected)}, got {_fmt(out)}{at}.")


def expect_grad(out: torch.Tensor, inputs: dict[str, torch.Tensor], *, where: str):
    """Fail unless a gradient flows from `out.sum()` to every named input, finite."""
    if not out.requires_grad:
        raise Failure(f"the result carries no gradient {where}: compute it with torch operations "
                      "on the inputs (no .item(), .numpy(), .detach() or torch.no_grad()).")
    grads = torch.autograd.grad(out.sum(), list(inputs.values()), allow_unused=True)
    for (name, _), g in zip(inputs.items(), grads):
        if g is None:
            raise Failure(f"no gradient reaches `{name}` {where}: the result does not depend on it.")
        if not torch.isfinite(g).all():
            raise Failure(f"the gradient with respect to `{name}` is not finite {where}.")


def isclose(a: float, b: float, rel: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=rel)
