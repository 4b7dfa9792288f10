"""Classroom assignments: student versions, solution versions and an autograder.

One chapter file is the single source. Its exercises follow these conventions
(compatible in spirit with nbgrader and otter-grader):

- a markdown statement, then a **stub** cell the student fills in (runnable as it is);
- a **solution** cell tagged ``solution`` (stripped from the student version), or a
  block between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` inside any code cell
  (replaced by ``raise NotImplementedError``, as nbgrader does);
- **check** cells tagged ``exercise-check`` whose first line is
  ``# Check exercise 1.2`` (optionally ``# Check exercise 1.2 (2 points)``): plain
  ``assert`` statements. Public checks stay in the student version; checks also tagged
  ``hidden`` (and ``remove-cell``, so the book hides them) are kept for grading only.

:func:`generate` writes the student notebook, the solution notebook and the autograder
(a JSON file holding every test); :func:`grade` runs a submission in a fresh kernel,
cell by cell with a time limit, re-inserting the autograder's own tests where the
public check cells were (or at the end if the student deleted them), so that an error,
an endless loop or a missing cell costs only the questions it touches. Used by the
instructor guide (book/instructor_guide.md); run it as ``python -m robustkit assign``.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

SOLUTION_TAG = "solution"
CHECK_TAG = "exercise-check"
HIDDEN_TAG = "hidden"
STUB_TEXT = "# YOUR CODE HERE\nraise NotImplementedError()"
_CHECK_HEADER = re.compile(
    r"^\s*#\s*check exercise\s+(?P<name>[\w.\-]+)\s*(?:\((?P<points>\d+(?:\.\d+)?)\s*points?\))?",
    re.IGNORECASE)
_BEGIN = re.compile(r"^(?P<indent>\s*)###\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*###\s*END SOLUTION\s*$")
_BADGE = re.compile(r"^\[!\[Open In Colab\].*$\n?", re.MULTILINE)


class AssignmentError(ValueError):
    """A chapter or a submission that does not follow the exercise conventions."""


@dataclass
class Test:
    """One check cell: the assertions of one question, public or hidden."""
    question: str
    code: str
    hidden: bool = False
    points: float = 1.0


@dataclass
class TestResult:
    question: str
    hidden: bool
    points: float
    passed: bool
    message: str = ""


@dataclass
class QuestionResult:
    name: str
    score: float
    points: float
    tests: list[TestResult] = field(default_factory=list)


@dataclass
class GradeReport:
    """Per-question scores and readable feedback for one submission."""
    chapter: str
    questions: list[QuestionResult]
    cell_errors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(q.score for q in self.questions)

    @property
    def points(self) -> float:
        return sum(q.points for q in self.questions)

    def as_dict(self) -> dict:
        return {"chapter": self.chapter, "score": self.score, "points": self.points,
                "questions": [asdict(q) for q in self.questions],
                "cell_errors": self.cell_errors}

    def feedback(self) -> str:
        """A readable report: one line per question, one indented line per failed test."""
        lines = [f"{self.chapter}: {self.score:g} / {self.points:g} points"]
        for q in self.questions:
            lines.append(f"  exercise {q.name}: {q.score:g} / {q.points:g}")
            for t in q.tests:
                if not t.passed:
                    kind = "hidden test" if t.hidden else "test"
                    lines.append(f"    - {kind} failed: {t.message}")
        if self.cell_errors:
            lines.append("  errors while running the submission's own cells:")
            lines.extend(f"    - {e}" for e in self.cell_errors)
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading

def read_notebook(path: str | Path):
    """Read a chapter as an nbformat notebook: a jupytext ``.py`` file or an ``.ipynb``."""
    import nbformat
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such chapter or notebook: {path}")
    if path.suffix == ".py":
        import jupytext
        return jupytext.read(path)
    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    raise AssignmentError(f"expected a .py (jupytext percent) or .ipynb file, got {path}")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def check_header(source: str) -> tuple[str, float] | None:
    """``(question, points)`` when ``source`` starts with ``# Check exercise N``."""
    first = source.lstrip("\n").split("\n", 1)[0]
    m = _CHECK_HEADER.match(first)
    if not m:
        return None
    return m.group("name").rstrip("."), float(m.group("points") or 1)


def _is_check(cell) -> bool:
    return cell.get("cell_type") == "code" and (
        CHECK_TAG in _tags(cell) or check_header(_source(cell)) is not None)


