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
from torch.distributions import Bernoulli, Categorical, MixtureSameFamily, Normal

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
#
# The data are drawn with the package's sampler and the chapter's seeds (they are the input, not
# what is tested). Every number computed from them is recomputed here independently: closed
# forms, torch.distributions, and EM written as a plain loop from the package's initial
# parameters (steps=0, the only random part of a fit). One wiring check re-runs the chapter's
# own call: test_wiring_em_history_is_the_fit_of_the_chapter.

TRUE_WEIGHTS, TRUE_MU, TRUE_SD = torch.tensor([0.35, 0.65]), torch.tensor([-2.0, 1.5]), torch.tensor([0.6, 0.9])


def true_mixture():
    return MixtureSameFamily(Categorical(probs=TRUE_WEIGHTS.double()), Normal(TRUE_MU.double(), TRUE_SD.double()))


def _sample(model, n, seed):
    out = model.sample(n, generator=vc.make_generator(seed))
    return out[0] if isinstance(out, tuple) else out


@pytest.fixture(scope="module")
def data_1d():
    true = vc.GaussianMixture(TRUE_WEIGHTS, TRUE_MU, 2 * torch.log(TRUE_SD))
    return _sample(true, 400, 1).double(), _sample(true, 2000, 2).double()


def gaussian_em_by_loop(x, weights, mu, var, steps):
    """EM for a 1-D Gaussian mixture, one component at a time; returns the fit and the log-likelihoods."""
    history = []
    for step in range(steps + 1):
        comps = [Normal(mu[j], var[j].sqrt()).log_prob(x) + torch.log(weights[j]) for j in range(len(weights))]
        log_joint = torch.stack(comps, 1)
        log_px = torch.logsumexp(log_joint, 1)
        history.append(log_px.mean().item())
        if step == steps:
            break
        resp = torch.exp(log_joint - log_px[:, None])
        new_w, new_mu, new_var = [], [], []
        for j in range(len(weights)):
            r = resp[:, j]
            new_w.append(r.mean())
            new_mu.append((r * x).sum() / r.sum())
            new_var.append((r * (x - new_mu[-1]) ** 2).sum() / r.sum())
        weights, mu, var = torch.stack(new_w), torch.stack(new_mu), torch.stack(new_var)
    return (weights, mu, var), history


@pytest.fixture(scope="module")
def em_1d(glued, data_1d):
    x, _ = data_1d
    init = vc.fit_gaussian_mixture(x.float(), 2, steps=0, generator=vc.make_generator(0))
    return gaussian_em_by_loop(x, init.weights.double(), init.mu.double(), init.logvar.double().exp(),
                               glued["em_steps"])


def test_gaussian_fit_numbers(glued, data_1d):
    x, _ = data_1d
    assert glued["n_train_1d"] == 400 and glued["n_test_1d"] == 2000
    assert glued["g_mu_closed"] == pytest.approx(x.mean().item(), rel=1e-5)
    assert glued["g_var_closed"] == pytest.approx(((x - x.mean()) ** 2).mean().item(), rel=1e-5)
    # gradient descent (150 steps, as the prose says) reaches the closed form
    assert glued["g_gd_steps"] == 150
    assert glued["g_mu_gd"] == pytest.approx(glued["g_mu_closed"], abs=1e-4)
    assert glued["g_var_gd"] == pytest.approx(glued["g_var_closed"], rel=1e-4)
    assert glued["g_max_param_diff"] < 1e-4
    nll = 0.5 * (LOG_2PI + math.log(glued["g_var_closed"]) + 1.0)  # closed-form NLL at the MLE
    assert glued["g_loss_closed"] == pytest.approx(nll, rel=1e-5)
    assert glued["g_loss_gd"] == pytest.approx(nll, rel=1e-5)


