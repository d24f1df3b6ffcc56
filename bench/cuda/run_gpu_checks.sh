#!/usr/bin/env bash
# Every check of the CUDA backend that needs a GPU, in one script (for the device tool):
# build, CTest label "cuda" (and the CPU suites), compute-sanitizer memcheck and racecheck
# on the small grid, then the benchmark. Results (logs, JSON) go to ${OUT:-gpu-checks}.
#   bench/cuda/run_gpu_checks.sh [--no-bench] [--quick-bench]
set -u
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-checks}
mkdir -p "$out"
bench=1; quick=""
for a in "$@"; do
  case $a in --no-bench) bench=0 ;; --quick-bench) quick=--quick ;; esac
done
jobs=$(nproc 2>/dev/null || echo 4)
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
export PATH=/usr/local/cuda/bin:$PATH

# Build for the GPU at hand too (sm_90 covers H100/H200; 80 keeps the A100 build honest).
cmake -S . -B build-gpu -DSMYRF_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="80;90" \
      -DSMYRF_BUILD_PYTHON=OFF > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j"$jobs" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: ok"

status=0
(cd build-gpu && ctest -L cuda --output-on-failure) > "$out/ctest-cuda.log" 2>&1 || status=1
tail -15 "$out/ctest-cuda.log"
(cd build-gpu && ./tests/cuda/test_cuda_vs_cpu) > "$out/cuda-vs-cpu.txt" 2>&1 || true

san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$san" ]; then
  for tool in memcheck racecheck; do
    SMYRF_CUDA_TEST_SMALL=1 "$san" --tool "$tool" --error-exitcode 3 \
      build-gpu/tests/cuda/test_cuda_vs_cpu > "$out/sanitizer-$tool.log" 2>&1
    rc=$?
    echo "compute-sanitizer $tool: rc=$rc"; tail -4 "$out/sanitizer-$tool.log"
    [ $rc -eq 0 ] || status=1
  done
  SMYRF_CUDA_TEST_SMALL=1 "$san" --tool synccheck --error-exitcode 3 \
    build-gpu/tests/cuda/test_cuda_vs_cpu > "$out/sanitizer-synccheck.log" 2>&1 || status=1
else
  echo "compute-sanitizer not found"; status=1
fi

if [ $bench -eq 1 ]; then
  python3 bench/cuda/bench_smyrf_cuda.py --lib build-gpu/src/libsmyrf.so $quick \
    --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
fi
exit $status
