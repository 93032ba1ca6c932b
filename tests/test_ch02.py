"""Chapter 2: the exercise checkers, and the numbers the chapter states, recomputed independently.

The checks: every hint a checker can emit is triggered by a hand-made wrong answer and named by
a phrase of its own; correct answers written other ways pass. The glued numbers are compared
with closed forms and torch.distributions, with one wiring check that re-runs the chapter's call.
"""
from __future__ import annotations

import math

import pytest
import torch
from exercise_contract import assert_accepts, assert_hint, assert_rejects, stub
from torch.distributions import MultivariateNormal, Normal

import vae_course as vc
from vae_course.teaching.exercises import check, known_exercises
from vae_course.teaching.exercises.ch02 import HINTS

CHAPTER = "book/02_latent_variable_models.ipynb"
F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


# --- the checkers ---------------------------------------------------------------------------------

def cond_by_normal(x, z, W, b, sigma2):
    return Normal(z @ W.T + b, math.sqrt(sigma2)).log_prob(x).sum(-1)


def cond_by_mvn(x, z, W, b, sigma2):
    cov = sigma2 * torch.eye(x.shape[1], dtype=x.dtype)
    return MultivariateNormal(z @ W.T + b, covariance_matrix=cov).log_prob(x)


def cond_as_in_the_chapter(x, z, W, b, sigma2):
    mean = z @ W.T + b
    per_dim = -0.5 * (math.log(2 * math.pi) + math.log(sigma2) + (x - mean) ** 2 / sigma2)
    return per_dim.sum(dim=-1)


def cond_by_loop(x, z, W, b, sigma2):
    """One row at a time, the mean as an explicit sum over latent coordinates."""
    rows = []
    for n in range(x.shape[0]):
        mean = b + sum(W[:, j] * z[n, j] for j in range(W.shape[1]))
        rows.append(-0.5 * (x.shape[1] * (LOG_2PI + math.log(sigma2)) + ((x[n] - mean) ** 2).sum() / sigma2))
    return torch.stack(rows)


@pytest.mark.parametrize("fn", [vc.linear_conditional_log_prob, cond_by_normal, cond_by_mvn, cond_as_in_the_chapter,
                                cond_by_loop], ids=lambda f: f.__name__)
def test_conditional_log_prob_accepts_correct_answers(fn):
    assert_accepts("conditional_log_prob", fn)


def _cond(mean_fn=lambda z, W, b: z @ W.T + b, c2pi=1.0, half=0.5, var=lambda s: s, logvar=lambda s: math.log(s),
          reduce=lambda t: t.sum(-1), sign=1.0):
    def f(x, z, W, b, sigma2):
        per = -half * (c2pi * LOG_2PI + logvar(sigma2) + (x - mean_fn(z, W, b)) ** 2 / var(sigma2))
        return sign * reduce(per)
    return f


COND_HINTED = {
    "single_number": (_cond(reduce=lambda t: t.sum()), "do not sum or average over the rows"),
    "not_summed": (_cond(reduce=lambda t: t), "over the d data dimensions (the last axis)"),
    "missing_log_2pi": (_cond(c2pi=0.0), "2*pi constant is missing"),
    "missing_half": (_cond(half=1.0), "the factor 1/2 is missing"),
    "sigma2_as_std": (_cond(var=lambda s: s * s, logvar=lambda s: 2 * math.log(s)), "used as a standard deviation"),
    "times_sigma2": (_cond(var=lambda s: 1 / s), "multiplied by sigma2"),
    "missing_log_sigma2": (_cond(logvar=lambda s: 0.0), "log-variance term is missing"),
    "offset_sign": (_cond(mean_fn=lambda z, W, b: z @ W.T - b), "the offset b was subtracted"),
    "offset_missing": (_cond(mean_fn=lambda z, W, b: z @ W.T), "the offset b was left out"),
    "mean_over_dims": (_cond(reduce=lambda t: t.mean(-1)), "the data dimensions were averaged"),
    "sign_flip": (_cond(sign=-1.0), "you returned -log p(x | z)"),
}


