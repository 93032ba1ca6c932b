"""Checkers for chapter 4, Variational inference.

Taught in: chapter 4. Exercises:

- `kl_normal_normal(mu_q, logvar_q, mu_p, logvar_p)`: KL(q || p) between diagonal Gaussians,
  summed over the last dimension, one value per example (nats).
- `best_diagonal_gaussian(mean, cov)`: `(mu, logvar)`, each (N, k), of the diagonal Gaussian
  closest to N(mean_n, cov) in KL(q || p) (the direction the ELBO uses), for means (N, k) and one
  covariance (k, k).

Expected values come from `torch.distributions` (`kl_divergence` of `Normal`s) and, for the best
diagonal Gaussian, from conditional variances computed by a plain loop (the variance of z_i
given the other coordinates, a Schur complement), never from the package's references. When a
wrong answer matches a known mistake the message adds its hint (`HINTS`).
"""
from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from ...core import kl_normal_normal
from ...inference import best_diagonal_gaussian
from ._core import Failure, call, expect_grad, expect_tensor, register
from ._expect import conditional_variances, expect_value, hinted

CHAPTER = "04_variational_inference"
F64 = torch.float64

HINTS: dict[str, dict[str, str]] = {
    "kl_normal_normal": {
        "single_number": "return one KL per example (sum over the last dimension only), not a total or "
                         "an average over the examples.",
        "wrong_direction": "this is KL(p || q), the other direction: the KL divergence is not symmetric. "
                           "KL(q || p) takes the expectation under q.",
        "missing_half": "the whole bracket needs the factor 1/2: per coordinate 1/2 [log(var_p / var_q) + "
                        "(var_q + (mu_q - mu_p)^2) / var_p - 1].",
        "logvar_as_std": "logvar was used as a standard deviation: the variance is exp(logvar).",
        "var_as_std": "exp(logvar) was used as a standard deviation (and squared): exp(logvar) is already "
                      "the variance.",
        "sign_flip": "the sign is flipped: a KL divergence is never negative.",
        "mean_over_dims": "the coordinates were averaged: for independent coordinates the KL is the sum over "
                          "the last dimension.",
        "missing_minus_one": "the -1 inside the bracket is missing (without it KL(q || q) would not be 0).",
        "log_ratio_sign": "the log-variance term has the wrong sign: it is log(var_p) - log(var_q) = "
                          "logvar_p - logvar_q.",
        "means_ignored": "the means were left out: the squared difference (mu_q - mu_p)^2 belongs next to var_q.",
    },
    "best_diagonal_gaussian": {
        "forward_kl": "these are the marginal variances diag(cov): the moment-matching answer of the forward "
                      "KL(p || q). Minimising KL(q || p) gives the variances 1 / diag(cov^{-1}), smaller ones.",
        "variance_not_logged": "logvar should hold the log of the variances, not the variances themselves.",
        "log_std": "that is the log of the standard deviation: logvar is the log of the variance.",
        "precision_not_inverted": "that is log diag(cov^{-1}), the log of the precisions: the variances are "
                                  "their inverses, 1 / diag(cov^{-1}).",
        "mean_moved": "the best q keeps the target's mean: mu should be `mean` itself.",
    },
}


# --- exercise: kl_normal_normal -----------------------------------------------------------------

def _kl_expected(mq, lq, mp, lp) -> torch.Tensor:
    mq, lq, mp, lp = (t.to(F64) for t in (mq, lq, mp, lp))
    return kl_divergence(Normal(mq, torch.exp(0.5 * lq)), Normal(mp, torch.exp(0.5 * lp))).sum(-1)


def _kl_mistakes(mq, lq, mp, lp) -> dict[str, torch.Tensor]:
    mq, lq, mp, lp = (t.to(F64) for t in (mq, lq, mp, lp))
    d2 = (mq - mp) ** 2

    def kl(log_ratio, var_q, var_p, sq=d2, minus=1.0, half=0.5):
        return (half * (log_ratio + (var_q + sq) / var_p - minus)).sum(-1)

    vq, vp = lq.exp(), lp.exp()
    right = 0.5 * (lp - lq + (vq + d2) / vp - 1)
    return {
        "wrong_direction": kl(lq - lp, vp, vq),
        "missing_half": kl(lp - lq, vq, vp, half=1.0),
        "logvar_as_std": kl(torch.log(lp ** 2) - torch.log(lq ** 2), lq ** 2, lp ** 2),
        "var_as_std": kl(2 * lp - 2 * lq, vq ** 2, vp ** 2),
        "sign_flip": -right.sum(-1),
        "mean_over_dims": right.mean(-1),
        "missing_minus_one": kl(lp - lq, vq, vp, minus=0.0),
        "log_ratio_sign": kl(lq - lp, vq, vp),
        "means_ignored": kl(lp - lq, vq, vp, sq=0.0),
    }


