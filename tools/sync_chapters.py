"""Pair, check and execute the chapters.

The jupytext percent file ``chapters/NN_topic.py`` is the source of truth; the paired
``chapters/NN_topic.ipynb`` carries the outputs of a real run, which the book renders.

    python tools/sync_chapters.py                 # update every .ipynb from its .py, keeping outputs
    python tools/sync_chapters.py --check         # exit 1 if a pair disagrees (cells or missing outputs)
    python tools/sync_chapters.py --execute       # execute with the `cpu` budget and write the outputs
    python tools/sync_chapters.py --execute --budget smoke chapters/01_information_theory.py

Execution runs top to bottom in a fresh kernel whose working directory is ``chapters/``;
any error stops it (nothing half-executed is written).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
FORMATS = "ipynb,py:percent"


def chapter_sources(paths: list[str]) -> list[Path]:
    if paths:
        out = [Path(p).resolve().with_suffix(".py") for p in paths]
    else:
        out = sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))
    missing = [p for p in out if not p.exists()]
    if missing:
        sys.exit(f"no such chapter source: {', '.join(map(str, missing))}")
    return out


def cell_signature(nb) -> list[tuple[str, str]]:
    """What must agree between the .py and the .ipynb: cell types, sources and tags."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", [])))
            for c in nb.cells]


def pair_problems(src: Path) -> list[str]:
    """Reasons why ``src`` and its .ipynb are not a valid pair (empty when they are)."""
    ipynb = src.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb.name} is missing"]
    a, b = jupytext.read(src), jupytext.read(ipynb)
    problems = []
    if cell_signature(a) != cell_signature(b):
        problems.append(f"{src.name} and {ipynb.name} differ: run `python tools/sync_chapters.py` "
                        "(and re-execute if code changed)")
    code = [c for c in b.cells if c.cell_type == "code"]
    if code and not any(c.get("outputs") for c in code):
        problems.append(f"{ipynb.name} has no outputs: run `python tools/sync_chapters.py --execute`")
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
        problems.append(f"{ipynb.name} has an error in its committed outputs")
    return problems


def _clean(nb) -> None:
    nb.metadata.setdefault("jupytext", {})["formats"] = FORMATS
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def update(src: Path) -> None:
    """Rewrite the .ipynb from the .py, keeping the outputs of unchanged code cells."""
    ipynb = src.with_suffix(".ipynb")
    nb = jupytext.read(src)
    if ipynb.exists():
        old = nbformat.read(ipynb, as_version=4)
        outputs = {c.source.strip(): (c.get("outputs", []), c.get("execution_count"))
                   for c in old.cells if c.cell_type == "code"}
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.source.strip() in outputs:
                cell.outputs, cell.execution_count = outputs[cell.source.strip()]
        for key in ("widgets",):
            if key in old.metadata:
                nb.metadata[key] = old.metadata[key]
    _clean(nb)
    jupytext.write(nb, ipynb)


def execute(src: Path, budget: str, timeout: int) -> float:
    """Execute ``src`` in a fresh kernel with ``ROBUSTKIT_BUDGET=budget``; write the .ipynb."""
    from nbclient import NotebookClient

    nb = jupytext.read(src)
    os.environ["ROBUSTKIT_BUDGET"] = budget
    os.environ.setdefault("ROBUSTKIT_PROGRESS", "off")  # no progress bars in committed outputs
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    shared_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if "ROBUSTKIT_DATA" not in os.environ and shared_data.is_dir():
        os.environ["ROBUSTKIT_DATA"] = str(shared_data)  # the offline copies, as in _env.sh
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(src.parent)}},
                            store_widget_state=True)
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    _clean(nb)
    jupytext.write(nb, src.with_suffix(".ipynb"))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter .py or .ipynb files (default: all)")
    parser.add_argument("--check", action="store_true", help="only check the pairs")
    parser.add_argument("--execute", action="store_true", help="execute and write outputs")
    parser.add_argument("--budget", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)

    sources = chapter_sources(args.chapters)
    if args.check:
        problems = [p for src in sources for p in pair_problems(src)]
        print("\n".join(problems) if problems else f"{len(sources)} chapter pairs agree")
        return 1 if problems else 0
    for src in sources:
        if args.execute:
            seconds = execute(src, args.budget, args.timeout)
            print(f"executed {src.name} with budget {args.budget} in {seconds:.1f} s")
        else:
            update(src)
            print(f"updated {src.with_suffix('.ipynb').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
