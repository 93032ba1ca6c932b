"""The linear-Gaussian latent variable model: one class behind chapter 2's toy, PPCA and factor analysis.

Taught in: chapter 2 (a latent variable model whose exact log p(x) is known, the yardstick for
naive Monte Carlo) and chapter 3 (probabilistic PCA and factor analysis). Later chapters measure
their approximations (variational posteriors, ELBOs, encoders) against the exact answers here.

The model::

    z ~ N(0, I_k),    x | z ~ N(W z + b, Psi),    so    x ~ N(b, W W^T + Psi),

with `W` (d, k), the offset `b` (d,) (the decoder bias; the data mean for a fitted model) and
`psi` (d,), the diagonal of Psi. `PPCA` is the isotropic case Psi = sigma2 I; `FactorAnalysis`
lets every dimension have its own variance. Both are thin subclasses: every formula is written
once, in `LinearGaussian`.

Conventions. Log-densities are in nats, one value per example, summed over the data dimensions
(on pixel intensities they are continuous densities and can be positive). Tensors follow the
dtype and device of `W`: inputs are moved there, results come back there. Nothing is detached,
so gradients flow to `W`, `b` and `psi` (chapter 3 optimises through `ppca_log_likelihood`).

Computation. The d x d covariance C is never inverted. With A = Psi^{-1/2} W and the k x k
matrix G = I + A^T A = I + W^T Psi^{-1} W (the posterior precision)::

    C^{-1}  = Psi^{-1} - Psi^{-1} W G^{-1} W^T Psi^{-1}      (Woodbury identity)
    log|C|  = log|Psi| + log|G|                               (matrix determinant lemma)

so log p(x) costs O(N d k + d k^2). For PPCA, G = M / sigma2 with Tipping and Bishop's
M = W^T W + sigma2 I.

The model interface (what Part II's encoders, decoders and estimators rely on; every model
with a latent variable implements it):

- `encode(x) -> (mu, logvar)`, each (N, k): the best diagonal Gaussian approximation of the exact
  posterior p(z | x) in the sense of KL(q || p(z | x)): the posterior mean, and as log-variances
  the log of 1 / diag(posterior precision). Not the log of the diagonal of the posterior
  covariance, which is larger whenever the latent dimensions are correlated a posteriori.
- `decode(z) -> (mean, logvar)` of p(x | z): mean = z W^T + b, broadcast over the leading
  dimensions of z (..., k) -> (..., d), and logvar = log psi, expanded to the same shape.
- `log_px_given_z(x, z)`: log p(x | z) in nats; x (N, d) and z (..., N, k) give (..., N).
- `log_pz(z)`: the prior N(0, I), log p(z) in nats; z (..., k) gives (...).
- `log_prob(x)`: the exact log p(x), (N,); `sample(num_samples, ...)`: ancestral draws.
"""
from __future__ import annotations

import math

import torch

from ..core.distributions import LOG_2PI, gaussian_log_prob, log_mean_exp
from ..core.validation import (
    check_bool,
    check_data,
    check_generator,
    check_int,
    check_latents,
    check_positive,
    check_real,
    check_tensor,
)

__all__ = [
    "LinearGaussian",
    "PPCA",
    "FactorAnalysis",
    "random_linear_gaussian",
    "linear_conditional_log_prob",
    "naive_mc_log_prob",
    "ppca_log_likelihood",
    "ppca_posterior",
]


def _check_loadings(W) -> torch.Tensor:
    W = check_tensor("W", W, ndim=2, what="of shape (data_dim, latent_dim)")
    if W.shape[0] < 1 or W.shape[1] < 1:
        raise ValueError(f"W must have shape (data_dim, latent_dim) with both >= 1, got shape {tuple(W.shape)}")
    return W


def _check_offset(b, W: torch.Tensor) -> torch.Tensor:
    d = W.shape[0]
    b = check_tensor("b", b, shape=(d,), what=f"(one offset per data dimension, d = {d} rows of W)")
    return b.to(dtype=W.dtype, device=W.device)


