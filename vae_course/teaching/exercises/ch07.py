"""Checkers for chapter 7, The reparameterization trick.

Taught in: chapter 7. Exercises:

- `reparameterize(mu, logvar, generator=None)`: a sample z = mu + exp(logvar / 2) * eps of
  q = N(mu, diag(exp(logvar))), with eps ~ N(0, I) of mu's shape drawn with `generator`
  (``torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)``),
  differentiable in mu and logvar.
- `reinforce_gradient(f_values, z, mu, logvar)`: the score-function estimate from given draws:
  ``(grad_mu, grad_logvar)``, each (N, k), the mean over the S draws of f(z_s) times the score
  d/d(mu, logvar) log q(z_s); `z` is (S, N, k) and `f_values` (S, N).

The checker leaves the global random state as it found it. The expected sample is rebuilt from
the same seed; the expected score comes from autograd through
`torch.distributions.Normal.log_prob`, not from the package's references.
"""
from __future__ import annotations

import torch
from torch.distributions import Normal

from ...core import reparameterize
from ...inference import score_function_estimate
from ._core import Failure, call, expect_close, expect_tensor, register
from ._expect import expect_value, hinted, same

CHAPTER = "07_reparameterization"
F64 = torch.float64

HINTS: dict[str, dict[str, str]] = {
    "reparameterize": {
        "ignores_generator": "two calls with generators seeded alike gave different samples: draw eps with "
                             "torch.randn(..., generator=generator), so that a seed fixes the sample.",
        "logvar_as_std": "logvar was used as the standard deviation: the standard deviation is exp(logvar / 2).",
        "var_as_std": "exp(logvar), the variance, was used as the standard deviation: take exp(logvar / 2).",
        "mu_missing": "the mean is missing: z = mu + exp(logvar / 2) * eps.",
        "std_missing": "eps was not scaled by the standard deviation exp(logvar / 2).",
        "detached": "the sample carries no gradient: compute it as mu + std * eps with torch operations "
                    "(Normal(...).sample(), .detach() and torch.no_grad() cut the path to mu and logvar).",
        "zero_gradient": "the sample has a gradient of zero with respect to mu and logvar (torch.normal and "
                         ".sample() do not reparameterize): write z = mu + std * eps yourself.",
    },
    "reinforce_gradient": {
        "single_draw_mean": "average over the S draws (dim 0) only: the result has one gradient per row, shape "
                            "(N, k).",
        "score_sign": "the score has the wrong sign: d/dmu log q(z) = (z - mu) / var.",
        "score_over_std": "the mu-score divides by the standard deviation: d/dmu log q(z) = (z - mu) / var.",
        "score_without_var": "the mu-score lacks the division by the variance: (z - mu) / var.",
        "logvar_missing_half": "the logvar-score lacks its factor 1/2: 1/2 ((z - mu)^2 / var - 1).",
        "logvar_missing_minus_one": "the logvar-score lacks the -1: 1/2 ((z - mu)^2 / var - 1).",
        "grad_wrt_std": "that is the score with respect to the standard deviation, not logvar: "
                        "d/dlogvar log q(z) = 1/2 ((z - mu)^2 / var - 1).",
        "sum_over_draws": "the draws were summed: the estimate is their mean (divide by S).",
        "f_ignored": "f(z) is missing: the estimate weights each score by f(z_s).",
    },
}


def _pair(out, names: tuple[str, ...], where: str):
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = type(out).__name__ + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        raise Failure(f"return a tuple ({', '.join(names)}) of {len(names)} torch.Tensor objects, got {got}, {where}.")
    return tuple(out)


# --- exercise: reparameterize -----------------------------------------------------------------------

def _rep_cases():
    g = torch.Generator().manual_seed(71)
    lv = torch.tensor([[-1.2, 0.6, 0.3], [0.4, -0.7, 1.1], [1.0, -1.9, -0.4], [-0.3, 0.8, 0.5],
                       [0.2, -0.5, -1.4], [-0.9, 1.3, 0.7]])
    yield "mu, logvar of shape (6, 3) in float32", torch.randn(6, 3, generator=g), lv, 5
    yield ("mu, logvar of shape (40, 4) in float64", torch.randn(40, 4, generator=g, dtype=F64),
           torch.randn(40, 4, generator=g, dtype=F64), 6)


