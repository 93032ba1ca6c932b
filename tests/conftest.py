"""Shared fixtures and the session's background work.

Each chapter is executed ONCE per session (`notebook_utils.RUNS`): the chapter tests (`run`,
`glued`, `executed_chapter`) and the strict site build (`site_build`) all read that execution.
The student edition is executed once more, by nbval (`student_edition_run`, for
tests/test_notebooks.py). All of it runs in the background, two jobs at a time
(`VAE_COURSE_TEST_WORKERS`), started as soon as the selected tests are known: first the chapters
they need, then the site build (which waits for the chapters), then the student edition in a few
nbval processes. The tests in the main process meanwhile run, and wait only for what they read.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from notebook_utils import RUNS, NotebookRun, join_runs, nbval, student_edition_for_nbval, worker_count

from vae_course.classroom.edition import chapter_notebooks

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = chapter_notebooks(REPO)

#: What a fresh clone would not have: environments, build outputs, caches, generated editions.
SITE_COPY_IGNORE = (".venv", "venv", "_build", ".git", "__pycache__", ".pytest_cache",
                    ".ipynb_checkpoints", "*.egg-info", ".jupyter_cache", "student_edition",
                    ".offline_assets", "node_modules")
SITE_BUILD_TIMEOUT_S = 1200
#: Where `benchmarks/run.py --suite` asks the session to write its chapter timings (JSON).
TIMINGS_ENV = "VAE_COURSE_TIMINGS"


# --- which chapters the selected tests need, started at collection -------------------------------

def chapters_needed(items) -> list[Path]:
    """The chapter notebooks `items` read, in table-of-contents order."""
    wanted = set()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "site_build" in names:
            wanted.update(CHAPTERS)
        if names & {"run", "glued"} and getattr(item.module, "CHAPTER", None):
            chapter = Path(item.module.CHAPTER)
            wanted.add(chapter if chapter.is_absolute() else REPO / chapter)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "executed_chapter" in callspec.params:
            wanted.add(Path(callspec.params["executed_chapter"]))
    order = {RUNS.key(p): i for i, p in enumerate(CHAPTERS)}
    return sorted(wanted, key=lambda p: (order.get(RUNS.key(p), len(order)), str(p)))


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    RUNS.prefetch(chapters_needed(session.items))


def pytest_sessionfinish(session, exitstatus):
    RUNS.shutdown()
    target = os.environ.get(TIMINGS_ENV)
    if target:
        runs = RUNS.done()
        Path(target).write_text(json.dumps({
            "workers": worker_count(),
            "chapters": {r.path.stem: r.seconds for r in runs},
            "errors": {r.path.stem: r.error.describe() for r in runs if r.error},
        }, indent=2))


def pytest_terminal_summary(terminalreporter):
    runs = RUNS.done()
    if not runs:
        return
    terminalreporter.section("chapter executions (once each, one torch thread, "
                             f"{worker_count()} at a time)")
    for r in runs:
        state = "ok" if r.ok else f"stopped at cell {r.error.index}: {r.error.ename}"
        terminalreporter.write_line(f"{r.path.stem:<40} {r.seconds:7.1f} s  {state}")


@dataclass
class SiteBuild:
    root: Path        # the copy that was built
    returncode: int
    log: str          # stdout and stderr of the build
    chapter_errors: list = field(default_factory=list)  # chapters that stopped early, described

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-lines:])


def site_copy_repo(dest: Path) -> Path:
    """Copy the working tree as a fresh clone would have it into `dest`."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*SITE_COPY_IGNORE))
    return dest


def site_run_build(root: Path, timeout: int = SITE_BUILD_TIMEOUT_S) -> SiteBuild:
    """`jupyter-book build -W -n --keep-going root`, with the copy's own `vae_course` importable first
    (also in the kernels that execute the chapters, which inherit the environment)."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", "-W", "-n", "--keep-going", str(root)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    try:
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return SiteBuild(root, -1, out + f"\n[timed out after {timeout} s]")
    return SiteBuild(root, done.returncode, done.stdout + done.stderr)


EXECUTE_SETTING = re.compile(r"^(?P<key>\s+execute_notebooks:)[ \t]*\S+[^\n]*$", re.M)


def use_executed_notebooks(root: Path, runs: list[NotebookRun]) -> None:
    """Put the session's executed chapters into the copy at `root` and turn its execution off.

    The build then renders exactly the outputs the chapter tests read, instead of executing every
    chapter a second time. What the build's own execution adds is tested where it is cheap: the
    course's `_config.yml` executes every chapter on every build (test_site.py), and its strictness
    fails a build on a failing cell (tiny books in test_site.py).
    """
    for r in runs:
        nbformat.write(r.nb, root / r.path.relative_to(REPO))
    config = root / "_config.yml"
    text, n = EXECUTE_SETTING.subn(r'\g<key> "off"  # the suite renders its own executions', config.read_text())
    assert n == 1, "_config.yml has no `execute: execute_notebooks:` line to switch off in the copy"
    config.write_text(text)


def _build_site(root: Path) -> SiteBuild:
    """The site job: the copy at `root`, with the session's chapter runs, built strictly."""
    runs = [RUNS.get(p) for p in CHAPTERS]
    use_executed_notebooks(root, runs)
    build = site_run_build(root)
    build.chapter_errors = [r.error.describe() for r in runs if r.error]
    return build


