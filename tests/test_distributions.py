"""vae_course.distributions against torch.distributions and closed forms."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

import vae_course as vc


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_log_prob_matches_torch_normal(dtype):
    g = gen(1)
    x = 3 * torch.randn(7, 5, generator=g, dtype=dtype)
    mu = torch.randn(7, 5, generator=g, dtype=dtype)
    logvar = 2 * torch.randn(7, 5, generator=g, dtype=dtype)
    out = vc.gaussian_log_prob(x, mu, logvar)
    ref = Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    assert out.shape == (7,) and out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)


def test_gaussian_log_prob_broadcasts_and_accepts_numbers():
    g = gen(2)
    x = torch.randn(4, 6, 3, generator=g)
    mu = torch.randn(3, generator=g)
    logvar = torch.randn(6, 1, generator=g)
    out = vc.gaussian_log_prob(x, mu, logvar)
    ref = Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    assert out.shape == (4, 6)
    torch.testing.assert_close(out, ref)
    # Python numbers for mu and logvar: a standard normal in D = 2 at the origin is -log(2 pi).
    torch.testing.assert_close(vc.gaussian_log_prob(torch.zeros(3, 2), 0.0, 0.0),
                               torch.full((3,), -math.log(2 * math.pi)))
    # A wider Gaussian has a lower peak: -1/2 logvar per coordinate.
    a = vc.gaussian_log_prob(torch.zeros(1, 1), 0.0, 0.0)
    b = vc.gaussian_log_prob(torch.zeros(1, 1), 0.0, 2.0)
    torch.testing.assert_close(a - b, torch.tensor([1.0]))


def test_gaussian_log_prob_gradients_match_closed_form():
    x = torch.tensor([[1.0, -2.0]])
    mu = torch.tensor([[0.5, 0.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0)]], requires_grad=True)
    vc.gaussian_log_prob(x, mu, logvar).sum().backward()
    # d/dmu = (x - mu) / var ; d/dlogvar = -1/2 + (x - mu)^2 / (2 var)
    torch.testing.assert_close(mu.grad, torch.tensor([[0.5, -0.5]]))
    torch.testing.assert_close(logvar.grad, torch.tensor([[-0.5 + 0.125, -0.5 + 0.5]]))


def test_gaussian_log_prob_validates_inputs():
    with pytest.raises(ValueError, match="x .*mu"):
        vc.gaussian_log_prob(torch.zeros(3, 2), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="logvar must be finite.*inf"):
        vc.gaussian_log_prob(torch.zeros(2, 2), 0.0, torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="logvar must be finite.*NaN"):
        vc.gaussian_log_prob(torch.zeros(2, 2), 0.0, torch.tensor([0.0, float("nan")]))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        vc.gaussian_log_prob([0.0, 1.0], 0.0, 0.0)
    with pytest.raises(TypeError, match="mu must be a floating-point tensor"):
        vc.gaussian_log_prob(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="at least one dimension"):
        vc.gaussian_log_prob(torch.tensor(0.0), 0.0, 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_log_prob_matches_torch_bernoulli(dtype):
    g = gen(3)
    x = torch.bernoulli(torch.full((6, 10), 0.4, dtype=dtype), generator=g)
    logits = 4 * torch.randn(6, 10, generator=g, dtype=dtype)
    out = vc.bernoulli_log_prob(x, logits)
    ref = Bernoulli(logits=logits).log_prob(x).sum(-1)
    assert out.shape == (6,) and out.dtype == dtype
    torch.testing.assert_close(out, ref)


def test_bernoulli_log_prob_is_finite_for_extreme_logits():
    # log(sigmoid(-200)) underflows to -inf in float32; the logits form gives -200 exactly.
    x = torch.tensor([[1.0, 0.0]])
    logits = torch.tensor([[-200.0, 200.0]])
    assert torch.isinf(torch.log(torch.sigmoid(logits[0, 0])))
    torch.testing.assert_close(vc.bernoulli_log_prob(x, logits), torch.tensor([-400.0]))


def test_bernoulli_log_prob_broadcasts_and_validates():
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    logits = torch.tensor([0.3, -1.0, 2.0])
    ref = Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(vc.bernoulli_log_prob(x, logits), ref)
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\]"):
        vc.bernoulli_log_prob(torch.tensor([[2.0]]), torch.tensor([[0.0]]))
    with pytest.raises(ValueError, match="x .*logits"):
        vc.bernoulli_log_prob(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="logits must be finite"):
        vc.bernoulli_log_prob(torch.zeros(1, 2), torch.tensor([[0.0, float("nan")]]))


def test_log_mean_exp_is_stable_and_correct():
    t = torch.tensor([[0.0, math.log(3.0)], [-1000.0, -1000.0]], dtype=torch.float64)
    out = vc.log_mean_exp(t, dim=1)
    torch.testing.assert_close(out, torch.tensor([math.log(2.0), -1000.0], dtype=torch.float64))
    assert torch.log(torch.exp(t[1]).mean()).item() == -math.inf  # the naive form fails here
    torch.testing.assert_close(vc.log_mean_exp(t, dim=0, keepdim=True).shape, torch.Size([1, 2]))
    with pytest.raises(ValueError, match="dim"):
        vc.log_mean_exp(t, dim=2)
    with pytest.raises(ValueError, match="no elements"):
        vc.log_mean_exp(torch.zeros(3, 0), dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_normal_std_normal_matches_torch(dtype):
    g = gen(4)
    mu = torch.randn(8, 4, generator=g, dtype=dtype)
    logvar = torch.randn(8, 4, generator=g, dtype=dtype)
    out = vc.kl_normal_std_normal(mu, logvar)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    assert out.shape == (8,)
    torch.testing.assert_close(out, ref)
    assert torch.all(out >= 0)
    torch.testing.assert_close(vc.kl_normal_std_normal(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_kl_normal_normal_matches_torch_and_reduces_to_std_normal():
    g = gen(5)
    mq, lq, mp, lp = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(4))
    out = vc.kl_normal_normal(mq, lq, mp, lp)
    ref = kl_divergence(Normal(mq, torch.exp(0.5 * lq)), Normal(mp, torch.exp(0.5 * lp))).sum(-1)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(vc.kl_normal_normal(mq, lq, 0.0, 0.0), vc.kl_normal_std_normal(mq, lq))
    with pytest.raises(ValueError, match="logvar_p must be finite"):
        vc.kl_normal_normal(mq, lq, mp, torch.full((5, 3), float("inf"), dtype=torch.float64))


def test_reparameterize_is_reproducible_differentiable_and_has_right_moments():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(0.25)], requires_grad=True)
    z1 = vc.reparameterize(mu.expand(20000, 2), logvar, generator=gen(6))
    z2 = vc.reparameterize(mu.expand(20000, 2), logvar, generator=gen(6))
    assert torch.equal(z1, z2)
    assert z1.shape == (20000, 2)
    torch.testing.assert_close(z1.mean(0), mu.detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(z1.std(0), torch.tensor([1.0, 0.5]), atol=0.02, rtol=0)
    z1.sum().backward()
    torch.testing.assert_close(mu.grad, torch.full((2,), 20000.0))
    assert logvar.grad is not None and torch.isfinite(logvar.grad).all()
    # The noise is a standard normal scaled by exp(logvar / 2).
    eps = torch.randn(3, 2, generator=gen(7))
    torch.testing.assert_close(vc.reparameterize(torch.zeros(3, 2), torch.zeros(3, 2), generator=gen(7)), eps)


def test_reparameterize_validates():
    with pytest.raises(ValueError, match="mu .*logvar"):
        vc.reparameterize(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="logvar must be finite"):
        vc.reparameterize(torch.zeros(2), torch.tensor([0.0, float("nan")]))
    with pytest.raises(TypeError, match="generator"):
        vc.reparameterize(torch.zeros(2), torch.zeros(2), generator=0)


def test_bce_identity_used_by_bernoulli_log_prob():
    # The identity the chapter states: log Bernoulli(x; sigmoid(l)) = -BCEwithlogits(l, x).
    x = torch.tensor([[1.0, 0.0, 1.0]])
    logits = torch.tensor([[0.5, 1.5, -2.5]])
    manual = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)
    torch.testing.assert_close(vc.bernoulli_log_prob(x, logits), manual)


# --- every function, float32 and float64, and on a GPU when there is one ---------------------------

def _inputs(dtype, device="cpu"):
    g = gen(11)
    t = {name: torch.randn(6, 4, generator=g, dtype=torch.float64) for name in ("x", "mu", "logvar", "mu_p", "logvar_p")}
    t["bits"] = torch.bernoulli(torch.full((6, 4), 0.5, dtype=torch.float64), generator=g)
    t["logits"] = 3 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    return {k: v.to(device=device, dtype=dtype) for k, v in t.items()}


def _std(logvar):
    return torch.exp(0.5 * logvar)


# name -> (our function applied to the inputs, the independent reference computed in float64)
CASES = {
    "gaussian_log_prob": (
        lambda t: vc.gaussian_log_prob(t["x"], t["mu"], t["logvar"]),
        lambda t: Normal(t["mu"], _std(t["logvar"])).log_prob(t["x"]).sum(-1)),
    "bernoulli_log_prob": (
        lambda t: vc.bernoulli_log_prob(t["bits"], t["logits"]),
        lambda t: Bernoulli(logits=t["logits"]).log_prob(t["bits"]).sum(-1)),
    "log_mean_exp": (
        lambda t: vc.log_mean_exp(t["x"], dim=1),
        lambda t: torch.log(torch.exp(t["x"]).mean(1))),  # naive form, fine for these moderate values
    "kl_normal_std_normal": (
        lambda t: vc.kl_normal_std_normal(t["mu"], t["logvar"]),
        lambda t: kl_divergence(Normal(t["mu"], _std(t["logvar"])),
                                Normal(torch.zeros_like(t["mu"]), torch.ones_like(t["mu"]))).sum(-1)),
    "kl_normal_normal": (
        lambda t: vc.kl_normal_normal(t["mu"], t["logvar"], t["mu_p"], t["logvar_p"]),
        lambda t: kl_divergence(Normal(t["mu"], _std(t["logvar"])), Normal(t["mu_p"], _std(t["logvar_p"]))).sum(-1)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_function_keeps_the_input_dtype_and_matches_torch_distributions(name, dtype):
    ours, reference = CASES[name]
    out = ours(_inputs(dtype))
    expected = reference(_inputs(torch.float64))
    assert out.dtype == dtype and out.shape == (6,)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, expected.to(dtype), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_reparameterize_keeps_the_input_dtype_and_scales_standard_noise(dtype):
    t = _inputs(dtype)
    z = vc.reparameterize(t["mu"], t["logvar"], generator=gen(12))
    eps = torch.randn(6, 4, generator=gen(12), dtype=dtype)  # the same standard-normal draws
    assert z.dtype == dtype and z.shape == (6, 4)
    torch.testing.assert_close((z - t["mu"]) / _std(t["logvar"]), eps)


CUDA = torch.cuda.is_available()


@pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_function_runs_on_cuda_and_returns_there(name):
    ours, reference = CASES[name]
    out = ours(_inputs(torch.float64, "cuda"))
    assert out.device.type == "cuda" and out.dtype == torch.float64
    torch.testing.assert_close(out.cpu(), reference(_inputs(torch.float64)), rtol=1e-10, atol=1e-10)
    out32 = ours(_inputs(torch.float32, "cuda"))
    assert out32.device.type == "cuda" and out32.dtype == torch.float32


@pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine (torch.cuda.is_available() is False)")
def test_reparameterize_on_cuda():
    t = _inputs(torch.float32, "cuda")
    z = vc.reparameterize(t["mu"], t["logvar"], generator=vc.make_generator(3, device="cuda"))
    again = vc.reparameterize(t["mu"], t["logvar"], generator=vc.make_generator(3, device="cuda"))
    assert z.device.type == "cuda" and z.dtype == torch.float32 and torch.equal(z, again)
    assert vc.reparameterize(t["mu"], t["logvar"]).device.type == "cuda"  # the global CUDA generator
    with pytest.raises(ValueError, match=r"generator must be on the device of mu \(cuda\), got a generator on cpu"):
        vc.reparameterize(t["mu"], t["logvar"], generator=gen(0))