def _check_variance(name: str, value, like: torch.Tensor) -> torch.Tensor:
    """One positive variance (a number or a one-element tensor) as a 0-d tensor like `like`, gradients kept."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be one positive number (a variance), got a tensor of shape "
                             f"{tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point number, got a tensor of dtype {value.dtype}")
        check_positive(name, value.detach())
        return value.reshape(()).to(dtype=like.dtype, device=like.device)
    return torch.tensor(check_positive(name, value), dtype=like.dtype, device=like.device)


class LinearGaussian:
    """z ~ N(0, I_k), x | z ~ N(W z + b, diag(psi)); the exact marginal is N(b, W W^T + diag(psi)).

    Taught in: chapters 2 and 3. See the module docstring for the model interface.

    Parameters
    ----------
    W : torch.Tensor
        Shape (d, k): the loadings, the linear map from latent to data space. Sets the dtype
        and device of everything the model computes.
    b : torch.Tensor
        Shape (d,): the offset (decoder bias), which is also the mean of x.
    psi : torch.Tensor or float
        Shape (d,): the noise variances, the diagonal of Psi (all > 0); or one positive number
        for isotropic noise Psi = psi I.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, psi):
        self.W = _check_loadings(W)
        self.b = _check_offset(b, self.W)
        d = self.data_dim
        if isinstance(psi, torch.Tensor) and psi.dim() >= 1:
            psi = check_tensor("psi", psi, shape=(d,), what=f"(one noise variance per data dimension, d = {d})")
            if not bool((psi.detach() > 0).all()):
                raise ValueError(f"psi must hold positive variances, got a smallest value of "
                                 f"{float(psi.detach().min()):g}")
            psi = psi.to(dtype=self.W.dtype, device=self.W.device)
        else:
            psi = _check_variance("psi", psi, self.W).expand(d)
        self.psi = psi

    # --- sizes -------------------------------------------------------------------------------

    @property
    def data_dim(self) -> int:
        """d, the number of data dimensions (rows of W)."""
        return self.W.shape[0]

    @property
    def latent_dim(self) -> int:
        """k, the number of latent dimensions (columns of W)."""
        return self.W.shape[1]

    def __repr__(self) -> str:
        psi = self.psi.detach()
        lo, hi = float(psi.min()), float(psi.max())
        noise = f"psi={lo:.4g} (isotropic)" if lo == hi else f"psi in [{lo:.4g}, {hi:.4g}]"
        return (f"{type(self).__name__}(data_dim={self.data_dim}, latent_dim={self.latent_dim}, {noise}, "
                f"dtype={self.W.dtype}, device={self.W.device})")

    # --- helpers -----------------------------------------------------------------------------

    def _data(self, x, name: str = "x") -> torch.Tensor:
        x = check_data(name, x, dim=self.data_dim)
        return x.to(dtype=self.W.dtype, device=self.W.device)

    def _latents(self, z, name: str = "z", rows: int | None = None) -> torch.Tensor:
        z = check_latents(name, z, self.latent_dim, rows=rows)
        return z.to(dtype=self.W.dtype, device=self.W.device)

    def _precision_factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A = Psi^{-1/2} W (d, k) and the Cholesky factor L of the posterior precision G = I + A^T A."""
        A = self.W / self.psi.sqrt()[:, None]
        G = torch.eye(self.latent_dim, dtype=self.W.dtype, device=self.W.device) + A.T @ A
        return A, torch.linalg.cholesky(G)

    # --- the marginal p(x) -------------------------------------------------------------------

    def covariance(self) -> torch.Tensor:
        """The marginal covariance W W^T + diag(psi), (d, d). For checks and small d; no method forms it."""
        return self.W @ self.W.T + torch.diag(self.psi)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p(x) = log N(x; b, W W^T + diag(psi)) for each row of `x` (N, d): (N,), nats.

        With ``r = Psi^{-1/2} (x - b)``, the squared Mahalanobis distance is ``|r|^2 - |L^{-1} A^T r|^2``
        and ``log|C| = sum_i log psi_i + 2 sum_j log L_jj`` (see the module docstring).
        """
        x = self._data(x)
        A, L = self._precision_factor()
        r = (x - self.b) / self.psi.sqrt()  # (N, d)
        proj = torch.linalg.solve_triangular(L, (r @ A).T, upper=False)  # (k, N): L^{-1} A^T r
        quad = (r * r).sum(1) - (proj * proj).sum(0)
        logdet = torch.log(self.psi).sum() + 2.0 * torch.log(torch.diagonal(L)).sum()
        return -0.5 * (self.data_dim * LOG_2PI + logdet + quad)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, return_latents: bool = False,
               noise: bool = True):
        """Ancestral sampling: z ~ N(0, I), then x = W z + b (+ noise ~ N(0, diag(psi)) when `noise`).

        Returns x (num_samples, d), or `(x, z)` with z (num_samples, k) when `return_latents`.
        `noise=False` returns the means W z + b of p(x | z): what image grids show. The latents are
        drawn first, then the noise, both with `generator` (on W's device).
        """
        num_samples = check_int("num_samples", num_samples, low=1)
        check_generator(generator)
        check_bool("return_latents", return_latents)
        check_bool("noise", noise)
        opts = dict(generator=generator, dtype=self.W.dtype, device=self.W.device)
        z = torch.randn(num_samples, self.latent_dim, **opts)
        x = z @ self.W.T + self.b
        if noise:
            x = x + torch.randn(num_samples, self.data_dim, **opts) * self.psi.sqrt()
        return (x, z) if return_latents else x

    # --- the posterior p(z | x) --------------------------------------------------------------

    def _posterior_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The posterior mean (N, k), the Cholesky factor L of the precision G, and A = Psi^{-1/2} W."""
        x = self._data(x)
        A, L = self._precision_factor()
        r = (x - self.b) / self.psi.sqrt()
        mean = torch.cholesky_solve((r @ A).T, L).T  # rows: (G^{-1} A^T r)^T
        return mean, L, A

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact posterior p(z | x) = N(mean, cov): `mean` (N, k), `cov` (k, k), shared by every row.

        cov = G^{-1} with the precision G = I + W^T Psi^{-1} W, and mean = (x - b) Psi^{-1} W G^{-1}.
        """
        mean, L, _ = self._posterior_parts(x)
        eye = torch.eye(self.latent_dim, dtype=self.W.dtype, device=self.W.device)
        cov = torch.cholesky_solve(eye, L)
        return mean, 0.5 * (cov + cov.T)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: b + W E[z | x], (N, d)."""
        mean, _ = self.posterior(x)
        return mean @ self.W.T + self.b

    # --- the model interface of Part II ------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mu, logvar)`, each (N, k): the best diagonal Gaussian q(z | x) for the exact posterior.

        `mu` is the posterior mean; `logvar` is log(1 / diag(G)) with G = I + W^T Psi^{-1} W the
        posterior precision, the minimiser of KL(q || p(z | x)) over diagonal Gaussians. (The
        diagonal of the posterior covariance G^{-1} is not: it is the forward-KL answer.)
        """
        mean, _, A = self._posterior_parts(x)
        precision_diag = 1.0 + (A * A).sum(0)  # diag(I + A^T A), (k,)
        return mean, (-torch.log(precision_diag)).expand_as(mean)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mean, logvar)` of p(x | z) = N(z W^T + b, diag(psi)); z (..., k) gives each (..., d)."""
        z = self._latents(z)
        mean = z @ self.W.T + self.b
        return mean, torch.log(self.psi).expand_as(mean)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats, summed over the data dimensions; x (N, d) and z (..., N, k) give (..., N).

        For instance z (N, k) gives (N,), and z (S, N, k), S latent draws per example, gives (S, N).
        """
        x = self._data(x)
        z = self._latents(z, rows=x.shape[0])
        mean, logvar = self.decode(z)
        return gaussian_log_prob(x, mean, logvar)

    def log_pz(self, z: torch.Tensor) -> torch.Tensor:
        """The prior log N(z; 0, I) in nats, summed over the latent dimensions: z (..., k) gives (...)."""
        z = self._latents(z)
        return gaussian_log_prob(z, 0.0, 0.0)

    # --- naive Monte Carlo over the prior (chapter 2) ----------------------------------------

    def _log_mean_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 3:
            raise ValueError(f"z must be a 3-D tensor of shape (S, N, latent_dim) (S prior draws per row of x), "
                             f"got shape {tuple(z.shape)}")
        return log_mean_exp(self.log_px_given_z(x, z), dim=0)  # log (1/S) sum_s p(x | z_s)

    def naive_mc_log_prob(self, x: torch.Tensor, num_samples: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Estimate log p(x) by naive Monte Carlo over the prior: log (1/S) sum_s p(x | z_s), z_s ~ N(0, I).

        `num_samples` = S fresh draws for every row of `x` (N, d); returns (N,), nats per example.
        The average is over densities, in log space (log-mean-exp). The estimate of p(x) is
        unbiased; its log is biased downwards (Jensen: E[log p_hat] <= log p(x)).
        """
        x = self._data(x)
        num_samples = check_int("num_samples", num_samples, low=1)
        check_generator(generator)
        z = torch.randn(num_samples, x.shape[0], self.latent_dim, generator=generator,
                        dtype=self.W.dtype, device=self.W.device)
        return self._log_mean_likelihood(x, z)

    def naive_mc_log_relative_variance(self, x: torch.Tensor) -> torch.Tensor:
        """log( Var_{z ~ p(z)}[p(x | z)] / p(x)^2 ) for each row of `x`: (N,), exact, no sampling.

        With S prior draws the estimate p_hat(x) has relative variance exp(this) / S, so exp(this)
        is about the number of draws needed for a relative error of 100%. Closed form: per data
        dimension, N(x_i; m, psi_i)^2 = (4 pi psi_i)^(-1/2) N(x_i; m, psi_i / 2), so
        E_prior[p(x | z)^2] = prod_i (4 pi psi_i)^(-1/2) * N(x; b, W W^T + diag(psi) / 2);
        divide by p(x)^2 and subtract 1.
        """
        x = self._data(x)
        half = LinearGaussian(self.W, self.b, self.psi / 2)
        log_ratio = -0.5 * torch.log(4 * math.pi * self.psi).sum() + half.log_prob(x) - 2 * self.log_prob(x)
        # log(exp(a) - 1), stable for small and large a (a >= 0 by Cauchy-Schwarz)
        a = log_ratio.clamp_min(torch.finfo(log_ratio.dtype).tiny)
        return torch.where(a > 30, a + torch.log1p(-torch.exp(-a)), torch.log(torch.expm1(a)))


class PPCA(LinearGaussian):
    """Probabilistic PCA: the isotropic linear-Gaussian model, x ~ N(b, W W^T + sigma2 I).

    Taught in: chapter 3. Fit it with `fit_ppca` (closed form); or build it from `W` (d, k),
    `b` (d,) and `sigma2` (one positive number or 0-d tensor, kept with its gradient).
    `sigma2` is a 0-d tensor; `eigenvalues` (d,) holds the sample covariance's eigenvalues,
    largest first, when the model comes from `fit_ppca` (None otherwise).
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma2, eigenvalues: torch.Tensor | None = None):
        W = _check_loadings(W)
        self.sigma2 = _check_variance("sigma2", sigma2, W)
        super().__init__(W, b, self.sigma2.expand(W.shape[0]))
        if eigenvalues is not None:
            eigenvalues = check_tensor("eigenvalues", eigenvalues, shape=(W.shape[0],))
        self.eigenvalues = eigenvalues

    def __repr__(self) -> str:
        return (f"PPCA(data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
                f"sigma2={float(self.sigma2):.4g}, dtype={self.W.dtype})")


class FactorAnalysis(LinearGaussian):
    """Factor analysis: x ~ N(b, W W^T + diag(psi)), one noise variance per data dimension.

    Taught in: chapter 3. Fit it with `fit_factor_analysis` (EM); `history` then holds the mean
    training log-likelihood in nats per example, `history[0]` at the initialisation (before any
    EM step) and `history[t]` after t steps; `var_floor` is the lower bound EM kept psi above
    (0 when built directly).
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, psi, var_floor: float = 0.0,
                 history: list[float] | None = None):
        super().__init__(W, b, psi)
        self.var_floor = check_real("var_floor", var_floor, low=0.0)
        self.history = list(history) if history is not None else []

    def __repr__(self) -> str:
        return (f"FactorAnalysis(data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
                f"steps={max(len(self.history) - 1, 0)}, var_floor={self.var_floor:g})")


def random_linear_gaussian(latent_dim: int, data_dim: int, sigma2: float = 0.1,
                           generator: torch.Generator | None = None,
                           dtype: torch.dtype = torch.float64) -> PPCA:
    """A random isotropic linear-Gaussian model (a `PPCA`) for experiments.

    W_ij ~ N(0, 1 / latent_dim), b_i ~ N(0, 1), psi = sigma2.

    The 1 / latent_dim scaling gives every model the same total signal, E[diag(W W^T)] = 1 for
    any k, so models with different k produce data of the same scale and differ only in how
    many latent directions share it. W is drawn first, then b, with `generator` (on the CPU).
    """
    k = check_int("latent_dim", latent_dim, low=1)
    d = check_int("data_dim", data_dim, low=1)
    sigma2 = check_positive("sigma2", sigma2)
    check_generator(generator)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    W = torch.randn(d, k, generator=generator, dtype=dtype) / math.sqrt(k)
    b = torch.randn(d, generator=generator, dtype=dtype)
    return PPCA(W, b, sigma2)


# --- the functional forms: references of the chapter 2 and 3 exercises ----------------------------
# Each builds the model and calls its method, so there is no second copy of any formula.

def linear_conditional_log_prob(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                                sigma2) -> torch.Tensor:
    """log p(x | z) = log N(x; W z + b, sigma2 I) in nats, summed over the data dimensions.

    `x` (N, d) and `z` (..., N, k) (for instance (N, k), or (S, N, k) for S latent draws per
    example) give z's leading shape (..., N). Reference of the chapter 2 exercise
    `conditional_log_prob`; it is `LinearGaussian(W, b, sigma2).log_px_given_z(x, z)`.
    """
    return LinearGaussian(W, b, _check_variance("sigma2", sigma2, _check_loadings(W))).log_px_given_z(x, z)


def naive_mc_log_prob(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                      sigma2) -> torch.Tensor:
    """The naive Monte Carlo estimate log (1/S) sum_s p(x | z_s) from given prior draws.

    `z` (S, N, k) holds S draws from N(0, I) for each of the N rows of `x` (N, d); returns (N,),
    nats per example. The average is over densities, not log-densities, with log-mean-exp, so it
    neither underflows nor turns into the mean of the logs. Reference of the chapter 2 exercise
    `naive_mc_log_prob`; `LinearGaussian.naive_mc_log_prob` draws z itself.
    """
    model = LinearGaussian(W, b, _check_variance("sigma2", sigma2, _check_loadings(W)))
    z = check_tensor("z", z, ndim=3, what="of shape (S, N, latent_dim)")
    return model._log_mean_likelihood(x, z)


def ppca_log_likelihood(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, sigma2) -> torch.Tensor:
    """log N(x; b, W W^T + sigma2 I) for each row of `x` (N, d): (N,), nats.

    Differentiable in W, b and sigma2; computed in W's dtype. The reference of the chapter 3
    exercise `ppca_log_likelihood`; it is `PPCA(W, b, sigma2).log_prob(x)`.
    """
    return PPCA(W, b, sigma2).log_prob(x)


def ppca_posterior(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, sigma2) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact PPCA posterior N(M^{-1} W^T (x - b), sigma2 M^{-1}), M = W^T W + sigma2 I: `(mean, cov)`.

    mean (N, k) and cov (k, k) (the covariance does not depend on x). The reference of the
    chapter 3 exercise `ppca_posterior`; it is `PPCA(W, b, sigma2).posterior(x)`.
    """
    return PPCA(W, b, sigma2).posterior(x)
