"""The one training loop of the course: `train(loss_fn, params, config, data=None, generator=None)`.

Taught in: chapter 1 (gradient descent on a negative log-likelihood, written out by hand
there); used by every later chapter that optimises. The loss is whatever `loss_fn` returns;
by the course's convention it is a negative log-likelihood or negative ELBO in nats per
example (summed over data dimensions, averaged over the batch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from ..core.validation import check_bool, check_choice, check_generator, check_int, check_positive, check_real

__all__ = ["TrainConfig", "train", "optimise"]


@dataclass
class TrainConfig:
    """Settings of `train`.

    steps:
        Optimiser steps, one per batch (per call of `loss_fn`).
    lr:
        Learning rate, a finite number > 0.
    optimizer:
        "adam" (`torch.optim.Adam` with its default betas and eps) or "sgd" (`torch.optim.SGD`).
    momentum:
        SGD momentum in [0, 1) (Adam has its own; a non-zero value with Adam is an error).
    batch_size:
        Rows of `data` per step, or None for all of them. Only meaningful with `data`:
        `train` raises if it is set and no data is given.
    drop_last:
        What to do with the last, smaller batch of an epoch when `batch_size` does not divide the
        number of rows: False (default) uses it, so every row is visited once per epoch; True
        skips it (every batch then has `batch_size` rows, and a few rows are left out of each epoch).

    The shuffling of `data` is not set here: pass a `torch.Generator` to `train(..., generator=)`,
    as everywhere else in the package.
    """

    steps: int = 100
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    batch_size: int | None = None
    drop_last: bool = False

    def __post_init__(self):
        self.steps = check_int("steps", self.steps, low=1)
        self.lr = check_positive("lr", self.lr)
        self.optimizer = check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        self.momentum = check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        if self.optimizer == "adam" and self.momentum != 0.0:
            raise ValueError(f"momentum applies to optimizer='sgd' only, got momentum={self.momentum:g} with "
                             "optimizer='adam' (Adam's own momentum is fixed by its betas)")
        if self.batch_size is not None:
            self.batch_size = check_int("batch_size", self.batch_size, low=1)
        check_bool("drop_last", self.drop_last)


def _optimizer(params: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(params, lr=config.lr)


def _batches(data: torch.Tensor, size: int, drop_last: bool, generator: torch.Generator | None):
    """Endless batches of rows of `data`: each epoch a fresh random permutation, cut into `size` rows."""
    n = len(data)
    device = generator.device if generator is not None else torch.device("cpu")
    stop = n - size + 1 if drop_last else n
    while True:
        order = torch.randperm(n, generator=generator, device=device).to(data.device)
        for start in range(0, stop, size):
            yield data[order[start:start + size]]


def train(loss_fn: Callable, params: Iterable[torch.Tensor], config: TrainConfig | None = None,
          data: torch.Tensor | None = None, generator: torch.Generator | None = None) -> list[float]:
    """Minimise `loss_fn` over `params` for `config.steps` steps; return the loss before each step's update.

    Without `data`, `loss_fn()` takes no argument (full-batch objectives). With `data` (a tensor
    whose rows are examples), each step calls `loss_fn(batch)` on the next batch of
    `config.batch_size` rows: every epoch visits the rows in a new random order drawn from
    `generator` (torch's global generator when None, which `vc.setup()` seeds), and ends with a
    smaller batch unless `config.drop_last`. The loss must be a 0-d tensor (by the course's
    convention, averaged over the batch); a NaN or infinite loss stops training with an error.
    """
    if config is None:
        config = TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or None, got {type(config).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("params must be a non-empty list of tensors with requires_grad=True")
    check_generator(generator)
    if data is None:
        if config.batch_size is not None:
            raise ValueError(f"batch_size={config.batch_size} applies only when data is given: without data, "
                             "loss_fn() is the full-batch objective. Pass data=..., or leave batch_size=None")
        if generator is not None:
            raise ValueError("generator shuffles the rows of data and applies only when data is given")
        batches = None
    else:
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"data must be a torch.Tensor whose rows are examples, got {type(data).__name__}")
        if data.dim() < 1 or len(data) == 0:
            raise ValueError(f"data must be a non-empty tensor whose rows are examples, got shape {tuple(data.shape)}")
        size = config.batch_size or len(data)
        if size > len(data):
            raise ValueError(f"batch_size must be at most the {len(data)} rows of data, got {size}")
        batches = _batches(data, size, config.drop_last, generator)
    optimizer = _optimizer(params, config)
    steps = (next(batches) for _ in range(config.steps)) if batches is not None else (None for _ in range(config.steps))
    return optimise(loss_fn, optimizer, steps,
                    lambda step, value: f"the loss became {value} at step {step}; lower lr?")


def optimise(loss_fn: Callable, optimizer: torch.optim.Optimizer, inputs: Iterable,
             describe: Callable[[int, float], str]) -> list[float]:
    """The one optimisation loop, shared by `train` and `fit`: one step per item of `inputs`.

    Each item is a batch passed to `loss_fn`, or None for `loss_fn()`. The loss must be a 0-d
    tensor; a NaN or infinite one raises FloatingPointError with ``describe(step, value)`` BEFORE
    any update is made from it, so the parameters keep their last finite values. Returns the
    loss of every step (before its update). No argument checks: the callers validate once.
    """
    losses = []
    for step, batch in enumerate(inputs):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(batch) if batch is not None else loss_fn()
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a 0-d tensor (the loss averaged over the batch), got {got}")
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(describe(step, value))
        loss.backward()
        optimizer.step()
        losses.append(value)
    return losses