def find_tests(nb) -> list[Test]:
    """Every check cell of a chapter, in order, as :class:`Test` objects."""
    tests = []
    for i, cell in enumerate(nb.cells):
        if not _is_check(cell):
            continue
        header = check_header(_source(cell))
        if header is None:
            raise AssignmentError(
                f"cell {i} is tagged {CHECK_TAG!r} but does not start with "
                f"'# Check exercise N': {_source(cell)[:60]!r}")
        name, points = header
        tests.append(Test(name, _source(cell), HIDDEN_TAG in _tags(cell), points))
    return tests


def has_exercises(nb) -> bool:
    return bool(find_tests(nb))


# ------------------------------------------------------------------------ generation

def strip_solution_blocks(source: str) -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block by a stub."""
    out, inside, indent = [], False, ""
    for line in source.split("\n"):
        if not inside and (m := _BEGIN.match(line)):
            inside, indent = True, m.group("indent")
            out.extend(indent + s for s in STUB_TEXT.split("\n"))
        elif inside and _END.match(line):
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise AssignmentError("'### BEGIN SOLUTION' without a matching '### END SOLUTION'")
    return "\n".join(out)


def _clear(cell):
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    return cell


def student_version(nb, *, chapter: str = ""):
    """The notebook a student receives: no solution cells or blocks, no hidden tests,
    no outputs; stubs and public checks in place."""
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        tags = _tags(cell)
        if SOLUTION_TAG in tags or (_is_check(cell) and HIDDEN_TAG in tags):
            continue
        if cell.get("cell_type") == "code":
            cell["source"] = strip_solution_blocks(_source(cell))
        if cell.get("cell_type") == "markdown":
            cell["source"] = _BADGE.sub("", _source(cell))
        cells.append(_clear(cell))
    out.cells = cells
    out.metadata.setdefault("robustkit", {}).update({"chapter": chapter, "version": "student"})
    return out


def solution_version(nb, *, chapter: str = ""):
    """The instructor's notebook: every cell, outputs cleared."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        _clear(cell)
    out.metadata.setdefault("robustkit", {}).update({"chapter": chapter, "version": "solution"})
    return out


def autograder(nb, *, chapter: str = "", budget: str = "smoke") -> dict:
    """The grading spec: every test (public and hidden) with its points."""
    tests = find_tests(nb)
    if not tests:
        raise AssignmentError(f"{chapter or 'this notebook'} has no check cells "
                              f"('# Check exercise N', tagged {CHECK_TAG!r})")
    return {"format": 1, "chapter": chapter, "budget": budget,
            "tests": [asdict(t) for t in tests]}


