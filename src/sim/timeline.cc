// SPDX-License-Identifier: Apache-2.0
// timeline.cc: expansion and validation of a scenario's events (see timeline.hpp).
#include "sim/timeline.hpp"

#include <algorithm>
#include <tuple>

namespace ioasid::sim {
namespace {

// What the events change: which VMs run and which of their vIOMMUs are plugged.
struct State {
  std::vector<bool> running;
  std::vector<std::vector<bool>> plugged;

  explicit State(const Scenario& s) {
    for (const VmSpec& vm : s.vms) {
      running.push_back(true);
      plugged.push_back(boot_plugs(vm));
    }
  }
  static std::vector<bool> boot_plugs(const VmSpec& vm) {
    std::vector<bool> p;
    for (const ViommuSpec& v : vm.viommus) p.push_back(v.plugged);
    return p;
  }

  // Empty when e applies; else why not.
  std::string why_not(const Scenario& s, const TimedEvent& e) const {
    if (e.kind == EventKind::daemon_restart) return {};
    const auto v = static_cast<std::size_t>(e.vm);
    const std::string vm = "VM \"" + s.vms[v].name + "\"";
    const char* kind = to_string(e.kind);
    if (e.kind == EventKind::vm_boot) {
      return running[v] ? vm + " is running (vm_boot needs a VM that was shut down)" : "";
    }
    if (!running[v]) return vm + " is shut down (" + kind + " needs a running VM)";
    if (e.kind == EventKind::hot_unplug || e.kind == EventKind::hot_plug) {
      const auto i = static_cast<std::size_t>(e.viommu);
      const std::string vi = "vIOMMU \"" + s.vms[v].viommus[i].name + "\" of " + vm;
      if (e.kind == EventKind::hot_unplug && !plugged[v][i]) {
        return vi + " is not plugged (hot_unplug needs a plugged vIOMMU)";
      }
      if (e.kind == EventKind::hot_plug && plugged[v][i]) {
        return vi + " is plugged already (hot_plug needs an unplugged vIOMMU)";
      }
    }
    return {};
  }

