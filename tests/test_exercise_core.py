"""The checker mechanism: `check()` never raises, prints one specific verdict, and shows nothing else."""
from __future__ import annotations

import pytest
import torch

from vae_course.teaching.exercises import _core
from vae_course.teaching.exercises._core import (
    NOT_IMPLEMENTED,
    CheckResult,
    Failure,
    call,
    check,
    expect_close,
    expect_grad,
    expect_tensor,
    register,
)

X = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]])


@pytest.fixture(autouse=True)
def scratch_registry(monkeypatch):
    """Each test registers into a copy of the registry, so the real one is left as it was."""
    monkeypatch.setattr(_core, "_REGISTRY", dict(_core._REGISTRY))


def _register_square(exercise_id="t-square"):
    """A checker in the style of the chapters: shape and dtype, then value, then gradient."""
    def reference(x):
        return (x ** 2).sum(-1)

    @register(exercise_id, chapter="00_test", reference=reference)
    def checker(answer):
        x = X.clone().requires_grad_(True)
        where = "at x of shape (2, 3)"
        out = expect_tensor(call(answer, x, where=where), shape=(2,), dtype=torch.float32, where=where)
        expect_close(out, reference(X), where=where)
        expect_grad(out, {"x": x}, where=where)
        return "sums of squares match"

    return exercise_id


def _verdict(capsys, exercise_id, answer):
    result = check(exercise_id, answer)
    printed = capsys.readouterr().out
    assert printed == result.message + "\n", "the verdict is printed exactly once"
    assert isinstance(result, CheckResult) and type(result.passed) is bool
    return result


def test_pass_prints_one_line_with_detail(capsys):
    result = _verdict(capsys, _register_square(), lambda x: (x * x).sum(dim=1))
    assert result.passed and result.message == f"{_core.PASS_MARK} t-square: passed: sums of squares match"


@pytest.mark.parametrize("answer, words", [
    (lambda x: x ** 2, ["shape (2,)", "got (2, 3)"]),
    (lambda x: (x ** 2).sum(-1).double(), ["dtype torch.float32", "got torch.float64"]),
    (lambda x: (x ** 2).mean(-1), ["wrong value", "expected [14, 2.5]", "got [4.667, 0.8333]", "index (0,)"]),
    (lambda x: (x ** 2).sum(-1).detach(), ["no gradient"]),
    (lambda x: torch.full((2,), float("nan")), ["NaN"]),
    (lambda x: [1.0, 2.0], ["torch.Tensor", "got list"]),
    (lambda x: None, ["torch.Tensor", "got NoneType"]),
])
def test_failures_name_the_problem(capsys, answer, words):
    result = _verdict(capsys, _register_square(), answer)
    assert not result.passed and result.message.startswith(f"{_core.FAIL_MARK} t-square: ")
    for word in words:
        assert word in result.message


def test_no_gradient_to_an_unused_input_names_it(capsys):
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    with pytest.raises(Failure, match="`b`"):
        expect_grad(a * 2, {"a": a, "b": b}, where="here")


def test_student_exception_is_reported_with_its_line(capsys):
    def answer(x):
        return x @ torch.ones(5)  # wrong inner dimension

    result = _verdict(capsys, _register_square(), answer)
    assert not result.passed
    assert "your function raised RuntimeError" in result.message
    assert "x @ torch.ones(5)" in result.message and "at x of shape (2, 3)" in result.message


def test_stub_reports_not_implemented(capsys):
    def stub(x):
        raise NotImplementedError("Replace this line with your solution")

    result = _verdict(capsys, _register_square(), stub)
    assert not result.passed and result.message.endswith(NOT_IMPLEMENTED)


@pytest.mark.parametrize("answer, word", [(None, "NoneType"), (3.0, "float"), (X, "Tensor")])
def test_non_callable_answer(capsys, answer, word):
    result = _verdict(capsys, _register_square(), answer)
    assert not result.passed and "callable" in result.message and word in result.message


def test_a_bug_in_the_checker_does_not_raise(capsys):
    @register("t-buggy", chapter="00_test", reference=abs)
    def checker(answer):
        return {}["missing"]

    result = _verdict(capsys, "t-buggy", abs)
    assert not result.passed and "checker itself failed (KeyError" in result.message


def test_student_code_that_raises_anything_never_escapes(capsys):
    class Weird(Exception):
        pass

    def answer(x):
        raise Weird("boom")

    result = _verdict(capsys, _register_square(), answer)
    assert not result.passed and "Weird" in result.message and "boom" in result.message


def test_unknown_id_lists_known_ids(capsys):
    _register_square("t-one")
    _register_square("t-two")
    result = _verdict(capsys, "t-thre", abs)
    assert not result.passed and "unknown exercise id 't-thre'" in result.message
    assert "t-one" in result.message and "t-two" in result.message


