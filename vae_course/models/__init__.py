"""Models: the density models of chapter 1 and the linear-Gaussian latent variable model of chapters 2-3.

- `linear_gaussian`: `LinearGaussian` (z ~ N(0, I), x | z ~ N(W z + b, diag(psi))) and its thin
  subclasses `PPCA` and `FactorAnalysis`; the functional exercise references; the model interface
  of Part II (`encode`, `decode`, `log_px_given_z`, `log_pz`, `log_prob`, `sample`).
- `pca`: PCA, the closed-form PPCA fit, principal angles.
- `factor_analysis`: the EM fit of factor analysis.
- `mixtures`: a Gaussian, Gaussian and Bernoulli mixtures (one EM routine).
- `vae`: `VAE` (MLP encoder and decoder) and `LinearVAE` (its optimum is PPCA), chapter 8.
- `nonlinear`: `NonlinearGaussian`, a small tanh decoder with a 1-D or 2-D latent (chapters 4 and 6).

Imports only `core`.
"""
from .factor_analysis import fit_factor_analysis
from .linear_gaussian import (
    PPCA,
    FactorAnalysis,
    LinearGaussian,
    linear_conditional_log_prob,
    naive_mc_log_prob,
    ppca_log_likelihood,
    ppca_posterior,
    random_linear_gaussian,
)
from .mixtures import (
    BernoulliMixture,
    DiagonalGaussian,
    GaussianMixture,
    IndependentBernoulli,
    fit_bernoulli_mixture,
    fit_gaussian,
    fit_gaussian_mixture,
    fit_independent_bernoulli,
    gaussian_mixture_log_prob,
)
from .nonlinear import NonlinearGaussian
from .pca import PCAResult, fit_ppca, pca, principal_angles
from .vae import VAE, LinearVAE

__all__ = [
    "LinearGaussian", "PPCA", "FactorAnalysis", "random_linear_gaussian",
    "linear_conditional_log_prob", "naive_mc_log_prob", "ppca_log_likelihood", "ppca_posterior",
    "PCAResult", "pca", "fit_ppca", "principal_angles", "fit_factor_analysis",
    "DiagonalGaussian", "fit_gaussian", "GaussianMixture", "gaussian_mixture_log_prob", "fit_gaussian_mixture",
    "IndependentBernoulli", "fit_independent_bernoulli", "BernoulliMixture", "fit_bernoulli_mixture",
    "NonlinearGaussian", "VAE", "LinearVAE",
]
