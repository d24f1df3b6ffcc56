# Threads (the library's own pool, cpu/thread_pool.hpp); pkg-config where the test suites
# (CMocka) or the tools (OpenBLAS) need it, so a library-only build (pip install .) does
# not. The library computes every product with its own kernels; only a measuring aid,
# tools/attention_peak.cpp, times OpenBLAS sgemm as the machine's peak, and it is built
# where OpenBLAS is found.
find_package(Threads REQUIRED)
if(SMYRF_BUILD_TESTS OR SMYRF_BUILD_TOOLS)
  find_package(PkgConfig REQUIRED)
endif()
if(SMYRF_BUILD_TOOLS)
  pkg_check_modules(OPENBLAS IMPORTED_TARGET openblas)
  if(NOT OPENBLAS_FOUND)
    message(STATUS "libsmyrf: OpenBLAS not found: smyrf_attention_peak (the sgemm peak of "
                   "bench/compare.py) is not built")
  endif()
endif()


# CUDA (optional): SMYRF_WITH_CUDA is ON by default when nvcc is found. The build machines
# have no GPU, so the architectures are set explicitly (never detected from a device).
include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(SMYRF_NVCC nvcc HINTS ENV CUDA_PATH ENV CUDA_HOME PATH_SUFFIXES bin
               PATHS /usr/local/cuda/bin)
  if(SMYRF_NVCC)
    set(CMAKE_CUDA_COMPILER "${SMYRF_NVCC}" CACHE FILEPATH "CUDA compiler")
  endif()
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  set(SMYRF_CUDA_DEFAULT ON)
else()
  set(SMYRF_CUDA_DEFAULT OFF)
endif()
option(SMYRF_WITH_CUDA "Build the CUDA backend (needs nvcc)" ${SMYRF_CUDA_DEFAULT})
# HYBRID on the CUDA backend is written but has not yet run on a GPU: off by default, so
# that a CUDA plan refuses HYBRID (UNSUPPORTED) until tests/cuda has passed on a device.
cmake_dependent_option(SMYRF_CUDA_HYBRID
  "HYBRID mode on the CUDA backend (experimental: not yet validated on a GPU)" OFF
  "SMYRF_WITH_CUDA" OFF)
if(SMYRF_WITH_CUDA AND NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures to build for")
endif()
