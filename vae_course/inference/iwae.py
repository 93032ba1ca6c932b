"""The importance-weighted estimate of log p(x) with the encoder as proposal: `iwae_log_likelihood`.

Taught in: chapter 8 (held-out log p(x) of a VAE in nats per image); the bound it computes is
the IWAE bound of chapter 9 (Burda, Grosse and Salakhutdinov 2016).

With K draws z_j ~ q(z | x) from the model's encoder and log-weights
log w_j = log p(x | z_j) + log p(z_j) - log q(z_j | x)::

    log p_hat(x) = log (1/K) sum_j w_j = logsumexp_j(log w_j) - log K.

It is a lower bound on log p(x) in expectation (Jensen), equal to the ELBO's expectation at K = 1
and increasing to log p(x) as K grows. Computed in chunks of rows and of draws, with a running
logsumexp, so K = 1000 on 1,000 test images fits in modest memory.
"""
from __future__ import annotations

import math

import torch

from ..core.distributions import LOG_2PI, log_mean_exp
from ..core.validation import check_data, check_generator, check_int, check_tensor
from .interface import check_encoding, check_model

__all__ = ["iwae_bound", "iwae_log_likelihood"]


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_j exp(log_weights[j, n]) for log-weights of shape (K, N): shape (N,), in nats.

    The importance-weighted estimate from K draws per example, by a log-sum-exp (stable at any
    magnitude). The reference of the chapter 8 exercise `iwae_bound`.
    """
    log_weights = check_tensor("log_weights", log_weights, ndim=2, what="of shape (K, N) (K draws per example)")
    return log_mean_exp(log_weights, dim=0)


def iwae_log_likelihood(model, x: torch.Tensor, k: int = 1000, generator: torch.Generator | None = None,
                        batch_size: int = 100, chunk: int = 100) -> torch.Tensor:
    """Per-example importance-weighted estimate of log p(x) in nats, shape (N,), with `k` draws from q(z | x).

    `model` implements the model interface (``encode``, ``log_px_given_z``; the prior is N(0, I)
    unless it defines ``log_pz``). Rows are processed `batch_size` at a time and draws `chunk` at
    a time; `generator` draws the noise (on the model's device). No gradients are kept.
    """
    check_model(model, methods=("encode", "log_px_given_z"))
    x = check_data("x", x)
    k = check_int("k", k, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    chunk = check_int("chunk", chunk, low=1)
    check_generator(generator)
    log_pz = getattr(model, "log_pz", None)
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            mu, logvar = check_encoding(model.encode(xb))
            std = torch.exp(0.5 * logvar)
            total = None
            for done in range(0, k, chunk):
                s = min(chunk, k - done)
                eps = torch.randn((s, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
                z = mu + std * eps
                log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
                prior = log_pz(z) if callable(log_pz) else -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
                log_w = model.log_px_given_z(xb, z) + prior - log_q  # (s, n)
                part = torch.logsumexp(log_w, dim=0)
                total = part if total is None else torch.logaddexp(total, part)
            out.append(total - math.log(k))
    return torch.cat(out)
