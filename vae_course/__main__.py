"""`python -m vae_course ...`: the instructor's command line (see `vae_course.classroom.cli`)."""
import sys

from vae_course.classroom.cli import main

if __name__ == "__main__":
    sys.exit(main())
