# Compiles SOURCE with the flags `pkg-config smyrf` gives for the package in PREFIX, runs
# the program and checks that its output matches EXPECT.
#   STATIC=ON: `pkg-config --static` and the archive libsmyrf.a (the linker would otherwise
#   prefer libsmyrf.so), which checks the .pc file's private dependencies.
#   CFLAGS, LIBS: extra compiler flags and libraries, as in a shell ("-std=c99 -Werror").
#   LIBDIR: the library folder under PREFIX (CMAKE_INSTALL_LIBDIR: lib, lib64, ...).
#   HOST: SOURCE is then a plugin, built as the shared object OUT.so, and HOST a C program
#   (built as OUT without smyrf's flags) that is run with that object's path.
# Usage: cmake -DPREFIX=... -DLIBDIR=... -DSOURCE=... -DOUT=... -DCC=... [-DSTATIC=ON]
#              [-DCFLAGS=...] [-DLIBS=...] [-DHOST=...] -DEXPECT=... -P build_with_pkg_config.cmake
find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
# only this prefix: a smyrf.pc installed on the system must not stand in
set(ENV{PKG_CONFIG_LIBDIR} "${PREFIX}/${LIBDIR}/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})

function(pkg_config out)
  execute_process(COMMAND "${PKG_CONFIG}" ${ARGN} smyrf RESULT_VARIABLE rc
                  OUTPUT_VARIABLE text ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config ${ARGN} smyrf failed: ${err}")
  endif()
  separate_arguments(text UNIX_COMMAND "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

pkg_config(cflags --cflags)
if(STATIC)
  pkg_config(libs --static --libs)
  list(TRANSFORM libs REPLACE "^-lsmyrf$" "-l:libsmyrf.a")
else()
  pkg_config(libs --libs)
  pkg_config(libdir --variable=libdir)
  list(APPEND libs "-Wl,-rpath,${libdir}")
endif()

separate_arguments(CFLAGS UNIX_COMMAND "${CFLAGS}")
separate_arguments(LIBS UNIX_COMMAND "${LIBS}")
function(compile what)
  execute_process(COMMAND "${CC}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE log)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "compiling ${what} failed:\n${log}")
  endif()
endfunction()
if(HOST)
  compile("${SOURCE} against the installed smyrf" -shared -fPIC ${CFLAGS} ${cflags} "${SOURCE}"
          -o "${OUT}.so" ${libs} ${LIBS})
  compile("${HOST}" ${CFLAGS} "${HOST}" -o "${OUT}" -ldl -pthread ${LIBS})
  set(run "${OUT}" "${OUT}.so")
else()
  compile("${SOURCE} against the installed smyrf" ${CFLAGS} ${cflags} "${SOURCE}" -o "${OUT}"
          ${libs} ${LIBS})
  set(run "${OUT}")
endif()
execute_process(COMMAND ${run} RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE log)
message("${log}")
if(NOT rc EQUAL 0 OR NOT log MATCHES "${EXPECT}")
  message(FATAL_ERROR "${OUT} exited with ${rc}; expected output matching '${EXPECT}'")
endif()
