"""A reasoning exercise for chapter 1: the M-step of a mixture of Bernoulli images.

Taught in: chapter 1 ("Structure 2: a mixture of independent-pixel models"). The chapter does not
print the formula; the reader derives it from the expected complete-data log-likelihood.

- `bernoulli_mixture_m_step(x, resp, eps=1e-3)`: given binary images `x` (N, d) and
  responsibilities `resp` (N, K) (rows sum to one), return `(weights, probs)`: the mixing weights
  (K,), summing to one, and the pixel probabilities (K, d) of each component, clamped to
  [eps, 1 - eps] as `vc.fit_bernoulli_mixture` does.

The expected values are computed here by plain Python loops over images, components and
pixels, independently of any vectorised code. Each common mistake (weighted sums not divided
by the responsibilities' column sums, divided by N instead, weights that do not sum to one,
hard assignments, transposed shapes, no clamp, a clamp that ignores `eps`) gets a hint of its
own, written in `HINTS`, that names the mistake without showing the code.
"""
from __future__ import annotations

import torch

from ._core import Failure, call, expect_close, expect_tensor, register

CHAPTER = "01_generative_modelling"
EXERCISE = "bernoulli_mixture_m_step"

HINTS = {EXERCISE: {
    "weights_unnormalised":
        "the weights must sum to one: a component's weight is its share of the responsibilities, "
        "its column sum divided by the number of images N.",
    "weights_over_images":
        "the weights have one entry per image: average the responsibilities over the images "
        "(dimension 0 of resp), one weight per component.",
    "weights_hard":
        "the weights count hard assignments (each image given wholly to its most responsible "
        "component); EM keeps the soft responsibilities as fractional counts.",
    "probs_transposed":
        "probs looks transposed: it should have one row of d pixel probabilities per component, "
        "shape (K, d).",
    "probs_unnormalised":
        "each component's pixel probabilities are a weighted average of the images, so the "
        "responsibility-weighted sum must be divided by that component's column sum of resp.",
    "probs_over_n":
        "divide each component's weighted sum of images by that component's total "
        "responsibility (its column sum of resp), not by the number of images N.",
    "probs_hard":
        "the pixel probabilities average only the images assigned wholly to a component; weight "
        "every image by its soft responsibility instead.",
    "probs_unclamped":
        "some pixel probabilities are exactly 0 or 1: clamp them to [eps, 1 - eps], or a single "
        "unusual pixel in a new image costs log 0 = -inf.",
    "probs_fixed_eps":
        "the clamp ignores the eps argument: clamp to [eps, 1 - eps] with the eps you are given.",
}}


def _reference(x: torch.Tensor, resp: torch.Tensor, eps: float = 1e-3):
    """The M-step of a Bernoulli mixture: (weights (K,), probs (K, d)), probs clamped to [eps, 1 - eps]."""
    totals = resp.sum(dim=0)
    weighted_means = (resp.T @ x) / totals[:, None]
    return totals / resp.shape[0], weighted_means.clamp(eps, 1 - eps)


# --- independent expected values: plain loops ----------------------------------------------------

