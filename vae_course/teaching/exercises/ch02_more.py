"""More checkers for chapter 2, Latent variable models: importance sampling.

Taught in: chapter 2. One exercise on the linear-Gaussian model z ~ N(0, I_k),
x | z ~ N(W z + b, sigma2 I_d):

- `importance_log_prob(x, z, log_q, W, b, sigma2) -> (N,)`: log (1/S) sum_s p(x | z_s) p(z_s) / q(z_s)
  from proposal draws z of shape (S, N, k) and their log-densities log_q of shape (S, N).

The expected values are computed here with `torch.distributions` (Normal for the likelihood and
the prior), not with the package's estimator. The check tries three proposals: a wide Gaussian, the
prior (where the answer must equal naive Monte Carlo) and the exact posterior (where every term
equals log p(x), so the answer must be exact whatever S is).
"""
from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal, Normal

from ._core import Failure, call, expect_close, register

CHAPTER = "02_latent_variable_models"


def _log_joint(x, z, W, b, sigma2):
    """log p(x | z) + log p(z) with torch.distributions, (S, N)."""
    mean = z @ W.T + b
    log_lik = Normal(mean, math.sqrt(sigma2)).log_prob(x).sum(-1)
    log_prior = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
    return log_lik, log_prior


def _reference(x, z, log_q, W, b, sigma2):
    log_lik, log_prior = _log_joint(x, z, W, b, sigma2)
    return torch.logsumexp(log_lik + log_prior - log_q, 0) - math.log(z.shape[0])


def _case(seed: int, n: int, d: int, k: int, S: int, sigma2: float, proposal: str):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    z_true = torch.randn(n, k, generator=g, dtype=torch.float64)
    x = z_true @ W.T + b + math.sqrt(sigma2) * torch.randn(n, d, generator=g, dtype=torch.float64)
    if proposal == "posterior":  # exact p(z | x) for the linear-Gaussian model
        cov = torch.linalg.inv(torch.eye(k, dtype=torch.float64) + W.T @ W / sigma2)
        mean = (x - b) @ W @ cov / sigma2
    elif proposal == "prior":
        cov, mean = torch.eye(k, dtype=torch.float64), torch.zeros(n, k, dtype=torch.float64)
    else:  # a wide Gaussian around the true z
        cov, mean = 2.0 * torch.eye(k, dtype=torch.float64), z_true + 0.3
    q = MultivariateNormal(mean, covariance_matrix=cov.expand(n, k, k))
    z = mean + torch.randn(S, n, k, generator=g, dtype=torch.float64) @ \
        torch.linalg.cholesky(cov).T
    log_q = q.log_prob(z)  # (S, N)
    log_px = MultivariateNormal(b, covariance_matrix=W @ W.T + sigma2 * torch.eye(d, dtype=torch.float64)).log_prob(x)
    return x, z, log_q, W, b, sigma2, log_px


def _close(a, b) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.to(b.dtype), b, rtol=1e-5, atol=1e-6))


@register("importance_log_prob", chapter=CHAPTER, reference=_reference)
def check_importance_log_prob(answer):
    cases = [
        ("for a wide Gaussian proposal, x (6, 3), z (7, 6, 2)", 31, 6, 3, 2, 7, 0.5, "wide"),
        ("for the prior as proposal, x (3, 5), z (8, 3, 1)", 32, 3, 5, 1, 8, 1.5, "prior"),
        ("for the exact posterior as proposal, x (5, 4), z (3, 5, 2)", 33, 5, 4, 2, 3, 0.3, "posterior"),
    ]
    for where, seed, n, d, k, S, sigma2, proposal in cases:
        x, z, log_q, W, b, sigma2, log_px = _case(seed, n, d, k, S, sigma2, proposal)
        expected = _reference(x, z, log_q, W, b, sigma2)
        out = call(answer, x, z, log_q, W, b, sigma2, where=where)
        if not isinstance(out, torch.Tensor):
            raise Failure(f"the result should be a torch.Tensor, got {type(out).__name__}, {where}.")
        if tuple(out.shape) != (n,):
            raise Failure(f"the result should have shape ({n},) (one estimate per row of x: combine the S draws "
                          f"along dim 0), got {tuple(out.shape)}, {where}.")
        if not out.is_floating_point() or torch.isnan(out).any():
            raise Failure(f"the result should be a floating-point tensor without NaN, {where}.")
        out = out.detach()
        log_lik, log_prior = _log_joint(x, z, W, b, sigma2)
        lw = log_lik + log_prior - log_q
        mistakes = {
            "the prior term log p(z_s) seems to be missing: the weight is p(x | z) p(z) / q(z).":
                torch.logsumexp(log_lik - log_q, 0) - math.log(S),
            "the proposal term seems to be missing: divide by q(z_s), i.e. subtract log_q.":
                torch.logsumexp(log_lik + log_prior, 0) - math.log(S),
            "log_q has the wrong sign: the weight divides by q(z_s), so subtract log_q.":
                torch.logsumexp(log_lik + log_prior + log_q, 0) - math.log(S),
            "you averaged the log-weights; the estimate averages the weights and then takes the log "
            "(use torch.logsumexp over the S draws, minus log S).": lw.mean(0),
            "the estimate is too large by exactly log S: the average needs the 1/S.": torch.logsumexp(lw, 0),
            "the prior's -k/2 log(2 pi) constant seems to be missing from log p(z).":
                torch.logsumexp(lw + 0.5 * k * math.log(2 * math.pi), 0) - math.log(S),
        }
        for message, value in mistakes.items():
            if _close(out, value) and not _close(value, expected):
                raise Failure(f"wrong value {where}: {message}")
        expect_close(out, expected, where=where, rtol=1e-5, atol=1e-6)
        if proposal == "posterior":
            expect_close(out, log_px, where=where + " (here every weight equals p(x))", rtol=1e-6, atol=1e-8)
    return ("the estimate matches for all three proposals; with the exact posterior it equals log p(x) "
            "with only 3 draws, as the zero-variance argument says")
