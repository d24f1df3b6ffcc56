# Installs the build tree BUILD_DIR (configuration CONFIG) into a fresh PREFIX.
# Usage: cmake -DBUILD_DIR=... -DPREFIX=... -DCONFIG=... -P install_tree.cmake
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                        --config "${CONFIG}"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${rc})")
endif()
