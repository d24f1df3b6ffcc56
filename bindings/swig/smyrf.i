/* The one SWIG interface of libsmyrf: every language wraps the C ABI of smyrf.h as it is.
 * What differs per language (module name and package, how buffers, handles and failed
 * statuses cross the boundary) lives in <language>/smyrf_<language>.i beside this file. */

#if defined(SWIGPYTHON)
%module(package="smyrf", threads="1") capi
#elif defined(SWIGJAVA)
%module SmyrfNative
#else
%module smyrf
#endif

%{
#include <smyrf/smyrf.h>
%}

%include <stdint.i>

#if defined(SWIGPYTHON)
%include "python/smyrf_python.i"
#elif defined(SWIGJAVA)
%include "java/smyrf_java.i"
#endif

%include <smyrf/smyrf.h>
