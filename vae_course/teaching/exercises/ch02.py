"""Checkers for chapter 2, Latent variable models.

Taught in: chapter 2. Two exercises on the linear-Gaussian model
z ~ N(0, I_k), x | z ~ N(W z + b, sigma2 I_d):

- `conditional_log_prob(x, z, W, b, sigma2) -> (N,)`: log p(x | z) in nats, summed over the d
  data dimensions, one value per row (x of shape (N, d), z of shape (N, k)).
- `naive_mc_log_prob(x, z, W, b, sigma2) -> (N,)`: log (1/S) sum_s p(x | z_s) from prior draws
  z of shape (S, N, k), computed with log-mean-exp.

The expected values come from `torch.distributions.Normal` in float64, not from the package's
reference. The inputs include the chapter's regime (k = 16 and 32 latents, d = 32, S = 1000
draws), 784-pixel data in float32, points so far from the model that every p(x | z_s)
underflows, and a sharp 784-dimensional model where every p(x | z_s) overflows. When a wrong
answer matches a known mistake the message names it (the dicts `HINTS`).
"""
from __future__ import annotations

import math
from functools import partial

import torch
from torch.distributions import Normal

from ...models import linear_conditional_log_prob, naive_mc_log_prob
from ._core import Failure, call, expect_grad, register
from ._expect import expect_not_infinite, expect_value, hinted

CHAPTER = "02_latent_variable_models"
F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)

HINTS: dict[str, dict[str, str]] = {
    "conditional_log_prob": {
        "single_number": "return one log-density per row of x; do not sum or average over the rows.",
        "not_summed": "sum the per-dimension log-densities over the d data dimensions (the last axis).",
        "missing_log_2pi": "the 2*pi constant is missing: each dimension contributes -1/2 log(2 pi).",
        "missing_half": "the factor 1/2 is missing: a Gaussian log-density has -1/2 in front of every term.",
        "sigma2_as_std": "sigma2 was used as a standard deviation (squared again); it is the noise variance.",
        "times_sigma2": "the squared error was multiplied by sigma2: divide it by the variance sigma2.",
        "missing_log_sigma2": "the log-variance term is missing: each dimension contributes -1/2 log(sigma2).",
        "offset_sign": "the mean of x given z is W z + b: the offset b was subtracted.",
        "offset_missing": "the mean of x given z is W z + b: the offset b was left out.",
        "mean_over_dims": "the data dimensions were averaged; the log-density of a vector is their sum.",
        "sign_flip": "the sign is flipped: you returned -log p(x | z), a loss.",
    },
    "naive_mc_log_prob": {
        "single_number": "return one estimate per row of x, shape (N,); do not average over the rows.",
        "wrong_dim": "the average ran over the rows of x (dim 1); average over the S draws, dim 0.",
        "underflow": "exp(log p(x | z)) underflowed to 0, so the log gave -inf. Average the densities in log "
                     "space with torch.logsumexp (or vc.log_mean_exp).",
        "overflow": "exp(log p(x | z)) overflowed to inf: in 784 dimensions a sharp density exceeds e^709. "
                    "Average the densities in log space with torch.logsumexp (or vc.log_mean_exp).",
        "jensen": "you averaged the log-densities log p(x | z_s); the estimate averages the densities "
                  "p(x | z_s) and then takes the log (the mean of the logs is smaller, by Jensen's inequality).",
        "missing_log_s": "the estimate is too large by exactly log S: the average needs the 1/S "
                         "(subtract log S after logsumexp).",
        "log_n": "you subtracted log N (the number of rows of x); the average is over the S draws, so "
                 "subtract log S with S = z.shape[0].",
        "sign_flip": "the sign is flipped: the estimate is log of the average of p(x | z_s), not minus it.",
        "logsumexp_of_minus": "that is logsumexp of minus the log-densities: use the log-densities themselves.",
        "max_only": "the largest log-density alone is not the estimate: average over all S draws.",
    },
}


def _conditional_expected(x, z, W, b, sigma2) -> torch.Tensor:
    """log N(x; W z + b, sigma2 I) by torch.distributions.Normal, in float64; z may be (..., N, k)."""
    x, z, W, b = (t.detach().to(F64) for t in (x, z, W, b))
    return Normal(z @ W.T + b, math.sqrt(sigma2)).log_prob(x).sum(-1)


