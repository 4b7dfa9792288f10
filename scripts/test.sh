#!/usr/bin/env bash
# Set up .venv if needed and run the whole test suite: robustkit's unit tests, the
# chapter pairing checks, and every chapter executed top to bottom (nbval) in the
# `smoke` budget. Extra arguments go to pytest (e.g. -k infotheory, -x).
source "$(dirname "$0")/_env.sh"
export ROBUSTKIT_BUDGET=${ROBUSTKIT_BUDGET:-smoke}
export ROBUSTKIT_CACHE=${ROBUSTKIT_CACHE:-$PWD/.cache/robustkit-test}
export ROBUSTKIT_PROGRESS=${ROBUSTKIT_PROGRESS:-off}
# Two pytest workers, one torch thread each (small models run no faster with more threads,
# and two processes sharing two cores are faster than one). --dist loadscope keeps every
# notebook's cells, and every test module, on one worker. ROBUSTKIT_TEST_WORKERS=0: serial.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
WORKERS=${ROBUSTKIT_TEST_WORKERS:-2}
PARALLEL=()
if [ "$WORKERS" != "0" ]; then PARALLEL=(-n "$WORKERS" --dist loadscope); fi
python -m pytest tests chapters --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
  -p no:cacheprovider --durations=15 "${PARALLEL[@]}" "$@"
