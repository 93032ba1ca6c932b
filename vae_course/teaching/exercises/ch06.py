"""Checkers for chapter 6, Amortization.

Taught in: chapter 6. Exercises:

- `inference_gaps(log_px, elbo_best, elbo_encoder)`: the pair ``(approximation, amortization)``,
  each (N,) in nats: log p(x) - ELBO(best q per point), and ELBO(best q) - ELBO(encoder's q)
  (Cremer, Li and Duvenaud, 2018).
- `linear_encoder(W, b, psi)`: ``(weight, bias, logvar)`` of the linear encoder
  ``mu = x @ weight.T + bias`` (weight (k, d), bias (k,)) with the constant ``logvar`` (k,) that
  gives the best diagonal q of the linear-Gaussian model z ~ N(0, I), x | z ~ N(W z + b, diag(psi)).

The expected encoder comes from conditioning the joint Gaussian of (z, x) (the gain W^T C^{-1}
with C = W W^T + diag(psi)) and conditional variances from a plain loop, not from the
package's reference, which uses the posterior precision.
"""
from __future__ import annotations

import torch

from ...inference import inference_gaps, linear_encoder
from ._core import Failure, call, expect_tensor, register
from ._expect import conditional_variances, expect_value, hinted

CHAPTER = "06_amortization"
F64 = torch.float64

HINTS: dict[str, dict[str, str]] = {
    "inference_gaps": {
        "single_number": "return one value of each gap per example, shape (N,): average them afterwards.",
        "swapped": "the two gaps are swapped: the approximation gap compares the best q with log p(x); the "
                   "amortization gap compares the encoder's q with the best q.",
        "sign_flip": "the gaps have the wrong sign: log p(x) >= ELBO(best q) >= ELBO(encoder), so both gaps "
                     "are >= 0.",
        "total_as_amortization": "that amortization gap is the whole inference gap log p(x) - ELBO(encoder): "
                                 "subtract the best q's ELBO, not log p(x).",
        "total_as_approximation": "that approximation gap is the whole inference gap: the approximation gap "
                                  "uses the best q's ELBO, not the encoder's.",
    },
    "linear_encoder": {
        "forward_kl_logvar": "logvar holds the log of diag(posterior covariance), the forward-KL answer: the "
                             "best diagonal q has the variances 1 / diag(posterior precision).",
        "precision_not_inverted": "logvar is the log of the posterior precisions: the variances are their "
                                  "inverses.",
        "gain_without_inverse": "the weight lacks the inverse of the posterior precision: it is "
                                "G^{-1} W^T diag(psi)^{-1} with G = I + W^T diag(psi)^{-1} W.",
        "pca_projection": "that weight is the pseudo-inverse of W, the noise-free (PCA) projection: the "
                          "posterior mean shrinks towards 0 because of the noise psi and the prior.",
        "bias_missing": "the bias is missing: the encoder must subtract the offset b first, so bias = -weight @ b.",
        "bias_sign": "the bias has the wrong sign: mu = weight @ (x - b), so bias = -weight @ b.",
    },
}


def _pair(out, names: tuple[str, ...], where: str):
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = type(out).__name__ + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        raise Failure(f"return a tuple ({', '.join(names)}) of {len(names)} torch.Tensor objects, got {got}, {where}.")
    return tuple(out)


# --- exercise: inference_gaps ----------------------------------------------------------------------

def _gap_cases():
    g = torch.Generator().manual_seed(61)
    for n, dtype in ((6, F64), (5, torch.float32)):
        log_px = -50 + 10 * torch.randn(n, generator=g, dtype=dtype)
        best = log_px - torch.rand(n, generator=g, dtype=dtype) * 3 - 0.1
        enc = best - torch.rand(n, generator=g, dtype=dtype) * 2 - 0.2
        yield f"log_px, elbo_best, elbo_encoder of shape ({n},) in {dtype}", log_px, best, enc


