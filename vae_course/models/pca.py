"""PCA, the closed-form probabilistic PCA fit, and principal angles between subspaces.

Taught in: chapter 3 (Linear latent variable models). PCA and PPCA share one eigendecomposition
of the sample covariance (1/N normalisation, the maximum-likelihood estimate) and one sign
convention for its eigenvectors: each column's largest-magnitude entry is positive (the
decomposition leaves the signs arbitrary, and a figure or a test should not depend on them).

These fits compute in float64 for exactness, whatever the input's floating dtype, and return
float64 tensors on the input's device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.validation import check_data, check_int, check_tensor
from .linear_gaussian import PPCA

__all__ = ["PCAResult", "pca", "fit_ppca", "principal_angles", "sample_covariance"]


def _fit_data(x, min_rows: int = 2) -> torch.Tensor:
    """`x` checked as a data matrix and converted to float64 (on its device), detached: fits are not differentiated."""
    return check_data("x", x, min_rows=min_rows).detach().to(torch.float64)


def sample_covariance(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(mean (d,), S (d, d))` of the rows of `x` (N, d): S = (1/N) sum_n (x_n - mean)(x_n - mean)^T."""
    mean = x.mean(0)
    xc = x - mean
    return mean, xc.T @ xc / x.shape[0]


def _check_latent_dim(latent_dim, d: int) -> int:
    k = check_int("latent_dim", latent_dim)
    if not 1 <= k <= d - 1:
        raise ValueError(f"latent_dim must be between 1 and d - 1 = {d - 1} (d = {d} data dimensions), got {k}")
    return k


def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Flip each column so that its largest-magnitude entry is positive (the course's sign convention)."""
    k = vectors.shape[1]
    idx = vectors.abs().argmax(0)
    signs = torch.sign(vectors[idx, torch.arange(k, device=vectors.device)])
    return vectors * torch.where(signs == 0, torch.ones_like(signs), signs)


@dataclass(frozen=True)
class PCAResult:
    """Principal components of a data set, from `pca(x, num_components)`.

    `components` (d, k) has orthonormal columns, the top-k eigenvectors of the sample covariance
    (signs fixed as the module docstring says); `explained_variance` (k,) their eigenvalues
    (1/N normalisation); `mean` (d,) the data mean; `total_variance` the trace of the covariance.
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
        """Coordinates of `x` (N, d) in the principal subspace, (N, k), in the components' dtype."""
        x = check_data("x", x, dim=self.mean.shape[0]).to(self.components)
        return (x - self.mean) @ self.components

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """Points (N, d) in data space for coordinates `z` (N, k)."""
        z = check_data("z", z, dim=self.components.shape[1]).to(self.components)
        return self.mean + z @ self.components.T

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection of `x` onto the principal subspace (through the mean), (N, d)."""
        return self.inverse_transform(self.transform(x))


def pca(x: torch.Tensor, num_components: int) -> PCAResult:
    """PCA of `x` (N, d) by the singular value decomposition of the centred data. Taught in: chapter 3.

    The right singular vectors of X - mean are the eigenvectors of the covariance, and the
    squared singular values divided by N its eigenvalues. `num_components` is between 1 and
    min(N, d). Computed in float64; returned in float64 on x's device.
    """
    x = _fit_data(x)
    k = check_int("num_components", num_components, low=1, high=min(x.shape))
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    var = s**2 / x.shape[0]
    return PCAResult(_fix_signs(vh[:k].T.clone()), var[:k].clone(), mean, float(var.sum()))


def fit_ppca(x: torch.Tensor, latent_dim: int) -> PPCA:
    """Maximum-likelihood probabilistic PCA in closed form (Tipping and Bishop, 1999). Taught in: chapter 3.

    With the eigenvalues l_1 >= ... >= l_d and eigenvectors U of the sample covariance
    (1/N normalisation):

    - `sigma2` = the mean of the d - k discarded eigenvalues (the variance the subspace misses);
    - `W` = U_k (L_k - sigma2 I)^{1/2}, unique up to a rotation R (here R = I, and the columns
      of U_k follow the sign convention of `pca`);
    - `b` = the data mean.

    `x` is (N, d) with N >= 2 and finite values; `latent_dim` is between 1 and d - 1. Computed
    in float64; the model's tensors are float64 on x's device.
    """
    x = _fit_data(x)
    d = x.shape[1]
    k = _check_latent_dim(latent_dim, d)
    mean, S = sample_covariance(x)
    evals, evecs = torch.linalg.eigh(S)
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    sigma2 = evals[k:].mean()
    if sigma2 <= evals[0] * d * torch.finfo(torch.float64).eps:  # zero up to rounding
        raise ValueError(f"x varies in at most {k} directions, so sigma2 would be 0 and the likelihood "
                         f"unbounded; use a smaller latent_dim (data rank <= {k}) or add noise")
    Uk = _fix_signs(evecs[:, :k])
    W = Uk * torch.sqrt((evals[:k] - sigma2).clamp_min(0.0))
    return PPCA(W, mean, sigma2, eigenvalues=evals)


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spaces of `a` (d, k) and `b` (d, m).

    Zero angles mean the subspaces coincide, whatever basis (rotation, scaling) each uses.
    Computed in float64 (detached). Taught in: chapter 3 (the linear autoencoder finds the PCA subspace).
    """
    a = check_tensor("a", a, ndim=2, what="of shape (d, k) whose columns span a subspace")
    b = check_tensor("b", b, ndim=2, what="of shape (d, m) whose columns span a subspace")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows d, got shapes {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    qa, _ = torch.linalg.qr(a.detach().to(torch.float64))
    qb, _ = torch.linalg.qr(b.detach().to(device=a.device, dtype=torch.float64))
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.sort(torch.arccos(cos)).values
