# OpenBLAS (sgemm for the in-cluster and dense tiles), OpenMP (threads), optional CUDA.
find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

include(CheckLanguage)
check_language(CUDA)
cmake_dependent_option(SMYRF_WITH_CUDA "Build the CUDA backend" ON "CMAKE_CUDA_COMPILER" OFF)
