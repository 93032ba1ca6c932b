"""Cross-references between chapters stay true.

Every `{ref}` target is a label some page defines, and a sentence that says another chapter
derives, proves or shows something links to a labelled section of that chapter (so the claim
points at a place that does it, and breaks loudly if the section moves or goes).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
LABEL = re.compile(r"^\(([\w\-]+)\)=\s*$", re.M)
REF = re.compile(r"\{ref\}`([^`]*)`")
CLAIM = re.compile(r"\b[Cc]hapter (\d+) (derives|proves|shows how)\b")


def pages() -> dict[Path, str]:
    out = {}
    for path in sorted(BOOK.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out[path] = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for path in sorted(BOOK.glob("*.md")):
        out[path] = path.read_text(encoding="utf-8")
    return out


def labels_by_page(texts: dict[Path, str]) -> dict[str, Path]:
    found = {}
    for path, text in texts.items():
        for label in LABEL.findall(text):
            assert label not in found, f"label {label!r} defined twice: {found.get(label)} and {path}"
            found[label] = path
    return found


def _target(ref: str) -> str:
    m = re.search(r"<([^>]+)>\s*$", ref)
    return (m.group(1) if m else ref).strip()


def problems(texts: dict[Path, str]) -> list[str]:
    labels = labels_by_page(texts)
    out = []
    for path, text in texts.items():
        for ref in REF.findall(text):
            if _target(ref) not in labels:
                out.append(f"{path.name}: {{ref}}`{ref}` points at no label")
        for m in CLAIM.finditer(text):
            chapter = int(m.group(1))
            window = text[max(0, m.start() - 10): m.end() + 200]
            ref = REF.search(window)
            if not ref or ref.start() > 20:  # the claim itself must be (inside) the link text
                out.append(f"{path.name}: '{m.group(0)}' is not a link to the section that does it")
                continue
            home = labels.get(_target(ref.group(1)))
            if home is None or not home.name.startswith(f"{chapter:02d}_"):
                out.append(f"{path.name}: '{m.group(0)}' links to {_target(ref.group(1))!r}, "
                           f"which is not in chapter {chapter}")
    return out


def test_every_cross_reference_is_true():
    assert problems(pages()) == []


@pytest.mark.parametrize("text, expected", [
    ("See {ref}`nowhere`.", ["x.md: {ref}`nowhere` points at no label"]),
    ("It is Gaussian (chapter 3 derives it).", ["x.md: 'chapter 3 derives' is not a link to the section that does it"]),
    ("(here)=\n# H\nIt is ({ref}`chapter 3 derives it <here>`).",
     ["x.md: 'chapter 3 derives' links to 'here', which is not in chapter 3"]),
])
def test_detector_catches_broken_claims(text, expected):
    assert problems({Path("x.md"): text}) == expected


def test_detector_accepts_a_true_claim():
    texts = {Path("03_linear.md"): "(post)=\n## Posterior", Path("02_lvm.md"): "({ref}`chapter 3 derives it <post>`)"}
    assert problems(texts) == []