def _kl_cases():
    g = torch.Generator().manual_seed(41)
    # logvars away from 0 (and positive first), so that even log(logvar^2) is finite and telling
    shape = (5, 3)
    yield ("mu_q, logvar_q, mu_p, logvar_p of shape (5, 3), logvars > 0", torch.randn(shape, generator=g),
           0.3 + torch.rand(shape, generator=g), torch.randn(shape, generator=g), 0.2 + torch.rand(shape, generator=g))
    lq = torch.tensor([[-1.2, 0.6], [0.4, -0.7], [1.1, -1.9], [-0.3, 0.8], [0.2, -0.5], [-0.9, 1.4]])
    lp = torch.tensor([[0.5, -0.4], [-1.1, 0.3], [0.7, 0.9], [-0.6, -1.3], [1.2, 0.25], [0.35, -0.8]])
    yield ("shape (6, 2) with negative log-variances", 2 * torch.randn(6, 2, generator=g), lq,
           torch.randn(6, 2, generator=g), lp)
    yield ("float64 q of shape (7, 4) and p of shape (4,), broadcast over the rows",
           torch.randn(7, 4, generator=g, dtype=F64), torch.randn(7, 4, generator=g, dtype=F64) - 0.2,
           torch.randn(4, generator=g, dtype=F64), torch.tensor([0.4, -0.7, 1.1, -1.4], dtype=F64))


@register("kl_normal_normal", chapter=CHAPTER, reference=kl_normal_normal)
def check_kl_normal_normal(answer):
    hints = HINTS["kl_normal_normal"]
    first = None
    for where, mq, lq, mp, lp in _kl_cases():
        where = f"for {where}"
        first = first or (mq, lq, mp, lp)
        n = mq.shape[0]
        out = call(answer, mq, lq, mp, lp, where=where)
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            raise hinted(hints, "single_number", f"the result should have shape ({n},), but it is a single "
                                                 f"number {where}.")
        expect_tensor(out, shape=(n,), dtype=mq.dtype, where=where)
        expect_value(out, _kl_expected(mq, lq, mp, lp), _kl_mistakes(mq, lq, mp, lp), hints, where=where,
                     name="KL(q || p)", rtol=1e-4, atol=1e-5)
    args = [t.clone().requires_grad_() for t in first]
    where = "for inputs of shape (5, 3) that require gradients"
    out = call(answer, *args, where=where)
    expect_grad(out, dict(zip(("mu_q", "logvar_q", "mu_p", "logvar_p"), args)), where=where)
    return "one KL(q || p) per example in nats, summed over coordinates; gradients reach all four inputs."


# --- exercise: best_diagonal_gaussian -----------------------------------------------------------

def _best_cases():
    g = torch.Generator().manual_seed(42)
    A = torch.randn(3, 3, generator=g, dtype=F64)
    cov = A @ A.T + 0.4 * torch.eye(3, dtype=F64)
    yield "means (5, 3) and a correlated (3, 3) covariance in float64", torch.randn(5, 3, generator=g, dtype=F64), cov
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.5]])
    yield "means (6, 2) and cov [[1, 0.8], [0.8, 1.5]] in float32", 2 * torch.randn(6, 2, generator=g), cov


def _pair(out, names: tuple[str, ...], where: str):
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = type(out).__name__ + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        raise Failure(f"return a tuple ({', '.join(names)}) of {len(names)} torch.Tensor objects, got {got}, {where}.")
    return tuple(out)


@register("best_diagonal_gaussian", chapter=CHAPTER, reference=best_diagonal_gaussian)
def check_best_diagonal_gaussian(answer):
    hints = HINTS["best_diagonal_gaussian"]
    for where, mean, cov in _best_cases():
        where = f"for {where}"
        mu, logvar = _pair(call(answer, mean, cov, where=where), ("mu", "logvar"), where)
        expect_tensor(mu, shape=tuple(mean.shape), dtype=mean.dtype, where=where, name="mu")
        expect_value(mu, mean.to(F64), {"mean_moved": torch.zeros_like(mean, dtype=F64)}, hints, where=where,
                     name="mu", rtol=1e-6, atol=1e-6)
        expect_tensor(logvar, shape=tuple(mean.shape), dtype=mean.dtype, where=where, name="logvar")
        var = conditional_variances(cov).expand(mean.shape)
        marginal = torch.diagonal(cov.to(F64)).expand(mean.shape)
        mistakes = {
            "forward_kl": torch.log(marginal),
            "variance_not_logged": var,
            "log_std": 0.5 * torch.log(var),
            "precision_not_inverted": -torch.log(var),
        }
        expect_value(logvar, torch.log(var), mistakes, hints, where=where, name="logvar", rtol=1e-4, atol=1e-5)
    return "the target's mean, and the variances 1 / diag(precision): narrower than the marginals."
