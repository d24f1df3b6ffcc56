# OpenBLAS (sgemm for the in-cluster and dense tiles), OpenMP (threads).
find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

