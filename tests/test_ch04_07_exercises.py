"""The exercise checks of chapters 4-7 pass correct answers written other ways and name each mistake.

Every hint a checker can give is triggered by a hand-made wrong answer and recognised by a phrase
of its own (`assert_hint`); the stub, detached results and wrong shapes fail without a hint.
"""
import math

import pytest
import torch
from exercise_contract import assert_accepts, assert_hint, assert_rejects, stub
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import vae_course as vc
from vae_course.teaching.exercises import ch04, ch05, ch06, ch07, known_exercises

LOG_2PI = math.log(2 * math.pi)
HINTS = {**ch04.HINTS, **ch05.HINTS, **ch06.HINTS, **ch07.HINTS}


def _other_tests(exercise_id, others):
    for name, (fn, words) in others.items():
        message = assert_rejects(exercise_id, fn, words)
        assert "Hint" not in message, (name, message)


def test_the_exercises_are_registered_to_their_chapters_with_the_package_references():
    known = known_exercises()
    expected = {
        "kl_normal_normal": ("04_variational_inference", vc.kl_normal_normal),
        "best_diagonal_gaussian": ("04_variational_inference", vc.best_diagonal_gaussian),
        "kl_normal_std_normal": ("05_elbo", vc.kl_normal_std_normal),
        "elbo_estimate": ("05_elbo", vc.elbo_estimate),
        "kl_gaussian_full": ("05_elbo", vc.kl_gaussian_full),
        "inference_gaps": ("06_amortization", vc.inference_gaps),
        "linear_encoder": ("06_amortization", vc.linear_encoder),
        "reparameterize": ("07_reparameterization", vc.reparameterize),
        "reinforce_gradient": ("07_reparameterization", vc.score_function_estimate),
    }
    for eid, (chapter, ref) in expected.items():
        assert known[eid].chapter == chapter and known[eid].reference is ref


# --- chapter 4: kl_normal_normal ---------------------------------------------------------------------

def kl_by_torch(mq, lq, mp, lp):
    return kl_divergence(Normal(mq, torch.exp(0.5 * lq)), Normal(mp, torch.exp(0.5 * lp))).sum(-1)


def kl_by_formula_in_float64(mq, lq, mp, lp):
    dtype = mq.dtype
    mq, lq, mp, lp = (t.double() for t in (mq, lq, mp, lp))
    out = 0.5 * (lp - lq + (torch.exp(lq) + (mq - mp) ** 2) / torch.exp(lp) - 1).sum(-1)
    return out.to(dtype)


def kl_by_loop(mq, lq, mp, lp):
    shape = torch.broadcast_shapes(mq.shape, mp.shape)
    mq, lq, mp, lp = (t.expand(shape) for t in (mq, lq, mp, lp))
    rows = []
    for i in range(shape[0]):
        total = 0.0
        for j in range(shape[1]):
            vq, vp = torch.exp(lq[i, j]), torch.exp(lp[i, j])
            total = total + 0.5 * (torch.log(vp / vq) + (vq + (mq[i, j] - mp[i, j]) ** 2) / vp - 1)
        rows.append(total)
    return torch.stack(rows)


@pytest.mark.parametrize("fn", [vc.kl_normal_normal, kl_by_torch, kl_by_formula_in_float64, kl_by_loop],
                         ids=lambda f: f.__name__)
def test_kl_normal_normal_passes_correct_answers(fn):
    assert_accepts("kl_normal_normal", fn)


def _kl(per_dim, reduce=lambda t: t.sum(-1)):
    return lambda mq, lq, mp, lp: reduce(per_dim(mq, lq, mp, lp, (mq - mp) ** 2))


