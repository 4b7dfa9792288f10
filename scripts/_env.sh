# Sourced by scripts/build_book.sh and scripts/test.sh: create or update the virtual
# environment .venv and export the variables robustkit reads. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "creating the virtual environment .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.robustkit-installed
want=$(cat requirements.txt requirements-test.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing the requirements into .venv (first run: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # CPU build of torch first when torch is missing: a bare `torch` requirement would pull
  # several GB of CUDA wheels. Set ROBUSTKIT_TORCH to choose another torch requirement.
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "${ROBUSTKIT_TORCH:-torch==2.13.0}"
  fi
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-test.txt
  .venv/bin/python -m pip install -q --no-deps "torchattacks>=3.5"
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

# Data: an explicit $ROBUSTKIT_DATA wins; else the offline copies in ../shared/data when
# they exist; else robustkit searches /usr/share/datasets, the user cache, then downloads.
if [ -z "${ROBUSTKIT_DATA:-}" ] && [ -d ../shared/data ]; then
  ROBUSTKIT_DATA=$(cd ../shared/data && pwd)
  export ROBUSTKIT_DATA
fi
export PATH="$PWD/.venv/bin:$PATH"
