"""Two Monte Carlo estimators of the gradient of E_q[f(z)] with respect to q's parameters (mu, logvar).

Taught in: chapter 7 (the reparameterization trick). For q = N(mu, diag(exp(logvar))):

- the score-function (REINFORCE) estimator uses only values of f::

      grad ≈ 1/S sum_s (f(z_s) - baseline) * grad log q(z_s),   z_s ~ q,

  with grad_mu log q(z) = (z - mu) / var and grad_logvar log q(z) = 1/2 ((z - mu)^2 / var - 1);
  a baseline that does not depend on z_s keeps it unbiased (E_q[grad log q] = 0) and can shrink
  its variance;
- the pathwise (reparameterization) estimator differentiates through the sample,
  z_s = mu + exp(logvar / 2) * eps_s with eps_s ~ N(0, I)::

      grad ≈ 1/S sum_s grad_{mu, logvar} f(mu + exp(logvar / 2) * eps_s),

  which needs f to be differentiable in z, and usually has a far smaller variance.

Both return `n_repeats` independent estimates (each from `n_samples` draws), so that a chapter
can measure their means and variances. Both draw all their noise as one standard-normal tensor
of shape ``(n_repeats, n_samples, *mu.shape)`` with `generator`, so the same seed gives both
estimators the same draws.

`f` takes z of shape ``(n_repeats, n_samples, *mu.shape)`` and returns one value per draw, shape
``(n_repeats, n_samples, *mu.shape[:-1])``; each value must depend on its own draw only (as a
per-example log-density does).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..core.distributions import reparameterize
from ..core.validation import check_generator, check_int, check_real, check_tensor

__all__ = ["GradientEstimate", "score_function_estimate", "score_function_gradient", "pathwise_gradient"]


class GradientEstimate(NamedTuple):
    """`n_repeats` estimates of the gradient of E_q[f(z)]: ``mu`` and ``logvar``, each ``(n_repeats, *mu.shape)``."""

    mu: torch.Tensor
    logvar: torch.Tensor


def _check_args(f, mu, logvar, n_samples, n_repeats, generator):
    if not callable(f):
        raise TypeError(f"f must be a function of z (a callable), got {type(f).__name__}")
    mu = check_tensor("mu", mu, what="of shape (..., k)")
    logvar = check_tensor("logvar", logvar, what="of shape (..., k)")
    if mu.dim() < 1:
        raise ValueError("mu must have at least one dimension (the latent dimensions, last), got a 0-d tensor")
    if logvar.shape != mu.shape:
        raise ValueError(f"mu and logvar must have the same shape, got mu {tuple(mu.shape)} and "
                         f"logvar {tuple(logvar.shape)}")
    n_samples = check_int("n_samples", n_samples, low=1)
    n_repeats = check_int("n_repeats", n_repeats, low=1)
    check_generator(generator)
    return mu.detach(), logvar.detach(), n_samples, n_repeats


def _values(f, z: torch.Tensor, expected: tuple) -> torch.Tensor:
    out = f(z)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"f must return one value per draw: for z of shape {tuple(z.shape)} a tensor of "
                         f"shape {expected}, got {got}")
    return out


def score_function_estimate(f_values: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
                            logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The score-function estimate from given draws: the mean over draws of f(z_s) grad log q(z_s).

    `z` ``(S, *mu.shape)`` holds S draws from q = N(mu, diag(exp(logvar))), `f_values` ``(S, *mu.shape[:-1])``
    the values f(z_s) (minus a baseline, if any). Returns ``(grad_mu, grad_logvar)``, each of
    mu's shape, with grad_mu log q(z) = (z - mu) / var and grad_logvar log q(z) = 1/2 ((z - mu)^2 / var - 1).
    The reference of the chapter 7 exercise `reinforce_gradient`.
    """
    var = torch.exp(logvar)
    score_mu = (z - mu) / var  # d/dmu log N(z; mu, var)
    score_logvar = 0.5 * ((z - mu) ** 2 / var - 1.0)  # d/dlogvar log N(z; mu, exp(logvar))
    weight = f_values.unsqueeze(-1)
    return (weight * score_mu).mean(dim=0), (weight * score_logvar).mean(dim=0)


