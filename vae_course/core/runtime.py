"""Threads, seeds and devices: the global state every chapter sets in its first cell.

Taught in: the preface ("How to run a chapter"). Nothing here runs at import time;
`configure()` (called by `vc.setup()`) is the one call that changes global state, and it
returns what it changed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from .validation import check_int

__all__ = ["configure", "make_generator", "default_device", "RuntimeInfo"]


@dataclass(frozen=True)
class RuntimeInfo:
    """What `setup()` set, returned so a chapter can print it."""

    seed: int  # the seed given to Python, NumPy and torch
    threads: int  # torch intra-op threads
    device: str  # the device chapters use by default ("cpu" or "cuda")

    def __str__(self) -> str:
        return f"vae_course: seed={self.seed}, torch threads={self.threads}, device={self.device}"


def configure(seed: int = 0, threads: int = 1) -> RuntimeInfo:
    """Set torch's intra-op threads and seed Python's, NumPy's and torch's global generators.

    The global-state half of `vc.setup()` (which also applies the figure style). One thread is
    the default because two threads on a shared two-core laptop or CI machine can make small
    models ten times slower.
    """
    seed = check_int("seed", seed, low=0)
    threads = check_int("threads", threads, low=1)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return RuntimeInfo(seed=seed, threads=threads, device=default_device())


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh `torch.Generator` seeded with `seed`, for code that must not touch global state."""
    seed = check_int("seed", seed, low=0)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def default_device() -> str:
    """"cuda" when a GPU is visible, else "cpu". Chapters are written and timed for the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"
