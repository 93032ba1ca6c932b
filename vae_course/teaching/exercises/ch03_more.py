"""More checkers for chapter 3, Linear latent variable models: the PPCA closed form, and the
log-likelihood at the size of real images.

Taught in: chapter 3.

- `ppca_closed_form(x, k) -> (W, mu, sigma2)`: Tipping and Bishop's maximum-likelihood PPCA fit.
  W is only defined up to an orthogonal k x k matrix, so the check compares W W^T, mu and sigma2
  with values computed here from NumPy's eigendecomposition, and the log-likelihood with
  `torch.distributions.MultivariateNormal` on the full covariance.
- `ppca_log_likelihood_at_scale(x, W, mu, sigma2) -> (N,)`: the chapter's `ppca_log_likelihood`
  exercise again, on digit-sized inputs (d = 784, k = 20). Any correct answer passes; the message
  says how long it took next to the package's k x k version, so that an answer that builds the
  784 x 784 covariance sees what the Woodbury route saves.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch.distributions import MultivariateNormal

from ...models import ppca_log_likelihood
from ._core import Failure, call, expect_close, register

CHAPTER = "03_linear_models"
F64 = torch.float64


def _data(seed: int, n: int, d: int, k: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=F64) * torch.linspace(2.0, 1.0, k, dtype=F64)
    z = torch.randn(n, k, generator=g, dtype=F64)
    scales = torch.linspace(0.3, 0.8, d, dtype=F64)
    return z @ W.T + 1.5 + torch.randn(n, d, generator=g, dtype=F64) * scales


def _numpy_fit(x: torch.Tensor, k: int, ddof: int = 0):
    """Eigenvalues (descending) and eigenvectors of the sample covariance, from NumPy."""
    a = x.numpy()
    S = np.cov(a, rowvar=False, ddof=ddof)
    evals, evecs = np.linalg.eigh(S)
    return a.mean(0), evals[::-1].copy(), evecs[:, ::-1].copy()


def _ww(evecs, evals, k, s2, power=0.5, subtract=True):
    lam = evals[:k] - (s2 if subtract else 0.0)
    W = evecs[:, :k] * np.abs(lam) ** power
    return W @ W.T


def _as_tensor(value, name: str, where: str) -> torch.Tensor:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=F64)
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise Failure(f"{name} should be a floating-point torch.Tensor, got {type(value).__name__}, {where}.")
    return value.detach().to(F64)


def _reference_fit(x: torch.Tensor, k: int):
    mu, evals, evecs = _numpy_fit(x, k)
    s2 = evals[k:].mean()
    W = evecs[:, :k] * np.sqrt(evals[:k] - s2)
    return torch.from_numpy(W), torch.from_numpy(mu), torch.tensor(s2, dtype=F64)


@register("ppca_closed_form", chapter=CHAPTER, reference=_reference_fit)
def check_ppca_closed_form(answer):
    cases = [("for x of shape (300, 6) and k = 2", 41, 300, 6, 2),
             ("for x of shape (200, 9) and k = 3", 42, 200, 9, 3)]
    for where, seed, n, d, k in cases:
        x = _data(seed, n, d, k)
        out = call(answer, x, k, where=where)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Failure(f"return the triple (W, mu, sigma2) of torch.Tensor values, "
                          f"got {type(out).__name__}, {where}.")
        W, mu, s2 = (_as_tensor(v, name, where) for v, name in zip(out, ("W", "mu", "sigma2")))
        if tuple(W.shape) != (d, k):
            raise Failure(f"W should have shape ({d}, {k}) (one column per latent dimension), got "
                          f"{tuple(W.shape)}, {where}.")
        if tuple(mu.shape) != (d,):
            raise Failure(f"mu should have shape ({d},), got {tuple(mu.shape)}, {where}.")
        if s2.numel() != 1:
            raise Failure(f"sigma2 should be a single number (a 0-d tensor), got shape {tuple(s2.shape)}, {where}.")
        s2 = s2.reshape(())
        m_np, evals, evecs = _numpy_fit(x, k)
        _, evals1, evecs1 = _numpy_fit(x, k, ddof=1)
        s2_ref = evals[k:].mean()
        if not np.allclose(mu.numpy(), m_np, rtol=1e-6, atol=1e-8):
            raise Failure(f"mu is wrong {where}: the maximum-likelihood offset is the mean of the rows of x.")
        s2v = float(s2)
        sigma_mistakes = {
            "sigma2 should be the mean of the d - k discarded eigenvalues, not their sum.": evals[k:].sum(),
            "sigma2 should be the mean of the discarded eigenvalues (d - k of them), not of all d.": evals.mean(),
            "sigma2 averages the smallest d - k eigenvalues: sort the eigenvalues in decreasing order "
            "(torch.linalg.eigh returns them in increasing order).": evals[::-1][k:].mean(),
            "use the 1/N sample covariance (the maximum-likelihood one), not 1/(N - 1).": evals1[k:].mean(),
            "sigma2 divides the discarded eigenvalues' sum by d; divide by d - k.": evals[k:].sum() / d,
        }
        if not np.isclose(s2v, s2_ref, rtol=1e-6):
            for message, value in sigma_mistakes.items():
                if np.isclose(s2v, value, rtol=1e-6):
                    raise Failure(f"wrong sigma2 {where}: {message}")
            raise Failure(f"sigma2 is wrong {where}: expected the mean of the discarded eigenvalues of the "
                          f"sample covariance, got {s2v:.6g}.")
        WW = (W @ W.T).numpy()
        WW_ref = _ww(evecs, evals, k, s2_ref)
        w_mistakes = {
            "each column of W is scaled by sqrt(lambda_j - sigma2); you seem to have left out the - sigma2.":
                _ww(evecs, evals, k, s2_ref, subtract=False),
            "each column of W is scaled by the square root of (lambda_j - sigma2), not by (lambda_j - sigma2).":
                _ww(evecs, evals, k, s2_ref, power=1.0),
            "W should use the eigenvectors of the k largest eigenvalues (eigh sorts them in increasing order).":
                _ww(evecs[:, ::-1], evals[::-1], k, s2_ref),
        }
        if not np.allclose(WW, WW_ref, rtol=1e-5, atol=1e-8):
            for message, value in w_mistakes.items():
                if np.allclose(WW, value, rtol=1e-5, atol=1e-8):
                    raise Failure(f"wrong W {where}: {message}")
            raise Failure(f"wrong value of W {where}: W W^T should equal V_k (Lambda_k - sigma2 I) V_k^T "
                          "(W itself is free up to an orthogonal k x k matrix).")
        C = torch.from_numpy(WW_ref) + float(s2_ref) * torch.eye(d, dtype=F64)
        expected = MultivariateNormal(torch.from_numpy(m_np), covariance_matrix=C).log_prob(x).mean()
        got = MultivariateNormal(mu, covariance_matrix=W @ W.T + s2 * torch.eye(d, dtype=F64)).log_prob(x).mean()
        expect_close(got, expected, where=where + " (mean log-likelihood of your fit)", rtol=1e-8, atol=1e-8)
    return "W W^T, mu and sigma2 match the closed form on both data sets (W itself may differ by a rotation)"


def _digit_sized(seed: int = 43, n: int = 500, d: int = 784, k: int = 20):
    g = torch.Generator().manual_seed(seed)
    W = 0.1 * torch.randn(d, k, generator=g, dtype=F64)
    mu = torch.rand(d, generator=g, dtype=F64)
    x = mu + torch.randn(n, k, generator=g, dtype=F64) @ W.T + 0.2 * torch.randn(n, d, generator=g, dtype=F64)
    return x, W, mu, torch.tensor(0.04, dtype=F64)


@register("ppca_log_likelihood_at_scale", chapter=CHAPTER, reference=ppca_log_likelihood)
def check_ppca_log_likelihood_at_scale(answer):
    x, W, mu, s2 = _digit_sized()
    where = "for digit-sized inputs (x of shape (500, 784), W of shape (784, 20))"
    start = time.perf_counter()
    out = call(answer, x, W, mu, s2, where=where)
    yours = time.perf_counter() - start
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0],):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Failure(f"the result should be a torch.Tensor of shape ({x.shape[0]},), one log-density per row, "
                      f"got {shape}, {where}.")
    C = W @ W.T + s2 * torch.eye(W.shape[0], dtype=F64)
    expected = MultivariateNormal(mu, covariance_matrix=C).log_prob(x)
    expect_close(out.detach(), expected, where=where, rtol=1e-7, atol=1e-6)
    start = time.perf_counter()
    ppca_log_likelihood(x, W, mu, s2)
    package = time.perf_counter() - start
    ratio = yours / max(package, 1e-9)
    advice = (" If yours builds the 784 x 784 covariance, try the k x k route through M = W^T W + sigma2 I."
              if ratio > 3 else " That is the k x k route's speed.")
    return (f"correct at d = 784. Your function took {1000 * yours:.1f} ms, the package's k x k version "
            f"{1000 * package:.1f} ms ({ratio:.1f} times as long).{advice}")
