"""The ELBO (chapter 5): Monte Carlo and closed form, the identity log p(x) = ELBO + KL(q || p(z|x)), the interface.

Expected values come from torch.distributions (MultivariateNormal, Normal, kl_divergence) and from
the test model of `part2_models`, which conditions the joint Gaussian of (z, x) itself.
"""
import math

import pytest
import torch
from part2_models import data, one_thread, random_model  # noqa: F401  (one_thread: autouse)
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import vae_course as vc

F64 = torch.float64


def _random_q(n, k, seed=3, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g, dtype=dtype), torch.randn(n, k, generator=g, dtype=dtype) - 0.5


def _kl_to_posterior(model, x, mu, logvar):
    mean, cov = model.posterior(x)
    return kl_divergence(MultivariateNormal(mu, torch.diag_embed(logvar.exp())), MultivariateNormal(mean, cov))


# --- kl_gaussian_full --------------------------------------------------------------------------

def test_kl_gaussian_full_matches_torch_distributions_with_a_shared_covariance():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(4, 4, generator=g, dtype=F64), torch.randn(4, 4, generator=g, dtype=F64)
    cov_q, cov_p = A @ A.T + 0.5 * torch.eye(4, dtype=F64), B @ B.T + 0.5 * torch.eye(4, dtype=F64)
    mean_q, mean_p = torch.randn(7, 4, generator=g, dtype=F64), torch.randn(4, generator=g, dtype=F64)
    out = vc.kl_gaussian_full(mean_q, cov_q, mean_p, cov_p)
    ref = kl_divergence(MultivariateNormal(mean_q, cov_q), MultivariateNormal(mean_p, cov_p))
    assert out.shape == (7,)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    # one covariance per row, float32 inputs promote with a float64 one
    covs = torch.stack([cov_q * (1 + i) for i in range(7)])
    out = vc.kl_gaussian_full(mean_q.float(), covs, mean_p, cov_p)
    assert out.dtype == F64
    ref = kl_divergence(MultivariateNormal(mean_q, covs), MultivariateNormal(mean_p, cov_p))
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_kl_gaussian_full_is_zero_for_equal_gaussians_and_rejects_bad_covariances():
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    mean = torch.tensor([[0.3, -1.0]], dtype=F64)
    assert vc.kl_gaussian_full(mean, cov, mean, cov).abs().max() < 1e-12
    with pytest.raises(ValueError, match=r"cov_p must be a symmetric positive-definite"):
        vc.kl_gaussian_full(mean, cov, mean, -cov)
    with pytest.raises(ValueError, match=r"cov_q must have shape \(\.\.\., 2, 2\).*got shape \(3, 3\)"):
        vc.kl_gaussian_full(mean, torch.eye(3, dtype=F64), mean, cov)
    with pytest.raises(TypeError, match=r"mean_p must be a floating-point tensor"):
        vc.kl_gaussian_full(mean, cov, torch.zeros(1, 2, dtype=torch.int64), cov)


# --- the closed-form ELBO of the linear-Gaussian model -----------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_px_is_elbo_plus_kl_to_the_posterior_for_an_arbitrary_q(seed):
    model = random_model(seed, d=7, k=3)
    x = data(model, n=6, seed=seed + 10)
    mu, logvar = _random_q(6, 3, seed=seed + 20)
    out = vc.linear_gaussian_elbo(model, x, q=(mu, logvar))
    gap = model.log_prob(x) - out
    assert out.shape == (6,) and out.dtype == F64
    assert (gap - _kl_to_posterior(model, x, mu, logvar)).abs().max() < 1e-6
    assert (gap > 0.1).all()  # an arbitrary q is far from the posterior: the identity is not 0 = 0


