#!/usr/bin/env bash
# Make .venv with Python 3.12 and install hierbayes into it (editable).
# Usage: bash scripts/setup.sh [EXTRA]   e.g. "test" adds pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for cand in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(find_python) || { echo "setup: Python 3.12 not found (tried python3.12 and pyenv)" >&2; exit 1; }
  "$py" -m venv .venv
fi
spec="."
[ $# -gt 0 ] && spec=".[$1]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
# compile the numba code of the marginal model once (cached on disk; later fits start at once)
.venv/bin/python -m hierbayes.marginal_numba
