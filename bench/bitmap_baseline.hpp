// SPDX-License-Identifier: Apache-2.0
// bitmap_baseline.hpp: benchmark baseline 2 for ioasid_bench, the least an ID allocator can do: a
// bare 3-level hierarchical bitmap (level 0: one bit per ID; level 1: one bit per full level-0
// word; level 2: one bit per full level-1 word) with no metadata at all, and for find() a flat
// table of std::atomic<void*> indexed by ID (one acquire load). Alloc = lowest zero bit found
// through the summaries, free = clear the bit. No lock, no sets, no references, no protection of
// the private data's lifetime: a single writer thread is assumed. Not part of the library.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <vector>

#include "ioasid/types.hpp"

namespace ioasid::bench {

class BitmapBaseline {
 public:
  // IDs [0, max_id]; ID 0 is reserved. max_id + 1 must be at most 2^24 (level 2 is one scan of
  // up to 64 words).
  explicit BitmapBaseline(Id max_id)
      : n0_((std::uint64_t{max_id} + 64) / 64),
        n1_((n0_ + 63) / 64),
        n2_((n1_ + 63) / 64),
        l0_(n0_, 0),
        l1_(n1_, 0),
        l2_(n2_, 0),
        table_(std::uint64_t{max_id} + 1) {
    // Bits past max_id, past the last level-0 word and past the last level-1 word read as used,
    // so that no search ever returns them.
    const std::uint64_t ids = std::uint64_t{max_id} + 1;
    if (ids % 64 != 0) l0_[n0_ - 1] |= ~std::uint64_t{0} << (ids % 64);
    if (n0_ % 64 != 0) l1_[n1_ - 1] |= ~std::uint64_t{0} << (n0_ % 64);
    if (n1_ % 64 != 0) l2_[n2_ - 1] |= ~std::uint64_t{0} << (n1_ % 64);
    set_bit(0);  // reserved, like PASID 0
  }

  // The lowest free ID in [min, max] with private data priv, or kInvalidId.
  Id alloc(Id min, Id max, void* priv) {
    const std::uint64_t id = next_zero(min);
    if (id > max) return kInvalidId;
    set_bit(id);
    table_[id].store(priv, std::memory_order_release);
    return static_cast<Id>(id);
  }

  // Frees an ID (no check that it was live: that is metadata this baseline does not have).
  void free(Id id) {
    table_[id].store(nullptr, std::memory_order_release);
    const std::uint64_t w0 = id / 64;
    l0_[w0] &= ~(std::uint64_t{1} << (id % 64));
    l1_[w0 / 64] &= ~(std::uint64_t{1} << (w0 % 64));
    l2_[w0 / 4096] &= ~(std::uint64_t{1} << ((w0 / 64) % 64));
  }

  // The flat pointer-table load.
  void* find(Id id) const { return table_[id].load(std::memory_order_acquire); }

  std::uint64_t accounted_bytes() const {
    return sizeof(*this) + (n0_ + n1_ + n2_) * sizeof(std::uint64_t) +
           table_.size() * sizeof(std::atomic<void*>);
  }

 private:
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};
  static std::uint64_t from(unsigned b) { return ~std::uint64_t{0} << b; }

  void set_bit(std::uint64_t id) {
    const std::uint64_t w0 = id / 64;
    if ((l0_[w0] |= std::uint64_t{1} << (id % 64)) != kNone) return;
    const std::uint64_t w1 = w0 / 64;
    if ((l1_[w1] |= std::uint64_t{1} << (w0 % 64)) != kNone) return;
    l2_[w1 / 64] |= std::uint64_t{1} << (w1 % 64);
  }

  // The first zero bit at or after id in level 0, or kNone.
  std::uint64_t next_zero(std::uint64_t id) const {
    std::uint64_t w0 = id / 64;
    if (w0 >= n0_) return kNone;
    const std::uint64_t x = ~l0_[w0] & from(id % 64);
    if (x != 0) return w0 * 64 + static_cast<unsigned>(std::countr_zero(x));
    // The next level-0 word with a zero, through level 1 ...
    const std::uint64_t w = w0 + 1;
    if (w >= n0_) return kNone;
    std::uint64_t w1 = w / 64;
    std::uint64_t y = ~l1_[w1] & from(w % 64);
    if (y == 0) {
      // ... and level 2.
      const std::uint64_t v = w1 + 1;
      if (v >= n1_) return kNone;
      std::uint64_t w2 = v / 64;
      std::uint64_t z = ~l2_[w2] & from(v % 64);
      while (z == 0) {
        if (++w2 == n2_) return kNone;
        z = ~l2_[w2];
      }
      w1 = w2 * 64 + static_cast<unsigned>(std::countr_zero(z));
      y = ~l1_[w1];
    }
    w0 = w1 * 64 + static_cast<unsigned>(std::countr_zero(y));
    return w0 * 64 + static_cast<unsigned>(std::countr_zero(~l0_[w0]));
  }

  std::uint64_t n0_, n1_, n2_;  // words per level
  std::vector<std::uint64_t> l0_, l1_, l2_;
  std::vector<std::atomic<void*>> table_;
};

}  // namespace ioasid::bench
