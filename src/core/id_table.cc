// SPDX-License-Identifier: Apache-2.0
// id_table.cc: leaf and mid management and the lowest-free search of internal/id_table.hpp.
#include "core/internal/id_table.hpp"

#include <bit>
#include <cstring>
#include <new>

#include "core/internal/memory.hpp"

namespace ioasid::internal {
namespace {

constexpr std::uint64_t kAllOnes = ~std::uint64_t{0};

// Mask of bits [b, 63] in a word.
constexpr std::uint64_t bits_from(unsigned b) { return kAllOnes << b; }

// First zero bit at index >= from in words[0, nwords), or nwords * 64.
std::uint32_t next_zero(const std::uint64_t* words, std::uint32_t nwords, std::uint32_t from) {
  std::uint32_t w = from / 64;
  if (w >= nwords) return nwords * 64;
  std::uint64_t x = ~words[w] & bits_from(from % 64);
  while (x == 0) {
    if (++w == nwords) return nwords * 64;
    x = ~words[w];
  }
  return w * 64 + static_cast<std::uint32_t>(std::countr_zero(x));
}

// First non-full leaf index >= from in mid, or kMidSize.
std::uint32_t next_nonfull_leaf(const Mid& mid, std::uint32_t from) {
  const std::uint32_t w = from / 64;
  const std::uint64_t x = ~mid.full[w] & bits_from(from % 64);
  if (x != 0) return w * 64 + static_cast<std::uint32_t>(std::countr_zero(x));
  if (w + 1 == kMidWords) return kMidSize;
  const std::uint64_t s = ~mid.full_summary & bits_from(w + 1);
  if (s == 0) return kMidSize;
  const std::uint32_t w2 = static_cast<std::uint32_t>(std::countr_zero(s));
  return w2 * 64 + static_cast<std::uint32_t>(std::countr_zero(~mid.full[w2]));
}

}  // namespace

IdTable::~IdTable() {
  free_retired();
  if (top_ == nullptr) return;
  for (std::uint32_t t = 0; t < top_len_; ++t) {
    Mid* mid = top_[t].load(std::memory_order_relaxed);
    if (mid == nullptr) continue;
    for (auto& slot : mid->leaves) mem_free(slot.load(std::memory_order_relaxed));
    mem_free(mid);
  }
  mem_free(top_);
  mem_free(full_mids_);
}

Result<void> IdTable::init(unsigned width_bits) noexcept {
  width_ = width_bits;
  max_id_ = width_bits >= 32 ? kInvalidId : (Id{1} << width_bits) - 1;
  top_len_ = width_bits > kMidShift ? 1u << (width_bits - kMidShift) : 1u;
  const std::uint32_t mid_words = (top_len_ + 63) / 64;
  top_ = static_cast<std::atomic<Mid*>*>(mem_alloc(sizeof(std::atomic<Mid*>) * top_len_));
  full_mids_ = static_cast<std::uint64_t*>(mem_alloc(sizeof(std::uint64_t) * mid_words));
  if (top_ == nullptr || full_mids_ == nullptr) {
    mem_free(top_);
    mem_free(full_mids_);
    top_ = nullptr;
    full_mids_ = nullptr;
    return fail(Errc::no_memory);
  }
  for (std::uint32_t t = 0; t < top_len_; ++t) new (&top_[t]) std::atomic<Mid*>(nullptr);
  std::memset(full_mids_, 0, sizeof(std::uint64_t) * mid_words);
  bytes_ = sizeof(std::atomic<Mid*>) * top_len_ + sizeof(std::uint64_t) * mid_words;
  return {};
}

Leaf* IdTable::make_leaf(Id id) noexcept {
  std::atomic<Mid*>& mid_slot = top_[id >> kMidShift];
  Mid* mid = mid_slot.load(std::memory_order_relaxed);
  Mid* new_mid = nullptr;
  if (mid == nullptr) {
    void* block = mem_alloc(sizeof(Mid), alignof(Mid));
    if (block == nullptr) return nullptr;
    std::memset(block, 0, sizeof(Mid));  // null leaf pointers, empty bitmaps
    mid = new_mid = static_cast<Mid*>(block);
  }
  std::atomic<Leaf*>& leaf_slot = mid->leaves[(id >> kLeafBits) & (kMidSize - 1)];
  Leaf* leaf = leaf_slot.load(std::memory_order_relaxed);
  if (leaf != nullptr) return leaf;
  void* block = mem_alloc(sizeof(Leaf), 64);
  if (block == nullptr) {
    // Nothing was published: a failed call leaves the table as it was (no empty mid behind).
    mem_free(new_mid);
    return nullptr;
  }
  if (new_mid != nullptr) {
    bytes_ += sizeof(Mid);
    mid_slot.store(new_mid, std::memory_order_release);
  }
  // All-zero is the valid empty leaf: meta 0 (free, generation 0, no set), no private data.
  std::memset(block, 0, sizeof(Leaf));
  leaf = static_cast<Leaf*>(block);
  bytes_ += sizeof(Leaf);
  ++mid->leaf_count;
  leaf_slot.store(leaf, std::memory_order_release);
  return leaf;
}

bool IdTable::is_used(Id id) const noexcept {
  const Leaf* leaf = leaf_of(id);
  if (leaf == nullptr) return false;
  const std::uint32_t bit = id & (kLeafSize - 1);
  return (leaf->used[bit / 64] >> (bit % 64)) & 1;
}

void IdTable::mark_used(Id id) noexcept {
  Mid* mid = top_[id >> kMidShift].load(std::memory_order_relaxed);
  const std::uint32_t li = (id >> kLeafBits) & (kMidSize - 1);
  Leaf* leaf = mid->leaves[li].load(std::memory_order_relaxed);
  const std::uint32_t bit = id & (kLeafSize - 1);
  leaf->used[bit / 64] |= std::uint64_t{1} << (bit % 64);
  if (++leaf->used_count < kLeafSize) return;
  mid->full[li / 64] |= std::uint64_t{1} << (li % 64);
  if (mid->full[li / 64] != kAllOnes) return;
  mid->full_summary |= std::uint64_t{1} << (li / 64);
  if (mid->full_summary != kAllOnes) return;
  const std::uint32_t t = id >> kMidShift;
  full_mids_[t / 64] |= std::uint64_t{1} << (t % 64);
}

void IdTable::mark_free(Id id) noexcept {
  const std::uint32_t t = id >> kMidShift;
  Mid* mid = top_[t].load(std::memory_order_relaxed);
  const std::uint32_t li = (id >> kLeafBits) & (kMidSize - 1);
  Leaf* leaf = mid->leaves[li].load(std::memory_order_relaxed);
  const std::uint32_t bit = id & (kLeafSize - 1);
  leaf->used[bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
  --leaf->used_count;
  mid->full[li / 64] &= ~(std::uint64_t{1} << (li % 64));
  mid->full_summary &= ~(std::uint64_t{1} << (li / 64));
  full_mids_[t / 64] &= ~(std::uint64_t{1} << (t % 64));
}

Id IdTable::find_free(Id first, Id last) const noexcept {
  // 64-bit cursor: last may be 0xFFFFFFFE and stepping past it must not wrap.
  std::uint64_t id = first;
  while (id <= last) {
    const std::uint32_t t = static_cast<std::uint32_t>(id >> kMidShift);
    if ((full_mids_[t / 64] >> (t % 64)) & 1) {
      id = std::uint64_t{t + 1} << kMidShift;
      continue;
    }
    const Mid* mid = top_[t].load(std::memory_order_relaxed);
    if (mid == nullptr) return static_cast<Id>(id);
    const std::uint32_t li = static_cast<std::uint32_t>(id >> kLeafBits) & (kMidSize - 1);
    const std::uint32_t nli = next_nonfull_leaf(*mid, li);
    if (nli == kMidSize) {
      id = std::uint64_t{t + 1} << kMidShift;
      continue;
    }
    if (nli != li) id = (std::uint64_t{t} << kMidShift) | (std::uint64_t{nli} << kLeafBits);
    if (id > last) break;
    const Leaf* leaf = mid->leaves[nli].load(std::memory_order_relaxed);
    if (leaf == nullptr) return static_cast<Id>(id);
    const std::uint32_t bit =
        next_zero(leaf->used, kLeafWords, static_cast<std::uint32_t>(id) & (kLeafSize - 1));
    if (bit < kLeafSize) {
      id = (id & ~std::uint64_t{kLeafSize - 1}) | bit;
      return id <= last ? static_cast<Id>(id) : kInvalidId;
    }
    id = (id | (kLeafSize - 1)) + 1;  // the zeros of this leaf lie below id: next leaf
  }
  return kInvalidId;
}

void IdTable::retire(void* block, void* node_place) noexcept {
  // The list node lives inside the retired block, in a part readers never load (a leaf's cold
  // entries, a mid's bitmaps): a reader still inside the block sees only what it saw before.
  retired_ = new (node_place) Retired{block, retired_};
}

std::uint64_t IdTable::retire_empty() noexcept {
  std::uint64_t released = 0;
  for (std::uint32_t t = 0; t < top_len_; ++t) {
    Mid* mid = top_[t].load(std::memory_order_relaxed);
    if (mid == nullptr) continue;
    for (auto& slot : mid->leaves) {
      Leaf* leaf = slot.load(std::memory_order_relaxed);
      if (leaf == nullptr || leaf->used_count != 0) continue;
      slot.store(nullptr, std::memory_order_release);
      --mid->leaf_count;
      retire(leaf, &leaf->cold[0]);
      released += sizeof(Leaf);
    }
    if (mid->leaf_count == 0) {
      top_[t].store(nullptr, std::memory_order_release);
      retire(mid, &mid->full[0]);
      released += sizeof(Mid);
    }
  }
  bytes_ -= released;
  return released;
}

void IdTable::free_retired() noexcept {
  while (retired_ != nullptr) {
    Retired* next = retired_->next;
    mem_free(retired_->block);
    retired_ = next;
  }
}

bool IdTable::check_bitmaps() const noexcept {
  for (std::uint32_t t = 0; t < top_len_; ++t) {
    const Mid* mid = top_[t].load(std::memory_order_relaxed);
    bool mid_full = mid != nullptr;
    if (mid == nullptr) {
      if ((full_mids_[t / 64] >> (t % 64)) & 1) return false;
      continue;
    }
    std::uint32_t leaves = 0;
    for (std::uint32_t l = 0; l < kMidSize; ++l) {
      const Leaf* leaf = mid->leaves[l].load(std::memory_order_relaxed);
      bool full = false;
      if (leaf != nullptr) {
        ++leaves;
        std::uint32_t pop = 0;
        for (std::uint64_t w : leaf->used) pop += static_cast<std::uint32_t>(std::popcount(w));
        if (pop != leaf->used_count) return false;
        full = pop == kLeafSize;
      }
      if (((mid->full[l / 64] >> (l % 64)) & 1) != full) return false;
      mid_full = mid_full && full;
    }
    if (leaves != mid->leaf_count) return false;
    for (std::uint32_t w = 0; w < kMidWords; ++w) {
      if (((mid->full_summary >> w) & 1) != (mid->full[w] == kAllOnes)) return false;
    }
    if (((full_mids_[t / 64] >> (t % 64)) & 1) != mid_full) return false;
  }
  return true;
}

}  // namespace ioasid::internal