KL_HINTED = {
    "single_number": (lambda *a: kl_by_torch(*a).sum(), "not a total or"),
    "wrong_direction": (lambda mq, lq, mp, lp: kl_by_torch(mp, lp, mq, lq), "this is KL(p || q), the other"),
    "missing_half": (lambda *a: 2 * kl_by_torch(*a), "the whole bracket needs"),
    "logvar_as_std": (lambda mq, lq, mp, lp: kl_divergence(Normal(mq, lq.abs()), Normal(mp, lp.abs())).sum(-1),
                      "logvar was used as a standard deviation"),
    "var_as_std": (lambda mq, lq, mp, lp: kl_divergence(Normal(mq, lq.exp()), Normal(mp, lp.exp())).sum(-1),
                   "exp(logvar) was used as a standard deviation"),
    "sign_flip": (lambda *a: -kl_by_torch(*a), "never negative."),
    "mean_over_dims": (lambda mq, lq, mp, lp: kl_divergence(Normal(mq, torch.exp(0.5 * lq)),
                                                            Normal(mp, torch.exp(0.5 * lp))).mean(-1),
                       "the coordinates were averaged"),
    "missing_minus_one": (_kl(lambda mq, lq, mp, lp, d2: 0.5 * (lp - lq + (lq.exp() + d2) / lp.exp())),
                          "KL(q || q) would not be 0"),
    "log_ratio_sign": (_kl(lambda mq, lq, mp, lp, d2: 0.5 * (lq - lp + (lq.exp() + d2) / lp.exp() - 1)),
                       "the log-variance term has the wrong sign"),
    "means_ignored": (_kl(lambda mq, lq, mp, lp, d2: 0.5 * (lp - lq + lq.exp() / lp.exp() - 1)),
                      "the means were left out"),
}



def test_kl_normal_normal_rejects_other_wrong_answers():
    _other_tests("kl_normal_normal", {
        "stub": (stub, "not implemented yet"),
        "detached": (lambda *a: kl_by_torch(*a).detach(), "carries no gradient"),
        "per coordinate": (lambda mq, lq, mp, lp: kl_divergence(Normal(mq, torch.exp(0.5 * lq)),
                                                                Normal(mp, torch.exp(0.5 * lp))),
                           "should have shape (5,), got (5, 3)"),
        "off by a constant": (lambda *a: kl_by_torch(*a) + 0.1, "wrong value of KL(q || p)"),
    })


# --- chapter 4: best_diagonal_gaussian ------------------------------------------------------------------

def best_by_precision(mean, cov):
    logvar = -torch.log(torch.diagonal(torch.linalg.inv(cov)))
    return mean.clone(), logvar.expand_as(mean).clone()


def best_by_cholesky_in_float64(mean, cov):
    L = torch.linalg.cholesky(cov.double())
    precision = torch.cholesky_inverse(L)
    return mean, (-torch.log(torch.diagonal(precision))).to(mean.dtype).repeat(mean.shape[0], 1)


@pytest.mark.parametrize("fn", [vc.best_diagonal_gaussian, best_by_precision, best_by_cholesky_in_float64],
                         ids=lambda f: f.__name__)
def test_best_diagonal_gaussian_passes_correct_answers(fn):
    assert_accepts("best_diagonal_gaussian", fn)


def _with_logvar(var_fn):
    return lambda mean, cov: (mean, var_fn(cov).expand_as(mean))


BEST_HINTED = {
    "forward_kl": (_with_logvar(lambda cov: torch.log(torch.diagonal(cov))), "the moment-matching answer"),
    "variance_not_logged": (_with_logvar(lambda cov: 1 / torch.diagonal(torch.linalg.inv(cov))),
                            "not the variances themselves"),
    "log_std": (_with_logvar(lambda cov: -0.5 * torch.log(torch.diagonal(torch.linalg.inv(cov)))),
                "log of the standard deviation"),
    "precision_not_inverted": (_with_logvar(lambda cov: torch.log(torch.diagonal(torch.linalg.inv(cov)))),
                               "the log of the precisions"),
    "mean_moved": (lambda mean, cov: (torch.zeros_like(mean), best_by_precision(mean, cov)[1]),
                   "keeps the target's mean"),
}



