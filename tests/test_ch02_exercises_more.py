"""Chapter 2's importance-sampling exercise: the check passes correct answers written other ways,
and fails the stub and each common mistake with a message that names it."""
from __future__ import annotations

import math

import torch
from exercise_contract import assert_accepts, assert_rejects, stub
from torch.distributions import Normal

import vae_course as vc

EID = "importance_log_prob"


def _parts(x, z, log_q, W, b, sigma2):
    log_lik = Normal(z @ W.T + b, math.sqrt(sigma2)).log_prob(x).sum(-1)
    log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    return log_lik, log_prior, log_q


def reference(x, z, log_q, W, b, sigma2):
    log_lik, log_prior, log_q = _parts(x, z, log_q, W, b, sigma2)
    return torch.logsumexp(log_lik + log_prior - log_q, 0) - math.log(z.shape[0])


def with_package(x, z, log_q, W, b, sigma2):  # another correct way: through vc's log-densities
    log_lik = vc.linear_conditional_log_prob(x, z, W, b, sigma2)
    log_prior = vc.gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
    return vc.log_mean_exp(log_lik + log_prior - log_q, dim=0)


def explicit_loop(x, z, log_q, W, b, sigma2):  # a plain loop with the max trick, row by row
    log_lik, log_prior, log_q = _parts(x, z, log_q, W, b, sigma2)
    lw = log_lik + log_prior - log_q
    out = []
    for n in range(x.shape[0]):
        m = lw[:, n].max()
        out.append(m + torch.log(torch.exp(lw[:, n] - m).mean()))
    return torch.stack(out)


def test_accepts_correct_answers():
    for fn in (reference, with_package, explicit_loop):
        assert_accepts(EID, fn)


def test_rejects_stub_and_mistakes():
    assert_rejects(EID, stub, "NotImplementedError")

    def no_prior(x, z, log_q, W, b, s2):
        ll, lp, lq = _parts(x, z, log_q, W, b, s2)
        return torch.logsumexp(ll - lq, 0) - math.log(z.shape[0])

    def no_q(x, z, log_q, W, b, s2):
        ll, lp, lq = _parts(x, z, log_q, W, b, s2)
        return torch.logsumexp(ll + lp, 0) - math.log(z.shape[0])

    def q_sign(x, z, log_q, W, b, s2):
        ll, lp, lq = _parts(x, z, log_q, W, b, s2)
        return torch.logsumexp(ll + lp + lq, 0) - math.log(z.shape[0])

    def mean_of_logs(x, z, log_q, W, b, s2):
        ll, lp, lq = _parts(x, z, log_q, W, b, s2)
        return (ll + lp - lq).mean(0)

    def no_log_s(x, z, log_q, W, b, s2):
        ll, lp, lq = _parts(x, z, log_q, W, b, s2)
        return torch.logsumexp(ll + lp - lq, 0)

    def prior_without_2pi(x, z, log_q, W, b, s2):
        ll, _, lq = _parts(x, z, log_q, W, b, s2)
        return torch.logsumexp(ll - 0.5 * (z**2).sum(-1) - lq, 0) - math.log(z.shape[0])

    def wrong_dim(x, z, log_q, W, b, s2):
        ll, lp, lq = _parts(x, z, log_q, W, b, s2)
        return torch.logsumexp(ll + lp - lq, 1) - math.log(z.shape[0])

    assert_rejects(EID, no_prior, "prior term log p(z_s) seems to be missing")
    assert_rejects(EID, no_q, "proposal term seems to be missing")
    assert_rejects(EID, q_sign, "log_q has the wrong sign")
    assert_rejects(EID, mean_of_logs, "you averaged the log-weights")
    assert_rejects(EID, no_log_s, "too large by exactly log S")
    assert_rejects(EID, prior_without_2pi, "2 pi) constant seems to be missing")
    assert_rejects(EID, wrong_dim, "should have shape")


def test_registered_for_chapter_2():
    assert vc.exercises.known_exercises()[EID].chapter == "02_latent_variable_models"
