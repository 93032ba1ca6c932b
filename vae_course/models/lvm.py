"""A toy latent variable model whose exact log p(x) is known for any latent dimension.

Taught in: chapter 2 (latent variable models; naive Monte Carlo over the prior).

The model is linear and Gaussian:

    z ~ N(0, I_k),    x | z ~ N(W z + b, sigma2 I_d),    so    x ~ N(b, W W^T + sigma2 I_d).

Sampling it is ancestral (first z, then x given z); its marginal likelihood is a Gaussian
integral with a closed form, which makes it the yardstick for estimators of log p(x) that
chapters 2 and later must measure. All log-densities are in nats, per example, summed over
the data dimensions. Use float64 where estimates are compared with the exact answer.
"""
from __future__ import annotations

import math
from numbers import Real

import torch

from ..core.distributions import LOG_2PI, gaussian_log_prob, log_mean_exp

__all__ = [
    "LinearGaussianLVM",
    "random_lvm",
    "linear_conditional_log_prob",
    "naive_mc_log_prob",
]


# --- validation ----------------------------------------------------------------------------------

def _float_tensor(name: str, value, ndim: int, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {what}, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor {what}, got dtype {value.dtype}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D {what}, got shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        bad = "NaN" if torch.isnan(value).any() else "inf"
        raise ValueError(f"{name} must be finite, but it contains {bad}")
    return value


def _positive(name: str, value) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single positive number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def _count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_params(W, b, sigma2) -> tuple[torch.Tensor, torch.Tensor, float]:
    W = _float_tensor("W", W, 2, "of shape (data_dim, latent_dim)")
    d, k = W.shape
    if d < 1 or k < 1:
        raise ValueError(f"W must have shape (data_dim, latent_dim) with both >= 1, got {tuple(W.shape)}")
    b = _float_tensor("b", b, 1, f"of shape ({d},) (one offset per data dimension)")
    if b.shape[0] != d:
        raise ValueError(f"b must have shape ({d},) to match W of shape {tuple(W.shape)}, got {tuple(b.shape)}")
    return W, b.to(W.dtype), _positive("sigma2", sigma2)


def _check_x(x, d: int) -> torch.Tensor:
    x = _float_tensor("x", x, 2, f"of shape (N, {d})")
    if x.shape[1] != d:
        raise ValueError(f"x must have shape (N, {d}) (data_dim = {d}), got {tuple(x.shape)}")
    return x


# --- functions (the exercises of chapter 2 have these signatures) --------------------------------

def linear_conditional_log_prob(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                                sigma2) -> torch.Tensor:
    """log p(x | z) = log N(x; W z + b, sigma2 I) in nats, summed over the data dimensions.

    `x` has shape (N, d) and `z` shape (..., N, k) (for instance (N, k), or (S, N, k) for S
    latent draws per example); the result has z's leading shape (..., N).
    Reference of the chapter 2 exercise `conditional_log_prob`.
    """
    W, b, sigma2 = _check_params(W, b, sigma2)
    d, k = W.shape
    x = _check_x(x, d)
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise TypeError(f"z must be a floating-point torch.Tensor of shape (..., N, {k}), got {type(z).__name__}")
    if z.dim() < 2 or z.shape[-1] != k or z.shape[-2] != x.shape[0]:
        raise ValueError(f"z must have shape (..., N, {k}) with N = {x.shape[0]} (the rows of x), got {tuple(z.shape)}")
    mean = z @ W.T + b  # (..., N, d)
    return gaussian_log_prob(x, mean, math.log(sigma2))


def naive_mc_log_prob(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                      sigma2) -> torch.Tensor:
    """The naive Monte Carlo estimate of log p(x) from prior draws: log (1/S) sum_s p(x | z_s).

    `z` has shape (S, N, k): S draws from the prior N(0, I) for each of the N rows of `x` (N, d).
    Returns shape (N,), nats per example. The average is taken over densities, not log-densities,
    with log-mean-exp, so it neither underflows nor turns into a Jensen lower bound of the estimate.
    Reference of the chapter 2 exercise `naive_mc_log_prob`.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 3:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z must be a 3-D tensor of shape (S, N, latent_dim), got {shape}")
    log_lik = linear_conditional_log_prob(x, z, W, b, sigma2)  # (S, N)
    return log_mean_exp(log_lik, dim=0)


# --- the model ---------------------------------------------------------------------------------

class LinearGaussianLVM:
    """z ~ N(0, I_k), x | z ~ N(W z + b, sigma2 I_d); the exact marginal is N(b, W W^T + sigma2 I_d).

    Taught in: chapter 2.

    Parameters
    ----------
    W : torch.Tensor
        Shape (d, k): the linear map from latent to data space.
    b : torch.Tensor
        Shape (d,): the offset, which is also the mean of x.
    sigma2 : float
        The variance of the isotropic observation noise (positive).
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma2):
        self.W, self.b, self.sigma2 = _check_params(W, b, sigma2)

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    def __repr__(self) -> str:
        return (f"LinearGaussianLVM(data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
                f"sigma2={self.sigma2:g}, dtype={self.W.dtype})")

    def covariance(self) -> torch.Tensor:
        """The marginal covariance W W^T + sigma2 I of x, shape (d, d)."""
        return self.W @ self.W.T + self.sigma2 * torch.eye(self.data_dim, dtype=self.W.dtype, device=self.W.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling: z ~ p(z), then x ~ p(x | z). Returns `(x (n, d), z (n, k))`."""
        n = _count("n", n)
        _check_generator(generator)
        opts = dict(generator=generator, dtype=self.W.dtype, device=self.W.device)
        z = torch.randn(n, self.latent_dim, **opts)
        noise = torch.randn(n, self.data_dim, **opts)
        x = z @ self.W.T + self.b + math.sqrt(self.sigma2) * noise
        return x, z

    def conditional_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats, summed over data dimensions; z of shape (..., N, k) gives (..., N)."""
        return linear_conditional_log_prob(x, z, self.W, self.b, self.sigma2)

    def _inner(self) -> torch.Tensor:
        # M = W^T W + sigma2 I_k, the k x k matrix behind the determinant lemma and the posterior.
        k = self.latent_dim
        return self.W.T @ self.W + self.sigma2 * torch.eye(k, dtype=self.W.dtype, device=self.W.device)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p(x) = log N(x; b, W W^T + sigma2 I), per example (N,), in nats.

        Computed with k x k matrices only (the matrix determinant lemma and Woodbury identity):
        log|C| = (d - k) log sigma2 + log|M| and C^{-1} = (I - W M^{-1} W^T) / sigma2, with
        M = W^T W + sigma2 I_k. So it stays cheap for d = 784.
        """
        x = _check_x(x, self.data_dim).to(self.W.dtype)
        d, k = self.W.shape
        L = torch.linalg.cholesky(self._inner())
        r = x - self.b  # (N, d)
        proj = torch.linalg.solve_triangular(L, (r @ self.W).T, upper=False)  # L^{-1} W^T r, (k, N)
        quad = ((r * r).sum(-1) - (proj * proj).sum(0)) / self.sigma2
        logdet = (d - k) * math.log(self.sigma2) + 2.0 * torch.log(torch.diagonal(L)).sum()
        return -0.5 * (d * LOG_2PI + logdet + quad)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact posterior p(z | x) = N(mean, cov): `mean` (N, k), `cov` (k, k) (shared by all x).

        mean = M^{-1} W^T (x - b), cov = sigma2 M^{-1}, with M = W^T W + sigma2 I_k.
        """
        x = _check_x(x, self.data_dim).to(self.W.dtype)
        M = self._inner()
        mean = torch.linalg.solve(M, (x - self.b) @ self.W, left=False)  # rows: (M^{-1} W^T r)^T, M symmetric
        cov = self.sigma2 * torch.linalg.inv(M)
        return mean, 0.5 * (cov + cov.T)

    def naive_mc_log_relative_variance(self, x: torch.Tensor) -> torch.Tensor:
        """log( Var_{z ~ p(z)}[p(x | z)] / p(x)^2 ), per example (N,): exact, no sampling.

        With S prior draws the estimate p_hat(x) has relative variance exp(this) / S, so
        exp(this) is roughly the number of draws needed for a relative error of 100%.
        Closed form: p(x | z)^2 = (4 pi sigma2)^(-d/2) N(x; W z + b, sigma2/2 I), whose prior
        average is (4 pi sigma2)^(-d/2) N(x; b, W W^T + sigma2/2 I); divide by p(x)^2, subtract 1.
        """
        x = _check_x(x, self.data_dim).to(self.W.dtype)
        d = self.data_dim
        half = LinearGaussianLVM(self.W, self.b, self.sigma2 / 2)
        log_ratio = -0.5 * d * math.log(4 * math.pi * self.sigma2) + half.log_prob(x) - 2 * self.log_prob(x)
        # log(exp(a) - 1), stable for small and large a (a >= 0 by Cauchy-Schwarz)
        a = log_ratio.clamp_min(1e-300)
        return torch.where(a > 30, a + torch.log1p(-torch.exp(-a)), torch.log(torch.expm1(a)))

    def naive_mc_log_prob(self, x: torch.Tensor, num_samples: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Estimate log p(x) by naive Monte Carlo over the prior: log (1/S) sum_s p(x | z_s), z_s ~ p(z).

        Fresh draws for every row of `x`; returns shape (N,), nats per example. The estimate
        of p(x) is unbiased; its log is biased downwards (Jensen: E[log p_hat] <= log p(x)).
        """
        x = _check_x(x, self.data_dim).to(self.W.dtype)
        num_samples = _count("num_samples", num_samples)
        _check_generator(generator)
        z = torch.randn(num_samples, x.shape[0], self.latent_dim, generator=generator,
                        dtype=self.W.dtype, device=self.W.device)
        return naive_mc_log_prob(x, z, self.W, self.b, self.sigma2)


def random_lvm(latent_dim: int, data_dim: int, sigma2: float = 0.1,
               generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> LinearGaussianLVM:
    """A random `LinearGaussianLVM` for experiments: W_ij ~ N(0, 1 / latent_dim), b_i ~ N(0, 1).

    The 1 / latent_dim scaling gives every latent dimension the same total signal:
    E[diag(W W^T)] = 1 for any k, so models with different k produce data of the same scale
    and differ only in how many latent directions share it.
    """
    k = _count("latent_dim", latent_dim)
    d = _count("data_dim", data_dim)
    sigma2 = _positive("sigma2", sigma2)
    _check_generator(generator)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    W = torch.randn(d, k, generator=generator, dtype=dtype) / math.sqrt(k)
    b = torch.randn(d, generator=generator, dtype=dtype)
    return LinearGaussianLVM(W, b, sigma2)
