"""Every registered exercise: its reference and stub, and the contract helpers themselves.

The checkers compute their expected values independently of the package's references, so
"the reference passes" is a real test of the reference; a slightly perturbed reference must fail
(the tolerances bite), and the leak detector used by every mistake test must be able to fire.
"""
import pytest
import torch
from exercise_contract import assert_accepts, leaks, reference_code_lines, stub

from vae_course.teaching.exercises import check, known_exercises


@pytest.mark.parametrize("exercise_id", sorted(known_exercises()))
def test_reference_passes_and_stub_fails(exercise_id):
    assert_accepts(exercise_id, known_exercises()[exercise_id].reference)
    result = check(exercise_id, stub)
    assert not result.passed and "not implemented" in result.message


def _perturbed(ref, factor):
    def answer(*args):
        out = ref(*args)
        if isinstance(out, tuple):  # (mean, cov): perturb the mean
            return (out[0] * factor + 1e-3, *out[1:])
        return out * factor
    return answer


@pytest.mark.parametrize("exercise_id", sorted(known_exercises()))
def test_a_reference_off_by_one_part_in_a_thousand_fails(exercise_id):
    result = check(exercise_id, _perturbed(known_exercises()[exercise_id].reference, 1.001))
    assert not result.passed and "wrong value" in result.message, result.message
    assert not leaks(exercise_id, result.message), result.message


@pytest.mark.parametrize("exercise_id", sorted(known_exercises()))
def test_a_reference_that_returns_the_wrong_type_fails(exercise_id):
    result = check(exercise_id, lambda *args: [0.0])
    assert not result.passed and ("torch.Tensor" in result.message or "pair (mean, cov)" in result.message)


def test_every_chapter_has_at_least_two_exercises():
    chapters = [e.chapter for e in known_exercises().values()]
    assert chapters and all(chapters.count(c) >= 2 for c in set(chapters))


# --- the leak detector can fire -----------------------------------------------------------------

@pytest.mark.parametrize("exercise_id", sorted(known_exercises()))
def test_leaks_finds_a_line_of_the_reference_code(exercise_id):
    lines = reference_code_lines(exercise_id)
    assert lines, f"no code lines found in the reference of {exercise_id}"
    assert leaks(exercise_id, f"wrong value. Try: {lines[-1]}") == [lines[-1]]


def test_leaks_finds_markers_and_whole_tensors_but_not_a_truncated_one():
    assert leaks("gaussian_log_prob", "see ### BEGIN SOLUTION") == ["### BEGIN", "SOLUTION"]
    assert leaks("gaussian_log_prob", "expected [-1.2, 3.4, 5], got [1, 2, 3]") == ["[-1.2, 3.4, 5]"]
    assert leaks("gaussian_log_prob", "expected [-1.2, 3.4, 5, 6, ...], got [1, 2, 3, 4, ...]") == []
    assert leaks("gaussian_log_prob", "each coordinate contributes -1/2 [log(2π) + logvar]") == []


def test_failure_messages_show_a_few_values_only():
    # a wrong constant answer: the message shows expected values truncated with "..."
    result = check("gaussian_log_prob", lambda x, mu, logvar: torch.zeros(x.shape[0], dtype=x.dtype))
    assert not result.passed and "expected [" in result.message and ", ...]" in result.message
    assert not leaks("gaussian_log_prob", result.message)
