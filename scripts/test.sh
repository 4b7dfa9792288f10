#!/usr/bin/env bash
# Set up .venv if needed and run the whole test suite: robustkit's unit tests, the
# chapter pairing checks, and every chapter executed top to bottom (nbval) in the
# `smoke` budget. Extra arguments go to pytest (e.g. -k infotheory, -x).
source "$(dirname "$0")/_env.sh"
export ROBUSTKIT_BUDGET=${ROBUSTKIT_BUDGET:-smoke}
export ROBUSTKIT_CACHE=${ROBUSTKIT_CACHE:-$PWD/.cache/robustkit-test}
export ROBUSTKIT_PROGRESS=${ROBUSTKIT_PROGRESS:-off}
python -m pytest tests chapters --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
  -p no:cacheprovider --durations=15 "$@"
