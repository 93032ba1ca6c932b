"""Chapter 1: its exercise checks reject the common mistakes, and its glued numbers are right.

The checks: every hint a checker can emit is triggered by a hand-made wrong answer and named by
a phrase of its own; correct answers written other ways pass. The notebook is executed once
(nbclient, in a temporary working directory); the numbers its prose shows are read back from its
glue outputs and compared with independent computations (closed forms, torch.distributions, an
EM written here as a plain loop), with one wiring check that re-runs the chapter's own call.
"""
import math

import pytest
import torch
from exercise_contract import assert_accepts, assert_hint, assert_rejects, stub
from notebook_utils import ROOT
from torch.distributions import Categorical, MixtureSameFamily, Normal

import vae_course as vc
from vae_course.teaching.exercises.ch01 import HINTS

CHAPTER = ROOT / "book" / "01_generative_modelling.ipynb"
LOG_2PI = math.log(2 * math.pi)
F64 = torch.float64


def check(exercise_id, fn):
    return vc.exercises.check(exercise_id, fn)


# --- exercise: gaussian_log_prob ----------------------------------------------------------------

def gaussian_by_normal(x, mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)


def gaussian_as_in_the_chapter(x, mu, logvar):
    per_coordinate = -0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 * torch.exp(-logvar))
    return per_coordinate.sum(dim=-1)


def gaussian_in_float64(x, mu, logvar):
    """Computes in float64 and returns the input's dtype."""
    out = -0.5 * (LOG_2PI + logvar.double() + (x.double() - mu.double()) ** 2 / logvar.double().exp())
    return out.sum(-1).to(x.dtype)


def gaussian_by_loop(x, mu, logvar):
    """Plain Python over rows and coordinates (with torch ops, so gradients still flow)."""
    mu, logvar = mu.expand_as(x), logvar.expand_as(x)
    rows = []
    for i in range(x.shape[0]):
        total = 0.0
        for j in range(x.shape[1]):
            total = total - 0.5 * (LOG_2PI + logvar[i, j] + (x[i, j] - mu[i, j]) ** 2 / torch.exp(logvar[i, j]))
        rows.append(total)
    return torch.stack(rows)


@pytest.mark.parametrize("fn", [vc.gaussian_log_prob, gaussian_by_normal, gaussian_as_in_the_chapter,
                                gaussian_in_float64, gaussian_by_loop], ids=lambda f: f.__name__)
def test_gaussian_check_passes_correct_answers(fn):
    assert_accepts("gaussian_log_prob", fn)


def _g(per_coordinate, reduce=lambda t: t.sum(-1)):
    """A wrong answer built from its per-coordinate formula f(x, mu, logvar)."""
    return lambda x, mu, lv: reduce(per_coordinate(x, mu, lv).expand(torch.broadcast_shapes(x.shape, mu.shape)))


GAUSSIAN_HINTED = {
    "single_number": (lambda x, mu, lv: gaussian_by_normal(x, mu, lv).mean(), "do not average (or sum) over the"),
    "product_of_densities": (lambda x, mu, lv: torch.log(Normal(mu, torch.exp(0.5 * lv)).log_prob(x).exp().prod(-1)),
                             "instead of multiplying densities"),
    "missing_half": (_g(lambda x, mu, lv: -(LOG_2PI + lv + (x - mu) ** 2 / lv.exp())), "in front of the whole bracket"),
    "half_on_part": (_g(lambda x, mu, lv: -0.5 * (LOG_2PI + lv) - (x - mu) ** 2 / lv.exp()),
                     "multiplies only the constant and logvar"),
    "logvar_as_log_std": (lambda x, mu, lv: Normal(mu, lv.exp()).log_prob(x).sum(-1), "as a log standard deviation"),
    "logvar_as_std": (lambda x, mu, lv: Normal(mu, lv).log_prob(x).sum(-1), "as the standard deviation itself"),
    "logvar_as_var": (lambda x, mu, lv: Normal(mu, lv.sqrt()).log_prob(x).sum(-1), "as the variance itself"),
    "missing_log_2pi": (_g(lambda x, mu, lv: -0.5 * (lv + (x - mu) ** 2 / lv.exp())), "the log(2π) term is missing"),
    "log_2pi_once": (lambda x, mu, lv: _g(lambda x, mu, lv: -0.5 * (lv + (x - mu) ** 2 / lv.exp()))(x, mu, lv)
                     - 0.5 * LOG_2PI, "once per example"),
    "log_pi": (_g(lambda x, mu, lv: -0.5 * (math.log(math.pi) + lv + (x - mu) ** 2 / lv.exp())), "the constant is log(π)"),
    "times_variance": (_g(lambda x, mu, lv: -0.5 * (LOG_2PI + lv + (x - mu) ** 2 * lv.exp())),
                       "multiplied by the variance; divide"),
    "sign_flip": (lambda x, mu, lv: -gaussian_by_normal(x, mu, lv), "negative log-density (a loss)"),
    "mean_over_coordinates": (lambda x, mu, lv: Normal(mu, torch.exp(0.5 * lv)).log_prob(x).mean(-1),
                              "the coordinates were averaged"),
    "missing_logvar": (_g(lambda x, mu, lv: -0.5 * (LOG_2PI + (x - mu) ** 2 / lv.exp())), "log of the normalizing variance"),
    "logvar_sign": (_g(lambda x, mu, lv: -0.5 * (LOG_2PI - lv + (x - mu) ** 2 / lv.exp())), "enters with +1/2"),
    "first_coordinate": (lambda x, mu, lv: Normal(mu, torch.exp(0.5 * lv)).log_prob(x).expand(
        torch.broadcast_shapes(x.shape, mu.shape))[:, 0], "only the first coordinate"),
}


