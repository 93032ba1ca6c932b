"""Shared fixtures. The site fixtures build the book once per test session (the expensive part)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: What a fresh clone would not have: environments, build outputs, caches, generated editions.
SITE_COPY_IGNORE = (".venv", "venv", "_build", ".git", "__pycache__", ".pytest_cache",
                    ".ipynb_checkpoints", "*.egg-info", ".jupyter_cache", "student_edition",
                    ".offline_assets", "node_modules")
SITE_BUILD_TIMEOUT_S = 1200


@dataclass
class SiteBuild:
    root: Path        # the copy that was built
    returncode: int
    log: str          # stdout and stderr of the build

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


@pytest.fixture(scope="session")
def site_build(tmp_path_factory) -> SiteBuild:
    """The whole book, built once per session from a fresh copy of the repository."""
    root = site_copy_repo(tmp_path_factory.mktemp("site") / "repo")
    return site_run_build(root)


# --- chapter tests: a module sets CHAPTER (the notebook's path); `run` executes it once a session --

@pytest.fixture(scope="module")
def run(request):
    """The executed chapter named by the test module's CHAPTER (shared through notebook_utils)."""
    from notebook_utils import cached_run

    return cached_run(request.module.CHAPTER)


@pytest.fixture(scope="module")
def glued(run):
    """The values the chapter glued, by name."""
    return run.glue
