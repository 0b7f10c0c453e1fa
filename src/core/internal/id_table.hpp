// SPDX-License-Identifier: Apache-2.0
// id_table.hpp: the sparse table behind an IOASID space: one entry per ID, an occupancy bitmap
// with summaries for finding the lowest free ID, and a lock-free read path.
//
// Layout: a 3-level radix tree. An ID splits into [top index | mid index (12 bits) | leaf index
// (9 bits)]. A Leaf holds 512 entries, each split into a reader-visible HotEntry (meta word and
// private pointer, 16 bytes) and a writer-only ColdEntry (refs and allocator group, 4 bytes), plus
// the leaf's occupancy bitmap: 20 bytes and a bit per ID. A Mid holds 4096 leaf pointers, a bitmap
// of full leaves and a summary of that bitmap. The top array (2^(width-21) mids, at least one) is
// made with the table. Leaves and mids exist only where IDs were used: an empty 32-bit table costs
// 16 KiB.
//
// Read path (lookup): three dependent acquire loads, no lock, no write. Leaves and mids are only
// freed by trim(), after an RCU grace period, so a reader never touches freed memory.
//
// Entry consistency without locks: the 64-bit meta word packs {state, generation, set serial}. A
// writer stores the private pointer and then the meta word (both release); every meta change bumps
// the 30-bit generation. A reader loads meta, the pointer, then meta again: equal words mean the
// pointer belongs to the allocation it saw (a wrap needs 2^30 changes of one ID in between).
//
// Context: all writer calls run under the owning space's writer lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ioasid/errc.hpp"
#include "ioasid/types.hpp"

namespace ioasid::internal {

inline constexpr unsigned kLeafBits = 9;
inline constexpr std::uint32_t kLeafSize = 1u << kLeafBits;  // 512 IDs
inline constexpr unsigned kMidBits = 12;
inline constexpr std::uint32_t kMidSize = 1u << kMidBits;    // 4096 leaves
inline constexpr unsigned kMidShift = kLeafBits + kMidBits;  // an ID's top index is id >> 21
inline constexpr std::uint32_t kLeafWords = kLeafSize / 64;
inline constexpr std::uint32_t kMidWords = kMidSize / 64;

// The meta word: bits 0-1 IdState, bits 2-31 generation, bits 32-63 set serial.
namespace meta {
inline constexpr std::uint64_t kStateMask = 0x3;
inline constexpr std::uint64_t kGenOne = 1u << 2;
inline constexpr std::uint64_t kGenMask = 0xFFFFFFFCull;
constexpr IdState state(std::uint64_t m) { return static_cast<IdState>(m & kStateMask); }
constexpr std::uint32_t set_serial(std::uint64_t m) { return static_cast<std::uint32_t>(m >> 32); }
// The next meta word: a new state and set, generation advanced.
constexpr std::uint64_t next(std::uint64_t m, IdState s, std::uint32_t serial) {
  return (std::uint64_t{serial} << 32) | ((m + kGenOne) & kGenMask) | static_cast<std::uint64_t>(s);
}
}  // namespace meta

struct HotEntry {
  std::atomic<std::uint64_t> meta{0};
  std::atomic<void*> priv{nullptr};
};

// Writer-only part of an entry. group: 0 default allocator, 1-254 custom group slot.
struct ColdEntry {
  std::uint32_t refs : 24;
  std::uint32_t group : 8;
};
static_assert(sizeof(ColdEntry) == 4);
inline constexpr std::uint32_t kMaxRefs = (1u << 24) - 1;

struct Leaf {
  HotEntry hot[kLeafSize];
  ColdEntry cold[kLeafSize];
  std::uint64_t used[kLeafWords];  // 1: allocated or reserved
  std::uint32_t used_count;
};

struct Mid {
  std::atomic<Leaf*> leaves[kMidSize];
  std::uint64_t full[kMidWords];  // 1: leaf exists and all its 512 bits are used
  std::uint64_t full_summary;     // bit w: full[w] is all ones
  std::uint32_t leaf_count;
};

class IdTable {
 public:
  IdTable() = default;
  ~IdTable();
  IdTable(const IdTable&) = delete;
  IdTable& operator=(const IdTable&) = delete;

  // Sets up an empty table for IDs [0, 2^width - 1]. Returns: no_memory.
  Result<void> init(unsigned width_bits) noexcept;

  Id max_id() const noexcept { return max_id_; }

  // Reader path: the entry of id or nullptr if its leaf does not exist. id <= max_id().
  const HotEntry* lookup(Id id) const noexcept {
    const Mid* mid = top_[id >> kMidShift].load(std::memory_order_acquire);
    if (mid == nullptr) return nullptr;
    const Leaf* leaf =
        mid->leaves[(id >> kLeafBits) & (kMidSize - 1)].load(std::memory_order_acquire);
    if (leaf == nullptr) return nullptr;
    return &leaf->hot[id & (kLeafSize - 1)];
  }

  // ---- writer side ----

  // The leaf of id, or nullptr if absent.
  Leaf* leaf_of(Id id) const noexcept {
    Mid* mid = top_[id >> kMidShift].load(std::memory_order_relaxed);
    if (mid == nullptr) return nullptr;
    return mid->leaves[(id >> kLeafBits) & (kMidSize - 1)].load(std::memory_order_relaxed);
  }
  // The leaf of id, made if absent; nullptr when memory ran out (nothing changed then).
  // A raw pointer, not Result: this sits on the alloc path (see find_raw in space.hpp).
  Leaf* ensure_leaf(Id id) noexcept {
    if (Leaf* leaf = leaf_of(id)) return leaf;
    return make_leaf(id);
  }

  bool is_used(Id id) const noexcept;
  // Marks id used / free in the bitmaps; its leaf must exist.
  void mark_used(Id id) noexcept;
  void mark_free(Id id) noexcept;

  // The lowest unused ID in [first, last], or kInvalidId. last <= max_id().
  Id find_free(Id first, Id last) const noexcept;

  // Unpublishes empty leaves and mids onto a retired list; free_retired() deletes them (call it
  // after a grace period). Returns the bytes retired.
  std::uint64_t retire_empty() noexcept;
  void free_retired() noexcept;

  std::uint64_t bytes() const noexcept { return bytes_; }

  // Calls fn(leaf_base_id, const Leaf&) for every leaf, in ID order.
  template <class Fn>
  void for_each_leaf(Fn&& fn) const {
    for (std::uint32_t t = 0; t < top_len_; ++t) {
      const Mid* mid = top_[t].load(std::memory_order_relaxed);
      if (mid == nullptr) continue;
      for (std::uint32_t l = 0; l < kMidSize; ++l) {
        const Leaf* leaf = mid->leaves[l].load(std::memory_order_relaxed);
        if (leaf != nullptr) fn((t << kMidShift) | (l << kLeafBits), *leaf);
      }
    }
  }
  // Checks bitmap summaries against the leaves. Returns false on the first mismatch.
  bool check_bitmaps() const noexcept;

 private:
  struct Retired {
    void* block;
    Retired* next;
  };
  void retire(void* block, void* node_place) noexcept;
  Leaf* make_leaf(Id id) noexcept;

  unsigned width_ = 0;
  Id max_id_ = 0;
  std::uint32_t top_len_ = 0;
  std::atomic<Mid*>* top_ = nullptr;
  std::uint64_t* full_mids_ = nullptr;  // bit t: mid t has every leaf full
  std::uint64_t bytes_ = 0;
  Retired* retired_ = nullptr;
};

}  // namespace ioasid::internal