def _loop_m_step(x: torch.Tensor, resp: torch.Tensor, eps: float | None, hard: bool = False,
                 divide_by: str = "column sum") -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and probs by Python loops over floats (float64); `hard`/`divide_by` build mistakes."""
    xs, rs = x.double().tolist(), resp.double().tolist()
    n, k, d = len(xs), len(rs[0]), len(xs[0])
    if hard:
        rs = [[1.0 if j == max(range(k), key=lambda c: row[c]) else 0.0 for j in range(k)] for row in rs]
    weights, probs = [], []
    for j in range(k):
        total = sum(rs[i][j] for i in range(n))
        weights.append(total / n)
        denominator = {"column sum": total, "N": float(n), "none": 1.0}[divide_by]
        row = []
        for p in range(d):
            value = sum(rs[i][j] * xs[i][p] for i in range(n)) / denominator if denominator else 0.0
            row.append(value if eps is None else min(max(value, eps), 1 - eps))
        probs.append(row)
    return torch.tensor(weights, dtype=torch.float64), torch.tensor(probs, dtype=torch.float64)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().double(), b, rtol=1e-4, atol=1e-6)


def _spread(n: int, k: int) -> torch.Tensor:
    """Logits of +3 at (i, i mod k): every component is the most responsible for some image."""
    bonus = torch.zeros(n, k)
    bonus[torch.arange(n), torch.arange(n) % k] = 3.0
    return bonus


def _cases():
    gen = torch.Generator().manual_seed(11)
    # Case 1: 8 images of 6 pixels, 5 components; pixel 0 never on and pixel 5 always on, so the
    # clamp matters; the responsibilities are soft, and every component is the most responsible
    # for at least one image, so that hard assignments leave no component empty.
    x1 = (torch.rand(8, 6, generator=gen) < 0.5).float()
    x1[:, 0], x1[:, 5] = 0.0, 1.0
    r1 = torch.softmax(torch.randn(8, 5, generator=gen) + _spread(8, 5), dim=1)
    # Case 2: float64, 10 images of 7 pixels, 6 components, and a larger eps.
    x2 = (torch.rand(10, 7, generator=gen, dtype=torch.float64) < 0.4).double()
    x2[:, 3] = 0.0
    r2 = torch.softmax(torch.randn(10, 6, generator=gen, dtype=torch.float64) + _spread(10, 6).double(), dim=1)
    return [
        ("x (8, 6) binary, resp (8, 5), eps = 1e-3 (pixel 0 never on, pixel 5 always on)", x1, r1, None),
        ("x (10, 7) float64, resp (10, 6), eps = 0.05 (pixel 3 never on)", x2, r2, 0.05),
    ]


def _variants(x, resp, clamp: float, **mistake) -> list[torch.Tensor]:
    """The probs a mistake gives with the right clamp, with a clamp at 1e-3, and with no clamp."""
    return [_loop_m_step(x, resp, c, **mistake)[1] for c in (clamp, 1e-3, None)]


def _hint(key: str) -> str:
    return HINTS[EXERCISE][key]


def _fail_with_hint(out, expected, mistakes: dict, *, where: str, name: str, fallback: str | None = None):
    """`expect_close`; on failure, add the hint of the first mistake whose candidate values `out` matches.

    When none matches, the hint `fallback` (if given) is added instead.
    """
    try:
        expect_close(out, expected, where=where, name=name)
    except Failure as e:
        for key, candidates in mistakes.items():
            if any(_close(out, wrong) for wrong in candidates):
                raise Failure(f"{e} Hint: {_hint(key)}") from None
        if fallback is not None:
            raise Failure(f"{e} Hint: {_hint(fallback)}") from None
        raise


@register(EXERCISE, chapter=CHAPTER, reference=_reference)
def check_bernoulli_mixture_m_step(answer):
    for where, x, resp, eps in _cases():
        where = f"for {where}"
        n, d = x.shape
        k = resp.shape[1]
        args = (x, resp) if eps is None else (x, resp, eps)
        out = call(answer, *args, where=where)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            raise Failure(f"your function should return a pair (weights, probs) of torch.Tensor, got {got}, "
                          f"{where}.")
        weights, probs = out
        for label, value in (("weights", weights), ("probs", probs)):
            if not isinstance(value, torch.Tensor):
                raise Failure(f"{label} should be a torch.Tensor, got {type(value).__name__}, {where}.")
        if tuple(weights.shape) == (n,):
            raise Failure(f"weights should have shape ({k},), got ({n},), {where}. "
                          f"Hint: {_hint('weights_over_images')}")
        if tuple(probs.shape) == (d, k):
            raise Failure(f"probs should have shape ({k}, {d}), got ({d}, {k}), {where}. "
                          f"Hint: {_hint('probs_transposed')}")
        expect_tensor(weights, shape=(k,), dtype=x.dtype, where=where, name="weights")
        expect_tensor(probs, shape=(k, d), dtype=x.dtype, where=where, name="probs")

        clamp = 1e-3 if eps is None else eps
        want_w, want_p = _loop_m_step(x, resp, clamp)
        hard_w, _ = _loop_m_step(x, resp, clamp, hard=True)
        off_sum = abs(float(weights.detach().double().sum()) - 1.0) > 1e-4
        _fail_with_hint(weights, want_w, {"weights_hard": [hard_w], "weights_unnormalised": [want_w * n]},
                        where=where, name="weights", fallback="weights_unnormalised" if off_sum else None)

        probs_mistakes = {  # each made with the right clamp, a clamp at 1e-3, or none
            "probs_hard": _variants(x, resp, clamp, hard=True),
            "probs_unnormalised": _variants(x, resp, clamp, divide_by="none"),
            "probs_over_n": _variants(x, resp, clamp, divide_by="N"),
            "probs_unclamped": [_loop_m_step(x, resp, None)[1]],
        }
        if eps is not None:
            probs_mistakes["probs_fixed_eps"] = [_loop_m_step(x, resp, 1e-3)[1]]
        _fail_with_hint(probs, want_p, probs_mistakes, where=where, name="probs")
    return "weights are the average responsibilities and probs the responsibility-weighted pixel means, clamped."
