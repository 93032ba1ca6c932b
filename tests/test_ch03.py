"""Chapter 3: its exercise checks reject the common mistakes, and its glued numbers are right.

The checks: every hint a checker can emit is triggered by a hand-made wrong answer and named by
a phrase of its own; correct answers written other ways pass. The glued numbers are compared
with independent computations: eigenvalues from NumPy, log-likelihoods from
`torch.distributions.MultivariateNormal` on the full covariance, factor analysis from a separate
data-based EM written here, principal angles from NumPy's SVD.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exercise_contract import assert_accepts, assert_hint, assert_rejects, stub
from notebook_utils import ROOT
from torch.distributions import MultivariateNormal

import vae_course as vc
from vae_course.teaching.exercises.ch03 import HINTS

CHAPTER = ROOT / "book" / "03_linear_models.ipynb"
F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


def check(exercise_id, fn):
    return vc.exercises.check(exercise_id, fn)


# --- exercise: ppca_log_likelihood ----------------------------------------------------------------

def _cov(W, s2):
    return W @ W.T + s2 * torch.eye(W.shape[0], dtype=W.dtype)


def ll_naive(x, W, mu, s2):
    """The d x d way: correct, only slower."""
    return MultivariateNormal(mu, covariance_matrix=_cov(W, s2)).log_prob(x)


def ll_explicit_inverse(x, W, mu, s2):
    C = _cov(W, s2)
    xc = x - mu
    quad = (xc @ torch.linalg.inv(C) * xc).sum(1)
    return -0.5 * (W.shape[0] * LOG_2PI + torch.logdet(C) + quad)


def ll_as_in_the_chapter(x, W, mu, sigma2):
    d, k = W.shape
    sigma2 = torch.as_tensor(sigma2, dtype=W.dtype)
    M = W.T @ W + sigma2 * torch.eye(k, dtype=W.dtype)
    xc = x - mu
    proj = xc @ W
    quad = ((xc**2).sum(1) - ((proj @ torch.linalg.inv(M)) * proj).sum(1)) / sigma2
    logdet = (d - k) * torch.log(sigma2) + torch.logdet(M)
    return -0.5 * (d * math.log(2 * math.pi) + logdet + quad)


def ll_by_eigenvalues(x, W, mu, s2):
    """Through the eigenvalues of W Wᵀ + sigma2 I: the k from W's singular values, d - k equal to sigma2."""
    U, S, _ = torch.linalg.svd(W, full_matrices=False)
    lam = S**2 + s2
    xc = x - mu
    proj = xc @ U
    quad = (proj**2 / lam).sum(1) + ((xc**2).sum(1) - (proj**2).sum(1)) / s2
    logdet = torch.log(lam).sum() + (W.shape[0] - W.shape[1]) * torch.log(torch.as_tensor(s2, dtype=F64))
    return -0.5 * (W.shape[0] * LOG_2PI + logdet + quad)


@pytest.mark.parametrize("fn", [vc.ppca_log_likelihood, ll_naive, ll_explicit_inverse, ll_as_in_the_chapter,
                                ll_by_eigenvalues], ids=lambda f: f.__name__)
def test_ppca_log_likelihood_check_passes_correct_answers(fn):
    assert_accepts("ppca_log_likelihood", fn)


def _parts(x, W, mu, s2):
    """(d log 2π, log|C|, the quadratic forms, log|M|, log sigma2, k) by the d x d covariance."""
    C = _cov(W, s2)
    xc = x - mu
    d, k = W.shape
    logdet_M = torch.logdet(W.T @ W + s2 * torch.eye(k, dtype=F64))
    return d * LOG_2PI, torch.logdet(C), (xc @ torch.linalg.inv(C) * xc).sum(1), logdet_M, torch.log(s2), d, k


def _ll(combine):
    return lambda x, W, mu, s2: combine(*_parts(x, W, mu, s2))


def _woodbury_quad(x, W, mu, s2):
    xc = x - mu
    proj = xc @ W
    return (xc**2).sum(1) - ((proj @ torch.linalg.inv(W.T @ W + s2 * torch.eye(W.shape[1], dtype=F64))) * proj).sum(1)


