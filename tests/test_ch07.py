"""Chapter 7: the numbers it glues agree with closed forms and with estimators written here.

The problem of the chapter's first sections is rebuilt from the same seeds (its inputs, not its
results). Expectations of polynomials in a standard normal are computed here by Gauss-Hermite
quadrature (NumPy's probabilists' rule, exact for polynomials of the degrees that occur), which
gives the exact variance of each single-draw estimator without the chapter's hand-derived moments;
that variance formula is itself checked against a full tensor-product quadrature in two
dimensions. The leave-one-out baseline is re-estimated by a Monte Carlo written here, with the
score from autograd through `torch.distributions.Normal.log_prob`. The PPCA numbers come from an
eigendecomposition in NumPy and the posterior formulas of Tipping and Bishop, not from the package.
Measured variances are pinned by what theory says they must be, with tolerances several times
their Monte Carlo error.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from notebook_utils import ROOT
from numpy.polynomial.hermite_e import hermegauss
from torch.distributions import Normal

import vae_course as vc

CHAPTER = ROOT / "book" / "07_reparameterization.ipynb"
F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)
NODES, WEIGHTS = hermegauss(12)  # exact for polynomials of degree <= 23 in eps ~ N(0, 1)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def gauss(fn) -> float:
    """E[fn(eps)] for eps ~ N(0, 1), by quadrature."""
    return float(np.sum(WEIGHTS * fn(NODES)))


def chapter_problem():
    """mu, logvar and the observation of the chapter's k = 4 problem (the same seeds), in NumPy."""
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(4, generator=gen, dtype=F64)
    logvar = 0.5 * torch.randn(4, generator=gen, dtype=F64)
    x = torch.randn(4, generator=gen, dtype=F64)
    return mu.numpy(), logvar.numpy(), x.numpy()


def single_draw_variances(mu, logvar, x, b=0.0):
    """Exact per-coordinate variances of the single-draw estimators of grad E_q[log N(x; z, I)].

    f(z) - b = c - 1/2 sum_i u_i(eps_i)^2 with u_i = delta_i + sigma_i eps_i. For coordinate j,
    f - b = A + B(eps_j) with A independent of eps_j; every expectation over eps_j is a quadrature,
    and A's mean and variance are sums of one-dimensional quadratures.
    Returns a dict of arrays (k,): score_mu, score_logvar, path_mu, path_logvar.
    """
    delta, sigma = mu - x, np.exp(0.5 * logvar)
    k, e = len(mu), NODES
    c = -0.5 * k * LOG_2PI - b
    E = lambda values: float(WEIGHTS @ values)  # noqa: E731  (E over eps, on the quadrature nodes)
    half_sq = [-0.5 * (delta[i] + sigma[i] * e) ** 2 for i in range(k)]  # values at the nodes
    means = np.array([E(h) for h in half_sq])
    variances = np.array([E(h**2) for h in half_sq]) - means**2
    out = {name: np.zeros(k) for name in ("score_mu", "score_logvar", "path_mu", "path_logvar")}
    for j in range(k):
        mean_a = c + means.sum() - means[j]
        second_a = variances.sum() - variances[j] + mean_a**2
        B = half_sq[j]
        for name, w in (("score_mu", e / sigma[j]), ("score_logvar", 0.5 * (e**2 - 1))):  # the scores
            second = second_a * E(w**2) + 2 * mean_a * E(B * w**2) + E(B**2 * w**2)
            first = mean_a * E(w) + E(B * w)
            out[name][j] = second - first**2
        slope = -(delta[j] + sigma[j] * e)  # d f / d z_j at the draw
        out["path_mu"][j] = E(slope**2) - E(slope) ** 2
        path_logvar = slope * 0.5 * sigma[j] * e  # times d z_j / d logvar_j
        out["path_logvar"][j] = E(path_logvar**2) - E(path_logvar) ** 2
    return out


