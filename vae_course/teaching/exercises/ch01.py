"""Checkers for chapter 1, Generative modelling.

Taught in: chapter 1. Exercises:

- `gaussian_log_prob(x, mu, logvar)`: the diagonal Gaussian log-density, summed over the last
  dimension, one value per example (nats).
- `mixture_log_prob(x, weights, mu, logvar)`: the log-density of a 1-D Gaussian mixture, one
  value per example, stable far from the modes (logsumexp).

The expected values come from `torch.distributions` (`Normal`, `MixtureSameFamily`) in float64,
not from the package's reference. The inputs include the sizes the chapter uses (784 pixels,
a two-component mixture scored on 400 points) and points far from every mode. When a wrong
answer matches a known mistake, the message adds that mistake's hint (the dicts `HINTS`),
without showing the reference code.
"""
from __future__ import annotations

import math
from functools import partial

import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal

from ...core import gaussian_log_prob
from ...models import gaussian_mixture_log_prob
from ._core import call, expect_grad, expect_tensor, register
from ._expect import expect_not_infinite, expect_value, hinted

CHAPTER = "01_generative_modelling"
LOG_2PI = math.log(2 * math.pi)
F64 = torch.float64

HINTS: dict[str, dict[str, str]] = {
    "gaussian_log_prob": {
        "single_number": "sum over the last dimension only; do not average (or sum) over the examples.",
        "product_of_densities": "the product of the D coordinate densities overflowed or underflowed (784 "
                                "factors); add the D log-densities instead of multiplying densities.",
        "missing_half": "a factor 1/2 is missing in front of the whole bracket: each coordinate contributes "
                        "-1/2 [log(2π) + logvar + (x - mu)^2 / variance].",
        "half_on_part": "the 1/2 multiplies only the constant and logvar: it applies to the squared term too.",
        "logvar_as_log_std": "logvar was used as a log standard deviation: the variance is exp(logvar), so the "
                             "standard deviation is exp(logvar / 2).",
        "logvar_as_std": "logvar was used as the standard deviation itself: it is the log of the variance.",
        "logvar_as_var": "logvar was used as the variance itself: the variance is exp(logvar).",
        "missing_log_2pi": "the log(2π) term is missing (part of the normalizing constant of each coordinate).",
        "log_2pi_once": "log(2π) was added once per example; it belongs to each coordinate (D times).",
        "log_pi": "the constant is log(π); the normal density has 1/sqrt(2π), so it is log(2π).",
        "times_variance": "the squared distance was multiplied by the variance; divide it by the variance.",
        "sign_flip": "the sign is flipped: you returned the negative log-density (a loss), not the log-density.",
        "mean_over_coordinates": "the coordinates were averaged: independent coordinates multiply, so their "
                                 "log-densities are summed over the last dimension.",
        "missing_logvar": "the -1/2 logvar term (the log of the normalizing variance) is missing.",
        "logvar_sign": "the logvar term enters with +1/2; it is -1/2 logvar (a wider Gaussian has a lower peak).",
        "first_coordinate": "only the first coordinate was used: sum the log-densities of all D coordinates.",
    },
    "mixture_log_prob": {
        "single_number": "one log-density per point: do not average (or sum) over the examples.",
        "underflow": "far from every mode each component's density underflows to 0 in floating point, so "
                     "log(sum(exp(...))) gives log 0. Compute the sum over components in log space with "
                     "torch.logsumexp.",
        "missing_half": "the component log-density lacks its factor 1/2: it is -1/2 [log(2π) + logvar + "
                        "(x - mu)^2 / variance].",
        "missing_log_2pi": "the component log-density lacks log(2π), part of its normalizing constant.",
        "times_variance": "in each component the squared distance was multiplied by the variance; divide it.",
        "weights_ignored": "the mixture weights are ignored: add log(weight) to each component's log-density.",
        "uniform_weights": "the components got equal weights 1/K: use the given weights.",
        "weights_not_logged": "the weights were added to log-densities as they are: add log(weight).",
        "weighted_log_densities": "log p(x) is the log of a weighted sum of densities, not a weighted sum of "
                                  "log-densities (that is smaller, by Jensen's inequality).",
        "max_component": "only the most likely component was kept (a max): logsumexp over all components.",
        "sign_flip": "the sign is flipped: you returned the negative log-likelihood.",
        "logvar_as_log_std": "logvar was used as a log standard deviation: the variance of a component is "
                             "exp(logvar), its standard deviation exp(logvar / 2).",
    },
}


# --- exercise: gaussian_log_prob --------------------------------------------------------------

def _gaussian_expected(x, mu, logvar) -> torch.Tensor:
    """log N(x; mu, diag(exp(logvar))) by torch.distributions.Normal, in float64."""
    x, mu, logvar = x.to(F64), mu.to(F64), logvar.to(F64)
    return Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)


