"""Chapter 8 (the VAE): its glued numbers are right.

The exercise checks of the chapter are tested in tests/test_ch08_exercises.py. Here each number the
chapter quotes is compared with an independent computation where one exists: the coin-flip cost
d log 2, the binary entropy of the test pixels and the PPCA fits from NumPy, log-likelihoods from
`torch.distributions.MultivariateNormal` on full covariances, principal angles from NumPy's SVD.
Numbers of trained networks have no closed form; they are held to what theory says they must
satisfy (bounds that tighten, an ELBO below the exact log-likelihood, the maximum-likelihood PPCA
above any linear VAE) and to bands stated here, wide enough for another machine's rounding.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from notebook_utils import ROOT
from torch.distributions import MultivariateNormal

import vae_course as vc

CHAPTER = ROOT / "book" / "08_vae.ipynb"
F64 = torch.float64
D = 784


@pytest.fixture(scope="module")
def test_images():
    xt, _ = vc.load_mnist("test")
    return xt.double().numpy()


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) in nats, elementwise, with 0 log 0 = 0."""
    out = np.zeros_like(p)
    inside = (p > 0) & (p < 1)
    q = p[inside]
    out[inside] = -(q * np.log(q) + (1 - q) * np.log(1 - q))
    return out


def ppca_numpy(X: np.ndarray, k: int):
    """Tipping and Bishop's closed form from NumPy's eigh of the 1/N covariance: (mu, W, sigma2)."""
    mu = X.mean(0)
    w, v = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    w, v = w[::-1], v[:, ::-1]
    s2 = w[k:].mean()
    return mu, v[:, :k] * np.sqrt(w[:k] - s2), s2


def mvn_mean_ll(X: np.ndarray, mu, W, s2) -> float:
    W, mu = torch.as_tensor(np.asarray(W), dtype=F64), torch.as_tensor(np.asarray(mu), dtype=F64)
    C = W @ W.T + float(s2) * torch.eye(W.shape[0], dtype=F64)
    return MultivariateNormal(mu, covariance_matrix=C).log_prob(torch.as_tensor(X)).mean().item()


def max_principal_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cos = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1, 1)
    return math.degrees(float(np.arccos(cos.min())))


# --- the assembled loss -----------------------------------------------------------------------------

def test_loss_by_hand_is_the_model_loss_and_starts_at_the_coin_flip(glued):
    assert glued["coin_flip"] == pytest.approx(D * math.log(2), rel=1e-12)
    assert glued["loss_match"] < 1e-3
    # Untrained logits are small: every pixel close to a fair coin, plus a small KL.
    assert abs(glued["untrained_loss"] - glued["coin_flip"]) < 30


def test_training_lowers_the_held_out_negative_elbo(glued):
    assert glued["epochs"] == 15
    assert 0 < glued["train_seconds"] < 180
    # The 784-400-20 VAE after 15 epochs on 4,000 images: stated band (nats per image).
    assert 110 < glued["valid_final"] < 145
    assert 105 < glued["train_final"] < 145
    assert glued["valid_final"] < glued["valid_first"] < glued["untrained_loss"]
    assert glued["valid_final"] < glued["untrained_loss"] - 300


def test_two_dimensional_latent_fits_worse(glued):
    assert (glued["lat2_epochs"], glued["lat2_hidden"]) == (8, 256)
    assert 150 < glued["lat2_valid"] < 230
    assert glued["lat2_valid"] > glued["valid_final"] + 20


# --- what the numbers mean --------------------------------------------------------------------------

def test_bernoulli_floor_and_grey_pixels(glued, test_images):
    H = binary_entropy(test_images).sum(1)
    assert glued["entropy_floor"] == pytest.approx(H.mean(), rel=1e-9)
    grey = ((test_images > 0) & (test_images < 1)).mean()
    assert glued["gray_percent"] == pytest.approx(100 * grey, rel=1e-6)
    # The Bernoulli reconstruction term on grey levels is at most -sum_i H(x_i): the loss is above it.
    assert glued["valid_final"] > glued["entropy_floor"]


def test_binarized_score_is_a_probability_and_close_to_the_grey_one(glued):
    # A log-probability of binary images: the negative ELBO is positive and beats fair coins.
    assert 0 < glued["bin_elbo"] < D * math.log(2)
    # E_b[log Bernoulli(b; p)] over b ~ Bernoulli(x) equals the grey-level value (it is linear in x);
    # only the encoder's input differs, so the two scores are close.
    assert abs(glued["bin_elbo"] - glued["valid_final"]) < 15


