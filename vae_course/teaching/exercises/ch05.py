"""Checkers for chapter 5, The ELBO.

Taught in: chapter 5. Exercises:

- `kl_normal_std_normal(mu, logvar)`: KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the
  last dimension, one value per example (nats).
- `elbo_estimate(x, decode, mu, logvar, eps)`: the single-sample ELBO of each row of `x` (N, d):
  with z = mu + exp(logvar / 2) * eps (each (N, k)) and ``(x_mean, x_logvar) = decode(z)`` (each
  (N, d), a diagonal Gaussian p(x | z)), return log p(x | z) summed over the d dimensions minus
  the closed-form KL(q || N(0, I)): shape (N,), nats, differentiable in mu and logvar.
- `kl_gaussian_full(mean_q, cov_q, mean_p, cov_p)`: KL(N(mean_q, cov_q) || N(mean_p, cov_p)) for
  means (N, k) and full covariances (k, k) shared by the rows: shape (N,), nats. (Chapter 5 uses
  it for the gap KL(q || p(z | x)) to the exact posterior.)

Expected values come from `torch.distributions` (`Normal`, `MultivariateNormal`, `kl_divergence`)
in float64, never from the package's references.
"""
from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from ...core import kl_normal_std_normal
from ...inference import kl_gaussian_full
from ...inference.elbo import elbo_estimate
from ._core import Failure, call, expect_grad, expect_tensor, register
from ._expect import expect_value, hinted

CHAPTER = "05_elbo"
F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)

HINTS: dict[str, dict[str, str]] = {
    "kl_normal_std_normal": {
        "single_number": "return one KL per example (sum over the last dimension only), not a total or an "
                         "average over the examples.",
        "missing_half": "the bracket needs its factor 1/2: per coordinate 1/2 [mu^2 + exp(logvar) - 1 - logvar].",
        "logvar_as_std": "logvar was used as a standard deviation: the variance is exp(logvar).",
        "var_as_std": "exp(logvar) was used as a standard deviation (and squared): it is already the variance.",
        "sign_flip": "the sign is flipped: a KL divergence is never negative.",
        "mean_over_dims": "the latent coordinates were averaged: the KL of independent coordinates is their sum.",
        "wrong_direction": "this is KL(N(0, I) || q), the other direction: the ELBO needs KL(q || N(0, I)).",
        "missing_minus_one": "the -1 is missing (without it the KL of q = N(0, I) would not be 0).",
        "missing_mu_squared": "the mu^2 term is missing: moving q's mean away from 0 costs KL too.",
        "logvar_sign": "logvar enters with a minus sign: 1/2 [mu^2 + exp(logvar) - 1 - logvar].",
    },
    "elbo_estimate": {
        "single_number": "return one ELBO per example, shape (N,): do not average over the batch (the loss "
                         "does that later).",
        "negative_elbo": "you returned minus the ELBO (the loss): the ELBO is log p(x | z) - KL.",
        "kl_added": "the KL term was added: the ELBO subtracts KL(q || prior) from the reconstruction term.",
        "kl_missing": "the KL(q || N(0, I)) term is missing: the ELBO is the reconstruction term minus it.",
        "kl_missing_half": "the KL term lacks its factor 1/2.",
        "eps_ignored": "the decoder got mu, not a sample: z = mu + exp(logvar / 2) * eps.",
        "logvar_as_std": "z used logvar as the standard deviation: it is exp(logvar / 2).",
        "var_as_std": "z used exp(logvar), the variance, as the standard deviation: take exp(logvar / 2).",
        "recon_mean_over_dims": "the reconstruction term was averaged over the data dimensions: log p(x | z) is "
                                "the sum of the d per-pixel log-densities.",
        "recon_missing_log_2pi": "the reconstruction term lacks the -1/2 log(2π) of each data dimension.",
        "decoder_variance_ignored": "the decoder's x_logvar was ignored (unit variance used): use the "
                                    "variance exp(x_logvar) it returned.",
        "detached_sample": "no gradient flows through the sample z: build z from mu and logvar with torch "
                           "operations (no .detach(), no torch.no_grad()), so that the reconstruction term "
                           "is differentiable in mu and logvar.",
    },
    "kl_gaussian_full": {
        "single_number": "return one KL per row of the means, shape (N,), not a total or an average.",
        "wrong_direction": "this is KL(p || q), the other direction: the ELBO's gap is KL(q || p).",
        "missing_half": "the bracket needs the factor 1/2.",
        "missing_k": "the -k inside the bracket is missing (k, the latent dimension).",
        "logdet_sign": "the log-determinant term has the wrong sign: it is log det cov_p - log det cov_q.",
        "quad_without_inverse": "the squared distance of the means must use the inverse of cov_p: "
                                "(mean_p - mean_q)^T cov_p^{-1} (mean_p - mean_q).",
        "trace_without_inverse": "the trace term is tr(cov_p^{-1} cov_q), with the inverse of cov_p.",
        "sign_flip": "the sign is flipped: a KL divergence is never negative.",
    },
}


