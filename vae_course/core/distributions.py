"""Log-densities, KL divergences and the reparameterized sample: the ground layer of the course.

Taught in: chapter 1 (`gaussian_log_prob`, `bernoulli_log_prob`, `log_mean_exp`); used again in
chapter 2 (Monte Carlo estimates of log p(x)), chapters 4-5 (`kl_normal_std_normal`,
`kl_normal_normal`) and chapter 7 (`reparameterize`).

Conventions, shared by every function here:

- Gaussians are diagonal and parameterized by `mu` and `logvar` (the log of the variance).
- Log-densities are in nats and are **summed over the last dimension** (the data or latent
  dimensions), so the result has the batch shape: input `(..., D)` gives output `(...)`.
- Arguments broadcast like torch operations; `mu` and `logvar` may be tensors or Python numbers.
- Bernoulli likelihoods take logits and use `binary_cross_entropy_with_logits`, never
  `log(sigmoid(.))`, which underflows to `-inf` for large negative logits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .validation import as_tensor as _tensor
from .validation import broadcast_shape as _broadcast_shape
from .validation import check_finite as _check_finite
from .validation import check_generator as _check_generator

__all__ = [
    "LOG_2PI",
    "gaussian_log_prob",
    "bernoulli_log_prob",
    "log_mean_exp",
    "kl_normal_std_normal",
    "kl_normal_normal",
    "reparameterize",
    "monte_carlo_elbo",
]

LOG_2PI = math.log(2.0 * math.pi)  # log(2 pi), the constant in every Gaussian log-density


def _check_event_dim(shape: torch.Size, what: str) -> None:
    if len(shape) == 0:
        raise ValueError(f"{what} needs at least one dimension to sum over (the last one); "
                         "got only scalars. Use shape (..., D), e.g. x.reshape(-1, 1) for 1-D data")


# --- densities -----------------------------------------------------------------------------------

def gaussian_log_prob(x: torch.Tensor, mu, logvar) -> torch.Tensor:
    """log N(x; mu, diag(exp(logvar))) in nats, summed over the last dimension.

    For each coordinate the log-density is -1/2 [log(2 pi) + logvar + (x - mu)^2 / exp(logvar)];
    the result is the sum over the last dimension, with the broadcast batch shape.

    >>> gaussian_log_prob(torch.zeros(3, 2), 0.0, 0.0)  # two standard-normal coordinates at 0
    tensor([-1.8379, -1.8379, -1.8379])
    """
    x = _tensor("x", x)
    mu = _tensor("mu", mu, like=x)
    logvar = _tensor("logvar", logvar, like=x)
    shape = _broadcast_shape(x=x, mu=mu, logvar=logvar)
    _check_event_dim(shape, "gaussian_log_prob")
    _check_finite("logvar", logvar)
    per_dim = -0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))
    return per_dim.expand(shape).sum(dim=-1)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) in nats, summed over the last dimension.

    `x` holds binary pixels (grayscale intensities in [0, 1] are accepted too: the common practice,
    which is not a proper density). Computed as minus `binary_cross_entropy_with_logits`, which
    stays finite for any finite logits.
    """
    x = _tensor("x", x)
    logits = _tensor("logits", logits, like=x)
    shape = _broadcast_shape(x=x, logits=logits)
    _check_event_dim(shape, "bernoulli_log_prob")
    _check_finite("x", x)
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must hold values in [0, 1] (binary pixels), got values in "
                         f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
    _check_finite("logits", logits)
    x, logits = x.expand(shape), logits.expand(shape)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def log_mean_exp(t: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """log(mean(exp(t), dim)) computed stably with logsumexp: logsumexp(t, dim) - log(n).

    The workhorse of Monte Carlo estimates of log p(x) (chapter 2) and of the IWAE bound.
    """
    t = _tensor("t", t)
    if t.dim() == 0:
        raise ValueError("t must have at least one dimension to average over")
    if not -t.dim() <= dim < t.dim():
        raise ValueError(f"dim must be in [{-t.dim()}, {t.dim() - 1}] for t of shape {tuple(t.shape)}, got {dim}")
    n = t.shape[dim]
    if n == 0:
        raise ValueError(f"t has no elements along dim {dim}: the mean of nothing is undefined")
    return torch.logsumexp(t, dim=dim, keepdim=keepdim) - math.log(n)


# --- divergences ---------------------------------------------------------------------------------

def kl_normal_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) in nats, summed over the last dimension.

    Closed form per coordinate: 1/2 [mu^2 + exp(logvar) - 1 - logvar].
    """
    mu = _tensor("mu", mu)
    logvar = _tensor("logvar", logvar, like=mu)
    shape = _broadcast_shape(mu=mu, logvar=logvar)
    _check_event_dim(shape, "kl_normal_std_normal")
    _check_finite("logvar", logvar)
    return _kl_std_normal(mu, logvar)  # mu and logvar broadcast to `shape`


def _kl_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The formula of `kl_normal_std_normal`, without checks (inner loops call it after checking once)."""
    return (0.5 * (mu ** 2 + torch.exp(logvar) - 1.0 - logvar)).sum(dim=-1)


