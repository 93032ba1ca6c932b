"""Chapter 6 (amortization): its glued numbers against independent computations.

Nothing here re-runs the chapter's calls with its seeds to get the same answer. The exact numbers
are recomputed another way: PPCA from NumPy's eigendecomposition, posteriors by conditioning the
joint Gaussian (`part2_models.TorchLinearGaussian`), log p(x) and KL divergences from
`torch.distributions`, the non-linear model's log p(x) by a finer midpoint rule written here
(the decoder evaluated once per grid point), and ELBOs of the chapter's q's by Gauss-Hermite
quadrature instead of sampling. What is stochastic (a trained encoder, Monte Carlo ELBOs, the
timings) is pinned by what must hold: gaps >= 0 up to their Monte Carlo error, the exact
recomputation within a few standard errors, the linear encoder's amortization gap clearly above
the MLP's, the trained PPCA encoder's gap shrinking, the encoder much faster than per-point VI.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from notebook_utils import ROOT
from part2_models import TorchLinearGaussian
from torch.distributions import MultivariateNormal, kl_divergence

import vae_course as vc

CHAPTER = ROOT / "book" / "06_amortization.ipynb"
F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


# --- PPCA, fitted independently ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    x_train, _ = vc.load_mnist("train")
    x_test, _ = vc.load_mnist("test")
    return x_train.double(), x_test.double()


@pytest.fixture(scope="module")
def ppca(glued, digits):
    """Tipping and Bishop's closed form from NumPy's eigh of the 1/N covariance, as a torch model."""
    X, _ = digits
    k = glued["k_ppca"]
    x = X.numpy()
    mean = x.mean(0)
    lam, vecs = np.linalg.eigh((x - mean).T @ (x - mean) / len(x))
    lam, vecs = lam[::-1], vecs[:, ::-1]
    sigma2 = lam[k:].mean()
    W = torch.from_numpy(vecs[:, :k] * np.sqrt(lam[:k] - sigma2)).contiguous()
    return TorchLinearGaussian(W, torch.from_numpy(mean), torch.full((x.shape[1],), sigma2, dtype=F64))


def test_sizes(glued, digits):
    X, X_test = digits
    assert (glued["n_train"], glued["n_test"]) == (len(X), len(X_test)) == (4000, 1000)
    assert glued["k_ppca"] == 8


def test_the_closed_form_linear_encoder_has_no_gaps(glued, ppca):
    # fit_ppca's W has orthogonal columns: the exact posterior is a diagonal Gaussian, so the best
    # diagonal q is the posterior itself and the approximation gap is zero ...
    _, cov = ppca.posterior(torch.zeros(1, ppca.W.shape[0], dtype=F64))
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    assert off_diagonal.abs().max() < 1e-12 * cov.abs().max()
    # ... and the chapter's linear encoder reproduces the best q: both gaps at round-off.
    assert 0 <= glued["enc_mu_diff"] < 1e-10
    assert 0 <= glued["enc_logvar_diff"] < 1e-10
    assert 0 <= glued["orth_approx_max"] < 1e-8
    assert 0 <= glued["orth_amort_max"] < 1e-8


def _rotation(k: int) -> torch.Tensor:
    """The chapter's random orthogonal matrix: the data of the experiment, drawn the same way."""
    R, _ = torch.linalg.qr(torch.randn(k, k, generator=vc.make_generator(0), dtype=F64))
    return R


def test_rotated_ppca_approximation_gap_is_kl_of_the_best_diagonal_q(glued, ppca, digits):
    _, X_test = digits
    k = glued["k_ppca"]
    R = _rotation(k)
    rotated = TorchLinearGaussian(ppca.W @ R, ppca.b, ppca.psi)
    x = X_test[:50]
    # p(x) is unchanged by the rotation (MultivariateNormal on the full 784 x 784 covariance)
    assert torch.allclose(rotated.log_prob(x), ppca.log_prob(x), rtol=0, atol=1e-8)
    assert 0 <= glued["rot_logpx_change"] < 1e-8
    # the approximation gap is KL(best diagonal q || exact posterior), the same for every x
    mean, cov = rotated.posterior(x)
    _, logvar = rotated.encode(x)
    q = MultivariateNormal(mean, covariance_matrix=torch.diag_embed(torch.exp(logvar)))
    kl = kl_divergence(q, MultivariateNormal(mean, covariance_matrix=cov))
    assert kl.std() < 1e-9
    assert kl.mean().item() > 0.05, "the rotated posterior is correlated: a diagonal q misses something"
    assert glued["rot_approx_gap"] == pytest.approx(kl.mean().item(), rel=1e-7)
    assert glued["rot_gap_closed"] == pytest.approx(kl.mean().item(), rel=1e-7)
    assert 0 <= glued["rot_approx_spread"] < 1e-8
    assert 0 <= glued["rot_amort_max"] < 1e-8