def _single_number(out, n: int, hints, where: str) -> None:
    if isinstance(out, torch.Tensor) and out.dim() == 0:
        raise hinted(hints, "single_number", f"the result should have shape ({n},), but it is a single "
                                             f"number {where}.")


# --- exercise: kl_normal_std_normal ----------------------------------------------------------------

def _kl_std_cases():
    g = torch.Generator().manual_seed(51)
    mu, lv = torch.randn(5, 3, generator=g), 0.3 + torch.rand(5, 3, generator=g)
    yield "mu, logvar of shape (5, 3) with logvar > 0", mu, lv
    lv = torch.tensor([[-1.3, 0.6], [0.45, -0.8], [1.2, -2.1], [-0.35, 0.9], [0.15, -0.55], [-0.7, 1.5]])
    yield "mu, logvar of shape (6, 2) with negative entries", 2 * torch.randn(6, 2, generator=g), lv
    yield ("float64 mu, logvar of shape (8, 16), a VAE-sized latent", torch.randn(8, 16, generator=g, dtype=F64),
           torch.randn(8, 16, generator=g, dtype=F64) - 1.0)


def _kl_std_mistakes(mu, lv) -> dict[str, torch.Tensor]:
    mu, lv = mu.to(F64), lv.to(F64)
    right = 0.5 * (mu ** 2 + lv.exp() - 1 - lv)
    return {
        "missing_half": (2 * right).sum(-1),
        "logvar_as_std": (0.5 * (mu ** 2 + lv ** 2 - 1 - torch.log(lv ** 2))).sum(-1),
        "var_as_std": (0.5 * (mu ** 2 + (2 * lv).exp() - 1 - 2 * lv)).sum(-1),
        "sign_flip": -right.sum(-1),
        "mean_over_dims": right.mean(-1),
        "wrong_direction": (0.5 * (lv + (1 + mu ** 2) * torch.exp(-lv) - 1)).sum(-1),
        "missing_minus_one": (0.5 * (mu ** 2 + lv.exp() - lv)).sum(-1),
        "missing_mu_squared": (0.5 * (lv.exp() - 1 - lv)).sum(-1),
        "logvar_sign": (0.5 * (mu ** 2 + lv.exp() - 1 + lv)).sum(-1),
    }


@register("kl_normal_std_normal", chapter=CHAPTER, reference=kl_normal_std_normal)
def check_kl_normal_std_normal(answer):
    hints = HINTS["kl_normal_std_normal"]
    first = None
    for where, mu, lv in _kl_std_cases():
        where = f"for {where}"
        first = first or (mu, lv)
        out = call(answer, mu, lv, where=where)
        _single_number(out, mu.shape[0], hints, where)
        expect_tensor(out, shape=(mu.shape[0],), dtype=mu.dtype, where=where)
        expected = kl_divergence(Normal(mu.to(F64), torch.exp(0.5 * lv.to(F64))), Normal(0.0, 1.0)).sum(-1)
        expect_value(out, expected, _kl_std_mistakes(mu, lv), hints, where=where, name="KL(q || N(0, I))",
                     rtol=1e-4, atol=1e-5)
    mu, lv = (t.clone().requires_grad_() for t in first)
    where = "for mu, logvar of shape (5, 3) that require gradients"
    expect_grad(call(answer, mu, lv, where=where), {"mu": mu, "logvar": lv}, where=where)
    return "one KL(q || N(0, I)) per example in nats, summed over the latent coordinates."