@pytest.mark.parametrize("key", GAUSSIAN_HINTED)
def test_gaussian_check_gives_the_hint_of_each_mistake(key):
    fn, phrase = GAUSSIAN_HINTED[key]
    assert_hint("gaussian_log_prob", HINTS["gaussian_log_prob"], key, fn, phrase)


def test_every_gaussian_hint_has_a_mistake_that_triggers_it():
    assert set(GAUSSIAN_HINTED) == set(HINTS["gaussian_log_prob"])


GAUSSIAN_OTHER = {  # failures the shared machinery reports (no hint of this exercise)
    "detached": (lambda x, mu, lv: gaussian_by_normal(x, mu, lv).detach(), "carries no gradient"),
    "float32 output": (lambda x, mu, lv: gaussian_by_normal(x, mu, lv).float(), "should have dtype torch.float64"),
    "per-coordinate values": (lambda x, mu, lv: Normal(mu, torch.exp(0.5 * lv)).log_prob(x),
                              "should have shape (5,), got (5, 3)"),
    "unrecognised constant": (lambda x, mu, lv: gaussian_by_normal(x, mu, lv) + 1.0, "wrong value of the result"),
    "stub": (stub, "not implemented yet"),
    "crash": (lambda x, mu, lv: x @ mu, "raised RuntimeError"),
    # right on small inputs, wrong at the chapter's size (784 pixels): the large case is checked
    "wrong only at 784 pixels": (lambda x, mu, lv: gaussian_by_normal(x, mu, lv) * (1.01 if x.shape[-1] > 100 else 1),
                                 "for x of 8 images of 784 pixels"),
}


@pytest.mark.parametrize("name", GAUSSIAN_OTHER)
def test_gaussian_check_rejects_other_wrong_answers(name):
    fn, words = GAUSSIAN_OTHER[name]
    message = assert_rejects("gaussian_log_prob", fn, words)
    assert "Hint" not in message


# --- exercise: mixture_log_prob -----------------------------------------------------------------

def mixture_by_torch(x, weights, mu, logvar):
    return MixtureSameFamily(Categorical(probs=weights), Normal(mu, torch.exp(0.5 * logvar))).log_prob(x)


def mixture_as_in_the_chapter(x, weights, mu, logvar):
    diff = x[:, None] - mu[None, :]
    log_components = -0.5 * (math.log(2 * math.pi) + logvar + diff ** 2 * torch.exp(-logvar))
    return torch.logsumexp(torch.log(weights) + log_components, dim=1)


def mixture_by_loop(x, weights, mu, logvar):
    """Shift by the largest term by hand, one point at a time."""
    out = []
    for xi in x:
        terms = torch.log(weights) - 0.5 * (LOG_2PI + logvar + (xi - mu) ** 2 / logvar.exp())
        top = terms.max()
        out.append(top + torch.log(torch.exp(terms - top).sum()))
    return torch.stack(out)


@pytest.mark.parametrize("fn", [vc.gaussian_mixture_log_prob, mixture_by_torch, mixture_as_in_the_chapter,
                                mixture_by_loop], ids=lambda f: f.__name__)