def score_function_gradient(f: Callable, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1,
                            n_repeats: int = 1, baseline=None,
                            generator: torch.Generator | None = None) -> GradientEstimate:
    """The score-function (REINFORCE) estimate of d/d(mu, logvar) E_q[f(z)], repeated `n_repeats` times.

    Uses only the values f(z_s) (f need not be differentiable; no gradient flows through it).
    `baseline`: None (no baseline), a number subtracted from every f(z_s), or ``"leave_one_out"``:
    each draw's baseline is the mean of f over the other n_samples - 1 draws of the same
    estimate (independent of that draw, so the estimate stays unbiased; needs n_samples >= 2).
    Returns `GradientEstimate` with fields of shape ``(n_repeats, *mu.shape)``, in mu's dtype.
    """
    mu, logvar, n_samples, n_repeats = _check_args(f, mu, logvar, n_samples, n_repeats, generator)
    if isinstance(baseline, str):
        if baseline != "leave_one_out":
            raise ValueError(f"baseline must be None, a number or 'leave_one_out', got {baseline!r}")
        if n_samples < 2:
            raise ValueError("baseline='leave_one_out' needs n_samples >= 2 (the other draws make the baseline), "
                             f"got n_samples = {n_samples}")
    elif baseline is not None:
        baseline = check_real("baseline", baseline)
    shape = (n_repeats, n_samples, *mu.shape)
    with torch.no_grad():
        z = reparameterize(mu.expand(shape), logvar, generator=generator)
        fz = _values(f, z, shape[:-1]).to(mu.dtype)
    if baseline == "leave_one_out":
        fz = fz - (fz.sum(dim=1, keepdim=True) - fz) / (n_samples - 1)
    elif baseline is not None:
        fz = fz - baseline
    # draws along dim 1 for each repetition: move them first, as score_function_estimate wants
    grad_mu, grad_logvar = score_function_estimate(fz.transpose(0, 1), z.transpose(0, 1), mu, logvar)
    return GradientEstimate(grad_mu, grad_logvar)


def pathwise_gradient(f: Callable, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1,
                      n_repeats: int = 1, generator: torch.Generator | None = None) -> GradientEstimate:
    """The pathwise (reparameterization) estimate of d/d(mu, logvar) E_q[f(z)], repeated `n_repeats` times.

    z_s = mu + exp(logvar / 2) * eps_s, and autograd differentiates the mean of f(z_s) over the
    n_samples draws with respect to one copy of (mu, logvar) per repetition. f must be
    differentiable in z. Returns `GradientEstimate` with fields of shape ``(n_repeats, *mu.shape)``;
    the returned tensors carry no graph.
    """
    mu, logvar, n_samples, n_repeats = _check_args(f, mu, logvar, n_samples, n_repeats, generator)
    shape = (n_repeats, n_samples, *mu.shape)
    with torch.enable_grad():
        mu_r = mu.expand(n_repeats, *mu.shape).clone().requires_grad_(True)
        logvar_r = logvar.expand(n_repeats, *mu.shape).clone().requires_grad_(True)
        z = reparameterize(mu_r.unsqueeze(1).expand(shape), logvar_r.unsqueeze(1), generator=generator)
        fz = _values(f, z, shape[:-1])
        if not fz.requires_grad:
            raise ValueError("f must be differentiable in z for the pathwise estimator: its output carries no "
                             "gradient (use torch operations, no .detach(), .item() or torch.no_grad())")
        grad_mu, grad_logvar = torch.autograd.grad(fz.mean(dim=1).sum(), (mu_r, logvar_r), allow_unused=True)
    zeros = torch.zeros_like(mu_r)
    return GradientEstimate(zeros if grad_mu is None else grad_mu.detach(),
                            zeros if grad_logvar is None else grad_logvar.detach())
