"""Simple density models fitted by maximum likelihood: a Gaussian, Gaussian mixtures, Bernoulli pixels.

Taught in: chapter 1. These are the baselines the rest of the course improves on:

- `DiagonalGaussian`, `fit_gaussian`: the closed-form maximum-likelihood Gaussian (mean and
  biased variance).
- `GaussianMixture`, `gaussian_mixture_log_prob`, `fit_gaussian_mixture`: a mixture of diagonal
  Gaussians, its log-density by logsumexp (stable far from every mode) and its EM fit.
- `IndependentBernoulli`, `fit_independent_bernoulli`: one Bernoulli per pixel.
- `BernoulliMixture`, `fit_bernoulli_mixture`: `num_components` "prototype" images of pixel
  probabilities, fitted by EM. The component index is a discrete latent variable; chapter 2
  makes it continuous.

All log-densities are in nats, one value per example (summed over the data dimensions), and
every model has `log_prob(x)` and `sample(num_samples, generator=None, return_latents=False)`
(for a mixture the latent is the component index). The Gaussian log-density is
`core.distributions.gaussian_log_prob`. The Bernoulli one is `core.distributions.bernoulli_log_prob`
written as what it is, an affine function of x, log p(x) = x . logit(p) + sum log(1 - p), so that
K components cost one matrix product instead of K elementwise passes over the images.

Both mixtures are fitted by the same EM routine: the E-step computes responsibilities by
logsumexp, the M-step is the weighted maximum likelihood of each family. EM never decreases
the training log-likelihood; the `history` of a fit records it (mean over examples, nats per
example), `history[0]` at the initialisation, before any step. Probabilities of the Bernoulli
fits are clamped to [eps, 1 - eps] (default eps = 1e-3) so that no pixel ever costs log 0; the
clamped M-step is the exact constrained maximiser, so EM stays monotone. The EM fits compute
in float64; every fit returns tensors in the dtype and on the device of `x`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..core.distributions import gaussian_log_prob
from ..core.validation import (
    broadcast_shape,
    check_bool,
    check_data,
    check_generator,
    check_int,
    check_real,
    check_tensor,
)

__all__ = [
    "DiagonalGaussian",
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


# --- shared checks ---------------------------------------------------------------------------------

def _check_samples(x, *, scalar_ok: bool, name: str = "x") -> torch.Tensor:
    """Examples first: (N,) scalar data (when `scalar_ok`) or (N, D); finite, at least one example."""
    if scalar_ok:
        x = check_tensor(name, x, ndim=(1, 2), what="of shape (N,) for numbers or (N, D) (examples first)")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must have at least one example, got shape {tuple(x.shape)}")
        return x
    return check_data(name, x)


def _check_num_samples(num_samples) -> int:
    return check_int("num_samples", num_samples, low=0)


def _check_weights(weights, k: int, like: torch.Tensor) -> torch.Tensor:
    weights = check_tensor("weights", weights, shape=(k,), what="(one mixture weight per component)")
    if bool((weights < 0).any()):
        raise ValueError(f"weights must be non-negative, got a smallest weight of {float(weights.min()):g}")
    total = float(weights.sum())
    if abs(total - 1.0) > 1e-4:
        raise ValueError(f"weights must sum to 1, got a sum of {total:.6g}")
    return weights.to(dtype=like.dtype, device=like.device)


def _check_probs(probs, shape: tuple, what: str) -> torch.Tensor:
    probs = check_tensor("probs", probs, shape=shape, what=what)
    if probs.numel() and not bool(((probs > 0) & (probs < 1)).all()):
        raise ValueError(f"probs must hold probabilities strictly between 0 and 1 (a 0 or 1 gives log 0 = -inf "
                         f"for some image), got values in [{float(probs.min()):g}, {float(probs.max()):g}]")
    return probs


def _check_eps(eps) -> float:
    return check_real("eps", eps, low=0.0, high=0.5, low_open=True, high_open=True)


def _draw_components(weights: torch.Tensor, num_samples: int, generator) -> torch.Tensor:
    if num_samples == 0:
        return torch.zeros(0, dtype=torch.long, device=weights.device)
    return torch.multinomial(weights, num_samples, replacement=True, generator=generator)


# --- the two families' log-densities, one each --------------------------------------------------------

def _gaussian_component_log_probs(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x_n; mu_k, diag(exp(logvar_k))) for every example and component, (..., K), by `gaussian_log_prob`.

    Scalar data: x (...,) with mu, logvar (K,). Vectors: x (..., D) with mu, logvar (K, D).
    """
    if mu.dim() == 1:
        return gaussian_log_prob(x[..., None, None], mu[:, None], logvar[:, None])
    return gaussian_log_prob(x[..., None, :], mu, logvar)


