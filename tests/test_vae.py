"""The VAE, the LinearVAE, `fit` and the IWAE estimate (chapter 8), against independent computations.

Likelihoods and KL terms come from `torch.distributions`; the LinearVAE's exact marginal from a
full-covariance `MultivariateNormal`; the IWAE estimate from a plain loop over draws written here.
"""
import math

import pytest
import torch
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

import vae_course as vc

F64 = torch.float64


def _binary(n, d, seed=0):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def test_vae_shapes_and_interface():
    m = vc.VAE(12, 3, 16, generator=vc.make_generator(0))
    x = _binary(5, 12)
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    assert m.decode(torch.zeros(7, 5, 3)).shape == (7, 5, 12)
    assert m.log_px_given_z(x, torch.zeros(4, 5, 3)).shape == (4, 5)
    assert m.sample(6, generator=vc.make_generator(1)).shape == (6, 12)
    assert m.reconstruct(x).shape == (5, 12)
    vc.check_model(m)  # the interface of Part II
    g = vc.VAE(12, 3, 16, likelihood="gaussian", generator=vc.make_generator(0))
    mean, lv = g.decode(torch.zeros(5, 3))
    assert mean.shape == lv.shape == (5, 12)


def test_initial_weights_follow_the_generator():
    a = vc.VAE(12, 3, 16, generator=vc.make_generator(4))
    b = vc.VAE(12, 3, 16, generator=vc.make_generator(4))
    c = vc.VAE(12, 3, 16, generator=vc.make_generator(5))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.fc1.weight, c.fc1.weight)
    bound = 1 / math.sqrt(12)  # nn.Linear's default range, 1/sqrt(fan_in)
    assert a.fc1.weight.abs().max() <= bound and a.fc1.weight.abs().max() > 0.9 * bound


def test_bernoulli_likelihood_matches_torch_distributions():
    m = vc.VAE(12, 3, 16, generator=vc.make_generator(0))
    x = _binary(5, 12)
    z = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    expected = Bernoulli(logits=m.decode(z)).log_prob(x).sum(-1)
    torch.testing.assert_close(m.log_px_given_z(x, z), expected)


@pytest.mark.parametrize("sigma2", [None, 0.3])
def test_gaussian_likelihood_matches_torch_distributions(sigma2):
    m = vc.VAE(12, 3, 16, likelihood="gaussian", sigma2=sigma2, var_floor=0.01, generator=vc.make_generator(0))
    x = torch.rand(5, 12, generator=torch.Generator().manual_seed(2))
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    mean = m.fc4(torch.relu(m.fc3(z)))
    var = torch.full((12,), 0.3) if sigma2 else 0.01 + torch.nn.functional.softplus(m.raw_var)
    expected = Normal(mean, var.sqrt()).log_prob(x).sum(-1)
    torch.testing.assert_close(m.log_px_given_z(x, z), expected)
    if sigma2 is None:  # the floor holds however negative the raw parameter goes
        with torch.no_grad():
            m.raw_var.fill_(-50.0)
        assert torch.exp(m.decode(z)[1]).min().item() == pytest.approx(0.01, rel=1e-6)


def test_loss_is_the_negative_single_sample_elbo_averaged_over_the_batch():
    m = vc.VAE(12, 3, 16, generator=vc.make_generator(0))
    x = _binary(6, 12)
    loss = m.loss(x, generator=torch.Generator().manual_seed(9))
    mu, logvar = m.encode(x)
    eps = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(9))[0]  # the same draw
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = Bernoulli(logits=m.decode(z)).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(loss, (kl - recon).mean())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_vae_loss_function_matches_the_model_loss():
    m = vc.VAE(12, 3, 16, generator=vc.make_generator(0))
    x = _binary(6, 12)
    mu, logvar = m.encode(x)
    eps = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(9))[0]
    logits = m.decode(mu + torch.exp(0.5 * logvar) * eps)
    torch.testing.assert_close(vc.vae_loss(x, logits, mu, logvar), m.loss(x, generator=torch.Generator().manual_seed(9)))


def _linear_vae(d=6, k=2, seed=0):
    m = vc.LinearVAE(d, k, generator=vc.make_generator(seed), dtype=F64)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        m.W.copy_(torch.randn(d, k, generator=g, dtype=F64))
        m.b.copy_(torch.randn(d, generator=g, dtype=F64))
        m.log_sigma2.fill_(math.log(0.5))
    return m


