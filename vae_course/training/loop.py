"""The one training loop of the course: `train(loss_fn, params, config)`.

Taught in: chapter 1 (gradient descent on a negative log-likelihood, written out by hand
there); used by every later chapter that optimises. The loss is whatever `loss_fn` returns;
by the course's convention it is a negative log-likelihood or negative ELBO in nats per
example (summed over data dimensions, averaged over the batch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

__all__ = ["TrainConfig", "train"]


@dataclass
class TrainConfig:
    """Settings of `train`."""

    steps: int = 100  # optimiser steps (one per batch; full batch when `batch_size` is None)
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.0  # SGD momentum (ignored by Adam)
    batch_size: int | None = None  # examples per step when `data` is given; None = all of them
    seed: int = 0  # seed of the generator that shuffles the batches

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {self.batch_size!r}")


def _optimizer(params: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(params, lr=config.lr)


def _batches(data: torch.Tensor, config: TrainConfig):
    """Endless shuffled batches of `data` (rows), reproducible from `config.seed`."""
    gen = torch.Generator().manual_seed(config.seed)
    size = config.batch_size or len(data)
    while True:
        order = torch.randperm(len(data), generator=gen)
        for start in range(0, len(data) - size + 1, size):
            yield data[order[start:start + size]]


def train(loss_fn: Callable, params: Iterable[torch.Tensor], config: TrainConfig | None = None,
          data: torch.Tensor | None = None) -> list[float]:
    """Minimise `loss_fn` over `params`; return the loss before each step's update.

    Without `data`, `loss_fn()` takes no argument (full-batch objectives). With `data`, each
    step calls `loss_fn(batch)` on the next shuffled batch of rows of `data`.
    """
    config = config or TrainConfig()
    params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("params must be a non-empty list of tensors with requires_grad=True")
    if data is not None and (not isinstance(data, torch.Tensor) or data.dim() < 1 or len(data) == 0):
        raise ValueError("data must be a non-empty tensor whose rows are examples")
    if data is not None and config.batch_size and config.batch_size > len(data):
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(data)} rows of data")
    optimizer = _optimizer(params, config)
    batches = _batches(data, config) if data is not None else None
    losses = []
    for _ in range(config.steps):
        optimizer.zero_grad()
        loss = loss_fn(next(batches)) if batches is not None else loss_fn()
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise ValueError("loss_fn must return a 0-d tensor (the loss averaged over the batch)")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {len(losses)}; lower lr?")
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
