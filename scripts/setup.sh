#!/usr/bin/env bash
# Make .venv with Python 3.12 and install hierbayes into it (editable).
# Usage: bash scripts/setup.sh [EXTRA]
#   (none)     the package and its command line
#   test       + pytest and what runs the notebooks in the tests
#   notebooks  + JupyterLab, to open the notebooks yourself (jupyter lab notebooks/)
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }
# pip with its own progress lines, less the index-location warnings of this machine's pip config
pip() {
  .venv/bin/python -m pip --disable-pip-version-check "$@" 2>&1 \
    | { grep --line-buffered -v -e "^WARNING: Location" -e "^Requirement already satisfied" || true; }
}

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
  step "making .venv with $py"
  "$py" -m venv .venv
else
  step "using the existing .venv ($(.venv/bin/python --version))"
fi
spec="."
[ $# -gt 0 ] && spec=".[$1]"
step "upgrading pip"
pip install --upgrade pip
step "installing hierbayes${1:+ with the '$1' extra} and its dependencies (a few minutes on a fresh machine)"
pip install -e "$spec"
step "compiling the numba kernels of every method (about 3 minutes, once: cached on disk, later fits start at once)"
.venv/bin/python -m hierbayes.methods.warm
step "done: .venv/bin/python and .venv/bin/hierbayes are ready"
