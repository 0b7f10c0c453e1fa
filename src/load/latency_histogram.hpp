// SPDX-License-Identifier: Apache-2.0
// latency_histogram.hpp: a fixed-size log-linear histogram of latencies in nanoseconds for
// ioasid-load (the HdrHistogram idea, reduced to what a load report needs): 128 linear
// sub-buckets per power of two, so a recorded value is known to within 1/128 (0.8 %) whatever
// its size, in 58 KiB per histogram, with O(1) recording and no allocation after construction.
// Percentiles report the upper edge of the bucket the rank falls in (never below the true
// value); min and max are exact.
//
// Thread-safety: none; each client thread records into its own histogram and the report merges
// them.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace ioasid::load {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 7;  // 128 sub-buckets per power of two
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kPowers = 64 - kSubBits + 1;

  void record(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    ++count_;
    min_ = std::min(min_, ns);
    max_ = std::max(max_, ns);
  }

  void merge(const LatencyHistogram& o) noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }

  // The value at quantile q in [0, 1] (0.5: the median), to the bucket's upper edge, clamped to
  // the exact max; 0 when empty.
  [[nodiscard]] std::uint64_t quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    // The rank (1-based) of the sample at q.
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_) + 0.999999);
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

  // Bucket of ns: values below kSub exactly; above, the top kSubBits + 1 significant bits.
  static constexpr std::size_t index(std::uint64_t ns) noexcept {
    if (ns < kSub) return static_cast<std::size_t>(ns);
    const unsigned width = 64 - static_cast<unsigned>(std::countl_zero(ns));  // > kSubBits
    const unsigned shift = width - kSubBits - 1;
    const std::uint64_t top = ns >> shift;  // in [kSub, 2 * kSub)
    return static_cast<std::size_t>((shift + 1) * kSub + (top - kSub));
  }
  // The largest value that falls in bucket i.
  static constexpr std::uint64_t upper_edge(std::size_t i) noexcept {
    if (i < kSub) return i;
    const std::uint64_t shift = i / kSub - 1;   // at most 64 - kSubBits - 1
    const std::uint64_t top = kSub + i % kSub;  // in [kSub, 2 * kSub)
    // (top + 1) << shift overflows only for the very last bucket.
    if (top + 1 == 2 * kSub && shift == 64 - kSubBits - 1) {
      return std::numeric_limits<std::uint64_t>::max();
    }
    return ((top + 1) << shift) - 1;
  }

 private:
  std::array<std::uint64_t, kPowers * kSub> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace ioasid::load
