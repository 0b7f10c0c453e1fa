// SPDX-License-Identifier: Apache-2.0
// interval_map.hpp: the mappings of one virtio-iommu domain: disjoint inclusive IOVA ranges
// [start, end] -> phys, kept in a std::map keyed by start (virtio 1.2/1.3 §5.13.6.6-7 MAP/UNMAP).
//
// insert refuses any overlap; erase removes every mapping inside [start, end] and refuses (removing
// nothing) when a mapping straddles either edge, which is the spec's "UNMAP would split a mapping";
// holes are fine. Costs: O(log n) per insert and lookup, O(log n + k) per erase of k mappings.
// Thread-safety: none (the device's mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <new>

namespace ioasid::virtio::internal {

struct Mapping {
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // inclusive
  std::uint64_t phys = 0;
  std::uint32_t flags = 0;
};

class IntervalMap {
 public:
  enum class Insert : std::uint8_t { ok, overlap, no_memory };
  enum class Erase : std::uint8_t { ok, split };

  Insert insert(const Mapping& m) noexcept {
    auto next = map_.upper_bound(m.start);
    if (next != map_.end() && next->first <= m.end) return Insert::overlap;
    if (next != map_.begin() && std::prev(next)->second.end >= m.start) return Insert::overlap;
    try {
      map_.emplace_hint(next, m.start, Entry{m.end, m.phys, m.flags});
    } catch (const std::bad_alloc&) {
      return Insert::no_memory;
    }
    return Insert::ok;
  }

  // Removes the mappings inside [start, end]; *removed = how many. Nothing is removed on split.
  Erase erase(std::uint64_t start, std::uint64_t end, std::size_t* removed) noexcept {
    *removed = 0;
    auto lo = map_.lower_bound(start);
    if (lo != map_.begin()) {
      auto before = std::prev(lo);  // starts below start
      if (before->second.end >= start) return Erase::split;
    }
    auto hi = map_.upper_bound(end);  // first mapping starting after end
    if (hi != lo) {
      auto last = std::prev(hi);  // starts in [start, end]
      if (last->second.end > end) return Erase::split;
    }
    for (auto it = lo; it != hi;) {
      it = map_.erase(it);
      ++*removed;
    }
    return Erase::ok;
  }

  // The mapping holding addr, or nullptr.
  const Mapping* find(std::uint64_t addr, Mapping* out) const noexcept {
    auto it = map_.upper_bound(addr);
    if (it == map_.begin()) return nullptr;
    --it;
    if (it->second.end < addr) return nullptr;
    *out = Mapping{it->first, it->second.end, it->second.phys, it->second.flags};
    return out;
  }

  // True when some mapping intersects [start, end].
  bool intersects(std::uint64_t start, std::uint64_t end) const noexcept {
    auto next = map_.upper_bound(start);
    if (next != map_.end() && next->first <= end) return true;
    return next != map_.begin() && std::prev(next)->second.end >= start;
  }

  std::size_t size() const noexcept { return map_.size(); }
  void clear() noexcept { map_.clear(); }

  template <class F>
  void for_each(F&& f) const {
    for (const auto& [s, e] : map_) f(Mapping{s, e.end, e.phys, e.flags});
  }

 private:
  struct Entry {
    std::uint64_t end;
    std::uint64_t phys;
    std::uint32_t flags;
  };
  std::map<std::uint64_t, Entry> map_;
};

}  // namespace ioasid::virtio::internal
