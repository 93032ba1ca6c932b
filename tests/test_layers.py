"""The package's structure: the layer contract (import-linter), lint (ruff), and a light import."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = BIN / name
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def test_layer_contract_holds():
    """Each folder of vae_course imports only the folders below it (pyproject.toml's contract)."""
    done = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_ruff_is_clean():
    done = subprocess.run([_tool("ruff"), "check", "vae_course", "tests", "benchmarks", "scripts", "book/_ext"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_is_light_and_changes_nothing():
    """`import vae_course` loads neither pyplot nor the classroom tools, and leaves torch's threads alone."""
    code = ("import sys, torch; t = torch.get_num_threads(); import vae_course as vc; "
            "assert torch.get_num_threads() == t; "
            "bad = [m for m in ('matplotlib', 'matplotlib.pyplot', 'nbformat', 'vae_course.classroom') "
            "if m in sys.modules]; print(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "tests")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_face_names_are_explicit_and_unique():
    """Every name in vc.__all__ exists, appears once, and no face module uses a star import."""
    import vae_course as vc

    assert len(vc.__all__) == len(set(vc.__all__))
    for name in vc.__all__:
        assert hasattr(vc, name), name
    for init in (REPO / "vae_course").rglob("__init__.py"):
        assert "import *" not in init.read_text(), init