def test_the_gap_is_the_kl_of_the_best_diagonal_q_and_vanishes_when_the_posterior_is_diagonal():
    model = random_model(4, d=8, k=3)  # correlated posterior: the best diagonal q still leaves a gap
    x = data(model, n=5)
    best = vc.linear_gaussian_elbo(model, x)  # q = model.encode(x)
    gap = model.log_prob(x) - best
    assert (gap > 1e-3).all()
    torch.testing.assert_close(gap, _kl_to_posterior(model, x, *model.encode(x)), rtol=1e-8, atol=1e-10)
    mu, logvar = model.encode(x)
    for d_mu, d_logvar in ((0.05, 0.0), (0.0, 0.05), (0.0, -0.05)):
        assert (vc.linear_gaussian_elbo(model, x, q=(mu + d_mu, logvar + d_logvar)) < best).all()
    diagonal = random_model(5, d=8, k=3, orthogonal=True, isotropic=True)  # W^T W diagonal, psi = sigma2
    exact = diagonal.log_prob(x)
    assert (exact - vc.linear_gaussian_elbo(diagonal, x)).abs().max() < 1e-9


def test_linear_gaussian_elbo_terms_are_the_expected_reconstruction_and_the_kl_to_the_prior():
    model = random_model(6, d=5, k=2)
    x = data(model, n=4)
    mu, logvar = _random_q(4, 2)
    terms = vc.linear_gaussian_elbo(model, x, q=(mu, logvar), return_terms=True)
    q = Normal(mu, torch.exp(0.5 * logvar))
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    # E_q[log p(x|z)] by a plain loop over a large fixed sample (independent of the closed form)
    z = q.sample((200_000,))
    recon = model.log_px_given_z(x, z)
    se = recon.std(0) / math.sqrt(len(z))
    torch.testing.assert_close(terms.kl, kl, rtol=1e-10, atol=1e-10)
    assert ((terms.recon - recon.mean(0)).abs() < 5 * se).all()
    torch.testing.assert_close(terms.elbo, terms.recon - terms.kl)


def test_linear_gaussian_elbo_follows_the_model_dtype():
    model = random_model(7, d=5, k=2, dtype=torch.float32)
    x = data(model, n=3)
    out = vc.linear_gaussian_elbo(model, x.double())
    assert out.dtype == torch.float32 and out.shape == (3,)


# --- the Monte Carlo ELBO through the model interface -------------------------------------------

