"""Time every chapter (executed as a reader would, one torch thread) and, optionally, the test suite.

    python benchmarks/run.py            # each chapter executed once here, one after the other
    python benchmarks/run.py --suite    # `python -m pytest` as a whole; chapter times from its runs

With `--suite` no chapter is executed outside the suite: the suite executes each chapter once for
all its checks (tests/conftest.py) and writes those times to the file named by
`VAE_COURSE_TIMINGS`, which this script reads. Those chapters ran two at a time next to the rest of
the suite, so their times are an upper bound on a reader's.

Prints a table. Targets (measured, not asserted): each chapter under 60 s on a 2-core machine, the
whole suite under 10 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
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
SUITE_TARGET_S = 10 * 60.0
TIMINGS_ENV = "VAE_COURSE_TIMINGS"  # read by tests/conftest.py
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as in tests/notebook_utils.py


def chapters() -> list[Path]:
    """Chapter notebooks in table-of-contents order."""
    return chapter_notebooks(ROOT)


def time_chapter(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:  # chapters run in a scratch folder, like the build
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}})
        start = time.perf_counter()
        client.execute(env={**os.environ, **KERNEL_ENV}, stderr=subprocess.DEVNULL)  # the kernel's own log
        return time.perf_counter() - start


def time_suite() -> tuple[float, subprocess.CompletedProcess, dict]:
    """Wall time of `python -m pytest`, its result, and the timings it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        timings = Path(tmp) / "timings.json"
        env = dict(os.environ, **{TIMINGS_ENV: str(timings)})
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                             capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        data = json.loads(timings.read_text()) if timings.exists() else {}
    return seconds, out, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true",
                        help="time the whole test suite and read the chapter times from its executions")
    args = parser.parse_args()
    rows = []
    if args.suite:
        seconds, out, data = time_suite()
        summary = (out.stdout.strip().splitlines() or ["(no output)"])[-1]
        if out.returncode:
            print(out.stdout[-20000:] + out.stderr[-4000:], file=sys.stderr)
        times = data.get("chapters", {})
        workers = data.get("workers", "?")
        for path in chapters():
            rows.append((f"{path.stem} (in the suite, {workers} at a time)", times.get(path.stem), CHAPTER_TARGET_S))
        for stem, error in data.get("errors", {}).items():
            print(f"{stem} stopped early:\n{error}", file=sys.stderr)
        rows.append((f"test suite ({summary})", seconds, SUITE_TARGET_S))
    else:
        for path in chapters():
            rows.append((path.stem, time_chapter(path), CHAPTER_TARGET_S))
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'seconds':>8}  {'target':>7}  ok")
    for name, seconds, target in rows:
        if seconds is None:
            print(f"{name:<{width}}  {'not run':>8}  {target:7.0f}  NO")
        else:
            print(f"{name:<{width}}  {seconds:8.1f}  {target:7.0f}  {'yes' if seconds < target else 'NO'}")
    if args.suite and out.returncode:
        sys.exit(out.returncode)


if __name__ == "__main__":
    main()
