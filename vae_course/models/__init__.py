"""Models: the density models of chapter 1 and the linear-Gaussian latent variable model of chapters 2-3.

Imports only `core`.
"""
from .factor_analysis import FactorAnalysis, fit_factor_analysis
from .linear import (
    PPCA,
    LinearGaussian,
    PCAResult,
    fit_ppca,
    pca,
    ppca_log_likelihood,
    ppca_posterior,
    principal_angles,
)
from .lvm import LinearGaussianLVM, linear_conditional_log_prob, naive_mc_log_prob, random_lvm
from .mixtures import (
    BernoulliMixture,
    GaussianMixture,
    IndependentBernoulli,
    fit_bernoulli_mixture,
    fit_gaussian,
    fit_gaussian_mixture,
    fit_independent_bernoulli,
    gaussian_mixture_log_prob,
)

__all__ = [
    "FactorAnalysis", "fit_factor_analysis",
    "PCAResult", "PPCA", "LinearGaussian", "fit_ppca", "pca", "ppca_log_likelihood", "ppca_posterior",
    "principal_angles",
    "LinearGaussianLVM", "linear_conditional_log_prob", "naive_mc_log_prob", "random_lvm",
    "BernoulliMixture", "GaussianMixture", "IndependentBernoulli", "fit_bernoulli_mixture", "fit_gaussian",
    "fit_gaussian_mixture", "fit_independent_bernoulli", "gaussian_mixture_log_prob",
]
