"""The variational autoencoder: `VAE` (MLP encoder and decoder) and `LinearVAE` (whose optimum is PPCA).

Taught in: chapter 8 (the VAE, trained on digits; the linear VAE against PPCA). The VAE is assembled
from the pieces of chapters 5-7: the encoder is the amortized q(z | x) of chapter 6, the decoder
p(x | z) a latent variable model of chapter 2, the loss the negative ELBO of chapter 5 with the
reparameterized sample of chapter 7.

Both implement the model interface of Part II (`vae_course.inference.interface`):
``encode(x) -> (mu, logvar)``, ``decode(z)``, ``log_px_given_z(x, z) -> (..., N)`` in nats, with
the prior N(0, I). The loss convention, stated once here and in every chapter that prints one::

    model.loss(x) = - mean over the batch of [ log p(x_n | z_n) - KL(q(z | x_n) || N(0, I)) ]

with one reparameterized draw z_n ~ q(z | x_n) per example, log p(x | z) SUMMED over the data
dimensions and the KL in closed form: the negative ELBO in nats per example, averaged over the
batch (not per pixel, and not summed over the batch).

Likelihoods:

- ``"bernoulli"``: the decoder returns logits; log p(x | z) = -BCE-with-logits summed over pixels.
  On grayscale pixels in [0, 1] this is the common practice but not a normalised density (it is
  one on binarized pixels); chapter 8 says what that means for the numbers.
- ``"gaussian"``: the decoder returns ``(mean, logvar)``. With ``sigma2`` given the variance is
  fixed and shared by all pixels; with ``sigma2=None`` each pixel learns its own variance,
  ``var_floor + softplus(raw)``: without the floor the constant border pixels of MNIST would drive
  their variance to zero and the likelihood to infinity (chapter 3, factor analysis).

Weights are initialised as PyTorch's `nn.Linear` does (uniform in +-1/sqrt(fan_in)), drawn from
`generator` when one is given, so a model is reproducible from a seed without touching torch's
global generator.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.distributions import LOG_2PI, monte_carlo_elbo
from ..core.validation import check_choice, check_data, check_generator, check_int, check_latents, check_positive
from .linear_gaussian import PPCA

__all__ = ["VAE", "LinearVAE"]

LIKELIHOODS = ("bernoulli", "gaussian")


def _init_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """PyTorch's default distribution for a Linear layer (uniform +-1/sqrt(fan_in)), from `generator`."""
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
        if layer.bias is not None:
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class _LatentModel(nn.Module):
    """What `VAE` and `LinearVAE` share: input checks, the loss, sampling and reconstruction."""

    data_dim: int
    latent_dim: int
    likelihood: str

    def check_input(self, x, name: str = "x") -> torch.Tensor:
        """`x` as data for this model: (N, data_dim), floating point, finite, in [0, 1] for Bernoulli.

        Raises TypeError/ValueError naming `name`; returns `x` in the model's dtype and on its device.
        """
        x = check_data(name, x, dim=self.data_dim, unit_interval=self.likelihood == "bernoulli")
        return x.to(dtype=self._dtype(), device=self._device())

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _latents(self, z, name: str = "z", rows: int | None = None) -> torch.Tensor:
        return check_latents(name, z, self.latent_dim, rows=rows)

    def _log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats, summed over the data dimensions; x (N, d) and z (..., N, k) give (..., N)."""
        x = self.check_input(x)
        return self._log_px_given_z(x, self._latents(z, rows=x.shape[0]))

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mu, logvar)` of q(z | x) = N(mu, diag(exp(logvar))), each (N, latent_dim).

        `x` is checked first (`check_input`: its width, dtype, finiteness and, for a Bernoulli
        likelihood, the range [0, 1]); the training loop calls the network without the checks.
        """
        return self._encode(self.check_input(x))

    def log_pz(self, z: torch.Tensor) -> torch.Tensor:
        """The prior log N(z; 0, I) in nats, summed over the latent dimensions: z (..., k) gives (...)."""
        z = self._latents(z)
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def batch_loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`loss` without any checks, for training loops that validate the data once (`vc.fit`)."""
        mu, logvar = self._encode(x)
        elbo, _, _ = monte_carlo_elbo(self._log_px_given_z, x, mu, logvar, 1, generator)
        return -elbo.mean()

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The negative ELBO in nats per example, averaged over the rows of `x` (one draw of z per row).

        log p(x | z) is summed over the data dimensions and the KL to N(0, I) is closed-form; see
        the module docstring. Differentiable; `generator` draws the noise of the sample.
        """
        check_generator(generator)
        return self.batch_loss(self.check_input(x), generator)

    @torch.no_grad()
    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`num_samples` images decoded from z ~ N(0, I): the mean of p(x | z) (probabilities for Bernoulli).

        What image grids show; not a draw of pixel noise. `generator` draws z (on the model's device).
        """
        num_samples = check_int("num_samples", num_samples, low=1)
        check_generator(generator)
        z = torch.randn(num_samples, self.latent_dim, generator=generator, dtype=self._dtype(), device=self._device())
        return self.mean_image(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the encoder's mean: the mean of p(x | z = mu(x)), (N, d)."""
        mu, _ = self._encode(self.check_input(x))
        return self.mean_image(mu)


class VAE(_LatentModel):
    """A VAE with one hidden layer of ReLU units in the encoder and in the decoder.

    ``VAE(data_dim, latent_dim, hidden_dim, likelihood="bernoulli")``; for ``likelihood="gaussian"``,
    ``sigma2`` fixes one shared variance, or ``sigma2=None`` learns one variance per pixel bounded
    below by ``var_floor``. `generator` draws the initial weights (torch's global generator when
    None). With data_dim=784, latent_dim=20, hidden_dim=400 it is the network of the PyTorch
    examples' VAE.
    """

    def __init__(self, data_dim: int = 784, latent_dim: int = 20, hidden_dim: int = 400,
                 likelihood: str = "bernoulli", *, sigma2: float | None = None, var_floor: float = 1e-3,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.data_dim = check_int("data_dim", data_dim, low=1)
        self.latent_dim = check_int("latent_dim", latent_dim, low=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
        self.likelihood = check_choice("likelihood", likelihood, LIKELIHOODS)
        check_generator(generator)
        if self.likelihood == "bernoulli" and sigma2 is not None:
            raise ValueError("sigma2 applies to likelihood='gaussian' only; a Bernoulli likelihood has no variance")
        self.var_floor = check_positive("var_floor", var_floor)
        self.fc1 = nn.Linear(self.data_dim, self.hidden_dim)
        self.fc_mu = nn.Linear(self.hidden_dim, self.latent_dim)
        self.fc_logvar = nn.Linear(self.hidden_dim, self.latent_dim)
        self.fc3 = nn.Linear(self.latent_dim, self.hidden_dim)
        self.fc4 = nn.Linear(self.hidden_dim, self.data_dim)
        for layer in (self.fc1, self.fc_mu, self.fc_logvar, self.fc3, self.fc4):
            _init_linear(layer, generator)
        self.sigma2 = None if sigma2 is None else check_positive("sigma2", sigma2)
        if self.likelihood == "gaussian" and self.sigma2 is None:
            # softplus(raw) + var_floor starts at a variance of 0.1 + var_floor for every pixel
            self.raw_var = nn.Parameter(torch.full((self.data_dim,), math.log(math.expm1(0.1))))

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder network: `(mu, logvar)`, each (N, latent_dim), for checked rows `x`."""
        h = F.relu(self.fc1(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor):
        """The parameters of p(x | z): logits (..., d) for Bernoulli, `(mean, logvar)` for Gaussian."""
        out = self.fc4(F.relu(self.fc3(z)))
        if self.likelihood == "bernoulli":
            return out
        return out, self._pixel_logvar().expand_as(out)

    def _pixel_logvar(self) -> torch.Tensor:
        if self.sigma2 is not None:
            return torch.tensor(math.log(self.sigma2), dtype=self._dtype(), device=self._device())
        return torch.log(self.var_floor + F.softplus(self.raw_var))

    def _log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "bernoulli":
            logits = self.decode(z)
            return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        mean, logvar = self.decode(z)
        return -0.5 * ((x - mean).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)

    def mean_image(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z): sigmoid(logits) for Bernoulli, the mean for Gaussian; z (..., k) -> (..., d)."""
        out = self.decode(self._latents(z))
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out[0]

    def extra_repr(self) -> str:
        noise = "" if self.likelihood == "bernoulli" else (
            f", sigma2={self.sigma2:g}" if self.sigma2 is not None else f", learned variance >= {self.var_floor:g}")
        return (f"data_dim={self.data_dim}, latent_dim={self.latent_dim}, hidden_dim={self.hidden_dim}, "
                f"likelihood={self.likelihood!r}{noise}")


class LinearVAE(_LatentModel):
    """A linear VAE: q(z | x) = N(E x + e, diag(exp(logvar))), p(x | z) = N(W z + b, sigma2 I).

    The encoder's mean is linear in x and its variances are one learned vector shared by every x
    (the exact posterior covariance of a linear-Gaussian model does not depend on x, chapters 3
    and 6). The decoder is PPCA's, with one learned noise variance. All weights start random
    (never at the PPCA solution): the encoder and W as `nn.Linear` layers, b = 0, sigma2 = 1,
    logvar = 0. Trained on the ELBO alone, its optimum is the PPCA maximum-likelihood fit
    (chapter 8). `log_prob(x)` is its exact marginal log p(x), in closed form.
    """

    likelihood = "gaussian"

    def __init__(self, data_dim: int, latent_dim: int, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.data_dim = check_int("data_dim", data_dim, low=1)
        self.latent_dim = check_int("latent_dim", latent_dim, low=1)
        check_generator(generator)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        enc = nn.Linear(self.data_dim, self.latent_dim, dtype=dtype)
        dec = nn.Linear(self.latent_dim, self.data_dim, bias=False, dtype=dtype)
        _init_linear(enc, generator)
        _init_linear(dec, generator)
        self.encoder = enc
        self.enc_logvar = nn.Parameter(torch.zeros(self.latent_dim, dtype=dtype))
        self.W = nn.Parameter(dec.weight.detach().clone())  # (d, k)
        self.b = nn.Parameter(torch.zeros(self.data_dim, dtype=dtype))
        self.log_sigma2 = nn.Parameter(torch.zeros((), dtype=dtype))

    @property
    def sigma2(self) -> torch.Tensor:
        return torch.exp(self.log_sigma2)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mu, logvar)`, each (N, latent_dim): mu = E x + e, logvar the same learned vector for every row."""
        mu = self.encoder(x)
        return mu, self.enc_logvar.expand_as(mu)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mean, logvar)` of p(x | z) = N(W z + b, sigma2 I); z (..., k) gives each (..., d)."""
        mean = z @ self.W.T + self.b
        return mean, self.log_sigma2.expand_as(mean)

    def _log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = z @ self.W.T + self.b
        sq = (x - mean).pow(2).sum(-1)
        return -0.5 * (sq * torch.exp(-self.log_sigma2) + self.data_dim * (self.log_sigma2 + LOG_2PI))

    def mean_image(self, z: torch.Tensor) -> torch.Tensor:
        """The mean W z + b of p(x | z); z (..., k) -> (..., d)."""
        return self.decode(self._latents(z))[0]

    def to_ppca(self) -> PPCA:
        """The decoder as a `vc.PPCA` (detached copies of W, b, sigma2): its exact log_prob, posterior, ..."""
        return PPCA(self.W.detach().clone(), self.b.detach().clone(), self.sigma2.detach().clone())

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The exact marginal log p(x) = log N(x; b, W W^T + sigma2 I) in nats, (N,), by the PPCA formula."""
        return self.to_ppca().log_prob(self.check_input(x))

    def extra_repr(self) -> str:
        return f"data_dim={self.data_dim}, latent_dim={self.latent_dim}"

