# SPDX-License-Identifier: Apache-2.0
# The ioasidd client library (issue 5) against the built daemon, run as a child process.
# client_concurrency_test uses threads and is labelled concurrency (it also runs under TSan).
if(TARGET ioasidd)
  ioasid_add_test(client_test SOURCES src/client/client_test.cc LIBS ioasidd_core)
  ioasid_add_test(client_concurrency_test SOURCES src/client/client_concurrency_test.cc
                  LABELS concurrency LIBS ioasidd_core)
  foreach(t client_test client_concurrency_test)
    if(TARGET ${t})
      target_compile_definitions(${t} PRIVATE IOASIDD_PATH="$<TARGET_FILE:ioasidd>")
      add_dependencies(${t} ioasidd)
    endif()
  endforeach()
endif()
