"""Chapter 3, second edition: the numbers the new sections glue, against independent computations.

Independent here means NumPy's eigendecomposition and log-densities, `torch.distributions`, closed
forms (the KL between two Gaussians of known shape) and a factor-analysis EM written over the
examples in this file, never the package's functions on the chapter's seeds.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from notebook_utils import ROOT
from torch.distributions import MultivariateNormal

import vae_course as vc

CHAPTER = ROOT / "book" / "03_linear_models.ipynb"
LOG_2PI = math.log(2 * math.pi)


@pytest.fixture(scope="module")
def data():
    x, _ = vc.load_mnist("train")
    xt, _ = vc.load_mnist("test")
    return x.double().numpy(), xt.double().numpy()


def np_eig(X):
    S = np.cov(X, rowvar=False, bias=True)
    w, v = np.linalg.eigh(S)
    return X.mean(0), w[::-1].copy(), v[:, ::-1].copy()


def np_ppca_loglik(Xt, mu, lam, V, k):
    """Per-row log N(x; mu, W W^T + s2 I) with the full covariance, by slogdet and solve."""
    s2 = lam[k:].mean()
    W = V[:, :k] * np.sqrt(np.clip(lam[:k] - s2, 0, None))
    C = W @ W.T + s2 * np.eye(len(mu))
    _, logdet = np.linalg.slogdet(C)
    xc = Xt - mu
    quad = (xc * np.linalg.solve(C, xc.T).T).sum(1)
    return -0.5 * (len(mu) * LOG_2PI + logdet + quad)


@pytest.fixture(scope="module")
def full(data):
    return np_eig(data[0])


def test_closed_form_is_the_maximum(glued, data, full):
    X, _ = data
    mu, lam, V = full
    k = glued["k_ppca"]
    closed = np_ppca_loglik(X, mu, lam, V, k).mean()
    s2 = lam[k:].mean()
    profile = -0.5 * (784 * LOG_2PI + np.log(lam[:k]).sum() + (784 - k) * np.log(s2) + 784)
    assert closed == pytest.approx(profile, abs=1e-8)  # the L_max formula of the sketch
    assert glued["ll_max_gap"] < 1e-8
    # EM from a random start climbs to the closed form (never above it, close after 200 steps)
    assert glued["em_ll_1"] < glued["em_ll_10"] < glued["em_ll_end"] <= closed + 1e-9
    assert 0 <= glued["em_gap"] < 1e-2
    assert glued["em_gap"] == pytest.approx(closed - glued["em_ll_end"], abs=1e-8)
    assert glued["em_sigma2"] == pytest.approx(s2, rel=1e-3)
    assert glued["em_angle"] < 0.1


def test_importance_sampling_numbers(glued, data, full):
    _, Xt = data
    mu, lam, V = full
    k = glued["k_ppca"]
    s2 = lam[k:].mean()
    W = V[:, :k] * np.sqrt(lam[:k] - s2)
    x = Xt[:100]
    post_cov = s2 * np.linalg.inv(W.T @ W + s2 * np.eye(k))
    post_mean = (x - mu) @ W @ np.linalg.inv(W.T @ W + s2 * np.eye(k))
    kl_prior = 0.5 * (np.trace(post_cov) + (post_mean**2).sum(1) - k - np.linalg.slogdet(post_cov)[1])
    assert glued["is_prior_kl"] == pytest.approx(kl_prior.mean(), rel=1e-8)
    assert glued["is_prior_log10_draws"] == pytest.approx(kl_prior.mean() / math.log(10), rel=1e-8)
    loc = 0.5 * (post_mean**2).sum(1)
    assert glued["is_kl_loc_share"] == pytest.approx(100 * loc.sum() / kl_prior.sum(), rel=1e-8)
    # KL(N(m, S) || N(m, 4 S)) = k/2 (1/4 - 1 + log 4); KL(N(m, S) || N(m + sd, S)) = k/2 for diagonal S
    assert glued["is_wide_kl"] == pytest.approx(0.5 * k * (0.25 - 1 + math.log(4)), rel=1e-8)
    assert glued["is_moved_kl"] == pytest.approx(0.5 * k, rel=1e-8)
    assert glued["is_exact_worst"] < 1e-8  # zero variance: every estimate is exact
    # the wrong proposals are biased low (Jensen), more so the larger the KL; the prior by hundreds of nats
    assert 0 < glued["is_wide_bias"] < glued["is_moved_bias"] < glued["is_prior_bias"]
    assert glued["is_prior_bias"] > 100 and glued["is_wide_spread"] > 0.1


def test_robust_view_of_k(glued, data, full):
    X, Xt = data
    mu, lam, V = full
    rank = np.linalg.matrix_rank(X - X.mean(0))
    assert glued["cov_rank"] == rank and glued["n_zero_evals"] == 784 - rank
    robust = {kk: (a, b, c) for kk, a, b, c in glued["robust_scores"]}
    for kk in (20, 100, 600):
        ll = np.sort(np_ppca_loglik(Xt, mu, lam, V, kk))
        n_trim = len(Xt) // 100
        assert robust[kk][0] == pytest.approx(ll.mean(), rel=1e-6, abs=1e-6)
        assert robust[kk][1] == pytest.approx(ll[n_trim:].mean(), rel=1e-6)
        assert robust[kk][2] == pytest.approx(np.median(ll), rel=1e-6)
    assert glued["n_trim"] == len(Xt) // 100
    assert glued["k_best_median"] == max(robust, key=lambda kk: robust[kk][2])
    assert glued["median_kmax"] > glued["median_best"] and glued["ll_kmax_test"] < glued["trim_kmax"]
    const = X.std(0) == 0
    ink = (Xt[:, const] > 0).any(1)
    assert glued["n_ink_where_none"] == int(ink.sum())
    ll_kmax = np_ppca_loglik(Xt, mu, lam, V, glued["k_max"])
    assert glued["n_ink_in_worst"] == int(ink[np.argsort(ll_kmax)[: len(Xt) // 100]].sum())
    vary = X.var(0) > 1e-2
    mu_v, lam_v, V_v = np_eig(X[:, vary])
    ll100 = np_ppca_loglik(Xt[:, vary], mu_v, lam_v, V_v, 100).mean()
    ll400 = np_ppca_loglik(Xt[:, vary], mu_v, lam_v, V_v, 400).mean()
    assert glued["vary_k100"] == pytest.approx(ll100, rel=1e-6)
    assert glued["vary_k400"] == pytest.approx(ll400, rel=1e-6)
    assert glued["vary_gain_100_400"] == pytest.approx(ll400 - ll100, rel=1e-6)
    assert glued["vary_gain_100_400"] < 0.25 * glued["full_gain_100_400"]  # "small", as the prose says


def fa_em(X, k, steps, floor):
    """Factor analysis by EM written over the examples, from the PPCA start (as the package documents)."""
    mu, lam, V = np_eig(X)
    s2 = lam[k:].mean()
    W = V[:, :k] * np.sqrt(lam[:k] - s2)
    psi = np.full(X.shape[1], max(s2, floor))
    xc = X - mu
    for _ in range(steps):
        G = np.linalg.inv(np.eye(k) + (W / psi[:, None]).T @ W)  # posterior covariance
        Ez = xc @ (W / psi[:, None]) @ G  # (N, k)
        Ezz = len(X) * G + Ez.T @ Ez
        W = (xc.T @ Ez) @ np.linalg.inv(Ezz)
        psi = np.maximum((xc**2).mean(0) - ((xc.T @ Ez) * W).sum(1) / len(X), floor)
    return mu, W, psi


def np_fa_loglik(x, mu, W, psi):
    C = W @ W.T + np.diag(psi)
    _, logdet = np.linalg.slogdet(C)
    xc = x - mu
    return -0.5 * (x.shape[1] * LOG_2PI + logdet + (xc * np.linalg.solve(C, xc.T).T).sum(1))


def test_varying_pixel_gain_split(glued, data, full):
    X, Xt = data
    mu, lam, V = full
    k = glued["k_ppca"]
    vary = X.var(0) > 1e-2
    s2 = lam[k:].mean()
    W = V[:, :k] * np.sqrt(lam[:k] - s2)
    Cv = (W @ W.T + s2 * np.eye(784))[np.ix_(vary, vary)]  # the marginal of the varying pixels
    ppca_vary = MultivariateNormal(torch.from_numpy(mu[vary]), torch.from_numpy(Cv)).log_prob(
        torch.from_numpy(Xt[:, vary])).mean().item()
    assert glued["ppca_vary"] == pytest.approx(ppca_vary, rel=1e-7)
    mu_v, lam_v, V_v = np_eig(X[:, vary])
    refit = np_ppca_loglik(Xt[:, vary], mu_v, lam_v, V_v, k).mean()
    assert glued["handicap"] == pytest.approx(refit - ppca_vary, rel=1e-6)
    assert glued["sigma2_refit"] == pytest.approx(lam_v[k:].mean(), rel=1e-8)
    assert glued["sigma2_refit"] > glued["ppca_sigma2"]  # the quiet pixels drag the full-image sigma2 down
    assert glued["handicap"] + glued["fa_own"] + glued["fa_rest"] == pytest.approx(glued["gain_vary"], abs=1e-8)
    assert glued["handicap"] > glued["fa_own"] > 0  # "most of the varying-pixel gain is PPCA's handicap"
    assert glued["n_const_of_quiet"] == int((X.var(0) == 0).sum())
    assert glued["mean_var_quiet"] == pytest.approx(X.var(0)[~vary].mean(), rel=1e-6)
    assert glued["mean_var_vary"] == pytest.approx(X.var(0)[vary].mean(), rel=1e-6)


def test_floor_chosen_on_held_out_data(glued, data):
    X, _ = data
    k, steps = glued["k_ppca"], glued["fa_steps"]
    scores = dict(glued["valid_score_table"])
    assert glued["floor_chosen"] == max(scores, key=scores.get)
    for floor in (glued["floor_chosen"], 1e-6):
        mu, W, psi = fa_em(X[:3000], k, steps, floor)
        assert scores[floor] == pytest.approx(np_fa_loglik(X[3000:], mu, W, psi).mean(), rel=1e-5)
    assert glued["valid_smallest"] < glued["valid_best"]


def test_dequantization(glued, data):
    X, Xt = data
    d, k = 784, glued["k_ppca"]
    assert glued["deq_offset"] == pytest.approx(d * math.log(256), rel=1e-12)
    assert glued["deq_noise_var"] == pytest.approx(1 / (12 * 256**2), rel=1e-12)
    # An independent dequantization (other noise): the bits per dimension agree to sampling error.
    rng = np.random.default_rng(2024)
    Y = (255 * X + rng.random(X.shape)) / 256
    Yt = (255 * Xt + rng.random(Xt.shape)) / 256
    mu, lam, V = np_eig(Y)
    bpd = -(np_ppca_loglik(Yt, mu, lam, V, k).mean() - d * math.log(256)) / (d * math.log(2))
    assert glued["deq_ppca_bpd"] == pytest.approx(bpd, abs=0.02)
    assert 0 < glued["deq_ppca_bpd"] < 8  # better than the uniform model, and a bounded score
    # no floor: the smallest noise variance is set by the dequantization noise of the blank pixels
    assert 0.8 < glued["deq_fa_psi_min"] / glued["deq_noise_var"] < 1.05
    assert glued["deq_fa_bpd"] > glued["deq_ppca_bpd"] and glued["deq_fa_bpd_median"] < glued["deq_ppca_bpd_median"]


def test_toy_over_seeds(glued):
    assert glued["toy_seeds"] == 10 and glued["toy_fa_better"] == glued["toy_seeds"]
    assert glued["toy_fa_lo"] <= glued["toy_fa_hi"] < glued["toy_ppca_lo"] <= glued["toy_ppca_hi"]
