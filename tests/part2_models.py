"""A linear-Gaussian model written with torch.distributions, for the Part II tests (chapters 4-7).

z ~ N(0, I_k), x | z ~ N(W z + b, diag(psi)). It implements the model interface (encode,
decode, log_px_given_z) and the exact answers (posterior, log_prob) without any code of the
package, so a test that runs a package function through it compares against an independent
computation. The posterior comes from conditioning the joint Gaussian of (z, x), not from the
precision formula the package uses.
"""
from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal


class TorchLinearGaussian:
    def __init__(self, W: torch.Tensor, b: torch.Tensor, psi: torch.Tensor):
        self.W, self.b, self.psi = W, b, psi

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    def covariance(self) -> torch.Tensor:
        return self.W @ self.W.T + torch.diag(self.psi)

    def log_prob(self, x):
        return MultivariateNormal(self.b, covariance_matrix=self.covariance()).log_prob(x)

    def posterior(self, x):
        """p(z | x) by conditioning the joint Gaussian: mean W^T C^{-1} (x - b), cov I - W^T C^{-1} W."""
        gain = torch.linalg.solve(self.covariance(), self.W).T  # (k, d) = W^T C^{-1}
        cov = torch.eye(self.latent_dim, dtype=self.W.dtype) - gain @ self.W
        return (x - self.b) @ gain.T, 0.5 * (cov + cov.T)

    def encode(self, x):
        mean, cov = self.posterior(x)
        var = 1.0 / torch.diagonal(torch.linalg.inv(cov))
        return mean, torch.log(var).expand_as(mean)

    def decode(self, z):
        mean = z @ self.W.T + self.b
        return mean, torch.log(self.psi).expand_as(mean)

    def log_px_given_z(self, x, z):
        mean, _ = self.decode(z)
        return Normal(mean, self.psi.sqrt()).log_prob(x).sum(-1)


def random_model(seed: int = 0, d: int = 6, k: int = 3, dtype=torch.float64, orthogonal: bool = False,
                 isotropic: bool = False) -> TorchLinearGaussian:
    """A random model; `orthogonal` and `isotropic` together make the exact posterior diagonal."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=dtype)
    if orthogonal:
        Q, _ = torch.linalg.qr(W)
        W = Q * torch.linspace(2.0, 0.7, k, dtype=dtype)
    b = torch.randn(d, generator=g, dtype=dtype)
    psi = torch.full((d,), 0.3, dtype=dtype) if isotropic else 0.2 + torch.rand(d, generator=g, dtype=dtype)
    return TorchLinearGaussian(W, b, psi)


def data(model: TorchLinearGaussian, n: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return model.b + 1.5 * torch.randn(n, model.W.shape[0], generator=g, dtype=model.W.dtype)


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one torch thread (as the chapters do, via vc.setup()), then restore the count.

    Tiny tensors on several threads spend most of their time synchronising, worst on a busy machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