def _bernoulli_component_log_probs(x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """sum_d [x_d log p_kd + (1 - x_d) log(1 - p_kd)] for x (N, D) and probs (K, D): (N, K), nats.

    The Bernoulli log-density of `bernoulli_log_prob(x, logit(p))`, written as the affine
    function of x it is, so that all K components take one matrix product.
    """
    p = probs.to(x.dtype)
    return x @ torch.log(p).T + (1 - x) @ torch.log1p(-p).T


# --- one Gaussian ----------------------------------------------------------------------------------

@dataclass
class DiagonalGaussian:
    """A Gaussian with diagonal covariance: `mu` and `logvar`, both 0-D (numbers) or (D,).

    Taught in: chapter 1 (the closed-form maximum-likelihood fit, `fit_gaussian`).
    """

    mu: torch.Tensor
    logvar: torch.Tensor

    def __post_init__(self):
        self.mu = check_tensor("mu", self.mu, ndim=(0, 1), what="(0-D for numbers or (D,))")
        self.logvar = check_tensor("logvar", self.logvar, shape=tuple(self.mu.shape),
                                   what=f"(the shape of mu, {tuple(self.mu.shape)})")

    @property
    def num_parameters(self) -> int:
        """A mean and a variance per dimension."""
        return 2 * self.mu.numel()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; mu, diag(exp(logvar))) per example, in nats: x (N,) for 0-D mu, else (N, D); gives (N,)."""
        if self.mu.dim() == 0:
            x = check_tensor("x", x, ndim=1, what="of shape (N,) (the model is over numbers)")
            return gaussian_log_prob(x[:, None], self.mu[None], self.logvar[None])
        x = check_data("x", x, dim=self.mu.shape[0])
        return gaussian_log_prob(x, self.mu, self.logvar)

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`num_samples` draws mu + exp(logvar / 2) * eps: (num_samples,) + mu.shape."""
        num_samples = _check_num_samples(num_samples)
        check_generator(generator)
        eps = torch.randn((num_samples,) + tuple(self.mu.shape), generator=generator, dtype=self.mu.dtype,
                          device=self.mu.device)
        return self.mu + torch.exp(0.5 * self.logvar) * eps


def fit_gaussian(x: torch.Tensor) -> DiagonalGaussian:
    """The maximum-likelihood diagonal Gaussian: `mu` = the mean, `logvar` = log of the biased variance.

    `x` is (N,) for numbers (then `mu` and `logvar` are 0-D) or (N, D); N >= 2. Returned in x's dtype.
    """
    x = _check_samples(x, scalar_ok=True)
    if x.shape[0] < 2:
        raise ValueError(f"x must have at least two examples to estimate a variance, got {x.shape[0]}")
    mu = x.mean(dim=0)
    var = ((x - mu) ** 2).mean(dim=0)
    if bool((var <= 0).any()):
        raise ValueError("x has zero variance in some dimension: the maximum-likelihood Gaussian is degenerate")
    return DiagonalGaussian(mu, var.log())


# --- the EM routine shared by both mixtures --------------------------------------------------------

