"""The toy linear-Gaussian latent variable model of chapter 2 against independent computations."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

import vae_course as vc
from vae_course.models.lvm import LinearGaussianLVM, linear_conditional_log_prob, naive_mc_log_prob, random_lvm

F64 = torch.float64


def _model(k=3, d=5, sigma2=0.4, seed=0):
    return random_lvm(k, d, sigma2=sigma2, generator=vc.make_generator(seed))


def test_public_names():
    for name in ("LinearGaussianLVM", "random_lvm", "linear_conditional_log_prob", "naive_mc_log_prob"):
        assert hasattr(vc, name)


@pytest.mark.parametrize("k,d", [(1, 2), (3, 5), (8, 4), (2, 30)])
def test_exact_log_prob_matches_multivariate_normal(k, d):
    m = _model(k, d, sigma2=0.3, seed=k * 10 + d)
    x = torch.randn(50, d, generator=vc.make_generator(1), dtype=F64) * 2 + m.b
    ref = MultivariateNormal(m.b, covariance_matrix=m.W @ m.W.T + 0.3 * torch.eye(d, dtype=F64)).log_prob(x)
    torch.testing.assert_close(m.log_prob(x), ref, rtol=1e-10, atol=1e-10)
    assert m.log_prob(x).shape == (50,)


def test_conditional_log_prob_matches_independent_normal():
    m = _model(2, 4, sigma2=0.7)
    g = vc.make_generator(3)
    x = torch.randn(6, 4, generator=g, dtype=F64)
    z = torch.randn(6, 2, generator=g, dtype=F64)
    ref = Normal(z @ m.W.T + m.b, math.sqrt(0.7)).log_prob(x).sum(-1)
    torch.testing.assert_close(linear_conditional_log_prob(x, z, m.W, m.b, 0.7), ref)
    zs = torch.randn(9, 6, 2, generator=g, dtype=F64)  # several draws per example
    out = m.conditional_log_prob(x, zs)
    assert out.shape == (9, 6)
    torch.testing.assert_close(out[4], linear_conditional_log_prob(x, zs[4], m.W, m.b, 0.7))


def test_naive_mc_is_log_mean_exp_of_conditionals():
    m = _model(2, 3)
    g = vc.make_generator(4)
    x, _ = m.sample(5, generator=g)
    z = torch.randn(40, 5, 2, generator=g, dtype=F64)
    dens = MultivariateNormal(z @ m.W.T + m.b, covariance_matrix=m.sigma2 * torch.eye(3, dtype=F64)).log_prob(x).exp()
    torch.testing.assert_close(naive_mc_log_prob(x, z, m.W, m.b, m.sigma2), dens.mean(0).log())


def test_naive_mc_converges_for_one_latent_dimension():
    m = _model(1, 3, sigma2=0.5, seed=5)
    g = vc.make_generator(6)
    x, _ = m.sample(10, generator=g)
    exact = m.log_prob(x)
    errors = []
    for S in (10, 100, 10000):
        est = torch.stack([m.naive_mc_log_prob(x, S, generator=g) for _ in range(20)])
        errors.append((exact - est).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02  # nats per example


def test_naive_mc_is_biased_downwards_in_log_space():
    # E[p_hat] = p(x) (unbiased) but E[log p_hat] < log p(x) (Jensen), visibly so for small S.
    m = _model(2, 6, sigma2=0.2, seed=7)
    g = vc.make_generator(8)
    x, _ = m.sample(4, generator=g)
    exact = m.log_prob(x)
    est = torch.stack([m.naive_mc_log_prob(x, 5, generator=g) for _ in range(4000)])  # (R, N)
    gap = exact - est.mean(0)
    sem = est.std(0) / math.sqrt(est.shape[0])
    assert (gap > 3 * sem).all(), (gap, sem)
    # the ratio p_hat / p has mean one (unbiased in p); check loosely, it has a heavy tail
    ratio = torch.exp(est - exact).mean(0)
    assert ((ratio - 1).abs() < 0.25).all(), ratio


def test_naive_mc_gets_worse_with_latent_dimension():
    errs = []
    for k in (1, 16):
        m = random_lvm(k, 32, sigma2=0.25, generator=vc.make_generator(100 + k))
        g = vc.make_generator(k)
        x, _ = m.sample(10, generator=g)
        errs.append((m.log_prob(x) - m.naive_mc_log_prob(x, 500, generator=g)).mean().item())
    assert errs[0] < 0.5 and errs[1] > 3.0


def test_ancestral_samples_have_the_marginal_covariance():
    m = _model(2, 3, sigma2=0.3, seed=9)
    x, z = m.sample(200000, generator=vc.make_generator(10))
    assert x.shape == (200000, 3) and z.shape == (200000, 2)
    torch.testing.assert_close(x.mean(0), m.b, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), m.covariance(), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.eye(2, dtype=F64), atol=0.02, rtol=0)
    # x given z is centred on W z + b with variance sigma2
    resid = x - (z @ m.W.T + m.b)
    torch.testing.assert_close(resid.var(0), torch.full((3,), 0.3, dtype=F64), atol=0.01, rtol=0)


def test_sampling_is_reproducible_with_a_generator():
    m = _model()
    a = m.sample(5, generator=vc.make_generator(1))
    b = m.sample(5, generator=vc.make_generator(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_posterior_is_bayes_rule():
    m = _model(2, 4, sigma2=0.5, seed=11)
    x, _ = m.sample(3, generator=vc.make_generator(12))
    mean, cov = m.posterior(x)
    # Joint Gaussian of (z, x): condition on x with the textbook formula.
    C = m.covariance()
    ref_mean = (m.W.T @ torch.linalg.solve(C, (x - m.b).T)).T
    ref_cov = torch.eye(2, dtype=F64) - m.W.T @ torch.linalg.solve(C, m.W)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(cov, ref_cov)
    # log p(x) = log p(x|z) + log p(z) - log p(z|x) at any z
    z = torch.randn(3, 2, generator=vc.make_generator(13), dtype=F64)
    log_joint = m.conditional_log_prob(x, z) + Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_post = MultivariateNormal(mean, covariance_matrix=cov).log_prob(z)
    torch.testing.assert_close(log_joint - log_post, m.log_prob(x))


def test_relative_variance_closed_form_matches_sampling():
    m = _model(1, 3, sigma2=0.5, seed=14)
    x, _ = m.sample(2, generator=vc.make_generator(15))
    z = torch.randn(400000, 2, 1, generator=vc.make_generator(16), dtype=F64)
    w = m.conditional_log_prob(x, z).exp()
    mc = (w.var(0) / m.log_prob(x).exp() ** 2).log()
    torch.testing.assert_close(m.naive_mc_log_relative_variance(x), mc, atol=0.05, rtol=0)


def test_random_lvm_shapes_and_scale():
    m = random_lvm(4, 200, sigma2=0.1, generator=vc.make_generator(0))
    assert m.W.shape == (200, 4) and m.b.shape == (200,) and m.sigma2 == 0.1
    assert m.W.dtype == F64 and m.latent_dim == 4 and m.data_dim == 200
    assert abs((m.W ** 2).sum(1).mean().item() - 1.0) < 0.15  # diag(W W^T) is one on average
    assert random_lvm(2, 3, generator=vc.make_generator(0), dtype=torch.float32).W.dtype == torch.float32


@pytest.mark.parametrize("call,exc,words", [
    (lambda: LinearGaussianLVM([[1.0]], torch.zeros(1), 1.0), TypeError, "W"),
    (lambda: LinearGaussianLVM(torch.ones(3), torch.zeros(3), 1.0), ValueError, "W"),
    (lambda: LinearGaussianLVM(torch.ones(3, 2), torch.zeros(2), 1.0), ValueError, "b"),
    (lambda: LinearGaussianLVM(torch.ones(3, 2), torch.zeros(3), 0.0), ValueError, "sigma2"),
    (lambda: LinearGaussianLVM(torch.ones(3, 2), torch.zeros(3), -1.0), ValueError, "sigma2"),
    (lambda: LinearGaussianLVM(torch.ones(3, 2), torch.zeros(3), "1"), TypeError, "sigma2"),
    (lambda: LinearGaussianLVM(torch.full((3, 2), float("nan")), torch.zeros(3), 1.0), ValueError, "W"),
    (lambda: LinearGaussianLVM(torch.ones(3, 2, dtype=torch.int64), torch.zeros(3), 1.0), TypeError, "W"),
    (lambda: _model(2, 3).log_prob(torch.zeros(4, 5, dtype=F64)), ValueError, "x"),
    (lambda: _model(2, 3).log_prob(torch.zeros(3, dtype=F64)), ValueError, "x"),
    (lambda: _model(2, 3).log_prob(torch.tensor([[0.0, float("inf"), 0.0]])), ValueError, "x"),
    (lambda: _model(2, 3).sample(0), ValueError, "n"),
    (lambda: _model(2, 3).sample(2.5), TypeError, "n"),
    (lambda: _model(2, 3).sample(2, generator=0), TypeError, "generator"),
    (lambda: _model(2, 3).naive_mc_log_prob(torch.zeros(2, 3, dtype=F64), 0), ValueError, "num_samples"),
    (lambda: random_lvm(0, 3), ValueError, "latent_dim"),
    (lambda: random_lvm(2, 0), ValueError, "data_dim"),
    (lambda: random_lvm(2, 3, sigma2=float("inf")), ValueError, "sigma2"),
    (lambda: naive_mc_log_prob(torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(3, 2), torch.zeros(3), 1.0),
     ValueError, "z"),
    (lambda: linear_conditional_log_prob(torch.zeros(2, 3), torch.zeros(4, 2), torch.ones(3, 2), torch.zeros(3), 1.0),
     ValueError, "z"),
])
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
