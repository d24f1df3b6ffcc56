#!/usr/bin/env bash
# ABI gate (issue 8): builds libsmyrf.so with debug info, describes its ABI with abidw
# and compares it with the committed description abi/libsmyrf.abi using abidiff. Any
# difference fails: a removed or changed function or type, and also an added function
# (additions are deliberate too, and must be recorded).
#
#   abi/check.sh            check (exit 0: same ABI; non-zero: abidiff's report)
#   abi/check.sh --update   record the current ABI as the reference (a deliberate change)
#
# Recording a deliberate change: make the change in include/smyrf/smyrf.h (compatible
# ones only: new functions, new enum values; see "Stability" in smyrf.h), run
# `abi/check.sh --update`, and commit abi/libsmyrf.abi together with the change, saying
# in the commit message what changed and why. The reviewer sees the change as the diff of
# abi/libsmyrf.abi. Environment: SMYRF_ABI_BUILD (build folder, default build-rel-abi),
# SMYRF_ABI_JOBS (default 2).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SMYRF_ABI_BUILD:-$root/build-rel-abi}
jobs=${SMYRF_ABI_JOBS:-2}
reference=$root/abi/libsmyrf.abi
update=0
[[ ${1:-} == --update ]] && update=1

for tool in abidw abidiff cmake; do
  command -v "$tool" >/dev/null || { echo "abi/check.sh: $tool not found (apt-get install abigail-tools cmake)" >&2; exit 2; }
done

# Debug info, no optimisation, no CUDA: the same description on every machine. (Tests are
# configured, not built: scripts/reliability.sh builds its valgrind subset in this tree.)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DSMYRF_WITH_CUDA=OFF \
  -DSMYRF_BUILD_TESTS=ON -DSMYRF_BUILD_TOOLS=OFF >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log" >&2; exit 2; }
cmake --build "$build" -j "$jobs" --target smyrf >"$build.build.log" 2>&1 ||
  { cat "$build.build.log" >&2; exit 2; }
# The library the build just linked (its libsmyrf.so link), not whichever file of an
# older version a reused tree still holds.
lib=$(readlink -e "$build/src/libsmyrf.so") || { echo "abi/check.sh: libsmyrf.so not built" >&2; exit 2; }

# Public types only (those reachable from include/smyrf), no paths or source locations,
# hashed type ids: the file changes only when the ABI does.
current=$(mktemp --suffix=.abi)
trap 'rm -f "$current"' EXIT
abidw --headers-dir "$root/include/smyrf" --drop-private-types --no-corpus-path \
  --no-comp-dir-path --no-show-locs --type-id-style hash --exported-interfaces-only --out-file "$current" "$lib"
grep -q "smyrf_execute" "$current" || { echo "abi/check.sh: abidw found no smyrf_execute in $lib" >&2; exit 2; }

if ((update)); then
  cp "$current" "$reference"
  echo "abi/check.sh: recorded the ABI of $lib in abi/libsmyrf.abi; commit it with the change"
  exit 0
fi
[[ -f $reference ]] || { echo "abi/check.sh: no abi/libsmyrf.abi: run abi/check.sh --update" >&2; exit 2; }
# A reference abidiff cannot read would compare as "no change": lint it first.
abilint "$reference" >/dev/null || { echo "abi/check.sh: abi/libsmyrf.abi does not parse (abilint)" >&2; exit 2; }
set +e
report=$(abidiff --no-default-suppression "$reference" "$current")
rc=$?
set -e
if ((rc != 0)); then
  echo "$report"
  echo "abi/check.sh: the ABI of libsmyrf.so differs from abi/libsmyrf.abi (abidiff exit $rc)." >&2
  echo "If the change is deliberate, run abi/check.sh --update and commit abi/libsmyrf.abi with it." >&2
  exit 1
fi
echo "abi/check.sh: libsmyrf.so matches abi/libsmyrf.abi ($(grep -c '<function-decl' "$reference") functions)"
