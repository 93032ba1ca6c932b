"""Unit conversions for log-likelihoods of images: nats, bits per dimension, dequantization.

Taught in: chapter 3 (dequantization); bits per dimension are used again for the VAE (chapter 8).

A continuous density p on pixels scaled to [0, 1] can exceed one, so its log-density can be
positive and is not comparable with the log-probability of a discrete model. Dequantization
(Uria et al. 2013; Theis et al. 2016) fixes this for 8-bit images: add uniform noise inside each
of the 256 grey levels, so that the data are a continuous distribution on [0, 1]^d, and score
log p(x) - d log 256. That number is a lower bound on the log-probability of the 8-bit image
under the discrete model obtained by integrating p over each grey-level cell, so it is at most
zero and comparable with discrete models; divided by d log 2 and negated it is the familiar
*bits per dimension*.
"""
from __future__ import annotations

import math

import torch

from .validation import as_tensor, check_int, check_real

__all__ = ["dequantization_offset", "bits_per_dim"]


def dequantization_offset(num_dims: int, levels: int = 256) -> float:
    """d log(levels) in nats: what to subtract from a log-density on [0, 1]^d to score it on the
    grid of `levels` grey levels (cells of width 1/levels). A Python float."""
    num_dims = check_int("num_dims", num_dims, low=1)
    levels = check_int("levels", levels, low=2)
    return num_dims * math.log(levels)


def bits_per_dim(log_prob, num_dims: int):
    """Negative log-likelihood in bits per dimension: -log_prob / (num_dims log 2).

    `log_prob` is a log-likelihood in nats summed over the `num_dims` dimensions (a number or a
    tensor of any shape, e.g. (N,) with one value per example); the result has the same shape
    (a float for a number). Lower is better. For a continuous density on dequantized 8-bit pixels,
    subtract `dequantization_offset(num_dims)` from `log_prob` first.
    """
    num_dims = check_int("num_dims", num_dims, low=1)
    if isinstance(log_prob, torch.Tensor):
        log_prob = as_tensor("log_prob", log_prob)
        return -log_prob / (num_dims * math.log(2.0))
    return -check_real("log_prob", log_prob) / (num_dims * math.log(2.0))
