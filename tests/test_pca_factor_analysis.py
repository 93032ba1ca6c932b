"""The fits of chapter 3 (PCA, closed-form PPCA, factor analysis by EM) against independent computations.

The formulas of the model they return are tested in test_linear_gaussian.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

import vae_course as vc

F64 = torch.float64


def synthetic(n=400, d=8, k=3, seed=0, psi=None):
    """Data from a known linear-Gaussian model (float64), with per-dimension noise `psi` if given."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=F64)
    mu = torch.randn(d, generator=g, dtype=F64)
    noise = torch.full((d,), 0.3, dtype=F64) if psi is None else torch.as_tensor(psi, dtype=F64)
    z = torch.randn(n, k, generator=g, dtype=F64)
    x = mu + z @ W.T + torch.randn(n, d, generator=g, dtype=F64) * noise.sqrt()
    return x, W, mu, noise


@pytest.fixture(scope="module")
def digits():
    x, _ = vc.load_mnist("train")
    return x


@pytest.fixture(scope="module")
def digits_test():
    x, _ = vc.load_mnist("test")
    return x


# --- PPCA: the closed form -------------------------------------------------------------------

def test_ppca_closed_form_matches_numpy_eigendecomposition(digits):
    k = 7
    model = vc.fit_ppca(digits, k)
    xs = digits.double().numpy()
    evals = np.linalg.eigvalsh(np.cov(xs, rowvar=False, bias=True))[::-1]
    assert model.W.dtype == F64 and model.W.shape == (784, k) and model.b.shape == (784,)
    np.testing.assert_allclose(float(model.sigma2), evals[k:].mean(), rtol=1e-9)
    np.testing.assert_allclose(model.b.numpy(), xs.mean(0), rtol=0, atol=1e-12)
    # W^T W = L_k - sigma2 I (orthogonal columns with those squared lengths) whatever the rotation
    np.testing.assert_allclose((model.W.T @ model.W).numpy(), np.diag(evals[:k] - evals[k:].mean()), atol=1e-9)


@pytest.mark.parametrize("k", [1, 4, 20])
def test_ppca_log_likelihood_equals_multivariate_normal(digits, digits_test, k):
    model = vc.fit_ppca(digits, k)
    cov = model.W @ model.W.T + model.sigma2 * torch.eye(784, dtype=F64)
    mvn = MultivariateNormal(model.b, covariance_matrix=cov)
    for x in (digits[:300], digits_test[:300]):
        ours = model.log_prob(x)
        assert ours.shape == (300,) and ours.dtype == F64
        torch.testing.assert_close(ours, mvn.log_prob(x.double()), rtol=1e-10, atol=1e-7)


def test_ppca_log_likelihood_function_equals_mvn_on_random_parameters():
    x, W, mu, _ = synthetic(n=50, d=10, k=4, seed=3)
    for s2 in (0.05, 1.0, 7.0):
        ref = MultivariateNormal(mu, W @ W.T + s2 * torch.eye(10, dtype=F64)).log_prob(x)
        torch.testing.assert_close(vc.ppca_log_likelihood(x, W, mu, s2), ref, rtol=1e-12, atol=1e-10)


def conditional_gaussian(x, W, mu, noise):
    """p(z | x) by conditioning the joint Gaussian of (z, x), with the d x d covariance."""
    k = W.shape[1]
    C = W @ W.T + torch.diag(noise)  # Cov(x); Cov(z, x) = W^T; Cov(z) = I
    gain = torch.linalg.solve(C, W).T
    return (x - mu) @ gain.T, torch.eye(k, dtype=F64) - gain @ W


