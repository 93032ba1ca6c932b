"""Checkers for chapter 3, Linear latent variable models (PPCA's exact log-likelihood and posterior).

Taught in: chapter 3. The expected values are computed independently of the package's
reference: the log-likelihood by `torch.distributions.MultivariateNormal` on the full d x d
covariance W Wᵀ + sigma2 I, the posterior by conditioning the joint Gaussian of (z, x) through
C^{-1} (no M). The inputs are small random problems in float64 and one of the chapter's size,
784 pixels and k = 20. When the answer matches a known mistake (missing log-determinant,
d log sigma2 in place of (d - k) log sigma2, missing 2*pi, W ignored, an average instead of one
value per example, a sign flip, ...) the message names it (the dicts `HINTS`).
"""
from __future__ import annotations

import math
from functools import partial

import torch
from torch.distributions import MultivariateNormal

from ...models import ppca_log_likelihood, ppca_posterior
from ._core import call, expect_grad, expect_tensor, register
from ._expect import expect_value, hinted

CHAPTER = "03_linear_models"
LOG_2PI = math.log(2 * math.pi)
F64 = torch.float64

HINTS: dict[str, dict[str, str]] = {
    "ppca_log_likelihood": {
        "single_number": "log p(x) is needed for each example: a tensor of shape (N,), not the average or sum "
                         "over examples.",
        "sign_flip": "the sign is flipped: a log-density is minus one half of (constant + log-determinant "
                     "+ squared distance).",
        "missing_log_2pi": "the -d/2 log(2π) normalising constant is missing.",
        "missing_logdet": "the log-determinant term -1/2 log|W Wᵀ + sigma2 I| is missing.",
        "d_log_sigma2": "the log-determinant has d log(sigma2) + log|M|; by the matrix determinant lemma "
                        "|W Wᵀ + sigma2 I| = sigma2^(d - k) |M|, so the power of sigma2 is d - k, not d.",
        "missing_sigma2_power": "the log-determinant is only log|M|: |W Wᵀ + sigma2 I| = sigma2^(d - k) |M|, "
                                "so (d - k) log(sigma2) must be added.",
        "quad_not_divided": "the quadratic form was not divided by sigma2: "
                            "vᵀ C^{-1} v = (vᵀ v - vᵀ W M^{-1} Wᵀ v) / sigma2.",
        "W_ignored": "the result ignores W: it is the density of the isotropic N(b, sigma2 I), but the "
                     "covariance is W Wᵀ + sigma2 I.",
        "missing_half": "the factor 1/2 is missing: the log-density is -1/2 (d log 2π + log|C| + squared distance).",
        "sigma2_as_std": "sigma2 is a variance, but it was used as a standard deviation (squared again).",
        "not_centred": "x was not centred: the squared distance is that of x - b.",
        "same_value": "every example got the same value (an average over examples?): return log p(x_n) for "
                      "each row separately.",
        "sum_repeated": "every example got the sum of log p over all examples: return log p(x_n) for each row.",
    },
    "ppca_posterior": {
        "not_pair": "return a pair (mean, cov): mean of shape (N, k), cov of shape (k, k).",
        "cov_per_example": "the posterior covariance is the same for every example: return one (k, k) matrix, "
                           "not one per example.",
        "cov_data_space": "the posterior covariance lives in the latent space: shape (k, k), not (d, d).",
        "mean_not_centred": "the mean does not subtract b: the posterior mean depends on x - b.",
        "mean_missing_M_inv": "the mean is missing M^{-1}: it should be M^{-1} Wᵀ (x - b) with "
                              "M = Wᵀ W + sigma2 I.",
        "mean_over_sigma2": "the mean is Wᵀ (x - b) / sigma2 without M^{-1}.",
        "mean_pca_projection": "the mean uses (Wᵀ W)^{-1} Wᵀ (x - b), the sigma2 -> 0 limit (the PCA "
                               "projection), not the posterior.",
        "M_without_sigma2": "M is Wᵀ W + sigma2 I: the identity added to Wᵀ W must be scaled by sigma2.",
        "cov_missing_sigma2": "the covariance is missing the factor sigma2: it is sigma2 M^{-1}, not M^{-1}.",
        "cov_pca": "the covariance is sigma2 (Wᵀ W)^{-1}, not sigma2 M^{-1} with M = Wᵀ W + sigma2 I.",
        "cov_precision": "that is the posterior precision (the inverse covariance): invert it.",
        "cov_prior": "that is the prior covariance I: observing x shrinks it to sigma2 M^{-1}.",
        "cov_M_without_sigma2": "the covariance uses Wᵀ W + I: M is Wᵀ W + sigma2 I.",
    },
}


def _problem(seed: int, n: int, d: int, k: int, sigma2: float, w_scale: float = 1.0, pixels: bool = False):
    """A random PPCA problem (x, W, b, sigma2) in float64; sigma2 is a 0-d tensor."""
    g = torch.Generator().manual_seed(seed)
    W = w_scale * torch.randn(d, k, generator=g, dtype=F64)
    if pixels:  # grey images in [0, 1] and their mean image
        x = torch.rand(n, d, generator=g, dtype=F64) ** 3
        b = x.mean(0) * 0.8
    else:
        b = torch.randn(d, generator=g, dtype=F64)
        x = b + 1.5 * torch.randn(n, d, generator=g, dtype=F64)
    return x, W, b, torch.tensor(sigma2, dtype=F64)


def _cases():
    yield _problem(0, 5, 6, 3, 0.5)
    yield _problem(1, 7, 9, 3, 2.5)
    yield _problem(2, 6, 784, 20, 0.02, w_scale=0.1, pixels=True)  # the chapter's size: 784 pixels, k = 20


