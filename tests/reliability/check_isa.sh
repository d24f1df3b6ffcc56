#!/usr/bin/env bash
# Vector instructions only where the CPU is known to have them. Fails when a function of
# the given binaries (libraries, executables, objects)
#  - uses AVX-512 (zmm registers, mask registers, xmm16-31 / ymm16-31) and is neither in
#    the AVX-512 kernels (namespace avx512) nor an AVX-512 clone of a SMYRF_VECTOR_CLONES
#    function ("[clone .avx512f...]"), or
#  - uses AVX at all (a VEX or EVEX instruction, v..., or a ymm register) and is none of
#    those nor in the AVX2 kernels (namespace avx2) nor an AVX2 clone ("[clone .avx2...]").
# Anything else runs on every x86-64 CPU, and such code would die there with an illegal
# instruction on the CPUs without the extension (src/cpu/cpu.hpp says how clang 14 made
# some).
# clang's -fsanitize=function starts each function with `jmp .+8` over 6 bytes of data
# (a type signature), which objdump decodes as instructions (a vandnps, say): the bytes
# the jump skips are not checked.
#   check_isa.sh [--objdump PATH] BINARY...
set -euo pipefail
objdump=objdump
if [[ ${1:-} == --objdump ]]; then objdump=$2; shift 2; fi
(($#)) || { echo "usage: $0 [--objdump PATH] BINARY..." >&2; exit 2; }
status=0
for bin in "$@"; do
  "$objdump" -d --no-show-raw-insn -C "$bin" > /dev/null  # unreadable: fail here, loudly
  "$objdump" -d --no-show-raw-insn -C "$bin" | awk -v bin="$bin" '
    function hex(s,   v, i) {
      v = 0
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return v
    }
    /^[0-9a-f]+ <.*>:$/ {
      fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn)
      avx512 = fn ~ /avx512::/ || fn ~ /\[clone \.avx512f/
      avx = avx512 || fn ~ /avx2::/ || fn ~ /\[clone \.avx2/
      first = 1; code = 0
      next
    }
    /^ +[0-9a-f]+:\t/ {
      at = $1; sub(/:$/, "", at)
      if (first && $2 == "jmp" && $0 ~ /\+0x8>$/) code = hex($3)  # the signature jump
      first = 0
      if (hex(at) < code) next
    }
    !avx512 && /%zmm|%k[1-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])/ { bad512[fn]++ }
    !avx && ($2 ~ /^v/ || /%ymm/) { badavx[fn]++ }
    END {
      for (f in bad512) { printf "%s: %d AVX-512 instructions in %s\n", bin, bad512[f], f; n++ }
      for (f in badavx) { printf "%s: %d AVX instructions in %s\n", bin, badavx[f], f; n++ }
      exit n > 0
    }' || status=1
done
exit $status