def test_registering_an_id_from_another_module_is_an_error():
    _register_square("t-dup")

    def other(answer):
        return None

    other.__module__ = "somebody_else"
    with pytest.raises(RuntimeError, match=r"exercise id 't-dup' registered twice: by 'test_exercise_core' "
                                           r"and again by 'somebody_else'"):
        register("t-dup", chapter="00_test", reference=abs)(other)
    assert _core.known_exercises()["t-dup"].module == __name__  # the first entry is kept


def test_registering_again_from_the_same_module_replaces_the_entry(capsys):
    _register_square("t-again")
    first = _core.known_exercises()["t-again"].checker

    @register("t-again", chapter="00_other", reference=abs)
    def replacement(answer):
        return "the new checker ran"

    entry = _core.known_exercises()["t-again"]
    assert entry.checker is replacement and entry.checker is not first and entry.chapter == "00_other"
    assert _verdict(capsys, "t-again", abs).message.endswith("passed: the new checker ran")


def test_reloading_a_chapter_module_replaces_its_checkers(capsys):
    import importlib

    from vae_course.teaching.exercises import ch01

    before = _core.known_exercises()
    ids = {i for i, ex in before.items() if ex.module == ch01.__name__}
    assert ids == {"gaussian_log_prob", "mixture_log_prob"}
    reloaded = importlib.reload(ch01)  # what %autoreload does after an edit; used to raise "registered twice"
    after = _core.known_exercises()
    assert set(after) == set(before)
    assert after["gaussian_log_prob"].checker is reloaded.check_gaussian_log_prob
    assert after["gaussian_log_prob"].checker is not before["gaussian_log_prob"].checker
    assert check("gaussian_log_prob", after["gaussian_log_prob"].reference).passed
    assert not check("gaussian_log_prob", lambda x, mu, logvar: -after["gaussian_log_prob"].reference(x, mu, logvar)).passed


def test_run_check_returns_the_verdict_without_printing(capsys):
    result = _core.run_check(_register_square(), lambda x: (x * x).sum(dim=1))
    assert capsys.readouterr().out == "" and result.passed
    data = result.to_dict()
    assert data == {"exercise_id": "t-square", "passed": True, "message": result.message}
    bundle = result.mimebundle(nonce="abc")
    assert bundle["text/plain"] == result.message
    assert bundle[_core.CHECK_MIME] == {**data, "nonce": "abc"}


def test_result_shows_nothing_extra_in_ipython(capsys):
    from IPython.core.formatters import DisplayFormatter

    result = _verdict(capsys, _register_square(), lambda x: (x * x).sum(dim=1))
    assert result._ipython_display_() is None
    assert DisplayFormatter().format(result) == ({}, {})  # IPython defers to _ipython_display_
    assert str(result) == result.message and "passed=True" in repr(result)


def test_call_does_not_mutate_the_callers_tensors():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = torch.tensor([3.0, 4.0])

    def answer(a, b, k):
        b.add_(10.0)  # in-place edits of the inputs
        a.data.zero_()
        return a * 2, b, k

    a, b, k = call(answer, x, y, 7, where="here")
    assert torch.equal(x.detach(), torch.tensor([1.0, 2.0])) and torch.equal(y, torch.tensor([3.0, 4.0]))
    assert torch.equal(b, torch.tensor([13.0, 14.0])) and k == 7
    assert x.grad is None and a.requires_grad and not b.requires_grad


def test_gradients_reach_the_tensors_passed_to_call():
    mu = torch.tensor([0.5, -1.0], requires_grad=True)
    out = call(lambda m: (m ** 2).sum(), mu, where="here")
    expect_grad(out, {"mu": mu}, where="here")
    (g,) = torch.autograd.grad(call(lambda m: (m ** 2).sum(), mu, where="here"), [mu])
    assert torch.equal(g, 2 * mu.detach())


def test_expect_close_reports_expected_and_obtained():
    with pytest.raises(Failure) as info:
        expect_close(torch.tensor(1.5), torch.tensor(2.0), where="at x = 0", name="log p(x)")
    assert str(info.value) == "wrong value of log p(x) at x = 0: expected 2, got 1.5."


def test_expect_tensor_rejects_inf():
    with pytest.raises(Failure, match="inf"):
        expect_tensor(torch.tensor([1.0, float("inf")]), shape=(2,), where="here")


@pytest.mark.parametrize("exercise_id", sorted(_core.known_exercises()))
def test_every_registered_exercise_passes_its_reference_and_fails_a_stub(capsys, exercise_id):
    exercise = _core.known_exercises()[exercise_id]
    assert check(exercise_id, exercise.reference).passed, capsys.readouterr().out

    def stub(*args, **kwargs):
        raise NotImplementedError

    result = check(exercise_id, stub)
    assert not result.passed and result.message.endswith(NOT_IMPLEMENTED)
