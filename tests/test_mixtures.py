"""vae_course.models.mixtures against torch.distributions, closed forms, plain loops, and EM's monotonicity."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal

import vae_course as vc


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def torch_mixture_1d(weights, mu, logvar):
    return MixtureSameFamily(Categorical(probs=weights), Normal(mu, torch.exp(0.5 * logvar)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_mixture_log_prob_1d_matches_mixture_same_family(dtype):
    w = torch.tensor([0.2, 0.5, 0.3], dtype=dtype)
    mu = torch.tensor([-3.0, 0.5, 4.0], dtype=dtype)
    logvar = torch.tensor([-0.5, 0.4, 0.0], dtype=dtype)
    x = 4 * torch.randn(50, generator=gen(1), dtype=dtype)
    out = vc.gaussian_mixture_log_prob(x, w, mu, logvar)
    assert out.shape == (50,) and out.dtype == dtype
    torch.testing.assert_close(out, torch_mixture_1d(w, mu, logvar).log_prob(x))


def test_gaussian_mixture_log_prob_diagonal_matches_mixture_same_family():
    g = gen(2)
    w = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    ref = MixtureSameFamily(Categorical(probs=w), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)).log_prob(x)
    torch.testing.assert_close(vc.gaussian_mixture_log_prob(x, w, mu, logvar), ref)


def test_gaussian_mixture_log_prob_is_finite_far_from_the_modes():
    w = torch.tensor([0.5, 0.5])
    mu = torch.tensor([-1.0, 1.0])
    logvar = torch.zeros(2)
    x = torch.tensor([-200.0, 300.0])
    out = vc.gaussian_mixture_log_prob(x, w, mu, logvar)
    naive = torch.log((w * torch.exp(Normal(mu, 1.0).log_prob(x[:, None]))).sum(1))
    assert torch.isinf(naive).all()  # the naive form underflows
    # Far away the nearest mode dominates: log(1/2) + log N(x; nearest, 1).
    expected = math.log(0.5) - 0.5 * math.log(2 * math.pi) - 0.5 * torch.tensor([199.0, 299.0]) ** 2
    torch.testing.assert_close(out, expected)


def test_gaussian_mixture_log_prob_validates():
    mu, lv = torch.zeros(2), torch.zeros(2)
    with pytest.raises(ValueError, match=r"weights must sum to 1, got a sum of 1.1"):
        vc.gaussian_mixture_log_prob(torch.zeros(3), torch.tensor([0.5, 0.6]), mu, lv)
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        vc.gaussian_mixture_log_prob(torch.zeros(3), torch.tensor([1.0]), mu, lv)
    with pytest.raises(ValueError, match=r"weights must be non-negative, got a smallest weight of -0.5"):
        vc.gaussian_mixture_log_prob(torch.zeros(3), torch.tensor([1.5, -0.5]), mu, lv)
    with pytest.raises(ValueError, match=r"logvar must be finite, but it contains inf"):
        vc.gaussian_mixture_log_prob(torch.zeros(3), torch.tensor([0.5, 0.5]), mu, torch.tensor([0.0, math.inf]))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        vc.gaussian_mixture_log_prob(torch.zeros(3, 2), torch.tensor([0.5, 0.5]), torch.zeros(2, 3), torch.zeros(2, 3))


def test_fit_gaussian_is_the_closed_form_mle():
    x = torch.tensor([1.0, 2.0, 4.0, 9.0], dtype=torch.float64)
    fitted = vc.fit_gaussian(x)
    assert isinstance(fitted, vc.DiagonalGaussian) and fitted.mu.shape == () and fitted.mu.dtype == torch.float64
    mu, logvar = fitted.mu, fitted.logvar
    assert mu.item() == pytest.approx(4.0)
    assert logvar.exp().item() == pytest.approx(((x - 4) ** 2).mean().item())  # biased variance
    # It maximizes the average log-likelihood: nudging either parameter lowers it.
    ll = lambda m, lv: vc.gaussian_log_prob(x[:, None], m, lv).mean()  # noqa: E731
    best = ll(mu, logvar)
    for dm, dl in [(0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)]:
        assert ll(mu + dm, logvar + dl) < best
    # its log_prob is the Normal density of each example
    torch.testing.assert_close(fitted.log_prob(x), Normal(4.0, logvar.exp().sqrt()).log_prob(x))
    with pytest.raises(ValueError, match=r"x must have at least two examples to estimate a variance, got 1"):
        vc.fit_gaussian(torch.zeros(1))
    with pytest.raises(ValueError, match=r"x has zero variance in some dimension"):
        vc.fit_gaussian(torch.ones(5))
    with pytest.raises(ValueError, match=r"x must be a 1-D or 2-D tensor of shape \(N,\) for numbers or \(N, D\)"):
        vc.fit_gaussian(torch.ones(5, 2, 2))


def test_fit_gaussian_in_d_dimensions_is_a_diagonal_gaussian_model():
    g = gen(11)
    x = torch.randn(5000, 3, generator=g) * torch.tensor([0.5, 1.0, 2.0]) + torch.tensor([1.0, -1.0, 0.0])
    fitted = vc.fit_gaussian(x)
    torch.testing.assert_close(fitted.mu, x.mean(0))
    torch.testing.assert_close(fitted.logvar.exp(), x.var(0, unbiased=False))
    ref = Independent(Normal(x.mean(0), x.var(0, unbiased=False).sqrt()), 1).log_prob(x[:10])
    torch.testing.assert_close(fitted.log_prob(x[:10]), ref)
    s = fitted.sample(200_000, generator=gen(12))
    assert s.shape == (200_000, 3) and s.dtype == torch.float32
    torch.testing.assert_close(s.mean(0), fitted.mu, atol=0.02, rtol=0)
    torch.testing.assert_close(s.var(0), fitted.logvar.exp(), atol=0.03, rtol=0.01)
    assert fitted.num_parameters == 6


def two_mode_data(n, seed):
    true = vc.GaussianMixture(torch.tensor([0.4, 0.6]), torch.tensor([-2.0, 1.5]), torch.tensor([-1.0, -0.4]))
    return true, true.sample(n, generator=gen(seed))


def test_gaussian_mixture_sample_matches_its_parameters():
    true, x = two_mode_data(40000, 3)
    x2, c = true.sample(40000, generator=gen(3), return_latents=True)
    assert torch.equal(x2, x) and c.dtype == torch.long
    assert abs((c == 0).float().mean().item() - 0.4) < 0.01
    assert abs(x[c == 0].mean().item() - (-2.0)) < 0.02
    assert abs(x[c == 1].var().item() - math.exp(-0.4)) < 0.03
    torch.testing.assert_close(true.log_prob(x[:5]), torch_mixture_1d(true.weights, true.mu, true.logvar).log_prob(x[:5]))
    assert torch.equal(true.sample(7, generator=gen(9)), true.sample(7, generator=gen(9)))


def test_em_gaussian_mixture_recovers_the_truth_and_never_decreases():
    true, x = two_mode_data(2000, 4)
    gm = vc.fit_gaussian_mixture(x, 2, steps=100, generator=gen(0))
    h = torch.tensor(gm.history, dtype=torch.float64)
    assert len(gm.history) == 101
    assert torch.all(h[1:] - h[:-1] >= -1e-10), "EM decreased the log-likelihood"
    assert h[-1] > h[0] + 0.1
    order = torch.argsort(gm.mu)
    torch.testing.assert_close(gm.mu[order], true.mu, atol=0.1, rtol=0)
    torch.testing.assert_close(gm.weights[order], true.weights, atol=0.03, rtol=0)
    torch.testing.assert_close(gm.logvar[order], true.logvar, atol=0.15, rtol=0)
    # history[-1] is the training log-likelihood of the returned parameters.
    assert gm.log_prob(x).mean().item() == pytest.approx(gm.history[-1], abs=1e-5)
    # A 2-component mixture beats the single Gaussian on held-out data.
    _, x_test = two_mode_data(2000, 5)
    single_model = vc.fit_gaussian(x)
    mu, lv = single_model.mu, single_model.logvar
    single = single_model.log_prob(x_test).mean()
    assert gm.log_prob(x_test).mean() > single + 0.1
    # k = 1 EM is the closed-form Gaussian.
    one = vc.fit_gaussian_mixture(x, 1, steps=3, generator=gen(0))
    torch.testing.assert_close(one.mu[0], mu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one.logvar[0], lv, rtol=1e-5, atol=1e-5)


def test_em_gaussian_mixture_diagonal_and_monotone_with_many_components():
    g = gen(6)
    x = torch.cat([torch.randn(300, 2, generator=g) + 3, torch.randn(300, 2, generator=g) * 0.5 - 2])
    gm = vc.fit_gaussian_mixture(x, 5, steps=60, generator=gen(1))
    assert gm.mu.shape == (5, 2) and gm.logvar.shape == (5, 2)
    h = torch.tensor(gm.history, dtype=torch.float64)
    assert torch.all(h[1:] - h[:-1] >= -1e-10)
    assert gm.num_parameters == 4 + 20 and gm.num_components == 5


def test_fit_gaussian_mixture_validates():
    x = torch.randn(10)
    with pytest.raises(ValueError, match=r"num_components must be an integer >= 1, got 0"):
        vc.fit_gaussian_mixture(x, 0)
    with pytest.raises(ValueError, match=r"num_components must be an integer <= 10, got 11"):
        vc.fit_gaussian_mixture(x, 11)
    with pytest.raises(TypeError, match=r"num_components must be an integer, got float 2.0"):
        vc.fit_gaussian_mixture(x, 2.0)
    with pytest.raises(ValueError, match=r"steps must be an integer >= 0, got -1"):
        vc.fit_gaussian_mixture(x, 2, steps=-1)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int"):
        vc.fit_gaussian_mixture(x, 2, generator=3)
    with pytest.raises(ValueError, match=r"x must be finite, but it contains NaN"):
        vc.fit_gaussian_mixture(torch.tensor([0.0, math.nan]), 1)
    with pytest.raises(ValueError, match=r"min_var must be > 0, got 0"):
        vc.fit_gaussian_mixture(x, 2, min_var=0.0)


@pytest.fixture(scope="module")
def digits():
    x, _ = vc.load_mnist("train")
    xt, _ = vc.load_mnist("test")
    return vc.binarize(x[:1000]), vc.binarize(xt[:300])


def test_independent_bernoulli_is_the_clamped_pixel_mean(digits):
    x, xt = digits
    model = vc.fit_independent_bernoulli(x, eps=1e-3)
    torch.testing.assert_close(model.probs, x.mean(0).clamp(1e-3, 1 - 1e-3))
    assert model.probs.min() >= 1e-3 and model.probs.max() <= 1 - 1e-3
    assert model.num_parameters == 784
    ref = Independent(Bernoulli(probs=model.probs), 1).log_prob(xt)
    torch.testing.assert_close(model.log_prob(xt), ref, rtol=1e-5, atol=1e-3)
    assert torch.isfinite(model.log_prob(xt)).all()
    s = model.sample(5, generator=gen(0))
    assert s.shape == (5, 784) and set(s.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match=r"eps must be in \(0, 0.5\), got 0"):
        vc.fit_independent_bernoulli(x, eps=0.0)
    with pytest.raises(ValueError, match=r"x must have 784 columns \(the model's data dimension\), got shape \(2, 10\)"):
        model.log_prob(torch.zeros(2, 10))


def test_bernoulli_mixture_em_monotone_and_matches_torch(digits):
    x, xt = digits
    m = vc.fit_bernoulli_mixture(x, 5, steps=15, generator=gen(0))
    h = torch.tensor(m.history, dtype=torch.float64)
    assert len(m.history) == 16
    assert torch.all(h[1:] - h[:-1] >= -1e-9), "EM decreased the log-likelihood"
    assert m.means.shape == (5, 784) and m.weights.shape == (5,)
    assert m.weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert m.probs.min() >= 1e-3 - 1e-9 and m.probs.max() <= 1 - 1e-3 + 1e-9
    ref = MixtureSameFamily(Categorical(probs=m.weights.double()),
                            Independent(Bernoulli(probs=m.probs.double()), 1)).log_prob(xt.double())
    torch.testing.assert_close(m.log_prob(xt.double()), ref)
    assert m.log_prob(x).mean().item() == pytest.approx(m.history[-1], abs=1e-3)
    torch.testing.assert_close(m.responsibilities(xt).sum(1), torch.ones(len(xt)))
    assert m.num_parameters == 4 + 5 * 784
    # Better than independent pixels on held-out digits, and reproducible with the same generator.
    ind = vc.fit_independent_bernoulli(x)
    assert m.log_prob(xt).mean() > ind.log_prob(xt).mean() + 10
    again = vc.fit_bernoulli_mixture(x, 5, steps=15, generator=gen(0))
    assert torch.equal(again.probs, m.probs)
    s, c = m.sample(6, generator=gen(1), return_latents=True)
    assert s.shape == (6, 784) and c.shape == (6,) and set(s.unique().tolist()) <= {0.0, 1.0}


def test_fit_bernoulli_mixture_validates(digits):
    x, _ = digits
    with pytest.raises(ValueError, match=r"x must be a 2-D tensor of shape \(N, d\)"):
        vc.fit_bernoulli_mixture(x[0], 2)
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\], got values in \[0, 2\]"):
        vc.fit_bernoulli_mixture(x * 2, 2)
    with pytest.raises(ValueError, match=r"num_components must be an integer <= 1000, got 1000000"):
        vc.fit_bernoulli_mixture(x, 10**6)


# --- Bernoulli models: densities, samples, bad parameters --------------------------------------------

def test_bernoulli_component_densities_are_bernoulli_log_prob(digits):
    """The mixtures' affine form of the Bernoulli density equals core's bernoulli_log_prob, component by component."""
    x, _ = digits
    m = vc.fit_bernoulli_mixture(x, 3, steps=2, generator=gen(0))
    comp = m.component_log_probs(x[:50])
    for j in range(3):
        torch.testing.assert_close(comp[:, j], vc.bernoulli_log_prob(x[:50], torch.logit(m.probs[j])), rtol=1e-5,
                                   atol=1e-3)


def test_sampled_bernoulli_images_follow_the_probabilities():
    g = gen(20)
    probs = torch.rand(2, 30, generator=g, dtype=torch.float64) * 0.9 + 0.05
    m = vc.BernoulliMixture(torch.tensor([0.3, 0.7], dtype=torch.float64), probs)
    x, c = m.sample(40_000, generator=gen(21), return_latents=True)
    assert x.shape == (40_000, 30) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert abs((c == 0).double().mean().item() - 0.3) < 0.01
    for j in range(2):  # per-pixel frequency of ones, per component, is that component's probability image
        torch.testing.assert_close(x[c == j].mean(0), probs[j], atol=0.02, rtol=0)
    # and the unconditional pixel frequency is the weighted average of the prototypes
    torch.testing.assert_close(x.mean(0), 0.3 * probs[0] + 0.7 * probs[1], atol=0.015, rtol=0)
    ind = vc.IndependentBernoulli(probs[0])
    s = ind.sample(40_000, generator=gen(22))
    torch.testing.assert_close(s.mean(0), probs[0], atol=0.015, rtol=0)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_bernoulli_models_reject_probabilities_outside_the_open_unit_interval(bad):
    probs = torch.full((2, 4), 0.5)
    probs[1, 2] = bad
    with pytest.raises(ValueError, match=r"probs must hold probabilities strictly between 0 and 1"):
        vc.BernoulliMixture(torch.tensor([0.5, 0.5]), probs)
    with pytest.raises(ValueError, match=r"probs must hold probabilities strictly between 0 and 1"):
        vc.IndependentBernoulli(probs[1])
    with pytest.raises(ValueError, match=r"probs must have shape \(\*,\)"):
        vc.IndependentBernoulli(torch.full((2, 4), 0.5))


def test_fits_return_in_the_dtype_of_x(digits):
    x, _ = digits
    assert x.dtype == torch.float32
    m = vc.fit_bernoulli_mixture(x, 2, steps=2, generator=gen(0))
    assert m.probs.dtype == m.weights.dtype == torch.float32
    m64 = vc.fit_bernoulli_mixture(x.double(), 2, steps=2, generator=gen(0))
    assert m64.probs.dtype == torch.float64
    torch.testing.assert_close(m64.probs.float(), m.probs)
    gm = vc.fit_gaussian_mixture(torch.randn(50, dtype=torch.float64, generator=gen(1)), 2, steps=3, generator=gen(0))
    assert gm.mu.dtype == gm.weights.dtype == torch.float64


def test_em_history_starts_at_the_initialisation():
    """history[0] is the log-likelihood before any EM step: with steps=0 it is the only entry."""
    x = torch.tensor([-2.0, -1.5, 1.0, 1.5, 2.5], dtype=torch.float64)
    gm = vc.fit_gaussian_mixture(x, 2, steps=0, generator=gen(3))
    assert len(gm.history) == 1
    idx = torch.randperm(5, generator=gen(3))[:2]  # the initialisation the docstring describes
    var = x.var(unbiased=False)
    init = torch.logsumexp(torch.stack([Normal(x[i], var.sqrt()).log_prob(x) for i in idx]) + math.log(0.5), 0)
    assert gm.history[0] == pytest.approx(init.mean().item(), rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_mixture_fits_run_on_cuda(digits):
    x, _ = digits
    m = vc.fit_bernoulli_mixture(x.cuda(), 3, steps=3, generator=gen(0))
    cpu = vc.fit_bernoulli_mixture(x, 3, steps=3, generator=gen(0))
    assert m.probs.device.type == "cuda" and m.log_prob(x.cuda()).device.type == "cuda"
    torch.testing.assert_close(m.probs.cpu(), cpu.probs, rtol=1e-5, atol=1e-6)
    g = torch.Generator(device="cuda").manual_seed(0)
    assert m.sample(4, generator=g).device.type == "cuda"
