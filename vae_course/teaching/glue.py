"""Publishing computed numbers to the prose of a chapter.

Taught in: the preface ("How to read a chapter"). Nothing here runs at import time.

A chapter computes a number in a code cell and glues it: `vc.glue("gap", gap.item())`. The
Markdown then quotes it with MyST's inline expression role ``{eval}`` holding ``f"{gap:.2f}"``.
JupyterLab (the `jupyterlab-myst` extension) evaluates it in the running kernel; the website
answers it from the glued value (`book/_ext/glued_eval.py`). `glue` therefore does two things:

- it records the value with myst-nb's `glue` (a `display_data` output the tests read back;
  nothing is shown), when myst-nb is installed;
- it binds `name` to the value in the notebook's namespace, so that `{eval}` finds it, even in a
  cell that glues in a loop (`vc.glue(f"kl_{k}", ...)`). It never overwrites a variable of yours:
  if `name` is already a variable that `glue` did not bind, it raises and asks for another name.

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


# Names that `glue` itself bound, per notebook namespace: those it may rebind (a re-run cell).
_BOUND: dict[int, set[str]] = {}


def _holds(old, value) -> bool:
    """Whether the existing variable `old` already holds `value` (the same number or object)."""
    if old is value:
        return True
    if isinstance(old, torch.Tensor):
        return old.dim() == 0 and not isinstance(value, (str, tuple)) and bool(old.item() == value)
    try:
        return type(old) is type(value) and bool(old == value)
    except Exception:
        return False


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
        bound = _BOUND.setdefault(id(namespace), set())
        if name in namespace and name not in bound:
            # A variable of the chapter's own: keep it when it already holds this number (a float,
            # or a 0-d tensor, which formats the same way); refuse to replace anything else.
            if not _holds(namespace[name], value):
                raise ValueError(f"name {name!r} is already a variable of this notebook "
                                 f"({type(namespace[name]).__name__}) with another value; "
                                 "glue the number under another name")
        else:
            namespace[name] = value
            bound.add(name)
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    myst_glue(name, value, display=display)
    return None
