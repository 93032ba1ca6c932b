"""Execute chapter notebooks once per test session and read what they computed.

Every chapter check of the suite reads ONE execution of the chapter: the glued numbers
(`run`/`glued` fixtures), "every cell runs", the figures drawn, the files written, the timing, and
the strict site build (which renders these executed notebooks instead of executing the chapters a
second time; see `conftest.site_build`). `RUNS` holds them: a pool of worker threads, each driving
one kernel (so chapters run `workers` at a time, one torch thread each), started by conftest for the
chapters the selected tests need.

myst-nb's `glue(name, value, display=False)` writes a `display_data` output whose metadata holds
`{"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}}` and whose data is
the value's mime bundle under that prefix; `text/plain` is the value's `repr`. We read it back with
`ast.literal_eval` (Python ints, floats, strings, tuples...), so chapters should glue plain Python
numbers (`float(t)`, `int(n)`), not tensors.

Usage::

    from notebook_utils import cached_run, run_notebook
    run = cached_run("book/01_generative_modelling.ipynb")  # shared by the whole session
    run.glue, run.nb, run.seconds, run.files_written, run.error
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
GLUE_PREFIX = "application/papermill.record/"
#: The kernel of every chapter run, as a reader's laptop would have it: one thread for BLAS/OpenMP
#: (the chapters' `vc.setup()` also sets one torch thread).
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

__all__ = ["ROOT", "RUNS", "CellError", "NotebookRun", "SessionJobs", "run_notebook", "run_and_collect_glue",
           "cached_run", "collect_glue", "parse_glued", "execution_settings", "worker_count", "StudentEdition",
           "student_edition_for_nbval", "mark_check_cells", "check_ids", "nbval", "run_nbval", "join_runs",
           "snapshot", "solution_blocks", "tail"]


def execution_settings(root: Path = ROOT) -> dict:
    """The `execute:` section of the book's `_config.yml`: the runs here use the build's own settings."""
    import yaml

    config = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf-8")) or {}
    return config.get("execute") or {}


def worker_count() -> int:
    """How many notebooks run at once: `VAE_COURSE_TEST_WORKERS`, else 2 (or 1 on a 1-core machine)."""
    value = os.environ.get("VAE_COURSE_TEST_WORKERS")
    if value:
        return max(1, int(value))
    return max(1, min(2, os.cpu_count() or 1))


@dataclass
class CellError:
    """The cell that stopped a run: where it is, what it raised, and the start of its source."""

    notebook: str
    index: int  # position among all cells (markdown included), as the other checks count cells
    ename: str
    evalue: str
    source: str
    traceback: str = ""

    def describe(self) -> str:
        head = "\n".join("    " + line for line in self.source.splitlines()[:8])
        return (f"{self.notebook} cell {self.index} raised {self.ename}: {self.evalue}\n"
                f"  the cell begins:\n{head}\n{self.traceback}")


@dataclass
class NotebookRun:
    """One execution of a notebook: the executed notebook, its glued values and how long it took."""

    path: Path
    nb: nbformat.NotebookNode
    glue: dict = field(default_factory=dict)  # name -> parsed value (see parse_glued)
    glue_raw: dict = field(default_factory=dict)  # name -> the glued mime bundle, prefix removed
    seconds: float = 0.0  # wall time of the execution, kernel start included
    files_written: list = field(default_factory=list)  # files the notebook left in its working directory
    error: CellError | None = None  # the cell that stopped the run; None when every cell ran

    @property
    def ok(self) -> bool:
        return self.error is None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


def _cell_error(nb, name: str, index: int | None, exc: BaseException) -> CellError:
    """Describe the failure: the cell with an error output (not tagged `raises-exception`), else the
    cell that was running when `exc` stopped the run (a timeout, a dead kernel)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                return CellError(name, i, out.get("ename", "?"), out.get("evalue", ""), cell.source, tb)
    source = nb.cells[index].source if index is not None else ""
    return CellError(name, -1 if index is None else index, type(exc).__name__, str(exc).strip()[-2000:], source)


