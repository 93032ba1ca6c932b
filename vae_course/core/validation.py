"""The one set of argument checks of the package, with one message style.

Every public function validates its arguments here, once per call, at the boundary (never
inside a training loop's inner steps). Messages name the argument, say what was expected
(type, shape, dtype or range) and what was given::

    x must be a 2-D tensor of shape (N, 784), got shape (10, 28, 28)

Wrong *types* raise `TypeError`; right types with wrong shapes or values raise `ValueError`.
Nothing here converts dtype or device, detaches, or copies: a function that wants float64
says so and converts itself, so gradients and devices are never lost by validation.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = [
    "check_tensor",
    "check_data",
    "check_int",
    "check_real",
    "check_positive",
    "check_generator",
    "check_finite",
    "check_choice",
    "check_bool",
    "as_tensor",
    "broadcast_shape",
]


def _given(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}" if isinstance(value, (int, float, str)) else type(value).__name__


def check_finite(name: str, t: torch.Tensor) -> torch.Tensor:
    """`t` itself, or ValueError when it holds NaN or inf (says which)."""
    if t.numel() and not torch.isfinite(t).all():
        bad = "NaN" if torch.isnan(t).any() else "inf"
        raise ValueError(f"{name} must be finite, but it contains {bad}")
    return t


def check_tensor(name: str, value, *, ndim: int | tuple[int, ...] | None = None,
                 shape: tuple | None = None, floating: bool = True, finite: bool = True,
                 what: str = "") -> torch.Tensor:
    """A torch tensor with the given number of dimensions and shape (None entries match any size).

    `floating=True` asks for a floating-point dtype (integer and bool tensors are a TypeError);
    `finite=True` rejects NaN and inf. `what` describes the tensor in messages, e.g.
    "of shape (d, k)". Returns `value` unchanged.
    """
    what = f" {what}" if what else ""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{what}, got {_given(value)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor{what} (float32 or float64), "
                        f"got dtype {value.dtype}")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in dims:
            want = " or ".join(f"{d}-D" for d in dims)
            raise ValueError(f"{name} must be a {want} tensor{what}, got shape {tuple(value.shape)}")
    if shape is not None:
        ok = value.dim() == len(shape) and all(s is None or s == v for s, v in zip(shape, value.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
            raise ValueError(f"{name} must have shape {want}{what}, got shape {tuple(value.shape)}")
    if finite:
        check_finite(name, value)
    return value


def check_data(name: str, x, *, dim: int | None = None, min_rows: int = 1, finite: bool = True,
               unit_interval: bool = False) -> torch.Tensor:
    """A data matrix: a 2-D floating-point tensor (N, d), one example per row.

    `dim` fixes d (the model's data dimension), `min_rows` the least N; `unit_interval`
    asks for values in [0, 1] (pixels for a Bernoulli likelihood).
    """
    cols = "d" if dim is None else str(dim)
    # One pass over the values (min and max) answers both the finiteness and the range question.
    fast = finite and unit_interval
    x = check_tensor(name, x, ndim=2, finite=finite and not fast, what=f"of shape (N, {cols}) (one example per row)")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (the model's data dimension), "
                         f"got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} row(s) (examples), got {x.shape[0]}")
    if fast and x.numel():
        lo, hi = (float(v) for v in torch.aminmax(x))
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{name} must be finite, but it contains NaN")
        if math.isinf(lo) or math.isinf(hi):
            raise ValueError(f"{name} must be finite, but it contains inf")
        if lo < 0 or hi > 1:
            raise ValueError(f"{name} must hold values in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    elif unit_interval and x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"{name} must hold values in [0, 1], got values in "
                         f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x


def check_latents(name: str, z, latent_dim: int, rows: int | None = None) -> torch.Tensor:
    """Latent codes of shape (..., latent_dim), floating point and finite; `z` itself.

    With `rows` = N (the rows of the data they belong to) the shape must be (..., N, latent_dim):
    one code per example, with any leading draw dimensions. The one check of z shared by every
    model's `decode`, `log_px_given_z` and `log_pz`.
    """
    k = latent_dim
    z = check_tensor(name, z, what=f"of shape (..., {k}) (latent_dim = {k})")
    if z.dim() < 1 or z.shape[-1] != k:
        raise ValueError(f"{name} must have shape (..., {k}) (latent_dim = {k}), got shape {tuple(z.shape)}")
    if rows is not None and (z.dim() < 2 or z.shape[-2] != rows):
        raise ValueError(f"{name} must have shape (..., N, {k}) with N = {rows} (the rows of x), "
                         f"got shape {tuple(z.shape)}")
    return z


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool) in [low, high]; returned as a Python int."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {_given(value)}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be an integer <= {high}, got {value}")
    return value


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (Python number or one-element tensor) in the given range; a float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {_given(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        if low is not None and high is not None:
            rng = f"in {lo}, {hi}"
        elif low is not None:
            rng = f"{'>' if low_open else '>='} {low:g}"
        else:
            rng = f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{name} must be {rng}, got {value:g}")
    return value


def check_positive(name: str, value) -> float:
    """A finite number > 0 (a variance, a learning rate, a floor)."""
    return check_real(name, value, low=0.0, low_open=True)


def check_generator(generator, name: str = "generator") -> torch.Generator | None:
    """None or a `torch.Generator`."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {_given(generator)}")
    return generator


def check_choice(name: str, value, choices: tuple) -> str:
    """One of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """True or False (not 0, 1 or None)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_given(value)}")
    return value


def as_tensor(name: str, value, like: torch.Tensor | None = None) -> torch.Tensor:
    """`value` as a floating-point tensor: tensors pass unchanged (integer tensors are a TypeError);
    Python numbers become 0-d tensors with the dtype and device of `like`."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        return value
    if isinstance(value, Real) and not isinstance(value, bool):
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        device = like.device if like is not None else None
        return torch.tensor(float(value), dtype=dtype, device=device)
    raise TypeError(f"{name} must be a torch.Tensor or a Python number, got {_given(value)}")


def broadcast_shape(**tensors: torch.Tensor) -> torch.Size:
    """The broadcast shape of the named tensors, or a ValueError naming each and its shape."""
    try:
        return torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in tensors.items())
        raise ValueError(f"shapes do not broadcast: {shapes}") from None
