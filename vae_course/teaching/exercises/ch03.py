"""Checkers for chapter 3, Linear latent variable models (PPCA's exact log-likelihood and posterior).

Each checker compares the student's function with the package's reference on small random
problems in float64, and when the answer matches a known mistake (missing log-determinant,
missing 2*pi, ignoring W, an average instead of one value per example, a sign flip, ...)
it says which, without showing the reference.
"""
from __future__ import annotations

import math

import torch

from ...models import ppca_log_likelihood, ppca_posterior
from ._core import Failure, call, expect_close, expect_tensor, register

CHAPTER = "03_linear_models"
LOG_2PI = math.log(2 * math.pi)


def _problem(seed: int, n: int, d: int, k: int, sigma2: float):
    """A random PPCA problem (x, W, mu, sigma2) in float64; sigma2 is a 0-d tensor."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=torch.float64)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    x = mu + 1.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, W, mu, torch.tensor(sigma2, dtype=torch.float64)


_CASES = ((0, 5, 6, 2, 0.5), (1, 7, 9, 3, 2.5))


def _where(x, W, sigma2) -> str:
    return f"for x of shape {tuple(x.shape)}, W of shape {tuple(W.shape)}, sigma2 = {float(sigma2):g}"


def _diagnose(out: torch.Tensor, mistakes: dict[str, torch.Tensor], where: str) -> None:
    """Raise Failure naming the first known mistake that `out` reproduces."""
    for message, value in mistakes.items():
        if value.shape == out.shape and torch.allclose(out.detach().to(value.dtype), value, rtol=1e-6, atol=1e-8):
            raise Failure(f"{message} ({where}).")


def _gaussian_logpdf(x, mu, cov):
    d = x.shape[1]
    L = torch.linalg.cholesky(cov)
    a = torch.linalg.solve_triangular(L, (x - mu).T, upper=False)
    return -0.5 * (d * LOG_2PI + 2 * torch.log(torch.diagonal(L)).sum() + (a**2).sum(0)), \
        2 * torch.log(torch.diagonal(L)).sum(), (a**2).sum(0)


@register("ppca_log_likelihood", chapter=CHAPTER, reference=ppca_log_likelihood)
def check_ppca_log_likelihood(answer):
    for seed, n, d, k, s2 in _CASES:
        x, W, mu, sigma2 = _problem(seed, n, d, k, s2)
        where = _where(x, W, sigma2)
        out = call(answer, x, W, mu, sigma2, where=where)
        if isinstance(out, torch.Tensor) and out.numel() == 1 and n > 1:
            raise Failure(f"you returned one number, but log p(x) is needed for each example: "
                          f"a tensor of shape ({n},), not the average or sum over examples ({where}).")
        out = expect_tensor(out, shape=(n,), dtype=torch.float64, where=where)
        ref, logdet, quad = _gaussian_logpdf(x, mu, W @ W.T + sigma2 * torch.eye(d, dtype=torch.float64))
        iso = _gaussian_logpdf(x, mu, sigma2 * torch.eye(d, dtype=torch.float64))[0]
        mistakes = {
            "the sign is flipped: a log-density is minus one half of (constant + log-determinant "
            "+ squared distance)": -ref,
            "the -d/2 log(2π) normalising constant is missing": ref + 0.5 * d * LOG_2PI,
            "the log-determinant term -1/2 log|W Wᵀ + sigma2 I| is missing": ref + 0.5 * logdet,
            "the result ignores W: it is the density of the isotropic N(mu, sigma2 I), but the "
            "covariance is W Wᵀ + sigma2 I": iso,
            "the factor 1/2 is missing: the log-density is -1/2 (d log 2π + log|C| + squared distance)": 2 * ref,
            "sigma2 is a variance, but it was used as a standard deviation (squared again)":
                _gaussian_logpdf(x, mu, W @ W.T + sigma2**2 * torch.eye(d, dtype=torch.float64))[0],
            "every example got the same value (an average over examples?): return log p(x_n) for "
            "each row separately": ref.mean().expand(n),
            "the result is the sum of log p over examples, repeated: return log p(x_n) for each row":
                ref.sum().expand(n),
        }
        _diagnose(out, mistakes, where)
        expect_close(out, ref, where=where, rtol=1e-6, atol=1e-6, name="log p(x)")
    return "matches the exact log N(x | mu, W Wᵀ + sigma2 I) for every example, in nats"


@register("ppca_posterior", chapter=CHAPTER, reference=ppca_posterior)
def check_ppca_posterior(answer):
    for seed, n, d, k, s2 in _CASES:
        x, W, mu, sigma2 = _problem(seed, n, d, k, s2)
        where = _where(x, W, sigma2)
        out = call(answer, x, W, mu, sigma2, where=where)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Failure(f"return a pair (mean, cov), got {type(out).__name__}"
                          f"{' of length ' + str(len(out)) if isinstance(out, (tuple, list)) else ''} ({where}).")
        mean, cov = out
        mean = expect_tensor(mean, shape=(n, k), dtype=torch.float64, where=where, name="the posterior mean")
        if isinstance(cov, torch.Tensor) and cov.dim() == 3:
            raise Failure(f"the posterior covariance is the same for every example: return one (k, k) "
                          f"matrix, not one per example ({where}).")
        cov = expect_tensor(cov, shape=(k, k), dtype=torch.float64, where=where, name="the posterior covariance")
        # Bayes' rule for jointly Gaussian (z, x), computed without M: independent of the reference.
        C = W @ W.T + sigma2 * torch.eye(d, dtype=torch.float64)
        gain = torch.linalg.solve(C, W).T  # (k, d) = Wᵀ C^{-1}
        ref_mean = (x - mu) @ gain.T
        ref_cov = torch.eye(k, dtype=torch.float64) - gain @ W
        M = W.T @ W + sigma2 * torch.eye(k, dtype=torch.float64)
        Minv = torch.linalg.inv(M)
        mean_mistakes = {
            "the mean does not subtract mu: the posterior mean depends on x - mu": x @ W @ Minv,
            "the mean is missing M^{-1}: it should be M^{-1} Wᵀ (x - mu) with M = Wᵀ W + sigma2 I":
                (x - mu) @ W,
            "the mean divides by sigma2 without M^{-1}": (x - mu) @ W / sigma2,
            "the mean uses (Wᵀ W)^{-1} Wᵀ (x - mu), the sigma2 -> 0 limit (the PCA projection), "
            "not the posterior": (x - mu) @ W @ torch.linalg.inv(W.T @ W),
        }
        _diagnose(mean, mean_mistakes, where)
        expect_close(mean, ref_mean, where=where, rtol=1e-6, atol=1e-8, name="the posterior mean")
        cov_mistakes = {
            "the covariance is missing the factor sigma2: it is sigma2 M^{-1}, not M^{-1}": Minv,
            "the covariance is sigma2 (Wᵀ W)^{-1}, not sigma2 M^{-1} with M = Wᵀ W + sigma2 I":
                sigma2 * torch.linalg.inv(W.T @ W),
            "the covariance is the precision (its inverse): invert it": M / sigma2,
        }
        _diagnose(cov, cov_mistakes, where)
        expect_close(cov, ref_cov, where=where, rtol=1e-6, atol=1e-8, name="the posterior covariance")
    return "the mean and covariance match Bayes' rule for the joint Gaussian of (z, x)"
