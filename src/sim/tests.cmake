# SPDX-License-Identifier: Apache-2.0
# ioasid-sim (issue 6): the scenario parser (every malformed case) and its fuzzer.
if(TARGET ioasid_sim_core)
  ioasid_add_test(sim_scenario_test SOURCES src/sim/scenario_test.cc LIBS ioasid_sim_core)
  target_compile_definitions(sim_scenario_test PRIVATE IOASID_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  ioasid_add_fuzzer(sim_scenario_fuzz SOURCES src/sim/scenario_fuzz.cc
                    CORPUS src/sim/scenario_corpus LIBS ioasid_sim_core)
endif()