def test_best_diagonal_gaussian_rejects_other_wrong_answers():
    _other_tests("best_diagonal_gaussian", {
        "stub": (stub, "not implemented yet"),
        "one logvar for all rows": (lambda mean, cov: (mean, -torch.log(torch.diagonal(torch.linalg.inv(cov)))),
                                    "logvar should have shape (5, 3), got (3,)"),
        "a single tensor": (lambda mean, cov: mean, "return a tuple (mu, logvar) of 2 torch.Tensor objects"),
    })


# --- chapter 5: kl_normal_std_normal ---------------------------------------------------------------------

def kl_std_by_torch(mu, logvar):
    return kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)


def kl_std_by_formula(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)  # the form in Kingma and Welling


def kl_std_by_loop(mu, logvar):
    return torch.stack([sum(0.5 * (m ** 2 + torch.exp(v) - 1 - v) for m, v in zip(mr, vr)) for mr, vr in zip(mu, logvar)])


@pytest.mark.parametrize("fn", [vc.kl_normal_std_normal, kl_std_by_torch, kl_std_by_formula, kl_std_by_loop],
                         ids=lambda f: f.__name__)
def test_kl_normal_std_normal_passes_correct_answers(fn):
    assert_accepts("kl_normal_std_normal", fn)


KL_STD_HINTED = {
    "single_number": (lambda mu, lv: kl_std_by_torch(mu, lv).mean(), "not a total or an average"),
    "missing_half": (lambda mu, lv: (mu ** 2 + lv.exp() - 1 - lv).sum(-1), "the bracket needs its factor 1/2"),
    "logvar_as_std": (lambda mu, lv: kl_divergence(Normal(mu, lv.abs()), Normal(0.0, 1.0)).sum(-1),
                      "logvar was used as a standard deviation"),
    "var_as_std": (lambda mu, lv: kl_divergence(Normal(mu, lv.exp()), Normal(0.0, 1.0)).sum(-1),
                   "it is already the variance"),
    "sign_flip": (lambda mu, lv: -kl_std_by_torch(mu, lv), "never negative."),
    "mean_over_dims": (lambda mu, lv: kl_divergence(Normal(mu, torch.exp(0.5 * lv)), Normal(0.0, 1.0)).mean(-1),
                       "the latent coordinates were averaged"),
    "wrong_direction": (lambda mu, lv: kl_divergence(Normal(torch.zeros_like(mu), 1.0),
                                                     Normal(mu, torch.exp(0.5 * lv))).sum(-1),
                        "this is KL(N(0, I) || q)"),
    "missing_minus_one": (lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - lv).sum(-1), "the -1 is missing"),
    "missing_mu_squared": (lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(-1), "the mu^2 term is missing"),
    "logvar_sign": (lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - 1 + lv).sum(-1), "logvar enters with a minus sign"),
}



def test_kl_normal_std_normal_rejects_other_wrong_answers():
    _other_tests("kl_normal_std_normal", {
        "stub": (stub, "not implemented yet"),
        "detached": (lambda mu, lv: kl_std_by_torch(mu, lv).detach(), "carries no gradient"),
        "float32 in a float64 case": (lambda mu, lv: kl_std_by_torch(mu, lv).float(), "should have dtype torch.float64"),
    })


# --- chapter 5: elbo_estimate ----------------------------------------------------------------------------

def elbo_by_torch(x, decode, mu, logvar, eps):
    z = mu + torch.exp(0.5 * logvar) * eps
    mean, x_logvar = decode(z)
    recon = Normal(mean, torch.exp(0.5 * x_logvar)).log_prob(x).sum(-1)
    return recon - kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)


def elbo_with_the_package(x, decode, mu, logvar, eps):
    z = mu + (0.5 * logvar).exp() * eps
    return vc.gaussian_log_prob(x, *decode(z)) - vc.kl_normal_std_normal(mu, logvar)


