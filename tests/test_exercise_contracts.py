"""Every registered exercise: its reference passes its check and the student-edition stub fails it."""
import pytest
from exercise_contract import assert_accepts, stub

from vae_course.teaching.exercises import check, known_exercises


@pytest.mark.parametrize("exercise_id", sorted(known_exercises()))
def test_reference_passes_and_stub_fails(exercise_id):
    assert_accepts(exercise_id, known_exercises()[exercise_id].reference)
    result = check(exercise_id, stub)
    assert not result.passed and "not implemented" in result.message


def test_every_chapter_has_at_least_two_exercises():
    chapters = [e.chapter for e in known_exercises().values()]
    assert chapters and all(chapters.count(c) >= 2 for c in set(chapters))
