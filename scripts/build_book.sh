#!/usr/bin/env bash
# Set up .venv if needed and build the book from the committed notebook outputs.
# Fails on any Sphinx warning (broken reference, missing citation, bad toc entry ...).
source "$(dirname "$0")/_env.sh"
python tools/sync_chapters.py --check
start=$(date +%s)
jupyter-book build . --all -W -n --keep-going
echo "book built in $(( $(date +%s) - start )) s: open $PWD/_build/html/index.html"
