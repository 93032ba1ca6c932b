"""Factor analysis fitted by EM: PPCA with one noise variance per data dimension.

Taught in: chapter 3 (Linear latent variable models). The model is::

    z ~ N(0, I_k),    x | z ~ N(W z + mu, diag(psi)),

with the same interface as `PPCA` (`W`, `mu`, `log_likelihood`, `posterior`, `sample`), and
`psi` (d,) in place of `sigma2`. There is no closed form; EM (Rubin and Thayer, 1982) raises
the likelihood at every step, which `history` records.

The variance floor. A pixel that is constant in the training data (the border of every
digit is 0) is predicted perfectly with psi_i -> 0, and the density there -> infinity: the
maximum likelihood does not exist. `var_floor` keeps every psi_i >= the floor, which is
the exact maximiser of the M-step under that constraint, so EM still never lowers the
likelihood. PPCA never has the problem: its one sigma2 is shared by all pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .linear import (
    LOG_2PI,
    LinearGaussian,
    _centered_covariance,
    _check_data,
    _check_latent_dim,
    _gaussian_parts,
    fit_ppca,
)

__all__ = ["FactorAnalysis", "fit_factor_analysis"]


@dataclass
class FactorAnalysis(LinearGaussian):
    """A factor-analysis model: x ~ N(mu, W W^T + diag(psi)). Build it with `fit_factor_analysis`.

    `history` holds the mean training log-likelihood (nats per example) before the first
    EM step and after each step; `var_floor` the lower bound applied to `psi`.
    Taught in: chapter 3.
    """

    psi: torch.Tensor = None
    var_floor: float = 0.0
    history: list[float] = field(default_factory=list)

    @property
    def noise_variance(self) -> torch.Tensor:
        return self.psi

    def __repr__(self) -> str:
        return (f"FactorAnalysis(data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
                f"steps={max(len(self.history) - 1, 0)}, var_floor={self.var_floor:g})")


def _mean_log_likelihood(S: torch.Tensor, W: torch.Tensor, psi: torch.Tensor) -> float:
    """Mean training log-likelihood from the sample covariance: -(d log 2pi + log|C| + tr(C^-1 S)) / 2."""
    Wn, L, logdet = _gaussian_parts(W, psi)
    A = torch.linalg.solve_triangular(L, Wn.T @ S @ Wn, upper=False)
    A = torch.linalg.solve_triangular(L, A.T, upper=False)  # L^-1 (Wn^T S Wn) L^-T
    trace = (torch.diagonal(S) / psi).sum() - torch.trace(A)
    return float(-0.5 * (S.shape[0] * LOG_2PI + logdet + trace))


def fit_factor_analysis(x: torch.Tensor, latent_dim: int, steps: int = 50,
                        generator: torch.Generator | None = None, var_floor: float = 1e-3,
                        init: str = "ppca") -> FactorAnalysis:
    """Factor analysis by EM on `x` (N, d), float64. Taught in: chapter 3.

    Parameters
    ----------
    latent_dim:
        k, between 1 and d - 1.
    steps:
        Number of EM steps (each an E-step and an exact M-step).
    generator:
        Random numbers for `init="random"` (W drawn with entries of standard deviation 0.01).
    var_floor:
        Lower bound on every psi_i (> 0). Needed whenever some dimension of `x` is (nearly)
        constant, such as the border pixels of digits; see the module docstring.
    init:
        "ppca" (default): start from the closed-form PPCA fit (psi_i = sigma2), so EM only has
        to free the per-dimension variances. "random": W random, psi = the data variances.

    Notes
    -----
    Each step works with the sample covariance S, ``G = (I + W^T Psi^{-1} W)^{-1}`` and
    ``B = G W^T Psi^{-1}`` (so that ``E[z | x] = B (x - mu)``). The average of ``E[z z^T]``
    over the data is ``G + B S B^T``, and the M-step sets ``W = S B^T (G + B S B^T)^{-1}`` and
    ``psi = max(diag(S - W B S), var_floor)``.
    """
    x = _check_data(x)
    d = x.shape[1]
    k = _check_latent_dim(latent_dim, d)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if isinstance(var_floor, bool) or not isinstance(var_floor, (int, float)) or not var_floor > 0:
        raise ValueError(f"var_floor must be a positive number, got {var_floor!r}")
    var_floor = float(var_floor)
    mu, S = _centered_covariance(x)
    if init == "ppca":
        ppca = fit_ppca(x, k)
        W = ppca.W.clone()
        psi = ppca.sigma2.expand(d).clone().clamp_min(var_floor)
    elif init == "random":
        W = 0.01 * torch.randn(d, k, generator=generator, dtype=torch.float64)
        psi = torch.diagonal(S).clamp_min(var_floor).clone()
    else:
        raise ValueError(f"init must be 'ppca' or 'random', got {init!r}")
    eye = torch.eye(k, dtype=torch.float64)
    history = [_mean_log_likelihood(S, W, psi)]
    for _ in range(steps):
        Wn = W / psi[:, None]
        G = torch.linalg.inv(eye + W.T @ Wn)
        B = G @ Wn.T  # (k, d): E[z | x] = B (x - mu)
        SB = S @ B.T  # (d, k): mean of (x - mu) E[z]^T
        Ezz = G + B @ SB  # (k, k): mean of E[z z^T]
        W = torch.linalg.solve(Ezz, SB.T).T
        psi = (torch.diagonal(S) - (W * SB).sum(1)).clamp_min(var_floor)
        history.append(_mean_log_likelihood(S, W, psi))
    return FactorAnalysis(W=W, mu=mu, psi=psi, var_floor=var_floor, history=history)
