# Runs the smyrf tool once and checks its exit status, and its output against a regex.
#   JSON_LINES=ON: every stdout line must be a JSON object with a "status" field.
#   FIXTURE_ERRORS=table|json: the real-attention sweep (demo's table, or bench --fixture
#   --json) must show, at 32, 64 and 128 keys per query, HYBRID's mean error below both
#   SMYRF's and the sliding window's.
#   FIELD=name, FIELD_MAX=x: every stdout line is a JSON object whose field `name` is at
#   most x, or null (a figure this machine cannot give).
#   EMULATOR: the command line that runs the tool (a cross build's emulator), or empty.
# Usage: cmake -DTOOL=... "-DARGS=demo --n 300" -DEXPECT_RC=0 [-DEXPECT=regex]
#              [-DJSON_LINES=ON] [-DFIXTURE_ERRORS=table|json] [-DFIELD=name -DFIELD_MAX=x]
#              [-DEMULATOR=...] -P check_cli.cmake
separate_arguments(ARGS UNIX_COMMAND "${ARGS}")
separate_arguments(EMULATOR UNIX_COMMAND "${EMULATOR}")
execute_process(COMMAND ${EMULATOR} "${TOOL}" ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("stdout:\n${out}\nstderr:\n${err}")
if(NOT rc EQUAL EXPECT_RC)
  message(FATAL_ERROR "smyrf ${ARGS}: exit status ${rc}, expected ${EXPECT_RC}")
endif()
if(DEFINED EXPECT AND NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "smyrf ${ARGS}: no output matches '${EXPECT}'")
endif()
if(JSON_LINES)
  string(REGEX MATCHALL "[^\n]+" lines "${out}")
  foreach(line IN LISTS lines)
    string(JSON status ERROR_VARIABLE json_error GET "${line}" status)
    if(json_error)
      message(FATAL_ERROR "not a JSON object with a status: ${line}\n${json_error}")
    endif()
  endforeach()
endif()
if(FIELD)
  string(REGEX MATCHALL "[^\n]+" lines "${out}")
  foreach(line IN LISTS lines)
    string(JSON type TYPE "${line}" ${FIELD})
    string(JSON value GET "${line}" ${FIELD})
    if(NOT type STREQUAL "NULL" AND value GREATER FIELD_MAX)
      message(FATAL_ERROR "${FIELD} ${value} is above ${FIELD_MAX}: ${line}")
    endif()
    message("${FIELD}: ${value}")
  endforeach()
endif()

# Both forms are read into err_<mode>_<keys>, then checked the same way.
if(FIXTURE_ERRORS STREQUAL "table")
  foreach(keys 32 64 128)
    # keys/query, smyrf RxC, smyrf ms, smyrf error, window error, hybrid ms, hybrid error
    if(NOT out MATCHES "\n +${keys} +[0-9]+x32 +[0-9.]+ +([0-9.]+) +([0-9.]+) +[0-9.]+ +([0-9.]+)")
      message(FATAL_ERROR "the real-attention table has no complete row for ${keys} keys")
    endif()
    set(err_smyrf_${keys} ${CMAKE_MATCH_1})
    set(err_window_${keys} ${CMAKE_MATCH_2})
    set(err_hybrid_${keys} ${CMAKE_MATCH_3})
  endforeach()
elseif(FIXTURE_ERRORS STREQUAL "json")
  string(REGEX MATCHALL "[^\n]+" lines "${out}")
  foreach(line IN LISTS lines)
    string(JSON mode GET "${line}" mode)
    string(JSON keys GET "${line}" keys_per_query)
    string(JSON err GET "${line}" mean_rel_err)
    set(err_${mode}_${keys} ${err})
  endforeach()
endif()
if(FIXTURE_ERRORS)
  foreach(keys 32 64 128)
    foreach(mode smyrf window hybrid)
      if(NOT err_${mode}_${keys} MATCHES "^[0-9]+(\\.[0-9]+)?(e-?[0-9]+)?$")
        message(FATAL_ERROR "${mode} at ${keys} keys: no error in the output")
      endif()
    endforeach()
    foreach(other smyrf window)
      if(NOT err_hybrid_${keys} LESS err_${other}_${keys})
        message(FATAL_ERROR "${keys} keys per query: HYBRID's error ${err_hybrid_${keys}} is "
                            "not below ${other}'s ${err_${other}_${keys}}")
      endif()
    endforeach()
    message("${keys} keys per query: HYBRID ${err_hybrid_${keys}} < SMYRF "
            "${err_smyrf_${keys}}, window ${err_window_${keys}}")
  endforeach()
endif()
