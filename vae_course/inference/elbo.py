"""The evidence lower bound (ELBO): a Monte Carlo estimate for any model, the closed form for linear-Gaussian ones.

Taught in: chapter 5 (the ELBO); used by chapters 4 (variational inference per point), 6
(amortization gaps) and 8 (the VAE's loss is minus `elbo`, averaged over the batch).

For q(z) = N(mu, diag(exp(logvar))) and the prior p(z) = N(0, I)::

    ELBO(q) = E_q[log p(x | z)] - KL(q(z) || p(z))  =  log p(x) - KL(q(z) || p(z | x))  <=  log p(x).

Every value is in nats, one per example (shape (N,)), summed over the data dimensions. The
Monte Carlo `elbo` averages `n_samples` single-sample reconstruction terms log p(x | z_s) and
subtracts the closed-form KL to the prior: it is an unbiased estimate of the ELBO, not the
importance-weighted (log-mean-exp) bound of chapter 9. `linear_gaussian_elbo` gives the exact
expectation for the linear-Gaussian model, so chapter 5 can check the identity above to
round-off; `kl_gaussian_full` gives the KL to a full-covariance Gaussian such as the exact
posterior p(z | x) of that model.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.distributions import gaussian_log_prob, kl_normal_std_normal, monte_carlo_elbo
from ..core.validation import check_data, check_generator, check_int, check_tensor
from .interface import check_encoding, check_gaussian_params, check_model

__all__ = ["ELBOTerms", "elbo", "elbo_terms", "elbo_estimate", "vae_loss", "linear_gaussian_elbo", "kl_gaussian_full"]


class ELBOTerms(NamedTuple):
    """The ELBO and its two terms, each (N,) in nats: ``elbo = recon - kl``."""

    elbo: torch.Tensor  # recon - kl
    recon: torch.Tensor  # the expected reconstruction term E_q[log p(x | z)] (estimated or exact)
    kl: torch.Tensor  # KL(q(z) || N(0, I)), closed form


def _q_for(model, x, q, methods) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate `model` (for `methods`) and return q's (mu, logvar): `q` if given, else `model.encode(x)`."""
    if q is None:
        check_model(model, methods=methods)
        return check_encoding(model.encode(x))
    check_model(model, methods=tuple(m for m in methods if m != "encode"))
    if not isinstance(q, (tuple, list)) or len(q) != 2:
        raise TypeError(f"q must be None (use model.encode(x)) or a pair (mu, logvar), got {type(q).__name__}")
    x_rows = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() >= 1 else None
    return check_gaussian_params(q[0], q[1], mu_name="q[0] (mu)", logvar_name="q[1] (logvar)", rows=x_rows)


def _mc_terms(model, x, mu, logvar, n_samples: int, generator) -> ELBOTerms:
    """The Monte Carlo ELBO without any checks (for inner loops; the public functions validate once).

    Draws eps of shape (n_samples, N, k) in one call with `generator`, z = mu + exp(logvar / 2) eps.
    """
    return ELBOTerms(*monte_carlo_elbo(model.log_px_given_z, x, mu, logvar, n_samples, generator))


def elbo_terms(model, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None,
               q: tuple[torch.Tensor, torch.Tensor] | None = None) -> ELBOTerms:
    """The Monte Carlo ELBO of `model` at the rows of `x`, with its reconstruction and KL terms.

    q is ``model.encode(x)`` unless `q` = ``(mu, logvar)`` (each (N, k)) is given; then the model
    needs only ``log_px_given_z``. ``recon`` averages log p(x | z_s) over `n_samples` draws
    z_s = mu + exp(logvar / 2) eps_s (reparameterized, so gradients reach mu and logvar; the noise
    eps, shape (n_samples, N, k), is drawn in one call with `generator`); ``kl`` is the closed-form
    KL(q || N(0, I)). Returns `ELBOTerms` (elbo, recon, kl), each (N,), nats per example.
    """
    n_samples = check_int("n_samples", n_samples, low=1)
    check_generator(generator)
    mu, logvar = _q_for(model, x, q, ("encode", "log_px_given_z"))
    return _mc_terms(model, x, mu, logvar, n_samples, generator)