def elbo_written_out(x, decode, mu, logvar, eps):
    """Every term by hand: std as sqrt(exp(logvar)), the Gaussian log-density and the KL as formulas."""
    z = mu + torch.sqrt(torch.exp(logvar)) * eps
    mean, x_logvar = decode(z)
    recon = -0.5 * (LOG_2PI + x_logvar + (x - mean) ** 2 / torch.exp(x_logvar)).sum(-1)
    return recon - 0.5 * (mu ** 2 + torch.exp(logvar) - 1 - logvar).sum(-1)


@pytest.mark.parametrize("fn", [vc.elbo_estimate, elbo_by_torch, elbo_with_the_package, elbo_written_out],
                         ids=lambda f: f.__name__)
def test_elbo_estimate_passes_correct_answers(fn):
    assert_accepts("elbo_estimate", fn)


def _parts(x, decode, mu, logvar, eps, z=None, x_var_one=False):
    z = mu + torch.exp(0.5 * logvar) * eps if z is None else z
    mean, x_logvar = decode(z)
    std = torch.ones_like(mean) if x_var_one else torch.exp(0.5 * x_logvar)
    recon = Normal(mean, std).log_prob(x)
    return recon, kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)


def _e(combine, **kw):
    return lambda x, decode, mu, lv, eps: combine(*_parts(x, decode, mu, lv, eps, **kw))


def _z(make_z):
    return lambda x, decode, mu, lv, eps: (lambda r, k: r.sum(-1) - k)(
        *_parts(x, decode, mu, lv, eps, z=make_z(mu, lv, eps)))


ELBO_HINTED = {
    "single_number": (_e(lambda r, k: (r.sum(-1) - k).mean()), "do not average over the batch"),
    "negative_elbo": (_e(lambda r, k: k - r.sum(-1)), "minus the ELBO (the loss)"),
    "kl_added": (_e(lambda r, k: r.sum(-1) + k), "the KL term was added"),
    "kl_missing": (_e(lambda r, k: r.sum(-1)), "term is missing: the ELBO is the reconstruction term minus it"),
    "kl_missing_half": (_e(lambda r, k: r.sum(-1) - 2 * k), "the KL term lacks its factor 1/2"),
    "eps_ignored": (_z(lambda mu, lv, eps: mu), "the decoder got mu, not a sample"),
    "logvar_as_std": (_z(lambda mu, lv, eps: mu + lv * eps), "z used logvar as the standard deviation"),
    "var_as_std": (_z(lambda mu, lv, eps: mu + lv.exp() * eps), "z used exp(logvar), the variance"),
    "recon_mean_over_dims": (_e(lambda r, k: r.mean(-1) - k), "averaged over the data dimensions"),
    "recon_missing_log_2pi": (lambda x, decode, mu, lv, eps: elbo_by_torch(x, decode, mu, lv, eps)
                              + 0.5 * LOG_2PI * x.shape[1], "lacks the -1/2 log(2π)"),
    "decoder_variance_ignored": (_e(lambda r, k: r.sum(-1) - k, x_var_one=True), "x_logvar was ignored"),
    "detached_sample": (_z(lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach()),
                        "no gradient flows through the sample z"),
}



def test_elbo_estimate_rejects_other_wrong_answers():
    _other_tests("elbo_estimate", {
        "stub": (stub, "not implemented yet"),
        "all detached": (lambda *a: elbo_by_torch(*a).detach(), "carries no gradient"),
        "gradient through a wrong path": (
            lambda x, decode, mu, lv, eps: elbo_by_torch(x, decode, mu, lv, eps)
            + 0.01 * (mu - mu.detach()).sum(-1), "the gradient with respect to mu or logvar is wrong"),
        "per dimension": (_e(lambda r, k: r - k[:, None]), "should have shape (5,), got (5, 6)"),
    })


# --- chapter 5: kl_gaussian_full -----------------------------------------------------------------------