def _problem(seed: int, n: int, d: int, k: int, dtype=F64, w_scale: float = 1.0, spread: float = 1.5,
             offset: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    W = w_scale * torch.randn(d, k, generator=g, dtype=F64)
    b = torch.randn(d, generator=g, dtype=F64)
    x = spread * torch.randn(n, d, generator=g, dtype=F64) + b + offset
    return x.to(dtype), W.to(dtype), b.to(dtype), g


def _expect_tensor_shape(out, shape: tuple, *, where: str) -> None:
    if not isinstance(out, torch.Tensor):
        raise Failure(f"the result should be a torch.Tensor, got {type(out).__name__}, {where}.")
    if tuple(out.shape) != shape:
        raise Failure(f"the result should have shape {shape}, got {tuple(out.shape)}, {where}.")


def _expect_float(out, dtype: torch.dtype, *, where: str) -> None:
    if out.dtype != dtype:
        raise Failure(f"the result should have dtype {dtype} (the dtype of x), got {out.dtype}, {where}.")
    if torch.isnan(out).any():
        raise Failure(f"the result contains NaN {where}.")


# --- conditional_log_prob ------------------------------------------------------------------------

def _conditional_mistakes(x, z, W, b, sigma2) -> dict[str, torch.Tensor]:
    x, z, W, b = (t.detach().to(F64) for t in (x, z, W, b))
    mean = z @ W.T + b
    sq = (x - mean) ** 2
    logv = math.log(sigma2)

    def per_dim(c2pi=1.0, half=0.5, logvar=logv, var=sigma2, sq=sq):
        return -half * (c2pi * LOG_2PI + logvar + sq / var)

    return {
        "missing_log_2pi": per_dim(c2pi=0.0).sum(-1),
        "missing_half": per_dim(half=1.0).sum(-1),
        "sigma2_as_std": per_dim(logvar=2 * logv, var=sigma2 ** 2).sum(-1),
        "times_sigma2": per_dim(var=1 / sigma2).sum(-1),
        "missing_log_sigma2": per_dim(logvar=0.0).sum(-1),
        "offset_sign": per_dim(sq=(x - (z @ W.T - b)) ** 2).sum(-1),
        "offset_missing": per_dim(sq=(x - z @ W.T) ** 2).sum(-1),
        "mean_over_dims": per_dim().mean(-1),
        "sign_flip": -per_dim().sum(-1),
    }


def _conditional_cases():
    # (where, seed, N, d, k, sigma2, dtype, W scale, spread of x around b)
    yield "x of shape (5, 3), z of shape (5, 2), sigma2 = 0.3", 11, 5, 3, 2, 0.3, F64, 1.0, 1.5
    yield "x of shape (5, 6), z of shape (5, 1), sigma2 = 2.5", 12, 5, 6, 1, 2.5, F64, 1.0, 1.5
    yield "the chapter's size: x (10, 32), z (10, 16), sigma2 = 0.25", 13, 10, 32, 16, 0.25, F64, 0.25, 1.0
    yield "784 pixels in float32: x (6, 784), z (6, 16), sigma2 = 0.05", 14, 6, 784, 16, 0.05, torch.float32, 0.05, 0.25


@register("conditional_log_prob", chapter=CHAPTER, reference=linear_conditional_log_prob)
def check_conditional_log_prob(answer):
    hints = HINTS["conditional_log_prob"]
    first = None
    for where, seed, n, d, k, sigma2, dtype, w_scale, spread in _conditional_cases():
        where = f"for {where}"
        x, W, b, g = _problem(seed, n, d, k, dtype, w_scale, spread)
        z = torch.randn(n, k, generator=g, dtype=F64).to(dtype)
        first = first or (x, z, W, b, sigma2)
        out = call(answer, x, z, W, b, sigma2, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            raise hinted(hints, "single_number", f"the result should have shape ({n},) but it is a single "
                                                 f"number {where}.")
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (n, d):
            raise hinted(hints, "not_summed", f"the result should have shape ({n},), got ({n}, {d}), {where}.")
        _expect_tensor_shape(out, (n,), where=where)
        _expect_float(out, dtype, where=where)
        expect_value(out, _conditional_expected(x, z, W, b, sigma2), partial(_conditional_mistakes, x, z, W, b, sigma2),
                     hints, where=where, rtol=1e-5, atol=1e-6 if dtype == F64 else 1e-3)
    x, z, W, b, sigma2 = first
    W_g, b_g = W.clone().requires_grad_(), b.clone().requires_grad_()
    where = "for x of shape (5, 3) with W and b requiring gradients"
    out = call(answer, x, z, W_g, b_g, sigma2, where=where)
    expect_grad(out, {"W": W_g, "b": b_g}, where=where)
    return "log p(x | z) matches torch.distributions on every case, up to 784 dimensions; gradients reach W and b"


# --- naive_mc_log_prob ---------------------------------------------------------------------------

def _naive_mc_expected(x, z, W, b, sigma2) -> torch.Tensor:
    """log (1/S) sum_s N(x; W z_s + b, sigma2 I): torch.distributions log-densities, then logsumexp - log S."""
    ll = _conditional_expected(x, z, W, b, sigma2)  # (S, N)
    return torch.logsumexp(ll, 0) - math.log(z.shape[0])


def _naive_mc_mistakes(x, z, W, b, sigma2) -> dict[str, torch.Tensor]:
    ll = _conditional_expected(x, z, W, b, sigma2)  # (S, N)
    s, n = ll.shape
    return {
        "jensen": ll.mean(0),
        "missing_log_s": torch.logsumexp(ll, 0),
        "sign_flip": -(torch.logsumexp(ll, 0) - math.log(s)),
        "logsumexp_of_minus": torch.logsumexp(-ll, 0) - math.log(s),
        "log_n": torch.logsumexp(ll, 0) - math.log(n),
        "max_only": ll.max(0).values,
    }


def _naive_mc_cases():
    # (where, seed, N, d, k, S, sigma2, dtype, W scale, spread of x, offset of x)
    yield "x of shape (6, 3), z of shape (7, 6, 2), sigma2 = 0.5", 21, 6, 3, 2, 7, 0.5, F64, 1.0, 1.5, 0.0
    yield "x of shape (5, 5), z of shape (50, 5, 1), sigma2 = 1.5", 22, 5, 5, 1, 50, 1.5, F64, 1.0, 1.5, 0.0
    # every p(x | z_s) underflows to 0 in float64: only a log-space average survives
    yield ("x far from the model (log p(x | z) around -5000), z of shape (6, 5, 2)",
           23, 5, 4, 2, 6, 0.05, F64, 1.0, 1.5, 12.0)
    # the chapter's experiment: k = 16 and 32 latents, d = 32, sigma2 = 0.25, a thousand prior draws
    yield ("the chapter's regime: x (5, 32), z (1000, 5, 16), sigma2 = 0.25",
           24, 5, 32, 16, 1000, 0.25, F64, 0.25, 1.0, 0.0)
    yield "x (5, 32), z (1000, 5, 32), sigma2 = 0.25", 25, 5, 32, 32, 1000, 0.25, F64, 1 / math.sqrt(32), 1.0, 0.0
    yield "784 pixels in float32: x (5, 784), z (100, 5, 8), sigma2 = 0.1", 26, 5, 784, 8, 100, 0.1, \
        torch.float32, 0.05, 0.3, 0.0


def _sharp_case():
    """A sharp model in 784 dimensions, x made without noise from one of the draws: log p(x | z) > 1000."""
    g = torch.Generator().manual_seed(27)
    n, d, k, S, sigma2 = 5, 784, 2, 200, 0.01
    W = 0.02 * torch.randn(d, k, generator=g, dtype=F64)
    b = torch.rand(d, generator=g, dtype=F64)
    z = torch.randn(S, n, k, generator=g, dtype=F64)
    x = z[0] @ W.T + b
    return ("a sharp model in 784 dimensions (log p(x | z) above 1000), z of shape (200, 5, 2)",
            x, z, W, b, sigma2)


@register("naive_mc_log_prob", chapter=CHAPTER, reference=naive_mc_log_prob)
def check_naive_mc_log_prob(answer):
    hints = HINTS["naive_mc_log_prob"]
    problems = []
    for where, seed, n, d, k, S, sigma2, dtype, w_scale, spread, offset in _naive_mc_cases():
        x, W, b, g = _problem(seed, n, d, k, dtype, w_scale, spread, offset)
        z = torch.randn(S, n, k, generator=g, dtype=F64).to(dtype)
        problems.append((where, x, z, W, b, sigma2))
    problems.append(_sharp_case())
    for where, x, z, W, b, sigma2 in problems:
        where = f"for {where}"
        S, n = z.shape[0], x.shape[0]
        out = call(answer, x, z, W, b, sigma2, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            raise hinted(hints, "single_number", f"the result should have shape ({n},) but it is a single "
                                                 f"number {where}.")
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (S,):
            raise hinted(hints, "wrong_dim", f"the result should have shape ({n},), got ({S},), {where}.")
        _expect_tensor_shape(out, (n,), where=where)
        expect_not_infinite(out, hints, where=where, below="underflow", above="overflow")
        _expect_float(out, x.dtype, where=where)
        expect_value(out, _naive_mc_expected(x, z, W, b, sigma2), partial(_naive_mc_mistakes, x, z, W, b, sigma2),
                     hints, where=where, rtol=1e-5, atol=1e-6 if x.dtype == F64 else 1e-3)
    return ("the estimate matches on every case: up to 32 latents and 784 pixels, and where exp() underflows "
            "or overflows")
