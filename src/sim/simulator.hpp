// SPDX-License-Identifier: Apache-2.0
// simulator.hpp: sim::run_simulation, one whole-host run: builds the host (in-process, or a real
// ioasidd), boots the scenario's VMs, drives the workload step by step with the timeline's events
// between steps, checks the invariants (per operation, after every event, every check_every
// steps, and at the end), shuts every VM down, and reports.
//
// Determinism: one Rng seeded with the scenario's seed (or --seed) draws every choice in a fixed
// order: the random events first (timeline.hpp), then at each step the VM that acts (by weight)
// and its operation and target. In-process, nothing else varies: two runs with one seed give the
// same report. With ioasidd only process timing differs (wall times, and how often a client had
// to reconnect).
//
// Exit status (kExit*): 0 every invariant held; 1 an invariant was violated; 2 a bad command line
// or scenario; 3 the run could not go on (an operation failed in a way no invariant covers, or
// the daemon could not be started).
// Thread-safety: run_simulation runs on the calling thread; one at a time per process.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "sim/scenario.hpp"

namespace ioasid::sim {

inline constexpr int kExitOk = 0;
inline constexpr int kExitViolation = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitFailure = 3;

struct SimOptions {
  std::optional<std::uint64_t> seed;   // instead of the scenario's
  std::optional<std::uint64_t> steps;  // rescale the scenario to this many steps
  std::optional<Fault> inject;         // instead of the scenario's inject_fault
  std::optional<std::uint32_t> history;
  bool in_process = false;  // run an ioasidd scenario in-process (no daemon_restart events)
  std::string socket;       // use the ioasidd listening here
  std::string ioasidd;      // the ioasidd to start
  std::string state_dir;    // its store (default: a temporary directory, removed afterwards)
  std::string report_dir = "ioasid-sim-report";
  bool write_report = true;
  bool json = false;
  bool quiet = false;
};

// Runs s (already parsed) and prints: the human report (or, with json, one JSON document) on
// stdout; progress and, on a violation, the violation and its history on stderr. Returns the
// exit status.
int run_simulation(Scenario s, const SimOptions& options);

}  // namespace ioasid::sim
