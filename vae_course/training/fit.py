"""Fit a model with a `loss(x)` (a VAE) to a data tensor: `fit`, and its `History`.

Taught in: chapter 8 (training the VAE on digits). The steps are those of the
package's one optimisation loop (`vae_course.training.loop.optimise`, which `train` uses too);
`fit` adds epochs, batches cut by tensor indexing (no per-item `DataLoader`), a held-out loss
after every epoch, a progress bar and a device.

The loss is the model's: for `vc.VAE` and `vc.LinearVAE` the negative ELBO with one
reparameterized draw per example, log p(x | z) summed over the data dimensions, in nats per
example averaged over the batch. `History.train_loss` holds, for each epoch, the mean of the
epoch's batch losses (each batch weighted by its rows), `History.valid_loss` the negative ELBO
on `x_valid` after the epoch (one draw per example from a generator reset every epoch, so the
epochs are compared on the same noise).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..core.validation import check_bool, check_choice, check_data, check_int
from .loop import TrainConfig, _optimizer, optimise

__all__ = ["History", "fit"]


@dataclass
class History:
    """What `fit` measured, one entry per epoch (nats per example: the negative ELBO for a VAE)."""

    train_loss: list = field(default_factory=list)  # mean training loss over the epoch's batches
    valid_loss: list = field(default_factory=list)  # held-out loss after the epoch (empty without x_valid)
    seconds: list = field(default_factory=list)  # training time since the start, at the end of each epoch
    batch_loss: list = field(default_factory=list)  # the loss of every step

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def _device(device, model) -> torch.device:
    if device is None:
        return next(model.parameters()).device
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be None, 'cpu', 'cuda', 'cuda:<index>' or a torch.device, got {device!r}") \
            from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} asks for a GPU, but torch.cuda.is_available() is False here; "
                             "use device=None or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device must be None, 'cpu' or a CUDA device, got {device!r}")
    return dev


def _check_rows(model, x, name: str) -> torch.Tensor:
    check = getattr(model, "check_input", None)
    return check(x, name) if callable(check) else check_data(name, x)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm  # imported when used: importing the package stays light

    return tqdm(total=total, desc="fit", unit="epoch", leave=True)


def fit(model, x: torch.Tensor, *, epochs: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
        x_valid: torch.Tensor | None = None, progress: bool = True, device=None,
        lr_decay: str | None = None) -> History:
    """Train `model` on the rows of `x` with Adam for `epochs` epochs; return the `History`.

    `model` is a `torch.nn.Module` with ``loss(batch, generator=None)`` (0-d, averaged over the
    batch); `vc.VAE` and `vc.LinearVAE` are. Every epoch visits the rows in a new random order
    (from `seed`), in batches of `batch_size` rows (the last one smaller when it does not divide
    N). `seed` also seeds the noise of the reparameterized samples; the initial weights are the
    model's own (`VAE(..., generator=...)`). `x_valid`: rows scored after every epoch (no
    gradient). `progress`: a progress bar (tqdm) with the running loss. `device`: where to train
    (None keeps the model where it is); the model is moved there and stays there. `lr_decay`:
    None keeps the rate constant; "cosine" lowers it after every epoch along a half cosine, from
    `lr` in the first epoch to nearly 0 in the last (Monte Carlo noise in the gradient then
    averages out, so the parameters settle on the optimum instead of jittering around it).

    A NaN or infinite loss stops training with a FloatingPointError saying at which epoch and
    batch; the parameters keep their values from before that batch. All arguments are checked
    before the first step.
    """
    if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "loss", None)):
        raise TypeError(f"model must be a torch.nn.Module with a loss(x) method (vc.VAE, vc.LinearVAE), "
                        f"got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"model must have parameters to train (tensors with requires_grad=True); the "
                         f"{type(model).__name__} given has none")
    epochs = check_int("epochs", epochs, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    seed = check_int("seed", seed, low=0)
    check_bool("progress", progress)
    if lr_decay is not None:
        check_choice("lr_decay", lr_decay, ("cosine",))
    config = TrainConfig(steps=1, lr=lr)  # validates lr
    dev = _device(device, model)
    model.to(dev)
    x = _check_rows(model, x, "x").to(dev)
    if x_valid is not None:
        x_valid = _check_rows(model, x_valid, "x_valid").to(dev)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    per_epoch = -(-n // batch_size)
    batch_loss = getattr(model, "batch_loss", model.loss)  # the unchecked loss when the model has one
    order_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=dev).manual_seed(seed)
    valid_seed = seed + 1
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused Adam (one kernel for all parameters) computes the same update as the default
    # one, about 20% faster per epoch of a VAE here; it needs floating-point tensors on one device.
    fused = bool(params) and all(p.is_floating_point() and p.device == dev for p in params)
    optimizer = torch.optim.Adam(params, lr=config.lr, fused=fused) if fused else _optimizer(params, config)
    history = History()
    bar = _progress(epochs, progress)
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            if lr_decay == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
            model.train()
            order = torch.randperm(n, generator=order_gen).to(dev)
            batches = (x[order[i:i + batch_size]] for i in range(0, n, batch_size))

            def describe(step, value, epoch=epoch):
                return (f"the loss became {value} at epoch {epoch + 1}, batch {step + 1} of {per_epoch}; training "
                        f"stopped there and the model keeps its parameters from before that batch. Try a lower lr "
                        f"(now {config.lr:g}), and check the data for NaN or extreme values")

            losses = optimise(lambda b: batch_loss(b, generator=noise_gen), optimizer, batches, describe)
            sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
            history.batch_loss.extend(losses)
            history.train_loss.append(sum(v * s for v, s in zip(losses, sizes)) / n)
            history.seconds.append(time.perf_counter() - start)
            if x_valid is not None:
                history.valid_loss.append(_score(model, x_valid, batch_loss, dev, valid_seed))
            if bar is not None:
                post = {"loss": f"{history.train_loss[-1]:.2f}"}
                if x_valid is not None:
                    post["valid"] = f"{history.valid_loss[-1]:.2f}"
                bar.set_postfix(post)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    return history


def _score(model, x, loss, dev, seed: int, rows: int = 1000) -> float:
    """The loss on all rows of `x`, without gradients, on fixed noise: nats per example."""
    gen = torch.Generator(device=dev).manual_seed(seed)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], rows):
            part = x[i:i + rows]
            total += loss(part, generator=gen).item() * part.shape[0]
    return total / x.shape[0]
