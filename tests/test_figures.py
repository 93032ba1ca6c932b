"""Every figure has a caption and alt text; every widget has a static figure beside it; every
captioned cell really draws its figure.

The first two are checked on the sources (cells that draw), so they are fast and say which cell to
fix; the last reads the session's one execution of each chapter (`executed_chapter`, conftest.py).
"""
import re
from pathlib import Path

import nbformat
import pytest

from vae_course.classroom.edition import chapter_notebooks

ROOT = Path(__file__).resolve().parents[1]
DRAWS = re.compile(r"plt\.show\(\)|\bshow_images\(|\.savefig\(|\bplt\.(?:plot|imshow|hist)\(")
WIDGET = re.compile(r"\bslider_explorer\(|\binteractive(?:_output)?\(")


IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")


def chapter_paths():
    return chapter_notebooks(ROOT)


def figure_problems(nb, name="notebook") -> list[str]:
    problems = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        code = re.sub(r"#.*", "", cell.source)
        meta = cell.metadata.get("mystnb", {})
        if WIDGET.search(code):  # a live widget: its static twin must follow
            nearby = [c for c in cells[i + 1: i + 3] if c.cell_type == "code"]
            if not any(c.metadata.get("mystnb", {}).get("figure", {}).get("caption") for c in nearby):
                problems.append(f"{name} cell {i}: a widget without a captioned static figure in the next cells")
            continue
        if DRAWS.search(code):
            if not meta.get("figure", {}).get("caption"):
                problems.append(f"{name} cell {i}: a figure without a caption (mystnb.figure.caption)")
            if not meta.get("image", {}).get("alt"):
                problems.append(f"{name} cell {i}: a figure without alt text (mystnb.image.alt)")
    return problems


def drawing_problems(nb, name="notebook") -> list[str]:
    """Executed cells that carry a figure caption but show no image (the page would show none)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.metadata.get("mystnb", {}).get("figure", {}).get("caption"):
            continue
        images = [o for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")
                  and any(t in o.get("data", {}) for t in IMAGE_TYPES)]
        if not images:
            problems.append(f"{name} cell {i}: a captioned figure cell shows no image")
    return problems


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def test_detector_on_synthetic_cells():
    bare = nbformat.v4.new_code_cell("plt.plot([1, 2])\nplt.show()")
    good = nbformat.v4.new_code_cell("plt.show()", metadata={
        "mystnb": {"figure": {"caption": "A line.", "name": "fig-x"}, "image": {"alt": "A rising line."}}})
    no_alt = nbformat.v4.new_code_cell("vc.show_images(x)", metadata={"mystnb": {"figure": {"caption": "Digits."}}})
    widget = nbformat.v4.new_code_cell("vc.slider_explorer(draw, {'a': (0, 1, 0.1, 0.5)})")
    assert figure_problems(_nb(good)) == []
    assert figure_problems(_nb(bare)) == ["notebook cell 0: a figure without a caption (mystnb.figure.caption)",
                                          "notebook cell 0: a figure without alt text (mystnb.image.alt)"]
    assert figure_problems(_nb(no_alt)) == ["notebook cell 0: a figure without alt text (mystnb.image.alt)"]
    assert figure_problems(_nb(widget, good)) == []
    assert figure_problems(_nb(widget)) == [
        "notebook cell 0: a widget without a captioned static figure in the next cells"]


@pytest.mark.parametrize("path", chapter_paths(), ids=lambda p: p.stem)
def test_chapter_figures_have_captions_and_alt_text(path):
    assert figure_problems(nbformat.read(path, as_version=4), path.name) == []



def test_drawing_detector_on_synthetic_outputs():
    meta = {"mystnb": {"figure": {"caption": "A line."}, "image": {"alt": "A line."}}}
    drawn = nbformat.v4.new_code_cell("plt.show()", metadata=meta)
    drawn.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"})]
    blank = nbformat.v4.new_code_cell("plt.show()", metadata=meta)
    blank.outputs = [nbformat.v4.new_output("stream", name="stdout", text="no figure\n")]
    silent = nbformat.v4.new_code_cell("fig = plt.figure()", metadata=meta)
    assert drawing_problems(_nb(drawn, nbformat.v4.new_code_cell("x = 1"))) == []
    assert drawing_problems(_nb(blank, silent)) == [
        "notebook cell 0: a captioned figure cell shows no image",
        "notebook cell 1: a captioned figure cell shows no image"]


def test_captioned_cells_draw_their_figure(executed_chapter):
    assert drawing_problems(executed_chapter.nb, executed_chapter.path.name) == []
