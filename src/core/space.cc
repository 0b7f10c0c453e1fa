// SPDX-License-Identifier: Apache-2.0
// space.cc: ioasid::Space, the IOASID space: creation, the writer-side helpers every operation is
// built from, and the ID operations (alloc, free, references, lock-free find, private data,
// binding and SPIDs). Sets: space_sets.cc; notifiers and custom allocators: space_callbacks.cc;
// the invariant check: space_invariants.cc.
#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <new>

#include "core/internal/rcu.hpp"
#include "core/internal/space_impl.hpp"

namespace ioasid {

using internal::Binding;
using internal::ColdEntry;
using internal::FaultInjector;
using internal::Group;
using internal::HotEntry;
using internal::impl;
using internal::Leaf;
using internal::SetRec;
using internal::SpaceImpl;
namespace meta = internal::meta;

namespace {

constexpr std::uint32_t serial_of(SetId set) { return static_cast<std::uint32_t>(set.raw()); }
SetId set_id_of(std::uint32_t serial) { return SetId::from_raw(serial); }

}  // namespace

// ============================================================================================
// SpaceImpl helpers
// ============================================================================================

namespace internal {

SpaceImpl::~SpaceImpl() {
  for (SetRec* rec : set_slots_) {
    if (rec != nullptr) {
      rec->~SetRec();
      mem_free(rec);
    }
  }
  for (Group* g : slots_) {
    if (g != nullptr) {
      g->~Group();
      mem_free(g);
    }
  }
}

Result<void> SpaceImpl::init(const SpaceConfig& config) noexcept {
  if (config.width_bits < 1 || config.width_bits > 32) return fail(Errc::invalid_argument);
  config_.width_bits = config.width_bits;
  config_.capacity = config.capacity;
  config_.policy = config.policy;
  config_.log_sink = config.log_sink;
  config_.log_opaque = config.log_opaque;
  config_.log_level = config.log_level;
  if (auto r = table_.init(config.width_bits); !r) return r;
  const Id max_id = table_.max_id();
  try {
    config_.reserved.assign(config.reserved.begin(), config.reserved.end());
    if (config.width_bits == 32) config_.reserved.push_back(IdRange{kInvalidId, kInvalidId});
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  for (const IdRange& r : config_.reserved) {
    if (r.first > r.last || r.last > max_id) return fail(Errc::invalid_argument);
    for (std::uint64_t id = r.first; id <= r.last; ++id) {
      Leaf* leaf = table_.ensure_leaf(static_cast<Id>(id));
      if (leaf == nullptr) return fail(Errc::no_memory);
      if (table_.is_used(static_cast<Id>(id))) continue;  // overlapping ranges
      table_.mark_used(static_cast<Id>(id));
      HotEntry& h = leaf->hot[id & (kLeafSize - 1)];
      h.meta.store(meta::next(0, IdState::reserved, kNoSerial), std::memory_order_relaxed);
      ++reserved_ids_;
    }
  }
  const std::uint64_t allocatable = std::uint64_t{max_id} + 1 - reserved_ids_;
  capacity_ = config.capacity == 0 ? allocatable : config.capacity;
  if (capacity_ > allocatable) return fail(Errc::invalid_argument);
  stats_.reserved_ids = reserved_ids_;
  stats_.capacity = capacity_;
  cursor_ = 0;
  return {};
}

void SpaceImpl::log(LogLevel level, const char* fmt, ...) const noexcept {
  if (config_.log_sink == nullptr || level < config_.log_level) return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  config_.log_sink(config_.log_opaque, level, buf);
}

SetRec* SpaceImpl::set_by_serial(std::uint32_t serial) const noexcept {
  const std::uint32_t slot = serial & (kMaxSetSlots - 1);
  if (slot >= set_slots_.size()) return nullptr;
  SetRec* rec = set_slots_[slot];
  return rec != nullptr && rec->serial == serial ? rec : nullptr;
}

SetRec* SpaceImpl::set_of(SetId set) const noexcept {
  if (!set.valid() || set.is_any() || set.raw() > 0xFFFFFFFFu) return nullptr;
  return set_by_serial(serial_of(set));
}

Result<Id> SpaceImpl::check_id(Id id) const noexcept {
  if (id > table_.max_id()) return fail(Errc::out_of_range);
  return id;
}

Result<SpaceImpl::Live> SpaceImpl::live_entry(SetId set, Id id) const noexcept {
  if (id > table_.max_id()) return fail(Errc::out_of_range);
  Leaf* leaf = table_.leaf_of(id);
  if (leaf == nullptr) return fail(Errc::not_found);
  const std::uint32_t index = id & (kLeafSize - 1);
  const std::uint64_t m = leaf->hot[index].meta.load(std::memory_order_relaxed);
  const IdState state = meta::state(m);
  if (state != IdState::active && state != IdState::free_pending) return fail(Errc::not_found);
  // The whole handle: a raw value above 32 bits must not alias the set named by its low bits.
  if (!set.is_any() && set.raw() != meta::set_serial(m)) {
    // A handle that names no set at all is a bad argument, not a question about ownership.
    if (set_of(set) == nullptr) return fail(Errc::not_found);
    return fail(Errc::not_owner);
  }
  return Live{leaf, index, set_by_serial(meta::set_serial(m)), state};
}

Id SpaceImpl::spid_of(const SetRec& set, Id id) const noexcept {
  if (set.bindings.empty()) return kInvalidId;
  auto it = set.bindings.find(id);
  return it == set.bindings.end() ? kInvalidId : it->second.spid;
}

void SpaceImpl::notify_subscribers(EventType type, Id id, const SetRec& set, void* priv) noexcept {
  const std::uint32_t bit = event_bit(type);
  auto owner = owner_notifiers_.empty() ? owner_notifiers_.end() : owner_notifiers_.find(set.token);
  if (global_notifiers_.empty() && owner == owner_notifiers_.end()) return;
  const Event ev{type, id, spid_of(set, id), set_id_of(set.serial), set.token, priv};
  for (const Notifier& n : global_notifiers_) {
    if (n.mask & bit) n.fn(n.opaque, ev);
  }
  if (owner != owner_notifiers_.end()) {
    for (const Notifier& n : owner->second) {
      if (n.mask & bit) n.fn(n.opaque, ev);
    }
  }
}

Id SpaceImpl::alloc_default(Id min, Id max) const noexcept {
  Id id = kInvalidId;
  if (config_.policy == AllocPolicy::cyclic && cursor_ > min && cursor_ <= max) {
    id = table_.find_free(cursor_, max);
    if (id == kInvalidId) id = table_.find_free(min, cursor_ - 1);
  } else {
    id = table_.find_free(min, max);
  }
  return id;
}

Errc SpaceImpl::alloc_custom(Group& group, Id min, Id max, Id* out) noexcept {
  const AllocatorOps* ops = group.members.front();
  Id id = kInvalidId;
  const int rc = group.alloc(ops->pdata, min, max, &id);
  if (rc != 0) {
    log(LogLevel::debug, "custom allocator failed: %d", rc);
    return rc < 0 ? from_errno(-rc) : Errc::io_error;
  }
  // The check Linux never made ("How does this honor min/max?"): anything outside the request,
  // the space, a reserved ID or a live one goes back to the allocator.
  Errc bad{};
  if (id < min || id > max || id > table_.max_id()) {
    bad = Errc::out_of_range;
  } else if (table_.is_used(id)) {
    bad = Errc::exists;
  }
  if (bad != Errc{}) {
    ++stats_.allocator_rejects;
    log(LogLevel::warning, "custom allocator answered %u for [%u, %u]: %s, handed back", id, min,
        max, bad == Errc::exists ? "already live or reserved" : "out of range");
    if (id != kInvalidId) group.free(ops->pdata, id);
    return bad;
  }
  *out = id;
  return Errc{};
}

std::uint32_t* SpaceImpl::leaf_counter(SetRec& set, Id id) noexcept {
  const std::uint32_t leaf_index = id >> kLeafBits;
  if (leaf_index == set.hot_leaf) return set.hot_count;
  try {
    std::uint32_t* count = &set.leaves.try_emplace(leaf_index, 0).first->second;
    set.hot_leaf = leaf_index;
    set.hot_count = count;
    return count;
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void SpaceImpl::drop_leaf_counter(SetRec& set, Id id) noexcept {
  const std::uint32_t leaf_index = id >> kLeafBits;
  auto it = set.leaves.find(leaf_index);
  if (it == set.leaves.end() || it->second != 0) return;
  if (set.hot_leaf == leaf_index) {
    set.hot_leaf = ~std::uint32_t{0};
    set.hot_count = nullptr;
  }
  set.leaves.erase(it);
}

void SpaceImpl::record(Id id, Leaf* leaf, SetRec& set, std::uint32_t* leaf_count,
                       std::uint8_t group, void* priv) noexcept {
  const std::uint32_t index = id & (kLeafSize - 1);
  table_.mark_used(id);
  ++*leaf_count;
  ColdEntry& c = leaf->cold[index];
  c.refs = 1;
  c.group = group;
  HotEntry& h = leaf->hot[index];
  h.priv.store(priv, std::memory_order_release);
  h.meta.store(meta::next(h.meta.load(std::memory_order_relaxed), IdState::active, set.serial),
               std::memory_order_release);
  ++set.count;
  if (set.count > set.peak) set.peak = set.count;
  ++stats_.live_ids;
  ++stats_.allocs;
  if (group == kDefaultGroup) {
    ++default_live_;
  } else {
    ++slots_[group]->live;
  }
}

void SpaceImpl::free_live(Id id, const Live& e) noexcept {
  HotEntry& h = e.hot();
  // FREE_PENDING first so that a notifier sees the final state and find() refuses the ID.
  h.meta.store(
      meta::next(h.meta.load(std::memory_order_relaxed), IdState::free_pending, e.set->serial),
      std::memory_order_release);
  ++stats_.free_pending_ids;
  notify(EventType::free, id, *e.set, h.priv.load(std::memory_order_relaxed));
  ColdEntry& c = e.cold();
  if (--c.refs == 0) release(id, Live{e.leaf, e.index, e.set, IdState::free_pending});
}

bool SpaceImpl::drop_ref(Id id, const Live& e) noexcept {
  ColdEntry& c = e.cold();
  if (c.refs > 1) {
    --c.refs;
    return false;
  }
  if (e.state == IdState::active) {
    free_live(id, e);  // notifies FREE, then releases: refs reaches 0 there
    return true;
  }
  c.refs = 0;
  release(id, e);
  return true;
}

void SpaceImpl::release(Id id, const Live& e) noexcept {
  SetRec& set = *e.set;
  ColdEntry& c = e.cold();
  HotEntry& h = e.hot();
  // Leave the set's leaf count.
  std::uint32_t* leaf_count = leaf_counter(set, id);  // present: no allocation
  if (--*leaf_count == 0) drop_leaf_counter(set, id);
  // Any binding left (reachable only if a put dropped a bind's reference) goes too.
  if (!set.bindings.empty()) {
    auto it = set.bindings.find(id);
    if (it != set.bindings.end()) {
      if (it->second.spid != kInvalidId) set.by_spid.erase(it->second.spid);
      set.bindings.erase(it);
    }
  }
  if (e.state == IdState::free_pending) --stats_.free_pending_ids;
  // Retire the entry for readers before the ID can be handed out again.
  h.meta.store(meta::next(h.meta.load(std::memory_order_relaxed), IdState::free, kNoSerial),
               std::memory_order_release);
  h.priv.store(nullptr, std::memory_order_release);
  // Give the ID back to whoever made it.
  if (c.group == kDefaultGroup) {
    --default_live_;
  } else {
    Group* g = slots_[c.group];
    --g->live;
    if (g->removed) {
      --stats_.orphaned_ids;
      if (g->live == 0) {
        slots_[g->slot] = nullptr;
        g->~Group();
        mem_free(g);
      }
    } else {
      g->free(g->members.front()->pdata, id);
    }
  }
  c.refs = 0;
  c.group = 0;
  table_.mark_free(id);
  --set.count;
  --stats_.live_ids;
  ++stats_.releases;
  if (set.dying) {
    // A dying set's reservation shrinks with its members.
    --set.quota;
    --quota_reserved_;
    if (set.count == 0) erase_set(&set);
  }
}

void SpaceImpl::erase_set(SetRec* set) noexcept {
  quota_reserved_ -= set->quota;
  if (set->dying) --stats_.dying_sets;
  by_token_.erase(set->token);
  set_slots_[set->serial & (kMaxSetSlots - 1)] = nullptr;
  --set_count_;
  set->~SetRec();
  mem_free(set);
}

Group* SpaceImpl::find_group_of(const AllocatorOps* ops, std::size_t* pos) const noexcept {
  for (Group* g : groups_) {
    for (std::size_t i = 0; i < g->members.size(); ++i) {
      if (g->members[i] == ops) {
        if (pos != nullptr) *pos = i;
        return g;
      }
    }
  }
  return nullptr;
}

Result<NotifierId> SpaceImpl::add_notifier(bool global, std::uint64_t token, NotifierFn fn,
                                           void* opaque, std::uint32_t mask) noexcept {
  if (fn == nullptr || (mask & kEventMaskAll) == 0) return fail(Errc::invalid_argument);
  if (held_by_me()) return fail(Errc::would_deadlock);
  WriteLock lock(*this);
  const Notifier n{next_notifier_, fn, opaque, mask & kEventMaskAll};
  try {
    if (global) {
      global_notifiers_.push_back(n);
    } else {
      auto [it, inserted] = owner_notifiers_.try_emplace(token);
      try {
        it->second.push_back(n);
      } catch (...) {
        if (inserted) owner_notifiers_.erase(it);
        throw;
      }
    }
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  has_notifiers_ = true;
  return next_notifier_++;
}

IdInfo SpaceImpl::info_of(Id id, const Live& e) const noexcept {
  IdInfo info;
  info.id = id;
  info.state = e.state;
  info.refs = e.cold().refs;
  if (!e.set->bindings.empty()) {
    auto it = e.set->bindings.find(id);
    if (it != e.set->bindings.end()) {
      info.binds = it->second.binds;
      info.spid = it->second.spid;
    }
  }
  return info;
}

}  // namespace internal

// ============================================================================================
// Space: lifecycle
// ============================================================================================

Result<std::unique_ptr<Space>> Space::create(const SpaceConfig& config) noexcept {
  void* mem = internal::mem_alloc(sizeof(SpaceImpl), alignof(SpaceImpl));
  if (mem == nullptr) return fail(Errc::no_memory);
  SpaceImpl* s;
  try {
    s = new (mem) SpaceImpl();  // the default SpaceConfig member allocates its reserved list
  } catch (const std::bad_alloc&) {
    internal::mem_free(mem);
    return fail(Errc::no_memory);
  }
  if (auto r = s->init(config); !r) {
    s->~SpaceImpl();
    internal::mem_free(mem);
    return fail(r.error());
  }
  return std::unique_ptr<Space>(s);
}

void Space::operator delete(Space* space, std::destroying_delete_t) noexcept {
  SpaceImpl* s = impl(space);
  s->~SpaceImpl();
  internal::mem_free(s);
}

bool Space::in_callback() const noexcept { return impl(this)->held_by_me(); }
unsigned Space::width_bits() const noexcept { return impl(this)->config_.width_bits; }
Id Space::max_id() const noexcept { return impl(this)->table_.max_id(); }
void Space::synchronize() const noexcept { internal::rcu::synchronize(); }

SpaceStats Space::stats() const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  SpaceStats st = s->stats_;
  st.capacity = s->capacity_;
  st.quota_reserved = s->quota_reserved_;
  st.sets = s->set_count_;
  st.allocator_groups = s->groups_.size();
  st.custom_allocator_active = !s->groups_.empty();
  st.table_bytes = s->table_.bytes();
  return st;
}

std::uint64_t Space::trim() noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) return 0;
  std::uint64_t released;
  {
    SpaceImpl::WriteLock lock(*s);
    released = s->table_.retire_empty();
  }
  // Leaves unpublished above may still be read by find(): wait, then free them. A concurrent
  // trim() may free some of ours or we theirs: either way only after its own grace period.
  internal::rcu::synchronize();
  SpaceImpl::WriteLock lock(*s);
  s->table_.free_retired();
  return released;
}

// ============================================================================================
// Space: IDs
// ============================================================================================

Errc Space::alloc_raw(SetId set, Id min, Id max, void* priv, Id* out) noexcept {
  SpaceImpl* s = impl(this);
  if (min > max) return Errc::invalid_argument;
  if (s->held_by_me()) return Errc::would_deadlock;
  SpaceImpl::WriteLock lock(*s);
  SetRec* rec = s->set_of(set);
  if (rec == nullptr) {
    return set.valid() && !set.is_any() ? Errc::not_found : Errc::invalid_argument;
  }
  if (max > s->table_.max_id()) return Errc::out_of_range;
  if (rec->dying) return Errc::busy;
  if (rec->count >= rec->quota) {
    ++rec->quota_refusals;
    ++s->stats_.quota_refusals;
    return Errc::quota_exceeded;
  }
  Group* group = s->active_group();
  Id id = kInvalidId;
  if (group == nullptr) {
    id = s->alloc_default(min, max);
    if (id == kInvalidId) {
      ++s->stats_.exhausted_refusals;
      return Errc::exhausted;
    }
  } else if (const Errc e = s->alloc_custom(*group, min, max, &id); e != Errc{}) {
    if (e == Errc::exhausted) ++s->stats_.exhausted_refusals;
    return e;
  }
  // The two steps that may need memory come first; a failure undoes them and hands the ID back.
  std::uint32_t* leaf_count = s->leaf_counter(*rec, id);
  Leaf* leaf = leaf_count == nullptr ? nullptr : s->table_.ensure_leaf(id);
  if (leaf == nullptr) {
    if (leaf_count != nullptr) s->drop_leaf_counter(*rec, id);
    if (group != nullptr) group->free(group->members.front()->pdata, id);
    return Errc::no_memory;
  }
  s->record(id, leaf, *rec, leaf_count, group == nullptr ? internal::kDefaultGroup : group->slot,
            priv);
  if (s->config_.policy == AllocPolicy::cyclic) s->cursor_ = id + 1;  // wraps to 0 at the top
  s->notify(EventType::alloc, id, *rec, priv);
  *out = id;
  return Errc{};
}

Result<void> Space::free(SetId set, Id id) noexcept {
  SpaceImpl* s = impl(this);
  if (set.is_any()) return fail(Errc::invalid_argument);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  auto e = s->live_entry(set, id);
  if (!e) return fail(e.error());
  if (e->state == IdState::free_pending) return fail(Errc::busy);
  s->free_live(id, *e);
  return {};
}

Result<void> Space::get(SetId set, Id id) noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  auto e = s->live_entry(set, id);
  if (!e) return fail(e.error());
  if (e->state == IdState::free_pending) return fail(Errc::busy);
  ColdEntry& c = e->cold();
  if (c.refs == internal::kMaxRefs) return fail(Errc::overflow);
  ++c.refs;
  return {};
}

Result<bool> Space::put(SetId set, Id id) noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  auto e = s->live_entry(set, id);
  if (!e) return fail(e.error());
  return s->drop_ref(id, *e);
}