def test_mixture_check_passes_correct_answers(fn):
    assert_accepts("mixture_log_prob", fn)


def _components(x, mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).log_prob(x[:, None])


def _m(component, combine=lambda comp, w: torch.logsumexp(comp + w.log(), 1)):
    return lambda x, w, mu, lv: combine(component(x[:, None] - mu, lv), w)


MIXTURE_HINTED = {
    "single_number": (lambda x, w, mu, lv: mixture_by_torch(x, w, mu, lv).mean(), "do not average (or sum) over"),
    "underflow": (lambda x, w, mu, lv: torch.log((w * _components(x, mu, lv).exp()).sum(1)), "underflows to 0"),
    "missing_half": (_m(lambda r, lv: -(LOG_2PI + lv + r ** 2 / lv.exp())), "lacks its factor 1/2"),
    "missing_log_2pi": (_m(lambda r, lv: -0.5 * (lv + r ** 2 / lv.exp())), "lacks log(2π)"),
    "times_variance": (_m(lambda r, lv: -0.5 * (LOG_2PI + lv + r ** 2 * lv.exp())),
                       "multiplied by the variance; divide it"),
    "weights_ignored": (lambda x, w, mu, lv: torch.logsumexp(_components(x, mu, lv), 1), "weights are ignored"),
    "uniform_weights": (lambda x, w, mu, lv: torch.logsumexp(_components(x, mu, lv), 1) - math.log(len(w)),
                        "equal weights 1/K"),
    "weights_not_logged": (lambda x, w, mu, lv: torch.logsumexp(_components(x, mu, lv) + w, 1), "as they are"),
    "weighted_log_densities": (lambda x, w, mu, lv: (_components(x, mu, lv) * w).sum(1),
                               "not a weighted sum of log-densities"),
    "max_component": (lambda x, w, mu, lv: (_components(x, mu, lv) + w.log()).max(1).values, "(a max)"),
    "sign_flip": (lambda x, w, mu, lv: -mixture_by_torch(x, w, mu, lv), "negative log-likelihood"),
    "logvar_as_log_std": (lambda x, w, mu, lv: MixtureSameFamily(Categorical(probs=w), Normal(mu, lv.exp())).log_prob(x),
                          "as a log standard deviation"),
}


@pytest.mark.parametrize("key", MIXTURE_HINTED)
def test_mixture_check_gives_the_hint_of_each_mistake(key):
    fn, phrase = MIXTURE_HINTED[key]
    assert_hint("mixture_log_prob", HINTS["mixture_log_prob"], key, fn, phrase)


def test_every_mixture_hint_has_a_mistake_that_triggers_it():
    assert set(MIXTURE_HINTED) == set(HINTS["mixture_log_prob"])


MIXTURE_OTHER = {
    "detached": (lambda x, w, mu, lv: mixture_by_torch(x, w, mu, lv).detach(), "carries no gradient"),
    "float32 output": (lambda x, w, mu, lv: mixture_by_torch(x, w, mu, lv).float(), "should have dtype torch.float64"),
    "per-component values": (lambda x, w, mu, lv: _components(x, mu, lv) + w.log(), "should have shape (10,)"),
    "stub": (stub, "not implemented yet"),
    "wrong only on the chapter's 400 points": (
        lambda x, w, mu, lv: mixture_by_torch(x, w, mu, lv) * (1.01 if len(x) == 400 else 1), "on 400 points"),
}


@pytest.mark.parametrize("name", MIXTURE_OTHER)
def test_mixture_check_rejects_other_wrong_answers(name):
    fn, words = MIXTURE_OTHER[name]
    message = assert_rejects("mixture_log_prob", fn, words)
    assert "Hint" not in message


def test_naive_mixture_is_right_near_the_modes_and_caught_far_away():
    # The naive form is right where nothing underflows: the far-away case is what rejects it.
    x = torch.tensor([-3.0, 0.0, 0.5])
    w, mu, lv = torch.tensor([0.2, 0.5, 0.3]), torch.tensor([-3.0, 0.5, 4.0]), torch.tensor([-0.5, 0.4, 0.0])
    naive = MIXTURE_HINTED["underflow"][0]
    torch.testing.assert_close(naive(x, w, mu, lv), mixture_by_torch(x, w, mu, lv))
    message = assert_rejects("mixture_log_prob", naive, "far from every mode (x = -60")
    assert "contains -inf" in message


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