def _where(x, W, sigma2) -> str:
    return f"for x of shape {tuple(x.shape)}, W of shape {tuple(W.shape)}, sigma2 = {float(sigma2):g}"


def _eye(n: int) -> torch.Tensor:
    return torch.eye(n, dtype=F64)


def _mvn(x, b, cov) -> torch.Tensor:
    return MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


# --- exercise: ppca_log_likelihood ----------------------------------------------------------------

def _ll_mistakes(x, W, b, sigma2, ref) -> dict[str, torch.Tensor]:
    d, k = W.shape
    C = W @ W.T + sigma2 * _eye(d)
    logdet = torch.logdet(C)
    xc = x - b
    quad = (xc @ torch.linalg.inv(C) * xc).sum(1)
    log_s2 = torch.log(sigma2)
    return {
        "sign_flip": -ref,
        "missing_log_2pi": ref + 0.5 * d * LOG_2PI,
        "missing_logdet": ref + 0.5 * logdet,
        "d_log_sigma2": ref - 0.5 * k * log_s2,
        "missing_sigma2_power": ref + 0.5 * (d - k) * log_s2,
        "quad_not_divided": -0.5 * (d * LOG_2PI + logdet + quad * sigma2),
        "W_ignored": _mvn(x, b, sigma2 * _eye(d)),
        "missing_half": 2 * ref,
        "sigma2_as_std": _mvn(x, b, W @ W.T + sigma2 ** 2 * _eye(d)),
        "not_centred": _mvn(x, torch.zeros_like(b), C),
        "same_value": ref.mean().expand(x.shape[0]),
        "sum_repeated": ref.sum().expand(x.shape[0]),
    }


@register("ppca_log_likelihood", chapter=CHAPTER, reference=ppca_log_likelihood)
def check_ppca_log_likelihood(answer):
    hints = HINTS["ppca_log_likelihood"]
    for x, W, b, sigma2 in _cases():
        n, d = x.shape
        where = _where(x, W, sigma2)
        out = call(answer, x, W, b, sigma2, where=where)
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            raise hinted(hints, "single_number", f"you returned one number ({where}).")
        out = expect_tensor(out, shape=(n,), dtype=F64, where=where)
        ref = _mvn(x, b, W @ W.T + sigma2 * _eye(d))
        expect_value(out, ref, partial(_ll_mistakes, x, W, b, sigma2, ref), hints, where=where, name="log p(x)",
                     rtol=1e-7, atol=1e-6)
    x, W, b, sigma2 = next(iter(_cases()))
    W_g, b_g = W.clone().requires_grad_(), b.clone().requires_grad_()
    where = "for x of shape (5, 6) with W and b requiring gradients"
    out = call(answer, x, W_g, b_g, sigma2, where=where)
    expect_grad(out, {"W": W_g, "b": b_g}, where=where)
    return "matches the exact log N(x | b, W Wᵀ + sigma2 I) for every example, in nats, up to 784 pixels"


# --- exercise: ppca_posterior ----------------------------------------------------------------------

@register("ppca_posterior", chapter=CHAPTER, reference=ppca_posterior)
def check_ppca_posterior(answer):
    hints = HINTS["ppca_posterior"]
    for x, W, b, sigma2 in _cases():
        (n, d), k = x.shape, W.shape[1]
        where = _where(x, W, sigma2)
        out = call(answer, x, W, b, sigma2, where=where)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            got = type(out).__name__ + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
            raise hinted(hints, "not_pair", f"got {got} ({where}).")
        mean, cov = out
        mean = expect_tensor(mean, shape=(n, k), dtype=F64, where=where, name="the posterior mean")
        if isinstance(cov, torch.Tensor) and cov.dim() == 3:
            raise hinted(hints, "cov_per_example", f"the covariance has shape {tuple(cov.shape)} ({where}).")
        if isinstance(cov, torch.Tensor) and tuple(cov.shape) == (d, d):
            raise hinted(hints, "cov_data_space", f"the covariance has shape {tuple(cov.shape)} ({where}).")
        cov = expect_tensor(cov, shape=(k, k), dtype=F64, where=where, name="the posterior covariance")
        # Bayes' rule for the jointly Gaussian (z, x), through C^{-1}: independent of the reference's M.
        C = W @ W.T + sigma2 * _eye(d)
        gain = torch.linalg.solve(C, W).T  # (k, d) = Wᵀ C^{-1}
        ref_mean = (x - b) @ gain.T
        ref_cov = _eye(k) - gain @ W
        M = W.T @ W + sigma2 * _eye(k)
        M_inv = torch.linalg.inv(M)
        M1_inv = torch.linalg.inv(W.T @ W + _eye(k))
        mean_mistakes = {
            "mean_not_centred": x @ W @ M_inv,
            "mean_missing_M_inv": (x - b) @ W,
            "mean_over_sigma2": (x - b) @ W / sigma2,
            "mean_pca_projection": (x - b) @ W @ torch.linalg.inv(W.T @ W),
            "M_without_sigma2": (x - b) @ W @ M1_inv,
        }
        expect_value(mean, ref_mean, mean_mistakes, hints, where=where, name="the posterior mean",
                     rtol=1e-6, atol=1e-8)
        cov_mistakes = {
            "cov_missing_sigma2": M_inv,
            "cov_pca": sigma2 * torch.linalg.inv(W.T @ W),
            "cov_precision": M / sigma2,
            "cov_prior": _eye(k),
            "cov_M_without_sigma2": sigma2 * M1_inv,
        }
        expect_value(cov, ref_cov, cov_mistakes, hints, where=where, name="the posterior covariance",
                     rtol=1e-6, atol=1e-8)
    return "the mean and covariance match Bayes' rule for the joint Gaussian of (z, x), up to 784 pixels"