def test_ppca_posterior_is_bayes_rule(digits):
    model = vc.fit_ppca(digits, 6)
    mean, cov = model.posterior(digits[:100])
    ref_mean, ref_cov = conditional_gaussian(digits[:100].double(), model.W, model.b, model.psi)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(cov, ref_cov, rtol=1e-8, atol=1e-10)
    m2, c2 = vc.ppca_posterior(digits[:100].double(), model.W, model.b, model.sigma2)
    torch.testing.assert_close(m2, ref_mean, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(c2, ref_cov, rtol=1e-8, atol=1e-10)
    assert torch.linalg.eigvalsh(cov).min() > 0


def test_posterior_and_log_likelihood_agree_through_bayes_identity():
    """log p(x) = log p(x|z) + log p(z) - log p(z|x) at any z: ties the three together."""
    x, _, _, _ = synthetic(n=30, d=6, k=2, seed=5)
    model = vc.fit_ppca(x, 2)
    mean, cov = model.posterior(x)
    z = mean + 0.7  # any z works
    lik = MultivariateNormal(model.b + z @ model.W.T, model.sigma2 * torch.eye(6, dtype=F64)).log_prob(x)
    prior = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)).log_prob(z)
    post = MultivariateNormal(mean, cov).log_prob(z)
    torch.testing.assert_close(model.log_prob(x), lik + prior - post, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("source", ["synthetic", "digits"])
def test_ppca_fit_is_a_stationary_point_and_a_maximum(source, digits):
    x = synthetic(n=300, d=9, k=3, seed=1)[0] if source == "synthetic" else digits[:1500].double()
    k = 3 if source == "synthetic" else 5
    model = vc.fit_ppca(x, k)
    W = model.W.clone().requires_grad_(True)
    mu = model.b.clone().requires_grad_(True)
    log_s2 = torch.log(model.sigma2).clone().requires_grad_(True)
    total = vc.ppca_log_likelihood(x, W, mu, log_s2.exp()).sum()
    gW, gmu, gs = torch.autograd.grad(total, [W, mu, log_s2])
    # gradients vanish relative to the size of the objective (N examples, d dims)
    scale = x.shape[0] * x.shape[1]
    assert gW.abs().max() / scale < 1e-9 and gmu.abs().max() / scale < 1e-9 and gs.abs() / scale < 1e-9
    # ...and it is a maximum: every perturbation lowers the likelihood
    g = torch.Generator().manual_seed(0)
    best = float(total.detach())
    for _ in range(5):
        dW = 0.05 * model.W.abs().mean() * torch.randn(W.shape, generator=g, dtype=F64)
        dmu = 0.05 * torch.randn(mu.shape, generator=g, dtype=F64)
        assert float(vc.ppca_log_likelihood(x, model.W + dW, model.b, model.sigma2).sum()) < best
        assert float(vc.ppca_log_likelihood(x, model.W, model.b + dmu, model.sigma2).sum()) < best
    for factor in (0.9, 1.1):
        assert float(vc.ppca_log_likelihood(x, model.W, model.b, model.sigma2 * factor).sum()) < best
    # a rotation of the latent space leaves the likelihood unchanged (W is unique only up to R)
    R, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=F64))
    torch.testing.assert_close(vc.ppca_log_likelihood(x, model.W @ R, model.b, model.sigma2).sum(),
                               total.detach(), rtol=1e-12, atol=1e-6)


