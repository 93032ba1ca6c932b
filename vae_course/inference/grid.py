"""Exact posteriors of models with a one- or two-dimensional latent, by quadrature on a grid.

Taught in: chapter 4 (a non-Gaussian posterior, and what the best Gaussian q misses) and chapter 6
(the approximation gap of a non-linear model needs its exact log p(x)).

On a regular grid of G points per axis over [-limit, limit]^k (midpoints of G equal cells of
width h = 2 limit / G), the integral p(x) = int p(x | z) p(z) dz becomes the midpoint rule::

    log p(x) ~= logsumexp_g [ log p(x | z_g) + log p(z_g) ] + k log h,

and the posterior density at the grid points is p(z_g | x) = p(x | z_g) p(z_g) / p(x). The error
has two sources: the prior mass outside the box (about 6e-7 per axis for limit = 5) and the
resolution (the cells must be narrow next to the posterior's width; halve h and compare). The
prior is N(0, I) unless the model defines ``log_pz``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..core.distributions import gaussian_log_prob
from ..core.validation import check_data, check_int, check_positive
from .interface import check_model

__all__ = ["GridPosterior", "grid_posterior"]

_CHUNK = 8192  # grid points evaluated at once (bounds memory at about _CHUNK * N * d numbers)


class GridPosterior(NamedTuple):
    """The exact posterior of each row of x on a grid, its moments, and log p(x) (nats)."""

    axis: torch.Tensor  # (G,) the grid coordinates along every latent axis
    log_density: torch.Tensor  # (N, G) for k = 1, (N, G, G) for k = 2 (axis 1 is z_1): log p(z | x)
    log_px: torch.Tensor  # (N,) log p(x) by the midpoint rule
    mean: torch.Tensor  # (N, k) posterior means
    cov: torch.Tensor  # (N, k, k) posterior covariances

    @property
    def cell_area(self) -> float:
        """The volume h^k of one grid cell, so that ``exp(log_density) * cell_area`` sums to 1 over the grid."""
        h = float(self.axis[1] - self.axis[0]) if len(self.axis) > 1 else 1.0
        return h ** (self.log_density.dim() - 1)


def grid_posterior(model, x: torch.Tensor, limit: float = 5.0, num_points: int = 201) -> GridPosterior:
    """The posterior p(z | x) of every row of `x` on a grid, for a model with latent_dim 1 or 2.

    `model` needs ``log_px_given_z(x, z)`` (x (N, d), z (..., N, k) -> (..., N)) and an integer
    ``latent_dim``; `limit` bounds the box [-limit, limit]^k and `num_points` is G, the points
    per axis (midpoints of equal cells). Computed in the dtype and on the device of `x`. See the
    module docstring for the quadrature and its error.
    """
    check_model(model, methods=("log_px_given_z",))
    k = getattr(model, "latent_dim", None)
    if not isinstance(k, int) or k not in (1, 2):
        raise ValueError(f"model must have latent_dim 1 or 2 for a grid posterior, got {k!r}")
    x = check_data("x", x)
    limit = check_positive("limit", limit)
    g = check_int("num_points", num_points, low=2, high=2001)
    h = 2 * limit / g
    axis = -limit + h * (torch.arange(g, dtype=x.dtype, device=x.device) + 0.5)
    if k == 1:
        points = axis[:, None]
    else:
        z1, z2 = torch.meshgrid(axis, axis, indexing="ij")
        points = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)  # (G*G, 2), z_1 major
    log_pz = getattr(model, "log_pz", None)
    n = x.shape[0]
    chunks = []
    with torch.no_grad():
        for start in range(0, len(points), _CHUNK):
            p = points[start:start + _CHUNK]  # (P, k)
            z = p[:, None, :].expand(len(p), n, k)
            prior = log_pz(p) if callable(log_pz) else gaussian_log_prob(p, 0.0, 0.0)
            chunks.append(model.log_px_given_z(x, z) + prior[:, None])  # (P, N)
        log_joint = torch.cat(chunks).T  # (N, P)
        log_px = torch.logsumexp(log_joint, dim=1) + k * math.log(h)
        weights = torch.softmax(log_joint, dim=1)  # (N, P), sums to 1 over the grid
        mean = weights @ points
        centred = points[None, :, :] - mean[:, None, :]  # (N, P, k)
        cov = torch.einsum("np,npi,npj->nij", weights, centred, centred)
        log_density = log_joint - log_px[:, None]
    shape = (n, g) if k == 1 else (n, g, g)
    return GridPosterior(axis, log_density.reshape(shape), log_px, mean, cov)