Errc Space::find_raw(SetId set, Id id, ValidatorFn validator, void* opaque,
                     void** out) const noexcept {
  const SpaceImpl* s = impl(this);
  if (id > s->table_.max_id()) return Errc::out_of_range;
  internal::rcu::ReadGuard guard;
  const HotEntry* h = s->table_.lookup(id);
  if (h == nullptr) return Errc::not_found;
  const std::uint64_t m1 = h->meta.load(std::memory_order_acquire);
  if (meta::state(m1) != IdState::active) return Errc::not_found;
  void* priv = h->priv.load(std::memory_order_acquire);
  std::atomic_thread_fence(std::memory_order_acquire);
  // A different word: the ID was freed (and maybe reallocated) since m1; answer as if the find
  // came after the free.
  if (h->meta.load(std::memory_order_relaxed) != m1) return Errc::not_found;
  if (!set.is_any() && set.raw() != meta::set_serial(m1)) return Errc::not_owner;
  if (validator != nullptr && !validator(opaque, priv)) return Errc::not_found;
  *out = priv;
  return Errc{};
}

Result<void> Space::set_data(Id id, void* priv) noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  {
    SpaceImpl::WriteLock lock(*s);
    auto e = s->live_entry(SetId::any(), id);
    if (!e) return fail(e.error());
    // The meta word does not change: a reader sees the old or the new pointer of the same
    // allocation, both valid until the grace period below ends.
    e->hot().priv.store(priv, std::memory_order_release);
  }
  internal::rcu::synchronize();
  return {};
}