def run_notebook(path, timeout: int | None = None, kernel_name: str = "python3") -> NotebookRun:
    """Execute the notebook at `path` with nbclient in a fresh temporary working directory.

    Uses the build's settings from `_config.yml` (`execute: timeout`, `allow_errors`), so this run
    stands in for the one the site build would do. A cell that raises (cells tagged
    `raises-exception` may) stops the run, as in the build; the run is still returned, with
    `.error` naming the cell. Records the files the notebook wrote into its working directory,
    which chapters must not do. Thread-safe: the kernel's environment is passed, not set globally.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    settings = execution_settings()
    timeout = timeout if timeout is not None else int(settings.get("timeout", 300))
    nb = nbformat.read(path, as_version=4)
    running: list[int | None] = [None]

    def on_cell_start(cell, cell_index):
        running[0] = cell_index

    error = None
    with tempfile.TemporaryDirectory(prefix="nbrun-") as cwd, tempfile.TemporaryFile("w+") as log:
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                                allow_errors=bool(settings.get("allow_errors", False)),
                                resources={"metadata": {"path": cwd}}, on_cell_start=on_cell_start)
        start = time.perf_counter()
        try:  # the kernel's own log (not the cells' stderr, which are outputs) goes to `log`
            client.execute(env={**os.environ, **KERNEL_ENV}, stdout=log, stderr=log)
        except (CellExecutionError, CellTimeoutError, DeadKernelError, TimeoutError) as exc:
            error = _cell_error(nb, path.name, running[0], exc)
            if isinstance(exc, DeadKernelError):
                log.seek(0)
                error.traceback += "\nthe kernel's log:\n" + log.read()[-4000:]
        seconds = time.perf_counter() - start
        written = sorted(str(p.relative_to(cwd)) for p in Path(cwd).rglob("*"))
    values, raw = collect_glue(nb)
    return NotebookRun(path, nb, values, raw, seconds, written, error)


class SessionJobs:
    """The session's background work: each job runs at most once, `workers` at a time.

    Chapter executions are jobs keyed by the notebook's resolved path: `prefetch(paths)` queues
    them (conftest does this for the chapters the selected tests need, as soon as the session
    starts) and `get(path)` waits for one (queueing it first if nobody did). Other jobs (the site
    build, the student edition under nbval) are queued by name with `submit`. A job's exception is
    kept and raised again by every `result`, so a broken chapter is never executed twice.
    """

    def __init__(self, workers: int | None = None):
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future] = {}
        self._chapters: list[str] = []

    @staticmethod
    def key(path) -> str:
        path = Path(path)
        return str((path if path.is_absolute() else ROOT / path).resolve())

    def submit(self, key: str, fn, *args) -> Future:
        """Queue `fn(*args)` under `key`, unless a job of that name is queued already."""
        with self._lock:
            if key not in self._futures:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.workers or worker_count(),
                                                    thread_name_prefix="session-job")
                self._futures[key] = self._pool.submit(fn, *args)
            return self._futures[key]

    def put(self, key: str, value=None, exception: BaseException | None = None) -> None:
        """Record a result (or an exception) under `key` without running anything."""
        future = Future()
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(value)
        with self._lock:
            self._futures.setdefault(key, future)

    def names(self) -> set:
        with self._lock:
            return set(self._futures)

    def result(self, key: str):
        with self._lock:
            future = self._futures.get(key)
        if future is None:
            raise KeyError(f"no session job named {key!r} was started")
        return future.result()

    def prefetch(self, paths) -> None:
        for path in paths:
            self._chapter(path)

    def _chapter(self, path) -> Future:
        key = self.key(path)
        with self._lock:
            if key not in self._chapters:
                self._chapters.append(key)
        return self.submit(key, run_notebook, key)

    def get(self, path) -> NotebookRun:
        """The session's execution of the notebook at `path`."""
        return self._chapter(path).result()

    def done(self) -> list[NotebookRun]:
        """The chapter runs that finished, in the order they were queued."""
        with self._lock:
            futures = [self._futures[k] for k in self._chapters]
        return [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]

    def shutdown(self) -> None:
        """Drop the queued jobs that have not started and wait for the running ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


#: The session's runs (pytest imports this module once per session).
RUNS = SessionJobs()


def cached_run(path) -> NotebookRun:
    """The session's `NotebookRun` of `path` (executes it on the first call, unless queued already)."""
    return RUNS.get(path)


