"""Chapter 1: its exercise checks reject the common mistakes, and its glued numbers are right.

The notebook is executed once (nbclient, in a temporary working directory); every number the
prose shows is read back from its glue outputs and compared with an independent computation
with the package (same seeds) and with relations that must hold whatever the seed.
"""
import math

import pytest
import torch
from exercise_contract import assert_accepts, assert_rejects
from notebook_utils import ROOT
from torch.distributions import Categorical, MixtureSameFamily, Normal

import vae_course as vc

CHAPTER = ROOT / "book" / "01_generative_modelling.ipynb"
LOG_2PI = math.log(2 * math.pi)


def check(exercise_id, fn):
    return vc.exercises.check(exercise_id, fn)


# --- exercise: gaussian_log_prob ----------------------------------------------------------------

def gaussian_alternative(x, mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)


GAUSSIAN_MISTAKES = {
    "missing 1/2": (lambda x, mu, lv: -(LOG_2PI + lv + (x - mu) ** 2 / lv.exp()).sum(-1), "1/2"),
    "logvar as std": (lambda x, mu, lv: Normal(mu, lv.exp()).log_prob(x).sum(-1), "logvar is the log of the variance"),
    "logvar as std itself": (lambda x, mu, lv: (-0.5 * LOG_2PI - torch.log(lv) - 0.5 * (x - mu) ** 2 / lv ** 2).sum(-1),
                             "not a standard deviation"),
    "logvar as variance": (lambda x, mu, lv: (-0.5 * (LOG_2PI + torch.log(lv) + (x - mu) ** 2 / lv)).sum(-1),
                           "not the variance itself"),
    "missing 2 pi": (lambda x, mu, lv: (-0.5 * (lv + (x - mu) ** 2 / lv.exp())).sum(-1), "log(2π) term is missing"),
    "log pi": (lambda x, mu, lv: (-0.5 * (math.log(math.pi) + lv + (x - mu) ** 2 / lv.exp())).sum(-1), "log(2π)"),
    "sign flip": (lambda x, mu, lv: -gaussian_alternative(x, mu, lv), "sign is flipped"),
    "mean over dims": (lambda x, mu, lv: Normal(mu, torch.exp(0.5 * lv)).log_prob(x).mean(-1), "sum over the last dimension"),
    "mean over batch": (lambda x, mu, lv: gaussian_alternative(x, mu, lv).mean(), "one log-density per example"),
    "multiply by variance": (lambda x, mu, lv: (-0.5 * (LOG_2PI + lv + (x - mu) ** 2 * lv.exp())).sum(-1), "divided by the variance"),
    "logvar sign": (lambda x, mu, lv: (-0.5 * (LOG_2PI - lv + (x - mu) ** 2 / lv.exp())).sum(-1), "wrong sign"),
    "detached": (lambda x, mu, lv: gaussian_alternative(x, mu, lv).detach(), "gradient"),
    "float32 output": (lambda x, mu, lv: gaussian_alternative(x, mu, lv).float(), "dtype"),
}


def test_gaussian_check_passes_correct_answers():
    assert_accepts("gaussian_log_prob", vc.gaussian_log_prob)
    assert_accepts("gaussian_log_prob", gaussian_alternative)


@pytest.mark.parametrize("mistake", GAUSSIAN_MISTAKES, ids=str)
def test_gaussian_check_names_each_common_mistake(mistake):
    fn, words = GAUSSIAN_MISTAKES[mistake]
    assert_rejects("gaussian_log_prob", fn, words, hidden=("### BEGIN", "exp(-logvar)"))


def test_gaussian_check_survives_a_crashing_answer():
    result = check("gaussian_log_prob", lambda x, mu, lv: x @ mu)
    assert not result.passed and "raised RuntimeError" in result.message


# --- exercise: mixture_log_prob -----------------------------------------------------------------

