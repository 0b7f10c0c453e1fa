// SPDX-License-Identifier: Apache-2.0
// timeline.hpp: the event scheduler's plan. build_timeline() expands a scenario's events (their
// repetitions, and the random events drawn from the run's Rng) into one list in step order and
// checks that every event applies in the state the events before it leave: an unplug needs a
// plugged vIOMMU of a running VM, a boot a VM that was shut down, and so on. Random events pick
// their targets among what applies at their step and never make a later scenario event invalid.
//
// Thread-safety: pure functions. Ranges: steps are [0, Scenario::steps).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/rng.hpp"
#include "sim/scenario.hpp"

namespace ioasid::sim {

// Events a timeline may hold in all (repetitions and random events included).
inline constexpr std::uint64_t kMaxTimelineEvents = 1'000'000;

struct TimedEvent {
  std::uint64_t at = 0;
  EventKind kind = EventKind::hot_unplug;
  int vm = -1;
  int viommu = -1;
  bool resume = true;
  std::string origin;  // "events[3]", "events[3] repetition 2", "random event 5"
};

// Returns the timeline, or nullopt with *error ("<source>: events[3]: at step 1200, vIOMMU
// "vtd0" of VM "vm1" is not plugged (hot_unplug needs a plugged vIOMMU)").
std::optional<std::vector<TimedEvent>> build_timeline(const Scenario& s, Rng& rng,
                                                      std::string* error);

}  // namespace ioasid::sim
