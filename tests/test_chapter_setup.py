"""Every chapter opens the same way: a set-up cell that works on Colab/Binder and calls vc.setup().

The repository URL lives in `_config.yml` only; the set-up cell must install from that URL.
"""
import re
from pathlib import Path

import nbformat
import pytest

from vae_course.classroom.edition import chapter_notebooks

ROOT = Path(__file__).resolve().parents[1]


def repository_url() -> str:
    config = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", config, flags=re.M)
    assert match, "_config.yml must set repository.url"
    return match.group(1)


SETUP_CELL = '''# Set-up. On Colab or Binder without the course package, this installs it first.
import importlib.util

if importlib.util.find_spec("vae_course") is None:
    %pip install --quiet "vae_course @ git+{url}"

import vae_course as vc

vc.setup()  # one torch thread, seeded generators, the course's figure style'''


def chapter_paths():
    return chapter_notebooks(ROOT)


def test_there_are_chapters():
    assert len(chapter_paths()) >= 3


@pytest.mark.parametrize("path", chapter_paths(), ids=lambda p: p.stem)
def test_first_code_cell_is_the_standard_setup(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    assert code[0].source.strip() == SETUP_CELL.format(url=repository_url()), (
        f"{path.name}: the first code cell must be the standard set-up cell (see tests/test_chapter_setup.py)"
    )


@pytest.mark.parametrize("path", chapter_paths(), ids=lambda p: p.stem)
def test_chapter_has_one_title_and_states_goals_and_time(path):
    nb = nbformat.read(path, as_version=4)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    md = re.sub(r"^(```|~~~).*?^\1", "", md, flags=re.M | re.S)  # comments in code blocks are no titles
    titles = re.findall(r"^# \S.*$", md, flags=re.M)
    assert len(titles) == 1, f"{path.name}: expected one H1 title, found {titles}"
    assert re.search(r"\b\d+\s*(minutes|min)\b", md), f"{path.name}: say how long the chapter takes"
