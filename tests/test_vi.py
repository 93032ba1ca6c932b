"""Variational inference per data point (chapter 4): the best diagonal Gaussian and `fit_gaussian_q`.

The closed forms are checked against KL divergences from torch.distributions (a stationary point,
and every perturbation is worse); the fit against the test model's own posterior.
"""
import pytest
import torch
from part2_models import data, one_thread, random_model  # noqa: F401  (one_thread: autouse)
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import vae_course as vc

F64 = torch.float64


def _target(seed=0, k=3):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(k, k, generator=g, dtype=F64)
    return torch.randn(k, generator=g, dtype=F64), A @ A.T + 0.3 * torch.eye(k, dtype=F64)


def _kl(mu, logvar, mean, cov, direction):
    q = MultivariateNormal(mu, torch.diag_embed(logvar.exp()))
    p = MultivariateNormal(mean, cov)
    return kl_divergence(q, p) if direction == "reverse" else kl_divergence(p, q)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_best_diagonal_gaussian_is_a_minimum_of_its_kl(direction):
    mean, cov = _target()
    mu, logvar = vc.best_diagonal_gaussian(mean, cov, direction=direction)
    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    value = _kl(mu, logvar, mean, cov, direction)
    grad_mu, grad_logvar = torch.autograd.grad(value, (mu, logvar))
    assert grad_mu.abs().max() < 1e-10 and grad_logvar.abs().max() < 1e-10
    for i in range(3):
        for step in (0.05, -0.05):
            bumped = logvar.detach().clone()
            bumped[i] += step
            assert _kl(mu.detach(), bumped, mean, cov, direction) > value.detach()


def test_reverse_kl_variances_are_one_over_the_diagonal_of_the_precision_and_too_small():
    mean, cov = _target(1)
    _, logvar = vc.best_diagonal_gaussian(mean, cov)
    torch.testing.assert_close(logvar.exp(), 1.0 / torch.diagonal(torch.linalg.inv(cov)), rtol=1e-10, atol=0)
    _, forward = vc.best_diagonal_gaussian(mean, cov, direction="forward")
    torch.testing.assert_close(forward.exp(), torch.diagonal(cov), rtol=1e-12, atol=0)
    assert (logvar < forward - 1e-3).all()  # correlated target: the reverse-KL q is narrower in every coordinate
    # batched means, one shared covariance
    means = torch.randn(4, 3, dtype=F64)
    mu, lv = vc.best_diagonal_gaussian(means, cov)
    assert mu.shape == lv.shape == (4, 3) and torch.equal(mu, means)
    torch.testing.assert_close(lv, logvar.expand(4, 3))


def test_best_diagonal_gaussian_rejects_bad_input():
    mean, cov = _target()
    with pytest.raises(ValueError, match=r"direction must be one of 'reverse', 'forward', got 'backward'"):
        vc.best_diagonal_gaussian(mean, cov, direction="backward")
    with pytest.raises(ValueError, match=r"cov must have shape \(\.\.\., k, k\) with k = 3"):
        vc.best_diagonal_gaussian(mean, cov[:2, :2])
    with pytest.raises(ValueError, match=r"cov must be a symmetric positive-definite"):
        vc.best_diagonal_gaussian(mean, -cov)


def test_fit_gaussian_q_reaches_the_best_diagonal_gaussian_of_the_exact_posterior():
    model = random_model(0, d=6, k=3)
    x = data(model, n=4)
    mean, cov = model.posterior(x)  # conditioning of the joint Gaussian, in the test model
    g = torch.Generator().manual_seed(0)
    mu, logvar, history = vc.fit_gaussian_q(model, x, steps=600, lr=0.05, n_samples=16, generator=g,
                                            return_history=True)
    assert mu.shape == logvar.shape == (4, 3) and mu.dtype == F64 and not mu.requires_grad
    assert (mu - mean).abs().max() < 0.02
    assert (logvar - torch.log(1.0 / torch.diagonal(torch.linalg.inv(cov)))).abs().max() < 0.06
    # the marginal variances are larger: the diagonal q under-estimates them, VI included
    assert (logvar.exp() < torch.diagonal(cov) * 0.95).all()
    # the loss is minus the ELBO in nats per example: it ends near minus the best closed-form ELBO
    assert len(history) == 600 and history[-1] < history[0]
    best = vc.linear_gaussian_elbo(model, x).mean()
    assert abs(sum(history[-100:]) / 100 + float(best)) < 0.5


def test_averaging_lands_closer_than_the_last_iterate():
    model = random_model(1, d=6, k=2)
    x = data(model, n=3)
    target, _ = model.encode(x)
    err = {}
    for average in (True, False):
        mu, _ = vc.fit_gaussian_q(model, x, steps=400, lr=0.05, n_samples=4, average=average,
                                  generator=torch.Generator().manual_seed(3))
        err[average] = float((mu - target).abs().max())
    assert err[True] < err[False]


def test_vi_loss_is_minus_the_mean_elbo_with_the_same_draws():
    model = random_model(2)
    x = data(model, n=3)
    mu = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, -1.0], [1.0, 0.2, 0.0]], dtype=F64)
    logvar = torch.full((3, 3), -0.7, dtype=F64)
    loss = vc.vi_loss(model, x, n_samples=3, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    recon = model.log_px_given_z(x, mu + torch.exp(0.5 * logvar) * eps).mean(0)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    value = loss(mu, logvar)
    assert value.dim() == 0
    torch.testing.assert_close(value, -(recon - kl).mean(), rtol=1e-12, atol=1e-12)


class _NoInterface:
    latent_dim = 2


def test_fit_gaussian_q_rejects_bad_input():
    model = random_model()
    x = data(model, n=3)
    with pytest.raises(TypeError, match=r"model must implement the model interface \(log_px_given_z\)"):
        vc.fit_gaussian_q(_NoInterface(), x)
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got 0"):
        vc.fit_gaussian_q(model, x, steps=0)
    with pytest.raises(ValueError, match=r"lr must be > 0"):
        vc.fit_gaussian_q(model, x, lr=-1.0)
    with pytest.raises(ValueError, match=r"init\[0\] \(mu\) must have 3 rows \(one per row of x\), got shape \(2, 3\)"):
        vc.fit_gaussian_q(model, x, init=(torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3, dtype=F64)))
    with pytest.raises(TypeError, match=r"init must be None or a pair \(mu, logvar\), got Tensor"):
        vc.fit_gaussian_q(model, x, init=torch.zeros(3, 3))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor"):
        vc.fit_gaussian_q(model, x.tolist())


def test_fit_gaussian_q_needs_init_without_latent_dim():
    class DecoderOnly:
        def log_px_given_z(self, x, z):
            return -(x - z).pow(2).sum(-1)

    x = torch.randn(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"init must be given \(a pair \(mu, logvar\) of shape \(N, k\)\)"):
        vc.fit_gaussian_q(DecoderOnly(), x)
    # with an init it fits: here p(x | z) = N(x; z, I/2), so the exact posterior is N(2x/3, I/3)
    mu, logvar = vc.fit_gaussian_q(DecoderOnly(), x, steps=600, n_samples=16, generator=torch.Generator().manual_seed(0),
                                   init=(torch.zeros(3, 2, dtype=F64), torch.zeros(3, 2, dtype=F64)))
    assert (mu - 2 * x / 3).abs().max() < 0.03
    assert (logvar.exp() - 1 / 3).abs().max() < 0.02
