# Threads (the library's own pool, cpu/thread_pool.hpp); pkg-config (the test suites find
# CMocka with it). The library computes every product with its own kernels; only the
# tools measure OpenBLAS sgemm, as the machine's peak (tools/attention_peak.cpp).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
if(SMYRF_BUILD_TOOLS)
  pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
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
