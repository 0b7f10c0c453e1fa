// SPDX-License-Identifier: Apache-2.0
// report.hpp: what a simulation run reports, and its four renderings: the human table printed to
// stdout, report.md and pasids.svg written to the report directory (the report links the
// picture), and one JSON document for --json. docs/simulator.md "The report" lists the fields.
//
// Everything but the `timing` part is a function of the scenario and the seed in in-process
// mode, so two runs with one seed produce identical JSON (minus timing), markdown (minus its
// timing line) and SVG; the SVG is hand-written (axes, one polyline per VM, event markers,
// legend) and has no timing in it.
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sim/scenario.hpp"
#include "sim/vm.hpp"

namespace ioasid::sim {

struct VmReport {
  std::string name;
  std::uint64_t token = 0;
  std::uint32_t quota = 0;
  std::vector<std::string> viommus;                              // "vtd0 (vtd, original)"
  std::vector<std::pair<std::string, std::uint64_t>> allocs_by;  // vIOMMU -> allocations
  // Transport -> allocations ("VT-d original", "virtio-iommu max_pasid 0xfff"), in the order
  // the VM's vIOMMUs give them.
  std::vector<std::pair<std::string, std::uint64_t>> allocs_by_transport;
  std::uint64_t held_at_end = 0;  // PASIDs held when the workload ended
  VmStats stats;
};

struct EventLine {
  std::uint64_t at = 0;
  std::string what;    // "vmm_crash vm2 (resume)"
  std::string origin;  // "events[1]"
};

struct Report {
  std::string scenario;  // name
  std::string source;    // file
  std::uint64_t seed = 0;
  std::uint64_t steps = 0;
  std::uint64_t steps_done = 0;
  std::string host;   // Host::describe()
  std::string mode;   // "in-process" / "ioasidd"
  std::string fault;  // injected fault, or empty
  // "ok", "violation" or "failure"; for the last two: the invariant (violations), the message
  // and the history that led there.
  std::string result = "ok";
  std::string invariant;
  std::string message;
  std::vector<std::pair<std::uint64_t, std::string>> history;
  std::vector<VmReport> vms;
  std::array<std::uint64_t, kEventKinds> events{};
  std::vector<EventLine> timeline;  // the events that ran
  std::uint64_t daemon_restarts = 0;
  CheckCounts checks;
  std::uint64_t operations = 0;  // guest operations done
  // PASIDs held per VM over time: sample_steps[i] and held[vm][i].
  std::vector<std::uint64_t> sample_steps;
  std::vector<std::vector<std::uint64_t>> held;
  // Timing (the only part that differs between two runs of one seed).
  double wall_seconds = 0;
  double workload_seconds = 0;
  // Where the files went (empty when not written).
  std::string report_path;
  std::string svg_path;
};

std::string render_text(const Report& r);
std::string render_markdown(const Report& r, const std::string& svg_file_name);
std::string render_json(const Report& r);
std::string render_svg(const Report& r);

}  // namespace ioasid::sim
