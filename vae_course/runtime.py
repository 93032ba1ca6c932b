"""Threads, seeds and plotting style: what every chapter sets in its first cell.

Taught in: the preface ("How to run a chapter"). Nothing here runs at import time;
`setup()` is the one call that changes global state, and it says what it changed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["setup", "make_generator", "default_device", "RuntimeInfo", "glue"]


@dataclass(frozen=True)
class RuntimeInfo:
    """What `setup()` set, returned so a chapter can print it."""

    seed: int  # the seed given to Python, NumPy and torch
    threads: int  # torch intra-op threads
    device: str  # the device chapters use by default ("cpu" or "cuda")

    def __str__(self) -> str:
        return f"vae_course: seed={self.seed}, torch threads={self.threads}, device={self.device}"


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def setup(seed: int = 0, threads: int = 1, style: bool = True) -> RuntimeInfo:
    """Prepare the process for a chapter: one torch thread, every generator seeded, figure style.

    Parameters
    ----------
    seed:
        Seed for Python's `random`, NumPy's global generator and torch's global generator.
    threads:
        Number of torch intra-op threads. One is the default because two threads on a
        shared two-core laptop or CI machine can make small models ten times slower.
    style:
        Apply the course's matplotlib style (readable on light and dark pages).
    """
    seed = _check_int("seed", seed, 0)
    threads = _check_int("threads", threads, 1)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if style:
        from . import plots

        plots.apply_style()
    return RuntimeInfo(seed=seed, threads=threads, device=default_device())


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh `torch.Generator` seeded with `seed`, for code that must not touch global state."""
    seed = _check_int("seed", seed, 0)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def default_device() -> str:
    """"cuda" when a GPU is visible, else "cpu". Chapters are written and timed for the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def glue(name: str, value, display: bool = False):
    """Publish a computed value under `name` so the prose can show it (`{glue:text}` in MyST).

    On the website this is myst-nb's `glue`. Where myst-nb is not installed (a plain Colab
    runtime, say) it does nothing, so the chapter still runs. A 0-d tensor is stored as a
    Python number. Returns None, so a `glue(...)` at the end of a cell prints nothing.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier-like string, got {name!r}")
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            raise ValueError(f"value must be a number or a 0-d tensor, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    myst_glue(name, value, display=display)
    return None