def _em(component_log_probs, m_step, params, num_components: int, n: int, steps: int, dtype, device):
    """Expectation-maximisation for a mixture; returns `(weights, params, history)`.

    `component_log_probs(params)` gives log p(x_n | component k), (N, K); `m_step(resp, nk)` gives
    the new params from the responsibilities resp (N, K) and their column sums nk (K,).
    `history[t]` is the mean log-likelihood after t steps, `history[0]` at the initialisation.
    """
    log_w = torch.full((num_components,), -math.log(num_components), dtype=dtype, device=device)
    history = []
    for step in range(steps + 1):
        log_joint = component_log_probs(params) + log_w  # (N, K)
        log_px = torch.logsumexp(log_joint, dim=1)
        history.append(float(log_px.mean()))
        if step == steps:
            break
        resp = torch.exp(log_joint - log_px[:, None])  # E-step: p(component | x)
        nk = resp.sum(dim=0).clamp_min(1e-12)
        log_w = torch.log(nk / n)  # M-step: the weights, then each family's parameters
        params = m_step(resp, nk)
    weights = log_w.exp()
    return weights / weights.sum(), params, history


# --- Gaussian mixtures -----------------------------------------------------------------------------

def gaussian_mixture_log_prob(x: torch.Tensor, weights: torch.Tensor, mu: torch.Tensor,
                              logvar: torch.Tensor) -> torch.Tensor:
    """log sum_k weights_k N(x; mu_k, exp(logvar_k)) in nats, one value per example.

    Two layouts: scalar data, `x` (N,) with `weights`, `mu`, `logvar` of shape (K,); or diagonal
    Gaussians in D dimensions, `x` (N, D) with `mu`, `logvar` (K, D) (summed over D). The sum over
    components is a `logsumexp` of log-weights plus component log-densities, so it stays finite
    far from every mode, where each exp() alone would underflow to 0.
    """
    x = check_tensor("x", x, what="of shape (N,) or (N, D)")
    mu = check_tensor("mu", mu, ndim=(1, 2), what="(K,) for scalar data or (K, D)")
    k = mu.shape[0]
    weights = _check_weights(weights, k, like=x)
    logvar = check_tensor("logvar", logvar, what=f"(one row per component, like mu {tuple(mu.shape)})")
    if logvar.dim() == 0 or logvar.shape[0] != k:
        raise ValueError(f"logvar must have one row per component like mu {tuple(mu.shape)}, got {tuple(logvar.shape)}")
    broadcast_shape(mu=mu, logvar=logvar)
    if mu.dim() == 2 and (x.dim() == 0 or x.shape[-1] != mu.shape[1]):
        raise ValueError(f"x must have shape (..., {mu.shape[1]}) to match mu {tuple(mu.shape)}, got {tuple(x.shape)}")
    comp = _gaussian_component_log_probs(x, mu.to(x), logvar.to(x))
    return torch.logsumexp(comp + torch.log(weights), dim=-1)