Result<IdInfo> Space::query(SetId set, Id id) const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  auto e = s->live_entry(set, id);
  if (!e) return fail(e.error());
  return s->info_of(id, *e);
}

// ============================================================================================
// Space: binding
// ============================================================================================

Result<void> Space::bind(SetId set, Id id, Id spid) noexcept {
  SpaceImpl* s = impl(this);
  if (set.is_any()) return fail(Errc::invalid_argument);
  if (spid != kInvalidId && spid > s->table_.max_id()) return fail(Errc::out_of_range);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  auto e = s->live_entry(set, id);
  if (!e) return fail(e.error());
  if (e->state == IdState::free_pending) return fail(Errc::busy);
  ColdEntry& c = e->cold();
  if (c.refs == internal::kMaxRefs) return fail(Errc::overflow);
  SetRec& rec = *e->set;
  auto existing = rec.bindings.find(id);
  if (spid != kInvalidId) {
    auto owner = rec.by_spid.find(spid);
    if (owner != rec.by_spid.end() && owner->second != id) return fail(Errc::exists);
    if (existing != rec.bindings.end() && existing->second.spid != kInvalidId &&
        existing->second.spid != spid) {
      return fail(Errc::exists);
    }
  }
  try {
    if (existing == rec.bindings.end()) {
      existing = rec.bindings.emplace(id, Binding{kInvalidId, 0}).first;
    }
    if (spid != kInvalidId && existing->second.spid == kInvalidId) {
      try {
        rec.by_spid.emplace(spid, id);
      } catch (...) {
        if (existing->second.binds == 0) rec.bindings.erase(existing);
        throw;
      }
      existing->second.spid = spid;
    }
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  ++existing->second.binds;
  ++c.refs;
  s->notify(EventType::bind, id, rec, e->hot().priv.load(std::memory_order_relaxed));
  return {};
}

Result<void> Space::unbind(SetId set, Id id) noexcept {
  SpaceImpl* s = impl(this);
  if (set.is_any()) return fail(Errc::invalid_argument);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  auto e = s->live_entry(set, id);
  if (!e) return fail(e.error());
  SetRec& rec = *e->set;
  auto it = rec.bindings.find(id);
  if (it == rec.bindings.end()) return fail(Errc::not_found);
  // Notify while the spid is still attached, so subscribers see which guest PASID goes.
  s->notify(EventType::unbind, id, rec, e->hot().priv.load(std::memory_order_relaxed));
  if (--it->second.binds == 0) {
    if (it->second.spid != kInvalidId) rec.by_spid.erase(it->second.spid);
    rec.bindings.erase(it);
  }
  s->drop_ref(id, *e);
  return {};
}

Result<Id> Space::find_by_spid(SetId set, Id spid) const noexcept {
  const SpaceImpl* s = impl(this);
  SpaceImpl::QueryLock lock(*s);
  const SetRec* rec = s->set_of(set);
  if (rec == nullptr) return fail(Errc::not_found);
  auto it = rec->by_spid.find(spid);
  if (it == rec->by_spid.end()) return fail(Errc::not_found);
  return it->second;
}

}  // namespace ioasid
