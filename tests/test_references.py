"""Cross-references resolve: "Taught in" lines, chapter numbers and links to chapters.

- Every "Taught in: the preface (...)" clause of the package names, in quotes, a heading that
  the preface has; every "Taught in: chapter N (...)" names a chapter notebook of the book (and
  any heading it quotes is a heading of that chapter).
- Every "chapter N" that the package or a chapter's Markdown mentions is a chapter of the plan
  in the preface's table: a chapter that exists, or one marked "in preparation". Chapters of
  cited books ("{cite}`bishop2006pattern`, chapter 9") are not ours and are skipped.
- Every link from a chapter to a chapter notebook, and every row of the preface's table that
  links one, points at a notebook that exists, with the number the text gives it.

The detectors are run on small synthetic texts first, so that a detector that cannot fail
would show up here.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from vae_course.classroom.edition import chapter_notebooks

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "vae_course"
BOOK = REPO / "book"
PREFACE = BOOK / "preface.md"

_FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})")
_HEADING = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*#*\s*$")
_CHAPTER = re.compile(r"\b[Cc]hapters?\s+(?P<first>\d+)(?:\s*(?:-|–|to|and)\s*(?P<last>\d+))?"
                      r"(?:\s*\((?P<paren>[^)]*)\))?")
_PREFACE_REF = re.compile(r"\bthe preface\b(?:\s*\((?P<paren>[^)]*)\))?")
_QUOTED = re.compile(r"\"([^\"]+)\"")
_CITED_BEFORE = re.compile(r"\{cite(?::\w+)?\}`[^`]*`,?\s*$")
_CITED_AFTER = re.compile(r"^\s*of\s+\{cite")
_PLAN_ROW = re.compile(r"^\|[^|\n]*\|\s*(?:\{doc\}`)?(?P<number>\d+)\.\s*(?P<rest>[^|\n]*)\|", re.M)
_DOC_TARGET = re.compile(r"<(?P<target>[\w./-]+)>`")
_LINK = re.compile(r"\[[Cc]hapter\s+(?P<number>\d+)\]\((?P<target>[^)#\s]+)")
_DOC_ROLE = re.compile(r"\{doc\}`(?P<text>[^`<]*?)\s*<(?P<target>[^>]+)>`")


# --- what the book has -----------------------------------------------------------------------------

def headings(markdown: str) -> set[str]:
    """The ATX headings of `markdown` (outside fenced blocks), as their text."""
    found, fence = set(), None
    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence) and not line.strip()[len(mark):].strip():
                fence = None
            continue
        h = _HEADING.match(line)
        if h and fence is None:
            found.add(h["text"].strip())
    return found


def notebook_markdown(path: Path) -> str:
    return "\n\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def chapter_number(path: Path) -> int | None:
    m = re.match(r"(\d+)[_-]", Path(path).name)
    return int(m.group(1)) if m else None


CHAPTER_FILES = {chapter_number(p): p for p in chapter_notebooks(REPO) if chapter_number(p) is not None}


def plan(preface: str) -> dict[int, str]:
    """The preface's table of chapters: number -> the rest of its cell (a {doc} link or a title)."""
    return {int(m["number"]): m["rest"] for m in _PLAN_ROW.finditer(preface)}


# --- detectors --------------------------------------------------------------------------------------

def taught_in_clauses(text: str) -> list[tuple[int, str]]:
    """Each "Taught in:" clause of `text` (up to its first full stop or semicolon outside parentheses),
    whitespace collapsed, with the line it starts on."""
    clauses = []
    for m in re.finditer(r"Taught in:", text):
        rest, depth, end = text[m.end():], 0, None
        for i, ch in enumerate(rest):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and (ch == ";" or rest.startswith('"""', i)
                                 or (ch == "." and (i + 1 == len(rest) or rest[i + 1].isspace()))):
                end = i
                break
        clauses.append((text.count("\n", 0, m.start()) + 1, " ".join(rest[:end].split())))
    return clauses