LL_HINTED = {
    "single_number": (lambda x, W, mu, s2: ll_naive(x, W, mu, s2).mean(), "not the average or sum over examples"),
    "sign_flip": (lambda x, W, mu, s2: -ll_naive(x, W, mu, s2), "the sign is flipped"),
    "missing_log_2pi": (_ll(lambda c, ld, q, *_: -0.5 * (ld + q)), "normalising constant is missing"),
    "missing_logdet": (_ll(lambda c, ld, q, *_: -0.5 * (c + q)), "-1/2 log|W Wᵀ + sigma2 I| is missing"),
    "d_log_sigma2": (_ll(lambda c, ld, q, ldm, ls, d, k: -0.5 * (c + d * ls + ldm + q)), "the power of sigma2 is d - k"),
    "missing_sigma2_power": (_ll(lambda c, ld, q, ldm, ls, d, k: -0.5 * (c + ldm + q)), "is only log|M|"),
    "quad_not_divided": (lambda x, W, mu, s2: -0.5 * (W.shape[0] * LOG_2PI + torch.logdet(_cov(W, s2))
                                                      + _woodbury_quad(x, W, mu, s2)), "not divided by sigma2"),
    "W_ignored": (lambda x, W, mu, s2: MultivariateNormal(mu, s2 * torch.eye(W.shape[0], dtype=F64)).log_prob(x),
                  "ignores W"),
    "missing_half": (_ll(lambda c, ld, q, *_: -(c + ld + q)), "the factor 1/2 is missing"),
    "sigma2_as_std": (lambda x, W, mu, s2: ll_naive(x, W, mu, s2 ** 2), "used as a standard deviation"),
    "not_centred": (lambda x, W, mu, s2: ll_naive(x, W, torch.zeros_like(mu), s2), "x was not centred"),
    "same_value": (lambda x, W, mu, s2: ll_naive(x, W, mu, s2).mean().expand(x.shape[0]), "the same value"),
    "sum_repeated": (lambda x, W, mu, s2: ll_naive(x, W, mu, s2).sum().expand(x.shape[0]),
                     "the sum of log p over all examples"),
}


@pytest.mark.parametrize("key", LL_HINTED)
def test_ppca_log_likelihood_check_gives_the_hint_of_each_mistake(key):
    fn, phrase = LL_HINTED[key]
    assert_hint("ppca_log_likelihood", HINTS["ppca_log_likelihood"], key, fn, phrase)


def test_every_ppca_log_likelihood_hint_has_a_mistake_that_triggers_it():
    assert set(LL_HINTED) == set(HINTS["ppca_log_likelihood"])


def test_the_d_log_sigma2_mistake_gets_its_own_hint_not_the_missing_logdet_one():
    message = assert_rejects("ppca_log_likelihood", LL_HINTED["d_log_sigma2"][0], "matrix determinant lemma")
    assert "is missing" not in message and "(d - k)" in message


LL_OTHER = {
    "detached": (lambda *a: ll_naive(*a).detach(), "carries no gradient"),
    "float32 output": (lambda *a: ll_naive(*a).float(), "should have dtype torch.float64"),
    "per-dimension values": (lambda x, W, mu, s2: x * 0 + ll_naive(x, W, mu, s2)[:, None], "should have shape (5,)"),
    "off by 0.01 nats": (lambda *a: ll_naive(*a) + 0.01, "wrong value of log p(x)"),
    "stub": (stub, "not implemented yet"),
    "crash": (lambda x, W, mu, s2: x @ W.T, "raised RuntimeError"),
    "wrong only at 784 pixels": (lambda x, W, mu, s2: ll_naive(x, W, mu, s2) + (1e-3 if x.shape[1] == 784 else 0),
                                 "for x of shape (6, 784), W of shape (784, 20)"),
}


@pytest.mark.parametrize("name", LL_OTHER)
def test_ppca_log_likelihood_check_rejects_other_wrong_answers(name):
    fn, words = LL_OTHER[name]
    assert "Hint" not in assert_rejects("ppca_log_likelihood", fn, words)


# --- exercise: ppca_posterior ----------------------------------------------------------------------

def posterior_by_conditioning(x, W, mu, s2):
    C = _cov(W, s2)
    K = torch.linalg.solve(C, W)  # C^-1 W
    return (x - mu) @ K, torch.eye(W.shape[1], dtype=F64) - W.T @ K


def posterior_by_precision(x, W, mu, s2):
    """Precision I + Wᵀ W / sigma2; mean = cov Wᵀ (x - mu) / sigma2."""
    cov = torch.linalg.inv(torch.eye(W.shape[1], dtype=F64) + W.T @ W / s2)
    return (x - mu) @ W @ cov / s2, cov


