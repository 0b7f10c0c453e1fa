// SPDX-License-Identifier: Apache-2.0
// space_sets.cc: the set operations of ioasid::Space: create (quota reserved from capacity,
// round-robin slots with generations), destroy (every member through the free path; dying until
// the last FREE_PENDING member goes), quota changes, and the read-only set queries.
#include <algorithm>
#include <new>

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
// Space: sets
// ============================================================================================

Result<SetId> Space::create_set(std::uint64_t owner_token, std::uint32_t quota) noexcept {
  SpaceImpl* s = impl(this);
  if (quota == 0) return fail(Errc::invalid_argument);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  if (auto it = s->by_token_.find(owner_token); it != s->by_token_.end()) {
    return fail(s->set_by_serial(it->second)->dying ? Errc::busy : Errc::exists);
  }
  if (quota > s->capacity_ - s->quota_reserved_) return fail(Errc::exhausted);
  // A free slot, searching round-robin from the cursor so that a slot is reused as late as
  // possible; grow the table when every slot is taken.
  std::uint32_t slot = 0;
  const std::uint32_t size = static_cast<std::uint32_t>(s->set_slots_.size());
  for (std::uint32_t i = 0; i < size; ++i) {
    const std::uint32_t candidate = (s->set_cursor_ + i) % size;
    if (candidate != 0 && s->set_slots_[candidate] == nullptr) {
      slot = candidate;
      break;
    }
  }
  const bool grow = slot == 0;
  if (grow) {
    slot = std::max<std::uint32_t>(size, 1);
    if (slot >= internal::kMaxSetSlots) return fail(Errc::exhausted);
  }
  void* mem = internal::mem_alloc(sizeof(SetRec), alignof(SetRec));
  if (mem == nullptr) return fail(Errc::no_memory);
  SetRec* rec = new (mem) SetRec();
  auto drop_rec = [&] {
    rec->~SetRec();
    internal::mem_free(mem);
  };
  try {
    if (grow) {
      // Slot 0 is never used; reserve it with the first set.
      const std::size_t want = static_cast<std::size_t>(slot) + 1;
      s->set_gens_.resize(want, 0);
      s->set_slots_.resize(want, nullptr);
    }
    s->by_token_.emplace(owner_token, 0);
  } catch (const std::bad_alloc&) {
    drop_rec();
    return fail(Errc::no_memory);
  }
  const std::uint16_t gen = (s->set_gens_[slot] + 1) & internal::kSetGenMask;
  s->set_gens_[slot] = gen;
  const std::uint32_t serial = (std::uint32_t{gen} << internal::kSetSlotBits) | slot;
  s->by_token_[owner_token] = serial;
  rec->serial = serial;
  rec->token = owner_token;
  rec->quota = quota;
  s->set_slots_[slot] = rec;
  s->set_cursor_ = slot + 1;
  ++s->set_count_;
  s->quota_reserved_ += quota;
  return SetId::from_raw(serial);
}

Result<bool> Space::destroy_set(SetId set) noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  SetRec* rec = s->set_of(set);
  if (rec == nullptr) return fail(Errc::not_found);
  if (rec->dying) return fail(Errc::busy);
  if (rec->count == 0) {
    s->erase_set(rec);
    return true;
  }
  rec->dying = true;
  ++s->stats_.dying_sets;
  // From here the reservation follows the members down (release() shrinks it).
  s->quota_reserved_ -= rec->quota - rec->count;
  rec->quota = rec->count;
  // free_live() may drop the current leaf's counter and, with the last member, the set itself:
  // for_each_member() allows both.
  s->for_each_member(*rec, [&](Id id, Leaf* leaf, std::uint32_t index, IdState state) {
    if (state == IdState::active) s->free_live(id, SpaceImpl::Live{leaf, index, rec, state});
  });
  return s->set_of(set) == nullptr;
}

Result<void> Space::set_quota(SetId set, std::uint32_t quota) noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  SetRec* rec = s->set_of(set);
  if (rec == nullptr) return fail(Errc::not_found);
  if (rec->dying) return fail(Errc::busy);
  if (quota == 0 || quota < rec->count) return fail(Errc::invalid_argument);
  if (quota > rec->quota) {
    const std::uint64_t increase = quota - rec->quota;
    if (increase > s->capacity_ - s->quota_reserved_) return fail(Errc::exhausted);
    s->quota_reserved_ += increase;
  } else {
    s->quota_reserved_ -= rec->quota - quota;
  }
  rec->quota = quota;
  return {};
}

namespace {
SetInfo info_of_set(const SetRec& rec) {
  SetInfo info;
  info.set = SetId::from_raw(rec.serial);
  info.owner_token = rec.token;
  info.quota = rec.quota;
  info.count = rec.count;
  info.bound = static_cast<std::uint32_t>(rec.bindings.size());
  info.peak = rec.peak;
  info.quota_refusals = rec.quota_refusals;
  info.state = rec.dying ? SetState::dying : SetState::alive;
  return info;
}
}  // namespace

Result<SetInfo> Space::set_info(SetId set) const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  const SetRec* rec = s->set_of(set);
  if (rec == nullptr) return fail(Errc::not_found);
  return info_of_set(*rec);
}

Result<SetId> Space::find_set(std::uint64_t owner_token) const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  auto it = s->by_token_.find(owner_token);
  if (it == s->by_token_.end()) return fail(Errc::not_found);
  return SetId::from_raw(it->second);
}

// The vectors are reserved to their final size before they are filled, so the reserve is the only
// allocation (and std::sort allocates nothing).
Result<std::vector<SetInfo>> Space::list_sets() const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  std::vector<SetInfo> out;
  try {
    out.reserve(s->set_count_);
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  s->for_each_set([&](const SetRec& rec) { out.push_back(info_of_set(rec)); });
  return out;
}

Result<std::vector<IdInfo>> Space::list_ids(SetId set) const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  SetRec* rec = s->set_of(set);
  if (rec == nullptr) return fail(Errc::not_found);
  std::vector<IdInfo> out;
  try {
    out.reserve(rec->count);
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  s->for_each_member(*rec, [&](Id id, Leaf* leaf, std::uint32_t index, IdState state) {
    out.push_back(s->info_of(id, SpaceImpl::Live{leaf, index, rec, state}));
  });
  std::sort(out.begin(), out.end(), [](const IdInfo& a, const IdInfo& b) { return a.id < b.id; });
  return out;
}

}  // namespace ioasid
