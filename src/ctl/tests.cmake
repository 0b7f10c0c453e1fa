# SPDX-License-Identifier: Apache-2.0
# ioasidctl (issue 5): the built program against the built daemon, both real processes; and the
# fuzzer of its value parsers.
if(TARGET ioasidctl AND TARGET ioasidd)
  ioasid_add_test(ctl_test SOURCES src/ctl/ctl_test.cc LIBS ioasidctl_core)
  if(TARGET ctl_test)
    target_compile_definitions(ctl_test PRIVATE IOASIDD_PATH="$<TARGET_FILE:ioasidd>"
                                                IOASIDCTL_PATH="$<TARGET_FILE:ioasidctl>")
    add_dependencies(ctl_test ioasidd ioasidctl)
  endif()
endif()
if(TARGET ioasidctl_core)
  ioasid_add_fuzzer(ctl_args_fuzz SOURCES src/ctl/args_fuzz.cc CORPUS src/ctl/args_corpus
                    LIBS ioasidctl_core)
endif()
