# The version is written in four places that must agree: project() here (the soname, the
# Python package and the jar take it), the header's SMYRF_VERSION_* macros (what
# smyrf_version_number() returns), and the Rust workspace's Cargo.toml. A release that bumps
# one and forgets another fails here, at configure time, rather than shipping a library
# whose smyrf_version_number() disagrees with its file name.
function(smyrf_check_version)
  file(STRINGS ${PROJECT_SOURCE_DIR}/include/smyrf/smyrf.h lines
       REGEX "^#define SMYRF_VERSION_(MAJOR|MINOR|PATCH) [0-9]+$")
  foreach(part MAJOR MINOR PATCH)
    set(value "")
    foreach(line IN LISTS lines)
      if(line MATCHES "^#define SMYRF_VERSION_${part} ([0-9]+)$")
        set(value ${CMAKE_MATCH_1})
      endif()
    endforeach()
    if(NOT value STREQUAL PROJECT_VERSION_${part})
      message(FATAL_ERROR "include/smyrf/smyrf.h has SMYRF_VERSION_${part} '${value}', "
                          "project() has ${PROJECT_VERSION}: make them agree")
    endif()
  endforeach()
  set(cargo ${PROJECT_SOURCE_DIR}/bindings/rust/Cargo.toml)
  if(EXISTS ${cargo})
    file(STRINGS ${cargo} cargo_version REGEX "^version = ")
    if(NOT cargo_version STREQUAL "version = \"${PROJECT_VERSION}\"")
      message(FATAL_ERROR "bindings/rust/Cargo.toml has '${cargo_version}', project() has "
                          "${PROJECT_VERSION}: make them agree")
    endif()
  endif()
endfunction()
smyrf_check_version()
