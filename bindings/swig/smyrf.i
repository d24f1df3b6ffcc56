/* The one SWIG interface of libsmyrf: every language wraps the C ABI of smyrf.h as it is.
 * What differs per language (module name and package, how buffers, handles and failed
 * statuses cross the boundary) lives in <language>/smyrf_<language>.i beside this file. */

#if defined(SWIGPYTHON)
%module(package="smyrf", threads="1") capi
#else
%module smyrf
#endif

%{
#include <smyrf/smyrf.h>
%}

%include <stdint.i>

#if defined(SWIGPYTHON)
%include "python/smyrf_python.i"
#endif

%include <smyrf/smyrf.h>