def posterior_as_in_the_chapter(x, W, mu, sigma2):
    k = W.shape[1]
    M = W.T @ W + sigma2 * torch.eye(k, dtype=W.dtype)
    M_inv = torch.linalg.inv(M)
    return (x - mu) @ W @ M_inv, sigma2 * M_inv


def _M(W, s2):
    return W.T @ W + s2 * torch.eye(W.shape[1], dtype=F64)


def _with_cov(cov_fn):
    return lambda x, W, mu, s2: (posterior_by_conditioning(x, W, mu, s2)[0], cov_fn(W, s2))


def _with_mean(mean_fn):
    return lambda x, W, mu, s2: (mean_fn(x, W, mu, s2), posterior_by_conditioning(x, W, mu, s2)[1])


@pytest.mark.parametrize("fn", [vc.ppca_posterior, posterior_by_conditioning, posterior_by_precision,
                                posterior_as_in_the_chapter], ids=lambda f: f.__name__)
def test_ppca_posterior_check_passes_correct_answers(fn):
    assert_accepts("ppca_posterior", fn)


POST_HINTED = {
    "not_pair": (lambda *a: posterior_by_conditioning(*a)[0], "return a pair (mean, cov)"),
    "cov_per_example": (lambda x, W, mu, s2: (posterior_by_conditioning(x, W, mu, s2)[0],
                                              posterior_by_conditioning(x, W, mu, s2)[1].expand(x.shape[0], -1, -1)),
                        "the same for every example"),
    "cov_data_space": (_with_cov(lambda W, s2: s2 * W @ torch.linalg.inv(_M(W, s2)) @ W.T), "not (d, d)"),
    "mean_not_centred": (_with_mean(lambda x, W, mu, s2: x @ W @ torch.linalg.inv(_M(W, s2))), "does not subtract b"),
    "mean_missing_M_inv": (_with_mean(lambda x, W, mu, s2: (x - mu) @ W), "the mean is missing M^{-1}"),
    "mean_over_sigma2": (_with_mean(lambda x, W, mu, s2: (x - mu) @ W / s2), "/ sigma2 without M^{-1}"),
    "mean_pca_projection": (_with_mean(lambda x, W, mu, s2: (x - mu) @ W @ torch.linalg.inv(W.T @ W)),
                            "the PCA projection"),
    "M_without_sigma2": (_with_mean(lambda x, W, mu, s2: (x - mu) @ W @ torch.linalg.inv(W.T @ W + torch.eye(
        W.shape[1], dtype=F64))), "must be scaled by sigma2"),
    "cov_missing_sigma2": (_with_cov(lambda W, s2: torch.linalg.inv(_M(W, s2))), "missing the factor sigma2"),
    "cov_pca": (_with_cov(lambda W, s2: s2 * torch.linalg.inv(W.T @ W)), "sigma2 (Wᵀ W)^{-1}, not"),
    "cov_precision": (_with_cov(lambda W, s2: _M(W, s2) / s2), "the posterior precision"),
    "cov_prior": (_with_cov(lambda W, s2: torch.eye(W.shape[1], dtype=F64)), "the prior covariance I"),
    "cov_M_without_sigma2": (_with_cov(lambda W, s2: s2 * torch.linalg.inv(W.T @ W + torch.eye(W.shape[1], dtype=F64))),
                             "the covariance uses Wᵀ W + I"),
}


@pytest.mark.parametrize("key", POST_HINTED)
def test_ppca_posterior_check_gives_the_hint_of_each_mistake(key):
    fn, phrase = POST_HINTED[key]
    assert_hint("ppca_posterior", HINTS["ppca_posterior"], key, fn, phrase)


def test_every_ppca_posterior_hint_has_a_mistake_that_triggers_it():
    assert set(POST_HINTED) == set(HINTS["ppca_posterior"])


