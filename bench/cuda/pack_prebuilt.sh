#!/usr/bin/env bash
# Builds the CUDA backend here (no GPU needed) and packs what the GPU checks run into one
# folder, for a device machine that has the CUDA driver but not CMocka: libsmyrf, the
# CUDA test programs and the shared libraries they need, and the Python package with
# SWIG's generated wrapper source (python/), which the device compiles for its own Python.
# run_gpu_checks.sh --prebuilt DIR runs them.
#   bench/cuda/pack_prebuilt.sh [DIR] [ARCHS]     (defaults: .device-prebuilt, 90)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.device-prebuilt}
archs=${2:-90}
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B build-gpu -DSMYRF_WITH_CUDA=ON -DSMYRF_CUDA_HYBRID=ON -DCMAKE_CUDA_ARCHITECTURES="$archs" \
      -DSMYRF_BUILD_PYTHON=ON -DSMYRF_BUILD_JAVA=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-gpu -j"$(nproc)" >/dev/null
rm -rf "$dir" && mkdir -p "$dir/lib"
cp build-gpu/tests/cuda/test_cuda_vs_cpu build-gpu/tests/cuda/test_cuda_availability "$dir/"
cp -L build-gpu/src/libsmyrf.so.0 "$dir/lib/"  # a file: links may not travel
# Every non-system library the programs load (glibc, libstdc++ and libgcc are the device's;
# often there is no other, and grep finding nothing must not end the script).
ldd "$dir/test_cuda_vs_cpu" "$dir"/lib/libsmyrf.so.0 | awk '/=> \//{print $3}' | sort -u |
  { grep -Ev '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s)\.so' || true; } |
  while read -r lib; do cp -L "$lib" "$dir/lib/$(basename "$lib")"; done
# The Python package without its compiled module, and the wrapper source it is built from
# (SWIG's output is the same C for every Python 3 version).
mkdir -p "$dir/python/smyrf"
find build-gpu/bindings/python/smyrf -maxdepth 1 -name '*.py' -exec cp {} "$dir/python/smyrf/" \;
cp build-gpu/bindings/swig_generated/smyrfPYTHON_wrap.c "$dir/python/"
du -sh "$dir"
