"""Inference: estimators of log p(x) and of posteriors that work through the model interface.

Imports `core` and `models`. Part II (chapters 4-7) adds variational inference, the ELBO,
amortized encoders and gradient estimators here.

Part II's modules:

- `interface`: the model interface (``encode``, ``decode``, ``log_px_given_z``; prior N(0, I)),
  defined there once and checked by `check_model` at every public function's boundary;
- `elbo`: the Monte Carlo ELBO through the interface, the exact ELBO of the linear-Gaussian model,
  the KL between full-covariance Gaussians;
- `vi`: the per-point VI objective, the best diagonal Gaussian for a Gaussian target, the
  approximation and amortization gaps (the loop that fits q is `vae_course.training.vi`);
- `grid`: exact posteriors and log p(x) on a grid, for models with a 1-D or 2-D latent;
- `gradients`: score-function (REINFORCE) and pathwise estimators of d/d(mu, logvar) E_q[f(z)].

Chapter 8's module: `iwae`, the importance-weighted log p(x) with the encoder as proposal.
Chapter 3's module: `importance`, importance sampling of log p(x) with a Gaussian proposal and the
KL from a Gaussian to the prior that sets naive Monte Carlo's cost.
"""
# --- Part II: the model interface, the ELBO, variational inference, gradient estimators (chapters 4-7)
from .elbo import ELBOTerms, elbo, elbo_estimate, elbo_terms, kl_gaussian_full, linear_gaussian_elbo, vae_loss
from .gradients import GradientEstimate, pathwise_gradient, score_function_estimate, score_function_gradient
from .grid import GridPosterior, grid_posterior
from .importance import importance_log_prob, kl_to_standard_normal, kl_to_standard_normal_parts
from .interface import MODEL_INTERFACE, check_model
from .iwae import iwae_bound, iwae_log_likelihood
from .vi import InferenceGaps, best_diagonal_gaussian, inference_gaps, linear_encoder, vi_loss

# --- end of Part II

__all__ = [
    # chapter 3
    "importance_log_prob", "kl_to_standard_normal", "kl_to_standard_normal_parts",
    # Part II (chapters 4-7)
    "MODEL_INTERFACE", "check_model", "ELBOTerms", "elbo", "elbo_terms", "elbo_estimate", "linear_gaussian_elbo",
    "kl_gaussian_full", "best_diagonal_gaussian", "vi_loss", "GradientEstimate", "score_function_gradient",
    "pathwise_gradient", "score_function_estimate", "InferenceGaps", "inference_gaps", "linear_encoder",
    "GridPosterior", "grid_posterior",
    # chapter 8
    "iwae_log_likelihood", "iwae_bound", "vae_loss",
]