@dataclass
class GaussianMixture:
    """A mixture of diagonal Gaussians: `weights` (K,), `mu` and `logvar` (K,) for numbers or (K, D).

    `history` holds the training log-likelihood (nats per example) when fitted: `history[0]` at
    the initialisation (before any EM step), `history[t]` after t steps.
    """

    weights: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    history: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.mu = check_tensor("mu", self.mu, ndim=(1, 2), what="(K,) for scalar data or (K, D)")
        self.weights = _check_weights(self.weights, self.mu.shape[0], like=self.mu)
        self.logvar = check_tensor("logvar", self.logvar, shape=tuple(self.mu.shape),
                                   what=f"(the shape of mu, {tuple(self.mu.shape)})").to(self.mu)

    @property
    def num_components(self) -> int:
        """K, the number of components."""
        return self.mu.shape[0]

    @property
    def num_parameters(self) -> int:
        """K - 1 free weights, plus a mean and a variance per component and dimension."""
        return (self.num_components - 1) + 2 * self.mu.numel()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per example, in nats."""
        return gaussian_mixture_log_prob(x, self.weights, self.mu, self.logvar)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, return_latents: bool = False):
        """`num_samples` draws: pick a component by its weight, then draw from that Gaussian.

        Returns x ((num_samples,) or (num_samples, D)), or `(x, c)` with the component indices c
        (num_samples,) when `return_latents`. Components are drawn first, then the noise.
        """
        num_samples = _check_num_samples(num_samples)
        check_generator(generator)
        check_bool("return_latents", return_latents)
        c = _draw_components(self.weights, num_samples, generator)
        eps = torch.randn((num_samples,) + tuple(self.mu.shape[1:]), generator=generator, dtype=self.mu.dtype,
                          device=self.mu.device)
        x = self.mu[c] + torch.exp(0.5 * self.logvar[c]) * eps
        return (x, c) if return_latents else x


def fit_gaussian_mixture(x: torch.Tensor, num_components: int, steps: int = 100,
                         generator: torch.Generator | None = None, min_var: float = 1e-6) -> GaussianMixture:
    """Fit a mixture of `num_components` diagonal Gaussians to `x` ((N,) or (N, D)) by EM.

    Initialisation: `num_components` distinct examples (chosen with `generator`) as means, the
    data variance for every component, equal weights. Each step computes the responsibilities
    (E-step) and the weighted maximum-likelihood weights, means and variances (M-step).
    Variances are kept at least `min_var` times the data variance so that no component collapses
    onto one point. The mixture's `history[0]` is the training log-likelihood (nats per example)
    at the initialisation, before any step, and `history[t]` after t steps; it never decreases.
    Computed in float64, returned in the dtype and on the device of `x`.
    """
    x = _check_samples(x, scalar_ok=True)
    n = x.shape[0]
    k = check_int("num_components", num_components, low=1, high=n)
    steps = check_int("steps", steps, low=0)
    check_generator(generator)
    min_var = check_real("min_var", min_var, low=0.0, low_open=True)
    scalar = x.dim() == 1
    xd = x.detach().to(torch.float64).reshape(n, -1)  # (N, D)
    data_var = xd.var(dim=0, unbiased=False).clamp_min(1e-12)
    floor = min_var * data_var
    idx = torch.randperm(n, generator=generator)[:k].to(x.device)
    init = (xd[idx].clone(), data_var.expand(k, -1).clone())

    def component_log_probs(params):
        mu, var = params
        return _gaussian_component_log_probs(xd, mu, var.log())

    def m_step(resp, nk):
        mu = (resp.T @ xd) / nk[:, None]
        return mu, torch.maximum((resp.T @ xd ** 2) / nk[:, None] - mu ** 2, floor)

    weights, (mu, var), history = _em(component_log_probs, m_step, init, k, n, steps, torch.float64, x.device)
    out_mu, out_logvar = mu.to(x.dtype), var.log().to(x.dtype)
    if scalar:
        out_mu, out_logvar = out_mu[:, 0], out_logvar[:, 0]
    return GaussianMixture(weights.to(x.dtype), out_mu, out_logvar, history)


# --- Bernoulli models of binary images -------------------------------------------------------------

@dataclass
class IndependentBernoulli:
    """Every pixel an independent Bernoulli: `probs` (D,), each strictly in (0, 1). Samples ignore every correlation."""

    probs: torch.Tensor

    def __post_init__(self):
        self.probs = _check_probs(self.probs, (None,), "of shape (D,) (one probability per pixel)")

    @property
    def num_parameters(self) -> int:
        return self.probs.numel()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per image, in nats (sum over pixels): x (N, D) gives (N,)."""
        x = check_data("x", x, dim=self.probs.shape[0], unit_interval=True)
        return _bernoulli_component_log_probs(x, self.probs[None])[:, 0]

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`num_samples` binary images (num_samples, D), every pixel drawn from its probability."""
        num_samples = _check_num_samples(num_samples)
        check_generator(generator)
        return torch.bernoulli(self.probs.expand(num_samples, -1), generator=generator)


def fit_independent_bernoulli(x: torch.Tensor, eps: float = DEFAULT_EPS) -> IndependentBernoulli:
    """Maximum likelihood for independent pixels: each pixel's mean over `x` (N, D), clamped to [eps, 1 - eps]."""
    x = check_data("x", x, unit_interval=True)
    eps = _check_eps(eps)
    return IndependentBernoulli(x.mean(dim=0).clamp(eps, 1 - eps))


