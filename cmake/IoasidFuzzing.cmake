# ioasid_add_fuzzer(NAME SOURCES... [CORPUS dir])
# Every parser and every optimized structure has a libFuzzer target (a LLVMFuzzerTestOneInput).
# - Without fuzzers (every build but the clang one of scripts/test.sh): NAME_replay, the same
#   function driven by fuzz/replay_main.cc over the checked-in corpus plus a bounded number of
#   deterministic pseudo-random inputs, as a ctest.
# - With IOASID_BUILD_FUZZERS=ON (clang): NAME, a real libFuzzer binary with ASan+UBSan, and a
#   ctest fuzz_NAME that runs it for IOASID_FUZZ_SECONDS on a scratch copy of the corpus (libFuzzer
#   runs every corpus input first, so this covers what the replay would); no replay is built.
set(IOASID_FUZZ_SECONDS 6 CACHE STRING "Seconds each bounded libFuzzer run in the test suite takes")

function(ioasid_add_fuzzer name)
  cmake_parse_arguments(F "" "CORPUS" "SOURCES;LIBS" ${ARGN})
  set(sources "")
  foreach(src IN LISTS F_SOURCES)
    if(EXISTS ${PROJECT_SOURCE_DIR}/${src})
      list(APPEND sources ${PROJECT_SOURCE_DIR}/${src})
    endif()
  endforeach()
  if(NOT sources)
    return()
  endif()
  set(corpus "")
  if(F_CORPUS)
    set(corpus ${PROJECT_SOURCE_DIR}/${F_CORPUS})
  endif()

  if(NOT IOASID_BUILD_FUZZERS)
    add_executable(${name}_replay ${sources} ${PROJECT_SOURCE_DIR}/fuzz/replay_main.cc)
    target_link_libraries(${name}_replay PRIVATE ioasid_static ioasid_warnings ${F_LIBS})
    add_test(NAME ${name}_replay COMMAND ${name}_replay ${corpus})
    set_tests_properties(${name}_replay PROPERTIES LABELS "fuzz")
  else()
    add_executable(${name} ${sources})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE ioasid_static ioasid_warnings ${F_LIBS})
    add_test(NAME fuzz_${name}
             COMMAND ${CMAKE_COMMAND} -E env ${PROJECT_SOURCE_DIR}/fuzz/run_bounded.sh
                     $<TARGET_FILE:${name}> ${IOASID_FUZZ_SECONDS} "${corpus}")
    set_tests_properties(fuzz_${name} PROPERTIES LABELS "fuzz" TIMEOUT 600)
  endif()
endfunction()
