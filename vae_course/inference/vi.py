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

Chapter 6 splits the inference gap log p(x) - ELBO(encoder's q) in two (`inference_gaps`), and
`linear_encoder` gives the linear map with which an encoder reproduces the linear-Gaussian
model's best diagonal q exactly.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..core.validation import check_choice, check_generator, check_int, check_tensor
from .elbo import _mc_terms
from .interface import check_model

__all__ = ["best_diagonal_gaussian", "vi_loss", "InferenceGaps", "inference_gaps", "linear_encoder"]


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


class InferenceGaps(NamedTuple):
    """The two parts of the inference gap, each (N,) in nats (Cremer, Li and Duvenaud, 2018)."""

    approximation: torch.Tensor  # log p(x) - ELBO(best q of the family): the family's limit
    amortization: torch.Tensor  # ELBO(best q) - ELBO(encoder's q): the price of one shared encoder


def inference_gaps(log_px: torch.Tensor, elbo_best: torch.Tensor, elbo_encoder: torch.Tensor) -> InferenceGaps:
    """Split log p(x) - ELBO(encoder) into the approximation gap and the amortization gap, per example.

    ``approximation = log_px - elbo_best`` (what the best q of the family misses) and
    ``amortization = elbo_best - elbo_encoder`` (what sharing one encoder costs); they add up to
    the inference gap log_px - elbo_encoder. All three inputs are (N,) in nats, under the same
    decoder; both gaps are >= 0 when elbo_best is the best ELBO of the family at each x.
    """
    log_px = check_tensor("log_px", log_px, ndim=1, what="of shape (N,) (nats per example)")
    for name, t in (("elbo_best", elbo_best), ("elbo_encoder", elbo_encoder)):
        check_tensor(name, t, shape=(log_px.shape[0],), what="(one ELBO per example, like log_px)")
    return InferenceGaps(log_px - elbo_best, elbo_best - elbo_encoder)


def linear_encoder(W: torch.Tensor, b: torch.Tensor,
                   psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(weight, bias, logvar)` with which ``mu = x @ weight.T + bias`` and ``logvar`` give the best diagonal q.

    For z ~ N(0, I), x | z ~ N(W z + b, diag(psi)), with the posterior precision
    G = I + W^T diag(psi)^{-1} W: ``weight = G^{-1} W^T diag(psi)^{-1}`` (k, d),
    ``bias = -weight @ b`` (k,) and ``logvar = -log diag(G)`` (k,), the same for every x.
    So an encoder with one linear layer for mu and a constant for logvar reaches the best
    diagonal q of every data point: this model has no amortization gap.
    """
    W = check_tensor("W", W, ndim=2, what="of shape (d, k)")
    d, k = W.shape
    b = check_tensor("b", b, shape=(d,), what=f"(d = {d}, the rows of W)")
    psi = check_tensor("psi", psi, shape=(d,), what=f"(the noise variances, d = {d})")
    if not bool((psi > 0).all()):
        raise ValueError(f"psi must hold positive variances, got a smallest value of {float(psi.min()):g}")
    scaled = W / psi[:, None]  # diag(psi)^{-1} W, (d, k)
    G = torch.eye(k, dtype=W.dtype, device=W.device) + W.T @ scaled
    weight = torch.linalg.solve(G, scaled.T)  # (k, d)
    return weight, -(weight @ b), -torch.log(torch.diagonal(G))