def elbo(model, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None,
         q: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Per-example ELBO in nats, shape (N,): mean of `n_samples` terms log p(x | z_s), minus KL(q || N(0, I)).

    q(z | x) = N(mu, diag(exp(logvar))) with ``(mu, logvar) = model.encode(x)``, or `q` when
    given. An unbiased, differentiable estimate of the ELBO (not a log-mean-exp bound); the loss
    of a VAE is ``-elbo(model, x).mean()``, nats per example averaged over the batch. See
    `elbo_terms` for the two terms and how the noise is drawn.
    """
    return elbo_terms(model, x, n_samples=n_samples, generator=generator, q=q).elbo


def elbo_estimate(x: torch.Tensor, decode, mu: torch.Tensor, logvar: torch.Tensor,
                  eps: torch.Tensor) -> torch.Tensor:
    """The single-sample ELBO from given pieces: log p(x | z) - KL(q || N(0, I)) with z = mu + exp(logvar / 2) eps.

    `x` (N, d); `mu`, `logvar` and the standard-normal noise `eps`, each (N, k); `decode(z)` returns
    ``(x_mean, x_logvar)`` of a diagonal Gaussian p(x | z), each (N, d). Returns (N,) in nats,
    differentiable in mu and logvar (and in whatever `decode` depends on). The reference of the
    chapter 5 exercise `elbo_estimate`; `elbo` does the same through the model interface.
    """
    mu, logvar = check_gaussian_params(mu, logvar)
    eps = check_tensor("eps", eps, shape=tuple(mu.shape), what="(standard-normal noise, like mu)")
    z = mu + torch.exp(0.5 * logvar) * eps  # the reparameterized sample
    x_mean, x_logvar = decode(z)
    return gaussian_log_prob(x, x_mean, x_logvar) - kl_normal_std_normal(mu, logvar)


def vae_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The loss of a Bernoulli VAE from given pieces: a 0-d tensor, nats per example averaged over the batch.

    mean_n [ BCE-with-logits(logits_n, x_n) summed over the d pixels + KL(N(mu_n, diag(exp(logvar_n))) || N(0, I)) ],
    where `logits` (N, d) are the decoder's output at one reparameterized draw z_n ~ q(z | x_n):
    minus the single-sample ELBO, averaged over the N rows. `x` (N, d) in [0, 1]. The reference of
    the chapter 8 exercise `vae_loss`; `vc.VAE.loss` computes the same through the model.
    """
    x = check_data("x", x, unit_interval=True)
    logits = check_tensor("logits", logits, shape=tuple(x.shape), what="(the decoder's logits, like x)")
    mu, logvar = check_gaussian_params(mu, logvar, rows=x.shape[0])
    recon = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    return (kl_normal_std_normal(mu, logvar) - recon).mean()


def linear_gaussian_elbo(model, x: torch.Tensor, q: tuple[torch.Tensor, torch.Tensor] | None = None,
                         return_terms: bool = False):
    """The exact ELBO of a linear-Gaussian model, x | z ~ N(W z + b, diag(psi)), for a diagonal Gaussian q.

    With q = N(m, diag(s^2)) (``(m, log s^2) = q``, or ``model.encode(x)`` when `q` is None) the
    expected reconstruction term has the closed form::

        E_q[log p(x | z)] = log N(x; W m + b, diag(psi)) - 1/2 sum_i (W diag(s^2) W^T)_ii / psi_i,

    and the KL to the prior is closed-form too, so no sampling is involved. `model` needs the
    attributes W (d, k), b (d,) and psi (d,) (`vc.LinearGaussian`, `vc.PPCA`, `vc.FactorAnalysis`).
    Computed in the dtype and on the device of ``model.W`` (float64 for a fitted model, which is
    what the round-off check of log p(x) = ELBO + KL(q || p(z | x)) needs). Returns (N,) in nats,
    or `ELBOTerms` when `return_terms`.
    """
    params = {name: getattr(model, name, None) for name in ("W", "b", "psi")}
    missing = [name for name, value in params.items() if not isinstance(value, torch.Tensor)]
    if missing:
        raise TypeError(f"model must be a linear-Gaussian model with tensor attributes W, b and psi "
                        f"(vc.LinearGaussian, vc.PPCA or vc.FactorAnalysis); the {type(model).__name__} "
                        f"given lacks {', '.join(missing)}")
    W, b, psi = params["W"], params["b"], params["psi"]
    x = check_data("x", x, dim=W.shape[0]).to(dtype=W.dtype, device=W.device)
    mu, logvar = _q_for(model, x, q, ("encode",))
    check_gaussian_params(mu, logvar, mu_name="mu", logvar_name="logvar", latent_dim=W.shape[1])
    mu, logvar = mu.to(dtype=W.dtype, device=W.device), logvar.to(dtype=W.dtype, device=W.device)
    spread = torch.exp(logvar) @ (W * W).T  # (N, d): diag(W diag(s^2) W^T) for each row
    recon = gaussian_log_prob(x, mu @ W.T + b, torch.log(psi)) - 0.5 * (spread / psi).sum(dim=-1)
    kl = kl_normal_std_normal(mu, logvar)
    terms = ELBOTerms(recon - kl, recon, kl)
    return terms if return_terms else terms.elbo


def kl_gaussian_full(mean_q: torch.Tensor, cov_q: torch.Tensor, mean_p: torch.Tensor,
                     cov_p: torch.Tensor) -> torch.Tensor:
    """KL( N(mean_q, cov_q) || N(mean_p, cov_p) ) in nats, for full covariance matrices.

    Means are (..., k) and covariances (..., k, k); batch dimensions broadcast (a (k, k) posterior
    covariance shared by N rows, say, with means (N, k) gives (N,)). For a diagonal q pass
    ``torch.diag_embed(torch.exp(logvar))``. Closed form, through Cholesky factors::

        1/2 [ tr(cov_p^{-1} cov_q) + (mean_p - mean_q)^T cov_p^{-1} (mean_p - mean_q) - k
              + log det cov_p - log det cov_q ].

    Computed in the promoted dtype of the inputs, on their device.
    """
    mean_q = check_tensor("mean_q", mean_q, what="of shape (..., k)")
    mean_p = check_tensor("mean_p", mean_p, what="of shape (..., k)")
    cov_q = check_tensor("cov_q", cov_q, what="of shape (..., k, k)")
    cov_p = check_tensor("cov_p", cov_p, what="of shape (..., k, k)")
    k = mean_q.shape[-1] if mean_q.dim() else 0
    for name, m in (("mean_q", mean_q), ("mean_p", mean_p)):
        if m.dim() < 1 or m.shape[-1] != k or k < 1:
            raise ValueError(f"{name} must have shape (..., k) with the same k >= 1 as mean_q, got shape "
                             f"{tuple(m.shape)}")
    for name, c in (("cov_q", cov_q), ("cov_p", cov_p)):
        if c.dim() < 2 or c.shape[-2:] != (k, k):
            raise ValueError(f"{name} must have shape (..., {k}, {k}) (k = {k}, the size of the means), "
                             f"got shape {tuple(c.shape)}")
    dtype = torch.promote_types(torch.promote_types(mean_q.dtype, mean_p.dtype),
                                torch.promote_types(cov_q.dtype, cov_p.dtype))
    mean_q, mean_p, cov_q, cov_p = (t.to(dtype) for t in (mean_q, mean_p, cov_q, cov_p))
    factors = {}
    for name, c in (("cov_q", cov_q), ("cov_p", cov_p)):
        L, info = torch.linalg.cholesky_ex(c)
        if bool((info != 0).any()):
            raise ValueError(f"{name} must be a symmetric positive-definite covariance matrix; "
                             "its Cholesky factorization failed")
        factors[name] = L
    Lq, Lp = factors["cov_q"], factors["cov_p"]
    Lp_b = Lp.expand(*torch.broadcast_shapes(Lp.shape, Lq.shape))
    trace = torch.linalg.solve_triangular(Lp_b, Lq.expand_as(Lp_b), upper=False).pow(2).sum(dim=(-2, -1))
    diff = (mean_p - mean_q).unsqueeze(-1)  # (..., k, 1)
    shape = torch.broadcast_shapes(Lp.shape[:-2], diff.shape[:-2])
    a = torch.linalg.solve_triangular(Lp.expand(*shape, k, k), diff.expand(*shape, k, 1), upper=False)
    quad = a.pow(2).sum(dim=(-2, -1))
    logdet_p = 2.0 * torch.log(torch.diagonal(Lp, dim1=-2, dim2=-1)).sum(-1)
    logdet_q = 2.0 * torch.log(torch.diagonal(Lq, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + quad - k + logdet_p - logdet_q)
