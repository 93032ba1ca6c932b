"""The non-linear model of chapters 4 and 6 and the grid posterior, against independent computations.

`NonlinearGaussian` is checked against its formula written here with torch.distributions; the
grid posterior against the closed forms of a linear-Gaussian model (tests/part2_models.py, which
uses no package code), against a plain double loop, and against importance sampling.
"""
import math

import pytest
import torch
from part2_models import TorchLinearGaussian
from torch.distributions import Independent, MultivariateNormal, Normal

import vae_course as vc

F64 = torch.float64


@pytest.fixture
def model():
    return vc.NonlinearGaussian.random(data_dim=6, latent_dim=2, hidden=10, sigma2=0.1, generator=vc.make_generator(4))


def test_nonlinear_model_matches_its_formula(model):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, generator=g, dtype=F64)
    z = torch.randn(3, 5, 2, generator=g, dtype=F64)
    mean = torch.tanh(z @ model.A.T + model.c) @ model.B.T + model.b
    expected = Independent(Normal(mean, math.sqrt(0.1)), 1).log_prob(x)
    torch.testing.assert_close(model.log_px_given_z(x, z), expected)
    m, lv = model.decode(z)
    torch.testing.assert_close(m, mean)
    assert torch.allclose(lv, torch.full_like(m, math.log(0.1)))
    torch.testing.assert_close(model.log_pz(z), Independent(Normal(torch.zeros(2, dtype=F64), 1.0), 1).log_prob(z))


def test_nonlinear_sample_follows_the_model(model):
    x, z = model.sample(20000, generator=vc.make_generator(1), return_latents=True)
    assert x.shape == (20000, 6) and z.shape == (20000, 2)
    resid = x - (torch.tanh(z @ model.A.T + model.c) @ model.B.T + model.b)
    assert resid.var(0).sub(0.1).abs().max() < 0.01  # the noise variance sigma2
    assert z.mean(0).abs().max() < 0.03 and z.var(0).sub(1).abs().max() < 0.04
    means, z4 = model.sample(4, generator=vc.make_generator(1), return_latents=True, noise=False)
    torch.testing.assert_close(means, torch.tanh(z4 @ model.A.T + model.c) @ model.B.T + model.b)


def test_random_model_draws_a_curved_decoder():
    """With its default scales most tanh units leave the linear regime over the prior's range."""
    m = vc.NonlinearGaussian.random(generator=vc.make_generator(0))
    z = torch.randn(2000, 2, generator=vc.make_generator(1), dtype=F64)
    pre = z @ m.A.T + m.c
    assert (pre.abs() > 1).double().mean() > 0.4


@pytest.mark.parametrize("k", [1, 2])
def test_grid_posterior_is_exact_for_a_linear_gaussian_model(k):
    g = torch.Generator().manual_seed(k)
    W = torch.randn(5, k, generator=g, dtype=F64)
    b = torch.randn(5, generator=g, dtype=F64)
    psi = 0.2 + torch.rand(5, generator=g, dtype=F64)
    ref = TorchLinearGaussian(W, b, psi)
    x = MultivariateNormal(b, ref.covariance()).sample((4,))
    post = vc.grid_posterior(vc.LinearGaussian(W, b, psi), x, limit=7.0, num_points=301)
    torch.testing.assert_close(post.log_px, ref.log_prob(x), atol=1e-8, rtol=0)
    mean, cov = ref.posterior(x)
    torch.testing.assert_close(post.mean, mean, atol=1e-8, rtol=0)
    torch.testing.assert_close(post.cov, cov.expand(4, k, k), atol=1e-8, rtol=0)
    mass = torch.exp(post.log_density).flatten(1).sum(1) * post.cell_area
    torch.testing.assert_close(mass, torch.ones(4, dtype=F64))


def test_grid_posterior_matches_a_plain_double_loop(model):
    x = model.sample(2, generator=vc.make_generator(2))
    post = vc.grid_posterior(model, x, limit=4.0, num_points=40)
    h = 8.0 / 40
    axis = [-4.0 + h * (i + 0.5) for i in range(40)]
    prior = Normal(0.0, 1.0)
    for n in range(2):
        total = 0.0
        dens = torch.empty(40, 40, dtype=F64)
        for i, a in enumerate(axis):
            for j, c in enumerate(axis):
                z = torch.tensor([a, c], dtype=F64)
                mean = torch.tanh(model.A @ z + model.c) @ model.B.T + model.b
                lj = Normal(mean, math.sqrt(0.1)).log_prob(x[n]).sum() + prior.log_prob(z).sum()
                dens[i, j] = torch.exp(lj)
                total += dens[i, j].item() * h * h
        assert post.log_px[n].item() == pytest.approx(math.log(total), abs=1e-10)
        torch.testing.assert_close(torch.exp(post.log_density[n]), dens / total)


def test_grid_log_px_agrees_with_importance_sampling(model):
    """An independent estimate: importance sampling with a wide Gaussian around the grid's moments."""
    x = model.sample(3, generator=vc.make_generator(3))
    post = vc.grid_posterior(model, x)
    g = torch.Generator().manual_seed(5)
    for n in range(3):
        q = MultivariateNormal(post.mean[n], 4 * post.cov[n] + 0.05 * torch.eye(2, dtype=F64))
        z = q.loc + torch.randn(200000, 2, generator=g, dtype=F64) @ q.scale_tril.T
        lw = (model.log_px_given_z(x[n:n + 1], z[:, None, :])[:, 0]
              + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z))
        estimate = torch.logsumexp(lw, 0) - math.log(len(z))
        assert estimate.item() == pytest.approx(post.log_px[n].item(), abs=0.02)


def test_grid_resolution_converges(model):
    x = model.sample(4, generator=vc.make_generator(6))
    coarse = vc.grid_posterior(model, x, num_points=151).log_px
    fine = vc.grid_posterior(model, x, num_points=301).log_px
    assert (coarse - fine).abs().max() < 1e-6


def test_bad_input_is_named():
    lg = vc.random_linear_gaussian(3, 4, generator=vc.make_generator(0))
    with pytest.raises(ValueError, match="latent_dim 1 or 2"):
        vc.grid_posterior(lg, torch.zeros(2, 4, dtype=F64))
    m = vc.NonlinearGaussian.random(data_dim=4, generator=vc.make_generator(0))
    with pytest.raises(TypeError, match="model must implement the model interface"):
        vc.grid_posterior(object(), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="num_points must be an integer >= 2"):
        vc.grid_posterior(m, torch.zeros(2, 4, dtype=F64), num_points=1)
    with pytest.raises(ValueError, match="limit must be > 0"):
        vc.grid_posterior(m, torch.zeros(2, 4, dtype=F64), limit=0)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        vc.grid_posterior(m, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="x must have 4 columns"):
        m.log_px_given_z(torch.zeros(2, 5, dtype=F64), torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., 2\)"):
        m.decode(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="sigma2 must be > 0"):
        vc.NonlinearGaussian.random(sigma2=0.0)
    with pytest.raises(ValueError, match=r"c must have shape \(10,\)"):
        vc.NonlinearGaussian(torch.zeros(10, 2), torch.zeros(9), torch.zeros(4, 10), torch.zeros(4), 0.1)
    with pytest.raises(ValueError, match="B must have the dtype and device of A"):
        vc.NonlinearGaussian(torch.zeros(10, 2), torch.zeros(10), torch.zeros(4, 10, dtype=F64), torch.zeros(4), 0.1)
    with pytest.raises(TypeError, match="model must implement the model interface"):
        vc.elbo(m, torch.zeros(2, 4, dtype=F64))  # no encoder: q must be given