def taught_in_problems(text: str, where: str, preface_headings: set[str],
                       chapters: dict[int, set[str]]) -> list[str]:
    """What is wrong with the "Taught in" clauses of `text`.

    `chapters` maps each existing chapter number to its headings.
    """
    problems = []
    for line, clause in taught_in_clauses(text):
        at = f"{where}:{line}: Taught in: {clause!r}"
        named = False
        for m in _PREFACE_REF.finditer(clause):
            named = True
            sections = _QUOTED.findall(m["paren"] or "")
            if not sections:
                problems.append(f"{at}: name the preface's section in quotes, e.g. the preface (\"Licence\")")
            problems += [f"{at}: the preface has no section {s!r}" for s in sections if s not in preface_headings]
        for m in _CHAPTER.finditer(clause):
            named = True
            first, last = int(m["first"]), int(m["last"] or m["first"])
            for n in range(first, last + 1):
                if n not in chapters:
                    problems.append(f"{at}: there is no chapter {n} in the book")
                    continue
                problems += [f"{at}: chapter {n} has no section {s!r}"
                             for s in _QUOTED.findall(m["paren"] or "") if s not in chapters[n]]
        if not named:
            problems.append(f"{at}: names neither a chapter nor a section of the preface")
    return problems


def chapter_mentions(text: str) -> list[tuple[int, int]]:
    """(line, chapter number) of every mention of one of our chapters, ranges expanded."""
    found = []
    for m in _CHAPTER.finditer(text):
        if _CITED_BEFORE.search(text[:m.start()]) or _CITED_AFTER.match(text[m.end():]):
            continue  # a chapter of a cited book
        line = text.count("\n", 0, m.start()) + 1
        first, last = int(m["first"]), int(m["last"] or m["first"])
        found += [(line, n) for n in range(first, last + 1)]
    return found


def mention_problems(text: str, where: str, planned: set[int]) -> list[str]:
    return [f"{where}:{line}: chapter {n} is not in the preface's table of chapters"
            for line, n in chapter_mentions(text) if n not in planned]


def link_problems(text: str, where: str, folder: Path) -> list[str]:
    """Links to chapter notebooks that do not exist or whose number differs from the text's."""
    problems = []
    targets = [(int(m["number"]), m["target"]) for m in _LINK.finditer(text)]
    for m in _DOC_ROLE.finditer(text):
        number = re.match(r"\s*(\d+)\.", m["text"])
        if number:
            targets.append((int(number.group(1)), m["target"]))
    for number, target in targets:
        path = folder / target
        candidates = [path, path.with_name(path.name + ".ipynb"), path.with_name(path.name + ".md")]
        if not any(p.is_file() for p in candidates):
            problems.append(f"{where}: chapter {number} links to {target!r}, which does not exist")
        elif chapter_number(Path(target)) != number:
            problems.append(f"{where}: the link to {target!r} calls it chapter {number}")
    return problems


def plan_problems(preface: str, folder: Path, existing: dict[int, Path]) -> list[str]:
    """Rows of the preface's table: an existing chapter is linked, a missing one is marked planned."""
    problems, rows = [], plan(preface)
    for number, rest in rows.items():
        doc = _DOC_TARGET.search(rest)
        if doc is None and "in preparation" not in rest:
            problems.append(f"chapter {number} of the preface's table is neither linked nor 'in preparation'")
        if doc is None and number in existing:
            problems.append(f"chapter {number} exists but the preface's table does not link it")
    problems += [f"chapter {n} ({p.name}) is missing from the preface's table" for n, p in existing.items()
                 if n not in rows]
    return problems + link_problems(preface, "preface", folder)


# --- the detectors can fail -----------------------------------------------------------------------------

SYNTHETIC_HEADINGS = {"How to run a chapter", "Licence"}
SYNTHETIC_CHAPTERS = {1: {"Fitting one Gaussian"}, 2: set()}


@pytest.mark.parametrize("text, expected", [
    ('"""Tools.\n\nTaught in: the preface ("How to run a chapter").\n"""', []),
    ('"""Tools.\n\nTaught in: chapter 1 ("Fitting one Gaussian"); used again in chapter 9.\n"""', []),
    ('"""Tools.\n\nTaught in: chapters 1-2 (mixtures) and the preface\n    ("Licence").\n"""', []),
    ('"""Tools.\n\nTaught in: the preface ("How to read a chapter").\n"""', ["no section 'How to read a chapter'"]),
    ('"""Tools.\n\nTaught in: the preface (threads and seeds).\n"""', ["name the preface's section in quotes"]),
    ('"""Tools.\n\nTaught in: chapter 4 (the ELBO).\n"""', ["there is no chapter 4"]),
    ('"""Tools.\n\nTaught in: chapters 1 to 3.\n"""', ["there is no chapter 3"]),
    ('"""Tools.\n\nTaught in: chapter 1 ("Mixtures").\n"""', ["chapter 1 has no section 'Mixtures'"]),
    ('"""Tools.\n\nTaught in: the appendix.\n"""', ["names neither a chapter nor"]),
])
def test_taught_in_detector(text, expected):
    problems = taught_in_problems(text, "x.py", SYNTHETIC_HEADINGS, SYNTHETIC_CHAPTERS)
    assert len(problems) == len(expected), problems
    for problem, words in zip(problems, expected):
        assert words in problem and problem.startswith("x.py:3: Taught in:"), problem


