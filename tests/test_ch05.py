"""Chapter 5, the ELBO: every glued number against an independent computation.

The chapter's exercise checks are tested in tests/test_ch04_07_exercises.py. Here the PPCA models
are rebuilt from NumPy's eigen-decomposition of the sample covariance (only the signs of the
columns of W are taken from `vc.fit_ppca`, since the chapter's random q lives in that basis),
log p(x) comes from `torch.distributions.MultivariateNormal` on the full 784 x 784 covariance, the
posterior from Gaussian conditioning, KL divergences from `torch.distributions.kl_divergence`.
Monte Carlo numbers are pinned by their closed-form expectations and variances, derived in the
docstrings below, with statistical tolerances.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from notebook_utils import ROOT
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import vae_course as vc

CHAPTER = ROOT / "book" / "05_elbo.ipynb"
F64 = torch.float64


# --- independent models -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def X():
    return vc.load_mnist("train")[0].double()


@pytest.fixture(scope="module")
def eig(X):
    """Eigenvalues (descending) and eigenvectors of the 1/N sample covariance, from NumPy."""
    w, v = np.linalg.eigh(np.cov(X.numpy(), rowvar=False, bias=True))
    return torch.from_numpy(w[::-1].copy()), torch.from_numpy(v[:, ::-1].copy())


def ppca_numpy(X, eig, k, signs_from=None):
    """(b, W, sigma2) of the maximum-likelihood PPCA; W's column signs matched to `signs_from`."""
    lam, V = eig
    s2 = lam[k:].mean()
    W = V[:, :k] * torch.sqrt(lam[:k] - s2)
    if signs_from is not None:
        W = W * torch.sign((W * signs_from).sum(0))
    return X.mean(0), W, s2


def posterior(x, b, W, s2):
    """p(z | x) by conditioning the joint Gaussian: mean (N, k), cov (k, k)."""
    C = W @ W.T + s2 * torch.eye(W.shape[0], dtype=F64)
    K = torch.linalg.solve(C, W)  # C^{-1} W
    return (x - b) @ K, torch.eye(W.shape[1], dtype=F64) - W.T @ K


def log_marginal(x, b, W, s2):
    return MultivariateNormal(b, covariance_matrix=W @ W.T + s2 * torch.eye(W.shape[0], dtype=F64)).log_prob(x)


def recon_variance(x, b, W, s2, m, s):
    """Var of log p(x | z) for z = m + s * eps, eps ~ N(0, I), p(x | z) = N(Wz + b, s2 I).

    ||r0 - A eps||^2 with r0 = x - b - W m and A = W diag(s) has variance
    4 |A^T r0|^2 + 2 ||A^T A||_F^2 (Gaussian quadratic form), and log p(x | z) is -1/(2 s2) times it.
    """
    r0 = x - b - m @ W.T  # (N, d)
    Atr = (r0 @ W) * s  # (N, k)
    AtA = (W.T @ W)[None] * s[:, :, None] * s[:, None, :]  # (N, k, k)
    return ((Atr**2).sum(1) + 0.5 * (AtA**2).sum((1, 2))) / s2**2


@pytest.fixture(scope="module")
def model20(X, eig, glued):
    k = glued["k_ppca"]
    b, W, s2 = ppca_numpy(X, eig, k, signs_from=vc.fit_ppca(X, k).W)
    mean, cov = posterior(X, b, W, s2)
    return dict(b=b, W=W, s2=s2, mean=mean, cov=cov, logp=log_marginal(X, b, W, s2))


# --- the chapter's numbers ------------------------------------------------------------------------------

def test_sizes(glued):
    assert (glued["n_train"], glued["d"], glued["k_ppca"]) == (4000, 784, 20)
    assert (glued["n_mc"], glued["S_kl"], glued["S_elbo"], glued["path_image"]) == (100, 1000, 30, 0)


def test_the_identity_holds_to_round_off_for_random_q(glued, model20):
    assert glued["logp_mean"] == pytest.approx(model20["logp"].mean().item(), rel=1e-9)
    for name in ("identity_error", "gap_post", "path_gap_end", "path_max_mismatch"):
        assert 0 <= glued[name] < 1e-8, name
    assert 0 <= glued["offdiag"] < 1e-12
    cov = model20["cov"]
    assert (cov - torch.diag(cov.diagonal())).abs().max() < 1e-12  # the posterior is diagonal


