# Runs the smyrf tool once and checks its exit status, and its output against a regex.
#   JSON_LINES=ON: every stdout line must be a JSON object with a "status" field.
# Usage: cmake -DTOOL=... "-DARGS=demo --n 300" -DEXPECT_RC=0 [-DEXPECT=regex]
#              [-DJSON_LINES=ON] -P check_cli.cmake
separate_arguments(ARGS UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${TOOL}" ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out
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