def test_far_point_number(glued):
    assert glued["far_x"] == 40
    assert glued["far_stable"] == pytest.approx(true_mixture().log_prob(torch.tensor(40.0, dtype=F64)).item(),
                                                rel=1e-6)
    # and by hand: the right-hand component is all that is left, log(0.65 N(40; 1.5, 0.9^2)); float32
    by_hand = math.log(0.65) - 0.5 * (LOG_2PI + math.log(0.81) + (40 - 1.5) ** 2 / 0.81)
    assert glued["far_stable"] == pytest.approx(by_hand, rel=1e-6) and glued["far_stable"] < -100


def test_wiring_em_history_is_the_fit_of_the_chapter(glued, data_1d):
    """The one wiring check of this chapter: the glued EM start is the chapter's own call."""
    x, _ = data_1d
    mix = vc.fit_gaussian_mixture(x.float(), 2, steps=60, generator=vc.make_generator(0))
    assert glued["em_first"] == pytest.approx(mix.history[0], abs=1e-9)


def test_mixture_numbers(glued, data_1d, em_1d):
    x, xt = data_1d
    (w, mu, var), history = em_1d
    assert glued["em_steps"] == 60
    assert glued["em_first"] == pytest.approx(history[0], abs=1e-6)
    assert glued["em_last"] == pytest.approx(history[-1], abs=1e-6)
    fitted = MixtureSameFamily(Categorical(probs=w), Normal(mu, var.sqrt()))
    assert glued["test_mixture"] == pytest.approx(fitted.log_prob(xt).mean().item(), abs=1e-5)
    single = Normal(x.mean(), ((x - x.mean()) ** 2).mean().sqrt()).log_prob(xt).mean().item()
    assert glued["test_single"] == pytest.approx(single, abs=1e-5)
    assert glued["test_true"] == pytest.approx(true_mixture().log_prob(xt).mean().item(), abs=1e-5)
    # the prose: EM never decreased; the mixture beats one Gaussian, the truth beats both
    assert all(b >= a - 1e-12 for a, b in zip(history, history[1:])) and glued["em_last"] > glued["em_first"]
    assert glued["test_mixture"] > glued["test_single"] + 0.1
    assert glued["test_true"] >= glued["test_mixture"]
    assert glued["kl_single"] > glued["kl_mixture"] > 0
    assert glued["test_gain"] == pytest.approx(glued["kl_single"] - glued["kl_mixture"], abs=1e-6)
    assert glued["entropy_true"] == pytest.approx(-glued["test_true"])


def test_explorer_numbers(glued, data_1d):
    x, _ = data_1d
    scores = [MixtureSameFamily(Categorical(probs=torch.tensor([w, 1 - w], dtype=F64)),
                                Normal(torch.tensor([m1, m2], dtype=F64), 0.75)).log_prob(x).mean().item()
              for w, m1, m2 in [(0.5, 0.3, 0.3), (0.5, -1.0, 1.0), (0.35, -2.0, 1.5)]]
    assert glued["explore_best"] == pytest.approx(scores[-1], abs=1e-5)
    assert scores[-1] == max(scores)  # the last setting, the true means and weight, is the best of the three
    assert glued["explore_best"] < glued["em_last"]  # EM (which also fits the variances) does better


@pytest.fixture(scope="module")
def digits():
    x, y = vc.load_mnist("train")
    xt, _ = vc.load_mnist("test")
    return (x > 0.5).double(), (xt > 0.5).double(), y  # fixed-threshold binarization, as the chapter says


def test_full_table_numbers(glued, digits):
    x, xt, y = digits
    assert glued["table_digits"] == len(str(2 ** 784 - 1)) == 237
    assert glued["n_pixels"] == 784 and glued["n_images_train"] == 4000 and glued["n_images_test"] == 1000
    assert glued["frac_on"] == pytest.approx(x.mean().item(), rel=1e-6)
    assert glued["n_per_digit"] == 400 and (y.bincount() == 400).all()  # the prose: balanced, 400 of each
    rows = [tuple(r) for r in x.to(torch.uint8).tolist()]
    counts = {}
    for r in rows:
        counts[r] = counts.get(r, 0) + 1
    assert glued["table_distinct"] == len(counts)
    assert glued["table_test_seen"] == sum(tuple(r) in counts for r in xt.to(torch.uint8).tolist())
    # the maximum-likelihood table puts count / N on each training image
    expected = sum(math.log(counts[r] / len(rows)) for r in rows) / len(rows)
    assert glued["table_train"] == pytest.approx(expected, rel=1e-9)


