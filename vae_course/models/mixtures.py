"""Simple density models fitted by maximum likelihood: a Gaussian, Gaussian mixtures, Bernoulli pixels.

Taught in: chapter 1. These are the baselines the rest of the course improves on:

- `fit_gaussian`: the closed-form maximum-likelihood Gaussian (mean and biased variance).
- `GaussianMixture`, `gaussian_mixture_log_prob`, `fit_gaussian_mixture`: a mixture of diagonal
  Gaussians, its log-density by logsumexp (stable far from every mode) and its EM fit.
- `IndependentBernoulli`, `fit_independent_bernoulli`: one Bernoulli per pixel.
- `BernoulliMixture`, `fit_bernoulli_mixture`: K "prototype" images of pixel probabilities, fitted
  by EM. The component index is a discrete latent variable; chapter 2 makes it continuous.

All log-likelihoods are in nats, one value per example (summed over the data dimensions).
EM never decreases the training log-likelihood: the `history` of each fit records it after
every step (mean over examples, nats per example). Probabilities of the Bernoulli models are
clamped to [eps, 1 - eps] (default eps = 1e-3) so that no pixel ever costs log 0 = -inf; the
clamped M-step is still the exact constrained maximizer, so EM stays monotone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..core.distributions import LOG_2PI
from ..core.validation import as_tensor as _tensor
from ..core.validation import broadcast_shape as _broadcast_shape
from ..core.validation import check_finite as _check_finite

__all__ = [
    "fit_gaussian",
    "GaussianMixture",
    "gaussian_mixture_log_prob",
    "fit_gaussian_mixture",
    "IndependentBernoulli",
    "fit_independent_bernoulli",
    "BernoulliMixture",
    "fit_bernoulli_mixture",
]

DEFAULT_EPS = 1e-3  # clamp for Bernoulli probabilities: p in [eps, 1 - eps]


# --- validation helpers --------------------------------------------------------------------------

def _check_data(x, *, dims: tuple[int, ...] = (1, 2), name: str = "x") -> torch.Tensor:
    x = _tensor(name, x)
    if x.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be {want} (examples first), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has no examples")
    _check_finite(name, x)
    return x


def _check_k(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an integer number of components, got {type(k).__name__}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of examples ({n}), got {k}")
    return k


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    return steps


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer number of samples, got {n!r}")
    return n


def _check_weights(weights: torch.Tensor, k: int) -> torch.Tensor:
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},), one per component, got {tuple(weights.shape)}")
    if (weights < 0).any() or not torch.isfinite(weights).all():
        raise ValueError("weights must be finite and non-negative")
    total = float(weights.sum())
    if abs(total - 1.0) > 1e-4:
        raise ValueError(f"weights must sum to 1, got a sum of {total:.6g}")
    return weights


def _check_probs_x(x: torch.Tensor, d: int) -> torch.Tensor:
    if x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape (N, {d}), got {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must hold binary pixels (values in [0, 1])")
    return x


def _check_eps(eps) -> float:
    if not isinstance(eps, (int, float)) or not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be a number in (0, 0.5), got {eps!r}")
    return float(eps)


# --- one Gaussian ----------------------------------------------------------------------------------

def fit_gaussian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-likelihood diagonal Gaussian: `(mu, logvar)` = (mean, log of the biased variance).

    `x` is (N,) for scalar data (then `mu` and `logvar` are 0-D) or (N, D).
    """
    x = _check_data(x)
    if x.shape[0] < 2:
        raise ValueError("x needs at least two examples to estimate a variance")
    mu = x.mean(dim=0)
    var = ((x - mu) ** 2).mean(dim=0)
    if (var <= 0).any():
        raise ValueError("x has zero variance in some dimension: the maximum-likelihood Gaussian is degenerate")
    return mu, var.log()


# --- Gaussian mixtures -----------------------------------------------------------------------------

