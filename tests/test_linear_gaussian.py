"""The one linear-Gaussian model (`vc.LinearGaussian`, `vc.PPCA`, `vc.FactorAnalysis`) against independent computations.

References: `torch.distributions` (MultivariateNormal, Normal), conditioning the joint Gaussian of
(z, x) by hand with the d x d covariance, plain Monte Carlo. The fits are tested in
test_pca_factor_analysis.py.
"""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

import vae_course as vc

F64 = torch.float64
DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=2e-4, atol=2e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def diagonal_model(k=2, d=5, seed=0, dtype=F64, device="cpu"):
    """A model with distinct noise variances per dimension (the factor-analysis case)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=F64)
    b = torch.randn(d, generator=g, dtype=F64)
    psi = 0.2 + torch.rand(d, generator=g, dtype=F64)
    x = b + 1.5 * torch.randn(7, d, generator=g, dtype=F64)
    to = dict(dtype=dtype, device=device)
    return vc.LinearGaussian(W.to(**to), b.to(**to), psi.to(**to)), x.to(**to), (W, b, psi, x)


def condition_joint(x, W, b, psi):
    """p(z | x) from the joint Gaussian of (z, x): Cov(z) = I, Cov(z, x) = W^T, Cov(x) = W W^T + Psi."""
    C = W @ W.T + torch.diag(psi)
    gain = torch.linalg.solve(C, W).T  # W^T C^{-1}
    return (x - b) @ gain.T, torch.eye(W.shape[1], dtype=W.dtype) - gain @ W


# --- the public names --------------------------------------------------------------------------

def test_one_class_and_its_subclasses_are_on_the_face():
    assert issubclass(vc.PPCA, vc.LinearGaussian) and issubclass(vc.FactorAnalysis, vc.LinearGaussian)
    for name in ("LinearGaussianLVM", "random_lvm"):
        assert not hasattr(vc, name)
    from vae_course.models import linear_conditional_log_prob, naive_mc_log_prob, ppca_log_likelihood, ppca_posterior
    assert linear_conditional_log_prob is vc.linear_conditional_log_prob
    assert (naive_mc_log_prob, ppca_log_likelihood, ppca_posterior) == (
        vc.naive_mc_log_prob, vc.ppca_log_likelihood, vc.ppca_posterior)


# --- the exact marginal, posterior, encoder and decoder, in float32 and float64 --------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,d", [(1, 2), (2, 5), (8, 4), (3, 30)])
def test_log_prob_matches_multivariate_normal(dtype, k, d):
    model, x, (W, b, psi, x64) = diagonal_model(k, d, seed=k * 10 + d, dtype=dtype)
    ref = MultivariateNormal(b, covariance_matrix=W @ W.T + torch.diag(psi)).log_prob(x64)
    out = model.log_prob(x)
    assert out.shape == (7,) and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    torch.testing.assert_close(model.covariance().double(), W @ W.T + torch.diag(psi), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_posterior_is_the_conditioned_joint_gaussian(dtype):
    model, x, (W, b, psi, x64) = diagonal_model(3, 6, seed=1, dtype=dtype)
    mean, cov = model.posterior(x)
    ref_mean, ref_cov = condition_joint(x64, W, b, psi)
    assert mean.shape == (7, 3) and cov.shape == (3, 3) and mean.dtype == cov.dtype == dtype
    torch.testing.assert_close(mean.double(), ref_mean, **TOL[dtype])
    torch.testing.assert_close(cov.double(), ref_cov, **TOL[dtype])
    # Bayes: log p(x) = log p(x | z) + log p(z) - log p(z | x) at any z
    z = ref_mean + 0.3
    lik = Normal(z @ W.T + b, psi.sqrt()).log_prob(x64).sum(-1)
    prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    post = MultivariateNormal(ref_mean, ref_cov).log_prob(z)
    torch.testing.assert_close(model.log_prob(x).double(), lik + prior - post, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_encode_is_the_mean_and_one_over_the_diagonal_of_the_precision(dtype):
    model, x, (W, b, psi, x64) = diagonal_model(3, 6, seed=2, dtype=dtype)
    mu, logvar = model.encode(x)
    ref_mean, ref_cov = condition_joint(x64, W, b, psi)
    precision = torch.linalg.inv(ref_cov)
    assert mu.shape == logvar.shape == (7, 3) and mu.dtype == logvar.dtype == dtype
    torch.testing.assert_close(mu.double(), ref_mean, **TOL[dtype])
    torch.testing.assert_close(logvar.double(), (1 / precision.diagonal()).log().expand(7, 3), **TOL[dtype])
    # not the diagonal of the covariance, which is larger when the latents are correlated a posteriori
    assert (ref_cov.diagonal().log() - logvar[0].double() > 1e-3).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_and_log_px_given_z_match_normal(dtype):
    model, x, (W, b, psi, x64) = diagonal_model(2, 5, seed=3, dtype=dtype)
    z64 = torch.randn(4, 7, 2, generator=torch.Generator().manual_seed(9), dtype=F64)  # (S, N, k)
    mean, logvar = model.decode(z64.to(dtype))
    assert mean.shape == logvar.shape == (4, 7, 5) and mean.dtype == dtype
    torch.testing.assert_close(mean.double(), z64 @ W.T + b, **TOL[dtype])
    torch.testing.assert_close(logvar.double(), psi.log().expand(4, 7, 5), **TOL[dtype])
    ref = Normal(z64 @ W.T + b, psi.sqrt()).log_prob(x64).sum(-1)
    out = model.log_px_given_z(x, z64.to(dtype))
    assert out.shape == (4, 7) and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    torch.testing.assert_close(model.log_pz(z64.to(dtype)).double(), Normal(0.0, 1.0).log_prob(z64).sum(-1),
                               **TOL[dtype])


def test_reconstruct_decodes_the_posterior_mean():
    model, x, (W, b, psi, x64) = diagonal_model(2, 5, seed=4)
    ref_mean, _ = condition_joint(x64, W, b, psi)
    torch.testing.assert_close(model.reconstruct(x), ref_mean @ W.T + b)


def test_ppca_is_the_isotropic_case():
    _, x, (W, b, _, _) = diagonal_model(2, 5, seed=5)
    ppca = vc.PPCA(W, b, 0.4)
    assert ppca.sigma2.shape == () and ppca.eigenvalues is None
    torch.testing.assert_close(ppca.psi, torch.full((5,), 0.4, dtype=F64))
    ref = MultivariateNormal(b, W @ W.T + 0.4 * torch.eye(5, dtype=F64)).log_prob(x)
    torch.testing.assert_close(ppca.log_prob(x), ref)
    torch.testing.assert_close(vc.ppca_log_likelihood(x, W, b, 0.4), ref)
    # Tipping and Bishop's form of the posterior: N(M^-1 W^T (x - b), sigma2 M^-1), M = W^T W + sigma2 I
    M = W.T @ W + 0.4 * torch.eye(2, dtype=F64)
    mean, cov = vc.ppca_posterior(x, W, b, 0.4)
    torch.testing.assert_close(mean, (x - b) @ W @ torch.linalg.inv(M))
    torch.testing.assert_close(cov, 0.4 * torch.linalg.inv(M))


# --- sampling ------------------------------------------------------------------------------------

def test_ancestral_samples_have_the_model_moments():
    model, _, (W, b, psi, _) = diagonal_model(2, 3, seed=6)
    x, z = model.sample(200_000, generator=vc.make_generator(10), return_latents=True)
    assert x.shape == (200_000, 3) and z.shape == (200_000, 2) and x.dtype == F64
    torch.testing.assert_close(x.mean(0), b, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), W @ W.T + torch.diag(psi), atol=0.04, rtol=0.02)
    torch.testing.assert_close(torch.cov(z.T), torch.eye(2, dtype=F64), atol=0.02, rtol=0)
    resid = x - (z @ W.T + b)  # x given z: centred on W z + b with variances psi
    torch.testing.assert_close(resid.var(0), psi, atol=0.02, rtol=0)
    means = model.sample(50, generator=vc.make_generator(1), noise=False)  # W z + b: a k-dimensional affine set
    assert means.shape == (50, 3) and torch.linalg.matrix_rank(means - b, atol=1e-8) == 2


def test_sample_returns_x_alone_unless_asked_and_is_reproducible():
    model, _, _ = diagonal_model()
    a = model.sample(5, generator=vc.make_generator(1))
    assert isinstance(a, torch.Tensor) and a.shape == (5, 5)
    x, z = model.sample(5, generator=vc.make_generator(1), return_latents=True)
    assert torch.equal(a, x) and z.shape == (5, 2)
    assert not torch.equal(a, model.sample(5, generator=vc.make_generator(2)))


# --- naive Monte Carlo over the prior ----------------------------------------------------------

def test_functional_naive_mc_is_the_log_of_the_mean_density():
    _, x, (W, b, _, _) = diagonal_model(2, 3, seed=7)
    z = torch.randn(40, 7, 2, generator=vc.make_generator(4), dtype=F64)
    dens = Normal(z @ W.T + b, math.sqrt(0.3)).log_prob(x).sum(-1).exp()  # (S, N)
    torch.testing.assert_close(vc.naive_mc_log_prob(x, z, W, b, 0.3), dens.mean(0).log())
    torch.testing.assert_close(vc.linear_conditional_log_prob(x, z[0], W, b, 0.3), dens[0].log())


def test_naive_mc_converges_for_one_latent_dimension():
    model = vc.random_linear_gaussian(1, 3, sigma2=0.5, generator=vc.make_generator(5))
    g = vc.make_generator(6)
    x = model.sample(10, generator=g)
    exact = model.log_prob(x)
    errors = [(exact - torch.stack([model.naive_mc_log_prob(x, S, generator=g) for _ in range(20)])).abs().mean().item()
              for S in (10, 100, 10000)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.02  # nats per example


def test_naive_mc_is_biased_downwards_in_log_space():
    # E[p_hat] = p(x) (unbiased) but E[log p_hat] < log p(x) (Jensen), visibly so for small S.
    model = vc.random_linear_gaussian(2, 6, sigma2=0.2, generator=vc.make_generator(7))
    g = vc.make_generator(8)
    x = model.sample(4, generator=g)
    exact = model.log_prob(x)
    est = torch.stack([model.naive_mc_log_prob(x, 5, generator=g) for _ in range(4000)])  # (R, N)
    assert ((exact - est.mean(0)) > 3 * est.std(0) / math.sqrt(est.shape[0])).all()
    assert ((torch.exp(est - exact).mean(0) - 1).abs() < 0.25).all()  # p_hat / p has mean one (heavy tail)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relative_variance_matches_a_large_monte_carlo_with_diagonal_noise(dtype):
    model, _, (W, b, psi, _) = diagonal_model(1, 3, seed=14, dtype=dtype)
    x64 = model.sample(2, generator=vc.make_generator(15)).double()
    z = torch.randn(400_000, 2, 1, generator=vc.make_generator(16), dtype=F64)
    dens = Normal(z @ W.T + b, psi.sqrt()).log_prob(x64).sum(-1).exp()  # p(x | z_s), (S, N)
    mc = (dens.var(0) / dens.mean(0) ** 2).log()
    out = model.naive_mc_log_relative_variance(x64.to(dtype))
    assert out.shape == (2,) and out.dtype == dtype
    torch.testing.assert_close(out.double(), mc, atol=0.05, rtol=0)


def test_relative_variance_closed_form_in_higher_dimension():
    """E_prior[p(x|z)^2] / p(x)^2 - 1 with the square of each Gaussian factor written out by hand."""
    model, x, (W, b, psi, _) = diagonal_model(4, 12, seed=17)
    exact = MultivariateNormal(b, W @ W.T + torch.diag(psi)).log_prob(x)
    half = MultivariateNormal(b, W @ W.T + torch.diag(psi / 2)).log_prob(x)
    log_ratio = -0.5 * torch.log(4 * math.pi * psi).sum() + half - 2 * exact
    torch.testing.assert_close(model.naive_mc_log_relative_variance(x), torch.log(torch.expm1(log_ratio)))


def test_random_linear_gaussian_shapes_and_scale():
    m = vc.random_linear_gaussian(4, 200, sigma2=0.1, generator=vc.make_generator(0))
    assert isinstance(m, vc.LinearGaussian) and m.W.shape == (200, 4) and m.b.shape == (200,)
    torch.testing.assert_close(m.psi, torch.full((200,), 0.1, dtype=F64))
    assert m.W.dtype == F64 and m.latent_dim == 4 and m.data_dim == 200
    assert abs((m.W ** 2).sum(1).mean().item() - 1.0) < 0.15  # diag(W W^T) is one on average
    assert vc.random_linear_gaussian(2, 3, dtype=torch.float32).W.dtype == torch.float32


# --- gradients and devices -----------------------------------------------------------------------

def test_gradients_flow_to_W_b_and_psi():
    _, x, (W, b, psi, _) = diagonal_model(2, 4, seed=18)
    W, b, log_psi = W.clone().requires_grad_(), b.clone().requires_grad_(), psi.log().clone().requires_grad_()
    vc.LinearGaussian(W, b, log_psi.exp()).log_prob(x).sum().backward()
    W2, b2, lp2 = W.detach().clone().requires_grad_(), b.detach().clone().requires_grad_(), \
        log_psi.detach().clone().requires_grad_()
    MultivariateNormal(b2, W2 @ W2.T + torch.diag(lp2.exp())).log_prob(x).sum().backward()
    for ours, ref in ((W.grad, W2.grad), (b.grad, b2.grad), (log_psi.grad, lp2.grad)):
        torch.testing.assert_close(ours, ref)
    s2 = torch.tensor(0.5, dtype=F64, requires_grad=True)
    vc.ppca_log_likelihood(x, W.detach(), b.detach(), s2).sum().backward()
    assert s2.grad is not None and torch.isfinite(s2.grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_model_runs_on_cuda_and_returns_there(dtype):
    cpu, x_cpu, _ = diagonal_model(3, 6, seed=19, dtype=dtype)
    gpu, x, _ = diagonal_model(3, 6, seed=19, dtype=dtype, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    outs = [gpu.log_prob(x), *gpu.posterior(x), *gpu.encode(x), *gpu.decode(gpu.encode(x)[0]),
            gpu.sample(3, generator=g), gpu.naive_mc_log_prob(x, 10, generator=g),
            gpu.naive_mc_log_relative_variance(x)]
    assert all(t.device.type == "cuda" and t.dtype == dtype for t in outs)
    torch.testing.assert_close(gpu.log_prob(x).cpu(), cpu.log_prob(x_cpu), **TOL[dtype])


# --- bad input -----------------------------------------------------------------------------------

def _m():
    return vc.random_linear_gaussian(2, 3, generator=vc.make_generator(0))


ONES = torch.ones(3, 2, dtype=F64)
ZERO3 = torch.zeros(3, dtype=F64)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: vc.LinearGaussian([[1.0]], torch.zeros(1), 1.0), TypeError, r"W must be a torch.Tensor.*got list"),
    (lambda: vc.LinearGaussian(torch.ones(3), ZERO3, 1.0), ValueError,
     r"W must be a 2-D tensor of shape \(data_dim, latent_dim\), got shape \(3,\)"),
    (lambda: vc.LinearGaussian(torch.ones(3, 2, dtype=torch.int64), ZERO3, 1.0), TypeError,
     r"W must be a floating-point tensor.*got dtype torch.int64"),
    (lambda: vc.LinearGaussian(torch.full((3, 2), float("nan")), ZERO3, 1.0), ValueError,
     r"W must be finite, but it contains NaN"),
    (lambda: vc.LinearGaussian(ONES, torch.zeros(2), 1.0), ValueError, r"b must have shape \(3,\).*got shape \(2,\)"),
    (lambda: vc.LinearGaussian(ONES, ZERO3, torch.tensor([1.0, -1.0, 1.0])), ValueError,
     r"psi must hold positive variances, got a smallest value of -1"),
    (lambda: vc.LinearGaussian(ONES, ZERO3, torch.ones(2)), ValueError, r"psi must have shape \(3,\).*got shape \(2,\)"),
    (lambda: vc.LinearGaussian(ONES, ZERO3, 0.0), ValueError, r"psi must be > 0, got 0"),
    (lambda: vc.PPCA(ONES, ZERO3, None), TypeError, r"sigma2 must be a real number, got NoneType"),
    (lambda: vc.PPCA(ONES, ZERO3, -1.0), ValueError, r"sigma2 must be > 0, got -1"),
    (lambda: vc.PPCA(ONES, ZERO3, "1"), TypeError, r"sigma2 must be a real number, got str"),
    (lambda: vc.PPCA(ONES, ZERO3, float("nan")), ValueError, r"sigma2 must be a finite number, got nan"),
    (lambda: vc.PPCA(ONES, ZERO3, torch.ones(2)), ValueError,
     r"sigma2 must be one positive number \(a variance\), got a tensor of shape \(2,\)"),
    (lambda: _m().log_prob(torch.zeros(4, 5, dtype=F64)), ValueError,
     r"x must have 3 columns \(the model's data dimension\), got shape \(4, 5\)"),
    (lambda: _m().log_prob(torch.zeros(3, dtype=F64)), ValueError, r"x must be a 2-D tensor of shape \(N, 3\)"),
    (lambda: _m().posterior(torch.tensor([[0.0, float("inf"), 0.0]])), ValueError, r"x must be finite, but it contains inf"),
    (lambda: _m().decode(torch.zeros(4, 3)), ValueError, r"z must have shape \(\.\.\., 2\) \(latent_dim = 2\), got shape \(4, 3\)"),
    (lambda: _m().log_px_given_z(torch.zeros(2, 3), torch.zeros(4, 2)), ValueError,
     r"z must have shape \(\.\.\., N, 2\) with N = 2 \(the rows of x\), got shape \(4, 2\)"),
    (lambda: _m().sample(0), ValueError, r"num_samples must be an integer >= 1, got 0"),
    (lambda: _m().sample(2.5), TypeError, r"num_samples must be an integer, got float 2.5"),
    (lambda: _m().sample(2, generator=0), TypeError, r"generator must be a torch.Generator or None, got int"),
    (lambda: _m().sample(2, return_latents=1), TypeError, r"return_latents must be True or False, got int"),
    (lambda: _m().naive_mc_log_prob(torch.zeros(2, 3, dtype=F64), 0), ValueError,
     r"num_samples must be an integer >= 1, got 0"),
    (lambda: vc.random_linear_gaussian(0, 3), ValueError, r"latent_dim must be an integer >= 1, got 0"),
    (lambda: vc.random_linear_gaussian(2, 0), ValueError, r"data_dim must be an integer >= 1, got 0"),
    (lambda: vc.random_linear_gaussian(2, 3, sigma2=float("inf")), ValueError, r"sigma2 must be a finite number, got inf"),
    (lambda: vc.random_linear_gaussian(2, 3, dtype=torch.int64), ValueError,
     r"dtype must be torch.float32 or torch.float64, got torch.int64"),
    (lambda: vc.naive_mc_log_prob(torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(3, 2), torch.zeros(3), 1.0),
     ValueError, r"z must be a 3-D tensor of shape \(S, N, latent_dim\), got shape \(2, 2\)"),
    (lambda: vc.linear_conditional_log_prob(torch.zeros(2, 3), torch.zeros(4, 2), torch.ones(3, 2), torch.zeros(3), 1.0),
     ValueError, r"z must have shape \(\.\.\., N, 2\) with N = 2 \(the rows of x\), got shape \(4, 2\)"),
    (lambda: vc.ppca_log_likelihood(torch.zeros(5, 3, dtype=F64), torch.ones(4, 2, dtype=F64),
                                    torch.zeros(4, dtype=F64), 0.5), ValueError,
     r"x must have 4 columns \(the model's data dimension\), got shape \(5, 3\)"),
    (lambda: vc.ppca_posterior(torch.zeros(5, 4, dtype=F64), torch.ones(4, 2, dtype=F64),
                               torch.zeros(4, dtype=F64), 0.0), ValueError, r"sigma2 must be > 0, got 0"),
])
def test_bad_input_names_the_argument_and_the_expectation(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