@pytest.mark.parametrize("key", COND_HINTED)
def test_conditional_log_prob_gives_the_hint_of_each_mistake(key):
    fn, phrase = COND_HINTED[key]
    assert_hint("conditional_log_prob", HINTS["conditional_log_prob"], key, fn, phrase)


def test_every_conditional_hint_has_a_mistake_that_triggers_it():
    assert set(COND_HINTED) == set(HINTS["conditional_log_prob"])


COND_OTHER = {
    "detached": (lambda *a: cond_by_normal(*a).detach(), "carries no gradient"),
    "float64 output for float32 input": (lambda *a: cond_by_normal(*a).double(), "should have dtype torch.float32"),
    "W used untransposed on the latent side": (_cond(mean_fn=lambda z, W, b: (z @ W.T).flip(-1) + b), "wrong value"),
    "returns a list": (lambda *a: cond_by_normal(*a).tolist(), "should be a torch.Tensor"),
    "stub": (stub, "not implemented yet"),
    "crash": (lambda x, z, W, b, s: z @ W + b, "raised RuntimeError"),
    "wrong only at the chapter's size (k = 16)": (lambda x, z, W, b, s: cond_by_normal(x, z, W, b, s)
                                                  * (1.001 if W.shape[1] >= 16 else 1), "z (10, 16)"),
    "wrong only in float32": (lambda x, z, W, b, s: cond_by_normal(x, z, W, b, s)
                              + (0.1 if x.dtype == torch.float32 else 0), "784 pixels in float32"),
}


@pytest.mark.parametrize("name", COND_OTHER)
def test_conditional_log_prob_rejects_other_wrong_answers(name):
    fn, words = COND_OTHER[name]
    assert "Hint" not in assert_rejects("conditional_log_prob", fn, words)


def mc_by_shift(x, z, W, b, sigma2):  # correct: shift by the max by hand
    ll = cond_by_normal(x, z, W, b, sigma2)
    m = ll.max(0).values
    return m + torch.log(torch.exp(ll - m).mean(0))


def mc_as_in_the_chapter(x, z, W, b, sigma2):
    log_lik = vc.linear_conditional_log_prob(x, z, W, b, sigma2)
    return torch.logsumexp(log_lik, dim=0) - math.log(z.shape[0])


def mc_by_loop(x, z, W, b, sigma2):
    """One row at a time, a running log-sum-exp over the draws."""
    out = []
    for n in range(x.shape[0]):
        acc = torch.tensor(-math.inf, dtype=x.dtype)
        for s in range(z.shape[0]):
            acc = torch.logaddexp(acc, cond_by_normal(x[n:n + 1], z[s, n:n + 1], W, b, sigma2)[0])
        out.append(acc - math.log(z.shape[0]))
    return torch.stack(out)


@pytest.mark.parametrize("fn", [vc.naive_mc_log_prob, mc_by_shift, mc_as_in_the_chapter,
                                lambda *a: vc.log_mean_exp(cond_by_normal(*a), dim=0)], ids=str)
def test_naive_mc_log_prob_accepts_correct_answers(fn):
    assert_accepts("naive_mc_log_prob", fn)


def test_naive_mc_log_prob_accepts_a_plain_loop():
    assert_accepts("naive_mc_log_prob", mc_by_loop)


def _ll(x, z, W, b, sigma2):
    return cond_by_normal(x, z, W, b, sigma2)  # (S, N)


def _underflow_guard_only(*a):
    """Shifts by the max only when it is negative: survives underflow, not overflow."""
    ll = _ll(*a)
    shift = ll.max(0).values.clamp(max=0.0)
    return shift + torch.log(torch.exp(ll - shift).mean(0))


