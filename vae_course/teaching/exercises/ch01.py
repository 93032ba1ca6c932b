"""Checkers for chapter 1, Generative modelling.

Taught in: chapter 1. Exercises:

- `gaussian_log_prob(x, mu, logvar)`: the diagonal Gaussian log-density, summed over the last
  dimension, one value per example (nats).
- `mixture_log_prob(x, weights, mu, logvar)`: the log-density of a 1-D Gaussian mixture, one
  value per example, stable far from the modes (logsumexp).

When a wrong answer matches a known mistake (a missing 1/2, `logvar` used as a standard
deviation, a sign flip, a mean instead of a sum, ...), the message adds a hint naming it,
without showing the reference code.
"""
from __future__ import annotations

import math

import torch

from ...core.distributions import gaussian_log_prob
from ...models import gaussian_mixture_log_prob
from ._core import Failure, call, expect_close, expect_grad, expect_tensor, register

CHAPTER = "01_generative_modelling"
LOG_2PI = math.log(2 * math.pi)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.isfinite(b).all()) and torch.allclose(
        a.detach().to(b.dtype), b, rtol=1e-4, atol=1e-5)


def _expect_close_or_hint(out, expected, mistakes: dict, *, where: str):
    """`expect_close`, and on failure add the hint of the first known mistake that `out` matches."""
    try:
        expect_close(out, expected, where=where)
    except Failure as e:
        for hint, wrong in mistakes.items():
            if _close(out, wrong):
                raise Failure(f"{e} Hint: {hint}") from None
        raise


# --- exercise: gaussian_log_prob --------------------------------------------------------------

def _gaussian_mistakes(x, mu, logvar) -> dict:
    """Answers that common mistakes produce, each with the hint to show."""
    sq = (x - mu) ** 2
    var = logvar.exp()
    right = -0.5 * (LOG_2PI + logvar + sq / var)
    d = x.shape[-1]
    return {
        "a factor 1/2 is missing: each coordinate contributes -1/2 [log(2π) + logvar + (x - mu)^2 / variance].":
            -(LOG_2PI + logvar + sq / var).sum(-1),
        "the 1/2 multiplies only part of the expression: it applies to log(2π), logvar and the squared term alike.":
            (-0.5 * (LOG_2PI + logvar) - sq / var).sum(-1),
        "logvar is the log of the variance: the variance is exp(logvar), the standard deviation exp(logvar / 2).":
            (-0.5 * LOG_2PI - logvar - 0.5 * sq / var ** 2).sum(-1),
        "logvar is the log of the variance, not a standard deviation: the variance is exp(logvar), "
        "the standard deviation exp(logvar / 2).":
            (-0.5 * LOG_2PI - torch.log(logvar.abs()) - 0.5 * sq / logvar ** 2).sum(-1),
        "logvar is the log of the variance, not the variance itself: use exp(logvar) as the variance.":
            (-0.5 * (LOG_2PI + torch.log(logvar.abs()) + sq / logvar)).sum(-1),
        "the log(2π) term is missing (it is part of the normalizing constant of each coordinate).":
            (-0.5 * (logvar + sq / var)).sum(-1),
        "log(2π) should appear once per coordinate (D times), not once per example.":
            (-0.5 * (logvar + sq / var)).sum(-1) - 0.5 * LOG_2PI,
        "use log(2π), not log(π) or log(2), in the normalizing constant.":
            (-0.5 * (math.log(math.pi) + logvar + sq / var)).sum(-1),
        "the squared distance must be divided by the variance, not multiplied by it.":
            (-0.5 * (LOG_2PI + logvar + sq * var)).sum(-1),
        "the sign is flipped: a log-density is minus one half of [...]; you returned the negative log-likelihood.":
            -right.sum(-1),
        "sum over the last dimension (the coordinates), do not average: the log-density of independent "
        "coordinates is the sum of theirs.":
            right.mean(-1),
        "the -1/2 logvar term is missing (or has the wrong sign).":
            (-0.5 * (LOG_2PI + sq / var)).sum(-1),
        "the logvar term has the wrong sign: it is -1/2 logvar (a wider Gaussian has a lower peak).":
            (-0.5 * (LOG_2PI - logvar + sq / var)).sum(-1),
        f"the coordinates must be summed (D = {d}), not only the first one used.":
            right[..., 0],
    }