def kl_full_by_torch(mq, cq, mp, cp):
    return kl_divergence(MultivariateNormal(mq, cq), MultivariateNormal(mp, cp))


def kl_full_by_inverse(mq, cq, mp, cp):
    inv = torch.linalg.inv(cp)
    diff = mp - mq
    quad = torch.einsum("ni,ij,nj->n", diff, inv, diff)
    return 0.5 * (torch.trace(inv @ cq) + quad - mq.shape[-1] + torch.logdet(cp) - torch.logdet(cq))


@pytest.mark.parametrize("fn", [vc.kl_gaussian_full, kl_full_by_torch, kl_full_by_inverse], ids=lambda f: f.__name__)
def test_kl_gaussian_full_passes_correct_answers(fn):
    assert_accepts("kl_gaussian_full", fn)


def _full(trace_fn=None, quad_fn=None, logdet_sign=1.0, minus_k=True, half=0.5):
    def answer(mq, cq, mp, cp):
        inv = torch.linalg.inv(cp)
        diff = mp - mq
        trace = torch.trace(inv @ cq) if trace_fn is None else trace_fn(cq, cp)
        quad = ((diff @ inv) * diff).sum(-1) if quad_fn is None else quad_fn(diff, cp)
        logdet = logdet_sign * (torch.logdet(cp) - torch.logdet(cq))
        return half * (trace + quad - (mq.shape[-1] if minus_k else 0) + logdet)
    return answer


FULL_HINTED = {
    "single_number": (lambda *a: kl_full_by_torch(*a).mean(), "not a total or an average."),
    "wrong_direction": (lambda mq, cq, mp, cp: kl_full_by_torch(mp, cp, mq, cq), "the ELBO's gap is KL(q || p)"),
    "missing_half": (_full(half=1.0), "the bracket needs the factor 1/2."),
    "missing_k": (_full(minus_k=False), "the -k inside"),
    "logdet_sign": (_full(logdet_sign=-1.0), "log-determinant term has the wrong sign"),
    "quad_without_inverse": (_full(quad_fn=lambda diff, cp: ((diff @ cp) * diff).sum(-1)),
                             "squared distance of the means"),
    "trace_without_inverse": (_full(trace_fn=lambda cq, cp: torch.trace(cp @ cq)), "the trace term is"),
    "sign_flip": (lambda *a: -kl_full_by_torch(*a), "is never negative."),
}



def test_kl_gaussian_full_rejects_other_wrong_answers():
    _other_tests("kl_gaussian_full", {
        "stub": (stub, "not implemented yet"),
        "detached": (lambda *a: kl_full_by_torch(*a).detach(), "carries no gradient"),
    })


# --- chapter 6: inference_gaps -----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [vc.inference_gaps, lambda lp, b, e: [lp - b, -(e - b)],
                                lambda lp, b, e: ((lp.double() - b.double()).to(lp.dtype), b - e)],
                         ids=["package", "list", "float64"])
def test_inference_gaps_passes_correct_answers(fn):
    assert_accepts("inference_gaps", fn)


GAPS_HINTED = {
    "single_number": (lambda lp, b, e: ((lp - b).mean(), (b - e).mean()), "average them afterwards"),
    "swapped": (lambda lp, b, e: (b - e, lp - b), "the two gaps are swapped"),
    "sign_flip": (lambda lp, b, e: (b - lp, e - b), "both gaps are >= 0"),
    "total_as_amortization": (lambda lp, b, e: (lp - b, lp - e), "subtract the best q's ELBO, not log p(x)"),
    "total_as_approximation": (lambda lp, b, e: (lp - e, b - e), "uses the best q's ELBO, not the encoder's"),
}



def test_inference_gaps_rejects_other_wrong_answers():
    _other_tests("inference_gaps", {
        "stub": (stub, "not implemented yet"),
        "one tensor": (lambda lp, b, e: lp - e, "return a tuple (approximation, amortization)"),
        "float64 for float32": (lambda lp, b, e: ((lp - b).double(), (b - e).double()),
                                "should have dtype torch.float32"),
    })


