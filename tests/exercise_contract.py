"""What every exercise check must do, as assertions the chapter tests share.

A check passes every correct answer, fails the stub the student edition hands out, and fails
each common mistake with a message that names it (without showing the reference code).
"""
from vae_course.teaching.exercises import check


def stub(*args, **kwargs):
    """What the student edition leaves in place of a solution."""
    raise NotImplementedError("write your code here")


def assert_accepts(exercise_id: str, fn) -> None:
    result = check(exercise_id, fn)
    assert result.passed, result.message


def assert_rejects(exercise_id: str, fn, words: str, hidden: tuple[str, ...] = ("### BEGIN",)) -> None:
    """The check fails `fn`, its message contains `words`, and it shows none of `hidden`."""
    result = check(exercise_id, fn)
    assert not result.passed, f"the check of {exercise_id} accepted a wrong answer"
    assert words in result.message, result.message
    for text in hidden:
        assert text not in result.message, f"the message reveals {text!r}: {result.message}"