def _with_best_encoder(m):
    """The encoder set to the best diagonal q of its decoder, written out (G = I + W^T W / sigma2)."""
    W, b, s2 = m.W.detach(), m.b.detach(), m.sigma2.detach()
    G = torch.eye(W.shape[1], dtype=F64) + W.T @ W / s2
    weight = torch.linalg.inv(G) @ W.T / s2
    with torch.no_grad():
        m.encoder.weight.copy_(weight)
        m.encoder.bias.copy_(-weight @ b)
        m.enc_logvar.copy_(-torch.log(torch.diagonal(G)))
    return m


def test_linear_vae_exact_marginal():
    m = _linear_vae()
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=F64)
    C = m.W @ m.W.T + 0.5 * torch.eye(6, dtype=F64)
    expected = MultivariateNormal(m.b, covariance_matrix=C).log_prob(x)
    torch.testing.assert_close(m.log_prob(x).detach(), expected.detach())
    assert m.encode(x)[1].shape == (5, 2)


def _iwae_by_loop(model, x, k, seed):
    """log (1/K) sum_j p(x, z_j) / q(z_j | x), one draw at a time, with torch.distributions."""
    g = torch.Generator().manual_seed(seed)
    mu, logvar = model.encode(x)
    q = Normal(mu, torch.exp(0.5 * logvar))
    logs = []
    for _ in range(k):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, dtype=mu.dtype)
        mean, lv = model.decode(z)
        log_px = Normal(mean, torch.exp(0.5 * lv)).log_prob(x).sum(-1)
        logs.append(log_px + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))
    return torch.logsumexp(torch.stack(logs), 0) - math.log(k)


def test_elbo_below_iwae_below_the_exact_marginal_on_a_linear_vae():
    m = _linear_vae()
    with torch.no_grad():  # a q between the random encoder and the best one: the gap is clear, the weights tame
        m.enc_logvar.fill_(-1.0)
        m.encoder.weight.mul_(0.5)
    x = (m.to_ppca().sample(40, generator=vc.make_generator(5)))
    with torch.no_grad():
        exact = m.log_prob(x).mean().item()
        elbo = vc.elbo(m, x, n_samples=2000, generator=vc.make_generator(6)).mean().item()
        iw10 = vc.iwae_log_likelihood(m, x, k=10, generator=vc.make_generator(7)).mean().item()
        per_draw = vc.iwae_log_likelihood(m, x, k=10, generator=torch.Generator().manual_seed(11), chunk=1)
        iw1000 = vc.iwae_log_likelihood(m, x, k=1000, generator=vc.make_generator(8), chunk=64).mean().item()
        loop = _iwae_by_loop(m, x, 10, 11)
    assert elbo < iw10 < iw1000 < exact + 0.01
    assert exact - iw1000 < 0.25 * (exact - elbo)  # K = 1000 closes most of the gap
    torch.testing.assert_close(per_draw, loop)  # the same draws, one at a time: the same estimate


def test_iwae_with_one_draw_is_an_unbiased_elbo_estimate():
    m = _with_best_encoder(_linear_vae())
    x = m.to_ppca().sample(200, generator=vc.make_generator(5))
    with torch.no_grad():
        iw1 = vc.iwae_log_likelihood(m, x, k=1, generator=vc.make_generator(7)).mean().item()
        exact_elbo = vc.linear_gaussian_elbo(m.to_ppca(), x, q=m.encode(x)).mean().item()
    assert iw1 == pytest.approx(exact_elbo, abs=0.15)


def test_iwae_bound_is_stable():
    lw = torch.tensor([[-1000.0, 1000.0], [-1001.0, 999.0]])
    expected = torch.tensor([-1000 + math.log((1 + math.exp(-1)) / 2), 1000 + math.log((1 + math.exp(-1)) / 2)])
    torch.testing.assert_close(vc.iwae_bound(lw), expected)


def test_fit_lowers_the_held_out_loss_and_records_history():
    x, _ = vc.load_mnist("train")
    xt, _ = vc.load_mnist("test")
    m = vc.VAE(784, 4, 32, generator=vc.make_generator(0))
    before = m.loss(xt, generator=vc.make_generator(1)).item()
    h = vc.fit(m, x[:1000], epochs=2, batch_size=100, lr=3e-3, x_valid=xt[:500], progress=False)
    assert h.epochs == 2 and len(h.valid_loss) == 2 and len(h.batch_loss) == 20
    assert h.valid_loss[-1] < before - 50
    assert h.train_loss[1] < h.train_loss[0]
    again = vc.VAE(784, 4, 32, generator=vc.make_generator(0))
    h2 = vc.fit(again, x[:1000], epochs=2, batch_size=100, lr=3e-3, x_valid=xt[:500], progress=False)
    assert h2.train_loss == h.train_loss  # seeded: the same numbers on every run


