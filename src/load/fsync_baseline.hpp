// SPDX-License-Identifier: Apache-2.0
// fsync_baseline.hpp: what "one fsync per request" costs on the file system that holds the
// daemon's state, measured in the same run as the daemon so that ioasid-load can check the group
// commit goal (durable throughput >= 20x what one fsync per request would allow). Three ways to
// make each request durable on its own, from the cheapest a design could get to the naive one:
//   overwrite   pwrite 4 KiB at offset 0 of a preallocated file, then fdatasync (no metadata
//               changes: the floor of any one-flush-per-request design)
//   append      write 4 KiB at the end of the file, then fsync (a journal that grows: the file
//               system commits the new size each time)
//   sqlite      one SQLite transaction per request with the daemon's settings (WAL,
//               synchronous=FULL): INSERT OR REPLACE of one row (ioasidd without group commit)
//
// Thread-safety: none; run it while nothing else loads the disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "load/latency_histogram.hpp"

namespace ioasid::load {

struct DurableWriteCost {
  std::string method;  // "overwrite", "append", "sqlite"
  std::string what;    // a one-line description for the report
  std::uint64_t operations = 0;
  double seconds = 0;
  LatencyHistogram latency;
  std::vector<double> rates;  // operations per second of every measurement (see keep_faster)
  [[nodiscard]] double per_second() const { return seconds > 0 ? operations / seconds : 0; }
};

// Merges a later measurement of the same methods into *kept: per method the faster one is kept
// (the higher rate, so the goal's ratio is the conservative one when the disk is shared and its
// latency drifts), and every measured rate is listed in rates.
void keep_faster(std::vector<DurableWriteCost>* kept, std::vector<DurableWriteCost> later);

// Runs each method in dir for about duration (at least 20 operations each). Returns false with
// *error set when a file cannot be written.
bool measure_durable_writes(const std::string& dir, std::chrono::milliseconds duration,
                            std::vector<DurableWriteCost>* out, std::string* error);

// The file system type of path ("ext4", "xfs", "tmpfs", ... or "0x<magic>"), for the report.
std::string filesystem_type(const std::string& path);

}  // namespace ioasid::load
