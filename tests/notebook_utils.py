"""Helpers for tests that execute a chapter notebook and read the numbers it glued.

myst-nb's `glue(name, value, display=False)` writes a `display_data` output whose metadata holds
`{"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}}` and whose data is
the value's mime bundle under that prefix; `text/plain` is the value's `repr`. We read it back with
`ast.literal_eval` (Python ints, floats, strings, tuples...), so chapters should glue plain Python
numbers (`float(t)`, `int(n)`), not tensors.

Usage::

    from notebook_utils import run_and_collect_glue, run_notebook
    glued = run_and_collect_glue("book/01_generative_modelling.ipynb")   # {name: value}
    run = run_notebook(path)   # .nb, .glue, .seconds, .files_written, .errors
"""
from __future__ import annotations

import ast
import functools
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
GLUE_PREFIX = "application/papermill.record/"

__all__ = ["ROOT", "NotebookRun", "run_notebook", "run_and_collect_glue", "collect_glue", "parse_glued"]


@dataclass
class NotebookRun:
    """One execution of a notebook: the executed notebook, its glued values and how long it took."""

    path: Path
    nb: nbformat.NotebookNode
    glue: dict = field(default_factory=dict)  # name -> parsed value (see parse_glued)
    glue_raw: dict = field(default_factory=dict)  # name -> the glued mime bundle, prefix removed
    seconds: float = 0.0  # wall time of the execution, kernel start included
    files_written: list = field(default_factory=list)  # files the notebook left in its working directory


def parse_glued(text: str):
    """A glued `text/plain` repr back to a Python value: numbers, strings, tuples; else the text.

    NumPy scalars print as `np.float64(1.5)` under NumPy 2; those are unwrapped too.
    """
    m = re.fullmatch(r"np\.(?:float|int|uint|bool_?)\w*\((.*)\)", text.strip())
    if m:
        text = m.group(1)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def collect_glue(nb: nbformat.NotebookNode) -> tuple[dict, dict]:
    """All glued values of an executed notebook: (parsed values, raw mime bundles), by name.

    A name glued twice raises AssertionError (myst-nb only warns, and the page shows the last one).
    """
    values, raw = {}, {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {})
            if "scrapbook" not in meta:
                continue
            name = meta["scrapbook"]["name"]
            prefix = meta["scrapbook"].get("mime_prefix", "")
            bundle = {k[len(prefix):]: v for k, v in out.get("data", {}).items() if k.startswith(prefix)}
            assert name not in raw, f"glue name {name!r} is glued more than once"
            raw[name] = bundle
            values[name] = parse_glued(bundle["text/plain"]) if "text/plain" in bundle else bundle
    return values, raw


def run_notebook(path, timeout: int = 300, kernel_name: str = "python3") -> NotebookRun:
    """Execute the notebook at `path` with nbclient in a fresh temporary working directory.

    Raises `nbclient.exceptions.CellExecutionError` when a cell fails (cells tagged
    `raises-exception` are allowed to raise). Records the files the notebook wrote into its
    working directory, which chapters must not do.
    """
    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    nb = nbformat.read(path, as_version=4)
    env_threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory(prefix="nbrun-") as cwd:
        os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        try:
            client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                                    resources={"metadata": {"path": cwd}})
            start = time.perf_counter()
            client.execute()
            seconds = time.perf_counter() - start
        finally:
            for k, v in env_threads.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        written = sorted(str(p.relative_to(cwd)) for p in Path(cwd).rglob("*"))
    values, raw = collect_glue(nb)
    return NotebookRun(path, nb, values, raw, seconds, written)


@functools.cache
def _cached_run(path: str, timeout: int) -> NotebookRun:
    return run_notebook(path, timeout=timeout)


def _key(path) -> str:
    path = Path(path)
    return str((path if path.is_absolute() else ROOT / path).resolve())


def run_and_collect_glue(path, timeout: int = 300) -> dict:
    """Execute the notebook once (cached per test session) and return its glued values by name."""
    return dict(_cached_run(_key(path), timeout).glue)


def cached_run(path, timeout: int = 300) -> NotebookRun:
    """The cached `NotebookRun` of `path` (executes it on the first call of the session)."""
    return _cached_run(_key(path), timeout)