def test_ppca_likelihood_rises_with_latent_dim_on_training_data(digits):
    values = [float(vc.fit_ppca(digits, k).log_prob(digits).mean()) for k in (1, 5, 20, 50)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_ppca_accepts_float32_and_returns_float64(digits):
    a, b = vc.fit_ppca(digits[:500], 3), vc.fit_ppca(digits[:500].double(), 3)
    assert digits.dtype == torch.float32 and a.W.dtype == F64 and a.sigma2.dtype == F64
    torch.testing.assert_close(a.W, b.W)
    torch.testing.assert_close(a.log_prob(digits[:5]), b.log_prob(digits[:5].double()))


def test_ppca_reconstruct_is_decoded_posterior_mean(digits):
    model = vc.fit_ppca(digits, 8)
    x = digits[:20].double()
    M = model.W.T @ model.W + model.sigma2 * torch.eye(8, dtype=F64)
    expected = model.b + (x - model.b) @ model.W @ torch.linalg.inv(M) @ model.W.T
    torch.testing.assert_close(model.reconstruct(x), expected, rtol=1e-9, atol=1e-10)


def test_ppca_recovers_the_generating_model():
    x, W, mu, noise = synthetic(n=20000, d=6, k=2, seed=2)
    model = vc.fit_ppca(x, 2)
    assert abs(float(model.sigma2) - 0.3) < 0.02
    torch.testing.assert_close(model.W @ model.W.T, W @ W.T, atol=0.15, rtol=0.05)


# --- sampling ------------------------------------------------------------------------------------

def test_sample_moments_match_the_model():
    x, _, _, _ = synthetic(n=500, d=5, k=2, seed=4)
    model = vc.fit_ppca(x, 2)
    s = model.sample(200_000, generator=vc.make_generator(0))
    assert s.shape == (200_000, 5) and s.dtype == F64
    torch.testing.assert_close(s.mean(0), model.b, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(s.T), model.covariance(), atol=0.05, rtol=0.03)
    # means of p(x|z) lie in the k-dimensional affine subspace
    means = model.sample(50, generator=vc.make_generator(1), noise=False)
    assert torch.linalg.matrix_rank(means - model.b, atol=1e-8) == 2


def test_sample_is_reproducible_with_a_generator(digits):
    model = vc.fit_ppca(digits, 4)
    a = model.sample(3, generator=vc.make_generator(7))
    b = model.sample(3, generator=vc.make_generator(7))
    c = model.sample(3, generator=vc.make_generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- PCA -----------------------------------------------------------------------------------------

def test_pca_subspace_equals_ppca_column_space(digits):
    k = 12
    p, model = vc.pca(digits, k), vc.fit_ppca(digits, k)
    assert vc.principal_angles(p.components, model.W).max() < 1e-6
    torch.testing.assert_close(p.explained_variance, model.eigenvalues[:k], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(p.components.T @ p.components, torch.eye(k, dtype=F64), atol=1e-10, rtol=0)


def test_pca_reconstruction_error_is_the_discarded_variance(digits):
    k = 10
    p = vc.pca(digits, k)
    err = ((p.reconstruct(digits) - digits.double()) ** 2).sum(1).mean()
    evals = np.linalg.eigvalsh(np.cov(digits.double().numpy(), rowvar=False, bias=True))[::-1]
    np.testing.assert_allclose(float(err), evals[k:].sum(), rtol=1e-8)
    np.testing.assert_allclose(p.total_variance, evals.sum(), rtol=1e-9)
    assert 0 < float(p.explained_variance_ratio.sum()) < 1


def test_principal_angles_known_values():
    e = torch.eye(3, dtype=F64)
    a = e[:, :1]
    b = torch.tensor([[1.0], [1.0], [0.0]], dtype=F64)
    torch.testing.assert_close(vc.principal_angles(a, b), torch.tensor([math.pi / 4], dtype=F64))
    assert vc.principal_angles(e[:, :2], e[:, :2] @ torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=F64)).max() < 1e-7
    torch.testing.assert_close(vc.principal_angles(e[:, :1], e[:, 1:2]), torch.tensor([math.pi / 2], dtype=F64))


# --- factor analysis -----------------------------------------------------------------------------

@pytest.mark.parametrize("init", ["ppca", "random"])
def test_fa_em_never_lowers_the_likelihood_on_digits(digits, init):
    gen = vc.make_generator(0) if init == "random" else None
    fa = vc.fit_factor_analysis(digits, 5, steps=30, var_floor=1e-3, generator=gen, init=init)
    h = torch.tensor(fa.history, dtype=F64)
    assert len(h) == 31
    assert (h.diff() >= -1e-9 * h.abs()[1:]).all(), f"EM lowered the likelihood: {h.diff().min()}"
    assert h[-1] > h[0]
    assert fa.psi.min() >= 1e-3 and (fa.psi == 1e-3).sum() > 100  # the border pixels sit on the floor
    torch.testing.assert_close(fa.log_prob(digits).mean(), h[-1], rtol=1e-10, atol=1e-8)


def test_fa_em_never_lowers_the_likelihood_on_synthetic_data():
    x, _, _, _ = synthetic(n=500, d=10, k=3, seed=6, psi=torch.linspace(0.05, 2.0, 10))
    fa = vc.fit_factor_analysis(x, 3, steps=200, init="random", generator=vc.make_generator(1))
    h = torch.tensor(fa.history, dtype=F64)
    assert (h.diff() >= -1e-10 * h.abs()[1:]).all()


def test_fa_log_likelihood_and_posterior_match_independent_computations(digits):
    fa = vc.fit_factor_analysis(digits, 4, steps=10)
    x = digits[:200].double()
    mvn = MultivariateNormal(fa.b, fa.W @ fa.W.T + torch.diag(fa.psi))
    torch.testing.assert_close(fa.log_prob(x), mvn.log_prob(x), rtol=1e-10, atol=1e-7)
    mean, cov = fa.posterior(x)
    ref_mean, ref_cov = conditional_gaussian(x, fa.W, fa.b, fa.psi)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(cov, ref_cov, rtol=1e-8, atol=1e-10)


def test_fa_recovers_per_dimension_noise_where_ppca_cannot():
    psi = torch.tensor([0.05, 0.05, 0.05, 0.05, 3.0, 0.05], dtype=F64)
    x, W, mu, _ = synthetic(n=20000, d=6, k=1, seed=8, psi=psi)
    fa = vc.fit_factor_analysis(x, 1, steps=300)
    torch.testing.assert_close(fa.psi, psi, atol=0.1, rtol=0.1)
    assert vc.principal_angles(fa.W, W) < 0.05
    ppca = vc.fit_ppca(x, 1)
    assert vc.principal_angles(ppca.W, W) > 0.2  # pulled towards the noisy dimension
    assert fa.log_prob(x).mean() > ppca.log_prob(x).mean()


def test_fa_em_fixed_point_is_stationary():
    # a well-conditioned problem (no Heywood case: every psi stays well above 0), so EM converges fast
    x, _, _, _ = synthetic(n=3000, d=7, k=2, seed=10, psi=torch.linspace(0.3, 1.0, 7))
    fa = vc.fit_factor_analysis(x, 2, steps=500)
    assert fa.psi.min() > 0.2
    W = fa.W.clone().requires_grad_(True)
    log_psi = torch.log(fa.psi).clone().requires_grad_(True)
    ll = MultivariateNormal(fa.b, W @ W.T + torch.diag(log_psi.exp())).log_prob(x).sum()
    gW, gp = torch.autograd.grad(ll, [W, log_psi])
    assert gW.abs().max() < 1e-6 and gp.abs().max() < 1e-6


# --- bad input -----------------------------------------------------------------------------------

FITTERS = {
    "fit_ppca": lambda x, k: vc.fit_ppca(x, k),
    "fit_factor_analysis": lambda x, k: vc.fit_factor_analysis(x, k, steps=2),
    "pca": lambda x, k: vc.pca(x, k),
}


@pytest.mark.parametrize("fitter", list(FITTERS))
@pytest.mark.parametrize("x, error, pattern", [
    (torch.tensor([[0.0, 1.0, 2.0], [float("nan"), 1.0, 0.0], [1.0, 2.0, 3.0]]), ValueError,
     r"x must be finite, but it contains NaN"),
    (torch.tensor([[0.0, 1.0, 2.0], [float("inf"), 1.0, 0.0], [1.0, 2.0, 3.0]]), ValueError,
     r"x must be finite, but it contains inf"),
    (torch.ones(1, 3), ValueError, r"x must have at least 2 row\(s\) \(examples\), got 1"),
    (torch.ones(5), ValueError, r"x must be a 2-D tensor of shape \(N, d\).*got shape \(5,\)"),
    (torch.ones(4, 3, 2), ValueError, r"x must be a 2-D tensor of shape \(N, d\).*got shape \(4, 3, 2\)"),
    (torch.ones(4, 3, dtype=torch.long), TypeError, r"x must be a floating-point tensor.*got dtype torch.int64"),
    ([[1.0, 2.0], [3.0, 4.0]], TypeError, r"x must be a torch.Tensor of shape \(N, d\).*got list"),
])
def test_bad_data_names_x_and_what_was_expected(fitter, x, error, pattern):
    with pytest.raises(error, match=pattern):
        FITTERS[fitter](x, 1)


@pytest.mark.parametrize("fitter", ["fit_ppca", "fit_factor_analysis"])
@pytest.mark.parametrize("k", [0, -1, 5, 6])
def test_latent_dim_outside_range_raises(fitter, k):
    x = synthetic(n=20, d=5, k=2)[0]
    with pytest.raises(ValueError, match=r"latent_dim must be between 1 and d - 1 = 4 .*got " + str(k)):
        FITTERS[fitter](x, k)


@pytest.mark.parametrize("k", [2.0, "2", True])
def test_latent_dim_not_an_integer_raises_type_error(k):
    with pytest.raises(TypeError, match=r"latent_dim must be an integer, got"):
        vc.fit_ppca(synthetic(n=20, d=5, k=2)[0], k)


@pytest.mark.parametrize("k, pattern", [(0, r"num_components must be an integer >= 1, got 0"),
                                        (6, r"num_components must be an integer <= 5, got 6")])
def test_pca_num_components_outside_range_raises(k, pattern):
    with pytest.raises(ValueError, match=pattern):
        vc.pca(synthetic(n=20, d=5, k=2)[0], k)


def test_rank_deficient_data_raises_instead_of_infinite_likelihood():
    x = torch.randn(30, 2, dtype=F64) @ torch.randn(2, 6, dtype=F64)  # exactly rank 2
    with pytest.raises(ValueError, match=r"x varies in at most 2 directions, so sigma2 would be 0"):
        vc.fit_ppca(x, 2)


@pytest.mark.parametrize("floor, error, pattern", [
    (0, ValueError, r"var_floor must be > 0, got 0"),
    (-1e-3, ValueError, r"var_floor must be > 0, got -0.001"),
    (float("nan"), ValueError, r"var_floor must be a finite number, got nan"),
    ("1e-3", TypeError, r"var_floor must be a real number, got str"),
])
def test_fa_var_floor_must_be_positive(floor, error, pattern):
    with pytest.raises(error, match=pattern):
        vc.fit_factor_analysis(synthetic(n=20, d=5, k=2)[0], 2, var_floor=floor)


def test_fa_bad_init_and_steps():
    x = synthetic(n=20, d=5, k=2)[0]
    with pytest.raises(ValueError, match=r"init must be one of 'ppca', 'random', got 'zeros'"):
        vc.fit_factor_analysis(x, 2, init="zeros")
    with pytest.raises(ValueError, match=r"steps must be an integer >= 0, got -1"):
        vc.fit_factor_analysis(x, 2, steps=-1)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int"):
        vc.fit_factor_analysis(x, 2, init="random", generator=0)


def test_fa_rejects_a_generator_it_would_ignore():
    x = synthetic(n=20, d=5, k=2)[0]
    with pytest.raises(ValueError, match=r"generator is only used by init='random'; init='ppca' is deterministic"):
        vc.fit_factor_analysis(x, 2, generator=vc.make_generator(0))


def test_fa_random_init_uses_the_generator():
    x = synthetic(n=200, d=6, k=2)[0]
    a = vc.fit_factor_analysis(x, 2, steps=3, init="random", generator=vc.make_generator(0))
    b = vc.fit_factor_analysis(x, 2, steps=3, init="random", generator=vc.make_generator(0))
    c = vc.fit_factor_analysis(x, 2, steps=3, init="random", generator=vc.make_generator(1))
    assert torch.equal(a.W, b.W) and not torch.allclose(a.W, c.W)


def test_principal_angles_bad_shapes():
    with pytest.raises(ValueError, match=r"a and b must have the same number of rows d, got shapes \(3, 1\) and \(4, 1\)"):
        vc.principal_angles(torch.ones(3, 1), torch.ones(4, 1))
    with pytest.raises(ValueError, match=r"a must be a 2-D tensor of shape \(d, k\).*got shape \(3,\)"):
        vc.principal_angles(torch.ones(3), torch.ones(3, 1))


# --- sign convention and dtype/device of the fits --------------------------------------------------

def _largest_entries_positive(vectors):
    idx = vectors.abs().argmax(0)
    return bool((vectors[idx, torch.arange(vectors.shape[1])] > 0).all())


def test_pca_and_ppca_follow_the_sign_convention(digits):
    """Each column's largest-magnitude entry is positive: the SVD / eigh signs are arbitrary, ours are not."""
    k = 12
    p, model = vc.pca(digits, k), vc.fit_ppca(digits, k)
    assert _largest_entries_positive(p.components)
    assert _largest_entries_positive(model.W)
    # ...and they equal numpy's eigenvectors with that convention applied independently
    evals, evecs = np.linalg.eigh(np.cov(digits.double().numpy(), rowvar=False, bias=True))
    top = evecs[:, ::-1][:, :k]
    top = top * np.sign(top[np.abs(top).argmax(0), np.arange(k)])
    np.testing.assert_allclose(p.components.numpy(), top, atol=1e-6)
    np.testing.assert_allclose((model.W / model.W.norm(dim=0)).numpy(), top, atol=1e-6)


def test_fits_compute_in_float64_and_keep_the_input_device(digits):
    x = digits[:300]
    assert x.dtype == torch.float32
    for fitted in (vc.fit_ppca(x, 3), vc.fit_factor_analysis(x, 3, steps=2)):
        assert fitted.W.dtype == fitted.b.dtype == fitted.psi.dtype == F64
        assert fitted.W.device == x.device
    assert vc.pca(x, 3).components.dtype == F64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_fits_run_on_cuda_and_return_there(digits):
    x = digits[:500].cuda()
    cpu = vc.fit_ppca(digits[:500], 4)
    for fitted in (vc.fit_ppca(x, 4), vc.fit_factor_analysis(x, 4, steps=3)):
        assert fitted.W.device.type == "cuda" and fitted.W.dtype == F64
        assert fitted.log_prob(x).device.type == "cuda"
    torch.testing.assert_close(vc.fit_ppca(x, 4).log_prob(x).cpu(), cpu.log_prob(digits[:500]), rtol=1e-8, atol=1e-6)