def test_the_variance_formula_matches_a_full_two_dimensional_quadrature():
    """The coordinate-split formula against E over (eps_1, eps_2) on a tensor grid (exact)."""
    mu, logvar, x = np.array([0.3, -1.2]), np.array([0.4, -0.6]), np.array([1.0, 0.5])
    e1, e2 = np.meshgrid(NODES, NODES, indexing="ij")
    w = np.outer(WEIGHTS, WEIGHTS)
    sigma = np.exp(0.5 * logvar)
    z1, z2 = mu[0] + sigma[0] * e1, mu[1] + sigma[1] * e2
    for b in (0.0, -3.7):
        fb = -0.5 * ((z1 - x[0]) ** 2 + (z2 - x[1]) ** 2) - LOG_2PI - b
        g = fb * e1 / sigma[0]  # the score-function estimate of d/dmu_1
        exact_var = np.sum(w * g**2) - np.sum(w * g) ** 2
        assert np.sum(w * g) == pytest.approx(x[0] - mu[0], rel=1e-10)
        assert single_draw_variances(mu, logvar, x, b)["score_mu"][0] == pytest.approx(exact_var, rel=1e-10)
        g = fb * 0.5 * (e1**2 - 1)
        exact_var = np.sum(w * g**2) - np.sum(w * g) ** 2
        assert single_draw_variances(mu, logvar, x, b)["score_logvar"][0] == pytest.approx(exact_var, rel=1e-10)
    # the pathwise mu-gradient has variance sigma^2 whatever k is
    assert single_draw_variances(mu, logvar, x)["path_mu"] == pytest.approx(sigma**2, rel=1e-12)


def expected_f(mu, logvar, x):
    """E_q[log N(x; z, I)] as a sum of one-dimensional quadratures."""
    sigma = np.exp(0.5 * logvar)
    return sum(gauss(lambda e, i=i: -0.5 * (mu[i] + sigma[i] * e - x[i]) ** 2) for i in range(len(mu))) \
        - 0.5 * len(mu) * LOG_2PI


def test_expected_value_and_unbiasedness(glued):
    mu, logvar, x = chapter_problem()
    assert glued["expected_f_value"] == pytest.approx(expected_f(mu, logvar, x), rel=1e-12)
    assert glued["n_repeats"] == 100_000
    # an unbiased estimator's mean lies within a few standard errors of the exact gradient
    assert 0 < glued["max_z_score"] < 4.5
    assert 0 < glued["max_z_path"] < 4.5


def test_variance_ratios_match_the_closed_forms(glued):
    mu, logvar, x = chapter_problem()
    v = single_draw_variances(mu, logvar, x)
    ratio_mu = v["score_mu"].sum() / v["path_mu"].sum()
    ratio_logvar = v["score_logvar"].sum() / v["path_logvar"].sum()
    assert glued["ratio_mu"] == pytest.approx(ratio_mu, rel=0.05)
    assert glued["ratio_logvar"] == pytest.approx(ratio_logvar, rel=0.08)
    assert ratio_mu > 100 and ratio_logvar > 50  # "orders of magnitude"


def test_baselines(glued):
    mu, logvar, x = chapter_problem()
    mean_f = expected_f(mu, logvar, x)
    assert glued["baseline_const"] == pytest.approx(mean_f, rel=1e-12)
    plain, with_b = single_draw_variances(mu, logvar, x), single_draw_variances(mu, logvar, x, b=mean_f)
    assert glued["ratio_mu_baseline"] == pytest.approx(with_b["score_mu"].sum() / with_b["path_mu"].sum(), rel=0.06)
    assert glued["baseline_gain"] == pytest.approx(plain["score_mu"].sum() / with_b["score_mu"].sum(), rel=0.06)
    # S = 8 independent draws divide both variances by 8: the ratio is the single-draw one
    assert glued["n_samples_loo"] == 8
    assert glued["ratio_mu_s8"] == pytest.approx(plain["score_mu"].sum() / plain["path_mu"].sum(), rel=0.08)
    assert glued["loo_gain"] == pytest.approx(glued["ratio_mu_s8"] / glued["ratio_mu_loo"], rel=1e-9)
    assert glued["loo_gain"] > 5