def generate(chapter: str | Path, out_dir: str | Path, *, budget: str = "smoke") -> dict:
    """Write ``student.ipynb``, ``solution.ipynb`` and ``autograder.json`` for a chapter
    into ``out_dir/<chapter name>/`` and return their paths."""
    import nbformat
    chapter = Path(chapter)
    nb = read_notebook(chapter)
    name = chapter.stem
    spec = autograder(nb, chapter=name, budget=budget)
    target = Path(out_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    paths = {"student": target / "student.ipynb", "solution": target / "solution.ipynb",
             "autograder": target / "autograder.json"}
    nbformat.write(student_version(nb, chapter=name), paths["student"])
    nbformat.write(solution_version(nb, chapter=name), paths["solution"])
    paths["autograder"].write_text(json.dumps(spec, indent=1))
    return paths


# --------------------------------------------------------------------------- grading

def _error_text(reply, outputs) -> str | None:
    """The error of an executed cell, from its execute reply (timeouts included) or outputs."""
    content = (reply or {}).get("content", {})
    if content.get("status") == "error":
        return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".strip().rstrip(":")
    for out in outputs:
        if out.get("output_type") == "error":
            value = out.get("evalue", "")
            return f"{out.get('ename', 'Error')}: {value}".strip().rstrip(":")
    return None


def _grading_cells(submission, tests: list[Test]) -> list[tuple[str, object]]:
    """The cells to run: the submission's own cells, with its check cells replaced by
    the autograder's tests of the same question (public then hidden); tests of a question
    whose check cell was deleted go at the end."""
    import nbformat
    by_question: dict[str, list[Test]] = {}
    for t in tests:
        by_question.setdefault(t.question, []).append(t)
    plan, placed = [], set()
    for cell in submission.cells:
        if cell.get("cell_type") != "code":
            continue
        if _is_check(cell):
            header = check_header(_source(cell))
            q = header[0] if header else None
            if q in by_question and q not in placed:
                placed.add(q)
                plan.extend(("test", t) for t in by_question[q])
            continue
        plan.append(("cell", nbformat.v4.new_code_cell(_source(cell))))
    for q, ts in by_question.items():
        if q not in placed:
            plan.extend(("test", t) for t in ts)
    return plan


def grade(spec: str | Path | dict, submission: str | Path, *, cell_timeout: float = 600,
          test_timeout: float = 60, budget: str | None = None,
          kernel_name: str = "python3", cwd: str | Path | None = None) -> GradeReport:
    """Grade a submitted notebook against an autograder spec.

    The submission runs in a fresh kernel with ``ROBUSTKIT_BUDGET`` set to the spec's
    budget; every cell gets ``cell_timeout`` seconds and every test ``test_timeout``
    (the kernel is interrupted past it). Errors never stop the run. A kernel that dies is
    restarted and the submission's cells re-run, so later questions are still graded.
    """
    import os

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    if not isinstance(spec, dict):
        spec = json.loads(Path(spec).read_text())
    if spec.get("format") != 1 or "tests" not in spec:
        raise AssignmentError("not a robustkit autograder spec (missing 'format'/'tests')")
    tests = [Test(**t) for t in spec["tests"]]
    submission = Path(submission)
    try:
        sub_nb = nbformat.read(submission, as_version=4)
    except Exception as exc:  # unreadable JSON, wrong format ...
        raise AssignmentError(f"cannot read the submission {submission}: {exc}") from exc
    plan = _grading_cells(sub_nb, tests)

    env_budget = budget or spec.get("budget", "smoke")
    old = os.environ.get("ROBUSTKIT_BUDGET")
    os.environ["ROBUSTKIT_BUDGET"] = env_budget
    results: dict[int, TestResult] = {}
    cell_errors: list[str] = []
    run_dir = str(cwd or submission.parent)
    try:
        done = _run_plan(plan, results, cell_errors, cell_timeout, test_timeout,
                         kernel_name, run_dir, NotebookClient, DeadKernelError)
        while not done:  # the kernel died: restart, re-run the cells, skip graded tests
            done = _run_plan(plan, results, cell_errors, cell_timeout, test_timeout,
                             kernel_name, run_dir, NotebookClient, DeadKernelError)
    finally:
        if old is None:
            os.environ.pop("ROBUSTKIT_BUDGET", None)
        else:
            os.environ["ROBUSTKIT_BUDGET"] = old

    questions: dict[str, QuestionResult] = {}
    for i, (kind, item) in enumerate(plan):
        if kind != "test":
            continue
        r = results[i]
        q = questions.setdefault(item.question, QuestionResult(item.question, 0.0, 0.0))
        q.tests.append(r)
        q.points += r.points
        q.score += r.points if r.passed else 0.0
    unique_errors = list(dict.fromkeys(cell_errors))  # re-runs after a restart repeat them
    return GradeReport(spec.get("chapter", ""), list(questions.values()), unique_errors)


def _run_plan(plan, results, cell_errors, cell_timeout, test_timeout, kernel_name,
              run_dir, NotebookClient, DeadKernelError) -> bool:
    """Run the plan in one kernel; False when the kernel died (the caller restarts)."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [item if kind == "cell" else nbformat.v4.new_code_cell(item.code)
                for kind, item in plan]
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name=kernel_name,
                            allow_errors=True, interrupt_on_timeout=True,
                            error_on_timeout={"ename": "TimeoutError",
                                              "evalue": "time limit exceeded",
                                              "traceback": []},
                            resources={"metadata": {"path": run_dir}})
    replies: dict[int, dict] = {}
    client.on_cell_executed = lambda **kw: replies.__setitem__(kw["cell_index"],
                                                               kw["execute_reply"])
    with client.setup_kernel():
        for i, (kind, item) in enumerate(plan):
            if i in results:
                continue  # a test already graded before a kernel restart
            cell = nb.cells[i]
            client.timeout = test_timeout if kind == "test" else cell_timeout
            try:
                client.execute_cell(cell, i)
                err = _error_text(replies.get(i), cell.outputs)
            except DeadKernelError:
                err = "the kernel died"
                if kind == "test":
                    results[i] = TestResult(item.question, item.hidden, item.points, False, err)
                else:
                    cell_errors.append(f"cell {i}: {err}")
                    nb.cells[i] = nbformat.v4.new_code_cell("pass")  # do not re-run it
                    plan[i] = ("cell", nb.cells[i])
                return False
            if kind == "test":
                message = err or ""
                if err and item.hidden:  # say what failed, never show hidden code
                    message = err.split(":", 1)[0] + " in a hidden test"
                results[i] = TestResult(item.question, item.hidden, item.points,
                                        err is None, message)
            elif err:
                cell_errors.append(f"cell {i}: {err[:200]}")
    return True