def run_and_collect_glue(path) -> dict:
    """The glued values of the session's run of `path`, by name."""
    return dict(cached_run(path).glue)


# --- the student edition under nbval ------------------------------------------------------------

CHECK_CALL = re.compile(r"""exercises\.check\(\s*["']([\w\-.]+)["']""")


def check_ids(cell) -> list[str]:
    return CHECK_CALL.findall(cell.source) if cell.cell_type == "code" else []


def mark_check_cells(nb) -> int:
    """Tag each check cell so nbval compares its output with the stub's expected verdict."""
    from nbformat.v4 import new_output

    from vae_course.teaching.exercises._core import FAIL_MARK, NOT_IMPLEMENTED

    marked = 0
    for cell in nb.cells:
        ids = check_ids(cell)
        if ids:
            text = "".join(f"{FAIL_MARK} {i}: {NOT_IMPLEMENTED}\n" for i in ids)
            cell.metadata.setdefault("tags", []).append("nbval-check-output")
            cell.outputs = [new_output("stream", name="stdout", text=text)]
            cell.execution_count = 1  # nbval ignores the outputs of cells it takes as never run
            marked += 1
    return marked


def snapshot(folder: Path) -> set:
    """The files and folders under `folder` (contents may change: chapters are edited while tests run)."""
    return {p.relative_to(folder) for p in folder.rglob("*")}


@dataclass
class StudentEdition:
    """A student edition written for nbval: its notebooks, how many stubs, and its folder's files."""

    folder: Path
    files: list
    stubs: int
    before: set  # snapshot(folder) before anything ran


def student_edition_for_nbval(book: Path, out: Path, values: dict | None = None) -> StudentEdition:
    """Write the student edition of `book` into `out`, with its check cells tagged for nbval.

    `values` (chapter stem -> glued values) fills in the numbers from the session's own chapter
    runs, so writing the edition executes nothing more."""
    from vae_course.classroom.edition import write_student_edition

    written = write_student_edition(out, book=book, values=values)
    stubs = 0
    for path in written:
        nb = nbformat.read(path, as_version=4)
        blocks = sum(c.source.count("raise NotImplementedError(") for c in nb.cells if c.cell_type == "code")
        marked = mark_check_cells(nb)
        assert marked == blocks, f"{path.name}: {blocks} stubs but {marked} check cells"
        stubs += blocks
        nbformat.write(nb, path)
    return StudentEdition(Path(out), list(written), stubs, snapshot(Path(out)))


def solution_blocks(paths) -> int:
    from vae_course.classroom.edition import count_solutions

    return sum(count_solutions(c.source) for p in paths for c in nbformat.read(p, as_version=4).cells)


def _nbval_args(files) -> list[str]:
    return [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
            "--nbval-cell-timeout=300", "-v", "-o", "addopts=", *map(str, files)]


def nbval(files, cwd: Path) -> subprocess.CompletedProcess:
    """`pytest --nbval-lax` on `files` in one process (kernels with one thread, as in the runs above)."""
    return subprocess.run(_nbval_args(files), cwd=cwd, env=dict(os.environ, **KERNEL_ENV),
                          capture_output=True, text=True, timeout=1800)


def join_runs(done: list) -> subprocess.CompletedProcess:
    """Several nbval processes as one: the worst exit status, and each one's output in turn."""
    return subprocess.CompletedProcess([d.args for d in done], max(d.returncode for d in done),
                                       "".join(d.stdout for d in done), "".join(d.stderr for d in done))


def run_nbval(files, cwd: Path) -> subprocess.CompletedProcess:
    return nbval(files, cwd)


def tail(done: subprocess.CompletedProcess, n: int = 4000) -> str:
    return (done.stdout + done.stderr)[-n:]
