# SPDX-License-Identifier: Apache-2.0
# ioasid-load (issue 5 "Performance"): short bounded runs of the built program against the built
# daemon (figures checked for consistency, never for speed) and its latency histogram. The
# program runs client threads, an echo server thread and the daemon: labelled concurrency, so it
# also runs under TSan; and RUN_SERIAL, since its runs keep every CPU busy and would stretch the
# bounded waits of whatever test ran beside them.
if(TARGET ioasid-load AND TARGET ioasidd)
  find_package(nlohmann_json REQUIRED)
  ioasid_add_test(load_test SOURCES src/load/load_test.cc LABELS concurrency
                  LIBS ioasid_load_core nlohmann_json::nlohmann_json RUN_SERIAL)
  if(TARGET load_test)
    target_compile_definitions(load_test PRIVATE IOASIDD_PATH="$<TARGET_FILE:ioasidd>"
                                                 IOASID_LOAD_PATH="$<TARGET_FILE:ioasid-load>")
    add_dependencies(load_test ioasidd ioasid-load)
  endif()
endif()