def test_leave_one_out_against_a_monte_carlo_written_here(glued):
    """Leave-one-out with S = 8 draws, the score from autograd through Normal.log_prob."""
    mu, logvar, x = (torch.tensor(a) for a in chapter_problem())
    S, R = 8, 40_000
    gen = torch.Generator().manual_seed(123)
    mu_ = mu.expand(R, S, 4).clone().requires_grad_()
    std = torch.exp(0.5 * logvar)
    z = (mu + std * torch.randn(R, S, 4, generator=gen, dtype=F64)).detach()
    log_q = Normal(mu_, std).log_prob(z).sum(-1)  # (R, S)
    (score_mu,) = torch.autograd.grad(log_q.sum(), mu_)  # each draw's own score, (R, S, 4)
    fz = Normal(z, 1.0).log_prob(x).sum(-1)  # log N(x; z, I)
    others = (fz.sum(1, keepdim=True) - fz) / (S - 1)
    loo = ((fz - others)[..., None] * score_mu).mean(1)  # (R, 4)
    assert (loo.mean(0) - (x - mu)).abs().max() < 5 * (loo.std(0) / math.sqrt(R)).max()  # unbiased
    path_var = std.pow(2).sum().item() / S  # the pathwise mu-gradient: sigma^2 per coordinate, / S
    assert glued["ratio_mu_loo"] == pytest.approx(loo.var(0).sum().item() / path_var, rel=0.12)


def test_growth_with_the_latent_dimension(glued):
    assert glued["n_repeats_k"] == 20_000 and glued["k_max"] == 64
    exact = {}
    for kk in (1, 16, 32, 64):
        mu, logvar, x = np.zeros(kk), np.zeros(kk), np.ones(kk)
        mean_f = -kk - 0.5 * kk * LOG_2PI  # E_q f with (mu - x)^2 + sigma^2 = 2 per coordinate
        assert expected_f(mu, logvar, x) == pytest.approx(mean_f, rel=1e-12)
        plain, with_b = single_draw_variances(mu, logvar, x), single_draw_variances(mu, logvar, x, b=mean_f)
        exact[kk] = (plain["score_mu"].mean(), with_b["score_mu"].mean(), plain["path_mu"].mean())
    assert glued["var_k1_score"] == pytest.approx(exact[1][0], rel=0.08)
    assert glued["var_kmax_score"] == pytest.approx(exact[64][0], rel=0.08)
    assert glued["var_kmax_baseline"] == pytest.approx(exact[64][1], rel=0.08)
    assert glued["var_kmax_path"] == pytest.approx(1.0, rel=0.04)
    assert glued["ratio_k1"] == pytest.approx(exact[1][0] / exact[1][2], rel=0.1)
    assert glued["ratio_kmax"] == pytest.approx(exact[64][0] / exact[64][2], rel=0.1)
    assert glued["ratio_kmax_baseline"] == pytest.approx(exact[64][1] / exact[64][2], rel=0.1)
    slopes = [math.log(exact[64][i] / exact[16][i]) / math.log(4) for i in range(3)]
    assert 1.7 < slopes[0] < 2.0 and 0.8 < slopes[1] < 1.05 and slopes[2] == pytest.approx(0, abs=1e-12)
    for name, s in zip(("slope_score", "slope_baseline", "slope_path"), slopes):
        assert glued[name] == pytest.approx(s, abs=0.1), name


