# Compiles header_strict.c with one compiler in one language mode, warnings as errors.
# Usage: cmake -DCOMPILER=... -DLANG=c99|cxx17 -DINCLUDE=... -DSOURCE=... -P check_header.cmake
cmake_minimum_required(VERSION 3.25)
if(LANG STREQUAL "c99")
  set(flags -x c -std=c99 -Wstrict-prototypes -Wmissing-prototypes)
else()
  set(flags -x c++ -std=c++17)
endif()
execute_process(
  COMMAND "${COMPILER}" ${flags} -Wall -Wextra -pedantic -Werror -Wshadow -Wundef
          -I "${INCLUDE}" -fsyntax-only "${SOURCE}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "smyrf.h does not compile cleanly as ${LANG} with ${COMPILER}:\n${out}")
endif()
message("smyrf.h: clean as ${LANG} with ${COMPILER}")
