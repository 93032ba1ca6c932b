"""Publishing computed numbers to the prose of a chapter.

Taught in: the preface ("How to read a chapter"). Nothing here runs at import time.
"""
from __future__ import annotations

import torch

__all__ = ["glue"]


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