def test_random_q_gap_matches_its_expectation(glued, model20):
    """For m ~ N(0, I) and log s^2 ~ N(0, I) independently, E KL(q || N(m*, diag(v*))) per image is
    1/2 sum_j [(e^{1/2} + 1 + m*_j^2) / v*_j - 1 + log v*_j]; over 4,000 images the mean is within
    about 0.3% of it (one standard deviation); the band is 2%."""
    v = model20["cov"].diagonal()
    expected = 0.5 * ((math.exp(0.5) + 1 + model20["mean"] ** 2) / v - 1 + torch.log(v)).sum(1).mean().item()
    assert glued["gap_random_mean"] == pytest.approx(expected, rel=0.02)
    assert glued["elbo_random_mean"] == pytest.approx(glued["logp_mean"] - glued["gap_random_mean"], abs=1e-6)
    assert glued["recon_random_mean"] - glued["kl_random_mean"] == pytest.approx(glued["elbo_random_mean"], abs=1e-6)
    # E KL(q || N(0, I)) = 1/2 k (E m^2 + E e^{lv} - 1 - E lv) = k e^{1/2} / 2; sd of the mean ~0.07 nats
    assert glued["kl_random_mean"] == pytest.approx(glued["k_ppca"] * math.exp(0.5) / 2, abs=0.5)


def test_path_from_the_random_q_to_the_posterior(glued, model20, X):
    mu0 = torch.tensor(glued["q0_mu"], dtype=F64)
    lv0 = torch.tensor(glued["q0_logvar"], dtype=F64)
    i = glued["path_image"]
    post = MultivariateNormal(model20["mean"][i], covariance_matrix=model20["cov"])
    v = model20["cov"].diagonal()
    lv_post = torch.log(v)
    for t, name in ((0.0, "path_gap_start"), (0.5, "path_gap_half")):
        m = (1 - t) * mu0 + t * model20["mean"][i]
        lv = (1 - t) * lv0 + t * lv_post
        kl = kl_divergence(MultivariateNormal(m, covariance_matrix=torch.diag(lv.exp())), post).item()
        assert glued[name] == pytest.approx(kl, rel=1e-9), name
    assert glued["path_logp"] == pytest.approx(model20["logp"][i].item(), rel=1e-9)
    assert glued["path_gap_start"] > glued["path_gap_half"] > 0


def test_reconstruction_and_kl_terms_at_the_posterior(glued, model20, X):
    b, W, s2, mean, cov = (model20[key] for key in ("b", "W", "s2", "mean", "cov"))
    k = W.shape[1]
    kl_prior = kl_divergence(MultivariateNormal(mean, covariance_matrix=cov),
                             MultivariateNormal(torch.zeros(k, dtype=F64), torch.eye(k, dtype=F64)))
    # E_q log p(x | z) = log N(x; W m + b, s2 I) - tr(W cov W^T) / (2 s2)
    recon = (Normal(mean @ W.T + b, s2.sqrt()).log_prob(X).sum(1) - torch.trace(W @ cov @ W.T) / (2 * s2))
    assert glued["kl_post_mean"] == pytest.approx(kl_prior.mean().item(), rel=1e-9)
    assert glued["recon_post_mean"] == pytest.approx(recon.mean().item(), rel=1e-9)
    assert glued["recon_post_mean"] == pytest.approx((model20["logp"] + kl_prior).mean().item(), rel=1e-9)
    assert glued["elbo_post_mean"] == pytest.approx(model20["logp"].mean().item(), rel=1e-9)
    assert glued["loss_post"] == pytest.approx(-glued["elbo_post_mean"], rel=1e-12)
    assert glued["post_var_mean"] == pytest.approx(cov.diagonal().mean().item(), rel=1e-9)


def test_random_q_loses_on_reconstruction_not_on_the_kl(glued, model20):
    """The prose: the random q's KL to the prior is smaller than the posterior's (its variances are
    near the prior's, the posterior's are small, the means of similar size), so its ELBO's whole
    shortfall comes from the reconstruction term."""
    assert glued["kl_random_mean"] < glued["kl_post_mean"]
    assert glued["recon_post_mean"] - glued["recon_random_mean"] > glued["elbo_post_mean"] - glued["elbo_random_mean"]
    assert glued["post_var_mean"] < 0.1  # narrow, next to the random q's variances around one
    rms_post = model20["mean"].pow(2).mean().sqrt().item()
    assert 0.5 < rms_post < 2  # the posterior means are of the size of the random ones (sd 1)


