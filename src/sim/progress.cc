// SPDX-License-Identifier: Apache-2.0
// progress.cc: the progress bar and progress lines (progress.hpp).
#include "sim/progress.hpp"

#include <unistd.h>

#include <string>

namespace ioasid::sim {

Progress::Style Progress::detect(bool quiet) {
  if (quiet) return Style::none;
  return ::isatty(STDERR_FILENO) == 1 ? Style::bar : Style::lines;
}

void Progress::update(std::uint64_t step, std::uint64_t events_done, std::uint64_t events_total,
                      std::uint64_t pasids_held) {
  if (style_ == Style::none || total_ == 0) return;
  const auto tenth = static_cast<unsigned>(step * 10 / total_);
  if (style_ == Style::lines) {
    if (tenth == last_tenth_) return;
    last_tenth_ = tenth;
    std::fprintf(
        out_, "ioasid-sim: %3u%% (step %llu of %llu, %llu of %llu events, %llu PASIDs held)\n",
        tenth * 10, static_cast<unsigned long long>(step), static_cast<unsigned long long>(total_),
        static_cast<unsigned long long>(events_done), static_cast<unsigned long long>(events_total),
        static_cast<unsigned long long>(pasids_held));
    std::fflush(out_);
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && step != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  constexpr unsigned kWidth = 30;
  const auto filled = static_cast<unsigned>(step * kWidth / total_);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '-');
  std::fprintf(
      out_, "\r[%s] %3llu%%  step %llu/%llu  events %llu/%llu  PASIDs %llu   ", bar.c_str(),
      static_cast<unsigned long long>(step * 100 / total_), static_cast<unsigned long long>(step),
      static_cast<unsigned long long>(total_), static_cast<unsigned long long>(events_done),
      static_cast<unsigned long long>(events_total), static_cast<unsigned long long>(pasids_held));
  std::fflush(out_);
}

void Progress::finish() {
  if (style_ == Style::bar && drawn_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  drawn_ = false;
}

}  // namespace ioasid::sim