@pytest.fixture(scope="module")
def ppca_noise():
    """V_data and V_MC for PPCA with k = 10 on the digits, from NumPy's eigendecomposition."""
    x_train, _ = vc.load_mnist("train")
    X = x_train.double().numpy()
    k = 10
    mean = X.mean(0)
    S = (X - mean).T @ (X - mean) / len(X)
    lam, V = np.linalg.eigh(S)
    lam, V = lam[::-1], V[:, ::-1]
    sigma2 = lam[k:].mean()
    W = V[:, :k] * np.sqrt(lam[:k] - sigma2)
    M = W.T @ W + sigma2 * np.eye(k)
    m = (X - mean) @ W @ np.linalg.inv(M)  # posterior means, M^{-1} W^T (x - mu) per row
    s2 = 1.0 / np.diag(M / sigma2)  # best diagonal q: inverse diagonal of the precision M / sigma2
    g = (X - mean - m @ W.T) / sigma2  # the exact gradient in b of each image
    v_data = ((g - g.mean(0)) ** 2).sum(1).mean()
    v_mc = ((W**2).sum(0) * s2).sum() / sigma2**2
    return v_data, v_mc


def test_one_draw_per_example(glued, ppca_noise):
    v_data, v_mc = ppca_noise
    assert glued["ppca_k"] == 10 and glued["n_batches"] == 1000 and glued["n_draws_s"] == 100
    assert glued["V_data"] == pytest.approx(v_data, rel=1e-6)
    assert glued["V_mc"] == pytest.approx(v_mc, rel=1e-6)
    assert glued["mc_share"] == pytest.approx(100 * v_mc / (v_data + v_mc), rel=1e-6)
    assert glued["mc_share"] < 5  # "only a small fraction"
    for n in (1, 10, 100):  # the variance of the batch average falls like 1/N
        assert n * glued[f"var_n{n}"] == pytest.approx(v_data + v_mc, rel=0.1), n
    assert glued["var_n100_times_n"] == pytest.approx(100 * glued["var_n100"], rel=1e-12)
    assert 100 * glued["var_draws_n100"] == pytest.approx(v_mc, rel=0.15)
    # one image with 100 draws misses the data set's gradient by the spread between images
    assert glued["mse_one_image"] == pytest.approx(v_data + v_mc / 100, rel=0.15)
    assert glued["mse_many_images"] == pytest.approx((v_data + v_mc) / 100, rel=0.1)
    assert glued["mse_gain"] == pytest.approx(glued["mse_one_image"] / glued["mse_many_images"], rel=1e-12)
    assert glued["mse_gain"] > 50


def test_the_mean_of_f_is_close_to_but_not_the_best_constant_baseline():
    """The text: b = E_q[f] is "close to, though not exactly, the variance-minimising constant".

    The variance of (f - b) eps_j / sigma_j is quadratic in b, minimised at b_j = E[f eps_j^2];
    here E[f eps_j^2] = E_q[f] - sigma_j^2, by quadrature.
    """
    mu, logvar, x = chapter_problem()
    mean_f = expected_f(mu, logvar, x)
    delta, sigma = mu - x, np.exp(0.5 * logvar)
    k = len(mu)
    sq_means = np.array([gauss(lambda e, i=i: (delta[i] + sigma[i] * e) ** 2) for i in range(k)])
    best_b = np.array([-0.5 * k * LOG_2PI - 0.5 * (sq_means.sum() - sq_means[j])
                       - 0.5 * gauss(lambda e, j=j: (delta[j] + sigma[j] * e) ** 2 * e**2)
                       for j in range(k)])
    assert best_b == pytest.approx(mean_f - sigma**2, rel=1e-10)
    best = np.array([single_draw_variances(mu, logvar, x, b=best_b[j])["score_mu"][j] for j in range(k)])
    for j in range(k):  # it is the minimum of the quadratic
        for step in (-0.1, 0.1):
            assert single_draw_variances(mu, logvar, x, b=best_b[j] + step)["score_mu"][j] > best[j]
    path = single_draw_variances(mu, logvar, x)["path_mu"].sum()
    with_mean = single_draw_variances(mu, logvar, x, b=mean_f)["score_mu"].sum() / path
    optimal = best.sum() / path
    assert optimal < with_mean < 1.15 * optimal
