#!/usr/bin/env bash
# Reliability gate (issue 8), one command for CI. Every step must be clean; any sanitizer
# report, valgrind error, fuzzer finding or ABI difference makes the script exit non-zero.
#  1. AddressSanitizer + UndefinedBehaviorSanitizer (gcc, build-rel-asan): the whole C test
#     suite (label c) and the reliability tests (label reliability: OOM injection with
#     LeakSanitizer, thread stress, exported symbols, header, fuzz regression replays).
#  2. ThreadSanitizer (gcc, build-rel-tsan): test_stress_threads, 8 threads x 100 executes
#     on one shared plan per mode.
#  3. valgrind memcheck on a representative subset, in the plain debug tree of the ABI gate
#     (build-rel-abi): errors and definite leaks fail.
#  4. libFuzzer (clang-14, build-rel-fuzz, -fsanitize=fuzzer,address,undefined): every target
#     SMYRF_FUZZ_SECONDS (default 60) seconds from the committed seed corpus, two at a time;
#     a finding fails, and its input is left in build-rel-fuzz/findings/ to be committed to
#     tests/fuzz/regressions/<target>/ once fixed (it then runs in every normal build).
#     First, clang's code is checked for AVX-512 instructions outside the AVX-512-only
#     functions (tests/reliability/check_isa.sh; the normal builds check gcc's code).
#  5. ABI gate: abi/check.sh (abidiff against abi/libsmyrf.abi).
# About 10-12 minutes on 2 cores from nothing; build folders are reused when present.
# SMYRF_RELIABILITY_STEPS (default "asan tsan valgrind fuzz abi") picks steps.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/ensure-packages.sh"
ensure_packages build-essential cmake pkg-config libcmocka-dev clang-14 \
  libclang-rt-14-dev valgrind abigail-tools

jobs=${SMYRF_JOBS:-2}
steps=${SMYRF_RELIABILITY_STEPS:-asan tsan valgrind fuzz abi}
fuzz_seconds=${SMYRF_FUZZ_SECONDS:-60}
cd "$root"
start=$SECONDS
failed=()
step_begin() { echo; echo "==== reliability: $1 ($((SECONDS - start)) s)"; }
want() { [[ " $steps " == *" $1 "* ]]; }
for step in $steps; do  # a misspelt step would otherwise be skipped, and "all clean" printed
  [[ " asan tsan valgrind fuzz abi " == *" $step "* ]] ||
    { echo "reliability.sh: unknown step '$step' (steps: asan tsan valgrind fuzz abi)" >&2; exit 2; }
done
common=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1"
        -DSMYRF_WITH_CUDA=OFF -DSMYRF_BUILD_TOOLS=OFF)

# ---- 1. ASan + UBSan: the whole C suite and the reliability tests
if want asan; then
  step_begin "ASan+UBSan build and C test suite"
  san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  cmake -S . -B build-rel-asan "${common[@]}" -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  cmake --build build-rel-asan -j "$jobs" >/dev/null
  # allocator_may_return_null: test_out_of_memory limits the address space and expects a failed
  # allocation to come back as NULL (ASan would otherwise end the process).
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       ctest --test-dir build-rel-asan -L '^(c|reliability)$' -j "$jobs" --output-on-failure; then
    failed+=(asan)
  fi
fi

# ---- 2. TSan: the concurrency stress
if want tsan; then
  step_begin "TSan stress"
  cmake -S . -B build-rel-tsan "${common[@]}" -DCMAKE_C_FLAGS="-fsanitize=thread" \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" >/dev/null
  cmake --build build-rel-tsan -j "$jobs" --target test_stress_threads >/dev/null
  # setarch -R: ThreadSanitizer of gcc 12 refuses the high-entropy address layouts of
  # newer kernels ("unexpected memory mapping"); without randomisation it always runs.
  if ! TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1" \
       setarch "$(uname -m)" -R build-rel-tsan/tests/reliability/test_stress_threads; then
    failed+=(tsan)
  fi
fi

# ---- 5 (first half). The plain debug tree of the ABI gate, also used by valgrind.
abi_done=0
if want abi; then
  step_begin "ABI gate (abidiff against abi/libsmyrf.abi)"
  if abi/check.sh; then abi_done=1; else failed+=(abi); fi
fi