@dataclass
class BernoulliMixture:
    """A mixture of K independent-pixel Bernoulli models: `weights` (K,), `probs` (K, D) strictly in (0, 1).

    `probs[k]` is the mean image of component k (pixel probabilities, not a sample). `history`
    holds the training log-likelihood (nats per image) when fitted: `history[0]` at the
    initialisation (before any EM step), `history[t]` after t steps.
    """

    weights: torch.Tensor
    probs: torch.Tensor
    history: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.probs = _check_probs(self.probs, (None, None), "of shape (K, D) (one probability image per component)")
        self.weights = _check_weights(self.weights, self.probs.shape[0], like=self.probs)

    @property
    def means(self) -> torch.Tensor:
        """The component means; each row is an image of pixel probabilities."""
        return self.probs

    @property
    def num_components(self) -> int:
        """K, the number of components."""
        return self.probs.shape[0]

    @property
    def num_parameters(self) -> int:
        return (self.num_components - 1) + self.probs.numel()

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x | component k) for every image and component: shape (N, K), nats."""
        x = check_data("x", x, dim=self.probs.shape[1], unit_interval=True)
        return _bernoulli_component_log_probs(x, self.probs)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log sum_k weights_k p(x | k) per image, in nats."""
        comp = self.component_log_probs(x)
        return torch.logsumexp(comp + torch.log(self.weights.to(comp.dtype)), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(component | x) for every image: shape (N, K), rows sum to 1."""
        comp = self.component_log_probs(x)
        return torch.softmax(comp + torch.log(self.weights.to(comp.dtype)), dim=1)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, return_latents: bool = False):
        """`num_samples` binary images: pick a component by its weight, then every pixel from its probability.

        Returns x (num_samples, D), or `(x, c)` with the component indices c (num_samples,) when
        `return_latents`.
        """
        num_samples = _check_num_samples(num_samples)
        check_generator(generator)
        check_bool("return_latents", return_latents)
        c = _draw_components(self.weights, num_samples, generator)
        x = torch.bernoulli(self.probs[c], generator=generator)
        return (x, c) if return_latents else x


def fit_bernoulli_mixture(x: torch.Tensor, num_components: int, steps: int = 30,
                          generator: torch.Generator | None = None, eps: float = DEFAULT_EPS) -> BernoulliMixture:
    """Fit a mixture of `num_components` independent-pixel Bernoulli models to images `x` (N, D) by EM.

    Initialisation: each component's probabilities are the average of the overall pixel means
    and one random training image (chosen with `generator`), clamped; equal weights. The M-step
    clamps probabilities to [eps, 1 - eps], the exact maximiser under that constraint, so
    `history` (training log-likelihood in nats per image; `history[0]` at the initialisation,
    before any step) never decreases. Computed in float64, returned in the dtype and on the
    device of `x`.
    """
    x = check_data("x", x, unit_interval=True)
    n = x.shape[0]
    k = check_int("num_components", num_components, low=1, high=n)
    steps = check_int("steps", steps, low=0)
    check_generator(generator)
    eps = _check_eps(eps)
    xd = x.detach().to(torch.float64)
    idx = torch.randperm(n, generator=generator)[:k].to(x.device)
    init = (0.5 * xd.mean(dim=0) + 0.5 * xd[idx]).clamp(eps, 1 - eps)

    def m_step(resp, nk):
        return ((resp.T @ xd) / nk[:, None]).clamp(eps, 1 - eps)

    weights, probs, history = _em(lambda probs: _bernoulli_component_log_probs(xd, probs), m_step, init, k, n,
                                  steps, torch.float64, x.device)
    return BernoulliMixture(weights.to(x.dtype), probs.to(x.dtype), history)
