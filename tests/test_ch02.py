"""Chapter 2: the exercise checkers, and the numbers the chapter states, recomputed independently."""
from __future__ import annotations

import math

import pytest
import torch
from exercise_contract import assert_accepts, assert_rejects
from torch.distributions import MultivariateNormal, Normal

import vae_course as vc
from vae_course.teaching.exercises import check, known_exercises

CHAPTER = "book/02_latent_variable_models.ipynb"
F64 = torch.float64


# --- the checkers ---------------------------------------------------------------------------------

def _cond_alt(x, z, W, b, sigma2):  # correct, written differently
    return Normal(z @ W.T + b, math.sqrt(sigma2)).log_prob(x).sum(-1)


def _cond(mean_fn=lambda z, W, b: z @ W.T + b, c2pi=1.0, half=0.5, var=lambda s: s, logvar=lambda s: math.log(s),
          reduce=lambda t: t.sum(-1), sign=1.0):
    def f(x, z, W, b, sigma2):
        per = -half * (c2pi * math.log(2 * math.pi) + logvar(sigma2) + (x - mean_fn(z, W, b)) ** 2 / var(sigma2))
        return sign * reduce(per)
    return f


COND_MISTAKES = {
    "missing 2pi": (_cond(c2pi=0.0), "2*pi"),
    "missing 1/2": (_cond(half=1.0), "1/2"),
    "sigma2 as std": (_cond(var=lambda s: s * s, logvar=lambda s: 2 * math.log(s)), "standard deviation"),
    "missing log-variance": (_cond(logvar=lambda s: 0.0), "log-variance"),
    "b sign": (_cond(mean_fn=lambda z, W, b: z @ W.T - b), "sign of the offset"),
    "missing b": (_cond(mean_fn=lambda z, W, b: z @ W.T), "offset b seems to be missing"),
    "mean over dims": (_cond(reduce=lambda t: t.mean(-1)), "sum over its dimensions"),
    "sign flip": (_cond(sign=-1.0), "sign is flipped"),
    "summed over the batch": (_cond(reduce=lambda t: t.sum()), "shape (5,)"),
    "W transposed wrongly": (_cond(mean_fn=lambda z, W, b: (z @ W.T).flip(-1) + b), "wrong value"),
}


def _mc_alt(x, z, W, b, sigma2):  # correct: shift by the max by hand
    ll = MultivariateNormal(z @ W.T + b, covariance_matrix=sigma2 * torch.eye(x.shape[1], dtype=x.dtype)).log_prob(x)
    m = ll.max(0).values
    return m + torch.log(torch.exp(ll - m).mean(0))


def _ll(x, z, W, b, sigma2):
    return vc.linear_conditional_log_prob(x, z, W, b, sigma2)


MC_MISTAKES = {
    "no logsumexp": (lambda *a: torch.log(torch.exp(_ll(*a)).mean(0)), "logsumexp"),
    "mean of logs": (lambda *a: _ll(*a).mean(0), "averaged the log-densities"),
    "forgot log S": (lambda *a: torch.logsumexp(_ll(*a), 0), "log S"),
    "sign flip": (lambda *a: -(torch.logsumexp(_ll(*a), 0) - math.log(a[1].shape[0])), "sign is flipped"),
    "logsumexp of minus": (lambda *a: torch.logsumexp(-_ll(*a), 0) - math.log(a[1].shape[0]), "minus the log-densities"),
    "max only": (lambda *a: _ll(*a).max(0).values, "largest log-density"),
    "wrong dim": (lambda *a: torch.logsumexp(_ll(*a), 1) - math.log(a[1].shape[1]), "shape"),
    "log N instead of log S": (lambda *a: torch.logsumexp(_ll(*a), 0) - math.log(a[1].shape[1]), "subtracted log N"),
    "returns a float": (lambda *a: float(vc.naive_mc_log_prob(*a)[0]), "torch.Tensor"),
}


def test_chapter_2_exercises_are_registered():
    ex = known_exercises()
    assert ex["conditional_log_prob"].chapter == "02_latent_variable_models"
    assert ex["conditional_log_prob"].reference is vc.linear_conditional_log_prob
    assert ex["naive_mc_log_prob"].reference is vc.naive_mc_log_prob


@pytest.mark.parametrize("fn", [vc.linear_conditional_log_prob, _cond_alt, _cond()])
def test_conditional_log_prob_accepts_correct_answers(fn):
    assert_accepts("conditional_log_prob", fn)


@pytest.mark.parametrize("fn", [vc.naive_mc_log_prob, _mc_alt])
def test_naive_mc_log_prob_accepts_correct_answers(fn):
    assert_accepts("naive_mc_log_prob", fn)


@pytest.mark.parametrize("name", list(COND_MISTAKES))
def test_conditional_log_prob_rejects_common_mistakes(name):
    fn, words = COND_MISTAKES[name]
    assert_rejects("conditional_log_prob", fn, words)


@pytest.mark.parametrize("name", list(MC_MISTAKES))
def test_naive_mc_log_prob_rejects_common_mistakes(name):
    fn, words = MC_MISTAKES[name]
    assert_rejects("naive_mc_log_prob", fn, words)


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


def _experiment(k):
    """The chapter's experiment for one latent dimension, recomputed from the seeds, with torch.distributions."""
    gen = vc.make_generator(100 + k)
    m = vc.random_linear_gaussian(k, 32, sigma2=0.25, generator=gen)
    x = m.sample(20, generator=gen)
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
    assert glued[f"ch2_err_k{k}"] == pytest.approx(ref["err"], rel=1e-6, abs=1e-8)
    assert glued[f"ch2_spread_k{k}"] == pytest.approx(ref["spread"], rel=1e-6)
    assert glued[f"ch2_postsd_k{k}"] == pytest.approx(ref["post_sd"], rel=1e-8)
    assert glued[f"ch2_log10vol_k{k}"] == pytest.approx(ref["log10_volume"], rel=1e-8)
    assert glued[f"ch2_log10draws_k{k}"] == pytest.approx(ref["log10_draws"], rel=1e-6)


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