@register("gaussian_log_prob", chapter=CHAPTER, reference=gaussian_log_prob)
def check_gaussian_log_prob(answer):
    gen = torch.Generator().manual_seed(101)
    # Case 1: positive logvar, so every common mistake gives finite but wrong values.
    x = torch.randn(5, 3, generator=gen)
    mu = torch.randn(5, 3, generator=gen)
    logvar = 0.3 + torch.rand(5, 3, generator=gen)
    cases = [("x (5, 3), mu (5, 3), logvar (5, 3) with logvar > 0", x, mu, logvar, (5,))]
    # Case 2: negative and positive logvar.
    x2 = 2 * torch.randn(4, 2, generator=gen)
    mu2 = torch.randn(4, 2, generator=gen)
    logvar2 = torch.tensor([[-1.5, 0.7], [0.4, -0.6], [1.2, -2.0], [-0.3, 0.9]])
    cases.append(("x (4, 2), mu (4, 2), logvar (4, 2) with negative entries", x2, mu2, logvar2, (4,)))
    # Case 3: broadcasting mu and logvar over a batch, and float64 in, float64 out.
    x3 = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    mu3 = torch.randn(4, generator=gen, dtype=torch.float64)
    logvar3 = torch.randn(4, generator=gen, dtype=torch.float64)
    cases.append(("x (6, 4) float64 with mu (4,) and logvar (4,) broadcast over the batch", x3, mu3, logvar3, (6,)))
    for where, xi, mi, li, shape in cases:
        where = f"for {where}"
        out = call(answer, xi, mi, li, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 0 and shape != ():
            raise Failure(f"the result should have shape {shape}, one log-density per example, but it is a "
                          f"single number {where}. Hint: sum over the last dimension only; do not average "
                          "(or sum) over the examples.")
        expect_tensor(out, shape=shape, dtype=xi.dtype, where=where)
        expected = gaussian_log_prob(xi, mi, li)
        _expect_close_or_hint(out, expected, _gaussian_mistakes(xi, mi, li), where=where)
    # Gradients must flow to mu and logvar.
    mu_g, logvar_g = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    try:
        out = answer(x, mu_g, logvar_g)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        raise Failure(f"your function raised {type(e).__name__}: {e} when mu and logvar require gradients.") from None
    expect_grad(out, {"mu": mu_g, "logvar": logvar_g}, where="for x (5, 3) with mu and logvar requiring gradients")
    return "one log-density per example, summed over coordinates, in nats; gradients flow to mu and logvar."


# --- exercise: mixture_log_prob ---------------------------------------------------------------

def _mixture_mistakes(x, weights, mu, logvar) -> dict:
    sq = (x[:, None] - mu) ** 2  # (N, K)
    comp = -0.5 * (LOG_2PI + logvar + sq / logvar.exp())
    k = mu.shape[0]
    log_w = weights.log()
    return {
        "a factor 1/2 is missing in the component log-density: it is -1/2 [log(2π) + logvar + (x - mu)^2 / variance].":
            torch.logsumexp(log_w - (LOG_2PI + logvar + sq / logvar.exp()), dim=1),
        "the log(2π) term is missing from the component log-density (it is part of its normalizing constant).":
            torch.logsumexp(log_w - 0.5 * (logvar + sq / logvar.exp()), dim=1),
        "in the component log-density the squared distance must be divided by the variance, not multiplied by it.":
            torch.logsumexp(log_w - 0.5 * (LOG_2PI + logvar + sq * logvar.exp()), dim=1),
        "the mixture weights are ignored: each component's density must be multiplied by its weight "
        "(add log(weight) to its log-density).":
            torch.logsumexp(comp, dim=1),
        "the components are averaged with equal weights: use the given weights.":
            torch.logsumexp(comp, dim=1) - math.log(k),
        "the weights must enter as log(weight) added to each component's log-density, not as the weight itself.":
            torch.logsumexp(comp + weights, dim=1),
        "log p(x) is the log of a weighted sum of densities, not a weighted sum of log-densities.":
            (comp * weights).sum(dim=1),
        "taking only the most likely component (a max) drops the others: use logsumexp over components.":
            (comp + weights.log()).max(dim=1).values,
        "the sign is flipped: you returned the negative log-likelihood.":
            -torch.logsumexp(comp + weights.log(), dim=1),
        "logvar is the log of the variance: the variance is exp(logvar), the standard deviation exp(logvar / 2).":
            torch.logsumexp(weights.log() - 0.5 * (LOG_2PI + 2 * logvar + (x[:, None] - mu) ** 2
                                                    * torch.exp(-2 * logvar)), dim=1),
    }


@register("mixture_log_prob", chapter=CHAPTER, reference=gaussian_mixture_log_prob)
def check_mixture_log_prob(answer):
    weights = torch.tensor([0.2, 0.5, 0.3])
    mu = torch.tensor([-3.0, 0.5, 4.0])
    logvar = torch.tensor([-0.5, 0.4, 0.0])
    gen = torch.Generator().manual_seed(7)
    near = torch.cat([torch.tensor([-3.0, 0.0, 0.5, 2.0, 4.0]), 3 * torch.randn(5, generator=gen)])
    far = torch.tensor([-60.0, 45.0, 80.0, -120.0])
    cases = [
        ("x of 10 points near the modes, weights (0.2, 0.5, 0.3)", near, weights, mu, logvar),
        ("x of 4 points far from every mode (x = -60, 45, 80, -120)", far, weights, mu, logvar),
        ("x of 10 points in float64", near.double(), weights.double(), mu.double(), logvar.double()),
    ]
    for where, x, w, m, lv in cases:
        where = f"for {where}"
        out = call(answer, x, w, m, lv, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            raise Failure(f"the result should have shape ({x.shape[0]},), one log-density per example, but it "
                          f"is a single number {where}. Hint: do not average over the examples.")
        if isinstance(out, torch.Tensor) and out.shape == x.shape and out.is_floating_point() \
                and torch.isinf(out).any() and (out < 0).any():
            raise Failure(f"the result contains -inf {where}. Hint: far from every mode each component's density "
                          "underflows to 0 in floating point, so log(sum(exp(...))) gives log 0. Compute the sum "
                          "over components in log space with torch.logsumexp.")
        expect_tensor(out, shape=tuple(x.shape), dtype=x.dtype, where=where)
        expected = gaussian_mixture_log_prob(x, w, m, lv)
        _expect_close_or_hint(out, expected, _mixture_mistakes(x, w, m, lv), where=where)
    mu_g = mu.clone().requires_grad_()
    try:
        out = answer(near, weights, mu_g, logvar)
    except Exception as e:  # noqa: BLE001
        raise Failure(f"your function raised {type(e).__name__}: {e} when mu requires gradients.") from None
    expect_grad(out, {"mu": mu_g}, where="for x near the modes with mu requiring gradients")
    return "one log-density per example in nats, finite even far from every mode."