POST_OTHER = {
    "transposed mean": (lambda *a: (posterior_by_conditioning(*a)[0].T, posterior_by_conditioning(*a)[1]),
                        "the posterior mean should have shape (5, 3), got (3, 5)"),
    "float32 covariance": (lambda *a: (posterior_by_conditioning(*a)[0], posterior_by_conditioning(*a)[1].float()),
                           "the posterior covariance should have dtype torch.float64"),
    "cov with the wrong sign": (_with_cov(lambda W, s2: -s2 * torch.linalg.inv(_M(W, s2))),
                                "wrong value of the posterior covariance"),
    "stub": (stub, "not implemented yet"),
    "wrong only at 784 pixels": (_with_mean(lambda x, W, mu, s2: posterior_by_conditioning(x, W, mu, s2)[0]
                                            * (1.001 if x.shape[1] == 784 else 1)), "W of shape (784, 20)"),
}


@pytest.mark.parametrize("name", POST_OTHER)
def test_ppca_posterior_check_rejects_other_wrong_answers(name):
    fn, words = POST_OTHER[name]
    assert "Hint" not in assert_rejects("ppca_posterior", fn, words)


def test_chapter_3_exercises_are_registered():
    known = vc.exercises.known_exercises()
    for eid, ref in (("ppca_log_likelihood", vc.ppca_log_likelihood), ("ppca_posterior", vc.ppca_posterior)):
        assert known[eid].chapter == "03_linear_models" and known[eid].reference is ref


# --- the chapter ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    x, _ = vc.load_mnist("train")
    xt, yt = vc.load_mnist("test")
    return x.double(), xt.double(), yt


@pytest.fixture(scope="module")
def eig(data):
    """Eigenvalues (descending) and eigenvectors of the 1/N sample covariance, from NumPy."""
    X = data[0].numpy()
    S = np.cov(X, rowvar=False, bias=True)
    w, v = np.linalg.eigh(S)
    return torch.from_numpy(w[::-1].copy()), torch.from_numpy(v[:, ::-1].copy())


def ppca_from_numpy(X, eig, k):
    """PPCA's closed form from the NumPy eigen-decomposition: (mu, W, sigma2)."""
    lam, V = eig
    s2 = lam[k:].mean()
    return X.mean(0), V[:, :k] * torch.sqrt(lam[:k] - s2), s2


def mvn_mean_ll(x, mu, cov):
    return MultivariateNormal(mu, covariance_matrix=cov).log_prob(x).mean().item()


def test_data_and_pca_numbers(glued, data, eig):
    X = data[0]
    lam, _ = eig
    assert (glued["n_train"], glued["n_test"], glued["d"]) == (4000, 1000, 784)
    assert glued["n_const_pixels"] == int((X.numpy().std(0) == 0).sum())
    cum = torch.cumsum(lam, 0) / lam.sum()
    assert glued["var_10"] == pytest.approx(100 * cum[9].item(), rel=1e-8)
    assert glued["var_50"] == pytest.approx(100 * cum[49].item(), rel=1e-8)
    assert glued["var_threshold"] == 90
    assert glued["k_90"] == int((cum < 0.9).sum()) + 1
    k = glued["k_rec"]
    assert glued["pca_discarded"] == pytest.approx(lam[k:].sum().item(), rel=1e-9)
    assert glued["pca_error"] == pytest.approx(lam[k:].sum().item(), rel=1e-9)


def test_ppca_numbers(glued, data, eig):
    X, Xt, _ = data
    k = glued["k_ppca"]
    mu, W, s2 = ppca_from_numpy(X, eig, k)
    lam = eig[0]
    C = W @ W.T + s2 * torch.eye(784, dtype=F64)
    assert glued["ppca_sigma2"] == pytest.approx(s2.item(), rel=1e-9)
    assert glued["ppca_sigma"] == pytest.approx(math.sqrt(s2.item()), rel=1e-9)
    assert glued["ppca_train"] == pytest.approx(mvn_mean_ll(X, mu, C), rel=1e-8)
    assert glued["ppca_test"] == pytest.approx(mvn_mean_ll(Xt, mu, C), rel=1e-8)
    assert glued["ppca_test_per_pixel"] == pytest.approx(glued["ppca_test"] / 784, rel=1e-12)
    for name in ("sigma2_gap", "rotation_gap", "mvn_gap", "bayes_gap"):
        assert 0 <= glued[name] < 1e-8, name
    # the posterior covariance is sigma2 M^-1 with M = Lambda_k in the eigenbasis: stds sqrt(sigma2 / lambda_j)
    assert glued["post_std_min"] == pytest.approx(math.sqrt(s2 / lam[0]), rel=1e-8)
    assert glued["post_std_max"] == pytest.approx(math.sqrt(s2 / lam[k - 1]), rel=1e-8)


