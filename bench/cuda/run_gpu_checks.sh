#!/usr/bin/env bash
# Every check of the CUDA backend that needs a GPU, in one script (for the device tool):
# the CUDA suites, compute-sanitizer memcheck and racecheck on the small grid, then the
# benchmark. Logs and JSON go to ${OUT:-gpu-checks}; a short summary is printed last.
#   bench/cuda/run_gpu_checks.sh [--prebuilt DIR] [--no-bench] [--quick-bench] [--memcheck-only]
# --prebuilt DIR: run what bench/cuda/pack_prebuilt.sh packed (for a machine without
# CMocka or OpenBLAS); otherwise build here first. Every step has its own time limit, so
# one hang cannot eat the lease.
set -u
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-checks}
mkdir -p "$out"
bench=1; quick=""; prebuilt=""; tools="memcheck racecheck"
while [ $# -gt 0 ]; do
  case $1 in
    --no-bench) bench=0 ;;
    --quick-bench) quick=--quick ;;
    --memcheck-only) tools=memcheck ;;
    --prebuilt) prebuilt=$2; shift ;;
  esac
  shift
done
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
export PATH=/usr/local/cuda/bin:$PATH

if [ -n "$prebuilt" ]; then
  export LD_LIBRARY_PATH="$PWD/$prebuilt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  bin=$prebuilt; lib=$prebuilt/lib/libsmyrf.so.0
else
  cmake -S . -B build-gpu -DSMYRF_WITH_CUDA=ON -DSMYRF_CUDA_HYBRID=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DSMYRF_BUILD_PYTHON=OFF > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  cmake --build build-gpu -j"$(nproc)" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  bin=build-gpu/tests/cuda; lib=build-gpu/src/libsmyrf.so
fi

status=0
summary=()
step() {  # step NAME LIMIT_S LOG COMMAND...: runs it, records rc
  local name=$1 limit=$2 log=$3; shift 3
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$log" 2>&1
  local rc=$?
  summary+=("$(printf '%-22s rc=%-3s %4ss  (%s)' "$name" "$rc" $((SECONDS - t0)) "$log")")
  [ $rc -eq 0 ] || status=1
  return $rc
}
step availability 60 availability.log "$bin/test_cuda_availability"
step cuda-vs-cpu 150 cuda-vs-cpu.log "$bin/test_cuda_vs_cpu"
tail -25 "$out/cuda-vs-cpu.log"
if [ -n "$prebuilt" ] && [ -f "$prebuilt/python/smyrfPYTHON_wrap.c" ]; then
  # The Python package for the device's interpreter, then the suites' CUDA tests
  # (smyrf.torch on CUDA tensors, forward and gradients against the CPU).
  py_inc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  py_ext=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
  step python-module 120 python-module.log cc -O2 -shared -fPIC -w -I"$py_inc" -Iinclude \
    "$prebuilt/python/smyrfPYTHON_wrap.c" "$prebuilt/lib/libsmyrf.so.0" \
    -Wl,-rpath,"$PWD/$prebuilt/lib" -o "$prebuilt/python/smyrf/_capi$py_ext" &&
    step python-cuda 200 python-cuda.log env PYTHONPATH="$PWD/$prebuilt/python" \
      python3 -m pytest -q -rs -k cuda tests/python/test_torch.py tests/python/test_torch_autograd.py
  tail -5 "$out/python-cuda.log" 2>/dev/null
fi
if [ $bench -eq 1 ]; then
  step bench 200 bench.txt env PYTHONUNBUFFERED=1 python3 bench/cuda/bench_smyrf_cuda.py \
    --lib "$lib" $quick --json "$out/bench.json"
  tail -8 "$out/bench.txt"
fi
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in $tools; do
  # racecheck replays every shared-memory access: the backward's tiles make it slow.
  step "sanitizer-$tool" 300 "sanitizer-$tool.log" \
    env SMYRF_CUDA_TEST_SMALL=1 "$san" --tool "$tool" --error-exitcode 3 "$bin/test_cuda_vs_cpu"
  tail -3 "$out/sanitizer-$tool.log"
done
printf '%s\n' "${summary[@]}"
exit $status
