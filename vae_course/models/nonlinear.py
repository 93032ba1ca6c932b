"""A small non-linear latent variable model whose posterior is not Gaussian: `NonlinearGaussian`.

Taught in: chapter 4 (a posterior that no Gaussian q fits, computed exactly on a grid) and
chapter 6 (where a linear encoder cannot reach the best q of each point). Its latent space is
small (one or two dimensions), so `vae_course.inference.grid_posterior` gives its exact
posterior and log p(x) by quadrature: the yardstick of the approximations, as PPCA's closed
forms are for linear models.

The model::

    z ~ N(0, I_k),    x | z ~ N(f(z), sigma2 I_d),    f(z) = B tanh(A z + c) + b,

a decoder with one hidden layer of `hidden` tanh units and fixed weights A (hidden, k),
c (hidden,), B (d, hidden), b (d,). It implements the model interface's `decode` and
`log_px_given_z` (and `log_pz`, `sample`), but not `encode`: it has no closed-form posterior
and no encoder, so the inference functions take q explicitly (`vc.elbo(model, x, q=(mu, logvar))`,
`vc.fit_gaussian_q(model, x)`). Tensors follow the dtype and device of `A`.
"""
from __future__ import annotations

import math

import torch

from ..core.distributions import gaussian_log_prob
from ..core.validation import (
    check_bool,
    check_data,
    check_generator,
    check_int,
    check_latents,
    check_positive,
    check_tensor,
)

__all__ = ["NonlinearGaussian"]


class NonlinearGaussian:
    """z ~ N(0, I_k), x | z ~ N(B tanh(A z + c) + b, sigma2 I_d): a one-hidden-layer Gaussian decoder.

    `A` (hidden, k), `c` (hidden,), `B` (d, hidden), `b` (d,) floating-point tensors of one dtype
    and device, `sigma2` > 0 the noise variance of every data dimension. `random(...)` draws one.
    """

    def __init__(self, A: torch.Tensor, c: torch.Tensor, B: torch.Tensor, b: torch.Tensor, sigma2):
        A = check_tensor("A", A, ndim=2, what="of shape (hidden, latent_dim)")
        hidden, k = A.shape
        c = check_tensor("c", c, shape=(hidden,), what="(one bias per hidden unit)")
        B = check_tensor("B", B, shape=(None, hidden), what="of shape (data_dim, hidden)")
        b = check_tensor("b", b, shape=(B.shape[0],), what="(one offset per data dimension)")
        for name, t in (("c", c), ("B", B), ("b", b)):
            if t.dtype != A.dtype or t.device != A.device:
                raise ValueError(f"{name} must have the dtype and device of A ({A.dtype}, {A.device}), "
                                 f"got {t.dtype} on {t.device}")
        self.A, self.c, self.B, self.b = A, c, B, b
        self.sigma2 = torch.tensor(check_positive("sigma2", sigma2), dtype=A.dtype, device=A.device)

    @property
    def latent_dim(self) -> int:
        return self.A.shape[1]

    @property
    def data_dim(self) -> int:
        return self.B.shape[0]

    @classmethod
    def random(cls, data_dim: int = 8, latent_dim: int = 2, hidden: int = 16, sigma2: float = 0.05,
               generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> NonlinearGaussian:
        """A random model: A_ij ~ N(0, 4 / k), c_j ~ N(0, 1), B_ij ~ N(0, 1 / hidden), b = 0.

        The large first-layer weights put the tanh units in their curved and saturated regimes
        over the prior's range, so posteriors bend and can have several modes; the 1 / hidden
        scaling gives each data dimension a signal variance of order one. Drawn in the order A,
        c, B with `generator` (on the CPU).
        """
        d = check_int("data_dim", data_dim, low=1)
        k = check_int("latent_dim", latent_dim, low=1)
        h = check_int("hidden", hidden, low=1)
        sigma2 = check_positive("sigma2", sigma2)
        check_generator(generator)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        A = 2.0 * torch.randn(h, k, generator=generator, dtype=dtype) / math.sqrt(k)
        c = torch.randn(h, generator=generator, dtype=dtype)
        B = torch.randn(d, h, generator=generator, dtype=dtype) / math.sqrt(h)
        return cls(A, c, B, torch.zeros(d, dtype=dtype), sigma2)

    def _latents(self, z, name: str = "z", rows: int | None = None) -> torch.Tensor:
        z = check_latents(name, z, self.latent_dim, rows=rows)
        return z.to(dtype=self.A.dtype, device=self.A.device)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """f(z) = B tanh(A z + c) + b: z (..., k) gives (..., d)."""
        z = self._latents(z)
        return torch.tanh(z @ self.A.T + self.c) @ self.B.T + self.b

    # --- the model interface (without encode) ------------------------------------------------

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mean, logvar)` of p(x | z) = N(f(z), sigma2 I); z (..., k) gives each (..., d)."""
        mean = self.mean(z)
        return mean, torch.log(self.sigma2).expand_as(mean)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats, summed over the data dimensions; x (N, d) and z (..., N, k) give (..., N)."""
        x = check_data("x", x, dim=self.data_dim).to(dtype=self.A.dtype, device=self.A.device)
        z = self._latents(z, rows=x.shape[0])
        mean, logvar = self.decode(z)
        return gaussian_log_prob(x, mean, logvar)

    def log_pz(self, z: torch.Tensor) -> torch.Tensor:
        """The prior log N(z; 0, I) in nats, summed over the latent dimensions: z (..., k) gives (...)."""
        return gaussian_log_prob(self._latents(z), 0.0, 0.0)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, return_latents: bool = False,
               noise: bool = True):
        """Ancestral sampling: z ~ N(0, I), then x = f(z) (+ noise ~ N(0, sigma2 I) when `noise`).

        Returns x (num_samples, d), or `(x, z)` when `return_latents`. The latents are drawn first,
        then the noise, both with `generator` (on A's device).
        """
        num_samples = check_int("num_samples", num_samples, low=1)
        check_generator(generator)
        check_bool("return_latents", return_latents)
        check_bool("noise", noise)
        opts = dict(generator=generator, dtype=self.A.dtype, device=self.A.device)
        z = torch.randn(num_samples, self.latent_dim, **opts)
        x = self.mean(z)
        if noise:
            x = x + torch.randn(num_samples, self.data_dim, **opts) * self.sigma2.sqrt()
        return (x, z) if return_latents else x

    def __repr__(self) -> str:
        return (f"NonlinearGaussian(data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
                f"hidden={self.A.shape[0]}, sigma2={self.sigma2.item():g})")
