"""``python -m robustkit assign``: generate assignments from chapters and grade submissions.

Examples::

    python -m robustkit assign list
    python -m robustkit assign generate chapters/01_information_theory.py --out dist
    python -m robustkit assign grade dist/01_information_theory/autograder.json \\
        submission.ipynb --json grade.json

See the instructor guide (book/instructor_guide.md) and :mod:`robustkit.assign`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robustkit import assign


def _chapters(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted(p for p in Path("chapters").glob("[0-9][0-9]_*.py"))


def cmd_list(args) -> int:
    for path in _chapters(args.chapters):
        tests = assign.find_tests(assign.read_notebook(path))
        questions = dict.fromkeys(t.question for t in tests)
        hidden = sum(t.hidden for t in tests)
        print(f"{path}: {len(questions)} exercises, {len(tests)} tests ({hidden} hidden)"
              + (": " + ", ".join(questions) if questions else ""))
    return 0


def cmd_generate(args) -> int:
    for path in _chapters(args.chapters):
        nb = assign.read_notebook(path)
        if not assign.has_exercises(nb):
            print(f"skip {path}: no check cells")
            continue
        paths = assign.generate(path, args.out, budget=args.budget)
        print(f"{path} -> " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_grade(args) -> int:
    report = assign.grade(args.autograder, args.submission, cell_timeout=args.cell_timeout,
                          test_timeout=args.test_timeout, budget=args.budget)
    print(report.feedback())
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robustkit")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assign", help="classroom assignments").add_subparsers(
        dest="action", required=True)
    p = a.add_parser("list", help="list the exercises and tests of chapters")
    p.add_argument("chapters", nargs="*", help="chapter files (default: chapters/NN_*.py)")
    p.set_defaults(func=cmd_list)
    p = a.add_parser("generate", help="write student / solution notebooks and autograders")
    p.add_argument("chapters", nargs="*", help="chapter files (default: every chapter)")
    p.add_argument("--out", default="dist", help="output folder (default: dist)")
    p.add_argument("--budget", default="smoke", help="budget used to grade (default: smoke)")
    p.set_defaults(func=cmd_generate)
    p = a.add_parser("grade", help="grade a submitted notebook")
    p.add_argument("autograder", help="autograder.json written by 'generate'")
    p.add_argument("submission", help="the student's .ipynb")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.add_argument("--cell-timeout", type=float, default=600, help="seconds per cell")
    p.add_argument("--test-timeout", type=float, default=60, help="seconds per test")
    p.add_argument("--budget", default=None, help="override the autograder's budget")
    p.set_defaults(func=cmd_grade)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (assign.AssignmentError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
