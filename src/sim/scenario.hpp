// SPDX-License-Identifier: Apache-2.0
// scenario.hpp: the model of an ioasid-sim scenario (a host, its VMs with their vIOMMUs and
// workloads, timed events, an optional fault to inject) and its JSON parser. docs/simulator.md
// "Scenario format" is the reference for every key.
//
// Synopsis
//   std::string error;
//   std::optional<Scenario> s = parse_scenario(text, "scenarios/default.json", &error);
//   // error: "scenarios/default.json: vms[2].viommus[0].layout: expected "original" or "v3.3""
//   std::string again = scenario_to_json(*s);   // the same scenario, every default written out
//
// The parser reads untrusted files: it is pure (no I/O), never throws, rejects unknown and
// duplicate keys, wrong types, out-of-range numbers, missing required keys and references that
// name nothing (an event's VM or vIOMMU), and says where (the JSON path) and what. Checks that
// need the timeline (an unplug of a vIOMMU that is not plugged at that step) are in timeline.hpp.
// It is fuzzed by scenario_fuzz.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ioasid/vtd_device.hpp"
#include "ioasid/wire/vtd_vcmd.hpp"

namespace ioasid::sim {

inline constexpr std::uint64_t kMaxSteps = 1'000'000'000;
inline constexpr std::uint32_t kMaxVms = 256;
inline constexpr std::uint32_t kMaxViommusPerVm = 8;
inline constexpr std::uint32_t kMaxEndpoints = 16;
inline constexpr std::uint32_t kMaxQuota = 65536;
inline constexpr std::uint32_t kMaxWeight = 1000;
inline constexpr std::uint32_t kMaxEvents = 100'000;
inline constexpr std::uint32_t kMaxGraceSeconds = 3600;
inline constexpr std::uint32_t kMaxHistory = 10'000;
inline constexpr std::uint32_t kMaxPasid = 0xFFFFF;

enum class HostMode : std::uint8_t {
  in_process = 0,  // the host space lives in the simulator (LocalBackend per VM)
  ioasidd = 1,     // a real ioasidd (DaemonBackend per VM): started by the simulator, or a socket
};

enum class ViommuKind : std::uint8_t { vtd = 0, virtio = 1 };

enum class EventKind : std::uint8_t {
  hot_unplug = 0,      // a vIOMMU leaves its VM (the guest unbinds and unregisters first)
  hot_plug = 1,        // an unplugged vIOMMU comes back
  vmm_crash = 2,       // the VMM dies; restarted at once (resume) or after the grace period
  vm_shutdown = 3,     // the VM ends: its set is torn down
  vm_boot = 4,         // a VM that was shut down boots again (a new session)
  daemon_restart = 5,  // ioasidd is killed with SIGKILL and started again on its store
};
inline constexpr unsigned kEventKinds = 6;

// One per invariant (docs/simulator.md "Fault injection"): each makes the simulator itself
// misbehave so that the named invariant must catch it.
enum class Fault : std::uint8_t {
  none = 0,
  double_owner,    // single_owner: a guest takes a PASID another guest holds
  keep_freed,      // guest_pasid_owned: a guest keeps a PASID after freeing it
  quota_backdoor,  // quota: the host quota is raised behind the scenario's back, the guest fills it
  skip_teardown,   // no_leak: a VM's shutdown skips the teardown of its set
  stale_driver,    // allocator_after_unplug: a guest keeps using the driver of an unplugged vIOMMU
  alter_record,    // durable_ack: the record of an acknowledged alloc is altered after a restart
};

enum class CrashResume : std::uint8_t { always = 0, never = 1, random = 2 };

// Relative weights of the guest operations (each in [0, kMaxWeight]).
struct WorkloadMix {
  std::uint32_t alloc = 4;
  std::uint32_t free = 3;
  std::uint32_t bind = 2;
  std::uint32_t unbind = 2;
  std::uint32_t free_bound = 0;  // free a PASID still bound (FREE_PENDING until the unbind)
  friend bool operator==(const WorkloadMix&, const WorkloadMix&) = default;
};

struct ViommuSpec {
  std::string name;
  ViommuKind kind = ViommuKind::vtd;
  wire::vtd::VcmdLayout layout = wire::vtd::VcmdLayout::rev3_3;  // vtd
  VtdCompletion completion = VtdCompletion::immediate;           // vtd
  std::uint32_t max_pasid = 0;  // virtio: 0 = no limit below 0xFFFFF; else config.max_pasid
  std::uint32_t endpoints = 1;  // devices behind it (binds go to one of them)
  bool plugged = true;          // present at boot
};

struct VmSpec {
  std::string name;
  std::uint64_t token = 0;
  std::uint32_t quota = 0;
  std::uint32_t weight = 1;  // share of the workload steps
  std::vector<ViommuSpec> viommus;
  WorkloadMix workload;
};

struct EventSpec {
  std::uint64_t at = 0;
  EventKind kind = EventKind::hot_unplug;
  int vm = -1;                     // index into Scenario::vms (-1 for daemon_restart)
  int viommu = -1;                 // index into VmSpec::viommus (hot_unplug / hot_plug)
  bool resume = true;              // vmm_crash
  std::uint64_t repeat_every = 0;  // 0: once
  // at and repeat_every as the file gave them (before --steps rescaling): events that rescaling
  // puts on the same step keep the order the file's times gave them.
  std::uint64_t file_at = 0;
  std::uint64_t file_repeat_every = 0;
};

struct RandomEvents {
  std::uint32_t count = 0;
  std::vector<EventKind> kinds;
  CrashResume resume = CrashResume::always;
};

struct HostSpec {
  HostMode mode = HostMode::in_process;
  std::string socket;  // ioasidd: an existing daemon's socket; empty: the simulator starts one
  std::uint32_t grace_seconds = 30;
};

struct Scenario {
  std::string source;  // the file name used in messages
  std::string name;
  std::string description;
  std::uint64_t seed = 1;
  std::uint64_t steps = 0;
  std::uint64_t check_every = 250;  // full scan of the host state every this many steps
  std::uint32_t history = 32;       // events kept for a violation report
  HostSpec host;
  WorkloadMix workload;  // the default for every VM
  std::vector<VmSpec> vms;
  std::vector<EventSpec> events;
  RandomEvents random_events;
  Fault inject_fault = Fault::none;
  std::optional<std::uint64_t> inject_at;  // default: steps / 4
};

// Names as they are written in scenario files and reports.
const char* to_string(HostMode m) noexcept;
const char* to_string(ViommuKind k) noexcept;
const char* to_string(EventKind k) noexcept;
const char* to_string(Fault f) noexcept;
const char* to_string(CrashResume r) noexcept;
const char* layout_name(wire::vtd::VcmdLayout l) noexcept;  // "original" / "v3.3"
std::optional<Fault> parse_fault(std::string_view name) noexcept;
// The invariant a fault must trip ("single_owner", ...).
const char* fault_invariant(Fault f) noexcept;

// Parses a scenario file's text. On error returns nullopt and sets *error to
// "<source>: <path>: <what>" (or "<source>: parse error at line L, column C: ...").
std::optional<Scenario> parse_scenario(std::string_view text, const std::string& source,
                                       std::string* error);

// The scenario as JSON with every key written out (defaults included); parse_scenario of it gives
// the same scenario. Used for the report and the parser's round-trip tests.
std::string scenario_to_json(const Scenario& s);

// Runs the scenario with `steps` steps instead: event times, repeat intervals, the injection step
// and the number of random events scale by steps / s.steps (an event never moves past the last
// step; random events stay at least one). Used by --steps.
Scenario rescale_steps(const Scenario& s, std::uint64_t steps);

}  // namespace ioasid::sim