# --- chapter 6: linear_encoder ---------------------------------------------------------------------------

def encoder_by_posterior_covariance(W, b, psi):
    """Through the posterior covariance S = (I + W^T Psi^-1 W)^-1: weight = S W^T Psi^-1, logvar from inv(S)."""
    k = W.shape[1]
    S = torch.linalg.inv(torch.eye(k, dtype=W.dtype) + W.T @ torch.diag(1 / psi) @ W)
    weight = S @ W.T @ torch.diag(1 / psi)
    return weight, -weight @ b, -torch.log(torch.diagonal(torch.linalg.inv(S)))


def encoder_by_gain(W, b, psi):
    C = W @ W.T + torch.diag(psi)
    weight = W.T @ torch.linalg.inv(C)
    precision = torch.eye(W.shape[1], dtype=W.dtype) + (W.T / psi) @ W
    return weight, -(weight @ b), -torch.log(torch.diagonal(precision))


@pytest.mark.parametrize("fn", [vc.linear_encoder, encoder_by_posterior_covariance, encoder_by_gain],
                         ids=lambda f: f.__name__)
def test_linear_encoder_passes_correct_answers(fn):
    assert_accepts("linear_encoder", fn)


def _enc(weight=None, bias=None, logvar=None):
    def answer(W, b, psi):
        w, bb, lv = encoder_by_gain(W, b, psi)
        w = w if weight is None else weight(W, b, psi)
        return w, (bb if bias is None else bias(w, b)), (lv if logvar is None else logvar(W, psi))
    return answer


def _precision(W, psi):
    return torch.eye(W.shape[1], dtype=W.dtype) + (W.T / psi) @ W


ENC_HINTED = {
    "forward_kl_logvar": (_enc(logvar=lambda W, psi: torch.log(torch.diagonal(torch.linalg.inv(_precision(W, psi))))),
                          "the forward-KL answer"),
    "precision_not_inverted": (_enc(logvar=lambda W, psi: torch.log(torch.diagonal(_precision(W, psi)))),
                               "the log of the posterior precisions"),
    "gain_without_inverse": (_enc(weight=lambda W, b, psi: W.T / psi), "lacks the inverse of the posterior precision"),
    "pca_projection": (_enc(weight=lambda W, b, psi: torch.linalg.pinv(W)), "the pseudo-inverse of W"),
    "bias_missing": (_enc(bias=lambda w, b: torch.zeros(w.shape[0], dtype=w.dtype)), "the bias is missing"),
    "bias_sign": (_enc(bias=lambda w, b: w @ b), "the bias has the wrong sign"),
}



def test_linear_encoder_rejects_other_wrong_answers():
    _other_tests("linear_encoder", {
        "stub": (stub, "not implemented yet"),
        "transposed weight": (_enc(weight=lambda W, b, psi: encoder_by_gain(W, b, psi)[0].T),
                              "weight should have shape (5, 8), got (8, 5)"),
        "pair only": (lambda W, b, psi: encoder_by_gain(W, b, psi)[:2], "return a tuple (weight, bias, logvar)"),
    })


def test_linear_encoder_reproduces_the_model_s_best_q_on_data():
    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    psi = 0.3 + torch.rand(6, generator=g, dtype=torch.float64)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    weight, bias, logvar = vc.linear_encoder(W, b, psi)
    C = W @ W.T + torch.diag(psi)
    mean = (x - b) @ torch.linalg.solve(C, W)  # posterior mean W^T C^{-1} (x - b), row by row
    cov = torch.eye(2, dtype=torch.float64) - W.T @ torch.linalg.solve(C, W)
    torch.testing.assert_close(x @ weight.T + bias, mean)
    mu, best_logvar = vc.best_diagonal_gaussian(mean, cov)
    torch.testing.assert_close(logvar.expand(4, 2), best_logvar)