MC_HINTED = {
    "single_number": (lambda *a: mc_by_shift(*a).mean(), "do not average over the rows"),
    "wrong_dim": (lambda *a: torch.logsumexp(_ll(*a), 1) - math.log(a[1].shape[1]), "the average ran over the rows"),
    "underflow": (lambda *a: torch.log(torch.exp(_ll(*a)).mean(0)), "underflowed to 0, so the log gave -inf"),
    "overflow": (_underflow_guard_only, "overflowed to inf"),
    "jensen": (lambda *a: _ll(*a).mean(0), "averaged the log-densities"),
    "missing_log_s": (lambda *a: torch.logsumexp(_ll(*a), 0), "too large by exactly log S"),
    "log_n": (lambda *a: torch.logsumexp(_ll(*a), 0) - math.log(a[1].shape[1]), "you subtracted log N"),
    "sign_flip": (lambda *a: -mc_by_shift(*a), "not minus it"),
    "logsumexp_of_minus": (lambda *a: torch.logsumexp(-_ll(*a), 0) - math.log(a[1].shape[0]),
                           "logsumexp of minus the log-densities"),
    "max_only": (lambda *a: _ll(*a).max(0).values, "largest log-density alone"),
}


@pytest.mark.parametrize("key", MC_HINTED)
def test_naive_mc_log_prob_gives_the_hint_of_each_mistake(key):
    fn, phrase = MC_HINTED[key]
    assert_hint("naive_mc_log_prob", HINTS["naive_mc_log_prob"], key, fn, phrase)


def test_every_naive_mc_hint_has_a_mistake_that_triggers_it():
    assert set(MC_HINTED) == set(HINTS["naive_mc_log_prob"])


MC_OTHER = {
    "returns a float": (lambda *a: float(mc_by_shift(*a)[0]), "should be a torch.Tensor"),
    "float64 output for float32 input": (lambda *a: mc_by_shift(*a).double(), "should have dtype torch.float32"),
    "S + 1 in the average": (lambda *a: torch.logsumexp(_ll(*a), 0) - math.log(a[1].shape[0] + 1), "wrong value"),
    "stub": (stub, "not implemented yet"),
    "crash": (lambda *a: 1 / 0, "ZeroDivisionError"),
    "wrong only at k = 16": (lambda *a: mc_by_shift(*a) * (1.001 if a[1].shape[-1] == 16 else 1),
                             "z (1000, 5, 16)"),
    "wrong only at k = 32": (lambda *a: mc_by_shift(*a) * (1.001 if a[1].shape[-1] == 32 else 1),
                             "z (1000, 5, 32)"),
}


@pytest.mark.parametrize("name", MC_OTHER)
def test_naive_mc_log_prob_rejects_other_wrong_answers(name):
    fn, words = MC_OTHER[name]
    assert "Hint" not in assert_rejects("naive_mc_log_prob", fn, words)


def test_chapter_2_exercises_are_registered():
    ex = known_exercises()
    assert ex["conditional_log_prob"].chapter == ex["naive_mc_log_prob"].chapter == "02_latent_variable_models"
    assert ex["conditional_log_prob"].reference is vc.linear_conditional_log_prob
    assert ex["naive_mc_log_prob"].reference is vc.naive_mc_log_prob


