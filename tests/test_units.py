"""Bits per dimension and the dequantization offset, against hand computations."""
from __future__ import annotations

import math

import pytest
import torch

import vae_course as vc


def test_dequantization_offset():
    assert vc.dequantization_offset(784) == pytest.approx(784 * 8 * math.log(2), rel=1e-15)
    assert vc.dequantization_offset(10, levels=2) == pytest.approx(10 * math.log(2), rel=1e-15)


def test_uniform_density_scores_eight_bits():
    # The uniform density on [0, 1]^d has log-density 0; on the 8-bit grid it is log 256^-d.
    d = 784
    assert vc.bits_per_dim(0.0 - vc.dequantization_offset(d), d) == pytest.approx(8.0, rel=1e-14)


def test_bits_per_dim_on_tensors_keeps_shape_and_dtype():
    nats = torch.tensor([-math.log(2) * 3 * 5, -math.log(2) * 5], dtype=torch.float32)
    out = vc.bits_per_dim(nats, 5)
    assert out.dtype == torch.float32 and out.shape == (2,)
    assert torch.allclose(out, torch.tensor([3.0, 1.0]))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"num_dims must be an integer >= 1, got 0"):
        vc.bits_per_dim(-1.0, 0)
    with pytest.raises(TypeError, match=r"num_dims must be an integer, got float"):
        vc.dequantization_offset(784.0)
    with pytest.raises(ValueError, match=r"levels must be an integer >= 2, got 1"):
        vc.dequantization_offset(784, levels=1)
    with pytest.raises(TypeError, match=r"log_prob must be a floating-point tensor"):
        vc.bits_per_dim(torch.tensor([1, 2]), 4)
