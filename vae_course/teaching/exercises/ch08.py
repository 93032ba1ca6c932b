"""Checkers for chapter 8, The variational autoencoder.

Taught in: chapter 8. Exercises:

- `iwae_bound(log_weights)`: for log-weights of shape (K, N) (K importance draws for each of N
  examples), the importance-weighted estimate log (1/K) sum_j exp(log_weights[j, n]), shape (N,),
  computed stably (a log-sum-exp), as `vc.iwae_log_likelihood` does inside.
- `vae_loss(x, logits, mu, logvar)`: the loss of a Bernoulli VAE for one reparameterized draw
  per example: mean over the batch of [ BCE-with-logits summed over the pixels + KL(q || N(0, I)) ],
  a 0-d tensor in nats per example.

Expected values come from `torch.distributions` (`Bernoulli(logits=...)`, `kl_divergence` of
`Normal`s) and, for the bound, from exact float64 arithmetic on shifted weights, never from the
package's references. When a wrong answer matches a known mistake the message adds its hint.
"""
from __future__ import annotations

import math

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from ...inference import iwae_bound, vae_loss
from ._core import call, expect_grad, expect_tensor, register
from ._expect import expect_not_infinite, expect_value, hinted

CHAPTER = "08_vae"
F64 = torch.float64

HINTS: dict[str, dict[str, str]] = {
    "iwae_bound": {
        "mean_of_log_weights": "that is the mean of the log-weights, the ELBO estimate: the bound averages "
                               "the weights themselves, log (1/K) sum_j w_j, not their logs.",
        "missing_log_k": "log K is missing: logsumexp alone is log sum_j w_j; the average subtracts log K.",
        "plus_log_k": "log K has the wrong sign: log (1/K) sum_j w_j = logsumexp - log K.",
        "max_only": "that is the maximum over the draws: the log-sum-exp adds the other weights too.",
        "wrong_dim": "the average ran over the examples (dim 1): the K draws of each example are along dim 0.",
        "underflow": "exp() of large negative log-weights underflowed to 0 before the log: subtract the "
                     "largest log-weight first (torch.logsumexp does).",
        "overflow": "exp() of large log-weights overflowed to inf before the log: subtract the largest "
                    "log-weight first (torch.logsumexp does).",
    },
    "vae_loss": {
        "not_scalar": "return one number, the loss averaged over the batch (a 0-d tensor), not one per example.",
        "sum_over_batch": "the loss was summed over the batch: average it over the examples (nats per example).",
        "mean_over_pixels": "the reconstruction term was averaged over the pixels: log p(x | z) is the SUM of "
                            "the per-pixel terms (nats per example, not per pixel).",
        "kl_missing": "the KL term is missing: the loss is the reconstruction error plus KL(q || N(0, I)).",
        "kl_subtracted": "the KL term was subtracted: the loss (minus the ELBO) ADDS it.",
        "kl_missing_half": "the KL term lacks its factor 1/2.",
        "kl_logvar_as_std": "the KL used logvar as a standard deviation: the variance is exp(logvar).",
        "negated": "the sign is flipped: the loss is minus the ELBO, a positive number here.",
        "sigmoid_then_log": "sigmoid followed by a log (or binary_cross_entropy) saturates for large logits: "
                            "use binary_cross_entropy_with_logits, which is exact there.",
    },
}


# --- exercise: iwae_bound --------------------------------------------------------------------------

def _exact_bound(lw: torch.Tensor) -> torch.Tensor:
    """log mean exp over dim 0 in float64, by shifting with the column maximum (written out here)."""
    lw = lw.to(F64)
    top = lw.max(dim=0).values
    return top + torch.log(torch.exp(lw - top).sum(dim=0) / lw.shape[0])


def _bound_mistakes(lw: torch.Tensor) -> dict[str, torch.Tensor]:
    lw64 = lw.to(F64)
    right = _exact_bound(lw)
    out = {
        "mean_of_log_weights": lw64.mean(dim=0),
        "missing_log_k": right + math.log(lw.shape[0]),
        "plus_log_k": right + 2 * math.log(lw.shape[0]),
        "max_only": lw64.max(dim=0).values,
    }
    return out


def _bound_cases():
    g = torch.Generator().manual_seed(81)
    yield "log-weights of shape (50, 6) near -100 (nats of a small image)", -100 + 3 * torch.randn(50, 6, generator=g)
    yield "float64 log-weights of shape (7, 5) of mixed sizes", torch.randn(7, 5, generator=g, dtype=F64) * 4
    yield ("log-weights of shape (1000, 5) near -90 with a wide spread, as for K = 1000 draws on digits",
           -90 + 10 * torch.randn(1000, 5, generator=g))


