"""vae_course: the companion package of the VAE course.

Chapters import its face, `import vae_course as vc`, and call `vc.setup()` first.
Importing the package changes nothing (no threads, seeds, styles or files) and does not load
matplotlib; `setup()` changes global state and says what it changed. Each module's docstring
names the chapter that teaches it.

Layers, each a folder importing only those below it (checked by the import-linter contract in
`pyproject.toml`, run by the tests):

- `classroom`: student edition, grading, the command line (`python -m vae_course`)
- `teaching`: `setup`, exercise checks, plots, widgets, glue for the prose
- `training`: the one optimisation loop (`train`, and `fit` for models)
- `inference`: estimators that work through the model interface
- `models`: density models, the one linear-Gaussian model (PPCA, factor analysis), PCA
- `core`: densities, divergences, validation, bundled data, threads and seeds

The names below are the public face; everything else is internal.
"""
from .core import (
    LOG_2PI,
    DataFileError,
    RuntimeInfo,
    bernoulli_log_prob,
    binarize,
    default_device,
    gaussian_log_prob,
    kl_normal_normal,
    kl_normal_std_normal,
    load_mnist,
    log_mean_exp,
    make_generator,
    read_idx,
    reparameterize,
)

# --- Part II (chapters 4-7): model interface, ELBO, variational inference, gradient estimators
from .inference import (
    MODEL_INTERFACE,
    ELBOTerms,
    GradientEstimate,
    GridPosterior,
    InferenceGaps,
    best_diagonal_gaussian,
    check_model,
    elbo,
    elbo_estimate,
    elbo_terms,
    grid_posterior,
    inference_gaps,
    kl_gaussian_full,
    linear_encoder,
    linear_gaussian_elbo,
    pathwise_gradient,
    score_function_estimate,
    score_function_gradient,
    vi_loss,
)
from .models import (
    PPCA,
    BernoulliMixture,
    DiagonalGaussian,
    FactorAnalysis,
    GaussianMixture,
    IndependentBernoulli,
    LinearGaussian,
    NonlinearGaussian,
    PCAResult,
    fit_bernoulli_mixture,
    fit_factor_analysis,
    fit_gaussian,
    fit_gaussian_mixture,
    fit_independent_bernoulli,
    fit_ppca,
    gaussian_mixture_log_prob,
    linear_conditional_log_prob,
    naive_mc_log_prob,
    pca,
    ppca_log_likelihood,
    ppca_posterior,
    principal_angles,
    random_linear_gaussian,
)
from .teaching import apply_style, exercises, glue, image_grid, setup, show_images, slider_explorer
from .training import TrainConfig, train
from .training.vi import fit_gaussian_q  # Part II (chapter 4)

# isort: split
# chapters 2-3, second edition: importance sampling, KL to the prior, dequantization units
from .core import bits_per_dim, dequantization_offset
from .inference import importance_log_prob, kl_to_standard_normal, kl_to_standard_normal_parts

# isort: split
# chapter 8: the VAE, its training entry point and the importance-weighted log p(x)
from .inference import iwae_bound, iwae_log_likelihood, vae_loss
from .models import VAE, LinearVAE
from .training import History, fit

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # core
    "LOG_2PI", "DataFileError", "RuntimeInfo", "bernoulli_log_prob", "binarize", "default_device",
    "gaussian_log_prob", "kl_normal_normal", "kl_normal_std_normal", "load_mnist", "log_mean_exp",
    "make_generator", "read_idx", "reparameterize",
    # models
    "PPCA", "BernoulliMixture", "DiagonalGaussian", "FactorAnalysis", "GaussianMixture", "IndependentBernoulli",
    "LinearGaussian", "PCAResult", "fit_bernoulli_mixture", "fit_factor_analysis",
    "fit_gaussian", "fit_gaussian_mixture", "fit_independent_bernoulli", "fit_ppca",
    "gaussian_mixture_log_prob", "linear_conditional_log_prob", "naive_mc_log_prob", "pca",
    "ppca_log_likelihood", "ppca_posterior", "principal_angles", "random_linear_gaussian",
    # training
    "TrainConfig", "train",
    # Part II (chapters 4-7): inference and per-point VI
    "MODEL_INTERFACE", "ELBOTerms", "GradientEstimate", "best_diagonal_gaussian", "check_model", "elbo",
    "elbo_terms", "fit_gaussian_q", "kl_gaussian_full", "linear_gaussian_elbo", "pathwise_gradient",
    "score_function_gradient", "vi_loss", "InferenceGaps", "inference_gaps", "linear_encoder",
    "score_function_estimate", "elbo_estimate", "GridPosterior", "grid_posterior", "NonlinearGaussian",
    # teaching
    "apply_style", "exercises", "glue", "image_grid", "setup", "show_images", "slider_explorer",
    # chapters 2-3, second edition
    "bits_per_dim", "dequantization_offset", "importance_log_prob", "kl_to_standard_normal",
    "kl_to_standard_normal_parts",
    # chapter 8: the VAE
    "VAE", "LinearVAE", "fit", "History", "iwae_log_likelihood", "iwae_bound", "vae_loss",
]