def mixture_alternative(x, weights, mu, logvar):
    return MixtureSameFamily(Categorical(probs=weights), Normal(mu, torch.exp(0.5 * logvar))).log_prob(x)


def _components(x, mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).log_prob(x[:, None])


MIXTURE_MISTAKES = {
    "naive log-sum-exp": (lambda x, w, mu, lv: torch.log((w * _components(x, mu, lv).exp()).sum(1)), "logsumexp"),
    "weights ignored": (lambda x, w, mu, lv: torch.logsumexp(_components(x, mu, lv), 1), "weights are ignored"),
    "uniform weights": (lambda x, w, mu, lv: torch.logsumexp(_components(x, mu, lv), 1) - math.log(len(w)), "given weights"),
    "weights not logged": (lambda x, w, mu, lv: torch.logsumexp(_components(x, mu, lv) + w, 1), "log(weight)"),
    "mean of log-densities": (lambda x, w, mu, lv: (_components(x, mu, lv) * w).sum(1), "weighted sum of densities"),
    "max instead of sum": (lambda x, w, mu, lv: (_components(x, mu, lv) + w.log()).max(1).values, "logsumexp"),
    "sign flip": (lambda x, w, mu, lv: -mixture_alternative(x, w, mu, lv), "sign is flipped"),
    "mean over batch": (lambda x, w, mu, lv: mixture_alternative(x, w, mu, lv).mean(), "one log-density per example"),
    "logvar as std": (lambda x, w, mu, lv: MixtureSameFamily(Categorical(probs=w), Normal(mu, lv.exp())).log_prob(x),
                      "log of the variance"),
    "missing 1/2": (lambda x, w, mu, lv: torch.logsumexp(w.log() + 2 * _components(x, mu, lv), 1), "1/2"),
    "missing 2 pi": (lambda x, w, mu, lv: torch.logsumexp(w.log() + _components(x, mu, lv) + 0.5 * LOG_2PI, 1),
                     "log(2π) term is missing"),
    "multiply by variance": (lambda x, w, mu, lv: torch.logsumexp(
        w.log() - 0.5 * (LOG_2PI + lv + (x[:, None] - mu) ** 2 * lv.exp()), 1), "divided by the variance"),
    "float32 output": (lambda x, w, mu, lv: mixture_alternative(x, w, mu, lv).float(), "dtype"),
    "detached": (lambda x, w, mu, lv: mixture_alternative(x, w, mu, lv).detach(), "gradient"),
}


def test_mixture_check_passes_correct_answers():
    assert_accepts("mixture_log_prob", vc.gaussian_mixture_log_prob)
    assert_accepts("mixture_log_prob", mixture_alternative)


@pytest.mark.parametrize("mistake", MIXTURE_MISTAKES, ids=str)
def test_mixture_check_names_each_common_mistake(mistake):
    fn, words = MIXTURE_MISTAKES[mistake]
    assert_rejects("mixture_log_prob", fn, words)


def test_naive_mixture_passes_near_the_modes_but_fails_far_away():
    # The naive form is right where nothing underflows: the far-away case is what rejects it.
    x = torch.tensor([-3.0, 0.0, 0.5])
    w, mu, lv = torch.tensor([0.2, 0.5, 0.3]), torch.tensor([-3.0, 0.5, 4.0]), torch.tensor([-0.5, 0.4, 0.0])
    naive = MIXTURE_MISTAKES["naive log-sum-exp"][0]
    torch.testing.assert_close(naive(x, w, mu, lv), vc.gaussian_mixture_log_prob(x, w, mu, lv))
    result = check("mixture_log_prob", naive)
    assert "far from every mode" in result.message and "-inf" in result.message


def test_chapter_exercises_are_registered_to_chapter_1():
    known = vc.exercises.known_exercises()
    for ex_id, ref in [("gaussian_log_prob", vc.gaussian_log_prob), ("mixture_log_prob", vc.gaussian_mixture_log_prob)]:
        assert known[ex_id].chapter == "01_generative_modelling"
        assert known[ex_id].reference is ref