def test_trained_linear_encoder_gap_shrinks_and_generalises(glued, ppca, digits):
    _, X_test = digits
    # At the start the encoder outputs the prior for every image; the best q is the (diagonal)
    # posterior, so the gap is KL(N(0, I) || p(z | x)) averaged over the test images.
    mean, cov = ppca.posterior(X_test)
    k = glued["k_ppca"]
    prior = MultivariateNormal(torch.zeros(k, dtype=F64), covariance_matrix=torch.eye(k, dtype=F64))
    start = kl_divergence(prior, MultivariateNormal(mean, covariance_matrix=cov)).mean().item()
    assert glued["enc_gap_start"] == pytest.approx(start, rel=1e-8)
    # Training closes most of it, on images the encoder never saw, and keeps closing it.
    assert glued["enc_half_steps"] == glued["enc_steps"] // 2
    assert 0 < glued["enc_gap_test"] < glued["enc_gap_half"] < start
    assert glued["enc_gap_test"] < 0.02 * start
    assert 0 < glued["enc_gap_train"] <= 1.5 * glued["enc_gap_test"]
    assert glued["enc_gap_test"] < 2 * glued["enc_gap_train"], "the test gap is close to the training gap"
    # With a diagonal posterior the gap is KL(q_enc || posterior), a sum of a mean and a variance part.
    assert glued["enc_mean_part"] > 0 and glued["enc_var_part"] > 0
    assert glued["enc_mean_part"] + glued["enc_var_part"] == pytest.approx(glued["enc_gap_test"], rel=1e-9)
    # The mean part is at least (1/2) (mean |error| / std)^2 per coordinate, by Jensen's inequality.
    assert glued["enc_mean_part"] >= 0.5 * k * glued["enc_mean_error"] ** 2


def test_encoder_is_much_faster_than_per_point_vi(glued):
    """Timings vary by machine and load: pinned only loosely, and by their own arithmetic."""
    vi_s = glued["vi_ms_per_point"] * 1e-3
    enc_s = glued["enc_us_per_point"] * 1e-6
    assert vi_s > 0 and enc_s > 0
    assert glued["speedup"] == pytest.approx(vi_s / enc_s, rel=1e-9)
    assert glued["speedup"] > 100
    assert (glued["n_vi"], glued["vi_steps"]) == (200, 400)
    # The best diagonal q maximises the exact ELBO: nothing can beat it; VI gets close.
    assert -1e-9 < glued["vi_shortfall"] < 5
    assert 0 < glued["enc_shortfall"] < 2 * glued["enc_gap_test"]


# --- the non-linear model, built and integrated independently ----------------------------------------

class Decoder:
    """z ~ N(0, I_k), x | z ~ N(B tanh(A z + c), sigma2 I), drawn as NonlinearGaussian.random documents."""

    def __init__(self, d: int, h: int, sigma2: float, seed: int, k: int = 2):
        g = torch.Generator().manual_seed(seed)
        self.A = 2.0 * torch.randn(h, k, generator=g, dtype=F64) / math.sqrt(k)
        self.c = torch.randn(h, generator=g, dtype=F64)
        self.B = torch.randn(d, h, generator=g, dtype=F64) / math.sqrt(h)
        self.sigma2, self.d, self.k = sigma2, d, k

    def f(self, z):
        return torch.tanh(z @ self.A.T + self.c) @ self.B.T

    def sample(self, n: int, g: torch.Generator):
        z = torch.randn(n, self.k, generator=g, dtype=F64)
        return self.f(z) + math.sqrt(self.sigma2) * torch.randn(n, self.d, generator=g, dtype=F64)

    def log_lik(self, x, fz):
        """log N(x_n; f_p, sigma2 I) for every row x_n (N, d) and decoded point f_p (P, d): (N, P)."""
        sq = (x**2).sum(1)[:, None] - 2 * x @ fz.T + (fz**2).sum(1)[None, :]
        return -0.5 * (sq / self.sigma2 + self.d * (LOG_2PI + math.log(self.sigma2)))