def test_fit_uses_every_row_once_per_epoch_and_the_last_partial_batch():
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen = []

        def loss(self, x, generator=None):
            self.seen.append(x[:, 0].clone())
            return (self.w - x.mean()) ** 2

    r = Recorder()
    x = torch.arange(10.0)[:, None].repeat(1, 3)
    vc.fit(r, x, epochs=2, batch_size=4, progress=False)
    assert [len(s) for s in r.seen] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(r.seen[:3]).tolist()) == list(range(10))


def test_fit_stops_on_nan_with_epoch_and_batch():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))
            self.calls = 0

        def loss(self, x, generator=None):
            self.calls += 1
            return self.w * (float("nan") if self.calls == 5 else 1.0)

    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 2 of 3.*lower lr"):
        vc.fit(Bad(), torch.zeros(9, 2), epochs=3, batch_size=3, progress=False)


def test_fit_bad_input_is_named_before_training():
    m = vc.VAE(784, 2, 8, generator=vc.make_generator(0))
    x = torch.rand(20, 784)
    with pytest.raises(ValueError, match="x must have 784 columns"):
        vc.fit(m, torch.rand(20, 100), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\]"):
        vc.fit(m, 2 * x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="x must have at least 1 row"):
        vc.fit(m, torch.zeros(0, 784), epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        vc.fit(m, x, epochs=0, progress=False)
    with pytest.raises(ValueError, match="lr must be > 0"):
        vc.fit(m, x, epochs=1, lr=-1e-3, progress=False)
    with pytest.raises(ValueError, match="x_valid must have 784 columns"):
        vc.fit(m, x, epochs=1, x_valid=torch.rand(3, 5), progress=False)
    with pytest.raises(ValueError, match="device must be None, 'cpu'"):
        vc.fit(m, x, epochs=1, device="gpu", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch.cuda.is_available"):
            vc.fit(m, x, epochs=1, device="cuda", progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module with a loss"):
        vc.fit(object(), x, epochs=1)

    class NoParameters(torch.nn.Module):
        def loss(self, x, generator=None):
            return x.sum()

    with pytest.raises(ValueError, match="model must have parameters to train"):
        vc.fit(NoParameters(), x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        vc.VAE(784, 2, 8, likelihood="poisson")
    with pytest.raises(ValueError, match="sigma2 applies to likelihood='gaussian' only"):
        vc.VAE(784, 2, 8, sigma2=0.1)
    with pytest.raises(ValueError, match="x must have 784 columns"):
        m.encode(torch.rand(3, 100))
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\]"):
        m.encode(2 * x)
    with pytest.raises(ValueError, match="z must have shape"):
        m.decode_check = m.log_px_given_z(x[:2], torch.zeros(2, 5))
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        vc.iwae_log_likelihood(m, x, k=0)


def test_fit_progress_bar_shows_the_running_loss(capsys):
    m = vc.VAE(20, 2, 8, generator=vc.make_generator(0))
    vc.fit(m, _binary(50, 20), epochs=2, batch_size=25, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "2/2" in err


def test_linear_vae_trained_on_the_elbo_approaches_ppca():
    """A small problem: data from a 2-D PPCA in 5 dimensions; the trained LinearVAE's marginal
    log-likelihood comes within a few hundredths of a nat of the closed-form PPCA fit."""
    truth = vc.random_linear_gaussian(2, 5, sigma2=0.2, generator=vc.make_generator(0))
    x = truth.sample(2000, generator=vc.make_generator(1))
    ppca = vc.fit_ppca(x, 2)
    m = vc.LinearVAE(5, 2, generator=vc.make_generator(2), dtype=F64)
    vc.fit(m, x, epochs=150, batch_size=200, lr=2e-2, progress=False)
    gap = (ppca.log_prob(x).mean() - m.log_prob(x).mean()).item()
    assert 0 <= gap + 1e-6 and gap < 0.05


def test_cosine_decay_lowers_the_rate_every_epoch_and_bad_names_are_refused():
    rates = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, x, generator=None):
            return (self.w - x.mean()) ** 2

    probe = Probe()
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = spy
    try:
        vc.fit(probe, torch.zeros(4, 2), epochs=4, batch_size=4, lr=0.1, progress=False, lr_decay="cosine")
    finally:
        torch.optim.Adam.step = original
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert rates == pytest.approx(expected)
    with pytest.raises(ValueError, match="lr_decay must be one of 'cosine'"):
        vc.fit(probe, torch.zeros(4, 2), epochs=1, progress=False, lr_decay="linear")
