# Compiler settings shared by every target of the project.
set(CMAKE_C_STANDARD 99)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
# Only the smyrf_* API is exported (SMYRF_API in the header); everything else is hidden.
set(CMAKE_C_VISIBILITY_PRESET hidden)
set(CMAKE_CXX_VISIBILITY_PRESET hidden)
set(CMAKE_VISIBILITY_INLINES_HIDDEN ON)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

# x86-64 targets get the AVX2 / AVX-512 kernels and vector clones (src/), their test
# reruns (tests/c) and the CUDA simulator, whose fiber switch is x86-64 assembly (tests/cuda).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(SMYRF_X86_64 ON)
else()
  set(SMYRF_X86_64 OFF)
endif()

set(SMYRF_WARNINGS -Wall -Wextra -Wshadow -Wno-unused-parameter)
