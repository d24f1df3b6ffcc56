#!/usr/bin/env bash
# Fresh Debian 12 machine to every test suite in one command: installs the missing
# packages, builds the `test` preset (build-test/) and runs ctest. When
# scripts/python-env.sh exists, its cached virtual environment (outside the clone) is
# made or reused and the Python bindings are built and tested with its interpreter. When
# bindings/java exists, the Java binding and its JUnit tests are built and run too.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# From the clone's root from the start: pyenv picks python3 by the working directory's
# .python-version, and the venv must not depend on where the script was called from.
cd "$root"
source "$root/scripts/ensure-packages.sh"

packages=(build-essential cmake pkg-config libopenblas-dev libcmocka-dev)
python_env="$root/scripts/python-env.sh"
if [[ -f "$python_env" ]]; then
  packages+=(swig)
  # Debian's own python3 needs these for a venv and for building the extension; a
  # python3 that brings its own (pyenv, as on these machines) has both already.
  base_python=${SMYRF_PYTHON:-python3}
  "$base_python" -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
  "$base_python" -c 'import os, sysconfig
assert os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h"))' \
    2>/dev/null || packages+=(python3-dev)
fi
java_options=()
if [[ -f "$root/bindings/java/CMakeLists.txt" ]]; then
  # FindJNI wants the full JDK (libjawt comes with the JRE); JUnit's console launcher.
  packages+=(swig openjdk-17-jdk junit5)
  java_options=(-DSMYRF_BUILD_JAVA=ON)
fi
ensure_packages "${packages[@]}"
if ((${#java_options[@]})) && [[ -z "${JAVA_HOME:-}" ]]; then
  # CMake 3.25's FindJNI does not find JDK 17 by itself: point it at javac's JDK.
  # (Assigned apart from export, whose own status would hide a failure here.)
  javac=$(command -v javac) || { echo "test.sh: no javac after installing the JDK" >&2; exit 1; }
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$javac")")")
  export JAVA_HOME
fi

python_options=()
if [[ -f "$python_env" ]]; then
  # python-env.sh prints the venv's interpreter as its last line of stdout.
  python=$(bash "$python_env" | tail -n 1)
  python_options=(-DSMYRF_BUILD_PYTHON=ON "-DPython_EXECUTABLE=$python")  # FindPython
fi

cmake --preset test "${python_options[@]}" "${java_options[@]}"
cmake --build --preset test -j "$(nproc)"
ctest --preset test -j "$(nproc)"

# Sanitizers, valgrind, fuzzing and the ABI gate (docs/guarantees.md); about 6-12 min on
# 2 cores. SMYRF_RELIABILITY=0 skips it for a quick local run (CI always runs it).
if [[ ${SMYRF_RELIABILITY:-1} != 0 ]]; then bash "$root/scripts/reliability.sh"; fi
