"""Variational inference per data point: the objective, and the best diagonal Gaussian for a Gaussian target.

Taught in: chapter 4 (variational inference); used by chapter 6 (the best q per point, against
which an encoder's q is measured). The optimisation itself is `vc.fit_gaussian_q`
(`vae_course.training.vi`), which runs this objective through the package's one training loop.

For a Gaussian target N(mean, cov) the best diagonal Gaussian has a closed form, different for
the two directions of the KL:

- reverse, KL(q || p) (what maximising the ELBO minimises): the exact mean and the variances
  1 / diag(cov^{-1}), the inverse of the diagonal of the precision; these are smaller than the
  marginal variances diag(cov) whenever the coordinates are correlated: q is too narrow;
- forward, KL(p || q) (moment matching): the exact mean and the marginal variances diag(cov).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.validation import check_choice, check_generator, check_int, check_tensor
from .elbo import _mc_terms
from .interface import check_model

__all__ = ["best_diagonal_gaussian", "vi_loss"]


def best_diagonal_gaussian(mean: torch.Tensor, cov: torch.Tensor,
                           direction: str = "reverse") -> tuple[torch.Tensor, torch.Tensor]:
    """`(mu, logvar)` of the diagonal Gaussian closest to N(mean, cov) in the KL of `direction`.

    `mean` is (..., k) and `cov` (k, k) or (..., k, k). ``direction="reverse"`` minimises
    KL(q || N(mean, cov)): logvar = -log diag(cov^{-1}); ``"forward"`` minimises
    KL(N(mean, cov) || q): logvar = log diag(cov). `logvar` has the shape of `mean`.
    """
    mean = check_tensor("mean", mean, what="of shape (..., k)")
    cov = check_tensor("cov", cov, what="of shape (k, k) or (..., k, k)")
    check_choice("direction", direction, ("reverse", "forward"))
    k = mean.shape[-1] if mean.dim() else 0
    if k < 1 or cov.dim() < 2 or cov.shape[-2:] != (k, k):
        raise ValueError(f"cov must have shape (..., k, k) with k = {k} (the last dimension of mean), "
                         f"got cov {tuple(cov.shape)} and mean {tuple(mean.shape)}")
    if direction == "forward":
        var = torch.diagonal(cov, dim1=-2, dim2=-1)
    else:
        L, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise ValueError("cov must be a symmetric positive-definite covariance matrix; "
                             "its Cholesky factorization failed")
        precision = torch.cholesky_inverse(L) if cov.dim() == 2 else torch.linalg.inv(cov)
        var = 1.0 / torch.diagonal(precision, dim1=-2, dim2=-1)
    logvar = torch.log(var).expand(torch.broadcast_shapes(var.shape, mean.shape))
    return mean.expand_as(logvar), logvar


def vi_loss(model, x: torch.Tensor, n_samples: int = 1,
            generator: torch.Generator | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The variational-inference objective for the rows of `x`, validated once: ``loss(mu, logvar)``.

    The returned function maps q's parameters (mu, logvar), each (N, k), one q per row of `x`,
    to minus the Monte Carlo ELBO (`vc.elbo` with ``q=(mu, logvar)``) averaged over the N rows:
    nats per example, a 0-d tensor, differentiable in mu and logvar. Each call draws fresh noise
    with `generator`. The model needs ``log_px_given_z`` only (prior N(0, I)). The arguments are
    checked here, once; the returned function checks nothing, so it costs nothing in a loop.
    """
    check_model(model, methods=("log_px_given_z",))
    x = check_tensor("x", x, what="of shape (N, ...) (one example per row)")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have at least one row (example), got shape {tuple(x.shape)}")
    n_samples = check_int("n_samples", n_samples, low=1)
    check_generator(generator)

    def loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return -_mc_terms(model, x, mu, logvar, n_samples, generator).elbo.mean()

    return loss