def test_reconstructions_and_samples(glued, data, eig):
    """The reconstructions are recomputed independently; the samples are this chapter's one wiring check
    (the package's W, whose eigenvector signs are a convention, with the chapter's seed)."""
    X, Xt, _ = data
    k = glued["k_ppca"]
    mu, W, s2 = ppca_from_numpy(X, eig, k)
    post_mean, _ = posterior_by_conditioning(Xt, W, mu, s2)
    recon = mu + post_mean @ W.T
    assert glued["recon_mse"] == pytest.approx(((recon - Xt) ** 2).sum(1).mean().item(), rel=1e-8)
    z = torch.randn(10, k, generator=vc.make_generator(1), dtype=F64)
    means = mu + z @ vc.fit_ppca(X.float(), k).W.T  # the package's W: the signs of eigenvectors are a convention
    assert glued["sample_min"] == pytest.approx(means.min().item(), rel=1e-8)
    assert glued["sample_max"] == pytest.approx(means.max().item(), rel=1e-8)
    assert glued["sample_min"] < 0 and glued["sample_max"] > 1  # as the prose says


def test_log_likelihood_against_latent_dimension(glued, data, eig):
    X, Xt, _ = data
    scores = {kk: (tr, te) for kk, tr, te in glued["ppca_scores"]}
    for kk in (1, 20, 200, 600):
        mu, W, s2 = ppca_from_numpy(X, eig, kk)
        C = W @ W.T + s2 * torch.eye(784, dtype=F64)
        assert scores[kk][0] == pytest.approx(mvn_mean_ll(X, mu, C), rel=1e-6, abs=1e-5), kk
        assert scores[kk][1] == pytest.approx(mvn_mean_ll(Xt, mu, C), rel=1e-6, abs=1e-5), kk
    ks = sorted(scores)
    train = [scores[kk][0] for kk in ks]
    test = [scores[kk][1] for kk in ks]
    assert all(a < b for a, b in zip(train, train[1:])), "training log-likelihood must rise with k"
    best = ks[int(np.argmax(test))]
    assert glued["k_best"] == best and ks[0] < best < ks[-1], "the test score peaks inside the grid"
    assert glued["ll_best_test"] == pytest.approx(scores[best][1], abs=1e-5)
    assert glued["ll_best_train"] == pytest.approx(scores[best][0], abs=1e-5)
    assert glued["k_max"] == ks[-1]
    assert glued["ll_kmax_test"] == pytest.approx(scores[ks[-1]][1], abs=1e-5)
    assert glued["ll_kmax_train"] == pytest.approx(scores[ks[-1]][0], abs=1e-5)
    assert glued["ll_kmax_test"] < glued["ll_best_test"] - 100
    assert glued["sigma2_kmax"] == pytest.approx(eig[0][ks[-1]:].mean().item(), rel=1e-6)


def fa_by_data_em(X, k, steps, floor, eig):
    """Factor analysis by EM written over the examples (not the covariance), from the PPCA start."""
    mu, W, s2 = ppca_from_numpy(X, eig, k)
    Xc = X - mu
    n = X.shape[0]
    psi = torch.full((X.shape[1],), float(s2), dtype=F64).clamp_min(floor)
    eye = torch.eye(k, dtype=F64)
    for _ in range(steps):
        G = torch.linalg.inv(eye + W.T @ (W / psi[:, None]))
        Ez = Xc @ (W / psi[:, None]) @ G  # (n, k) posterior means
        sum_zz = n * G + Ez.T @ Ez
        xz = Xc.T @ Ez  # (d, k)
        W = xz @ torch.linalg.inv(sum_zz)
        psi = ((Xc**2).mean(0) - (W * xz).sum(1) / n).clamp_min(floor)
    return mu, W, psi


@pytest.fixture(scope="module")
def fa_independent(glued, data, eig):
    X = data[0]
    return {floor: fa_by_data_em(X, glued["k_ppca"], glued["fa_steps"], floor, eig) for floor in (1e-2, 1e-3, 1e-4)}


