#!/usr/bin/env bash
# Fresh Debian 12 machine to every test suite in one command: installs the missing
# packages, builds the `test` preset (build-test/) and runs ctest. When
# scripts/python-env.sh exists, its cached virtual environment (outside the clone) is
# made or reused and the Python bindings are built and tested with its interpreter.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/ensure-packages.sh"

packages=(build-essential cmake pkg-config libopenblas-dev libcmocka-dev)
python_env="$root/scripts/python-env.sh"
[[ -f "$python_env" ]] && packages+=(swig python3-dev python3-venv)
ensure_packages "${packages[@]}"

python_options=()
if [[ -f "$python_env" ]]; then
  # python-env.sh prints the venv's interpreter as its last line of stdout.
  python=$(bash "$python_env" | tail -n 1)
  python_options=(-DSMYRF_BUILD_PYTHON=ON "-DPython_EXECUTABLE=$python")  # FindPython
fi

cd "$root"
cmake --preset test "${python_options[@]}"
cmake --build --preset test -j "$(nproc)"
ctest --preset test -j "$(nproc)"