  void apply(const Scenario& s, const TimedEvent& e) {
    const auto v = static_cast<std::size_t>(e.vm);
    switch (e.kind) {
      case EventKind::hot_unplug:
        plugged[v][static_cast<std::size_t>(e.viommu)] = false;
        break;
      case EventKind::hot_plug:
        plugged[v][static_cast<std::size_t>(e.viommu)] = true;
        break;
      case EventKind::vm_shutdown:
        running[v] = false;
        break;
      case EventKind::vm_boot:
        running[v] = true;
        plugged[v] = boot_plugs(s.vms[v]);
        break;
      case EventKind::vmm_crash:
        if (!e.resume) plugged[v] = boot_plugs(s.vms[v]);  // the guest reboots
        break;
      case EventKind::daemon_restart:
        break;
    }
  }
};

// Every target a random event of kind could take in state st.
std::vector<TimedEvent> candidates(const Scenario& s, const State& st, EventKind kind,
                                   std::uint64_t at) {
  std::vector<TimedEvent> out;
  if (kind == EventKind::daemon_restart) {
    out.push_back(TimedEvent{at, kind, -1, -1, true, {}});
    return out;
  }
  for (std::size_t v = 0; v < s.vms.size(); ++v) {
    if (kind == EventKind::hot_unplug || kind == EventKind::hot_plug) {
      for (std::size_t i = 0; i < s.vms[v].viommus.size(); ++i) {
        TimedEvent e{at, kind, static_cast<int>(v), static_cast<int>(i), true, {}};
        if (st.why_not(s, e).empty()) out.push_back(e);
      }
    } else {
      TimedEvent e{at, kind, static_cast<int>(v), -1, true, {}};
      if (st.why_not(s, e).empty()) out.push_back(e);
    }
  }
  return out;
}

}  // namespace

std::optional<std::vector<TimedEvent>> build_timeline(const Scenario& s, Rng& rng,
                                                      std::string* error) {
  // The scenario's events, repetitions expanded, ordered by step, then by the file's times
  // (events --steps put on one step keep their order), then by their place in the file.
  struct Planned {
    TimedEvent e;
    std::uint64_t file_at;
    std::size_t index;
  };
  std::vector<Planned> planned;
  std::uint64_t total = s.random_events.count;
  for (std::size_t i = 0; i < s.events.size(); ++i) {
    const EventSpec& spec = s.events[i];
    const std::string where = "events[" + std::to_string(i) + "]";
    std::uint64_t n = 1;
    if (spec.repeat_every != 0) n = (s.steps - 1 - spec.at) / spec.repeat_every + 1;
    total += n;
    if (total > kMaxTimelineEvents) {
      *error = s.source + ": " + where + ": the timeline would hold more than " +
               std::to_string(kMaxTimelineEvents) + " events";
      return std::nullopt;
    }
    for (std::uint64_t r = 0; r < n; ++r) {
      TimedEvent e{spec.at + r * spec.repeat_every,
                   spec.kind,
                   spec.vm,
                   spec.viommu,
                   spec.resume,
                   r == 0 ? where : where + " repetition " + std::to_string(r + 1)};
      planned.push_back(Planned{std::move(e), spec.file_at + r * spec.file_repeat_every, i});
    }
  }
  std::stable_sort(planned.begin(), planned.end(), [](const Planned& a, const Planned& b) {
    return std::tie(a.e.at, a.file_at, a.index) < std::tie(b.e.at, b.file_at, b.index);
  });

  // Random events: their steps first (sorted), then, walking the merged order, their kinds and
  // targets, each accepted only if every later scenario event still applies.
  std::vector<std::uint64_t> random_at;
  for (std::uint32_t i = 0; i < s.random_events.count; ++i) random_at.push_back(rng.below(s.steps));
  std::sort(random_at.begin(), random_at.end());

  std::vector<TimedEvent> out;
  State st(s);
  std::size_t p = 0;
  std::size_t r = 0;
  std::uint32_t random_index = 0;
  // A random event changes the state of its own VM only: what it could break are that VM's later
  // scenario events.
  std::vector<std::vector<std::size_t>> by_vm(s.vms.size());
  for (std::size_t k = 0; k < planned.size(); ++k) {
    if (planned[k].e.vm >= 0) by_vm[static_cast<std::size_t>(planned[k].e.vm)].push_back(k);
  }
  auto later_ok = [&](const State& from, const TimedEvent& e, std::size_t next) {
    if (e.vm < 0) return true;
    const auto& mine = by_vm[static_cast<std::size_t>(e.vm)];
    State copy = from;
    for (auto it = std::lower_bound(mine.begin(), mine.end(), next); it != mine.end(); ++it) {
      const TimedEvent& later = planned[*it].e;
      if (!copy.why_not(s, later).empty()) return false;
      copy.apply(s, later);
    }
    return true;
  };
  while (p < planned.size() || r < random_at.size()) {
    // A scenario event goes first on a step both use.
    if (p < planned.size() && (r == random_at.size() || planned[p].e.at <= random_at[r])) {
      const TimedEvent& e = planned[p].e;
      const std::string why = st.why_not(s, e);
      if (!why.empty()) {
        *error = s.source + ": " + e.origin + ": at step " + std::to_string(e.at) + ", " + why;
        return std::nullopt;
      }
      st.apply(s, e);
      out.push_back(e);
      ++p;
      continue;
    }
    const std::uint64_t at = random_at[r++];
    ++random_index;
    const EventKind kind = s.random_events.kinds[rng.below(s.random_events.kinds.size())];
    std::vector<TimedEvent> options = candidates(s, st, kind, at);
    bool resume = true;
    if (kind == EventKind::vmm_crash) {
      resume = s.random_events.resume == CrashResume::always ||
               (s.random_events.resume == CrashResume::random && rng.chance(1, 2));
    }
    // Drop the targets that would break a later scenario event.
    std::vector<TimedEvent> usable;
    for (TimedEvent& e : options) {
      e.resume = resume;
      State copy = st;
      copy.apply(s, e);
      if (later_ok(copy, e, p)) usable.push_back(e);
    }
    if (usable.empty()) continue;  // nothing applies at that step: no event
    TimedEvent e = usable[rng.below(usable.size())];
    e.origin = "random event " + std::to_string(random_index);
    st.apply(s, e);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace ioasid::sim
