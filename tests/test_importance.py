"""vc.importance_log_prob and the KL to a standard normal, against torch.distributions."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import vae_course as vc

F64 = torch.float64


def linear_model(seed=0, n=5, d=4, k=2, sigma2=0.3):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, k, generator=g, dtype=F64)
    b = torch.randn(d, generator=g, dtype=F64)
    x = b + torch.randn(n, k, generator=g, dtype=F64) @ W.T + math.sqrt(sigma2) * torch.randn(n, d, generator=g,
                                                                                          dtype=F64)
    return x, W, b, sigma2


class Recorder:
    """A model whose log p(x | z) is a Normal likelihood, remembering every z it was asked about."""

    def __init__(self, W, b, sigma2):
        self.W, self.b, self.sigma2, self.z = W, b, sigma2, None

    def log_px_given_z(self, x, z):
        self.z = z.clone()
        return Normal(z @ self.W.T + self.b, math.sqrt(self.sigma2)).log_prob(x).sum(-1)


def exact_posterior(x, W, b, sigma2):
    k = W.shape[1]
    cov = torch.linalg.inv(torch.eye(k, dtype=F64) + W.T @ W / sigma2)
    return (x - b) @ W @ cov / sigma2, cov


def marginal(x, W, b, sigma2):
    return MultivariateNormal(b, W @ W.T + sigma2 * torch.eye(W.shape[0], dtype=F64)).log_prob(x)


@pytest.mark.parametrize("form", ["cov", "logvar"])
def test_log_weights_match_an_independent_computation(form):
    x, W, b, sigma2 = linear_model()
    model = Recorder(W, b, sigma2)
    mean = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    if form == "cov":
        cov = torch.tensor([[0.7, 0.2], [0.2, 0.4]], dtype=F64)
        est, log_w = vc.importance_log_prob(model, x, 7, mu=mean, cov=cov, generator=torch.Generator().manual_seed(2),
                                            return_log_weights=True)
        q = MultivariateNormal(mean, covariance_matrix=cov.expand(5, 2, 2))
    else:
        logvar = torch.log(torch.tensor([[0.5, 2.0]], dtype=F64)).expand(5, 2)
        est, log_w = vc.importance_log_prob(model, x, 7, mu=mean, logvar=logvar,
                                            generator=torch.Generator().manual_seed(2), return_log_weights=True)
        q = Normal(mean, torch.exp(0.5 * logvar))
    z = model.z
    assert z.shape == (7, 5, 2)
    log_q = q.log_prob(z) if form == "cov" else q.log_prob(z).sum(-1)
    log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_lik = Normal(z @ W.T + b, math.sqrt(sigma2)).log_prob(x).sum(-1)
    expected_w = log_lik + log_prior - log_q
    assert torch.allclose(log_w, expected_w, atol=1e-10)
    manual = torch.tensor([math.log(sum(math.exp(v) for v in col) / 7) for col in expected_w.T.tolist()], dtype=F64)
    assert torch.allclose(est, manual, atol=1e-10)


def test_draws_follow_the_proposal():
    x, W, b, sigma2 = linear_model(n=1)
    model = Recorder(W, b, sigma2)
    mean = torch.tensor([[1.0, -2.0]], dtype=F64)
    cov = torch.tensor([[0.5, 0.3], [0.3, 0.9]], dtype=F64)
    vc.importance_log_prob(model, x, 40000, mu=mean, cov=cov, generator=torch.Generator().manual_seed(3))
    z = model.z[:, 0]
    assert torch.allclose(z.mean(0), mean[0], atol=0.03)
    assert torch.allclose(torch.cov(z.T), cov, atol=0.03)


def test_exact_posterior_gives_the_exact_answer_with_one_draw():
    x, W, b, sigma2 = linear_model(seed=4, n=6, d=5, k=3)
    mean, cov = exact_posterior(x, W, b, sigma2)
    est = vc.importance_log_prob(Recorder(W, b, sigma2), x, 1, mu=mean, cov=cov, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(est, marginal(x, W, b, sigma2), atol=1e-10)


def test_a_function_is_accepted_and_the_estimate_of_p_is_unbiased():
    x, W, b, sigma2 = linear_model(seed=5, n=3, d=3, k=1, sigma2=1.0)

    def log_px_given_z(x, z):
        return Normal(z @ W.T + b, 1.0).log_prob(x).sum(-1)

    mean = torch.zeros(3, 1, dtype=F64)  # the prior as proposal: naive Monte Carlo
    g = torch.Generator().manual_seed(6)
    est = torch.stack([vc.importance_log_prob(log_px_given_z, x, 10, mu=mean, cov=torch.eye(1, dtype=F64),
                                              generator=g) for _ in range(4000)])
    ratio = torch.exp(est - marginal(x, W, b, sigma2)).mean(0)  # E[p_hat] / p = 1
    assert torch.allclose(ratio, torch.ones(3, dtype=F64), atol=0.05)
    assert (est.mean(0) < marginal(x, W, b, sigma2)).all()  # log p_hat is biased low (Jensen)


def test_dtype_follows_the_inputs():
    x, W, b, sigma2 = linear_model()
    model = Recorder(W.float(), b.float(), sigma2)
    est = vc.importance_log_prob(model, x.float(), 3, mu=torch.zeros(5, 2), logvar=torch.zeros(5, 2))
    assert est.dtype == torch.float32 and est.shape == (5,)


def test_kl_to_standard_normal_matches_torch():
    g = torch.Generator().manual_seed(7)
    mean = torch.randn(4, 3, generator=g, dtype=F64)
    A = torch.randn(3, 3, generator=g, dtype=F64)
    cov = A @ A.T + 0.5 * torch.eye(3, dtype=F64)
    prior = MultivariateNormal(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64))
    expected = kl_divergence(MultivariateNormal(mean, covariance_matrix=cov.expand(4, 3, 3)), prior)
    assert torch.allclose(vc.kl_to_standard_normal(mean, cov), expected, atol=1e-12)
    location, spread = vc.kl_to_standard_normal_parts(mean, cov)
    assert torch.allclose(location, 0.5 * (mean**2).sum(1), atol=1e-14)
    centred = kl_divergence(MultivariateNormal(torch.zeros(3, dtype=F64), covariance_matrix=cov), prior)
    assert torch.allclose(spread, centred.expand(4), atol=1e-12)
    per_row = cov.expand(4, 3, 3) * torch.arange(1, 5, dtype=F64)[:, None, None]
    expected_rows = kl_divergence(MultivariateNormal(mean, covariance_matrix=per_row), prior)
    assert torch.allclose(vc.kl_to_standard_normal(mean, per_row), expected_rows, atol=1e-12)


def test_bad_inputs_name_the_argument():
    x, W, b, sigma2 = linear_model()
    model = Recorder(W, b, sigma2)
    mean = torch.zeros(5, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"exactly one of logvar .* or cov"):
        vc.importance_log_prob(model, x, 3, mu=mean)
    with pytest.raises(ValueError, match=r"exactly one of logvar .* or cov"):
        vc.importance_log_prob(model, x, 3, mu=mean, logvar=mean, cov=torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match=r"mu must have one row per row of x \(5\)"):
        vc.importance_log_prob(model, x, 3, mu=mean[:4], logvar=mean[:4])
    with pytest.raises(ValueError, match=r"num_samples must be an integer >= 1"):
        vc.importance_log_prob(model, x, 0, mu=mean, logvar=mean)
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\) or \(5, 2, 2\)"):
        vc.importance_log_prob(model, x, 3, mu=mean, cov=torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"cov must be symmetric positive definite"):
        vc.importance_log_prob(model, x, 3, mu=mean, cov=-torch.eye(2, dtype=F64))
    with pytest.raises(TypeError, match=r"model must have a method log_px_given_z"):
        vc.importance_log_prob(object(), x, 3, mu=mean, logvar=mean)
    with pytest.raises(ValueError, match=r"logvar must have shape \(5, 2\)"):
        vc.importance_log_prob(model, x, 3, mu=mean, logvar=mean[:, :1])
