"""Publishing computed numbers to the prose of a chapter.

Taught in: the preface ("The numbers in the text"). Nothing here runs at import time.

A chapter computes a number in a code cell and glues it: `vc.glue("gap", gap.item())`. The
Markdown then quotes it with MyST's inline expression role ``{eval}`` holding ``f"{gap:.2f}"``, which both
the website (myst-nb, `execute_notebooks: inline`) and JupyterLab (the `jupyterlab-myst`
extension) evaluate in the running kernel. `glue` therefore does two things:

- it records the value with myst-nb's `glue` (a `display_data` output the tests read back;
  nothing is shown), when myst-nb is installed;
- it binds `name` to the value in the notebook's namespace, so that `{eval}` finds it, even in a
  cell that glues in a loop (`vc.glue(f"kl_{k}", ...)`).

Outside a notebook (a plain Python script) only the first happens.
"""
from __future__ import annotations

import keyword

import torch

__all__ = ["glue"]


def _notebook_namespace() -> dict | None:
    """The running IPython kernel's user namespace, or None outside a notebook."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else shell.user_ns


def glue(name: str, value, display: bool = False):
    """Publish a computed value under `name` so the prose can show it (MyST's ``{eval}`` role).

    Records the value with myst-nb's `glue` (where myst-nb is installed; with `display=False`,
    the default, nothing is shown) and, inside a notebook, sets the variable `name` to the value
    so that an inline expression (``{eval}`` holding ``f"{name:.3f}"``) can format it. A 0-d tensor is
    stored as a Python number. Returns None, so a `glue(...)` at the end of a cell prints nothing.
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"name must be a Python identifier (it becomes a variable), got {name!r}")
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            raise ValueError(f"value must be a number or a 0-d tensor, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    namespace = _notebook_namespace()
    if namespace is not None:
        namespace[name] = value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    myst_glue(name, value, display=display)
    return None
