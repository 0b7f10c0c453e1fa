// SPDX-License-Identifier: Apache-2.0
// scenario_fuzz.cc: libFuzzer target for the scenario parser (scenario files are untrusted input).
// Checks beyond "does not crash": an accepted scenario prints back (scenario_to_json) to a text
// that parses to the same scenario, and a rejected one always says why, with the file name first;
// small accepted scenarios also build their timeline twice from the same seed, identically.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sim/scenario.hpp"
#include "sim/timeline.hpp"

using ioasid::sim::parse_scenario;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto s = parse_scenario(text, "fuzz.json", &error);
  if (!s) {
    if (error.rfind("fuzz.json: ", 0) != 0 || error.size() <= 11) std::abort();
    return 0;
  }
  const std::string once = ioasid::sim::scenario_to_json(*s);
  auto again = parse_scenario(once, "fuzz.json", &error);
  if (!again || ioasid::sim::scenario_to_json(*again) != once) std::abort();

  // The timeline's cost grows with its events; keep each input cheap.
  std::uint64_t events = s->random_events.count;
  for (const auto& e : s->events) {
    events += e.repeat_every == 0 ? 1 : (s->steps - 1 - e.at) / e.repeat_every + 1;
  }
  if (events <= 2000) {
    ioasid::sim::Rng r1(s->seed), r2(s->seed);
    std::string e1, e2;
    auto t1 = ioasid::sim::build_timeline(*s, r1, &e1);
    auto t2 = ioasid::sim::build_timeline(*s, r2, &e2);
    if (t1.has_value() != t2.has_value() || e1 != e2) std::abort();
    if (t1) {
      if (t1->size() != t2->size()) std::abort();
      for (std::size_t i = 0; i < t1->size(); ++i) {
        const auto& a = (*t1)[i];
        const auto& b = (*t2)[i];
        if (a.at != b.at || a.kind != b.kind || a.vm != b.vm || a.viommu != b.viommu ||
            a.at >= s->steps || (i > 0 && (*t1)[i - 1].at > a.at)) {
          std::abort();
        }
      }
    } else if (e1.rfind("fuzz.json: ", 0) != 0) {
      std::abort();
    }
  }
  return 0;
}
