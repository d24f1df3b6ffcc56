# The CUDA toolchain for the CUDA backend (included when SMYRF_WITH_CUDA is ON).
# CMAKE_CUDA_ARCHITECTURES is set in Dependencies.cmake ("80;90" unless given): "80" and
# "90" embed both machine code and PTX, so newer GPUs can still JIT-compile the kernels.
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "SMYRF_WITH_CUDA=ON but no CUDA compiler (nvcc) was found; "
                      "set CMAKE_CUDA_COMPILER or CUDACXX, or use -DSMYRF_WITH_CUDA=OFF")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_EXTENSIONS OFF)
set(CMAKE_CUDA_VISIBILITY_PRESET hidden)
message(STATUS "libsmyrf: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
               "architectures ${CMAKE_CUDA_ARCHITECTURES})")

# What a static link of libsmyrf.a needs besides it (for smyrf.pc, Libs.private): the
# static CUDA runtime and what it uses. smyrf.pc.in references it as @SMYRF_PC_CUDA_LIBS@.
set(SMYRF_PC_CUDA_LIBS "-L${CUDAToolkit_LIBRARY_DIR} -lcudart_static -ldl -lrt")
