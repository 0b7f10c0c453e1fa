# ioasid_add_test(NAME SOURCES... [LABELS labels...] [LIBS libs...] [RUN_SERIAL])
# A GoogleTest executable registered with ctest. Sources that do not exist yet are skipped, so a
# test can be declared before it is written. Labels: "concurrency" tests also run under TSan (the
# umbrella target concurrency_tests builds just them); "slow" tests have a bounded default size
# (see the README for the long variants). RUN_SERIAL: its tests run alone, never beside another
# (a load generator that saturates every CPU would starve the timing-bounded waits of the rest).
if(NOT TARGET concurrency_tests)
  add_custom_target(concurrency_tests)
endif()

# GoogleTest's headers (and the standard ones every test uses) are parsed once, into a precompiled
# header that every test target reuses: they cost more than most test files themselves.
option(IOASID_TEST_PCH "Precompile the headers every test includes, once for all tests" ON)
if(IOASID_TEST_PCH AND NOT TARGET ioasid_test_pch)
  add_library(ioasid_test_pch OBJECT ${PROJECT_SOURCE_DIR}/tests/test_pch.cc)
  target_link_libraries(ioasid_test_pch PRIVATE ioasid_static GTest::gtest GTest::gmock
                        ioasid_warnings)
  target_precompile_headers(ioasid_test_pch PRIVATE <gtest/gtest.h> <gmock/gmock.h> <algorithm>
                            <atomic> <chrono> <cstdint> <cstring> <map> <memory> <set> <string>
                            <thread> <vector>)
endif()
function(ioasid_add_test name)
  cmake_parse_arguments(T "RUN_SERIAL" "" "SOURCES;LABELS;LIBS" ${ARGN})
  set(sources "")
  foreach(src IN LISTS T_SOURCES)
    if(EXISTS ${PROJECT_SOURCE_DIR}/${src})
      list(APPEND sources ${PROJECT_SOURCE_DIR}/${src})
    endif()
  endforeach()
  if(NOT sources)
    return()
  endif()
  add_executable(${name} ${sources})
  target_link_libraries(${name} PRIVATE ioasid_static GTest::gtest GTest::gtest_main GTest::gmock
                        ioasid_warnings ${T_LIBS})
  if(TARGET ioasid_test_pch)
    target_precompile_headers(${name} REUSE_FROM ioasid_test_pch)
  endif()
  # An empty LABELS value would vanish from the list and shift the pairs after it (RUN_SERIAL
  # would become a label): only name the properties that are set.
  set(properties "")
  if(T_LABELS)
    string(REPLACE ";" "\\;" labels "${T_LABELS}")  # several labels: one property value
    list(APPEND properties LABELS "${labels}")
  endif()
  if(T_RUN_SERIAL)
    list(APPEND properties RUN_SERIAL TRUE)
  endif()
  if(properties)
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${properties})
  else()
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60)
  endif()
  if("concurrency" IN_LIST T_LABELS)
    add_dependencies(concurrency_tests ${name})
  endif()
endfunction()
