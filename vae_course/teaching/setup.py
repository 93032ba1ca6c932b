"""`vc.setup()`: the first call of every chapter (threads, seeds, figure style).

Taught in: the preface ("How to run a chapter").
"""
from __future__ import annotations

from ..core.runtime import RuntimeInfo, configure
from ..core.validation import check_bool

__all__ = ["setup"]


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
    check_bool("style", style)
    info = configure(seed=seed, threads=threads)
    if style:
        from .plots import apply_style

        apply_style()
    return info