def _gaussian_mistakes(x, mu, logvar) -> dict[str, torch.Tensor]:
    """What each known mistake returns on these inputs, in float64."""
    x, mu, logvar = x.to(F64), mu.to(F64), logvar.to(F64)
    sq = ((x - mu) ** 2).expand(torch.broadcast_shapes(x.shape, mu.shape, logvar.shape))
    var = logvar.exp()
    right = -0.5 * (LOG_2PI + logvar + sq / var)
    return {
        "missing_half": -(LOG_2PI + logvar + sq / var).sum(-1),
        "half_on_part": (-0.5 * (LOG_2PI + logvar) - sq / var).sum(-1),
        "logvar_as_log_std": (-0.5 * LOG_2PI - logvar - 0.5 * sq / var ** 2).sum(-1),
        "logvar_as_std": (-0.5 * LOG_2PI - torch.log(logvar.abs()) - 0.5 * sq / logvar ** 2).sum(-1),
        "logvar_as_var": (-0.5 * (LOG_2PI + torch.log(logvar.abs()) + sq / logvar)).sum(-1),
        "missing_log_2pi": (-0.5 * (logvar + sq / var)).sum(-1),
        "log_2pi_once": (-0.5 * (logvar + sq / var)).sum(-1) - 0.5 * LOG_2PI,
        "log_pi": (-0.5 * (math.log(math.pi) + logvar + sq / var)).sum(-1),
        "times_variance": (-0.5 * (LOG_2PI + logvar + sq * var)).sum(-1),
        "sign_flip": -right.sum(-1),
        "mean_over_coordinates": right.mean(-1),
        "missing_logvar": (-0.5 * (LOG_2PI + sq / var)).sum(-1),
        "logvar_sign": (-0.5 * (LOG_2PI - logvar + sq / var)).sum(-1),
        "first_coordinate": right[..., 0],
    }


def _gaussian_cases():
    gen = torch.Generator().manual_seed(101)
    # positive logvar first, so that every mistake (even log(logvar)) gives finite but wrong values
    x = torch.randn(5, 3, generator=gen)
    mu = torch.randn(5, 3, generator=gen)
    logvar = 0.3 + torch.rand(5, 3, generator=gen)
    yield "x (5, 3), mu (5, 3), logvar (5, 3) with logvar > 0", x, mu, logvar
    x = 2 * torch.randn(5, 2, generator=gen)
    mu = torch.randn(5, 2, generator=gen)
    logvar = torch.tensor([[-1.5, 0.7], [0.4, -0.6], [1.2, -2.0], [-0.3, 0.9], [0.1, -0.8]])
    yield "x (5, 2), mu (5, 2), logvar (5, 2) with negative entries", x, mu, logvar
    x = torch.randn(6, 4, generator=gen, dtype=F64)
    mu = torch.randn(4, generator=gen, dtype=F64)
    logvar = torch.randn(4, generator=gen, dtype=F64)
    yield "x (6, 4) float64 with mu (4,) and logvar (4,) broadcast over the batch", x, mu, logvar
    # the chapter's size: 784 grey pixels in [0, 1], narrow Gaussians (variances about 0.01 to 0.05)
    x = torch.rand(8, 784, generator=gen)
    mu = torch.rand(784, generator=gen)
    logvar = -4.5 + 1.5 * torch.rand(784, generator=gen)
    yield "x of 8 images of 784 pixels in [0, 1], mu (784,), logvar (784,) in [-4.5, -3]", x, mu, logvar


