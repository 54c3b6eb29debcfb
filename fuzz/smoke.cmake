# One fuzz_smoke test (fuzz/CMakeLists.txt): runs FUZZER over its corpus and, when
# the folder exists, its regressions, then fuzzes for SECONDS; new inputs go to the
# scratch folder WORK. Checked when the test runs, so a target's first regression
# folder needs no reconfigure.
set(dirs ${WORK} ${CORPUS})
if(EXISTS ${REGRESSIONS})
  list(APPEND dirs ${REGRESSIONS})
endif()
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix=${WORK}/ ${dirs}
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} found something (exit ${result}); the input is in ${WORK}")
endif()