# --- chapter 7: reparameterize -------------------------------------------------------------------------------

def rep_with_randn(mu, logvar, generator=None):
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def rep_with_float32_noise(mu, logvar, generator=None):
    eps = torch.randn(mu.shape, generator=generator).to(mu.dtype)
    return mu + logvar.mul(0.5).exp() * eps


def rep_with_normal_(mu, logvar, generator=None):
    eps = torch.empty_like(mu).normal_(generator=generator)
    return mu - torch.sqrt(torch.exp(logvar)) * eps  # -eps is standard normal too


@pytest.mark.parametrize("fn", [vc.reparameterize, rep_with_randn, rep_with_float32_noise, rep_with_normal_],
                         ids=lambda f: f.__name__)
def test_reparameterize_passes_correct_answers(fn):
    assert_accepts("reparameterize", fn)


def _rep(make):
    def answer(mu, logvar, generator=None):
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        return make(mu, logvar, eps)
    return answer


REP_HINTED = {
    "ignores_generator": (lambda mu, lv, generator=None: Normal(mu, torch.exp(0.5 * lv)).rsample(),
                          "two calls with generators seeded alike gave different samples"),
    "logvar_as_std": (_rep(lambda mu, lv, eps: mu + lv * eps), "logvar was used as the standard deviation"),
    "var_as_std": (_rep(lambda mu, lv, eps: mu + lv.exp() * eps), "exp(logvar), the variance, was used"),
    "mu_missing": (_rep(lambda mu, lv, eps: torch.exp(0.5 * lv) * eps), "the mean is missing"),
    "std_missing": (_rep(lambda mu, lv, eps: mu + eps), "eps was not scaled"),
    "detached": (_rep(lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach()), "the sample carries no gradient"),
    "zero_gradient": (lambda mu, lv, generator=None: torch.normal(mu, torch.exp(0.5 * lv), generator=generator),
                      "torch.normal and .sample() do not reparameterize"),
}


def test_torch_normal_draws_the_same_numbers_but_no_gradient():
    # why "zero_gradient" needs its own hint: the values are right, the gradient is zero
    mu = torch.zeros(3, requires_grad=True)
    z = torch.normal(mu, torch.ones(3), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.detach(), torch.randn(3, generator=torch.Generator().manual_seed(0)))
    z.sum().backward()
    assert mu.grad is None or mu.grad.abs().max() == 0



def test_reparameterize_rejects_other_wrong_answers():
    _other_tests("reparameterize", {
        "stub": (stub, "not implemented yet"),
        "std from a detached logvar": (_rep(lambda mu, lv, eps: mu + torch.exp(0.5 * lv.detach()) * eps),
                                       "d z / d logvar should be"),
        "no default generator": (lambda mu, lv, generator: rep_with_randn(mu, lv, generator), "raised TypeError"),
        "one sample for all rows": (_rep(lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * eps[0]),
                                    "wrong value of the sample"),
    })


def test_reparameterize_check_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    assert_accepts("reparameterize", rep_with_randn)
    assert torch.equal(torch.random.get_rng_state(), before)


# --- chapter 7: reinforce_gradient ------------------------------------------------------------------------

def reinforce_by_autograd(f_values, z, mu, logvar):
    mu = mu.detach().clone().requires_grad_()
    logvar = logvar.detach().clone().requires_grad_()
    log_q = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    return torch.autograd.grad((f_values * log_q).mean(0).sum(), (mu, logvar))


def reinforce_by_loop(f_values, z, mu, logvar):
    var = torch.exp(logvar)
    g_mu, g_lv = torch.zeros_like(mu), torch.zeros_like(mu)
    for s in range(z.shape[0]):
        g_mu = g_mu + f_values[s, :, None] * (z[s] - mu) / var
        g_lv = g_lv + f_values[s, :, None] * 0.5 * ((z[s] - mu) ** 2 / var - 1)
    return g_mu / z.shape[0], g_lv / z.shape[0]


