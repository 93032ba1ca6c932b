"""The exercise checks of chapter 8 pass correct answers written other ways and name each mistake.

Every hint a checker can give is triggered by a hand-made wrong answer and recognised by a phrase
of its own (`assert_hint`); the stub, detached results and wrong shapes fail without a hint.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_contract import assert_accepts, assert_hint, assert_rejects, stub

import vae_course as vc
from vae_course.teaching.exercises import ch08, known_exercises

HINTS = ch08.HINTS


def test_the_exercises_are_registered_to_chapter_8_with_the_package_references():
    known = known_exercises()
    assert (known["iwae_bound"].chapter, known["iwae_bound"].reference) == ("08_vae", vc.iwae_bound)
    assert (known["vae_loss"].chapter, known["vae_loss"].reference) == ("08_vae", vc.vae_loss)


# --- iwae_bound --------------------------------------------------------------------------------------

def bound_by_numpy(lw):
    a = lw.detach().double().numpy()
    top = a.max(axis=0)
    return torch.from_numpy(top + np.log(np.exp(a - top).mean(axis=0))).to(lw.dtype)


def bound_by_loop(lw):
    out = []
    for n in range(lw.shape[1]):
        col = lw[:, n]
        m = col.max()
        out.append(m + torch.log(sum(torch.exp(w - m) for w in col) / len(col)))
    return torch.stack(out)


def bound_by_logaddexp(lw):
    total = lw[0]
    for row in lw[1:]:
        total = torch.logaddexp(total, row)
    return total - math.log(lw.shape[0])


@pytest.mark.parametrize("fn", [vc.iwae_bound, bound_by_numpy, bound_by_loop, bound_by_logaddexp,
                                lambda lw: torch.logsumexp(lw, dim=0) - torch.log(torch.tensor(float(lw.shape[0])))],
                         ids=["package", "numpy", "loop", "logaddexp", "logsumexp"])
def test_iwae_bound_passes_correct_answers(fn):
    assert_accepts("iwae_bound", fn)


BOUND_HINTED = {
    "mean_of_log_weights": (lambda lw: lw.mean(0), "mean of the log-weights"),
    "missing_log_k": (lambda lw: torch.logsumexp(lw, 0), "log K is missing"),
    "plus_log_k": (lambda lw: torch.logsumexp(lw, 0) + math.log(lw.shape[0]), "wrong sign"),
    "max_only": (lambda lw: lw.max(0).values, "maximum over the draws"),
    "wrong_dim": (lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]), "ran over the examples"),
    "underflow": (lambda lw: torch.log(torch.exp(lw).mean(0)), "underflowed"),
    "overflow": (lambda lw: torch.log(torch.exp(lw.double()).mean(0)).to(lw.dtype)
                 if lw.min() > 0 else torch.logsumexp(lw, 0) - math.log(lw.shape[0]), "overflowed"),
}


def test_iwae_bound_rejects_other_wrong_answers():
    assert_rejects("iwae_bound", stub, "not implemented")
    assert_rejects("iwae_bound", lambda lw: (torch.logsumexp(lw, 0) - math.log(lw.shape[0])).detach()[:1],
                   "shape")
    msg = assert_rejects("iwae_bound", lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[0]) + 0.01, "wrong value")
    assert "Hint" not in msg


# --- vae_loss ----------------------------------------------------------------------------------------

def loss_pytorch_example(x, logits, mu, logvar):
    """The PyTorch examples' loss, divided by the batch size."""
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.shape[0]


def loss_by_softplus(x, logits, mu, logvar):
    # -log p(x | logits) = softplus(logits) - x * logits per pixel
    recon = (F.softplus(logits) - x * logits).sum(1)
    kl = 0.5 * (mu ** 2 + torch.exp(logvar) - 1 - logvar).sum(1)
    return torch.mean(recon + kl)


def loss_by_distributions(x, logits, mu, logvar):
    from torch.distributions import Bernoulli, Normal, kl_divergence

    recon = Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    return (kl - recon).mean()


@pytest.mark.parametrize("fn", [vc.vae_loss, loss_pytorch_example, loss_by_softplus, loss_by_distributions],
                         ids=lambda f: getattr(f, "__name__", "fn"))
def test_vae_loss_passes_correct_answers(fn):
    assert_accepts("vae_loss", fn)


def _kl(mu, lv):
    return 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(1)


def _bce(x, logits):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)


LOSS_HINTED = {
    "not_scalar": (lambda x, l, m, v: _bce(x, l) + _kl(m, v), "not one per example"),
    "sum_over_batch": (lambda x, l, m, v: (_bce(x, l) + _kl(m, v)).sum(), "summed over the batch"),
    "mean_over_pixels": (lambda x, l, m, v: F.binary_cross_entropy_with_logits(l, x) + _kl(m, v).mean(),
                         "averaged over the pixels"),
    "kl_missing": (lambda x, l, m, v: _bce(x, l).mean(), "KL term is missing"),
    "kl_subtracted": (lambda x, l, m, v: (_bce(x, l) - _kl(m, v)).mean(), "KL term was subtracted"),
    "kl_missing_half": (lambda x, l, m, v: (_bce(x, l) + 2 * _kl(m, v)).mean(), "lacks its factor 1/2"),
    "kl_logvar_as_std": (lambda x, l, m, v: (_bce(x, l) + 0.5 * (m ** 2 + v ** 2 - 1 - torch.log(v ** 2)).sum(1)).mean(),
                         "KL used logvar as a standard deviation"),
    "negated": (lambda x, l, m, v: -(_bce(x, l) + _kl(m, v)).mean(), "positive number"),
    "sigmoid_then_log": (lambda x, l, m, v: (F.binary_cross_entropy(torch.sigmoid(l), x, reduction="none").sum(1)
                                             + _kl(m, v)).mean(), "saturates for large logits"),
}


def test_sigmoid_then_log_written_by_hand_is_caught_too():
    def by_hand(x, logits, mu, logvar):
        p = torch.sigmoid(logits)
        return (-(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1) + _kl(mu, logvar)).mean()

    assert_rejects("vae_loss", by_hand, "saturates for large logits")


def test_vae_loss_rejects_other_wrong_answers():
    assert_rejects("vae_loss", stub, "not implemented")
    assert_rejects("vae_loss", lambda x, l, m, v: vc.vae_loss(x, l, m, v).detach(), "no gradient")
    msg = assert_rejects("vae_loss", lambda x, l, m, v: vc.vae_loss(x, l, m, v) * 1.01, "wrong value")
    assert "Hint" not in msg


HINTED = {"iwae_bound": BOUND_HINTED, "vae_loss": LOSS_HINTED}


@pytest.mark.parametrize("exercise_id", sorted(HINTED))
def test_every_hint_has_a_wrong_answer_that_triggers_it(exercise_id):
    assert set(HINTED[exercise_id]) == set(HINTS[exercise_id])


@pytest.mark.parametrize("exercise_id,key", [(e, k) for e in sorted(HINTED) for k in HINTED[e]])
def test_each_mistake_gets_its_own_hint(exercise_id, key):
    fn, phrase = HINTED[exercise_id][key]
    assert_hint(exercise_id, HINTS[exercise_id], key, fn, phrase)