# --- the chapter: execution and glued numbers ---------------------------------------------------


def independent_1d():
    true = vc.GaussianMixture(torch.tensor([0.35, 0.65]), torch.tensor([-2.0, 1.5]),
                              2 * torch.log(torch.tensor([0.6, 0.9])))
    x = true.sample(400, generator=vc.make_generator(1))
    xt = true.sample(2000, generator=vc.make_generator(2))
    return true, x, xt


def test_gaussian_fit_numbers(glued):
    _, x, _ = independent_1d()
    assert glued["n_train_1d"] == 400 and glued["n_test_1d"] == 2000
    assert glued["g_mu_closed"] == pytest.approx(x.mean().item(), rel=1e-5)
    assert glued["g_var_closed"] == pytest.approx(x.var(unbiased=False).item(), rel=1e-5)
    # gradient descent reaches the closed form
    assert glued["g_mu_gd"] == pytest.approx(glued["g_mu_closed"], abs=1e-4)
    assert glued["g_var_gd"] == pytest.approx(glued["g_var_closed"], rel=1e-4)
    assert glued["g_max_param_diff"] < 1e-4
    nll = 0.5 * (LOG_2PI + math.log(glued["g_var_closed"]) + 1.0)  # closed-form NLL at the MLE
    assert glued["g_loss_closed"] == pytest.approx(nll, rel=1e-5)
    assert glued["g_loss_gd"] == pytest.approx(nll, rel=1e-5)


def test_far_point_and_mixture_numbers(glued):
    true, x, xt = independent_1d()
    assert glued["far_stable"] == pytest.approx(true.log_prob(torch.tensor([40.0])).item(), rel=1e-5)
    assert math.isfinite(glued["far_stable"]) and glued["far_stable"] < -100
    mix = vc.fit_gaussian_mixture(x, 2, steps=60, generator=vc.make_generator(0))
    single = vc.fit_gaussian(x)
    mu, lv = single.mu, single.logvar
    single = vc.gaussian_log_prob(xt[:, None], mu, lv).mean().item()
    assert glued["em_steps"] == 60
    assert glued["em_first"] == pytest.approx(mix.history[0], abs=1e-6)
    assert glued["em_last"] == pytest.approx(mix.history[-1], abs=1e-6)
    assert glued["test_single"] == pytest.approx(single, abs=1e-5)
    assert glued["test_mixture"] == pytest.approx(mix.log_prob(xt).mean().item(), abs=1e-5)
    assert glued["test_true"] == pytest.approx(true.log_prob(xt).mean().item(), abs=1e-5)
    # sanity: the mixture beats one Gaussian, the truth beats both, and the KL gaps are consistent
    assert glued["test_mixture"] > glued["test_single"] + 0.1
    assert glued["test_true"] >= glued["test_mixture"]
    assert glued["kl_single"] > glued["kl_mixture"] > 0
    assert glued["test_gain"] == pytest.approx(glued["kl_single"] - glued["kl_mixture"], abs=1e-6)
    assert glued["entropy_true"] == pytest.approx(-glued["test_true"])
    assert glued["em_last"] >= glued["em_first"]


def test_explorer_numbers(glued):
    _, x, _ = independent_1d()
    lv = 2 * math.log(0.75)
    expected = []
    for w, m1, m2 in [(0.5, 0.3, 0.3), (0.5, -1.0, 1.0), (0.35, -2.0, 1.5)]:
        model = vc.GaussianMixture(torch.tensor([w, 1 - w]), torch.tensor([m1, m2]), torch.full((2,), lv))
        expected.append(model.log_prob(x).mean().item())
    assert glued["explore_best"] == pytest.approx(max(expected), abs=1e-5)
    assert glued["explore_best"] < glued["em_last"]  # EM (which also fits the variances) does better