@register("inference_gaps", chapter=CHAPTER, reference=inference_gaps)
def check_inference_gaps(answer):
    hints = HINTS["inference_gaps"]
    for where, log_px, best, enc in _gap_cases():
        where = f"for {where}"
        approx, amort = _pair(call(answer, log_px, best, enc, where=where), ("approximation", "amortization"), where)
        n = log_px.shape[0]
        if any(isinstance(t, torch.Tensor) and t.dim() == 0 for t in (approx, amort)):
            raise hinted(hints, "single_number", f"a gap is a single number {where}; expected shape ({n},).")
        lp, b, e = (t.to(F64) for t in (log_px, best, enc))
        right_approx, right_amort = lp - b, b - e
        for name, out, right, mistakes in (
            ("the approximation gap", approx, right_approx,
             {"swapped": right_amort, "sign_flip": -right_approx, "total_as_approximation": lp - e}),
            ("the amortization gap", amort, right_amort,
             {"swapped": right_approx, "sign_flip": -right_amort, "total_as_amortization": lp - e}),
        ):
            expect_tensor(out, shape=(n,), dtype=log_px.dtype, where=where, name=name)
            expect_value(out, right, mistakes, hints, where=where, name=name, rtol=1e-5, atol=1e-4)
    return "both gaps per example, in nats; they add up to log p(x) - ELBO(encoder)."


# --- exercise: linear_encoder -----------------------------------------------------------------------

def _encoder_cases():
    g = torch.Generator().manual_seed(62)
    yield ("W (8, 5), b (8,), psi (8,) in float64", torch.randn(8, 5, generator=g, dtype=F64),
           torch.randn(8, generator=g, dtype=F64), 0.2 + torch.rand(8, generator=g, dtype=F64))
    yield ("W (9, 5), b (9,) and isotropic psi = 0.5 (PPCA) in float64", torch.randn(9, 5, generator=g, dtype=F64),
           torch.randn(9, generator=g, dtype=F64), torch.full((9,), 0.5, dtype=F64))


@register("linear_encoder", chapter=CHAPTER, reference=linear_encoder)
def check_linear_encoder(answer):
    hints = HINTS["linear_encoder"]
    for where, W, b, psi in _encoder_cases():
        where = f"for {where}"
        weight, bias, logvar = _pair(call(answer, W, b, psi, where=where), ("weight", "bias", "logvar"), where)
        d, k = W.shape
        C = W @ W.T + torch.diag(psi)
        gain = torch.linalg.solve(C, W).T  # W^T C^{-1}, (k, d): the posterior mean is gain @ (x - b)
        post_cov = torch.eye(k, dtype=F64) - gain @ W
        G = torch.eye(k, dtype=F64) + W.T @ (W / psi[:, None])
        expect_tensor(weight, shape=(k, d), dtype=W.dtype, where=where, name="weight")
        weight_mistakes = {"gain_without_inverse": (W / psi[:, None]).T, "pca_projection": torch.linalg.pinv(W)}
        expect_value(weight, gain, weight_mistakes, hints, where=where, name="weight", rtol=1e-5, atol=1e-7)
        expect_tensor(bias, shape=(k,), dtype=W.dtype, where=where, name="bias")
        expect_value(bias, -gain @ b, {"bias_missing": torch.zeros(k, dtype=F64), "bias_sign": gain @ b}, hints,
                     where=where, name="bias", rtol=1e-5, atol=1e-7)
        expect_tensor(logvar, shape=(k,), dtype=W.dtype, where=where, name="logvar")
        var = conditional_variances(post_cov)
        expect_value(logvar, torch.log(var), {"forward_kl_logvar": torch.log(torch.diagonal(post_cov)),
                                              "precision_not_inverted": torch.log(torch.diagonal(G))},
                     hints, where=where, name="logvar", rtol=1e-5, atol=1e-7)
    return "the posterior mean as a linear map of x, and the variances 1 / diag(precision): no amortization gap."