def _draws(shape, dtype, seed):
    """The noise a correct answer can draw with a generator seeded `seed`: in mu's dtype, or in float32."""
    return [torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype),
            torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)]


def _call_seeded(answer, mu, lv, seed, global_seed, where):
    """Call with a generator seeded `seed` after seeding the global generator; restore its state after."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(global_seed)
        return call(answer, mu, lv, torch.Generator().manual_seed(seed), where=where)
    finally:
        torch.random.set_rng_state(state)


@register("reparameterize", chapter=CHAPTER, reference=reparameterize)
def check_reparameterize(answer):
    hints = HINTS["reparameterize"]
    for where, mu, lv, seed in _rep_cases():
        where = f"for {where} and a generator seeded {seed}"
        out = _call_seeded(answer, mu, lv, seed, 1, where)
        expect_tensor(out, shape=tuple(mu.shape), dtype=mu.dtype, where=where)
        again = _call_seeded(answer, mu, lv, seed, 2, where)
        if isinstance(again, torch.Tensor) and not torch.equal(out.detach(), again.detach()):
            raise hinted(hints, "ignores_generator", f"the sample is not reproducible {where}.")
        std = torch.exp(0.5 * lv)
        draws = _draws(mu.shape, mu.dtype, seed)
        right = [mu + sign * std * eps for eps in draws for sign in (1, -1)]  # -eps is standard normal too
        if any(same(out, r, rtol=1e-5, atol=1e-6) for r in right):
            continue
        for eps in draws:  # a known mistake, made with either draw
            mistakes = {"logvar_as_std": mu + lv * eps, "var_as_std": mu + lv.exp() * eps, "mu_missing": std * eps,
                        "std_missing": mu + eps}
            for key, wrong in mistakes.items():
                if same(out, wrong, rtol=1e-5, atol=1e-6):
                    raise hinted(hints, key, f"wrong value of the sample {where}.")
        expect_close(out, right[0], where=where, rtol=1e-5, atol=1e-6, name="the sample")
    where = "for mu, logvar of shape (6, 3) requiring gradients and no generator"
    mu, lv, _ = next(iter(_rep_cases()))[1:]
    mu, lv = mu.clone().requires_grad_(), lv.clone().requires_grad_()
    state = torch.random.get_rng_state()  # without a generator the draw uses (and advances) the global one
    try:
        out = call(answer, mu, lv, where=where)
    finally:
        torch.random.set_rng_state(state)
    expect_tensor(out, shape=tuple(mu.shape), dtype=mu.dtype, where=where)
    if not out.requires_grad:
        raise hinted(hints, "detached", f"no gradient reaches mu or logvar {where}.")
    g_mu, g_lv = torch.autograd.grad(out.sum(), (mu, lv), allow_unused=True)
    if (g_mu is None or g_mu.abs().max() == 0) and (g_lv is None or g_lv.abs().max() == 0):
        raise hinted(hints, "zero_gradient", f"the gradient is zero {where}.")
    if g_mu is None or not torch.allclose(g_mu, torch.ones_like(mu)):
        raise Failure(f"d z / d mu should be 1 for every entry {where}: z = mu + std * eps.")
    if g_lv is None or not torch.allclose(g_lv, 0.5 * (out - mu).detach(), rtol=1e-4, atol=1e-6):
        raise Failure(f"d z / d logvar should be exp(logvar / 2) * eps / 2 = (z - mu) / 2 {where}: build the "
                      "standard deviation from logvar with torch operations.")
    return "a reparameterized sample: reproducible from the generator, with gradients 1 and (z - mu) / 2."


# --- exercise: reinforce_gradient ----------------------------------------------------------------------

def _reinforce_cases():
    g = torch.Generator().manual_seed(72)
    for s, n, k, dtype in ((50, 5, 3, F64), (40, 6, 2, torch.float32)):
        opts = dict(generator=g, dtype=dtype)
        mu, lv = torch.randn(n, k, **opts), 0.5 * torch.randn(n, k, **opts)
        z = mu + torch.exp(0.5 * lv) * torch.randn(s, n, k, **opts)
        f_values = -0.5 * ((z - 1.0) ** 2).sum(-1) + 0.3 * torch.randn(s, n, **opts)
        yield f"S = {s} draws, N = {n}, k = {k} in {dtype}", f_values, z, mu, lv


def _score_expected(f_values, z, mu, lv):
    """grad of 1/S sum_s f_s log q(z_s) with respect to (mu, logvar), by autograd through Normal.log_prob."""
    f_values, z = f_values.to(F64), z.to(F64)
    mu, lv = mu.to(F64).clone().requires_grad_(), lv.to(F64).clone().requires_grad_()
    log_q = Normal(mu, torch.exp(0.5 * lv)).log_prob(z).sum(-1)  # (S, N)
    return torch.autograd.grad((f_values * log_q).mean(0).sum(), (mu, lv))


def _score_mistakes(f_values, z, mu, lv):
    f, z, mu, lv = (t.to(F64) for t in (f_values, z, mu, lv))
    var, s = lv.exp(), z.shape[0]
    w = f.unsqueeze(-1)
    good_mu, good_lv = (w * (z - mu) / var).mean(0), (w * 0.5 * ((z - mu) ** 2 / var - 1)).mean(0)
    mu_mistakes = {"score_sign": -good_mu, "score_over_std": (w * (z - mu) / var.sqrt()).mean(0),
                   "score_without_var": (w * (z - mu)).mean(0), "sum_over_draws": good_mu * s,
                   "f_ignored": ((z - mu) / var).mean(0)}
    lv_mistakes = {"logvar_missing_half": 2 * good_lv,
                   "logvar_missing_minus_one": (w * 0.5 * (z - mu) ** 2 / var).mean(0),
                   "grad_wrt_std": (w * ((z - mu) ** 2 / var ** 1.5 - 1 / var.sqrt())).mean(0),
                   "sum_over_draws": good_lv * s, "f_ignored": (0.5 * ((z - mu) ** 2 / var - 1)).mean(0)}
    return mu_mistakes, lv_mistakes


@register("reinforce_gradient", chapter=CHAPTER, reference=score_function_estimate)
def check_reinforce_gradient(answer):
    hints = HINTS["reinforce_gradient"]
    for where, f_values, z, mu, lv in _reinforce_cases():
        where = f"for {where}"
        grad_mu, grad_lv = _pair(call(answer, f_values, z, mu, lv, where=where), ("grad_mu", "grad_logvar"), where)
        for t in (grad_mu, grad_lv):
            if isinstance(t, torch.Tensor) and t.shape != mu.shape and t.numel() in (mu.shape[-1], 1):
                raise hinted(hints, "single_draw_mean", f"a gradient has shape {tuple(t.shape)} {where}.")
        exp_mu, exp_lv = _score_expected(f_values, z, mu, lv)
        mu_mistakes, lv_mistakes = _score_mistakes(f_values, z, mu, lv)
        expect_tensor(grad_mu, shape=tuple(mu.shape), dtype=mu.dtype, where=where, name="grad_mu")
        expect_value(grad_mu, exp_mu, mu_mistakes, hints, where=where, name="grad_mu", rtol=1e-4, atol=1e-5)
        expect_tensor(grad_lv, shape=tuple(mu.shape), dtype=mu.dtype, where=where, name="grad_logvar")
        expect_value(grad_lv, exp_lv, lv_mistakes, hints, where=where, name="grad_logvar", rtol=1e-4, atol=1e-5)
    return "the score-function estimate: f(z) times d/d(mu, logvar) log q(z), averaged over the draws."