# --- exercise: elbo_estimate ----------------------------------------------------------------------

class _LinearDecoder:
    """decode(z) = (z W^T + b, log psi): a linear-Gaussian decoder, differentiable in z."""

    def __init__(self, W, b, logpsi):
        self.W, self.b, self.logpsi = W, b, logpsi

    def __call__(self, z):
        mean = z @ self.W.T + self.b
        return mean, self.logpsi.expand_as(mean)


def _elbo_cases():
    g = torch.Generator().manual_seed(52)
    for n, k, d, dtype in ((5, 3, 6, F64), (6, 2, 4, torch.float32)):
        opts = dict(generator=g, dtype=dtype)
        decoder = _LinearDecoder(torch.randn(d, k, **opts), torch.randn(d, **opts), -1.0 + 1.5 * torch.rand(d, **opts))
        x = torch.randn(n, d, **opts)
        mu, lv, eps = torch.randn(n, k, **opts), 0.3 * torch.randn(n, k, **opts) - 0.6, torch.randn(n, k, **opts)
        yield f"x ({n}, {d}), mu, logvar, eps ({n}, {k}) in {dtype}, a linear decoder", x, decoder, mu, lv, eps


def _elbo_parts(x, decoder, mu, lv, eps, z=None):
    """(recon, kl) in float64 by torch.distributions, for z = mu + exp(lv / 2) eps unless given."""
    x, mu, lv, eps = (t.to(F64) for t in (x, mu, lv, eps))
    dec = _LinearDecoder(decoder.W.to(F64), decoder.b.to(F64), decoder.logpsi.to(F64))
    z = mu + torch.exp(0.5 * lv) * eps if z is None else z
    mean, x_lv = dec(z)
    recon = Normal(mean, torch.exp(0.5 * x_lv)).log_prob(x)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * lv)), Normal(0.0, 1.0)).sum(-1)
    return recon, kl, mean, x_lv


def _elbo_mistakes(x, decoder, mu, lv, eps) -> dict[str, torch.Tensor]:
    recon, kl, mean, x_lv = _elbo_parts(x, decoder, mu, lv, eps)
    r = recon.sum(-1)
    m64, l64, e64 = mu.to(F64), lv.to(F64), eps.to(F64)

    def with_z(z):
        return _elbo_parts(x, decoder, mu, lv, eps, z=z)[0].sum(-1) - kl

    return {
        "negative_elbo": kl - r,
        "kl_added": r + kl,
        "kl_missing": r,
        "kl_missing_half": r - 2 * kl,
        "eps_ignored": with_z(m64),
        "logvar_as_std": with_z(m64 + l64 * e64),
        "var_as_std": with_z(m64 + l64.exp() * e64),
        "recon_mean_over_dims": recon.mean(-1) - kl,
        "recon_missing_log_2pi": r + 0.5 * LOG_2PI * x.shape[1] - kl,
        "decoder_variance_ignored": Normal(mean, 1.0).log_prob(x.to(F64)).sum(-1) - kl,
    }


@register("elbo_estimate", chapter=CHAPTER, reference=elbo_estimate)
def check_elbo_estimate(answer):
    hints = HINTS["elbo_estimate"]
    first = None
    for where, x, decoder, mu, lv, eps in _elbo_cases():
        where = f"for {where}"
        first = first or (where, x, decoder, mu, lv, eps)
        out = call(answer, x, decoder, mu, lv, eps, where=where)
        _single_number(out, x.shape[0], hints, where)
        expect_tensor(out, shape=(x.shape[0],), dtype=x.dtype, where=where)
        recon, kl, _, _ = _elbo_parts(x, decoder, mu, lv, eps)
        expect_value(out, recon.sum(-1) - kl, _elbo_mistakes(x, decoder, mu, lv, eps), hints, where=where,
                     name="the ELBO", rtol=1e-4, atol=1e-4)
    where, x, decoder, mu, lv, eps = first
    where = f"{where}, with mu and logvar requiring gradients"
    mu_g, lv_g = mu.clone().requires_grad_(), lv.clone().requires_grad_()
    expect_grad(call(answer, x, decoder, mu_g, lv_g, eps, where=where), {"mu": mu_g, "logvar": lv_g}, where=where)
    got = torch.autograd.grad(call(answer, x, decoder, mu_g, lv_g, eps, where=where).sum(), (mu_g, lv_g))
    mu_r, lv_r = mu.clone().requires_grad_(), lv.clone().requires_grad_()
    recon, kl, _, _ = _elbo_parts(x, decoder, mu_r, lv_r, eps)
    expected = torch.autograd.grad((recon.sum(-1) - kl).sum(), (mu_r, lv_r))
    if all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(got, expected)):
        return "one single-sample ELBO per example in nats, with gradients through the sample z."
    mu_k, lv_k = mu.clone().requires_grad_(), lv.clone().requires_grad_()
    kl_only = torch.autograd.grad(-_elbo_parts(x, decoder, mu_k, lv_k, eps)[1].sum(), (mu_k, lv_k))
    if all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(got, kl_only)):
        raise hinted(hints, "detached_sample", f"the value is right but the gradient is not {where}.")
    raise Failure(f"the value is right but the gradient with respect to mu or logvar is wrong {where}: "
                  "compute the ELBO from mu, logvar and eps with torch operations only.")