@pytest.fixture(scope="module")
def digits():
    x, _ = vc.load_mnist("train")
    xt, _ = vc.load_mnist("test")
    return vc.binarize(x), vc.binarize(xt)


def test_full_table_numbers(glued, digits):
    x, xt = digits
    assert glued["table_digits"] == len(str(2 ** 784)) == len(str(2 ** 784 - 1)) == 237
    assert glued["n_pixels"] == 784 and glued["n_images_train"] == 4000 and glued["n_images_test"] == 1000
    assert glued["frac_on"] == pytest.approx(x.mean().item(), rel=1e-5)
    _, y = vc.load_mnist("train")
    assert glued["n_per_digit"] == 400 and (y.bincount() == 400).all()  # the prose: balanced, 400 of each
    train = {tuple(r) for r in x.to(torch.uint8).tolist()}
    assert glued["table_distinct"] == len(train)
    assert glued["table_test_seen"] == sum(tuple(r) in train for r in xt.to(torch.uint8).tolist())
    if glued["table_distinct"] == len(x):  # all distinct: each gets probability 1/N
        assert glued["table_train"] == pytest.approx(-math.log(len(x)))


def test_bernoulli_model_numbers(glued, digits):
    x, xt = digits
    ind = vc.fit_independent_bernoulli(x)
    assert glued["ind_params"] == 784
    assert glued["ind_train"] == pytest.approx(ind.log_prob(x).mean().item(), abs=1e-3)
    assert glued["ind_test"] == pytest.approx(ind.log_prob(xt).mean().item(), abs=1e-3)
    bmm = vc.fit_bernoulli_mixture(x, 10, steps=30, generator=vc.make_generator(0))
    assert glued["bmm_k"] == 10 and glued["bmm_steps"] == 30
    assert glued["bmm_params"] == 9 + 7840
    assert glued["bmm_train"] == pytest.approx(bmm.log_prob(x).mean().item(), abs=1e-3)
    assert glued["bmm_test"] == pytest.approx(bmm.log_prob(xt).mean().item(), abs=1e-3)
    assert glued["bmm_bits_per_dim"] == pytest.approx(-glued["bmm_test"] / (784 * math.log(2)), rel=1e-6)
    # sanity: the mixture beats independent pixels on held-out digits; the full table memorises
    assert glued["bmm_test"] > glued["ind_test"] + 10
    assert glued["bmm_gain"] == pytest.approx(glued["bmm_test"] - glued["ind_test"], abs=1e-6)
    assert glued["table_train"] > glued["bmm_train"] > glued["ind_train"]
    assert glued["table_test_seen"] == 0  # so the table's held-out log-likelihood is -inf


def test_parameters_vs_nats_numbers(glued, digits):
    x, xt = digits
    held_out = {k: vc.fit_bernoulli_mixture(x, k, steps=30, generator=vc.make_generator(0)).log_prob(xt).mean().item()
                for k in (2, 5, 20)}
    held_out[10] = glued["bmm_test"]
    assert glued["bmm20_test"] == pytest.approx(held_out[20], abs=1e-3)
    assert glued["bmm5_params"] == 4 + 5 * 784
    assert glued["bmm5_gain"] == pytest.approx(held_out[5] - glued["ind_test"], abs=1e-3)
    assert glued["bmm5_gain"] > 10  # five prototypes: a large held-out gain over independent pixels
    gains = []
    for k0, k1 in [(2, 5), (5, 10), (10, 20)]:
        gain = glued[f"gain_per_component_{k0}_{k1}"]
        assert gain == pytest.approx((held_out[k1] - held_out[k0]) / (k1 - k0), abs=1e-3)
        gains.append(gain)
    # the prose says more components help on held-out data, each one less than the ones before
    assert all(g > 0 for g in gains)
    assert gains[0] > gains[1] > gains[2]
    assert held_out[2] > glued["ind_test"]