def _log_joint(x, weights, probs):
    """log w_j + sum_i log Bernoulli(x_i; p_ji) for every image and component: (N, K)."""
    return x @ torch.log(probs).T + (1 - x) @ torch.log1p(-probs).T + torch.log(weights)


def bernoulli_em_by_loop(x, weights, probs, steps, eps=1e-3):
    """EM for a mixture of independent-pixel Bernoullis: responsibilities, then weighted pixel means."""
    for _ in range(steps):
        log_joint = _log_joint(x, weights, probs)
        resp = torch.exp(log_joint - torch.logsumexp(log_joint, 1, keepdim=True))
        weights = resp.mean(0)
        probs = ((resp.T @ x) / resp.sum(0)[:, None]).clamp(eps, 1 - eps)  # the exact maximizer under the clamp
    return weights, probs


def mixture_mean_ll(x, weights, probs):
    return torch.logsumexp(_log_joint(x, weights, probs), 1).mean().item()


def test_the_log_joint_matches_torch_distributions(digits):
    x = digits[0][:50]
    weights, probs = torch.tensor([0.3, 0.7], dtype=F64), torch.rand(2, 784, dtype=F64).clamp(1e-3, 1 - 1e-3)
    by_torch = torch.stack([Bernoulli(probs=p).log_prob(x).sum(1) for p in probs], 1) + torch.log(weights)
    torch.testing.assert_close(_log_joint(x, weights, probs), by_torch)


@pytest.fixture(scope="module")
def bmm_fits(digits):
    """The chapter's four mixtures, refitted by the EM above from the package's initial parameters."""
    x = digits[0]
    fits = {}
    for k in (2, 5, 10, 20):
        init = vc.fit_bernoulli_mixture(x.float(), k, steps=0, generator=vc.make_generator(0))
        fits[k] = bernoulli_em_by_loop(x, init.weights.double(), init.probs.double(), 30)
    return fits


def test_bernoulli_model_numbers(glued, digits, bmm_fits):
    x, xt, _ = digits
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)  # independent pixels: the clamped pixel means
    assert glued["ind_params"] == 784
    assert glued["ind_train"] == pytest.approx(Bernoulli(probs=p).log_prob(x).sum(1).mean().item(), abs=1e-3)
    assert glued["ind_test"] == pytest.approx(Bernoulli(probs=p).log_prob(xt).sum(1).mean().item(), abs=1e-3)
    w, probs = bmm_fits[10]
    assert glued["bmm_k"] == 10 and glued["bmm_steps"] == 30
    assert glued["bmm_params"] == 9 + 7840
    assert glued["bmm_train"] == pytest.approx(mixture_mean_ll(x, w, probs), abs=1e-3)
    assert glued["bmm_test"] == pytest.approx(mixture_mean_ll(xt, w, probs), abs=1e-3)
    assert glued["bmm_bits_per_dim"] == pytest.approx(-glued["bmm_test"] / (784 * math.log(2)), rel=1e-6)
    # the prose: the mixture beats independent pixels on held-out digits; the full table memorises
    assert glued["bmm_test"] > glued["ind_test"] + 10
    assert glued["bmm_gain"] == pytest.approx(glued["bmm_test"] - glued["ind_test"], abs=1e-6)
    assert glued["table_train"] > glued["bmm_train"] > glued["ind_train"]
    assert glued["table_test_seen"] == 0  # so the table's held-out log-likelihood is -inf


def test_parameters_vs_nats_numbers(glued, digits, bmm_fits):
    _, xt, _ = digits
    held_out = {k: mixture_mean_ll(xt, *fit) for k, fit in bmm_fits.items()}
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
