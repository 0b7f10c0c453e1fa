// SPDX-License-Identifier: Apache-2.0
// range_set_baseline.hpp: benchmark baseline 1 for ioasid_bench, the allocator one would write
// with the standard library: a std::map of free ranges (first -> last, inclusive; alloc takes the
// lowest, free merges with its neighbours) plus a std::unordered_map from ID to private data for
// find(), all behind one std::shared_mutex (writers exclusive, find() shared). Not part of the
// library; it exists only to put the space's figures in perspective.
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "ioasid/types.hpp"

namespace ioasid::bench {

class RangeSetBaseline {
 public:
  // IDs [0, max_id]; ID 0 is reserved (never handed out), as PASID 0 is in the space.
  explicit RangeSetBaseline(Id max_id) { free_.emplace(1, max_id); }

  // The lowest free ID in [min, max] with private data priv, or kInvalidId.
  Id alloc(Id min, Id max, void* priv) {
    std::unique_lock lock(mu_);
    // The first range that may hold an ID >= min: the one starting at or before min, else the
    // first after it.
    auto it = free_.upper_bound(min);
    if (it != free_.begin() && std::prev(it)->second >= min) --it;
    if (it == free_.end()) return kInvalidId;
    const Id id = it->first > min ? it->first : min;
    if (id > max) return kInvalidId;
    const Id first = it->first;
    const Id last = it->second;
    if (first == id) {
      free_.erase(it);
    } else {
      it->second = id - 1;
    }
    if (id != last) free_.emplace_hint(free_.end(), id + 1, last);
    live_.emplace(id, priv);
    return id;
  }

  // Frees a live ID: false if it was not live.
  bool free(Id id) {
    std::unique_lock lock(mu_);
    if (live_.erase(id) == 0) return false;
    auto next = free_.upper_bound(id);
    const bool join_next = next != free_.end() && next->first == id + 1;
    if (next != free_.begin()) {
      auto prev = std::prev(next);
      if (prev->second + 1 == id) {
        if (join_next) {
          prev->second = next->second;
          free_.erase(next);
        } else {
          prev->second = id;
        }
        return true;
      }
    }
    if (join_next) {
      const Id last = next->second;
      free_.erase(next);
      free_.emplace(id, last);
    } else {
      free_.emplace_hint(next, id, id);
    }
    return true;
  }

  // The private data of a live ID, or nullptr.
  void* find(Id id) const {
    std::shared_lock lock(mu_);
    auto it = live_.find(id);
    return it == live_.end() ? nullptr : it->second;
  }

  std::size_t live() const {
    std::shared_lock lock(mu_);
    return live_.size();
  }

  // The bytes this structure accounts for by its own bookkeeping (nodes and buckets; malloc's
  // per-block overhead is not included: the benchmark measures that with mallinfo2()).
  std::uint64_t accounted_bytes() const {
    std::shared_lock lock(mu_);
    // A std::map node: three pointers, colour and the pair; an unordered_map node: next pointer
    // and the pair (libstdc++ caches no hash for integer keys).
    constexpr std::uint64_t kMapNode = 3 * sizeof(void*) + sizeof(int) + 2 * sizeof(Id);
    constexpr std::uint64_t kHashNode = sizeof(void*) + sizeof(std::pair<const Id, void*>);
    return sizeof(*this) + free_.size() * kMapNode + live_.size() * kHashNode +
           live_.bucket_count() * sizeof(void*);
  }

 private:
  mutable std::shared_mutex mu_;
  std::map<Id, Id> free_;  // free ranges, first -> last (inclusive), disjoint, never adjacent
  std::unordered_map<Id, void*> live_;
};

}  // namespace ioasid::bench
