# SPDX-License-Identifier: Apache-2.0
# ioasid-sim (issue 6): the scenario parser (every malformed case) and its fuzzer; the real
# ioasid-sim binary on every shipped scenario in bounded form (against real ioasidd daemons it
# starts), every fault-injection hook, determinism, errors and progress output.
if(TARGET ioasid_sim_core)
  ioasid_add_test(sim_scenario_test SOURCES src/sim/scenario_test.cc LIBS ioasid_sim_core)
  target_compile_definitions(sim_scenario_test PRIVATE IOASID_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(TARGET ioasid-sim AND TARGET ioasidd)
    ioasid_add_test(sim_run_test SOURCES src/sim/sim_run_test.cc LIBS ioasid_sim_core)
    target_compile_definitions(sim_run_test PRIVATE
      IOASID_SIM_PATH="$<TARGET_FILE:ioasid-sim>" IOASIDD_PATH="$<TARGET_FILE:ioasidd>"
      IOASID_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    add_dependencies(sim_run_test ioasid-sim ioasidd)
  endif()
  ioasid_add_fuzzer(sim_scenario_fuzz SOURCES src/sim/scenario_fuzz.cc
                    CORPUS src/sim/scenario_corpus LIBS ioasid_sim_core)
endif()