def _component_log_probs(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mu_k, exp(logvar_k)) for every example and component: shape (..., K)."""
    if mu.dim() == 1:  # scalar data: x (...,), mu (K,)
        diff = x.unsqueeze(-1) - mu
        return -0.5 * (LOG_2PI + logvar + diff ** 2 * torch.exp(-logvar))
    diff = x.unsqueeze(-2) - mu  # x (..., D), mu (K, D) -> (..., K, D)
    return (-0.5 * (LOG_2PI + logvar + diff ** 2 * torch.exp(-logvar))).sum(dim=-1)


def gaussian_mixture_log_prob(x: torch.Tensor, weights: torch.Tensor, mu: torch.Tensor,
                              logvar: torch.Tensor) -> torch.Tensor:
    """log sum_k weights_k N(x; mu_k, exp(logvar_k)) in nats, one value per example.

    Two layouts: scalar data, `x` (N,) with `weights`, `mu`, `logvar` of shape (K,); or diagonal
    Gaussians in D dimensions, `x` (N, D) with `mu`, `logvar` (K, D) (summed over D). The sum over
    components is a `logsumexp` of log-weights plus component log-densities, so it stays finite
    far from every mode, where each exp() alone would underflow to 0.
    """
    x = _tensor("x", x)
    weights = _tensor("weights", weights, like=x)
    mu = _tensor("mu", mu, like=x)
    logvar = _tensor("logvar", logvar, like=x)
    if mu.dim() not in (1, 2):
        raise ValueError(f"mu must be (K,) for scalar data or (K, D), got shape {tuple(mu.shape)}")
    k = mu.shape[0]
    _check_weights(weights, k)
    if logvar.dim() == 0 or logvar.shape[0] != k:
        raise ValueError(f"logvar must have one row per component like mu {tuple(mu.shape)}, got {tuple(logvar.shape)}")
    _broadcast_shape(mu=mu, logvar=logvar)
    _check_finite("logvar", logvar)
    if mu.dim() == 2:
        if x.dim() == 0 or x.shape[-1] != mu.shape[1]:
            raise ValueError(f"x must have shape (..., {mu.shape[1]}) to match mu {tuple(mu.shape)}, "
                             f"got {tuple(x.shape)}")
    comp = _component_log_probs(x, mu, logvar)
    return torch.logsumexp(comp + torch.log(weights), dim=-1)


@dataclass
class GaussianMixture:
    """A mixture of diagonal Gaussians: `weights` (K,), `mu` and `logvar` (K,) or (K, D).

    `history` holds the training log-likelihood (nats per example) after each EM step, when fitted.
    """

    weights: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    history: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.mu = _tensor("mu", self.mu)
        self.weights = _check_weights(_tensor("weights", self.weights, like=self.mu), self.mu.shape[0])
        self.logvar = _tensor("logvar", self.logvar, like=self.mu)
        if self.logvar.shape != self.mu.shape:
            raise ValueError(f"logvar must have the shape of mu {tuple(self.mu.shape)}, got {tuple(self.logvar.shape)}")
        _check_finite("logvar", self.logvar)

    @property
    def k(self) -> int:
        return self.mu.shape[0]

    @property
    def num_parameters(self) -> int:
        """The number of free parameters; K - 1 weights, plus a mean and a variance per component and dimension."""
        return (self.k - 1) + 2 * self.mu.numel()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per example, in nats."""
        return gaussian_mixture_log_prob(x, self.weights, self.mu, self.logvar)

    def sample(self, n: int, generator: torch.Generator | None = None, return_components: bool = False):
        """`n` draws: pick a component by its weight, then draw from that Gaussian."""
        n = _check_n(n)
        _check_generator(generator)
        c = torch.multinomial(self.weights, n, replacement=True, generator=generator) if n else \
            torch.zeros(0, dtype=torch.long)
        eps = torch.randn((n,) + tuple(self.mu.shape[1:]), generator=generator, dtype=self.mu.dtype)
        x = self.mu[c] + torch.exp(0.5 * self.logvar[c]) * eps
        return (x, c) if return_components else x


def fit_gaussian_mixture(x: torch.Tensor, k: int, steps: int = 100, generator: torch.Generator | None = None,
                         min_var: float = 1e-6) -> GaussianMixture:
    """Fit a mixture of `k` diagonal Gaussians to `x` ((N,) or (N, D)) by expectation-maximization.

    Initialization: `k` distinct examples (chosen with `generator`) as means, the data variance
    for every component, equal weights. Each step computes the responsibilities (E-step) and
    the weighted maximum-likelihood weights, means and variances (M-step). Variances are kept
    at least `min_var` times the data variance so that no component collapses onto one point.
    The returned mixture's `history[t]` is the training log-likelihood (nats per example) after
    t steps; it never decreases. Computed in float64, returned in the dtype of `x`.
    """
    x = _check_data(x)
    n = x.shape[0]
    k = _check_k(k, n)
    steps = _check_steps(steps)
    _check_generator(generator)
    scalar = x.dim() == 1
    xd = x.to(torch.float64).reshape(n, -1)  # (N, D)
    data_var = xd.var(dim=0, unbiased=False).clamp_min(1e-12)
    floor = min_var * data_var
    idx = torch.randperm(n, generator=generator)[:k]
    mu = xd[idx].clone()
    var = data_var.expand(k, -1).clone()
    log_w = torch.full((k,), -math.log(k), dtype=torch.float64)
    history = []
    for step in range(steps + 1):
        log_joint = _component_log_probs(xd, mu, var.log()) + log_w  # (N, K)
        log_px = torch.logsumexp(log_joint, dim=1)
        history.append(float(log_px.mean()))
        if step == steps:
            break
        resp = torch.exp(log_joint - log_px[:, None])  # E-step: p(component | x)
        nk = resp.sum(dim=0).clamp_min(1e-12)  # M-step
        log_w = torch.log(nk / n)
        mu = (resp.T @ xd) / nk[:, None]
        var = torch.maximum((resp.T @ xd ** 2) / nk[:, None] - mu ** 2, floor)
    out_mu, out_logvar = mu.to(x.dtype), var.log().to(x.dtype)
    if scalar:
        out_mu, out_logvar = out_mu[:, 0], out_logvar[:, 0]
    weights = log_w.exp()
    weights = (weights / weights.sum()).to(x.dtype)
    return GaussianMixture(weights, out_mu, out_logvar, history)


