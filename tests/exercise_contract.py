"""What every exercise check must do, as assertions the chapter tests share.

A check passes every correct answer, fails the stub the student edition hands out, and fails
each common mistake with the hint written for that mistake (a phrase no other hint of the same
exercise contains). A failure message never shows the reference's code, the solution markers,
or a whole tensor of expected values (`leaks` finds each of these; its own test shows it can).
"""
from __future__ import annotations

import inspect
import re

from vae_course.teaching.exercises import check, known_exercises

# "expected" then a bracketed list of numbers with no "..." at its end: a whole expected tensor.
_FULL_LIST = re.compile(r"expected (\[\s*-?(?:\d|inf|nan)[^\]\[a-zA-Z]*?(?<!\.\.\.)\])")


def stub(*args, **kwargs):
    """What the student edition leaves in place of a solution."""
    raise NotImplementedError("write your code here")


def reference_code_lines(exercise_id: str, min_length: int = 16) -> list[str]:
    """The code lines of the reference (no docstring, no comments), long enough to be telling."""
    source = inspect.getsource(known_exercises()[exercise_id].reference)
    body = re.sub(r'"""(?:.|\n)*?"""', "", source)
    lines = [line.split("#")[0].strip() for line in body.splitlines()]
    return [line for line in lines if len(line) >= min_length and not line.startswith(("def ", "@"))]


def leaks(exercise_id: str, message: str) -> list[str]:
    """What `message` reveals that it must not: solution markers, reference code, a whole tensor."""
    found = [marker for marker in ("### BEGIN", "### END", "SOLUTION") if marker in message]
    found += [line for line in reference_code_lines(exercise_id) if line in message]
    found += _FULL_LIST.findall(message)
    return found


def assert_accepts(exercise_id: str, fn) -> None:
    result = check(exercise_id, fn)
    assert result.passed, result.message


def assert_rejects(exercise_id: str, fn, words: str) -> str:
    """The check fails `fn`, its message contains `words`, and it reveals nothing of the solution."""
    result = check(exercise_id, fn)
    assert not result.passed, f"the check of {exercise_id} accepted a wrong answer"
    assert words in result.message, result.message
    assert not leaks(exercise_id, result.message), f"the message reveals {leaks(exercise_id, result.message)}"
    return result.message


def assert_hint(exercise_id: str, hints: dict[str, str], key: str, fn, phrase: str) -> None:
    """The check fails `fn` with the hint `hints[key]`, recognised by `phrase`, which is in no other hint."""
    assert phrase in hints[key], f"{phrase!r} is not part of the hint {key!r}: {hints[key]!r}"
    others = [k for k, text in hints.items() if k != key and phrase in text]
    assert not others, f"{phrase!r} is also in the hints {others} of {exercise_id}"
    message = assert_rejects(exercise_id, fn, phrase)
    assert f"Hint: {hints[key]}" in message, message