def test_monte_carlo_kl_against_its_closed_forms(glued, model20):
    """The single-draw estimator log q(z) - log p(z) has mean KL(q || N(0, I)) and variance
    sum_j [mu_j^2 s_j^2 + (s_j^2 - 1)^2 / 2] (derived in the chapter)."""
    n = glued["n_mc"]
    mu, var = model20["mean"][:n], model20["cov"].diagonal().expand(n, -1)
    kl = kl_divergence(Normal(mu, var.sqrt()), Normal(0.0, 1.0)).sum(1)
    formula = (mu**2 * var + 0.5 * (var - 1) ** 2).sum(1).mean().item()
    assert glued["kl_closed_mean"] == pytest.approx(kl.mean().item(), rel=1e-9)
    assert glued["var_kl_formula"] == pytest.approx(formula, rel=1e-9)
    # the mean of 100 sample variances of 1,000 draws each: about 1% relative error; band 10%
    assert glued["var_kl_mc"] == pytest.approx(formula, rel=0.10)
    se = math.sqrt(formula / (glued["S_kl"] * n))
    assert glued["kl_mc_se"] == pytest.approx(se, rel=0.10)
    assert abs(glued["kl_mc_mean"] - kl.mean().item()) < 5 * se


def test_monte_carlo_elbo_and_its_variances(glued, model20, X):
    n, S = glued["n_mc"], glued["S_elbo"]
    b, W, s2 = model20["b"], model20["W"], model20["s2"]
    x, m = X[:n], model20["mean"][:n]
    sd = model20["cov"].diagonal().sqrt().expand(n, -1)
    var_post = recon_variance(x, b, W, s2, m, sd)  # closed-form KL: only the reconstruction term varies
    var_wide = recon_variance(x, b, W, s2, m, 2 * sd)
    exact = model20["logp"][:n].mean().item()  # q is the exact posterior: ELBO = log p(x)
    assert glued["elbo_exact_mean"] == pytest.approx(exact, rel=1e-9)
    se = math.sqrt(var_post.mean().item() / (S * n))
    assert abs(glued["elbo_mc_mean"] - exact) < 5 * se
    # the standard error is estimated from 100 per-image differences: ~7% relative error
    assert 0.75 * se < glued["elbo_mc_se"] < 1.3 * se
    # sample variances of 30 draws, averaged over 100 images: a few % relative error; band 15%
    assert glued["var_single_post"] == pytest.approx(var_post.mean().item(), rel=0.15)
    assert glued["var_single_wide"] == pytest.approx(var_wide.mean().item(), rel=0.15)
    # at q = posterior: the variance of the reconstruction term equals that of the sampled KL
    formula = (m**2 * sd**2 + 0.5 * (sd**2 - 1) ** 2).sum(1)
    torch.testing.assert_close(var_post, formula, rtol=1e-6, atol=1e-9)
    # all sampled: log p(x) + log p(z | x) - log q(z). Zero at the posterior; with s = 2 s*, each
    # coordinate contributes Var[(1 - 4)/2 eps^2] = 9/2, whatever the image
    assert 0 <= glued["var_allmc_post"] < 1e-18
    assert glued["var_allmc_wide"] == pytest.approx(4.5 * W.shape[1], rel=0.15)
    assert glued["var_allmc_wide"] < glued["var_single_wide"]  # as the text says


def test_one_dimensional_explorer(glued, X, eig):
    b, W, s2 = ppca_numpy(X, eig, 1)
    i = glued["path_image"]
    mean, cov = posterior(X[i : i + 1], b, W, s2)
    assert abs(glued["k1_post_mean"]) == pytest.approx(abs(mean.item()), rel=1e-9)  # the sign of W is free
    assert glued["k1_post_sd"] == pytest.approx(math.sqrt(cov.item()), rel=1e-9)
    assert glued["k1_logp"] == pytest.approx(log_marginal(X[i : i + 1], b, W, s2).item(), rel=1e-9)
    # KL(N(m, v) || N(m*, v*)) = 1/2 [v / v* + (m - m*)^2 / v* - 1 - log(v / v*)], for any image
    assert glued["gap_shift"] == pytest.approx(2.0, abs=1e-8)
    assert glued["gap_narrow"] == pytest.approx(0.5 * (0.25 - 1 + math.log(4)), abs=1e-8)
    assert glued["gap_wide"] == pytest.approx(0.5 * (4 - 1 - math.log(4)), abs=1e-8)
    assert glued["gap_wide"] > glued["gap_narrow"]  # as the text says
