"""The model interface of Part II, and the checks every inference function runs at its boundary.

Taught in: chapter 4 (variational inference through a model's likelihood), used by chapters 5-8.

Every latent-variable model of the course implements three methods; the inference and
training code touches a model only through them:

- ``encode(x) -> (mu, logvar)``, each ``(N, k)``: the parameters of the diagonal Gaussian
  q(z | x) = N(mu, diag(exp(logvar))) for each row of ``x``. For the linear-Gaussian model
  (`vc.LinearGaussian`, `vc.PPCA`, `vc.FactorAnalysis`) it is the best diagonal Gaussian in
  the sense of KL(q || p(z | x)): the posterior mean, and log(1 / diag(posterior precision));
  for a VAE, the encoder network.
- ``decode(z) -> parameters of p(x | z)``: for a Gaussian likelihood ``(mean, logvar)``, for a
  Bernoulli likelihood the logits; ``z`` is ``(..., k)``.
- ``log_px_given_z(x, z)``: log p(x | z) in nats, summed over the data dimensions; ``x`` (N, d)
  and ``z`` (..., N, k) give (..., N): one value per example (and per latent draw).

The prior is N(0, I) unless a model says otherwise (a model with another prior exposes it
through ``log_pz(z)``; the closed-form KL terms of `elbo` assume the standard normal).
A model with an exact log-likelihood calls it ``log_prob(x)`` (shape (N,), nats).

Wrong types raise TypeError and wrong shapes or values ValueError, each naming the argument
(the messages come from `vae_course.core.validation`).
"""
from __future__ import annotations

import torch

from ..core.validation import check_tensor

__all__ = ["MODEL_INTERFACE", "check_model", "check_gaussian_params", "check_encoding"]

MODEL_INTERFACE = ("encode", "decode", "log_px_given_z")


def check_model(model, name: str = "model", methods: tuple[str, ...] = MODEL_INTERFACE):
    """`model` itself, or a TypeError naming the methods of the interface it lacks.

    `methods` narrows the check to what a function needs (variational inference per point only
    calls ``log_px_given_z``). A method must be callable; an attribute of that name that is not
    (a tensor called ``decode``, say) counts as missing.
    """
    missing = [m for m in methods if not callable(getattr(model, m, None))]
    if missing:
        kind = type(model).__name__
        raise TypeError(f"{name} must implement the model interface ({', '.join(methods)}); "
                        f"the {kind} given lacks {', '.join(missing)}. See vae_course.inference.interface "
                        "for what each method takes and returns")
    return model


def check_gaussian_params(mu, logvar, *, mu_name: str = "mu", logvar_name: str = "logvar",
                          rows: int | None = None, latent_dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`(mu, logvar)` of a diagonal Gaussian: floating-point tensors of one shape (N, k), finite.

    `rows` fixes N (the rows of the data they belong to) and `latent_dim` fixes k. Integer
    tensors are a TypeError; mismatched shapes, NaN or inf a ValueError naming the argument.
    Nothing is detached or converted.
    """
    what = "of shape (N, k) (one row of latent parameters per example)"
    mu = check_tensor(mu_name, mu, ndim=2, what=what)
    logvar = check_tensor(logvar_name, logvar, ndim=2, what=what)
    if logvar.shape != mu.shape:
        raise ValueError(f"{mu_name} and {logvar_name} must have the same shape (N, k), got {mu_name} "
                         f"{tuple(mu.shape)} and {logvar_name} {tuple(logvar.shape)}")
    if rows is not None and mu.shape[0] != rows:
        raise ValueError(f"{mu_name} must have {rows} rows (one per row of x), got shape {tuple(mu.shape)}")
    if latent_dim is not None and mu.shape[1] != latent_dim:
        raise ValueError(f"{mu_name} must have {latent_dim} columns (the model's latent_dim), "
                         f"got shape {tuple(mu.shape)}")
    return mu, logvar


def check_encoding(out, model_name: str = "model") -> tuple[torch.Tensor, torch.Tensor]:
    """What ``model.encode(x)`` returned, checked: a pair (mu, logvar) of equal-shaped finite tensors."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"{model_name}.encode(x) must return a pair (mu, logvar), got {type(out).__name__}")
    mu, logvar = out
    mu, logvar = check_gaussian_params(mu, logvar, mu_name=f"{model_name}.encode(x)[0] (mu)",
                                       logvar_name=f"{model_name}.encode(x)[1] (logvar)")
    return mu, logvar
