"""Linear latent variable models with exact answers: PCA, probabilistic PCA, factor analysis.

Taught in: chapter 3 (Linear latent variable models). Later chapters measure their
approximations (variational posteriors, ELBOs, encoders) against the exact posteriors and
log-likelihoods computed here.

The model shared by PPCA and factor analysis is::

    z ~ N(0, I_k),    x | z ~ N(W z + mu, Psi),    so    x ~ N(mu, W W^T + Psi),

with Psi = sigma2 * I (PPCA) or Psi = diag(psi) (factor analysis). Everything is computed in
float64 (float32 input is accepted and converted; results are float64). Log-likelihoods are
in nats, one value per example, summed over the d data dimensions; on pixel intensities they
are continuous densities and can be positive.

The d x d covariance is never inverted: with the k x k matrix G = I + W^T Psi^{-1} W::

    C^{-1}  = Psi^{-1} - Psi^{-1} W G^{-1} W^T Psi^{-1}      (Woodbury identity)
    log|C|  = log|Psi| + log|G|                               (matrix determinant lemma)

so a log-likelihood costs O(N d k + d k^2). For PPCA, G = M / sigma2 with Tipping and
Bishop's M = W^T W + sigma2 I.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

__all__ = [
    "PCAResult", "pca", "PPCA", "fit_ppca", "ppca_log_likelihood", "ppca_posterior",
    "principal_angles", "LinearGaussian",
]

LOG_2PI = math.log(2.0 * math.pi)


# --- input checks ------------------------------------------------------------------------------

def _check_data(x, name: str = "x", dim: int | None = None, min_rows: int = 2) -> torch.Tensor:
    """A finite 2-D float64 tensor (N, d) with N >= min_rows (and d == dim when given)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor of shape (N, d) (one example per row), "
                         f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} rows (examples), got {x.shape[0]}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (the model's data dimension), got {x.shape[1]}")
    x = x.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        bad = "NaN" if torch.isnan(x).any() else "inf"
        raise ValueError(f"{name} contains {bad}; expected finite values only")
    return x


def _check_latent_dim(latent_dim, d: int) -> int:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, numbers.Integral):
        raise TypeError(f"latent_dim must be an integer, got {type(latent_dim).__name__}")
    latent_dim = int(latent_dim)
    if not 1 <= latent_dim <= d - 1:
        raise ValueError(f"latent_dim must be between 1 and d - 1 = {d - 1} (d = {d} data dimensions), "
                         f"got {latent_dim}")
    return latent_dim


