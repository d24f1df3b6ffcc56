#!/usr/bin/env bash
# Portability check, not part of scripts/test.sh: builds libsmyrf for 64-bit ARM Linux
# with Debian's cross compiler and runs its C, CLI, reliability and fuzz-replay suites
# under qemu-user, where the library runs its portable kernels (no x86 code at all).
# Emulation is slow: about 10 minutes on 2 cores, build included.
# Usage: scripts/check-aarch64.sh [build-dir]   (default: build-aarch64)
# Installs what is missing, arm64 packages through Debian's multiarch.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/ensure-packages.sh"
build=${1:-$root/build-aarch64}

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  as_root=()
  ((EUID == 0)) || as_root=(sudo)
  "${as_root[@]}" dpkg --add-architecture arm64
fi
ensure_packages cmake pkg-config g++-aarch64-linux-gnu qemu-user \
  libcmocka-dev:arm64 libopenblas-dev:arm64

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSMYRF_WITH_CUDA=OFF \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/aarch64-linux-gnu.cmake"
cmake --build "$build" -j "$(nproc)"
# Not run here, with the reason:
#   install.*  compile and run consumers of the installed package, on the host;
#   test_fork  qemu-user itself fails an assertion when a threaded program forks;
#   cli.bench_first_row_memory  measures the process's resident memory, which under
#              qemu-user also holds the emulator's own memory (0.8 MiB more on that row).
cd "$build"
ctest -j "$(nproc)" --output-on-failure -E '^(install\.|test_fork$|cli\.bench_first_row_memory$)'
