"""Every chapter with exercises makes a working assignment (smoke budget).

For each chapter: the student version scores 0 without crashing the grader and holds
neither solution code nor hidden tests; the solution version holds every test at its
place. That the solution passes every test (public and hidden) is checked by the notebook
tests, which run each chapter, solutions and all check cells included, under nbval in the
same smoke budget (grading the solution again here would double the CI time); the
grader's scoring of a full solution is checked on a toy chapter in tests/test_assign.py.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from robustkit import assign

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
WITH_EXERCISES = [p for p in sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))
                  if assign.has_exercises(assign.read_notebook(p))]


def _code_lines(cells) -> set[str]:
    return {line.strip() for c in cells if c.cell_type == "code"
            for line in "".join(c.source).splitlines() if len(line.strip()) > 25}


def test_enough_chapters_have_exercises():
    assert len(WITH_EXERCISES) >= 2, [p.name for p in WITH_EXERCISES]


@pytest.mark.parametrize("chapter", WITH_EXERCISES, ids=lambda p: p.stem)
def test_chapter_assignment(chapter, tmp_path):
    paths = assign.generate(chapter, tmp_path)
    source = assign.read_notebook(chapter)
    student = nbformat.read(paths["student"], as_version=4)

    # no solution text: lines of solution cells that appear nowhere else in the chapter
    solution_cells = [c for c in source.cells if "solution" in c.metadata.get("tags", [])]
    other_cells = [c for c in source.cells if c not in solution_cells]
    secret = _code_lines(solution_cells) - _code_lines(other_cells)
    leaked = secret & _code_lines(student.cells)
    assert not leaked, f"solution lines in the student version: {sorted(leaked)[:3]}"
    hidden = [t.code for t in assign.find_tests(source) if t.hidden]
    text = "\n".join("".join(c.source) for c in student.cells)
    assert hidden and not any(h in text for h in hidden)

    solution = nbformat.read(paths["solution"], as_version=4)
    tests = assign.find_tests(source)
    assert [t.code for t in assign.find_tests(solution)] == [t.code for t in tests]
    points = sum(t.points for t in tests)
    # Short limits: a stub that loops (or a lost kernel message) costs 2 minutes at most.
    empty = assign.grade(paths["autograder"], paths["student"], cwd=CHAPTERS,
                         cell_timeout=120, test_timeout=60)
    assert empty.score == 0 and empty.points == points > 0, empty.feedback()
    assert len(empty.questions) == len({t.question for t in tests})