# --- Bernoulli models of binary images -------------------------------------------------------------

@dataclass
class IndependentBernoulli:
    """Every pixel an independent Bernoulli: `probs` (D,). Samples ignore every correlation."""

    probs: torch.Tensor

    @property
    def num_parameters(self) -> int:
        return self.probs.numel()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per image, in nats (sum over pixels)."""
        x = _check_probs_x(_tensor("x", x), self.probs.shape[0])
        p = self.probs.to(x.dtype)
        return x @ torch.log(p) + (1 - x) @ torch.log1p(-p)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = _check_n(n)
        _check_generator(generator)
        return torch.bernoulli(self.probs.expand(n, -1), generator=generator)


def fit_independent_bernoulli(x: torch.Tensor, eps: float = DEFAULT_EPS) -> IndependentBernoulli:
    """Maximum likelihood for independent pixels: each pixel's mean, clamped to [eps, 1 - eps]."""
    x = _check_data(x, dims=(2,))
    _check_probs_x(x, x.shape[1])
    eps = _check_eps(eps)
    return IndependentBernoulli(x.mean(dim=0).clamp(eps, 1 - eps))


@dataclass
class BernoulliMixture:
    """A mixture of K independent-pixel Bernoulli models: `weights` (K,), `probs` (K, D).

    `probs[k]` is the mean image of component k (pixel probabilities, not a sample).
    `history` holds the training log-likelihood (nats per image) after each EM step.
    """

    weights: torch.Tensor
    probs: torch.Tensor
    history: list = field(default_factory=list, repr=False)

    @property
    def means(self) -> torch.Tensor:
        """The component means; each row is an image of pixel probabilities."""
        return self.probs

    @property
    def k(self) -> int:
        return self.probs.shape[0]

    @property
    def num_parameters(self) -> int:
        return (self.k - 1) + self.probs.numel()

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x | component k) for every image and component: shape (N, K), nats."""
        x = _check_probs_x(_tensor("x", x), self.probs.shape[1])
        p = self.probs.to(x.dtype)
        return x @ torch.log(p).T + (1 - x) @ torch.log1p(-p).T

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log sum_k weights_k p(x | k) per image, in nats."""
        comp = self.component_log_probs(x)
        return torch.logsumexp(comp + torch.log(self.weights.to(comp.dtype)), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(component | x) for every image: shape (N, K), rows sum to 1."""
        comp = self.component_log_probs(x) + torch.log(self.weights.to(x.dtype))
        return torch.softmax(comp, dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None, return_components: bool = False):
        """`n` binary images: pick a component by its weight, then every pixel from its probability."""
        n = _check_n(n)
        _check_generator(generator)
        c = torch.multinomial(self.weights, n, replacement=True, generator=generator) if n else \
            torch.zeros(0, dtype=torch.long)
        x = torch.bernoulli(self.probs[c], generator=generator)
        return (x, c) if return_components else x


def fit_bernoulli_mixture(x: torch.Tensor, k: int, steps: int = 30, generator: torch.Generator | None = None,
                          eps: float = DEFAULT_EPS) -> BernoulliMixture:
    """Fit a mixture of `k` independent-pixel Bernoulli models to binary images `x` (N, D) by EM.

    Initialization: each component's probabilities are the average of the overall pixel means
    and one random training image (chosen with `generator`), clamped; equal weights. The M-step
    clamps probabilities to [eps, 1 - eps], which is the exact maximizer under that constraint,
    so `history` (training log-likelihood in nats per image after each step) never decreases.
    Computed in float64, returned in the dtype of `x`.
    """
    x = _check_data(x, dims=(2,))
    _check_probs_x(x, x.shape[1])
    n = x.shape[0]
    k = _check_k(k, n)
    steps = _check_steps(steps)
    _check_generator(generator)
    eps = _check_eps(eps)
    xd = x.to(torch.float64)
    idx = torch.randperm(n, generator=generator)[:k]
    probs = (0.5 * xd.mean(dim=0) + 0.5 * xd[idx]).clamp(eps, 1 - eps)
    log_w = torch.full((k,), -math.log(k), dtype=torch.float64)
    history = []
    for step in range(steps + 1):
        log_joint = xd @ torch.log(probs).T + (1 - xd) @ torch.log1p(-probs).T + log_w
        log_px = torch.logsumexp(log_joint, dim=1)
        history.append(float(log_px.mean()))
        if step == steps:
            break
        resp = torch.exp(log_joint - log_px[:, None])
        nk = resp.sum(dim=0).clamp_min(1e-12)
        log_w = torch.log(nk / n)
        probs = ((resp.T @ xd) / nk[:, None]).clamp(eps, 1 - eps)
    weights = log_w.exp()
    return BernoulliMixture((weights / weights.sum()).to(x.dtype), probs.to(x.dtype), history)
