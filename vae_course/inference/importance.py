"""Importance sampling of log p(x) with a Gaussian proposal, and the KL that sets its cost.

Taught in: chapter 2 (naive Monte Carlo is importance sampling with the prior as proposal) and
chapter 3 (the exact PPCA posterior as proposal gives a zero-variance estimate).

For a latent variable model with prior p(z) = N(0, I_k) and likelihood p(x | z), and a proposal
q(z) for each x,

    p(x) = E_q[ p(x | z) p(z) / q(z) ],
    log p_hat(x) = logsumexp_s [log p(x | z_s) + log p(z_s) - log q(z_s)] - log S,  z_s ~ q.

p_hat(x) is unbiased for p(x); log p_hat(x) is biased low (Jensen). When q is the exact posterior
p(z | x), every weight equals p(x) and the estimate is exact with one draw. Chatterjee and
Diaconis (2018) show that the number of draws needed is about exp(KL(p(z | x) || q)); with the
prior as proposal that KL is `kl_to_standard_normal(posterior mean, posterior cov)`.

The model is anything with a method `log_px_given_z(x, z)` (x (N, d), z (S, N, k) -> (S, N), in
nats summed over the d dimensions), or that function itself.
"""
from __future__ import annotations

import math

import torch

from ..core.validation import check_data, check_generator, check_int, check_tensor

__all__ = ["importance_log_prob", "kl_to_standard_normal", "kl_to_standard_normal_parts"]

_LOG_2PI = math.log(2 * math.pi)


def _check_mean_cov(mean, cov, name_mean: str = "mean", name_cov: str = "cov"):
    mean = check_tensor(name_mean, mean, ndim=2, what="of shape (N, k)")
    k = mean.shape[1]
    cov = check_tensor(name_cov, cov, ndim=(2, 3), what=f"of shape ({k}, {k}) or (N, {k}, {k})")
    if cov.shape[-2:] != (k, k) or (cov.dim() == 3 and cov.shape[0] != mean.shape[0]):
        raise ValueError(f"{name_cov} must have shape ({k}, {k}) or ({mean.shape[0]}, {k}, {k}) to match "
                         f"{name_mean} of shape {tuple(mean.shape)}, got shape {tuple(cov.shape)}")
    return mean, cov


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError(f"{name} must be symmetric positive definite (its Cholesky factorisation failed)")
    return L


def kl_to_standard_normal_parts(mean: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of KL(N(mean, cov) || N(0, I)), each of shape (N,), in nats.

    `location` = |mean|^2 / 2, the part due to where the Gaussian sits; `spread` =
    (tr cov - k - log det cov) / 2 >= 0, the part due to its size and shape. Their sum is the KL.
    `mean` is (N, k); `cov` is (k, k), shared by every row, or (N, k, k).
    """
    mean, cov = _check_mean_cov(mean, cov)
    k = mean.shape[1]
    L = _cholesky(cov, "cov")
    logdet = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
    spread = 0.5 * (trace - k - logdet)
    location = 0.5 * (mean**2).sum(1)
    return location, spread.expand_as(location)


def kl_to_standard_normal(mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, cov) || N(0, I_k)) in nats, shape (N,), for a full covariance.

    0.5 [tr cov + |mean|^2 - k - log det cov]. `mean` is (N, k); `cov` is (k, k) or (N, k, k).
    (For a diagonal covariance given as a log-variance, use `vc.kl_normal_std_normal`.)
    """
    location, spread = kl_to_standard_normal_parts(mean, cov)
    return location + spread


def importance_log_prob(model, x: torch.Tensor, num_samples: int, *, mu: torch.Tensor,
                        logvar: torch.Tensor | None = None, cov: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, return_log_weights: bool = False):
    """Importance-sampling estimate of log p(x), one per row of `x`, in nats: shape (N,).

    Parameters
    ----------
    model:
        An object with `log_px_given_z(x, z)`, or that function: x (N, d), z (S, N, k) -> (S, N).
        The prior is N(0, I_k).
    x:
        (N, d) data.
    num_samples:
        S >= 1 draws from the proposal for every row.
    mu, logvar, cov:
        The Gaussian proposal q(z | x_n) = N(mu[n], .): `mu` (N, k) and exactly one of `logvar`
        (N, k), a diagonal log-variance, or `cov`, a full covariance (k, k) shared by all rows or
        (N, k, k).
    generator:
        Random numbers for the draws (None: the global generator).
    return_log_weights:
        Also return the log-weights log p(x | z_s) + log p(z_s) - log q(z_s), shape (S, N).

    The draws are z = mu + L eps with L the Cholesky factor of the covariance, and everything
    follows `x`'s device and `mu`'s dtype.
    """
    log_px_given_z = getattr(model, "log_px_given_z", model)
    if not callable(log_px_given_z):
        raise TypeError(f"model must have a method log_px_given_z(x, z) or be such a function, "
                        f"got {type(model).__name__}")
    x = check_data("x", x)
    S = check_int("num_samples", num_samples, low=1)
    generator = check_generator(generator)
    if (logvar is None) == (cov is None):
        raise ValueError("give the proposal's spread as exactly one of logvar (N, k) or cov (k, k) / (N, k, k)")
    mu = check_tensor("mu", mu, ndim=2, what="of shape (N, k)")
    n, k = mu.shape
    if n != x.shape[0]:
        raise ValueError(f"mu must have one row per row of x ({x.shape[0]}), got shape {tuple(mu.shape)}")
    if logvar is not None:
        logvar = check_tensor("logvar", logvar, shape=(n, k), what="like mu")
        L = torch.diag_embed(torch.exp(0.5 * logvar))  # (N, k, k)
    else:
        mu, cov = _check_mean_cov(mu, cov, "mu", "cov")
        L = _cholesky(cov, "cov")
        if L.dim() == 2:
            L = L.expand(n, k, k)
    eps = torch.randn(S, n, k, generator=generator, dtype=mu.dtype, device=mu.device)
    z = mu + torch.einsum("nij,snj->sni", L, eps)
    log_det_L = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (N,)
    log_q = -0.5 * (k * _LOG_2PI + (eps**2).sum(-1)) - log_det_L  # (S, N)
    log_prior = -0.5 * (k * _LOG_2PI + (z**2).sum(-1))
    log_w = log_px_given_z(x, z) + log_prior - log_q
    estimate = torch.logsumexp(log_w, dim=0) - math.log(S)
    return (estimate, log_w) if return_log_weights else estimate