def test_elbo_is_the_mean_of_single_sample_reconstructions_minus_the_closed_form_kl():
    model = random_model(8, d=6, k=3)
    x = data(model, n=4)
    out = vc.elbo(model, x, n_samples=5, generator=torch.Generator().manual_seed(11))
    mu, logvar = model.encode(x)
    eps = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(11), dtype=F64)
    recon = torch.stack([model.log_px_given_z(x, mu + torch.exp(0.5 * logvar) * eps[s]) for s in range(5)]).mean(0)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    assert out.shape == (4,)
    torch.testing.assert_close(out, recon - kl, rtol=1e-10, atol=1e-10)
    terms = vc.elbo_terms(model, x, n_samples=5, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(terms.recon, recon, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(terms.kl, kl, rtol=1e-10, atol=1e-10)


def test_elbo_with_many_samples_converges_to_the_closed_form():
    model = random_model(9, d=6, k=3)
    x = data(model, n=5)
    mu, logvar = _random_q(5, 3, seed=9)
    exact = vc.linear_gaussian_elbo(model, x, q=(mu, logvar))
    g = torch.Generator().manual_seed(0)
    single = torch.stack([vc.elbo(model, x, generator=g, q=(mu, logvar)) for _ in range(400)])
    many = vc.elbo(model, x, n_samples=100_000, generator=g, q=(mu, logvar))
    se_many = single.std(0) / math.sqrt(100_000)
    assert ((many - exact).abs() < 5 * se_many).all()
    # unbiased with one sample too: the mean of 400 single-sample estimates is within its error
    assert ((single.mean(0) - exact).abs() < 5 * single.std(0) / math.sqrt(400)).all()
    assert (single.std(0) > 50 * se_many).all()  # and the one-sample estimate is truly noisy


def test_elbo_is_differentiable_in_q_and_in_the_model():
    model = random_model(10, d=5, k=2)
    model.W.requires_grad_(True)
    x = data(model, n=3)
    mu, logvar = (t.requires_grad_(True) for t in _random_q(3, 2))
    loss = -vc.elbo(model, x, n_samples=2, generator=torch.Generator().manual_seed(0), q=(mu, logvar)).mean()
    loss.backward()
    for t in (mu, logvar, model.W):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


# --- the model interface and bad input ---------------------------------------------------------

class _DecoderOnly:
    latent_dim = 2

    def log_px_given_z(self, x, z):
        return -(x[..., :2] - z).pow(2).sum(-1)


def test_check_model_names_the_missing_methods():
    model = random_model()
    assert vc.check_model(model) is model
    with pytest.raises(TypeError, match=r"model must implement the model interface \(encode, decode, "
                                        r"log_px_given_z\); the _DecoderOnly given lacks encode, decode"):
        vc.check_model(_DecoderOnly())
    with pytest.raises(TypeError, match=r"encoder must implement .* the object given lacks encode, decode, "
                                        r"log_px_given_z"):
        vc.check_model(object(), name="encoder")
    assert vc.MODEL_INTERFACE == ("encode", "decode", "log_px_given_z")


def test_elbo_rejects_a_model_without_the_interface_and_bad_arguments():
    model = random_model()
    x = data(model, n=3)
    with pytest.raises(TypeError, match=r"model must implement the model interface .*lacks encode"):
        vc.elbo(_DecoderOnly(), x)
    # with q given, only log_px_given_z is needed
    assert vc.elbo(_DecoderOnly(), x, q=(torch.zeros(3, 2, dtype=F64), torch.zeros(3, 2, dtype=F64))).shape == (3,)
    with pytest.raises(ValueError, match=r"n_samples must be an integer >= 1, got 0"):
        vc.elbo(model, x, n_samples=0)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int"):
        vc.elbo(model, x, generator=0)
    mu, logvar = _random_q(3, 3)
    with pytest.raises(ValueError, match=r"q\[0\] \(mu\) and q\[1\] \(logvar\) must have the same shape \(N, k\), "
                                         r"got q\[0\] \(mu\) \(3, 3\) and q\[1\] \(logvar\) \(3, 2\)"):
        vc.elbo(model, x, q=(mu, logvar[:, :2]))
    with pytest.raises(ValueError, match=r"q\[1\] \(logvar\) must be finite, but it contains NaN"):
        vc.elbo(model, x, q=(mu, torch.full_like(logvar, float("nan"))))
    with pytest.raises(TypeError, match=r"q\[0\] \(mu\) must be a floating-point tensor .*got dtype torch.int64"):
        vc.elbo(model, x, q=(torch.zeros(3, 3, dtype=torch.int64), logvar))
    with pytest.raises(ValueError, match=r"q\[0\] \(mu\) must have 3 rows \(one per row of x\), got shape \(2, 3\)"):
        vc.elbo(model, x, q=(mu[:2], logvar[:2]))
    with pytest.raises(TypeError, match=r"q must be None \(use model.encode\(x\)\) or a pair \(mu, logvar\)"):
        vc.elbo(model, x, q=mu)


def test_linear_gaussian_elbo_rejects_a_model_without_w_b_psi_and_bad_x():
    model = random_model()
    with pytest.raises(TypeError, match=r"model must be a linear-Gaussian model with tensor attributes W, b and psi"
                                        r".*lacks W, b, psi"):
        vc.linear_gaussian_elbo(_DecoderOnly(), torch.zeros(2, 6, dtype=F64))
    with pytest.raises(ValueError, match=r"x must have 6 columns \(the model's data dimension\), got shape \(2, 5\)"):
        vc.linear_gaussian_elbo(model, torch.zeros(2, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"mu must have 3 columns \(the model's latent_dim\), got shape \(2, 2\)"):
        vc.linear_gaussian_elbo(model, torch.zeros(2, 6, dtype=F64), q=(torch.zeros(2, 2), torch.zeros(2, 2)))


# --- the package's linear-Gaussian model (what chapters 4-6 measure against) --------------------

@pytest.fixture(scope="module")
def digits_ppca():
    x, _ = vc.load_mnist("train")
    x = x[:500].reshape(500, -1).double()
    return vc.fit_ppca(x, 8), x[:6]


def _posterior_by_conditioning(model, x):
    """p(z | x) from the joint Gaussian of (z, x), with the d x d covariance: independent of the model's code."""
    C = model.W @ model.W.T + torch.diag(model.psi)
    gain = torch.linalg.solve(C, model.W).T
    cov = torch.eye(model.latent_dim, dtype=F64) - gain @ model.W
    return (x - model.b) @ gain.T, 0.5 * (cov + cov.T)


def test_identity_to_round_off_on_ppca_fitted_to_the_bundled_digits(digits_ppca):
    model, x = digits_ppca
    mu, logvar = _random_q(6, 8, seed=30)
    mean, cov = _posterior_by_conditioning(model, x)
    kl = kl_divergence(MultivariateNormal(mu, torch.diag_embed(logvar.exp())), MultivariateNormal(mean, cov))
    exact = MultivariateNormal(model.b, model.W @ model.W.T + torch.diag(model.psi)).log_prob(x)
    gap = exact - vc.linear_gaussian_elbo(model, x, q=(mu, logvar))
    assert (gap - kl).abs().max() < 1e-6
    assert (gap > 1.0).all()
    # the same through the package's own pieces
    assert (model.log_prob(x) - vc.linear_gaussian_elbo(model, x, q=(mu, logvar))
            - vc.kl_gaussian_full(mu, torch.diag_embed(logvar.exp()), *model.posterior(x))).abs().max() < 1e-6


def test_the_gap_vanishes_at_the_ppca_posterior(digits_ppca):
    # fit_ppca's W has orthogonal columns, so the exact posterior is diagonal and encode() is exact
    model, x = digits_ppca
    _, cov = _posterior_by_conditioning(model, x)
    assert (cov - torch.diag(torch.diagonal(cov))).abs().max() < 1e-10
    exact = MultivariateNormal(model.b, model.W @ model.W.T + torch.diag(model.psi)).log_prob(x)
    assert (exact - vc.linear_gaussian_elbo(model, x)).abs().max() < 1e-6


def test_encode_of_a_correlated_linear_gaussian_is_its_best_diagonal_q():
    model = vc.random_linear_gaussian(3, 7, sigma2=0.2, generator=torch.Generator().manual_seed(3))
    x = model.sample(5, generator=torch.Generator().manual_seed(4))
    mean, cov = _posterior_by_conditioning(model, x)
    mu, logvar = model.encode(x)
    torch.testing.assert_close(mu, mean)
    torch.testing.assert_close(logvar.exp()[0], 1.0 / torch.diagonal(torch.linalg.inv(cov)))
    best = vc.linear_gaussian_elbo(model, x)
    for shift in (0.05, -0.05):
        assert (vc.linear_gaussian_elbo(model, x, q=(mu, logvar + shift)) < best).all()
    # and the Monte Carlo ELBO through the interface agrees with the closed form
    many = vc.elbo(model, x, n_samples=50_000, generator=torch.Generator().manual_seed(5))
    assert (many - best).abs().max() < 0.05


def test_fit_gaussian_q_on_the_package_model_reaches_encode():
    model = vc.random_linear_gaussian(2, 6, sigma2=0.3, generator=torch.Generator().manual_seed(6))
    x = model.sample(4, generator=torch.Generator().manual_seed(7))
    mu, logvar = vc.fit_gaussian_q(model, x, steps=600, lr=0.05, n_samples=16, generator=torch.Generator().manual_seed(8))
    best_mu, best_logvar = model.encode(x)
    assert (mu - best_mu).abs().max() < 0.02 and (logvar - best_logvar).abs().max() < 0.06


def test_bad_data_reaches_a_clear_error_through_the_package_model():
    model = vc.random_linear_gaussian(2, 5, generator=torch.Generator().manual_seed(0))
    x = model.sample(3, generator=torch.Generator().manual_seed(1))
    vc.check_model(model)
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor .*got dtype torch.int64"):
        vc.elbo(model, x.long())
    with pytest.raises(ValueError, match=r"x must be finite, but it contains NaN"):
        vc.elbo(model, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match=r"x must be finite, but it contains inf"):
        vc.fit_gaussian_q(model, torch.full_like(x, float("inf")), steps=1)
    with pytest.raises(ValueError, match=r"x must have 5 columns \(the model's data dimension\), got shape \(3, 4\)"):
        vc.linear_gaussian_elbo(model, x[:, :4])
