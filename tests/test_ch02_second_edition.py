"""Chapter 2, second edition: the cost of naive Monte Carlo as exp(KL), and the spread over models.

The KL numbers are checked against quantities the chapter computes another way (the exact
relative variance of the estimator, the posterior's standard deviation) through identities and
inequalities that hold for any Gaussian posterior: for k = 1 the KL's spread term is a closed form
of the posterior standard deviation, and the chi-square divergence that sets the variance is never
below exp(KL) - 1.
"""
from __future__ import annotations

import math

import pytest
from notebook_utils import ROOT

CHAPTER = ROOT / "book" / "02_latent_variable_models.ipynb"
KS = (1, 2, 4, 8, 16, 32)


def test_kl_restates_the_cost(glued):
    for k in KS:
        kl = glued[f"ch2_kl_k{k}"]
        assert kl > 0
        assert glued[f"ch2_log10_exp_kl_k{k}"] == pytest.approx(kl / math.log(10), rel=1e-12)
        assert 0 < glued[f"ch2_loc_share_k{k}"] < 100
    # chi-square >= exp(KL) - 1: the variance criterion never asks for fewer draws than exp(KL)
    for k in (1, 4, 16, 32):
        chi2 = 10 ** glued[f"ch2_log10draws_k{k}"]
        assert chi2 >= math.expm1(glued[f"ch2_kl_k{k}"]) * 0.5  # per-point averages of logs: loose factor
    kls = [glued[f"ch2_kl_k{k}"] for k in KS]
    assert kls == sorted(kls)  # the cost grows with the latent dimension
    assert 40 <= glued["ch2_loc_share_k32"] <= 60  # "about half" at k = 32, as the prose says


def test_kl_at_k1_from_the_posterior_sd(glued):
    # For k = 1 the posterior covariance is the same number s^2 for every point, so the spread term
    # of KL(p(z | x) || p(z)) is (s^2 - 1 - log s^2) / 2 exactly.
    s = glued["ch2_postsd_k1"]
    spread = 0.5 * (s * s - 1 - math.log(s * s))
    kl = glued["ch2_kl_k1"]
    assert kl * (1 - glued["ch2_loc_share_k1"] / 100) == pytest.approx(spread, rel=1e-9)
    assert glued["ch2_log10vol_k1"] == pytest.approx(math.log10(s), rel=1e-9)


def test_one_model_per_k_is_put_in_context(glued):
    assert glued["ch2_num_seeds"] == 5
    for k in (4, 32):
        assert glued[f"ch2_err_k{k}_lo"] <= glued[f"ch2_err_k{k}_hi"]
    assert glued["ch2_err_k32_lo"] > 0  # biased low at large k, for every model (Jensen)
    assert glued["ch2_err_k4_hi"] < glued["ch2_err_k32_lo"]
