// SPDX-License-Identifier: Apache-2.0
// prometheus.hpp: ioasidctl's metrics: the daemon's STATUS, STATS and per-VM figures as metric
// families, rendered in the Prometheus text exposition format (version 0.0.4) for
// node_exporter's textfile collector, and the atomic textfile write that collector expects
// (write a temporary file in the same directory, then rename it over the target: a scrape sees
// the old file or the new one, never a partial one).
//
// Names: prefix ioasid_, base units in the name (_seconds, _pasids), counters end in _total;
// per-VM series carry a vm label (the token in decimal). ioasid_up is 1 when the figures could be
// read and 0 otherwise (then it is the only series, so stale figures never linger).
//
// Thread-safety: pure, except write_textfile (file system).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ctl/render.hpp"
#include "ioasid/client.hpp"

namespace ioasid::ctl {

struct MetricSample {
  std::vector<std::pair<std::string, std::string>> labels;
  // Integers are exact (counters can pass 2^53); is_integer selects which field holds the value.
  bool is_integer = true;
  std::uint64_t integer = 0;
  double real = 0;
};

struct MetricFamily {
  std::string name;
  std::string type;  // "gauge" or "counter"
  std::string help;
  std::vector<MetricSample> samples;
};

// The families for a daemon that answered.
[[nodiscard]] std::vector<MetricFamily> daemon_metrics(const DaemonStatus& status,
                                                       const DaemonStats& stats,
                                                       const std::vector<SetInfo>& sets);
// The one family for a daemon that could not be read: ioasid_up 0.
[[nodiscard]] std::vector<MetricFamily> down_metrics();

// The text exposition: # HELP, # TYPE, then the samples of each family; label values escaped
// (backslash, double quote, newline).
[[nodiscard]] std::string exposition(const std::vector<MetricFamily>& families);
// The same as JSON: {"metrics": [{"name", "type", "help", "samples": [{"labels", "value"}]}]}.
[[nodiscard]] Json metrics_json(const std::vector<MetricFamily>& families);

// Writes text to path atomically: a temporary file next to it (".<name>.<pid>.tmp", which the
// textfile collector ignores: it reads *.prom only), mode 0644, then rename(2).
// Returns false with *error set ("<path>: <reason>") and leaves path untouched on failure.
bool write_textfile(const std::string& path, const std::string& text, std::string* error);

}  // namespace ioasid::ctl