def test_dequantized_ppca_against_numpy(glued, test_images):
    x_train, _ = vc.load_mnist("train")
    rng = np.random.default_rng(2024)  # noise of our own: the mean log-density hardly depends on it
    Y = (255 * x_train.double().numpy() + rng.random((len(x_train), D))) / 256
    Yt = (255 * test_images + rng.random(test_images.shape)) / 256
    mu, W, s2 = ppca_numpy(Y, 20)
    ll = mvn_mean_ll(Yt, mu, W, s2)
    assert glued["ppca_deq_ll"] == pytest.approx(ll, abs=3.0)
    assert glued["ppca_deq_ll"] > 0  # a log-density, positive as the text says
    bpd = -(glued["ppca_deq_ll"] - D * math.log(256)) / (D * math.log(2))
    assert glued["ppca_deq_bpd"] == pytest.approx(bpd, rel=1e-9)
    assert glued["ppca_deq_bpd"] < 8  # better than one uniform probability per grey level


# --- held-out log-likelihood ------------------------------------------------------------------------

def test_importance_weighted_estimates_tighten(glued, test_images):
    n = glued["n_iwae"]
    assert n == 200
    k1, k10, k100 = glued["nll_k1"], glued["nll_k10"], glued["nll_k100"]
    # More draws give a tighter bound on -log p(x) (Monte Carlo noise allowed for).
    assert k100 < k10 + 0.3 < k1 + 0.6
    assert k1 - k100 > 1.0
    # K = 1 is an ELBO: close to the held-out negative ELBO (every fifth test image: all digits).
    assert abs(k1 - glued["valid_final"]) < 10
    # Each z gives log p(x | z) <= -sum_i H(x_i) for grey x, so -log p(x) is above the floor.
    floor = binary_entropy(test_images[::5]).sum(1).mean()  # the subset the chapter uses
    assert k100 > floor
    assert glued["nll_bpd"] == pytest.approx(k100 / (D * math.log(2)), rel=1e-9)


def test_log_weights_underflow_in_float32_not_float64(glued):
    lo, med, hi = glued["logw_min"], glued["logw_median"], glued["logw_max"]
    assert lo <= med <= hi < 0
    # with K = 1 the estimate is the log-weight, and the mean log-weight is minus nll_k1
    assert lo < -glued["nll_k1"] < hi
    f64_floor = math.log(float(np.finfo(np.float64).smallest_subnormal))
    assert glued["f64_floor"] == pytest.approx(f64_floor, rel=1e-12)
    assert lo > f64_floor  # float64 holds every weight of these images, as the text says
    # float32 rounds exp(x) to zero below log(smallest subnormal / 2); "for most digits"
    f32_zero = math.log(float(np.finfo(np.float32).smallest_subnormal) / 2)
    assert 50 < glued["logw_f32_zero"] < 100
    assert med < f32_zero < hi
    # "their magnitude grows with the number of pixels": at the same nats per pixel, an image of
    # 64 x 64 x 3 values would be below the float64 floor
    assert med / D * (64 * 64 * 3) < f64_floor


# --- the linear VAE is PPCA -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def low_res():
    """The digits averaged over 4 x 4 blocks (7 x 7 pixels), by NumPy reshapes."""
    x, _ = vc.load_mnist("train")
    xt, _ = vc.load_mnist("test")

    def pool(a):
        return a.double().numpy().reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(a), 49)

    return pool(x), pool(xt)


def test_linear_vae_lands_on_ppca(glued, low_res):
    X, _ = low_res
    k = glued["lin_k"]
    assert (glued["lin_dim"], k, glued["lin_epochs"]) == (49, 2, 150)
    mu, W, s2 = ppca_numpy(X, k)
    assert glued["ppca_lin_sigma2"] == pytest.approx(s2, rel=1e-8)
    assert glued["ppca_lin_ll"] == pytest.approx(mvn_mean_ll(X, mu, W, s2), rel=1e-8)
    W_vae, b_vae = np.array(glued["lin_W"]), np.array(glued["lin_b"])
    assert W_vae.shape == (49, k) and b_vae.shape == (49,)
    lin_ll = mvn_mean_ll(X, b_vae, W_vae, glued["lin_sigma2"])
    assert glued["lin_ll"] == pytest.approx(lin_ll, abs=1e-6)
    assert glued["lin_gap"] == pytest.approx(glued["ppca_lin_ll"] - glued["lin_ll"], abs=1e-9)
    # PPCA is the maximum of the likelihood: no linear VAE is above it; this one is close (benchmark: 0.05).
    assert -1e-9 < glued["lin_gap"] < 0.05
    assert glued["lin_sigma2"] == pytest.approx(s2, rel=0.02)
    angle = max_principal_angle_deg(W_vae, W)
    assert glued["lin_angle_max"] == pytest.approx(angle, abs=1e-4)
    assert angle < 3.0


