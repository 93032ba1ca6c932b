"""The ground layer: densities and divergences, argument checks, bundled data, threads and seeds.

Imports nothing else from the package. Taught in: chapter 1 (densities, data) and the preface
("How to run a chapter": threads and seeds).
"""
from .data import DataFileError, binarize, load_mnist, read_idx
from .distributions import (
    LOG_2PI,
    bernoulli_log_prob,
    gaussian_log_prob,
    kl_normal_normal,
    kl_normal_std_normal,
    log_mean_exp,
    reparameterize,
)
from .runtime import RuntimeInfo, configure, default_device, make_generator
from .units import bits_per_dim, dequantization_offset

__all__ = [
    "DataFileError", "binarize", "load_mnist", "read_idx",
    "LOG_2PI", "bernoulli_log_prob", "gaussian_log_prob", "kl_normal_normal", "kl_normal_std_normal",
    "log_mean_exp", "reparameterize",
    "bits_per_dim", "dequantization_offset",
    "RuntimeInfo", "configure", "default_device", "make_generator",
]