# --- exercise: kl_gaussian_full ---------------------------------------------------------------------

def _spd(k: int, g: torch.Generator, dtype) -> torch.Tensor:
    A = torch.randn(k, k, generator=g, dtype=dtype)
    return A @ A.T + 0.5 * torch.eye(k, dtype=dtype)


def _full_cases():
    g = torch.Generator().manual_seed(53)
    yield ("means (5, 3) and (3, 3) covariances in float64", torch.randn(5, 3, generator=g, dtype=F64),
           _spd(3, g, F64), torch.randn(5, 3, generator=g, dtype=F64), _spd(3, g, F64))
    yield ("means (6, 2), a diagonal cov_q and a full cov_p in float32", torch.randn(6, 2, generator=g),
           torch.diag(torch.tensor([0.3, 1.7])), torch.randn(6, 2, generator=g), _spd(2, g, torch.float32))


def _full_mistakes(mq, cq, mp, cp) -> dict[str, torch.Tensor]:
    mq, cq, mp, cp = (t.to(F64) for t in (mq, cq, mp, cp))
    k = mq.shape[-1]
    diff = mp - mq
    inv_p = torch.linalg.inv(cp)
    trace = torch.trace(inv_p @ cq)
    quad = ((diff @ inv_p) * diff).sum(-1)
    logdet = torch.logdet(cp) - torch.logdet(cq)
    right = 0.5 * (trace + quad - k + logdet)
    return {
        "wrong_direction": kl_divergence(MultivariateNormal(mp, cp), MultivariateNormal(mq, cq)),
        "missing_half": 2 * right,
        "missing_k": right + 0.5 * k,
        "logdet_sign": right - logdet,
        "quad_without_inverse": 0.5 * (trace + ((diff @ cp) * diff).sum(-1) - k + logdet),
        "trace_without_inverse": 0.5 * (torch.trace(cp @ cq) + quad - k + logdet),
        "sign_flip": -right,
    }


@register("kl_gaussian_full", chapter=CHAPTER, reference=kl_gaussian_full)
def check_kl_gaussian_full(answer):
    hints = HINTS["kl_gaussian_full"]
    first = None
    for where, mq, cq, mp, cp in _full_cases():
        where = f"for {where}"
        first = first or (mq, cq, mp, cp)
        out = call(answer, mq, cq, mp, cp, where=where)
        _single_number(out, mq.shape[0], hints, where)
        expect_tensor(out, shape=(mq.shape[0],), dtype=mq.dtype, where=where)
        q = MultivariateNormal(mq.to(F64), cq.to(F64))
        expected = kl_divergence(q, MultivariateNormal(mp.to(F64), cp.to(F64)))
        expect_value(out, expected, _full_mistakes(mq, cq, mp, cp), hints, where=where, name="KL(q || p)",
                     rtol=1e-4, atol=1e-5)
    mq, cq, mp, cp = first
    mq = mq.clone().requires_grad_()
    where = "for float64 means (5, 3) with mean_q requiring gradients"
    expect_grad(call(answer, mq, cq, mp, cp, where=where), {"mean_q": mq}, where=where)
    return "one KL(q || p) per row in nats, for full covariance matrices."
