"""The course's command line: `python -m vae_course <command>` (also installed as `vae-course`).

Taught in: the preface ("The student edition" and "Checking a notebook").

    python -m vae_course student-edition OUTDIR [--book ROOT] [--force] [--no-run]
    python -m vae_course check NOTEBOOK [--timeout SECONDS] [--total-timeout SECONDS] [--json]  (alias: grade)
"""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae_course", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    edition = commands.add_parser("student-edition", help="write the chapters with solutions replaced by stubs")
    edition.add_argument("outdir", help="folder to write the student notebooks into (new or empty)")
    edition.add_argument("--book", help="folder holding _toc.yml (default: the repository of this package)")
    edition.add_argument("--force", action="store_true", help="write into a non-empty folder")
    edition.add_argument("--no-run", action="store_true",
                         help="do not execute the chapters; numbers in the text then point to the printed values")
    for name in ("check", "grade"):
        grade = commands.add_parser(name, help="run a copy of a student notebook and list its checks")
        grade.add_argument("notebook", help="the student's .ipynb (never modified)")
        grade.add_argument("--timeout", type=float, default=120, help="seconds allowed per cell (default 120)")
        grade.add_argument("--total-timeout", type=float, default=None,
                           help="seconds allowed for the whole run (default 10 x --timeout + 120)")
        grade.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _student_edition(args) -> int:
    from .edition import write_student_edition

    written = write_student_edition(args.outdir, book=args.book, force=args.force, run=not args.no_run)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} student notebook(s) in {args.outdir}")
    return 0


def _grade(args) -> int:
    from .grading import format_table, grade_notebook, to_json

    results = grade_notebook(args.notebook, timeout=args.timeout, total_timeout=args.total_timeout)
    print(to_json(results) if args.json else format_table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m vae_course` and `vae-course`; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _student_edition(args) if args.command == "student-edition" else _grade(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
