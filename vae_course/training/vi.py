"""Variational inference per data point by gradient ascent on the ELBO: `fit_gaussian_q`.

Taught in: chapter 4 (variational inference); used by chapter 6 (the best q per point, the
yardstick of the amortization gap). The objective is `vae_course.inference.vi_loss`; the
optimisation is the package's one loop, `train`.
"""
from __future__ import annotations

import torch

from ..core.validation import check_bool, check_generator, check_int
from ..inference.interface import check_gaussian_params
from ..inference.vi import vi_loss
from .loop import TrainConfig, train

__all__ = ["fit_gaussian_q"]


def fit_gaussian_q(model, x: torch.Tensor, steps: int = 500, lr: float = 0.05, n_samples: int = 1,
                   generator: torch.Generator | None = None, init: tuple[torch.Tensor, torch.Tensor] | None = None,
                   average: bool = True, return_history: bool = False):
    """Fit q_n(z) = N(mu_n, diag(exp(logvar_n))) to every row x_n of `x` by maximising its ELBO.

    Each row gets its own q; one Adam optimiser (learning rate `lr`, `steps` steps) updates all
    of them at once on minus the Monte Carlo ELBO with `n_samples` reparameterized draws per row
    per step (`vc.vi_loss`), averaged over rows: nats per example. The rows do not interact, so
    this is N separate optimisations run side by side. The prior is N(0, I); the model needs
    only ``log_px_given_z``.

    With a constant learning rate the iterates keep jittering around the optimum (the gradient
    is a Monte Carlo estimate); with `average` (the default) the result is the mean of the
    iterates over the second half of the steps (Polyak-Ruppert averaging), which lands much
    closer to the optimum than the last iterate does.

    `init` = (mu, logvar), each (N, k), is the starting point; by default q starts at the prior
    (zeros), with k = ``model.latent_dim``. `generator` draws the noise of every step. Returns
    `(mu, logvar)`, each (N, k), detached, in the dtype and on the device of the initial values
    (of `x` by default); with `return_history` also the list of losses, one per step (the loss
    before that step's update).
    """
    check_generator(generator)
    check_bool("average", average)
    check_bool("return_history", return_history)
    steps = check_int("steps", steps, low=1)
    config = TrainConfig(steps=steps, lr=lr)
    loss = vi_loss(model, x, n_samples=n_samples, generator=generator)
    n = x.shape[0]
    if init is None:
        k = getattr(model, "latent_dim", None)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"init must be given (a pair (mu, logvar) of shape (N, k)): the {type(model).__name__} "
                             "given has no integer latent_dim to start q at the prior")
        mu0 = torch.zeros(n, k, dtype=x.dtype, device=x.device)
        logvar0 = torch.zeros_like(mu0)
    else:
        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise TypeError(f"init must be None or a pair (mu, logvar), got {type(init).__name__}")
        mu0, logvar0 = check_gaussian_params(init[0], init[1], mu_name="init[0] (mu)",
                                             logvar_name="init[1] (logvar)", rows=n)
    mu = mu0.detach().clone().requires_grad_(True)
    logvar = logvar0.detach().clone().requires_grad_(True)
    # Sum of the iterates to average: those of steps `start`, ..., steps - 1 (the values each step's
    # loss is computed at), plus the final parameters after the last update.
    start = steps // 2 if average else steps
    total = {"mu": torch.zeros_like(mu0), "logvar": torch.zeros_like(mu0), "count": 0, "step": 0}

    def objective():
        if total["step"] >= start:
            total["mu"] += mu.detach()
            total["logvar"] += logvar.detach()
            total["count"] += 1
        total["step"] += 1
        return loss(mu, logvar)

    history = train(objective, [mu, logvar], config)
    count = total["count"] + 1
    result = ((total["mu"] + mu.detach()) / count, (total["logvar"] + logvar.detach()) / count)
    return (*result, history) if return_history else result