def midpoint_log_px(dec: Decoder, x, limit: float, points: int) -> torch.Tensor:
    """log p(x) by the midpoint rule on [-limit, limit]^2, f evaluated once per grid point."""
    h = 2 * limit / points
    axis = -limit + h * (torch.arange(points, dtype=F64) + 0.5)
    z = torch.cartesian_prod(axis, axis)
    fz = dec.f(z)
    log_prior = -0.5 * (z**2).sum(1) - LOG_2PI
    out = [torch.logsumexp(dec.log_lik(x[i:i + 10], fz) + log_prior, dim=1) for i in range(0, len(x), 10)]
    return torch.cat(out) + 2 * math.log(h)


def gauss_hermite_elbo(dec: Decoder, x, q, nodes: int = 40) -> torch.Tensor:
    """The exact ELBO of q = N(mu, diag(exp(logvar))), (N,), by a nodes x nodes Gauss-Hermite rule."""
    t, w = np.polynomial.hermite.hermgauss(nodes)
    t, w = torch.from_numpy(t), torch.from_numpy(w) / math.sqrt(math.pi)
    eps = math.sqrt(2) * torch.cartesian_prod(t, t)  # (nodes^2, 2): standard-normal nodes
    weights = torch.outer(w, w).reshape(-1)
    mu, logvar = q
    z = mu[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps[None]  # (N, nodes^2, 2)
    fz = dec.f(z)
    log_lik = -0.5 * (((x[:, None, :] - fz) ** 2).sum(-1) / dec.sigma2 + dec.d * (LOG_2PI + math.log(dec.sigma2)))
    kl = 0.5 * (mu**2 + torch.exp(logvar) - logvar - 1).sum(1)
    return (log_lik * weights).sum(1) - kl


@pytest.fixture(scope="module")
def nonlinear(glued):
    dec = Decoder(glued["nl_dim"], glued["nl_hidden"], glued["nl_sigma2"], seed=0)
    g = torch.Generator().manual_seed(1)
    dec.sample(glued["nl_n_train"], g)  # the training points come first
    x = dec.sample(glued["nl_n_test"], g)
    return dec, x


def test_the_decoder_built_here_is_the_chapter_s(glued, nonlinear):
    dec, x = nonlinear
    model = vc.NonlinearGaussian.random(data_dim=glued["nl_dim"], hidden=glued["nl_hidden"],
                                        sigma2=glued["nl_sigma2"], generator=vc.make_generator(0))
    assert torch.equal(model.A, dec.A) and torch.equal(model.B, dec.B) and torch.equal(model.c, dec.c)
    assert (glued["nl_n_train"], glued["nl_n_test"]) == (2000, 100)
    assert len(glued["nl_q_best"]) == len(x) and len(glued["nl_q_best"][0]) == 4


def test_nonlinear_log_px_and_its_grid_check(glued, nonlinear):
    dec, x = nonlinear
    fine = midpoint_log_px(dec, x, limit=6.0, points=601)
    # the chapter's grid is accurate far below the gaps it serves ...
    assert glued["nl_log_px"] == pytest.approx(fine.mean().item(), abs=1e-4)
    same = midpoint_log_px(dec, x, glued["nl_grid_limit"], glued["nl_grid_points"])
    assert glued["nl_log_px"] == pytest.approx(same.mean().item(), abs=1e-9)
    assert (same - fine).abs().max() < 1e-3
    # ... and its check, a coarser grid on a smaller box, moves no log p(x) by less than the
    # chapter's grid is off: the check's bound holds
    coarse = midpoint_log_px(dec, x, glued["nl_coarse_limit"], glued["nl_coarse_points"])
    assert glued["nl_grid_change"] == pytest.approx((same - coarse).abs().max().item(), rel=1e-6)
    assert (same - fine).abs().max() < 0.1 * glued["nl_grid_change"]
    assert glued["nl_grid_change"] < 0.05 * glued["nl_approx_gap"]


def _q(rows) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.tensor(rows, dtype=F64)
    return t[:, :2], t[:, 2:]


@pytest.fixture(scope="module")
def exact_elbos(glued, nonlinear):
    dec, x = nonlinear
    log_px = midpoint_log_px(dec, x, limit=6.0, points=601)
    glued_q = {"best": "nl_q_best", "linear": "nl_q_linear", "mlp": "nl_q_mlp"}
    elbos = {name: gauss_hermite_elbo(dec, x, _q(glued[key])) for name, key in glued_q.items()}
    return log_px, elbos


def test_gauss_hermite_matches_monte_carlo_on_one_q(glued, nonlinear):
    """The quadrature the next tests rely on, against a large Monte Carlo average."""
    dec, x = nonlinear
    q = _q(glued["nl_q_linear"])
    gh = gauss_hermite_elbo(dec, x, q)
    g = torch.Generator().manual_seed(7)
    eps = torch.randn(20000, *q[0].shape, generator=g, dtype=F64)
    z = q[0] + torch.exp(0.5 * q[1]) * eps
    fz = dec.f(z)
    log_lik = -0.5 * (((x - fz) ** 2).sum(-1) / dec.sigma2 + dec.d * (LOG_2PI + math.log(dec.sigma2)))
    kl = 0.5 * (q[0] ** 2 + torch.exp(q[1]) - q[1] - 1).sum(1)
    mc = log_lik.mean(0) - kl
    se = log_lik.std(0) / math.sqrt(len(eps))
    assert ((gh - mc).abs() < 5 * se + 1e-6).all()


def test_nonlinear_gaps_against_exact_elbos(glued, exact_elbos):
    log_px, e = exact_elbos
    # every ELBO is below log p(x): the bound holds point by point
    for name, elbo in e.items():
        assert (elbo <= log_px + 1e-4).all(), name
    approx = (log_px - e["best"]).mean().item()
    amort_lin = (e["best"] - e["linear"]).mean().item()
    amort_mlp = (e["best"] - e["mlp"]).mean().item()
    # the chapter's Monte Carlo gaps agree with the exact ones within a few standard errors
    assert glued["nl_approx_gap"] == pytest.approx(approx, abs=5 * glued["nl_approx_se"] + 2e-3)
    assert glued["nl_amort_linear"] == pytest.approx(amort_lin, abs=5 * glued["nl_amort_linear_se"] + 1e-3)
    assert glued["nl_amort_mlp"] == pytest.approx(amort_mlp, abs=5 * glued["nl_amort_mlp_se"] + 1e-3)
    for name in ("nl_approx_se", "nl_amort_linear_se", "nl_amort_mlp_se"):
        assert 0 < glued[name] < 0.02, name
    # what the prose says: a real approximation gap, both amortization gaps >= 0, linear >> MLP
    assert approx > 0.1
    assert amort_mlp > 0 and amort_lin > 0
    assert amort_lin > 2 * amort_mlp and amort_lin - amort_mlp > 1.0
    assert amort_lin > 2 * approx, "the linear encoder's gap is several times the approximation gap"
    assert glued["nl_prior_start_gap"] > 0


def test_the_best_q_is_close_to_the_optimum(glued, nonlinear, exact_elbos):
    """Polish the chapter's best q with L-BFGS on the exact (quadrature) ELBO: little is left."""
    dec, x = nonlinear
    _, e = exact_elbos
    mu, logvar = (t.clone().requires_grad_(True) for t in _q(glued["nl_q_best"]))
    opt = torch.optim.LBFGS([mu, logvar], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -gauss_hermite_elbo(dec, x, (mu, logvar), nodes=30).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        polished = gauss_hermite_elbo(dec, x, (mu, logvar))
    gain = polished - e["best"]
    assert gain.mean().item() < 0.05, "the chapter's best q is not close to a (local) optimum"
    assert gain.mean().item() < 0.25 * glued["nl_approx_gap"]
    # What the text says of it: "about a hundredth of a nat per point", "several times the
    # standard errors but far below the differences between the encoders".
    assert 0.003 < gain.mean().item() < 0.03
    ses = [glued[name] for name in ("nl_approx_se", "nl_amort_linear_se", "nl_amort_mlp_se")]
    assert gain.mean().item() > 2.5 * max(ses)
    assert gain.mean().item() < 0.05 * (glued["nl_amort_linear"] - glued["nl_amort_mlp"])
