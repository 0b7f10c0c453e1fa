# SPDX-License-Identifier: Apache-2.0
# ioasidd (issue 5): the daemon as a real child process over real sockets and SQLite state in a
# temporary directory; the store and its schema upgrade; policy parsing and enforcement; crash
# recovery under load; the reply queue, the WAL flusher and write buffer; the policy fuzzer.
if(TARGET ioasidd)
  ioasid_add_test(daemon_test SOURCES src/daemon/daemon_test.cc LIBS ioasidd_core)
  ioasid_add_test(daemon_policy_test SOURCES src/daemon/policy_test.cc LIBS ioasidd_core)
  ioasid_add_test(daemon_crash_test SOURCES src/daemon/crash_test.cc LIBS ioasidd_core)
  ioasid_add_test(daemon_reply_queue_test SOURCES src/daemon/reply_queue_test.cc LIBS ioasidd_core)
  ioasid_add_test(daemon_store_test SOURCES src/daemon/store_test.cc LIBS ioasidd_core)
  ioasid_add_test(daemon_wal_write_buffer_test SOURCES src/daemon/wal_write_buffer_test.cc
                  LIBS ioasidd_core)
  ioasid_add_test(daemon_wal_flusher_test SOURCES src/daemon/wal_flusher_test.cc LIBS ioasidd_core
                  LABELS concurrency)
  foreach(t daemon_test daemon_policy_test daemon_crash_test)
    if(TARGET ${t})
      target_compile_definitions(${t} PRIVATE IOASIDD_PATH="$<TARGET_FILE:ioasidd>")
      add_dependencies(${t} ioasidd)
    endif()
  endforeach()
  ioasid_add_fuzzer(daemon_policy_fuzz SOURCES src/daemon/policy_fuzz.cc
                    CORPUS src/daemon/policy_corpus LIBS ioasidd_core)
endif()