def _check_count(n, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return int(n)


def _centered_covariance(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and the maximum-likelihood sample covariance (1/N normalisation), float64."""
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / x.shape[0]


# --- PCA ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PCAResult:
    """Principal components of a data set, from `pca(x, k)`.

    `components` (d, k) has orthonormal columns, the top-k eigenvectors of the sample
    covariance; `explained_variance` (k,) their eigenvalues (1/N normalisation, as the
    maximum-likelihood covariance); `total_variance` the trace of the covariance.
    """

    components: torch.Tensor
    explained_variance: torch.Tensor
    mean: torch.Tensor
    total_variance: float

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        """Fraction of the total variance each component explains, (k,)."""
        return self.explained_variance / self.total_variance

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates of `x` (N, d) in the principal subspace, (N, k)."""
        x = _check_data(x, dim=self.mean.shape[0], min_rows=1)
        return (x - self.mean) @ self.components

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """Points (N, d) in data space for coordinates `z` (N, k)."""
        z = _check_data(z, name="z", dim=self.components.shape[1], min_rows=1)
        return self.mean + z @ self.components.T

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection of `x` onto the principal subspace (through the mean), (N, d)."""
        return self.inverse_transform(self.transform(x))


def pca(x: torch.Tensor, k: int) -> PCAResult:
    """PCA by the singular value decomposition of the centred data (float64). Taught in: chapter 3.

    The right singular vectors of X - mean are the eigenvectors of the covariance, and the
    squared singular values divided by N its eigenvalues. Signs of components are fixed so
    that each column's largest-magnitude entry is positive (the SVD leaves them arbitrary).
    """
    x = _check_data(x)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    k = int(k)
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k must be between 1 and min(N, d) = {min(x.shape)}, got {k}")
    mean = x.mean(0)
    xc = x - mean
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    var = s**2 / x.shape[0]
    comps = vh[:k].T.clone()
    idx = comps.abs().argmax(0)
    signs = torch.sign(comps[idx, torch.arange(k)])
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    return PCAResult(comps, var[:k].clone(), mean, float(var.sum()))


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spaces of `a` (d, k) and `b` (d, m).

    Zero angles mean the subspaces coincide, whatever basis (rotation, scaling) each uses.
    Taught in: chapter 3 (the linear autoencoder finds the PCA subspace).
    """
    for name, m in (("a", a), ("b", b)):
        if not isinstance(m, torch.Tensor) or m.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor (d, k) whose columns span a subspace")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    qa, _ = torch.linalg.qr(a.detach().to(torch.float64))
    qb, _ = torch.linalg.qr(b.detach().to(torch.float64))
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.sort(torch.arccos(cos)).values


# --- the linear-Gaussian model -----------------------------------------------------------------

def _gaussian_parts(W: torch.Tensor, noise: torch.Tensor):
    """For C = W W^T + diag(noise): Cholesky factor of G = I + W^T diag(noise)^-1 W and log|C|."""
    k = W.shape[1]
    Wn = W / noise[:, None]
    G = torch.eye(k, dtype=W.dtype, device=W.device) + W.T @ Wn
    L = torch.linalg.cholesky(G)
    logdet = torch.log(noise).sum() + 2.0 * torch.log(torch.diagonal(L)).sum()
    return Wn, L, logdet


@dataclass
class LinearGaussian:
    """z ~ N(0, I), x | z ~ N(W z + mu, diag(noise)): the shared machinery of PPCA and FA."""

    W: torch.Tensor
    mu: torch.Tensor

    @property
    def noise_variance(self) -> torch.Tensor:  # (d,), overridden by the subclasses
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    def covariance(self) -> torch.Tensor:
        """The marginal covariance W W^T + Psi (d, d). For checks and small d; the methods never form it."""
        return self.W @ self.W.T + torch.diag(self.noise_variance)

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats for each row of `x` (N, d), summed over dimensions: shape (N,)."""
        x = _check_data(x, dim=self.data_dim, min_rows=1)
        noise = self.noise_variance
        Wn, L, logdet = _gaussian_parts(self.W, noise)
        xc = x - self.mu
        a = torch.linalg.solve_triangular(L, (xc @ Wn).T, upper=False)  # (k, N)
        quad = (xc**2 / noise).sum(1) - (a**2).sum(0)
        return -0.5 * (self.data_dim * LOG_2PI + logdet + quad)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z | x) = N(mean, cov): `mean` (N, k) and `cov` (k, k), shared by every row."""
        x = _check_data(x, dim=self.data_dim, min_rows=1)
        Wn, L, _ = _gaussian_parts(self.W, self.noise_variance)
        cov = torch.cholesky_inverse(L)
        mean = (x - self.mu) @ Wn @ cov
        return mean, 0.5 * (cov + cov.T)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: mu + W E[z | x], (N, d)."""
        mean, _ = self.posterior(x)
        return self.mu + mean @ self.W.T

    def sample(self, n: int, generator: torch.Generator | None = None,
               noise: bool = True) -> torch.Tensor:
        """Draw `n` examples x = W z + mu (+ noise when `noise`), (n, d) float64.

        `noise=False` returns the means W z + mu of p(x | z): what image grids show.
        """
        n = _check_count(n)
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        x = self.mu + z @ self.W.T
        if noise:
            eps = torch.randn(n, self.data_dim, generator=generator, dtype=torch.float64)
            x = x + eps * self.noise_variance.sqrt()
        return x


# --- probabilistic PCA -------------------------------------------------------------------------

@dataclass
class PPCA(LinearGaussian):
    """A probabilistic PCA model: x ~ N(mu, W W^T + sigma2 I). Build it with `fit_ppca`.

    `eigenvalues` (d,) holds the sample covariance's eigenvalues, largest first, from the fit.
    Taught in: chapter 3.
    """

    sigma2: torch.Tensor = None
    eigenvalues: torch.Tensor | None = None

    @property
    def noise_variance(self) -> torch.Tensor:
        return self.sigma2.expand(self.data_dim)

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_data(x, dim=self.data_dim, min_rows=1)
        return ppca_log_likelihood(x, self.W, self.mu, self.sigma2)

    log_likelihood.__doc__ = LinearGaussian.log_likelihood.__doc__

    def __repr__(self) -> str:
        return (f"PPCA(data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
                f"sigma2={float(self.sigma2):.4g})")


def fit_ppca(x: torch.Tensor, latent_dim: int) -> PPCA:
    """Maximum-likelihood probabilistic PCA in closed form (Tipping and Bishop, 1999).

    With the eigenvalues l_1 >= ... >= l_d and eigenvectors U of the sample covariance
    (1/N normalisation):

    - `sigma2` = the mean of the d - k discarded eigenvalues (the variance the subspace misses);
    - `W` = U_k (L_k - sigma2 I)^{1/2}, unique up to a rotation R (here R = I);
    - `mu` = the data mean.

    `x` is (N, d) with N >= 2 and finite values; `latent_dim` is between 1 and d - 1.
    All results are float64. Taught in: chapter 3.
    """
    x = _check_data(x)
    d = x.shape[1]
    k = _check_latent_dim(latent_dim, d)
    mu, S = _centered_covariance(x)
    evals, evecs = torch.linalg.eigh(S)
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    sigma2 = evals[k:].mean()
    if sigma2 <= evals[0] * d * torch.finfo(torch.float64).eps:  # zero up to rounding
        raise ValueError(f"x varies in at most {k} directions, so sigma2 would be 0 and the likelihood "
                         f"unbounded; use a smaller latent_dim (data rank <= {k}) or add noise")
    Uk = evecs[:, :k]
    idx = Uk.abs().argmax(0)  # fix the arbitrary eigenvector signs, as in pca()
    Uk = Uk * torch.sign(Uk[idx, torch.arange(k)])
    W = Uk * torch.sqrt((evals[:k] - sigma2).clamp_min(0.0))
    return PPCA(W=W, mu=mu, sigma2=sigma2, eigenvalues=evals)


def _check_ppca_args(x, W, mu, sigma2) -> torch.Tensor:
    """Validate the arguments of the functional PPCA API; return sigma2 as a 0-d tensor in W's dtype.

    Nothing is detached or converted, so gradients still flow to W, mu and sigma2.
    """
    for name, t in (("x", x), ("W", W), ("mu", mu)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if W.dim() != 2 or W.shape[1] < 1:
        raise ValueError(f"W must be a 2-D tensor of shape (d, k) with k >= 1, got shape {tuple(W.shape)}")
    d = W.shape[0]
    if x.dim() != 2 or x.shape[1] != d or x.shape[0] < 1:
        raise ValueError(f"x must be a 2-D tensor of shape (N, d) with d = {d} (the rows of W), "
                         f"got shape {tuple(x.shape)}")
    if tuple(mu.shape) != (d,):
        raise ValueError(f"mu must have shape ({d},) (one mean per data dimension), got {tuple(mu.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf; expected finite values only")
    sigma2 = torch.as_tensor(sigma2, dtype=W.dtype)
    if sigma2.numel() != 1:
        raise ValueError(f"sigma2 must be one number (the shared noise variance), got shape {tuple(sigma2.shape)}")
    sigma2 = sigma2.reshape(())
    if not (torch.isfinite(sigma2) and sigma2 > 0):
        raise ValueError(f"sigma2 must be a positive, finite variance, got {float(sigma2):g}")
    return sigma2


def ppca_log_likelihood(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2) -> torch.Tensor:
    """log N(x | mu, W W^T + sigma2 I) for each row of `x` (N, d): shape (N,), nats.

    Uses the k x k matrix ``M = W^T W + sigma2 I``: ``log det C = (d - k) log sigma2 + log det M``
    and ``v^T C^{-1} v = (v^T v - v^T W M^{-1} W^T v) / sigma2`` for ``v = x - mu``.
    Differentiable in W, mu and sigma2; works in the inputs' dtype. The reference answer of
    exercise ``ppca_log_likelihood``. Taught in: chapter 3.
    """
    sigma2 = _check_ppca_args(x, W, mu, sigma2)
    d, k = W.shape
    M = W.T @ W + sigma2 * torch.eye(k, dtype=W.dtype)
    L = torch.linalg.cholesky(M)
    xc = x - mu
    a = torch.linalg.solve_triangular(L, (xc @ W).T, upper=False)  # (k, N): L^{-1} W^T xc
    quad = ((xc**2).sum(1) - (a**2).sum(0)) / sigma2
    logdet = (d - k) * torch.log(sigma2) + 2.0 * torch.log(torch.diagonal(L)).sum()
    return -0.5 * (d * LOG_2PI + logdet + quad)


def ppca_posterior(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2):
    """Exact PPCA posterior ``p(z | x) = N(M^{-1} W^T (x - mu), sigma2 M^{-1})``, ``M = W^T W + sigma2 I``.

    Returns ``(mean, cov)``: mean (N, k) and cov (k, k); the covariance does not depend on x.
    The reference answer of exercise ``ppca_posterior``. Taught in: chapter 3.
    """
    sigma2 = _check_ppca_args(x, W, mu, sigma2)
    k = W.shape[1]
    M = W.T @ W + sigma2 * torch.eye(k, dtype=W.dtype)
    Minv = torch.linalg.inv(M)
    mean = (x - mu) @ W @ Minv  # M is symmetric, so (M^{-1} W^T xc)^T = xc^T W M^{-1}
    return mean, sigma2 * Minv


