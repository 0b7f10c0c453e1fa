// SPDX-License-Identifier: Apache-2.0
// progress.hpp: sim::Progress, the run's progress on stderr: a bar redrawn in place (carriage
// return, at most ten times a second) when stderr is a terminal, plain lines at every tenth of
// the run otherwise (logs, CI), nothing with --quiet. It never touches stdout, which carries the
// report (or the JSON document).
// Thread-safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace ioasid::sim {

class Progress {
 public:
  enum class Style { none, bar, lines };
  Progress(std::uint64_t total_steps, Style style, std::FILE* out = stderr)
      : total_(total_steps), style_(style), out_(out) {}
  // The style for stderr: a bar on a terminal, lines otherwise.
  static Style detect(bool quiet);

  void update(std::uint64_t step, std::uint64_t events_done, std::uint64_t events_total,
              std::uint64_t pasids_held);
  // The run is over (or stopped): ends the bar's line.
  void finish();

 private:
  std::uint64_t total_;
  Style style_;
  std::FILE* out_;
  unsigned last_tenth_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace ioasid::sim