def test_mention_detector_skips_cited_books_and_expands_ranges():
    text = ("As chapter 2 shows, and chapters 4 to 5 will. See {cite}`bishop2006pattern`, chapter 9,\n"
            "and chapter 12 of {cite}`murphy2022probabilistic`. Chapter 7 derives it.")
    assert chapter_mentions(text) == [(1, 2), (1, 4), (1, 5), (2, 7)]
    assert mention_problems(text, "ch.md", planned={1, 2, 3, 4, 5}) == [
        "ch.md:2: chapter 7 is not in the preface's table of chapters"]


def test_headings_skip_fenced_blocks():
    text = "# Title\n\n```python\n# not a heading\n```\n\n## How to run a chapter\n:::{note}\n### Inside\n:::\n"
    assert headings(text) == {"Title", "How to run a chapter"}


def test_link_and_plan_detectors(tmp_path):
    (tmp_path / "01_first.ipynb").write_text("{}")
    text = "See [Chapter 1](01_first.ipynb), [Chapter 2](02_second.ipynb) and [Chapter 3](01_first.ipynb)."
    problems = link_problems(text, "ch", tmp_path)
    assert len(problems) == 2 and "'02_second.ipynb', which does not exist" in problems[0]
    assert "calls it chapter 3" in problems[1]
    preface = ("| part | chapter | what |\n|---|---|---|\n"
               "| A | {doc}`1. First <01_first>` | x |\n"
               "| B | 2. Second (in preparation) | y |\n"
               "| B | 3. Third | z |\n")
    assert plan(preface).keys() == {1, 2, 3}
    assert plan_problems(preface, tmp_path, {1: tmp_path / "01_first.ipynb"}) == [
        "chapter 3 of the preface's table is neither linked nor 'in preparation'"]
    assert plan_problems(preface.replace("{doc}`1. First <01_first>`", "1. First (in preparation)"), tmp_path,
                         {1: tmp_path / "01_first.ipynb"}) == [
        "chapter 1 exists but the preface's table does not link it",
        "chapter 3 of the preface's table is neither linked nor 'in preparation'"]


# --- the real book and package ----------------------------------------------------------------------------

PACKAGE_FILES = sorted(PACKAGE.rglob("*.py"))


def test_there_is_something_to_check():
    assert CHAPTER_FILES, "no chapter notebooks found through _toc.yml"
    texts = [p.read_text(encoding="utf-8") for p in PACKAGE_FILES]
    assert sum(len(taught_in_clauses(t)) for t in texts) >= 10
    assert any(_PREFACE_REF.search(c) for t in texts for _, c in taught_in_clauses(t))


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_package_taught_in_lines_resolve(path):
    preface_headings = headings(PREFACE.read_text(encoding="utf-8"))
    chapters = {n: headings(notebook_markdown(p)) for n, p in CHAPTER_FILES.items()}
    text = path.read_text(encoding="utf-8")
    assert taught_in_problems(text, str(path.relative_to(REPO)), preface_headings, chapters) == []


def test_preface_table_lists_every_chapter():
    assert plan_problems(PREFACE.read_text(encoding="utf-8"), BOOK, CHAPTER_FILES) == []


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_package_mentions_only_chapters_of_the_plan(path):
    planned = set(plan(PREFACE.read_text(encoding="utf-8")))
    assert mention_problems(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)), planned) == []


@pytest.mark.parametrize("path", sorted(CHAPTER_FILES.values()), ids=lambda p: p.name)
def test_chapter_mentions_and_links_resolve(path):
    planned = set(plan(PREFACE.read_text(encoding="utf-8")))
    text = notebook_markdown(path)
    problems = mention_problems(text, path.name, planned) + link_problems(text, path.name, path.parent)
    assert problems == []


@pytest.mark.parametrize("path", sorted(CHAPTER_FILES.values()), ids=lambda p: p.name)
def test_chapter_refers_to_earlier_chapters_only_as_existing_ones(path):
    """A chapter may point forward to a chapter in preparation, but never back to a missing one."""
    own = chapter_number(path)
    missing = sorted({n for _, n in chapter_mentions(notebook_markdown(path)) if n < own and n not in CHAPTER_FILES})
    assert missing == [], f"{path.name} refers back to chapters that do not exist: {missing}"
