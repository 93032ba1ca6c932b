"""What the chapter checkers share: comparing an answer with an independent expected value, and hints.

Taught in: the preface ("Exercises and checks"). Every checker computes its expected value
independently of the package's reference solution (with `torch.distributions`, a closed form or
a plain loop), so a bug in a reference cannot make its own check pass. Each checker module holds
a dict of hints per exercise, one per known mistake; the key names the mistake and every hint has
its own wording, so a message says exactly which mistake was recognised.
"""
from __future__ import annotations

from typing import Callable

import torch

from ._core import Failure, expect_close


def same(out, value: torch.Tensor, *, rtol: float, atol: float) -> bool:
    """Whether `out` is a tensor of `value`'s shape whose values agree with `value` (finite)."""
    return (isinstance(out, torch.Tensor) and out.is_floating_point() and tuple(out.shape) == tuple(value.shape)
            and bool(torch.isfinite(value).all())
            and bool(torch.allclose(out.detach().to(value.dtype), value, rtol=rtol, atol=atol)))


def hinted(hints: dict[str, str], key: str, problem: str) -> Failure:
    """A Failure that states `problem` and then the hint `hints[key]`."""
    return Failure(f"{problem} Hint: {hints[key]}")


def expect_value(out: torch.Tensor, expected: torch.Tensor,
                 mistakes: dict[str, torch.Tensor] | Callable[[], dict[str, torch.Tensor]], hints: dict[str, str],
                 *, where: str, name: str = "the result",
                 rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Pass if `out` matches `expected`; otherwise fail, naming the first known mistake `out` reproduces.

    `mistakes` maps a key of `hints` to the value that mistake gives on the same inputs (or is a
    function returning that dict, called only when `out` is wrong). Without a recognised mistake
    the failure shows a few expected and obtained values.
    """
    if same(out, expected, rtol=rtol, atol=atol):
        return
    for key, wrong in (mistakes() if callable(mistakes) else mistakes).items():
        if same(out, wrong, rtol=rtol, atol=atol):
            raise hinted(hints, key, f"wrong value of {name} {where}.")
    expect_close(out, expected, where=where, rtol=rtol, atol=atol, name=name)


def expect_not_infinite(out, hints: dict[str, str], *, where: str, below: str | None = None,
                        above: str | None = None) -> None:
    """Fail with the hint `below` if `out` holds -inf, or `above` if it holds +inf (an exp() that
    underflowed or overflowed before a log)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return
    if below is not None and torch.isneginf(out).any():
        raise hinted(hints, below, f"the result contains -inf {where}.")
    if above is not None and torch.isposinf(out).any():
        raise hinted(hints, above, f"the result contains +inf {where}.")


def conditional_variances(cov: torch.Tensor) -> torch.Tensor:
    """Var(z_i | z_-i) = cov_ii - cov_i,-i cov_-i,-i^{-1} cov_-i,i for each i, by a plain loop, in float64.

    The variances of the best diagonal Gaussian approximation (reverse KL) of N(m, cov), computed
    without the precision matrix, so the checks of chapters 4 and 6 compare against an independent route.
    """
    cov = cov.to(torch.float64)
    k = cov.shape[0]
    out = []
    for i in range(k):
        rest = [j for j in range(k) if j != i]
        c = cov[i, rest]
        out.append(cov[i, i] - c @ torch.linalg.solve(cov[rest][:, rest], c))
    return torch.stack(out)

