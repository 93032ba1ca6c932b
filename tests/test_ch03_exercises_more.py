"""Chapter 3's added checks: the PPCA closed form, and the log-likelihood at digit size."""
from __future__ import annotations

import torch
from exercise_contract import assert_accepts, assert_rejects, stub
from torch.distributions import MultivariateNormal

import vae_course as vc


def _eig(x):
    mu = x.mean(0)
    S = (x - mu).T @ (x - mu) / x.shape[0]
    ev, V = torch.linalg.eigh(S)
    return mu, ev.flip(0), V.flip(1)


def reference(x, k):
    mu, ev, V = _eig(x)
    s2 = ev[k:].mean()
    return V[:, :k] * (ev[:k] - s2).sqrt(), mu, s2


def rotated(x, k):  # W R for an orthogonal R: also a maximum
    W, mu, s2 = reference(x, k)
    R, _ = torch.linalg.qr(torch.randn(k, k, generator=torch.Generator().manual_seed(0), dtype=x.dtype))
    return W @ R, mu, s2


def from_svd(x, k):  # through the SVD of the centred data, sigma2 as a Python float
    mu = x.mean(0)
    _, s, Vt = torch.linalg.svd(x - mu, full_matrices=False)
    lam = torch.zeros(x.shape[1], dtype=x.dtype)
    lam[: len(s)] = s**2 / x.shape[0]
    s2 = lam[k:].mean()
    return Vt[:k].T * (lam[:k] - s2).sqrt(), mu, float(s2)


def test_closed_form_accepts_correct_answers():
    for fn in (reference, rotated, from_svd):
        assert_accepts("ppca_closed_form", fn)


def test_closed_form_rejects_stub_and_mistakes():
    assert_rejects("ppca_closed_form", stub, "NotImplementedError")

    def sum_not_mean(x, k):
        W, mu, s2 = reference(x, k)
        return W, mu, s2 * (x.shape[1] - k)

    def ascending(x, k):
        mu = x.mean(0)
        ev, V = torch.linalg.eigh((x - mu).T @ (x - mu) / x.shape[0])
        s2 = ev[k:].mean()
        return V[:, :k] * (ev[:k] - s2).abs().sqrt(), mu, s2

    def unbiased(x, k):
        mu = x.mean(0)
        ev, V = torch.linalg.eigh(torch.cov(x.T))
        ev, V = ev.flip(0), V.flip(1)
        s2 = ev[k:].mean()
        return V[:, :k] * (ev[:k] - s2).sqrt(), mu, s2

    def no_minus_sigma2(x, k):
        mu, ev, V = _eig(x)
        return V[:, :k] * ev[:k].sqrt(), mu, ev[k:].mean()

    def no_sqrt(x, k):
        mu, ev, V = _eig(x)
        s2 = ev[k:].mean()
        return V[:, :k] * (ev[:k] - s2), mu, s2

    def zero_mu(x, k):
        W, mu, s2 = reference(x, k)
        return W, torch.zeros_like(mu), s2

    def transposed(x, k):
        W, mu, s2 = reference(x, k)
        return W.T, mu, s2

    assert_rejects("ppca_closed_form", sum_not_mean, "not their sum")
    assert_rejects("ppca_closed_form", ascending, "increasing order")
    assert_rejects("ppca_closed_form", unbiased, "not 1/(N - 1)")
    assert_rejects("ppca_closed_form", no_minus_sigma2, "left out the - sigma2")
    assert_rejects("ppca_closed_form", no_sqrt, "square root")
    assert_rejects("ppca_closed_form", zero_mu, "mean of the rows of x")
    assert_rejects("ppca_closed_form", transposed, "W should have shape")
    assert_rejects("ppca_closed_form", lambda x, k: reference(x, k)[0], "return the triple")


def test_at_scale_accepts_dense_and_woodbury_answers_and_reports_the_time():
    def dense(x, W, mu, s2):
        return MultivariateNormal(mu, W @ W.T + s2 * torch.eye(W.shape[0], dtype=W.dtype)).log_prob(x)

    for fn in (dense, vc.ppca_log_likelihood):
        result = vc.exercises.check("ppca_log_likelihood_at_scale", fn)
        assert result.passed, result.message
        assert "ms" in result.message and "k x k version" in result.message


def test_at_scale_rejects_stub_and_wrong_values():
    assert_rejects("ppca_log_likelihood_at_scale", stub, "NotImplementedError")
    assert_rejects("ppca_log_likelihood_at_scale",
                   lambda x, W, mu, s2: vc.ppca_log_likelihood(x, W, mu, s2).mean(), "shape (500,)")
    assert_rejects("ppca_log_likelihood_at_scale",
                   lambda x, W, mu, s2: vc.ppca_log_likelihood(x, W, mu, s2.sqrt()), "wrong value")


def test_registered_for_chapter_3():
    known = vc.exercises.known_exercises()
    assert known["ppca_closed_form"].chapter == "03_linear_models"
    assert known["ppca_log_likelihood_at_scale"].reference is vc.ppca_log_likelihood
