"""robustkit.assign: student versions, autograder generation and robust grading."""
from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from robustkit import assign
from robustkit.assign_cli import main as cli

SOLUTION_1 = "def square(x):\n    return x * x  # the secret one-liner"
SOLUTION_2 = "def cube(x):\n    return x ** 3"


def chapter_notebook():
    """A tiny chapter with two exercises, public and hidden checks, and a solution block."""
    def code(src, tags=()):
        c = new_code_cell(src)
        c.metadata["tags"] = list(tags)
        return c
    cells = [
        new_markdown_cell("# Toy chapter\n\n[![Open In Colab](https://colab.research.google"
                          ".com/assets/colab-badge.svg)](https://colab.example/toy.ipynb)"),
        code("BASE = 2"),
        code("import ipywidgets as widgets\n"
             "widgets.interact(lambda k=1: print(k * BASE), k=widgets.IntSlider(1, 0, 3))"),
        new_markdown_cell("**Exercise 1.** Write `square`."),
        code("def square(x):\n    raise NotImplementedError"),
        code(SOLUTION_1, ["solution", "hide-input"]),
        code("# Check exercise 1\nassert square(3) == 9", ["exercise-check"]),
        code("# Check exercise 1 (2 points)\nassert square(-4) == 16 and square(BASE) == 4",
             ["exercise-check", "hidden", "remove-cell"]),
        new_markdown_cell("**Exercise 2.** Write `cube`."),
        code("def cube(x):\n    ### BEGIN SOLUTION\n    return x ** 3\n    ### END SOLUTION"),
        code("# Check exercise 2\nassert cube(2) == 8", ["exercise-check"]),
        code("# Check exercise 2\nassert cube(-3) == -27", ["exercise-check", "hidden"]),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("assign")
    chapter = root / "99_toy.ipynb"
    nbformat.write(chapter_notebook(), chapter)
    paths = assign.generate(chapter, root / "dist")
    return root, paths


def sources(nb):
    return ["".join(c.source) for c in nb.cells]


def test_generation_gives_the_expected_cells(generated):
    _, paths = generated
    student = nbformat.read(paths["student"], as_version=4)
    src = sources(student)
    joined = "\n".join(src)
    assert "def square(x):\n    raise NotImplementedError" in src  # the stub stays
    assert "# Check exercise 1\nassert square(3) == 9" in src        # public check stays
    assert "the secret one-liner" not in joined                       # solution cell gone
    assert "return x ** 3" not in joined                              # solution block gone
    assert "def cube(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()" in src
    assert "square(-4)" not in joined and "cube(-3)" not in joined    # hidden tests gone
    assert "colab.example" not in joined                              # badge of the source
    assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")
    solution = nbformat.read(paths["solution"], as_version=4)
    assert len(solution.cells) == len(chapter_notebook().cells)
    spec = json.loads(paths["autograder"].read_text())
    assert [(t["question"], t["hidden"], t["points"]) for t in spec["tests"]] == [
        ("1", False, 1.0), ("1", True, 2.0), ("2", False, 1.0), ("2", True, 1.0)]


def test_solution_scores_full_marks_and_student_version_zero(generated):
    _, paths = generated
    full = assign.grade(paths["autograder"], paths["solution"], test_timeout=30)
    assert (full.score, full.points) == (5.0, 5.0)
    empty = assign.grade(paths["autograder"], paths["student"], test_timeout=30)
    assert (empty.score, empty.points) == (0.0, 5.0)
    assert "NotImplementedError" in empty.feedback()
    hidden = [t for q in empty.questions for t in q.tests if t.hidden]
    assert hidden and all("hidden test" in t.message for t in hidden)
    assert all("cube(-3)" not in t.message for t in hidden)


def write_submission(generated, name, replace: dict, drop=()):
    """The student notebook with some cells' sources replaced and some cells deleted."""
    root, paths = generated
    nb = nbformat.read(paths["student"], as_version=4)
    cells = []
    for c in nb.cells:
        src = "".join(c.source)
        if any(d in src for d in drop):
            continue
        for old, new in replace.items():
            if src.startswith(old):
                c.source = new
        cells.append(c)
    nb.cells = cells
    path = root / f"{name}.ipynb"
    nbformat.write(nb, path)
    return paths["autograder"], path


def scores(report):
    return {q.name: q.score for q in report.questions}


def test_one_right_one_wrong_scores_exactly_that(generated):
    spec, sub = write_submission(generated, "half", {
        "def square": SOLUTION_1,
        "def cube": "def cube(x):\n    return x * x",      # wrong
    })
    report = assign.grade(spec, sub, test_timeout=30)
    assert scores(report) == {"1": 3.0, "2": 0.0}
    assert report.score == 3.0


def test_errors_loops_and_deleted_cells_cost_only_their_question(generated):
    spec, sub = write_submission(generated, "messy", {
        "def square": "def square(x):\n    import time\n    time.sleep(60)",  # loops
        "BASE = 2": "BASE = 2\nraise RuntimeError('student broke a cell')",
        "def cube": SOLUTION_2,
    })
    report = assign.grade(spec, sub, test_timeout=3)
    assert scores(report) == {"1": 0.0, "2": 2.0}
    assert any("TimeoutError" in t.message for t in report.questions[0].tests)
    assert any("student broke a cell" in e for e in report.cell_errors)

    spec, sub = write_submission(generated, "deleted", {"def square": SOLUTION_1},
                                 drop=("# Check exercise 1", "def cube"))
    report = assign.grade(spec, sub, test_timeout=30)
    assert scores(report) == {"1": 3.0, "2": 0.0}  # tests re-inserted, cube undefined


def test_a_dying_kernel_does_not_hide_later_questions(generated):
    spec, sub = write_submission(generated, "crash", {
        "def square": "def square(x):\n    import os\n    os._exit(1)",
        "def cube": SOLUTION_2,
    })
    report = assign.grade(spec, sub, test_timeout=30)
    assert scores(report) == {"1": 0.0, "2": 2.0}
    assert "kernel died" in report.questions[0].tests[0].message


def test_solution_blocks_and_headers():
    src = "x = 1\n    ### BEGIN SOLUTION\n    y = 2\n    ### END SOLUTION\nz = 3"
    assert assign.strip_solution_blocks(src) == (
        "x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\nz = 3")
    with pytest.raises(assign.AssignmentError, match="END SOLUTION"):
        assign.strip_solution_blocks("### BEGIN SOLUTION\nsecret = 1")
    assert assign.check_header("# Check exercise 3.2 (2 points)\nassert True") == ("3.2", 2.0)
    assert assign.check_header("# check exercise 4\n") == ("4", 1.0)
    assert assign.check_header("assert True") is None


def test_bad_inputs(tmp_path):
    nb = chapter_notebook()
    check = next(c for c in nb.cells if c.source.startswith("# Check exercise 1\n"))
    check.source = "assert square(3) == 9"  # tagged as a check, no header
    with pytest.raises(assign.AssignmentError, match="Check exercise"):
        assign.find_tests(nb)
    with pytest.raises(assign.AssignmentError, match="no check cells"):
        assign.autograder(new_notebook(cells=[new_code_cell("x = 1")]))
    with pytest.raises(assign.AssignmentError, match="autograder"):
        assign.grade({"tests": []}, tmp_path / "x.ipynb")
    bad = tmp_path / "broken.ipynb"
    bad.write_text("{not json")
    with pytest.raises(assign.AssignmentError, match="cannot read"):
        assign.grade({"format": 1, "tests": []}, bad)
    with pytest.raises(FileNotFoundError):
        assign.read_notebook(tmp_path / "missing.py")
    assert cli(["assign", "list", str(tmp_path / "missing.py")]) == 2


def test_cli_generate_and_grade(generated, tmp_path, capsys):
    root, paths = generated
    chapter = root / "99_toy.ipynb"
    assert cli(["assign", "generate", str(chapter), "--out", str(tmp_path)]) == 0
    out = tmp_path / "99_toy"
    assert {p.name for p in out.iterdir()} == {"student.ipynb", "solution.ipynb",
                                                "autograder.json"}
    report = tmp_path / "grade.json"
    assert cli(["assign", "grade", str(out / "autograder.json"), str(out / "solution.ipynb"),
                "--json", str(report)]) == 0
    assert "5 / 5 points" in capsys.readouterr().out
    assert json.loads(report.read_text())["score"] == 5.0