@pytest.mark.parametrize("fn", [vc.score_function_estimate, reinforce_by_autograd, reinforce_by_loop],
                         ids=lambda f: f.__name__)
def test_reinforce_gradient_passes_correct_answers(fn):
    assert_accepts("reinforce_gradient", fn)


def _sf(score_mu, score_lv, reduce=lambda t: t.mean(0), weight=True):
    def answer(f_values, z, mu, logvar):
        var = torch.exp(logvar)
        w = f_values[..., None] if weight else 1.0
        return reduce(w * score_mu(z, mu, var)), reduce(w * score_lv(z, mu, var))
    return answer


def _mu_score(z, mu, var):
    return (z - mu) / var


def _lv_score(z, mu, var):
    return 0.5 * ((z - mu) ** 2 / var - 1)


REINFORCE_HINTED = {
    "single_draw_mean": (_sf(_mu_score, _lv_score, reduce=lambda t: t.mean((0, 1))), "average over the S draws"),
    "score_sign": (_sf(lambda z, mu, var: (mu - z) / var, _lv_score), "the score has the wrong sign"),
    "score_over_std": (_sf(lambda z, mu, var: (z - mu) / var.sqrt(), _lv_score), "divides by the standard deviation"),
    "score_without_var": (_sf(lambda z, mu, var: z - mu, _lv_score), "lacks the division by the variance"),
    "logvar_missing_half": (_sf(_mu_score, lambda z, mu, var: (z - mu) ** 2 / var - 1), "lacks its factor 1/2"),
    "logvar_missing_minus_one": (_sf(_mu_score, lambda z, mu, var: 0.5 * (z - mu) ** 2 / var), "lacks the -1"),
    "grad_wrt_std": (_sf(_mu_score, lambda z, mu, var: (z - mu) ** 2 / var ** 1.5 - 1 / var.sqrt()),
                     "with respect to the standard deviation"),
    "sum_over_draws": (_sf(_mu_score, _lv_score, reduce=lambda t: t.sum(0)), "the draws were summed"),
    "f_ignored": (_sf(_mu_score, _lv_score, weight=False), "f(z) is missing"),
}



def test_reinforce_gradient_rejects_other_wrong_answers():
    _other_tests("reinforce_gradient", {
        "stub": (stub, "not implemented yet"),
        "one tensor": (lambda f, z, mu, lv: reinforce_by_loop(f, z, mu, lv)[0], "return a tuple (grad_mu, grad_logvar)"),
        "baseline subtracted wrongly": (lambda f, z, mu, lv: reinforce_by_loop(f + 1.0, z, mu, lv),
                                        "wrong value of grad_mu"),
    })


# --- every hint of every exercise, triggered by its own wrong answer --------------------------------------

HINTED = {
    "kl_normal_normal": KL_HINTED, "best_diagonal_gaussian": BEST_HINTED, "kl_normal_std_normal": KL_STD_HINTED,
    "elbo_estimate": ELBO_HINTED, "kl_gaussian_full": FULL_HINTED, "inference_gaps": GAPS_HINTED,
    "linear_encoder": ENC_HINTED, "reparameterize": REP_HINTED, "reinforce_gradient": REINFORCE_HINTED,
}


@pytest.mark.parametrize("exercise_id", sorted(HINTED))
def test_every_hint_has_a_wrong_answer_that_triggers_it(exercise_id):
    assert set(HINTED[exercise_id]) == set(HINTS[exercise_id])


@pytest.mark.parametrize("exercise_id,key", [(e, k) for e in sorted(HINTED) for k in HINTED[e]])
def test_each_mistake_gets_its_own_hint(exercise_id, key):
    fn, phrase = HINTED[exercise_id][key]
    assert_hint(exercise_id, HINTS[exercise_id], key, fn, phrase)
