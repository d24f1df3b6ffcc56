#!/usr/bin/env bash
# Fresh Debian 12 machine to `smyrf demo` in one command: installs the missing build
# packages, configures and builds the Release preset (build-default/), runs the demo.
# Arguments go to `smyrf demo`, e.g. scripts/demo.sh --n 4096 --threads 1.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/ensure-packages.sh"

ensure_packages build-essential cmake pkg-config libopenblas-dev
cd "$root"
cmake --preset default
cmake --build --preset default -j "$(nproc)"
exec build-default/tools/smyrf demo "$@"
