// SPDX-License-Identifier: Apache-2.0
// space_invariants.cc: Space::check_invariants(), the full consistency check of the table, sets,
// leaf counters, bindings, quotas and allocator groups that the tests run after every step.

#include "core/internal/space_impl.hpp"

namespace ioasid {

using internal::Binding;
using internal::ColdEntry;
using internal::Group;
using internal::HotEntry;
using internal::impl;
using internal::Leaf;
using internal::SetRec;
using internal::SpaceImpl;
namespace meta = internal::meta;

// ============================================================================================
// Space: invariants
// ============================================================================================

Result<void> Space::check_invariants() const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  auto bad = [] { return fail(Errc::invalid_argument); };
  if (!s->table_.check_bitmaps()) return bad();
  std::uint64_t live = 0, pending = 0, reserved = 0, quota = 0, dying = 0;
  std::uint64_t group_live[internal::kMaxGroupSlot + 1] = {};
  // Every table entry agrees with its bitmap bit and names an existing set.
  bool ok = true;
  s->table_.for_each_leaf([&](Id base, const Leaf& leaf) {
    for (std::uint32_t i = 0; i < internal::kLeafSize && ok; ++i) {
      const std::uint64_t m = leaf.hot[i].meta.load(std::memory_order_relaxed);
      const bool used = (leaf.used[i / 64] >> (i % 64)) & 1;
      const IdState st = meta::state(m);
      if (used != (st != IdState::free)) ok = false;
      if (st == IdState::reserved) ++reserved;
      if (st == IdState::active || st == IdState::free_pending) {
        ++live;
        if (st == IdState::free_pending) ++pending;
        if (leaf.cold[i].refs == 0) ok = false;
        if (s->set_by_serial(meta::set_serial(m)) == nullptr) ok = false;
        ++group_live[leaf.cold[i].group];
      }
      (void)base;
    }
  });
  if (!ok) return bad();
  if (live != s->stats_.live_ids || pending != s->stats_.free_pending_ids ||
      reserved != s->reserved_ids_) {
    return bad();
  }
  std::uint64_t counted = 0, sets = 0;
  for (std::uint32_t slot = 0; slot < s->set_slots_.size(); ++slot) {
    const SetRec* rec = s->set_slots_[slot];
    if (rec == nullptr) continue;
    ++sets;
    const std::uint32_t serial = rec->serial;
    if (slot == 0 || (serial & (internal::kMaxSetSlots - 1)) != slot) return bad();
    if ((serial >> internal::kSetSlotBits) != s->set_gens_[slot]) return bad();
    auto tok = s->by_token_.find(rec->token);
    if (tok == s->by_token_.end() || tok->second != serial) return bad();
    // Each leaf counter matches the members found in that leaf; together they are the count.
    std::uint64_t n = 0;
    for (const auto& [leaf_index, members] : rec->leaves) {
      const Leaf* leaf = s->table_.leaf_of(leaf_index << internal::kLeafBits);
      if (leaf == nullptr || members == 0) return bad();
      std::uint32_t found = 0;
      for (const HotEntry& h : leaf->hot) {
        const std::uint64_t m = h.meta.load(std::memory_order_relaxed);
        const IdState st = meta::state(m);
        if (meta::set_serial(m) == serial &&
            (st == IdState::active || st == IdState::free_pending)) {
          ++found;
        }
      }
      if (found != members) return bad();
      n += members;
    }
    if (rec->hot_count != nullptr) {
      auto hot = rec->leaves.find(rec->hot_leaf);
      if (hot == rec->leaves.end() || &hot->second != rec->hot_count) return bad();
    }
    if (n != rec->count || rec->count > rec->quota) return bad();
    if (rec->dying) {
      ++dying;
      if (rec->count == 0) return bad();
    }
    quota += rec->quota;
    counted += rec->count;
    if (rec->bindings.size() < rec->by_spid.size()) return bad();
    for (const auto& [spid, id] : rec->by_spid) {
      auto b = rec->bindings.find(id);
      if (b == rec->bindings.end() || b->second.spid != spid) return bad();
    }
    for (const auto& [id, b] : rec->bindings) {
      auto e = s->live_entry(SetId::from_raw(serial), id);
      // No refs >= binds check: put() may drop a reference that bind() took (the binding then
      // goes with the ID's release).
      if (!e || b.binds == 0) return bad();
    }
  }
  if (counted != live || quota != s->quota_reserved_ || quota > s->capacity_) return bad();
  if (sets != s->set_count_ || dying != s->stats_.dying_sets || s->by_token_.size() != sets) {
    return bad();
  }
  if (group_live[internal::kDefaultGroup] != s->default_live_) return bad();
  std::uint64_t orphans = 0;
  for (unsigned i = 1; i <= internal::kMaxGroupSlot; ++i) {
    const Group* g = s->slots_[i];
    if (g == nullptr) {
      if (group_live[i] != 0) return bad();
      continue;
    }
    if (g->live != group_live[i] || g->slot != i) return bad();
    if (g->removed) {
      orphans += g->live;
      if (g->live == 0) return bad();
    }
  }
  if (orphans != s->stats_.orphaned_ids) return bad();
  return {};
}

}  // namespace ioasid