def test_factor_analysis_numbers(glued, data, fa_independent):
    X, Xt, _ = data
    assert glued["fa_floor"] == 1e-3
    assert glued["fa_floor_grey"] == pytest.approx(255 * math.sqrt(1e-3))
    mu, W, psi = fa_independent[1e-3]
    C = W @ W.T + torch.diag(psi)
    assert glued["fa_train"] == pytest.approx(mvn_mean_ll(X, mu, C), rel=1e-7)
    assert glued["fa_test"] == pytest.approx(mvn_mean_ll(Xt, mu, C), rel=1e-7)
    assert glued["fa_at_floor"] == int((psi <= 1e-3).sum())
    assert glued["fa_at_floor"] >= glued["n_const_pixels"]
    assert glued["fa_ll_start"] == pytest.approx(glued["ppca_train"], rel=1e-10)
    assert glued["fa_ll_end"] == pytest.approx(glued["fa_train"], rel=1e-10)
    assert glued["fa_ll_start"] < glued["fa_ll_step1"] < glued["fa_ll_end"]
    assert 0 <= glued["fa_min_increase"] <= glued["fa_last_increase"] + 1e-12
    assert glued["fa_gain_test"] == pytest.approx(glued["fa_test"] - glued["ppca_test"], rel=1e-10)
    scores = {f: (a, b) for f, a, b in glued["fa_floor_scores"]}
    for floor, (mu, W, psi) in fa_independent.items():
        C = W @ W.T + torch.diag(psi)
        assert scores[floor][0] == pytest.approx(mvn_mean_ll(X, mu, C), rel=1e-6), floor
        assert scores[floor][1] == pytest.approx(mvn_mean_ll(Xt, mu, C), rel=1e-6), floor
    assert glued["floor_shift_train"] == pytest.approx(scores[1e-4][0] - scores[1e-2][0], abs=1e-5)
    assert scores[1e-4][0] > scores[1e-3][0] > scores[1e-2][0]


def test_factor_analysis_gain_split_and_refit_on_varying_pixels(glued, data, eig, fa_independent):
    """FA's advantage split exactly into varying pixels and the rest; the floor-free refit."""
    X, Xt, _ = data
    k = glued["k_ppca"]
    var = torch.from_numpy(X.numpy().var(0))
    vary = var > glued["vary_threshold"]
    assert glued["vary_threshold"] == 1e-2 and glued["vary_grey"] == pytest.approx(25.5)
    assert (glued["n_vary"], glued["n_quiet"]) == (int(vary.sum()), int((~vary).sum()))
    assert glued["n_quiet"] > glued["n_const_pixels"]
    mu, W, s2 = ppca_from_numpy(X, eig, k)
    C = W @ W.T + s2 * torch.eye(784, dtype=F64)
    ppca_total = mvn_mean_ll(Xt, mu, C)
    # the marginal of a Gaussian on a subset of coordinates: the sub-vector and sub-matrix
    ppca_vary = mvn_mean_ll(Xt[:, vary], mu[vary], C[vary][:, vary])
    split = {f: (a, b) for f, a, b in glued["fa_split"]}
    for floor, (mu_f, W_f, psi_f) in fa_independent.items():
        C_f = W_f @ W_f.T + torch.diag(psi_f)
        gain_total = mvn_mean_ll(Xt, mu_f, C_f) - ppca_total
        gain_vary = mvn_mean_ll(Xt[:, vary], mu_f[vary], C_f[vary][:, vary]) - ppca_vary
        assert split[floor][0] == pytest.approx(gain_vary, abs=1e-4), floor
        assert split[floor][1] == pytest.approx(gain_total - gain_vary, abs=1e-4), floor
    assert glued["gain_vary"] == pytest.approx(split[1e-3][0], abs=1e-5)
    assert glued["gain_quiet"] == pytest.approx(split[1e-3][1], abs=1e-5)
    assert glued["gain_vary_low"] == pytest.approx(split[1e-4][0], abs=1e-5)
    assert glued["gain_quiet_low"] == pytest.approx(split[1e-4][1], abs=1e-5)
    # as the prose says: most of the gain is the quiet pixels, set by the floor; the varying part is not
    assert glued["gain_quiet"] > glued["gain_vary"] > 0
    assert glued["gain_quiet_low"] > glued["gain_quiet"] + 100
    assert abs(glued["gain_vary_low"] - glued["gain_vary"]) < 0.1
    # the refit on the varying pixels only, from an independent eigen-decomposition and data-based EM
    Xv, Xtv = X[:, vary], Xt[:, vary]
    w, v = np.linalg.eigh(np.cov(Xv.numpy(), rowvar=False, bias=True))
    eig_v = (torch.from_numpy(w[::-1].copy()), torch.from_numpy(v[:, ::-1].copy()))
    mu_v, W_v, s2_v = ppca_from_numpy(Xv, eig_v, k)
    dv = Xv.shape[1]
    assert glued["refit_ppca"] == pytest.approx(
        mvn_mean_ll(Xtv, mu_v, W_v @ W_v.T + s2_v * torch.eye(dv, dtype=F64)), rel=1e-7)
    mu_f, W_f, psi_f = fa_by_data_em(Xv, k, glued["fa_steps"], 1e-3, eig_v)
    assert glued["refit_fa"] == pytest.approx(mvn_mean_ll(Xtv, mu_f, W_f @ W_f.T + torch.diag(psi_f)), rel=1e-7)
    assert glued["refit_gain"] == pytest.approx(glued["refit_fa"] - glued["refit_ppca"], rel=1e-10)
    assert glued["refit_psi_min"] == pytest.approx(psi_f.min().item(), rel=1e-6)
    assert glued["refit_at_floor"] == 0 and glued["refit_psi_min"] > 1e-3
    assert 0 < glued["refit_gain"] < 0.1 * glued["fa_gain_test"]  # "real, and a small fraction"