def _exact_gaussian_ll(X: np.ndarray, mu, W, s2) -> np.ndarray:
    """log N(x_n; mu, W W^T + s2 I) for every row, (N,), by NumPy's slogdet and solve."""
    C = W @ W.T + s2 * np.eye(W.shape[0])
    _, logdet = np.linalg.slogdet(C)
    r = X - mu
    return -0.5 * (np.einsum("nd,nd->n", r, np.linalg.solve(C, r.T).T) + logdet
                   + X.shape[1] * math.log(2 * math.pi))


def _linear_vae_exact_gap(params: dict, X: np.ndarray) -> float:
    """Mean of log p(x) - ELBO(q) for a LinearVAE's glued state_dict, both in closed form (NumPy).

    q = N(E x + e, diag(s^2)), p(x | z) = N(W z + b, sigma2 I):
    E_q[log p(x | z)] = -d/2 log(2 pi sigma2) - (|x - W m - b|^2 + sum_j s_j^2 |w_j|^2) / (2 sigma2),
    KL(q || N(0, I)) = 1/2 sum_j (m_j^2 + s_j^2 - 1 - log s_j^2).
    """
    E, e = np.array(params["encoder.weight"]), np.array(params["encoder.bias"])
    logvar, W, b = np.array(params["enc_logvar"]), np.array(params["W"]), np.array(params["b"])
    s2 = math.exp(params["log_sigma2"])
    m, v = X @ E.T + e, np.exp(logvar)
    d = X.shape[1]
    recon = (-0.5 * d * math.log(2 * math.pi * s2)
             - (((X - m @ W.T - b) ** 2).sum(1) + (v * (W**2).sum(0)).sum()) / (2 * s2))
    kl = 0.5 * (m**2 + v - 1 - logvar).sum(1)
    return float((_exact_gaussian_ll(X, b, W, s2) - (recon - kl)).mean())


def test_linear_vae_importance_sampling_approaches_the_exact_marginal(glued, low_res):
    table = glued["lin_iwae_table"]
    assert [row[0] for row in table] == [1, 10, 100, 1000]
    early, trained = [row[1] for row in table], [row[2] for row in table]
    # K = 1 is the exact ELBO (closed form, no sampling): recompute it in NumPy from the glued weights
    x_lin = low_res[1][::5]
    assert len(x_lin) == 200
    assert early[0] == pytest.approx(_linear_vae_exact_gap(glued["lin_early_params"], x_lin), abs=1e-8)
    assert trained[0] == pytest.approx(_linear_vae_exact_gap(glued["lin_trained_params"], x_lin), abs=1e-8)
    # the glued trained weights are the model the rest of the section measured
    assert np.allclose(glued["lin_trained_params"]["W"], glued["lin_W"], atol=1e-12)
    # ELBO <= IWAE <= exact in expectation: every gap (exact minus estimate) >= 0 up to noise,
    # and the gap shrinks as K grows.
    assert min(early + trained) > -0.02
    assert trained[0] >= 0 and early[0] > 0  # an exact ELBO is below log p(x)
    assert all(b < a + 0.01 for a, b in zip(early, early[1:]))
    assert early[0] > 10 * early[-1] and early[-1] < 0.05
    # "the ELBO is a fraction of a hundredth of a nat below log p(x)" for the trained model
    assert 0 < trained[0] < 0.01
    assert max(abs(g) for g in trained[1:]) < 0.01
    assert glued["gap_early_k1"] == early[0] and glued["gap_early_k1000"] == early[-1]
    assert glued["gap_trained_k1"] == trained[0]
    assert glued["gap_trained_iw_max"] == pytest.approx(max(abs(g) for g in trained[1:]), rel=1e-12)


# --- without the KL term ----------------------------------------------------------------------------

def test_without_the_kl_variances_shrink_and_codes_leave_the_prior(glued):
    assert glued["nokl_epochs"] == 5
    assert 0.01 < glued["kl_var_median"] < 1
    assert glued["nokl_var_median"] < glued["kl_var_median"] / 5
    # With the KL the encoder means stay on the prior's scale; without it they spread out.
    assert 0.5 < glued["kl_mu_spread"] < 1.5
    assert glued["nokl_mu_spread"] > 2 * glued["kl_mu_spread"]
