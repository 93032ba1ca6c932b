"""Factor analysis fitted by EM: PPCA with one noise variance per data dimension.

Taught in: chapter 3 (Linear latent variable models). The model is `FactorAnalysis`, the
linear-Gaussian model z ~ N(0, I_k), x | z ~ N(W z + b, diag(psi)) of `linear_gaussian`.
There is no closed form; EM (Rubin and Thayer, 1982) raises the likelihood at every step,
which the fitted model's `history` records.

The variance floor. A pixel that is constant in the training data (the border of every digit
is 0) is predicted perfectly with psi_i -> 0, and the density there -> infinity: the maximum
likelihood does not exist. `var_floor` keeps every psi_i >= the floor, which is the exact
maximiser of the M-step under that constraint, so EM still never lowers the likelihood. PPCA
never has the problem: its one sigma2 is shared by all pixels.
"""
from __future__ import annotations

import torch

from ..core.distributions import LOG_2PI
from ..core.validation import check_choice, check_generator, check_int, check_positive
from .linear_gaussian import FactorAnalysis
from .pca import _check_latent_dim, _fit_data, fit_ppca, sample_covariance

__all__ = ["fit_factor_analysis"]


def _mean_log_likelihood(S: torch.Tensor, psi: torch.Tensor, A: torch.Tensor, SA: torch.Tensor,
                         L: torch.Tensor) -> float:
    """mean_n log N(x_n; b, W W^T + diag(psi)) from the sample covariance S around b, in nats.

    -1/2 [d log 2 pi + log|C| + tr(C^{-1} S)], with log|C| = log|Psi| + log|G| and, by Woodbury,
    tr(C^{-1} S) = tr(Psi^{-1} S) - tr(G^{-1} A^T S A); A = Psi^{-1} W, SA = S A, L = chol(G).
    """
    d = S.shape[0]
    quad = (torch.diagonal(S) / psi).sum() - torch.trace(torch.cholesky_solve(A.T @ SA, L))
    logdet = torch.log(psi).sum() + 2 * torch.log(torch.diagonal(L)).sum()
    return float(-0.5 * (d * LOG_2PI + logdet + quad))


def fit_factor_analysis(x: torch.Tensor, latent_dim: int, steps: int = 50,
                        generator: torch.Generator | None = None, var_floor: float = 1e-3,
                        init: str = "ppca") -> FactorAnalysis:
    """Factor analysis by EM on `x` (N, d). Taught in: chapter 3.

    Computed in float64 for exactness; the model's tensors are float64 on x's device.

    Parameters
    ----------
    latent_dim:
        k, between 1 and d - 1.
    steps:
        Number of EM steps (each an E-step and an exact M-step), >= 0.
    generator:
        Random numbers for `init="random"` (W drawn with entries of standard deviation 0.01, on
        the generator's device). The default `init="ppca"` is deterministic and rejects a
        generator rather than silently ignoring it.
    var_floor:
        Lower bound on every psi_i (> 0). Needed whenever some dimension of `x` is (nearly)
        constant, such as the border pixels of digits; see the module docstring.
    init:
        "ppca" (default): start from the closed-form PPCA fit (psi_i = sigma2), so EM only has
        to free the per-dimension variances. "random": W random, psi = the data variances.

    Returns
    -------
    FactorAnalysis
        With `history[0]` the mean training log-likelihood (nats per example) at the
        initialisation, before any EM step, and `history[t]` after t steps (never decreasing).

    Notes
    -----
    The E-step is the model's exact posterior, ``p(z | x_n) = N(m_n, V)`` (`LinearGaussian.posterior`),
    used through the data averages it enters, which depend on the data only through S (so a step
    costs O(d^2 k), whatever N; the log-likelihood of `history` likewise). With the data averages
    ``SB = mean_n (x_n - b) m_n^T`` (d, k) and ``E[z z^T] = V + mean_n m_n m_n^T``
    (k, k), the M-step sets ``W = SB E[z z^T]^{-1}`` and ``psi = max(diag(S) - diag(W SB^T), var_floor)``,
    with S the sample covariance.
    """
    x = _fit_data(x)
    d = x.shape[1]
    k = _check_latent_dim(latent_dim, d)
    steps = check_int("steps", steps, low=0)
    var_floor = check_positive("var_floor", var_floor)
    check_choice("init", init, ("ppca", "random"))
    check_generator(generator)
    if init == "ppca" and generator is not None:
        raise ValueError("generator is only used by init='random'; init='ppca' is deterministic "
                         "(pass generator=None, or init='random')")
    mean, S = sample_covariance(x)
    if init == "ppca":
        ppca = fit_ppca(x, k)
        W = ppca.W.clone()
        psi = ppca.psi.clone().clamp_min(var_floor)
    else:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        W = (0.01 * torch.randn(d, k, generator=generator, dtype=torch.float64, device=gen_device)).to(x.device)
        psi = torch.diagonal(S).clamp_min(var_floor).clone()
    history = []
    for step in range(steps + 1):
        # The E-step and the mean log-likelihood, both from S (d x d, computed once): O(d^2 k) per
        # step, whatever N. With A = Psi^{-1} W and G = I + W^T A (the posterior precision), the
        # posterior of x_n is N(G^{-1} A^T (x_n - b), G^{-1}) (as `FactorAnalysis.posterior` gives it).
        A = W / psi[:, None]
        G = torch.eye(k, dtype=W.dtype, device=W.device) + W.T @ A
        L = torch.linalg.cholesky(G)
        SA = S @ A  # (d, k)
        history.append(_mean_log_likelihood(S, psi, A, SA, L))
        if step == steps:
            break
        G_inv = torch.cholesky_inverse(L)
        SB = SA @ G_inv  # (d, k): mean of (x - b) E[z | x]^T
        Ezz = G_inv + G_inv @ (A.T @ SA) @ G_inv  # (k, k): mean of E[z z^T | x]
        W = torch.linalg.solve(Ezz, SB.T).T  # M-step
        psi = (torch.diagonal(S) - (W * SB).sum(1)).clamp_min(var_floor)
    return FactorAnalysis(W, mean, psi, var_floor=var_floor, history=history)