def _angle_deg(a, b):
    qa, _ = np.linalg.qr(a.numpy())
    qb, _ = np.linalg.qr(b.numpy())
    return math.degrees(math.acos(min(1.0, np.linalg.svd(qa.T @ qb, compute_uv=False).min())))


def test_factor_analysis_beats_ppca_on_heteroscedastic_noise(glued):
    gen = vc.make_generator(3)
    W_true = torch.randn(10, 2, generator=gen, dtype=F64)
    psi = torch.full((10,), 0.1, dtype=F64)
    psi[0] = 6.0
    draws = []
    for _ in range(2):
        z = torch.randn(2000, 2, generator=gen, dtype=F64)
        draws.append(z @ W_true.T + torch.randn(2000, 10, generator=gen, dtype=F64) * psi.sqrt())
    train, test = draws
    # PPCA from NumPy's eigen-decomposition
    w, v = np.linalg.eigh(np.cov(train.numpy(), rowvar=False, bias=True))
    lam, V = torch.from_numpy(w[::-1].copy()), torch.from_numpy(v[:, ::-1].copy())
    s2 = lam[2:].mean()
    W_ppca = V[:, :2] * torch.sqrt(lam[:2] - s2)
    assert glued["toy_angle_ppca"] == pytest.approx(_angle_deg(W_ppca, W_true), rel=1e-6)
    ll_ppca = mvn_mean_ll(test, train.mean(0), W_ppca @ W_ppca.T + s2 * torch.eye(10, dtype=F64))
    assert glued["toy_ll_ppca"] == pytest.approx(ll_ppca, rel=1e-8)
    # factor analysis by the data-based EM above, from the same PPCA start (200 steps, the default floor 1e-3)
    mu_fa, W_fa, psi_fa = fa_by_data_em(train, 2, 200, 1e-3, (lam, V))
    assert glued["toy_angle_fa"] == pytest.approx(_angle_deg(W_fa, W_true), rel=1e-6)
    assert glued["toy_ll_fa"] == pytest.approx(mvn_mean_ll(test, mu_fa, W_fa @ W_fa.T + torch.diag(psi_fa)), rel=1e-8)
    assert glued["toy_psi0_fa"] == pytest.approx(psi_fa[0].item(), rel=1e-6)
    assert glued["toy_psi_true0"] == 6.0
    assert glued["toy_angle_fa"] < 5 < 30 < glued["toy_angle_ppca"]
    assert glued["toy_ll_fa"] > glued["toy_ll_ppca"]


def test_linear_autoencoder_finds_the_pca_subspace(glued, eig):
    k = glued["k_ae"]
    assert (k, glued["ae_steps"]) == (10, 500)
    assert glued["ae_pca_loss"] == pytest.approx(eig[0][k:].sum().item(), rel=1e-9)
    # the trained loss cannot beat the PCA minimum, and it gets within a tiny margin of it
    assert glued["ae_pca_loss"] - 1e-9 <= glued["ae_loss"] <= glued["ae_pca_loss"] + 1e-3
    assert 0 <= glued["ae_max_angle"] < 0.05
    assert glued["ae_max_cos"] > 0.05  # the decoder's columns are a non-orthogonal basis of the subspace