@register("gaussian_log_prob", chapter=CHAPTER, reference=gaussian_log_prob)
def check_gaussian_log_prob(answer):
    hints = HINTS["gaussian_log_prob"]
    first = None
    for where, x, mu, logvar in _gaussian_cases():
        where = f"for {where}"
        first = first or (x, mu, logvar)
        n = x.shape[0]
        out = call(answer, x, mu, logvar, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            raise hinted(hints, "single_number", f"the result should have shape ({n},), one log-density per "
                                                 f"example, but it is a single number {where}.")
        expect_not_infinite(out, hints, where=where, below="product_of_densities", above="product_of_densities")
        expect_tensor(out, shape=(n,), dtype=x.dtype, where=where)
        expect_value(out, _gaussian_expected(x, mu, logvar), partial(_gaussian_mistakes, x, mu, logvar), hints,
                     where=where, rtol=1e-4, atol=1e-4)
    x, mu, logvar = first
    mu_g, logvar_g = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    where = "for x (5, 3) with mu and logvar requiring gradients"
    out = call(answer, x, mu_g, logvar_g, where=where)
    expect_grad(out, {"mu": mu_g, "logvar": logvar_g}, where=where)
    return "one log-density per example, summed over coordinates, in nats; gradients flow to mu and logvar."


# --- exercise: mixture_log_prob ---------------------------------------------------------------

def _mixture_expected(x, weights, mu, logvar) -> torch.Tensor:
    """log sum_k w_k N(x; mu_k, exp(logvar_k)) by torch.distributions.MixtureSameFamily, in float64."""
    x, weights, mu, logvar = (t.to(F64) for t in (x, weights, mu, logvar))
    return MixtureSameFamily(Categorical(probs=weights), Normal(mu, torch.exp(0.5 * logvar))).log_prob(x)


def _mixture_mistakes(x, weights, mu, logvar) -> dict[str, torch.Tensor]:
    x, weights, mu, logvar = (t.to(F64) for t in (x, weights, mu, logvar))
    sq = (x[:, None] - mu) ** 2  # (N, K)
    var = logvar.exp()
    comp = -0.5 * (LOG_2PI + logvar + sq / var)
    log_w = weights.log()
    return {
        "missing_half": torch.logsumexp(log_w - (LOG_2PI + logvar + sq / var), dim=1),
        "missing_log_2pi": torch.logsumexp(log_w - 0.5 * (logvar + sq / var), dim=1),
        "times_variance": torch.logsumexp(log_w - 0.5 * (LOG_2PI + logvar + sq * var), dim=1),
        "weights_ignored": torch.logsumexp(comp, dim=1),
        "uniform_weights": torch.logsumexp(comp, dim=1) - math.log(mu.shape[0]),
        "weights_not_logged": torch.logsumexp(comp + weights, dim=1),
        "weighted_log_densities": (comp * weights).sum(dim=1),
        "max_component": (comp + log_w).max(dim=1).values,
        "sign_flip": -torch.logsumexp(comp + log_w, dim=1),
        "logvar_as_log_std": torch.logsumexp(log_w - 0.5 * (LOG_2PI + 2 * logvar + sq / var ** 2), dim=1),
    }


def _mixture_cases():
    weights = torch.tensor([0.2, 0.5, 0.3])
    mu = torch.tensor([-3.0, 0.5, 4.0])
    logvar = torch.tensor([-0.5, 0.4, 0.0])
    gen = torch.Generator().manual_seed(7)
    near = torch.cat([torch.tensor([-3.0, 0.0, 0.5, 2.0, 4.0]), 3 * torch.randn(5, generator=gen)])
    yield "x of 10 points near the modes, weights (0.2, 0.5, 0.3)", near, weights, mu, logvar
    far = torch.tensor([-60.0, 45.0, 80.0, -120.0, 15.0])
    yield "x of 5 points far from every mode (x = -60, 45, 80, -120, 15)", far, weights, mu, logvar
    yield "x of 10 points in float64", near.double(), weights.double(), mu.double(), logvar.double()
    # the chapter's mixture, scored on 400 points drawn from it, and the chapter's far point x = 40
    weights = torch.tensor([0.35, 0.65])
    mu = torch.tensor([-2.0, 1.5])
    logvar = 2 * torch.log(torch.tensor([0.6, 0.9]))
    pick = torch.multinomial(weights, 400, replacement=True, generator=gen)
    x = mu[pick] + torch.exp(0.5 * logvar[pick]) * torch.randn(400, generator=gen)
    x[-1] = 40.0
    yield "the chapter's two-component mixture on 400 points, the last at x = 40", x, weights, mu, logvar


@register("mixture_log_prob", chapter=CHAPTER, reference=gaussian_mixture_log_prob)
def check_mixture_log_prob(answer):
    hints = HINTS["mixture_log_prob"]
    first = None
    for where, x, w, m, lv in _mixture_cases():
        where = f"for {where}"
        first = first or (x, w, m, lv)
        out = call(answer, x, w, m, lv, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            raise hinted(hints, "single_number", f"the result should have shape ({x.shape[0]},), one "
                                                 f"log-density per example, but it is a single number {where}.")
        expect_not_infinite(out, hints, where=where, below="underflow")
        expect_tensor(out, shape=tuple(x.shape), dtype=x.dtype, where=where)
        expect_value(out, _mixture_expected(x, w, m, lv), partial(_mixture_mistakes, x, w, m, lv), hints,
                     where=where, rtol=1e-4, atol=1e-4)
    x, w, m, lv = first
    mu_g = m.clone().requires_grad_()
    where = "for x near the modes with mu requiring gradients"
    out = call(answer, x, w, mu_g, lv, where=where)
    expect_grad(out, {"mu": mu_g}, where=where)
    return "one log-density per example in nats, finite even far from every mode."
