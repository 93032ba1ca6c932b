"""Time every chapter (executed as a reader would, one torch thread) and, optionally, the test suite.

    python benchmarks/run.py            # chapters only
    python benchmarks/run.py --suite    # chapters, then `python -m pytest` as a whole

Prints a table. Targets (measured, not asserted): each chapter under 60 s on a 2-core
machine, the whole suite under 20 minutes.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from vae_course.classroom.edition import chapter_notebooks

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_TARGET_S = 60.0
SUITE_TARGET_S = 20 * 60.0


def chapters() -> list[Path]:
    """Chapter notebooks in table-of-contents order."""
    return chapter_notebooks(ROOT)


def time_chapter(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:  # chapters run in a scratch folder, like the build
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start


def time_suite() -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                         capture_output=True, text=True)
    last = (out.stdout.strip().splitlines() or ["(no output)"])[-1]
    return time.perf_counter() - start, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    args = parser.parse_args()
    rows = []
    for path in chapters():
        seconds = time_chapter(path)
        rows.append((path.stem, seconds, CHAPTER_TARGET_S))
    if args.suite:
        seconds, summary = time_suite()
        rows.append((f"test suite ({summary})", seconds, SUITE_TARGET_S))
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'seconds':>8}  {'target':>7}  ok")
    for name, seconds, target in rows:
        print(f"{name:<{width}}  {seconds:8.1f}  {target:7.0f}  {'yes' if seconds < target else 'NO'}")


if __name__ == "__main__":
    main()
