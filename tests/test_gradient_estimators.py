"""Score-function (REINFORCE) and pathwise gradient estimators (chapter 7).

For f(z) = -1/2 sum_j a_j (z_j - t_j)^2 and q = N(mu, diag(exp(logvar))) the gradient of E_q[f] is
known in closed form: d/dmu = -a (mu - t), d/dlogvar = -1/2 a exp(logvar). Both estimators must
agree with it within Monte Carlo error, and the pathwise one must have a far smaller variance.
"""
import math

import pytest
import torch
from part2_models import one_thread  # noqa: F401  (autouse: one torch thread)

import vae_course as vc

F64 = torch.float64
A = torch.tensor([1.0, 2.0, 0.5], dtype=F64)
T = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
MU = torch.tensor([0.2, 0.3, -0.4], dtype=F64)
LOGVAR = torch.tensor([-0.5, 0.2, 0.0], dtype=F64)


def f(z):
    return -0.5 * (A * (z - T) ** 2).sum(-1)


def exact():
    return -A * (MU - T), -0.5 * A * LOGVAR.exp()


def _within_error(est, truth, sigmas=4.5):
    se = est.std(0) / math.sqrt(est.shape[0])
    return bool(((est.mean(0) - truth).abs() < sigmas * se).all())


@pytest.mark.parametrize("baseline", [None, 3.0, "leave_one_out"])
def test_score_function_estimator_is_unbiased(baseline):
    est = vc.score_function_gradient(f, MU, LOGVAR, n_samples=4, n_repeats=20_000, baseline=baseline,
                                     generator=torch.Generator().manual_seed(0))
    assert est.mu.shape == est.logvar.shape == (20_000, 3)
    g_mu, g_logvar = exact()
    assert _within_error(est.mu, g_mu) and _within_error(est.logvar, g_logvar)


def test_pathwise_estimator_is_unbiased_and_has_a_far_smaller_variance():
    pathwise = vc.pathwise_gradient(f, MU, LOGVAR, n_samples=1, n_repeats=20_000,
                                    generator=torch.Generator().manual_seed(1))
    score = vc.score_function_gradient(f, MU, LOGVAR, n_samples=1, n_repeats=20_000,
                                       generator=torch.Generator().manual_seed(1))
    g_mu, g_logvar = exact()
    assert _within_error(pathwise.mu, g_mu) and _within_error(pathwise.logvar, g_logvar)
    ratio = score.mu.var(0).sum() / pathwise.mu.var(0).sum()
    assert ratio > 10, float(ratio)


def test_a_leave_one_out_baseline_removes_the_variance_of_a_constant_offset():
    shifted = lambda z: f(z) + 50.0  # noqa: E731  (same gradient; a large offset ruins REINFORCE)
    opts = dict(n_samples=8, n_repeats=4000)
    plain = vc.score_function_gradient(shifted, MU, LOGVAR, generator=torch.Generator().manual_seed(2), **opts)
    loo = vc.score_function_gradient(shifted, MU, LOGVAR, baseline="leave_one_out",
                                     generator=torch.Generator().manual_seed(2), **opts)
    assert loo.mu.var(0).sum() < plain.mu.var(0).sum() / 20
    g_mu, _ = exact()
    assert _within_error(loo.mu, g_mu)


def test_estimates_from_given_draws_match_the_formulas():
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    eps = torch.randn(5, 3, 3, generator=gen(), dtype=F64)  # (n_repeats, n_samples, k)
    std = torch.exp(0.5 * LOGVAR)
    z = MU + std * eps
    fz = f(z)
    score = vc.score_function_gradient(f, MU, LOGVAR, n_samples=3, n_repeats=5, generator=gen())
    torch.testing.assert_close(score.mu, (fz[..., None] * eps / std).mean(1))
    torch.testing.assert_close(score.logvar, (fz[..., None] * 0.5 * (eps ** 2 - 1)).mean(1))
    loo = vc.score_function_gradient(f, MU, LOGVAR, n_samples=3, n_repeats=5, baseline="leave_one_out",
                                     generator=gen())
    others = torch.stack([(fz.sum(1) - fz[:, s]) / 2 for s in range(3)], dim=1)
    torch.testing.assert_close(loo.mu, ((fz - others)[..., None] * eps / std).mean(1))
    path = vc.pathwise_gradient(f, MU, LOGVAR, n_samples=3, n_repeats=5, generator=gen())
    df = -A * (z - T)  # f'(z)
    torch.testing.assert_close(path.mu, df.mean(1))
    torch.testing.assert_close(path.logvar, (df * eps * 0.5 * std).mean(1))


def test_batched_parameters_give_one_gradient_per_row():
    mu = torch.stack([MU, MU + 1.0])
    logvar = torch.stack([LOGVAR, LOGVAR - 1.0])
    est = vc.pathwise_gradient(f, mu, logvar, n_samples=2, n_repeats=3, generator=torch.Generator().manual_seed(0))
    assert est.mu.shape == (3, 2, 3)
    # f is quadratic, so the pathwise gradient in mu is -a (z - t); its mean over draws is exact on average
    est = vc.pathwise_gradient(f, mu, logvar, n_samples=1, n_repeats=20_000,
                               generator=torch.Generator().manual_seed(0))
    assert _within_error(est.mu[:, 1], -A * (mu[1] - T))


def test_float32_parameters_give_float32_estimates():
    for estimator in (vc.pathwise_gradient, vc.score_function_gradient):
        est = estimator(lambda z: -z.pow(2).sum(-1), MU.float(), LOGVAR.float(), n_repeats=2)
        assert est.mu.dtype == torch.float32 and est.logvar.dtype == torch.float32


def test_gradient_estimators_reject_bad_input():
    with pytest.raises(TypeError, match=r"f must be a function of z \(a callable\), got int"):
        vc.score_function_gradient(3, MU, LOGVAR)
    with pytest.raises(ValueError, match=r"mu and logvar must have the same shape, got mu \(3,\) and logvar \(2,\)"):
        vc.pathwise_gradient(f, MU, LOGVAR[:2])
    with pytest.raises(TypeError, match=r"mu must be a floating-point tensor .*got dtype torch.int64"):
        vc.pathwise_gradient(f, torch.zeros(3, dtype=torch.int64), LOGVAR)
    with pytest.raises(ValueError, match=r"logvar must be finite, but it contains inf"):
        vc.score_function_gradient(f, MU, torch.full((3,), float("inf"), dtype=F64))
    with pytest.raises(ValueError, match=r"f must return one value per draw: for z of shape \(1, 1, 3\) a tensor of "
                                         r"shape \(1, 1\), got shape \(1, 1, 3\)"):
        vc.score_function_gradient(lambda z: z, MU, LOGVAR)
    with pytest.raises(ValueError, match=r"baseline='leave_one_out' needs n_samples >= 2"):
        vc.score_function_gradient(f, MU, LOGVAR, baseline="leave_one_out")
    with pytest.raises(ValueError, match=r"baseline must be None, a number or 'leave_one_out', got 'mean'"):
        vc.score_function_gradient(f, MU, LOGVAR, n_samples=2, baseline="mean")
    with pytest.raises(ValueError, match=r"f must be differentiable in z for the pathwise estimator"):
        vc.pathwise_gradient(lambda z: f(z).detach(), MU, LOGVAR)
    with pytest.raises(ValueError, match=r"n_repeats must be an integer >= 1, got 0"):
        vc.pathwise_gradient(f, MU, LOGVAR, n_repeats=0)