# ---- 3. valgrind memcheck on a representative subset
if want valgrind; then
  step_begin "valgrind memcheck"
  ((abi_done)) || SMYRF_ABI_BUILD="$root/build-rel-abi" abi/check.sh >/dev/null 2>&1 || true
  vg_targets=(test_dense test_stages test_hybrid_groups test_oom test_exported_symbols
              fuzz_plan_replay fuzz_execute_replay fuzz_dense_replay fuzz_hybrid_replay)
  cmake --build build-rel-abi -j "$jobs" --target "${vg_targets[@]}" >/dev/null
  vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full
      --errors-for-leak-kinds=definite --show-leak-kinds=definite --quiet)
  run_vg() {
    local name=$1; shift
    echo "valgrind: $name"
    if ! "${vg[@]}" "$@" >"build-rel-abi/valgrind-$name.log" 2>&1; then
      cat "build-rel-abi/valgrind-$name.log"
      failed+=("valgrind:$name")
    fi
  }
  b=build-rel-abi/tests
  run_vg test_dense "$b/c/test_dense"
  run_vg test_stages "$b/c/test_stages"
  run_vg test_hybrid_groups "$b/c/test_hybrid_groups"
  # test_oom brings its own operator new / aligned_alloc (the injection hook): valgrind
  # must leave them in place (it still sees the malloc underneath, leaks included).
  run_vg test_oom --soname-synonyms=somalloc=nouserintercepts "$b/reliability/test_oom"
  run_vg test_exported_symbols "$b/reliability/test_exported_symbols"
  for t in fuzz_plan fuzz_execute fuzz_dense fuzz_hybrid; do
    run_vg "$t" "$b/reliability/fuzz/${t}_replay" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t"
  done
fi

# ---- 4. libFuzzer
if want fuzz; then
  step_begin "libFuzzer, ${fuzz_seconds} s per target"
  fsan="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-rel-fuzz "${common[@]}" -DSMYRF_BUILD_FUZZERS=ON \
    -DCMAKE_C_FLAGS="$fsan" -DCMAKE_CXX_FLAGS="$fsan" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  targets=(fuzz_plan fuzz_execute fuzz_dense fuzz_hybrid)
  cmake --build build-rel-fuzz -j "$jobs" --target "${targets[@]}" >/dev/null
  if ! tests/reliability/check_isa.sh "${targets[@]/#/build-rel-fuzz/tests/reliability/fuzz/}"; then
    failed+=(isa:clang)
  fi
  fz=build-rel-fuzz/fuzz-run
  rm -rf "$fz" && mkdir -p "$fz" build-rel-fuzz/findings
  fuzz_one() {
    local t=$1
    mkdir -p "$fz/$t"
    cp tests/fuzz/corpus/"$t"/* "$fz/$t/"
    # allocator_may_return_null: a failed malloc returns NULL (libsmyrf reports it)
    # rather than ending the run; -rss_limit_mb keeps a runaway allocation a finding.
    local rc=0
    ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      build-rel-fuzz/tests/reliability/fuzz/"$t" -max_total_time="$fuzz_seconds" -timeout=30 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="build-rel-fuzz/findings/$t-" "$fz/$t" tests/fuzz/regressions/"$t" \
      >"$fz/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$fz/$t.rc"  # a fuzzer that failed without saying so is a finding too
  }
  pids=()
  for ((i = 0; i < ${#targets[@]}; i += jobs)); do
    pids=()
    for t in "${targets[@]:i:jobs}"; do fuzz_one "$t" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || true; done
  done
  for t in "${targets[@]}"; do
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$fz/$t.log" | tail -n 1)
    if grep -qE "ERROR: libFuzzer|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer|CONTRACT VIOLATION|runtime error" "$fz/$t.log" ||
       [[ -z $runs || $(cat "$fz/$t.rc" 2>/dev/null) != 0 ]]; then
      echo "fuzz $t: FINDING (log $fz/$t.log, input in build-rel-fuzz/findings/):"
      grep -E -m 20 "CONTRACT|ERROR|SUMMARY|runtime error|#[0-9]+ 0x" "$fz/$t.log" || tail -n 30 "$fz/$t.log"
      failed+=("fuzz:$t")
    else
      echo "fuzz $t: ${runs} executions in ${fuzz_seconds} s, no finding"
    fi
  done
fi

echo
echo "==== reliability: done in $((SECONDS - start)) s"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all clean: ${steps}"