@register("iwae_bound", chapter=CHAPTER, reference=iwae_bound)
def check_iwae_bound(answer):
    hints = HINTS["iwae_bound"]
    for where, lw in _bound_cases():
        where = f"for {where}"
        out = call(answer, lw.clone(), where=where)
        k, n = lw.shape
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (k,) and k != n:
            raise hinted(hints, "wrong_dim", f"the result has shape ({k},), one per draw, {where}; it should have "
                                             f"shape ({n},), one per example.")
        expect_tensor(out, shape=(n,), dtype=lw.dtype, where=where)
        expect_value(out, _exact_bound(lw).to(lw.dtype), lambda lw=lw: _bound_mistakes(lw), hints, where=where,
                     name="the importance-weighted bound", rtol=1e-5, atol=1e-4)
    # Large magnitudes: a naive log(mean(exp(.))) underflows (or overflows) in any float type.
    for where, lw, key in (("log-weights of shape (20, 5) near -1000 (a large image)",
                            -1000 + torch.randn(20, 5, generator=torch.Generator().manual_seed(82)), "underflow"),
                           ("log-weights of shape (20, 5) near +1000",
                            1000 + torch.randn(20, 5, generator=torch.Generator().manual_seed(83)), "overflow")):
        where = f"for {where}"
        out = call(answer, lw.clone(), where=where)
        expect_not_infinite(out, hints, where=where, below="underflow", above="overflow")
        expect_tensor(out, shape=(5,), dtype=lw.dtype, where=where)
        if torch.isnan(out).any():
            raise hinted(hints, key, f"the result contains NaN {where}.")
        expect_value(out, _exact_bound(lw).to(lw.dtype), lambda lw=lw: _bound_mistakes(lw), hints, where=where,
                     name="the importance-weighted bound", rtol=1e-6, atol=1e-3)
    return "log (1/K) sum_j w_j per example, stable at any magnitude of the log-weights."


# --- exercise: vae_loss ----------------------------------------------------------------------------

def _loss_cases():
    g = torch.Generator().manual_seed(84)
    x = (torch.rand(6, 10, generator=g) < 0.4).float()
    yield ("binary x (6, 10), logits (6, 10), mu, logvar (6, 3)", x, 2 * torch.randn(6, 10, generator=g),
           torch.randn(6, 3, generator=g), 0.5 * torch.randn(6, 3, generator=g) - 0.5)
    x = torch.rand(4, 784, generator=g, dtype=F64)
    yield ("grayscale float64 x (4, 784) in [0, 1], digit-sized, latent 20", x,
           3 * torch.randn(4, 784, generator=g, dtype=F64), torch.randn(4, 20, generator=g, dtype=F64),
           torch.randn(4, 20, generator=g, dtype=F64) - 1)
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    logits = torch.tensor([[-60.0, 45.0, 8.0, -8.0], [30.0, -30.0, -50.0, 0.5]])
    yield ("saturated logits of size 60 that disagree with x", x, logits,
           torch.tensor([[0.3, -0.2], [1.0, 0.5]]), torch.tensor([[-0.4, 0.2], [0.1, -1.0]]))


def _loss_parts(x, logits, mu, lv):
    x, logits, mu, lv = (t.to(F64) for t in (x, logits, mu, lv))
    # -BCE(x, sigmoid(logits)) = x log p + (1 - x) log(1 - p): Bernoulli.log_prob, also for grayscale x
    recon = Bernoulli(logits=logits, validate_args=False).log_prob(x)  # (N, d)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * lv)), Normal(0.0, 1.0)).sum(-1)
    return recon, kl


def _loss_mistakes(x, logits, mu, lv) -> dict[str, torch.Tensor]:
    recon, kl = _loss_parts(x, logits, mu, lv)
    r = recon.sum(-1)
    m64, l64 = mu.to(F64), lv.to(F64)
    p = torch.sigmoid(logits.to(torch.float32))
    sat = torch.nn.functional.binary_cross_entropy(p, x.to(torch.float32), reduction="none").to(F64).sum(-1)
    return {
        "sum_over_batch": (kl - r).sum(),
        "mean_over_pixels": (kl - recon.mean(-1)).mean(),
        "kl_missing": (-r).mean(),
        "kl_subtracted": (-r - kl).mean(),
        "kl_missing_half": (2 * kl - r).mean(),
        "kl_logvar_as_std": ((0.5 * (m64 ** 2 + l64 ** 2 - 1 - torch.log(l64 ** 2))).sum(-1) - r).mean(),
        "negated": (r - kl).mean(),
        "sigmoid_then_log": (sat + kl).mean(),
    }


@register("vae_loss", chapter=CHAPTER, reference=vae_loss)
def check_vae_loss(answer):
    hints = HINTS["vae_loss"]
    first = None
    for where, x, logits, mu, lv in _loss_cases():
        where = f"for {where}"
        first = first or (x, logits, mu, lv)
        out = call(answer, x, logits, mu, lv, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 1 and out.shape[0] == x.shape[0]:
            raise hinted(hints, "not_scalar", f"the result has shape ({x.shape[0]},), one per example, {where}.")
        expect_not_infinite(out, hints, where=where, above="sigmoid_then_log")
        expect_tensor(out, shape=(), dtype=x.dtype, where=where)
        recon, kl = _loss_parts(x, logits, mu, lv)
        expected = (kl - recon.sum(-1)).mean().to(x.dtype)
        expect_value(out, expected, lambda a=(x, logits, mu, lv): _loss_mistakes(*a), hints, where=where,
                     name="the loss (negative ELBO, nats per example)", rtol=1e-5, atol=1e-4)
    x, logits, mu, lv = first
    logits, mu, lv = (t.clone().requires_grad_() for t in (logits, mu, lv))
    where = "for inputs that require gradients"
    expect_grad(call(answer, x, logits, mu, lv, where=where), {"logits": logits, "mu": mu, "logvar": lv},
                where=where)
    return "the negative ELBO in nats per example, averaged over the batch."
