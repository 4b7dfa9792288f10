"""The chapters and the book's table of contents are consistent.

Each chapter's jupytext ``.py`` (source of truth) and its ``.ipynb`` (with outputs) must
agree; the table of contents lists exactly the chapters that exist; every chapter follows
the anatomy of GUIDE.md §3 (Colab badge, parameters cell, exercises with solutions).
Executing the chapters is done by nbval on the ``.ipynb`` files (see scripts/test.sh).
"""
import importlib.util
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))

spec = importlib.util.spec_from_file_location("sync_chapters", ROOT / "tools" / "sync_chapters.py")
sync_chapters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_chapters)


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_there_are_chapters():
    assert len(CHAPTERS) >= 2


@pytest.mark.parametrize("src", CHAPTERS, ids=lambda p: p.stem)
def test_pair_agrees(src):
    assert sync_chapters.pair_problems(src) == []


def test_pair_check_detects_a_difference(tmp_path):
    src = tmp_path / "99_demo.py"
    src.write_text("# %% [markdown]\n# # Demo\n\n# %%\nprint(1)\n")
    nb = jupytext.read(src)
    nb.cells[1].source = "print(2)"
    jupytext.write(nb, tmp_path / "99_demo.ipynb")
    problems = sync_chapters.pair_problems(src)
    assert any("differ" in p for p in problems)
    assert any("no outputs" in p for p in problems)


def test_pair_check_detects_committed_errors(tmp_path):
    src = tmp_path / "99_demo.py"
    src.write_text("# %% [markdown]\n# # Demo\n\n# %%\n1 / 0\n")
    nb = jupytext.read(src)
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                                  evalue="division by zero", traceback=[])]
    jupytext.write(nb, tmp_path / "99_demo.ipynb")
    assert any("error" in p for p in sync_chapters.pair_problems(src))


def test_toc_lists_exactly_the_existing_chapters():
    listed = toc_files()
    for entry in listed:
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry}, which does not exist"
    listed_chapters = {e for e in listed if e.startswith("chapters/")}
    assert listed_chapters == {f"chapters/{p.stem}" for p in CHAPTERS}


@pytest.mark.parametrize("src", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_anatomy(src):
    nb = jupytext.read(src)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# ")
    badge = re.search(r"colab\.research\.google\.com/github/\S+/blob/main/chapters/(\S+?)\.ipynb", first.source)
    assert badge and badge.group(1) == src.stem, "the Colab badge must open this chapter's notebook"
    tags = [set(c.metadata.get("tags", [])) for c in nb.cells]
    assert any("parameters" in t for t in tags), "a cell tagged `parameters` reads the budget"
    assert any("solution" in t for t in tags), "exercises need solutions in cells tagged `solution`"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Exercises" in text and "## Summary" in text
    assert "{bibliography}" not in text, "the bibliography lives on its own page (book/bibliography.md)"