def kl_normal_normal(mu_q: torch.Tensor, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL( N(mu_q, diag(exp(logvar_q))) || N(mu_p, diag(exp(logvar_p))) ) in nats, summed over the last dim.

    Closed form per coordinate: 1/2 [logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1].
    """
    mu_q = _tensor("mu_q", mu_q)
    logvar_q = _tensor("logvar_q", logvar_q, like=mu_q)
    mu_p = _tensor("mu_p", mu_p, like=mu_q)
    logvar_p = _tensor("logvar_p", logvar_p, like=mu_q)
    shape = _broadcast_shape(mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
    _check_event_dim(shape, "kl_normal_normal")
    _check_finite("logvar_q", logvar_q)
    _check_finite("logvar_p", logvar_p)
    per_dim = 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p) - 1.0)
    return per_dim.expand(shape).sum(dim=-1)


# --- sampling ------------------------------------------------------------------------------------

def reparameterize(mu: torch.Tensor, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample z = mu + exp(logvar / 2) * eps with eps ~ N(0, I): differentiable in mu and logvar.

    The noise has the broadcast shape of `mu` and `logvar`, their promoted dtype and the device of
    `mu`; pass a `torch.Generator` on that device for reproducible draws that leave the global
    generator alone.
    """
    mu = _tensor("mu", mu)
    logvar = _tensor("logvar", logvar, like=mu)
    shape = _broadcast_shape(mu=mu, logvar=logvar)
    _check_finite("logvar", logvar)
    _check_generator(generator)
    if generator is not None and generator.device.type != mu.device.type:
        raise ValueError(f"generator must be on the device of mu ({mu.device.type}), got a generator on "
                         f"{generator.device.type}; make one with vc.make_generator(seed, device=mu.device)")
    return _reparameterize(mu, logvar, shape, generator)


def _reparameterize(mu: torch.Tensor, logvar: torch.Tensor, shape, generator) -> torch.Tensor:
    """The formula of `reparameterize`, without checks: z = mu + exp(logvar / 2) eps, eps of `shape`."""
    dtype = torch.promote_types(mu.dtype, logvar.dtype)
    eps = torch.randn(shape, generator=generator, dtype=dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


# --- the Monte Carlo ELBO through a likelihood ---------------------------------------------------

def monte_carlo_elbo(log_px_given_z, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     n_samples: int = 1, generator: torch.Generator | None = None):
    """`(elbo, recon, kl)`, each (N,) in nats: the Monte Carlo ELBO for q = N(mu, diag(exp(logvar))).

    ``recon`` is the mean over `n_samples` reparameterized draws z_s = mu + exp(logvar / 2) eps_s
    (eps of shape (n_samples, N, k), drawn in one call with `generator`) of
    ``log_px_given_z(x, z_s)``; ``kl`` is the closed-form KL(q || N(0, I)); ``elbo = recon - kl``.
    No argument checks: this is the inner loop shared by `vae_course.elbo` (which validates its
    arguments once) and the models' `loss` methods (chapter 8).
    """
    shape = torch.broadcast_shapes((n_samples, *mu.shape), logvar.shape)
    z = _reparameterize(mu, logvar, shape, generator)  # (S, N, k)
    recon = log_px_given_z(x, z).mean(dim=0)  # (N,): mean over the S draws
    kl = _kl_std_normal(mu, logvar)
    return recon - kl, recon, kl
