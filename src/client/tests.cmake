# SPDX-License-Identifier: Apache-2.0
# The ioasidd client library (issue 5) against the built daemon, run as a child process.
if(TARGET ioasidd)
  ioasid_add_test(client_test SOURCES src/client/client_test.cc LIBS ioasidd_core)
  if(TARGET client_test)
    target_compile_definitions(client_test PRIVATE IOASIDD_PATH="$<TARGET_FILE:ioasidd>")
    add_dependencies(client_test ioasidd)
  endif()
endif()