def test_checker_survives_a_crashing_answer():
    result = check("naive_mc_log_prob", lambda *a: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message


# --- the chapter ----------------------------------------------------------------------------------


def _toy():
    W = torch.tensor([[1.6], [0.9]], dtype=F64)
    b = torch.tensor([0.3, -0.2], dtype=F64)
    return W, b, 0.12


def test_toy_model_numbers(glued):
    W, b, s2 = _toy()
    C = W @ W.T + s2 * torch.eye(2, dtype=F64)
    exact = MultivariateNormal(b, C).log_prob(torch.tensor([1.0, 0.5], dtype=F64)).item()
    assert glued["ch2_probe_exact"] == pytest.approx(exact, abs=1e-10)
    assert glued["ch2_grid_err_100"] < 1e-5 < 0.5 < glued["ch2_grid_err_3"]
    assert glued["ch2_exact_vs_torch"] < 1e-10
    # ancestral sampling with generator 0, as in the chapter
    g = vc.make_generator(0)
    z = torch.randn(2000, 1, generator=g, dtype=F64)
    noise = torch.randn(2000, 2, generator=g, dtype=F64)
    x = z @ W.T + b + math.sqrt(s2) * noise
    assert glued["ch2_sample_n"] == 2000
    assert glued["ch2_cov_error"] == pytest.approx((torch.cov(x.T) - C).abs().max().item(), rel=1e-6)
    assert glued["ch2_cov_error"] < 0.1


def _grid_log_prob_by_loop(x, W, b, s2, K, z_max=5.0):
    """The chapter's finite mixture over a grid of K latent values, weights proportional to the prior, by a loop."""
    zs = [-z_max + 2 * z_max * j / (K - 1) for j in range(K)]
    prior = [math.exp(-0.5 * z * z) for z in zs]
    total = 0.0
    for z, w in zip(zs, prior):
        sq = sum((x[i] - (W[i][0] * z + b[i])) ** 2 for i in range(len(x)))
        total += w / sum(prior) * math.exp(-0.5 * (len(x) * math.log(2 * math.pi * s2) + sq / s2))
    return math.log(total)


def test_grid_mixture_errors(glued):
    W, b, s2 = _toy()
    x = [1.0, 0.5]
    exact = MultivariateNormal(b, W @ W.T + s2 * torch.eye(2, dtype=F64)).log_prob(torch.tensor(x, dtype=F64)).item()
    for K in (3, 100):
        err = abs(exact - _grid_log_prob_by_loop(x, W.tolist(), b.tolist(), s2, K))
        assert glued[f"ch2_grid_err_{K}"] == pytest.approx(err, rel=1e-6, abs=1e-12), K


def test_toy_estimates(glued):
    # recompute the chapter's toy experiment: x from generator 0, prior draws from generator 1
    W, b, s2 = _toy()
    g = vc.make_generator(0)
    z = torch.randn(2000, 1, generator=g, dtype=F64)
    x = (z @ W.T + b + math.sqrt(s2) * torch.randn(2000, 2, generator=g, dtype=F64))[:20]
    exact = MultivariateNormal(b, W @ W.T + s2 * torch.eye(2, dtype=F64)).log_prob(x)
    g = vc.make_generator(1)
    err = {}
    for S in (1, 10, 100, 1000):
        est = []
        for _ in range(20):
            zs = torch.randn(S, 20, 1, generator=g, dtype=F64)
            est.append(torch.logsumexp(Normal(zs @ W.T + b, math.sqrt(s2)).log_prob(x).sum(-1), 0) - math.log(S))
        err[S] = exact - torch.stack(est)
    assert glued["ch2_toy_err_1"] == pytest.approx(err[1].mean().item(), rel=1e-6)
    assert glued["ch2_toy_err_1000"] == pytest.approx(err[1000].mean().item(), rel=1e-6, abs=1e-9)
    assert glued["ch2_toy_se_1000"] == pytest.approx(err[1000].std().item() / 20, rel=1e-6)
    assert glued["ch2_toy_err_1"] > 1.0  # one draw: far below (Jensen)
    # "too small to tell from zero": within three standard errors
    assert abs(glued["ch2_toy_err_1000"]) < 3 * glued["ch2_toy_se_1000"] < 0.05


def _sample_x(model, n, gen):
    """x from the model's ancestral sampler (the data, not what is tested), whether or not it also returns z."""
    out = model.sample(n, generator=gen)
    return out[0] if isinstance(out, tuple) else out


def _naive_mc_by_torch(x, W, b, s2, S, gen):
    """One naive Monte Carlo estimate per row of x from S fresh prior draws, with torch.distributions."""
    z = torch.randn(S, x.shape[0], W.shape[1], generator=gen, dtype=F64)
    return torch.logsumexp(Normal(z @ W.T + b, math.sqrt(s2)).log_prob(x).sum(-1), 0) - math.log(S)


def _experiment(k):
    """The chapter's experiment for one latent dimension, recomputed from the seeds, with torch.distributions."""
    gen = vc.make_generator(100 + k)
    m = vc.random_linear_gaussian(k, 32, sigma2=0.25, generator=gen)
    x = _sample_x(m, 20, gen)
    C = m.W @ m.W.T + 0.25 * torch.eye(32, dtype=F64)
    exact = MultivariateNormal(m.b, C).log_prob(x)
    est = []
    for _ in range(10):
        z = torch.randn(1000, 20, k, generator=gen, dtype=F64)
        ll = Normal(z @ m.W.T + m.b, 0.5).log_prob(x).sum(-1)
        est.append(torch.logsumexp(ll, 0) - math.log(1000))
    est = torch.stack(est)
    # posterior by conditioning the joint Gaussian of (z, x)
    post_cov = torch.eye(k, dtype=F64) - m.W.T @ torch.linalg.solve(C, m.W)
    # E_prior[p(x|z)^2] / p(x)^2 - 1, with the square of a Gaussian density written out
    C_half = m.W @ m.W.T + 0.125 * torch.eye(32, dtype=F64)
    log_ratio = (-16 * math.log(4 * math.pi * 0.25) + MultivariateNormal(m.b, C_half).log_prob(x) - 2 * exact)
    log_relvar = torch.log(torch.expm1(log_ratio))
    return dict(err=(exact - est).mean().item(), spread=est.std(0).mean().item(),
                post_sd=post_cov.diagonal().sqrt().mean().item(),
                log10_volume=0.5 * torch.logdet(post_cov).item() / math.log(10),
                log10_draws=(log_relvar / math.log(10)).mean().item())


@pytest.mark.parametrize("k", [1, 4, 16, 32])
def test_latent_dimension_experiment_matches_independent_computation(glued, k):
    ref = _experiment(k)
    assert glued["ch2_num_x"] == 20  # the 20 data points each estimate is averaged over
    assert glued[f"ch2_err_k{k}"] == pytest.approx(ref["err"], rel=1e-6, abs=1e-8)
    assert glued[f"ch2_spread_k{k}"] == pytest.approx(ref["spread"], rel=1e-6)
    assert glued[f"ch2_postsd_k{k}"] == pytest.approx(ref["post_sd"], rel=1e-8)
    assert glued[f"ch2_log10vol_k{k}"] == pytest.approx(ref["log10_volume"], rel=1e-8)
    assert glued[f"ch2_log10draws_k{k}"] == pytest.approx(ref["log10_draws"], rel=1e-6)


def test_error_against_the_number_of_draws_at_k16(glued):
    """The chapter's k = 16 curve: five estimates per budget S, draws continuing from generator 216."""
    gen = vc.make_generator(116)
    m = vc.random_linear_gaussian(16, 32, sigma2=0.25, generator=gen)
    x = _sample_x(m, 20, gen)
    exact = MultivariateNormal(m.b, m.W @ m.W.T + 0.25 * torch.eye(32, dtype=F64)).log_prob(x)
    gen = vc.make_generator(216)
    errors = {S: (exact - torch.stack([_naive_mc_by_torch(x, m.W, m.b, 0.25, S, gen) for _ in range(5)])).mean().item()
              for S in (10, 100, 1000, 10000)}
    assert glued["ch2_k16_err_S10"] == pytest.approx(errors[10], rel=1e-6)
    assert glued["ch2_k16_err_S10000"] == pytest.approx(errors[10000], rel=1e-6)


def test_error_and_cost_grow_with_latent_dimension(glued):
    err = [glued[f"ch2_err_k{k}"] for k in (1, 4, 32)]
    spread = [glued[f"ch2_spread_k{k}"] for k in (1, 4, 32)]
    draws = [glued[f"ch2_log10draws_k{k}"] for k in (1, 4, 32)]
    vol = [glued[f"ch2_log10vol_k{k}"] for k in (1, 4, 32)]
    assert abs(err[0]) < 0.1 and err[0] < err[1] < err[2] and err[2] > 5
    assert spread[0] < spread[1] < spread[2]
    assert draws[0] < draws[1] < draws[2] and draws[2] > math.log10(glued["ch2_s_fixed"])
    assert vol[0] > vol[1] > vol[2]
    assert glued["ch2_postsd_k1"] < glued["ch2_postsd_k32"] < 1  # narrower than the prior in every case
    assert glued["ch2_k16_err_S10"] > glued["ch2_k16_err_S10000"] > 1  # a thousand times the draws: still far off
    assert glued["ch2_log10draws_k16"] > math.log10(10000)  # more draws needed than the largest budget tried
    # the spread grows more slowly at large k: one doubling 16 -> 32 adds less than half of the two doublings 4 -> 16
    s4, s16, s32 = (glued[f"ch2_spread_k{k}"] for k in (4, 16, 32))
    assert s4 < s16 < s32 and s32 - s16 < (s16 - s4) / 2
    # geometric-mean posterior sd at k = 32 is the 32nd root of the volume ratio, and below the prior's 1
    assert glued["ch2_geo_sd_k32"] == pytest.approx(10 ** (glued["ch2_log10vol_k32"] / 32), rel=1e-12)
    assert glued["ch2_geo_sd_k32"] < 1


def test_manifold_numbers(glued):
    x_train, _ = vc.load_mnist("train")
    x_test, _ = vc.load_mnist("test")
    gen = vc.make_generator(2)
    noise = torch.rand(200, 784, generator=gen)
    shuffled = x_test[::5][:, torch.randperm(784, generator=gen)]
    noise_big = torch.rand(len(x_train), 784, generator=gen)

    def nn(q):  # nearest-neighbour distance computed by expanding |a - b|^2 in float64
        q, t = q.double(), x_train.double()
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ t.T + (t * t).sum(1)
        return d2.clamp_min(0).min(1).values.sqrt().mean().item()

    assert glued["ch2_nn_real"] == pytest.approx(nn(x_test[::5]), rel=1e-4)
    assert glued["ch2_nn_noise"] == pytest.approx(nn(noise), rel=1e-4)
    assert glued["ch2_nn_shuffled"] == pytest.approx(nn(shuffled), rel=1e-4)
    assert glued["ch2_nn_real"] < glued["ch2_nn_shuffled"] < glued["ch2_nn_noise"]

    def top(x, n):  # percent of variance along the top n principal directions, via the covariance eigenvalues
        ev = torch.linalg.eigvalsh(torch.cov(x.double().T)).flip(0)
        return 100 * (ev[:n].sum() / ev.sum()).item()

    assert glued["ch2_pca10_digits"] == pytest.approx(top(x_train, 10), abs=0.01)
    assert glued["ch2_pca50_digits"] == pytest.approx(top(x_train, 50), abs=0.01)
    assert glued["ch2_pca10_noise"] == pytest.approx(top(noise_big, 10), abs=0.01)
    assert glued["ch2_pca50_noise"] == pytest.approx(top(noise_big, 50), abs=0.01)
    assert glued["ch2_pca10_digits"] > 5 * glued["ch2_pca10_noise"]
    assert glued["ch2_pca10_equal"] == pytest.approx(100 * 10 / 784)
    assert glued["ch2_pca50_equal"] == pytest.approx(100 * 50 / 784)
    # noise fills directions "about equally": above the exact equal share (sampling noise) but within a factor 2.5
    assert glued["ch2_pca10_equal"] < glued["ch2_pca10_noise"] < 2.5 * glued["ch2_pca10_equal"]
    assert glued["ch2_pca50_equal"] < glued["ch2_pca50_noise"] < 2.5 * glued["ch2_pca50_equal"]