def start_site_build(tmp_path_factory) -> None:
    """Queue the site job (once), after the chapter runs it reads."""
    if "site" not in RUNS.names():
        RUNS.prefetch(CHAPTERS)
        RUNS.submit("site", _build_site, site_copy_repo(tmp_path_factory.mktemp("site") / "repo"))


def start_student_edition(tmp_path_factory) -> None:
    """Write the student edition (once) and queue nbval on it, split into a few processes."""
    if "student-edition" in RUNS.names():
        return
    folder = tmp_path_factory.mktemp("edition")
    try:
        # The numbers of the edition's prose come from the session's one run of each chapter.
        from vae_course.classroom.edition import glued_values

        RUNS.prefetch(CHAPTERS)
        runs = [RUNS.get(p) for p in CHAPTERS]
        values = {Path(r.path).stem: glued_values(r.nb) for r in runs if not r.error}
        edition = student_edition_for_nbval(REPO, folder / "student", values=values)
    except Exception as exc:  # raised again by the test that reads it
        RUNS.put("student-edition", exception=exc)
        return
    files = edition.files
    groups = [files[i::2 * worker_count()] for i in range(min(len(files), 2 * worker_count()))]
    for i, group in enumerate(groups):
        RUNS.submit(f"student-edition:{i}", nbval, group, folder)
    RUNS.put("student-edition", (edition, len(groups)))


@pytest.fixture(scope="session", autouse=True)
def _background_jobs(request, tmp_path_factory):
    """Queue the site build and the student edition when a selected test reads them."""
    names = {n for item in request.session.items for n in getattr(item, "fixturenames", ())}
    if "site_build" in names:
        start_site_build(tmp_path_factory)
    if "student_edition_run" in names:
        start_student_edition(tmp_path_factory)
    yield


@pytest.fixture(scope="session")
def site_build(tmp_path_factory) -> SiteBuild:
    """The whole book, built strictly once per session from a fresh copy of the repository, with
    the chapters as the session executed them (see `use_executed_notebooks`)."""
    start_site_build(tmp_path_factory)
    return RUNS.result("site")


@pytest.fixture(scope="session")
def student_edition_run(tmp_path_factory):
    """(the StudentEdition, the joined nbval result) of the course's student edition."""
    start_student_edition(tmp_path_factory)
    edition, groups = RUNS.result("student-edition")
    return edition, join_runs([RUNS.result(f"student-edition:{i}") for i in range(groups)])


# --- chapter tests -------------------------------------------------------------------------------

def _checked(run: NotebookRun) -> NotebookRun:
    if run.error is not None:
        pytest.fail(f"the chapter did not run to the end:\n{run.error.describe()}", pytrace=False)
    return run


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(request):
    """Tests compute with one torch thread (`vc.setup()`'s default), as the chapters do.

    They run while notebooks execute in the background on the other cores; two intra-op threads
    competing with those kernels were seen to make a 2 s check take 40 s. A module that sets
    torch's threads itself (tests of `vc.setup`) keeps the process default, so its checks still
    start from a value other than one.
    """
    if "set_num_threads" in Path(request.module.__file__).read_text(encoding="utf-8"):
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run(request) -> NotebookRun:
    """The session's execution of the chapter named by the test module's CHAPTER (a path).

    Fails, naming the cell, when the chapter stopped at an error: its glued numbers are incomplete.
    """
    return _checked(RUNS.get(request.module.CHAPTER))


@pytest.fixture(scope="module")
def glued(run) -> dict:
    """The values the chapter glued, by name."""
    return run.glue


@pytest.fixture(params=CHAPTERS, ids=lambda p: p.stem)
def executed_chapter(request) -> NotebookRun:
    """Each chapter's execution in turn (whether or not it ran to the end: the tests say)."""
    return RUNS.get(request.param)
