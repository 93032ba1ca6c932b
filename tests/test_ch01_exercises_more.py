"""Chapter 1's reasoning exercise, the Bernoulli-mixture M-step: its check is right and can fail.

Correct answers written other ways pass; the stub and every common mistake fail, each with the
hint written for it (recognised by a phrase that no other hint of the exercise contains); the
checker's own expected values agree with numbers worked out by hand.
"""
import pytest
import torch

import vae_course as vc
from vae_course.teaching.exercises.ch01_more import EXERCISE, HINTS, _loop_m_step

EPS = 1e-3


def check(fn):
    return vc.exercises.check(EXERCISE, fn)


def stub(*args, **kwargs):
    raise NotImplementedError("write your code here")


# --- correct answers, written several ways --------------------------------------------------------

def m_step_matrix(x, resp, eps=EPS):
    n_k = resp.sum(0)
    return n_k / n_k.sum(), ((resp.T @ x) / n_k[:, None]).clamp(eps, 1 - eps)


def m_step_einsum(x, resp, eps=EPS):
    n_k = torch.einsum("nk->k", resp)
    probs = torch.einsum("nk,nd->kd", resp, x) / n_k[:, None]
    probs = torch.where(probs < eps, torch.full_like(probs, eps), probs)
    probs = torch.where(probs > 1 - eps, torch.full_like(probs, 1 - eps), probs)
    return resp.mean(dim=0), probs


def m_step_loop(x, resp, eps=EPS):
    """One component at a time, as a list of rows; returned as a list, not a tuple."""
    weights, rows = [], []
    for k in range(resp.shape[1]):
        r = resp[:, k]
        weights.append(r.sum() / len(r))
        rows.append(torch.clamp((r[:, None] * x).sum(0) / r.sum(), min=eps, max=1 - eps))
    return [torch.stack(weights), torch.stack(rows)]


def m_step_float64(x, resp, eps=EPS):
    weights, probs = m_step_matrix(x.double(), resp.double(), eps)
    return weights.to(x.dtype), probs.to(x.dtype)


@pytest.mark.parametrize("fn", [m_step_matrix, m_step_einsum, m_step_loop, m_step_float64],
                         ids=lambda f: f.__name__)
def test_check_passes_correct_answers(fn):
    result = check(fn)
    assert result.passed, result.message


# --- the checker's expected values are right --------------------------------------------------------

def test_expected_values_agree_with_a_hand_computation():
    # Two images, two pixels, two components: r = [[0.75, 0.25], [0.5, 0.5]], x = [[1, 0], [1, 1]].
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    resp = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    weights, probs = _loop_m_step(x, resp, EPS)
    # N_1 = 1.25, N_2 = 0.75; pixel 1 is on in both images; pixel 2 only in the second.
    assert torch.allclose(weights, torch.tensor([0.625, 0.375], dtype=torch.float64))
    hand = torch.tensor([[1.0, 0.5 / 1.25], [1.0, 0.5 / 0.75]], dtype=torch.float64)
    assert torch.allclose(probs, hand.clamp(EPS, 1 - EPS))
    assert probs[0, 0] == 1 - EPS  # the clamp bites on an always-on pixel


# --- the stub, and wrong answers of the shared machinery ------------------------------------------

def test_check_fails_the_stub():
    result = check(stub)
    assert not result.passed and "not implemented" in result.message


@pytest.mark.parametrize("fn, words", [
    (lambda x, resp, eps=EPS: m_step_matrix(x, resp, eps)[1], "should return a pair (weights, probs)"),
    (lambda x, resp, eps=EPS: (m_step_matrix(x, resp, eps)[0].tolist(), m_step_matrix(x, resp, eps)[1]),
     "weights should be a torch.Tensor, got list"),
    (lambda x, resp, eps=EPS: tuple(t.double() for t in m_step_matrix(x, resp, eps)),
     "weights should have dtype torch.float32, got torch.float64"),
    (lambda x, resp, eps=EPS: (m_step_matrix(x, resp, eps)[0], m_step_matrix(x, resp, eps)[1][:, :-1]),
     "probs should have shape (5, 6), got (5, 5)"),
    (lambda x, resp, eps=EPS: (m_step_matrix(x, resp, eps)[0] * 1.001, m_step_matrix(x, resp, eps)[1]),
     "wrong value of weights"),
], ids=["not a pair", "weights a list", "float64 out for float32 in", "probs too narrow", "weights off by 0.1%"])
def test_check_rejects_other_wrong_answers(fn, words):
    result = check(fn)
    assert not result.passed and words in result.message, result.message
    assert "### BEGIN" not in result.message


# --- every common mistake gets its own hint ---------------------------------------------------------

def hard(resp):
    return torch.nn.functional.one_hot(resp.argmax(1), resp.shape[1]).to(resp.dtype)


def right_probs(x, resp, eps):
    return m_step_matrix(x, resp, eps)[1]


MISTAKES = {
    "weights_unnormalised": (lambda x, r, eps=EPS: (r.sum(0), right_probs(x, r, eps)),
                             "its share of the responsibilities"),
    "weights_over_images": (lambda x, r, eps=EPS: (r.mean(1), right_probs(x, r, eps)),
                            "one entry per image"),
    "weights_hard": (lambda x, r, eps=EPS: (hard(r).mean(0), right_probs(x, r, eps)),
                     "count hard assignments"),
    "probs_transposed": (lambda x, r, eps=EPS: (r.mean(0), right_probs(x, r, eps).T),
                         "looks transposed"),
    "probs_unnormalised": (lambda x, r, eps=EPS: (r.mean(0), (r.T @ x).clamp(eps, 1 - eps)),
                           "must be divided by that component's column sum"),
    "probs_over_n": (lambda x, r, eps=EPS: (r.mean(0), ((r.T @ x) / len(x)).clamp(eps, 1 - eps)),
                     "not by the number of images N"),
    "probs_hard": (lambda x, r, eps=EPS: (r.mean(0), right_probs(x, hard(r), eps)),
                   "assigned wholly to a component"),
    "probs_unclamped": (lambda x, r, eps=EPS: (r.mean(0), (r.T @ x) / r.sum(0)[:, None]),
                        "exactly 0 or 1"),
    "probs_fixed_eps": (lambda x, r, eps=EPS: (r.mean(0), right_probs(x, r, 1e-3)),
                        "ignores the eps argument"),
}


def test_every_hint_has_a_mistake_that_triggers_it():
    assert set(MISTAKES) == set(HINTS[EXERCISE])


@pytest.mark.parametrize("key", MISTAKES)
def test_each_mistake_fails_with_its_own_hint(key):
    fn, phrase = MISTAKES[key]
    hints = HINTS[EXERCISE]
    assert phrase in hints[key]
    assert not [k for k, text in hints.items() if k != key and phrase in text], "the phrase is not specific"
    result = check(fn)
    assert not result.passed, f"the check accepted the mistake {key}"
    assert f"Hint: {hints[key]}" in result.message, result.message
    assert "### BEGIN" not in result.message and "resp.sum(dim=0)" not in result.message


def test_unnormalised_probs_without_a_clamp_still_get_the_normalisation_hint():
    result = check(lambda x, r, eps=EPS: (r.mean(0), r.T @ x))
    assert not result.passed and HINTS[EXERCISE]["probs_unnormalised"] in result.message, result.message
