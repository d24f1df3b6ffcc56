#!/usr/bin/env bash
# AVX-512 only where the CPU is known to have it: fails when a function of the given
# binaries (libraries, executables, objects) uses zmm registers, mask registers or
# xmm16-31 / ymm16-31 and is neither in the AVX-512 kernels (namespace avx512) nor the
# AVX-512 clone of a SMYRF_VECTOR_CLONES function ("[clone .avx512f...]"). Such code
# runs on every x86-64 CPU and dies with an illegal instruction on the ones without
# AVX-512 (src/cpu/cpu.hpp says how clang 14 made one).
#   check_isa.sh [--objdump PATH] BINARY...
set -euo pipefail
objdump=objdump
if [[ ${1:-} == --objdump ]]; then objdump=$2; shift 2; fi
(($#)) || { echo "usage: $0 [--objdump PATH] BINARY..." >&2; exit 2; }
status=0
for bin in "$@"; do
  "$objdump" -d --no-show-raw-insn -C "$bin" > /dev/null  # unreadable: fail here, loudly
  "$objdump" -d --no-show-raw-insn -C "$bin" | awk -v bin="$bin" '
    /^[0-9a-f]+ <.*>:$/ {
      fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn)
      allowed = fn ~ /avx512::/ || fn ~ /\[clone \.avx512f/
      next
    }
    !allowed && /%zmm|%k[1-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])/ { bad[fn]++ }
    END {
      for (f in bad) { printf "%s: %d AVX-512 instructions in %s\n", bin, bad[f], f; n++ }
      exit n > 0
    }' || status=1
done
exit $status
