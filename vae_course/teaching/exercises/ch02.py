"""Checkers for chapter 2, Latent variable models.

Taught in: chapter 2. Two exercises on the linear-Gaussian toy model
z ~ N(0, I_k), x | z ~ N(W z + b, sigma2 I_d):

- `conditional_log_prob(x, z, W, b, sigma2) -> (N,)`: log p(x | z) in nats, summed over the d
  data dimensions, one value per row (x of shape (N, d), z of shape (N, k)).
- `naive_mc_log_prob(x, z, W, b, sigma2) -> (N,)`: log (1/S) sum_s p(x | z_s) from prior draws
  z of shape (S, N, k), computed with log-mean-exp.

Each checker compares with the package's reference on fixed float64 inputs and, when the answer
is wrong, names the common mistake it matches (missing 2 pi, sigma2 used as a standard deviation,
averaging log-densities, forgetting the 1/S, an exp that underflowed, ...).
"""
from __future__ import annotations

import math

import torch

from ...models import linear_conditional_log_prob, naive_mc_log_prob
from ._core import Failure, call, expect_close, register

CHAPTER = "02_latent_variable_models"


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.to(b.dtype), b, rtol=1e-5, atol=1e-6))


def _diagnose(out: torch.Tensor, mistakes: dict[str, torch.Tensor], where: str) -> None:
    """Raise a Failure naming the first known mistake whose value `out` reproduces."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return
    for message, value in mistakes.items():
        if _close(out.detach(), value):
            raise Failure(f"wrong value {where}: {message}")


def _expect_shape(out, shape: tuple, where: str, hint: str) -> None:
    if not isinstance(out, torch.Tensor):
        raise Failure(f"the result should be a torch.Tensor, got {type(out).__name__}, {where}.")
    if tuple(out.shape) != shape:
        raise Failure(f"the result should have shape {shape} ({hint}), got {tuple(out.shape)}, {where}.")
    if not out.is_floating_point():
        raise Failure(f"the result should be a floating-point tensor, got dtype {out.dtype}, {where}.")
    if torch.isnan(out).any():
        raise Failure(f"the result contains NaN {where}.")


def _toy(seed: int, n: int, d: int, k: int, sigma2: float, offset: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 1.5 + b + offset
    return x, W, b, sigma2, g


# --- conditional_log_prob ------------------------------------------------------------------------

def _conditional_mistakes(x, z, W, b, sigma2) -> dict[str, torch.Tensor]:
    mean = z @ W.T + b
    sq = (x - mean) ** 2
    log2pi = math.log(2 * math.pi)
    logv = math.log(sigma2)

    def per_dim(c2pi=1.0, half=0.5, logvar=logv, var=sigma2, sq=sq):
        return -half * (c2pi * log2pi + logvar + sq / var)

    sq_flip = (x - (z @ W.T - b)) ** 2
    return {
        "the 2*pi constant seems to be missing (each dimension contributes -1/2 log(2 pi)).":
            per_dim(c2pi=0.0).sum(-1),
        "the factor 1/2 seems to be missing: a Gaussian log-density has -1/2 in front of every term.":
            per_dim(half=1.0).sum(-1),
        "sigma2 looks like it was used as a standard deviation; it is the variance of the noise.":
            per_dim(logvar=2 * logv, var=sigma2 ** 2).sum(-1),
        "the log-variance term seems to be missing (each dimension contributes -1/2 log(sigma2)).":
            per_dim(logvar=0.0).sum(-1),
        "the mean of x given z is W z + b: check the sign of the offset b.":
            per_dim(sq=sq_flip).sum(-1),
        "the mean of x given z is W z + b; the offset b seems to be missing.":
            per_dim(sq=(x - z @ W.T) ** 2).sum(-1),
        "you averaged over the data dimensions; the log-density of a vector is the sum over its dimensions.":
            per_dim().mean(-1),
        "the sign is flipped: a log-density of a continuous vector is usually negative here.":
            -per_dim().sum(-1),
    }


@register("conditional_log_prob", chapter=CHAPTER, reference=linear_conditional_log_prob)
def check_conditional_log_prob(answer):
    cases = [
        ("for x of shape (5, 3), z of shape (5, 2), sigma2 = 0.3", 11, 5, 3, 2, 0.3),
        ("for x of shape (4, 6), z of shape (4, 1), sigma2 = 2.5", 12, 4, 6, 1, 2.5),
    ]
    for where, seed, n, d, k, sigma2 in cases:
        x, W, b, sigma2, g = _toy(seed, n, d, k, sigma2)
        z = torch.randn(n, k, generator=g, dtype=torch.float64)
        expected = linear_conditional_log_prob(x, z, W, b, sigma2)
        out = call(answer, x, z, W, b, sigma2, where=where)
        _expect_shape(out, (n,), where, "one log-density per row of x")
        _diagnose(out, _conditional_mistakes(x, z, W, b, sigma2), where)
        expect_close(out, expected, where=where, rtol=1e-5, atol=1e-6)
    return "log p(x | z) matches on both test cases"


# --- naive_mc_log_prob ---------------------------------------------------------------------------

@register("naive_mc_log_prob", chapter=CHAPTER, reference=naive_mc_log_prob)
def check_naive_mc_log_prob(answer):
    cases = [
        # (where, seed, N, d, k, S, sigma2, offset): the last case puts x far from the model, so
        # every p(x | z_s) underflows to 0 in float64 and only a log-space average survives.
        ("for x of shape (4, 3), z of shape (7, 4, 2), sigma2 = 0.5", 21, 4, 3, 2, 7, 0.5, 0.0),
        ("for x of shape (3, 5), z of shape (50, 3, 1), sigma2 = 1.5", 22, 3, 5, 1, 50, 1.5, 0.0),
        ("for x far from the model (log p(x | z) around -5000), z of shape (6, 2, 2)", 23, 2, 4, 2, 6, 0.05, 12.0),
    ]
    for where, seed, n, d, k, S, sigma2, offset in cases:
        x, W, b, sigma2, g = _toy(seed, n, d, k, sigma2, offset)
        z = torch.randn(S, n, k, generator=g, dtype=torch.float64)
        expected = naive_mc_log_prob(x, z, W, b, sigma2)
        out = call(answer, x, z, W, b, sigma2, where=where)
        _expect_shape(out, (n,), where, "one estimate per row of x: average over the S draws, dim 0")
        if torch.isinf(out).any():
            raise Failure(f"the estimate is infinite {where}: exp(log p(x | z)) underflowed to 0 (or overflowed). "
                          "Average the densities in log space with torch.logsumexp (or vc.log_mean_exp).")
        ll = linear_conditional_log_prob(x, z, W, b, sigma2)  # (S, N)
        mistakes = {
            "you averaged the log-densities log p(x | z_s); the estimate averages the densities p(x | z_s) "
            "and then takes the log. (The mean of the logs is smaller, by Jensen's inequality.)": ll.mean(0),
            "the estimate is too large by exactly log S: the average needs the 1/S (subtract log S after logsumexp).":
                torch.logsumexp(ll, 0),
            "the sign is flipped somewhere: the estimate should equal log of the average of p(x | z_s).":
                -expected,
            "you seem to have used logsumexp of minus the log-densities.": torch.logsumexp(-ll, 0) - math.log(S),
            "you subtracted log N (the number of rows of x); the average is over the S draws, so subtract "
            "log S with S = z.shape[0].": torch.logsumexp(ll, 0) - math.log(n),
            "the largest log-density alone is not the estimate: average over all S draws.": ll.max(0).values,
        }
        _diagnose(out, mistakes, where)
        expect_close(out, expected, where=where, rtol=1e-5, atol=1e-6)
    return "the estimate matches on all three test cases, including one where exp() underflows"
