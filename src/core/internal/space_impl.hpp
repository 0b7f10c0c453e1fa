// SPDX-License-Identifier: Apache-2.0
// space_impl.hpp: the state behind ioasid::Space (sets, notifiers, allocator groups, the ID table)
// and the writer-side helpers space.cc builds every operation from.
//
// Invariants (checked by check_invariants()):
// - an ID is live (ACTIVE or FREE_PENDING) iff its bitmap bit is set and it is not reserved; it is
//   counted in exactly one set's leaf counters (the set its meta word names), and refs >= 1;
// - a set's count equals the sum of its leaf counters, each of which equals the members found in
//   that leaf; Σ counts = live IDs; Σ quotas = quota_reserved_ <=
//   capacity_; a dying set has count >= 1 (it goes away with its last ID);
// - each group's live count equals the IDs tagged with its slot; orphaned_ids_ equals the IDs of
//   removed (zombie) groups;
// - a set's by_spid_ and bindings_ are mirror images.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/internal/id_table.hpp"
#include "core/internal/memory.hpp"
#include "core/internal/space_lock.hpp"
#include "ioasid/space.hpp"

namespace ioasid::internal {

template <class T>
using FVector = std::vector<T, FallibleAllocator<T>>;
template <class K, class V>
using FMap = std::unordered_map<K, V, std::hash<K>, std::equal_to<K>,
                                FallibleAllocator<std::pair<const K, V>>>;

inline constexpr std::uint8_t kDefaultGroup = 0;
inline constexpr std::uint8_t kMaxGroupSlot = 254;
inline constexpr std::uint32_t kNoSerial = 0;
inline constexpr unsigned kSetSlotBits = 20;
inline constexpr std::uint32_t kMaxSetSlots = 1u << kSetSlotBits;  // sets <= capacity anyway
inline constexpr std::uint32_t kSetGenMask = (1u << (32 - kSetSlotBits)) - 1;

struct Notifier {
  NotifierId id;
  NotifierFn fn;
  void* opaque;
  std::uint32_t mask;
};

struct Binding {
  Id spid;              // kInvalidId when bound without a guest PASID
  std::uint32_t binds;  // bind() calls not yet undone
};

struct SetRec {
  std::uint32_t serial = kNoSerial;
  std::uint64_t token = 0;
  std::uint32_t quota = 0;
  std::uint32_t count = 0;
  std::uint32_t peak = 0;
  std::uint64_t quota_refusals = 0;
  bool dying = false;
  // Members per table leaf (leaf index = id >> kLeafBits), so that the set's IDs can be found by
  // scanning only its leaves: O(512 x leaves held) <= O(512 x count), never the range, at no cost
  // per ID in the entry. hot_leaf/hot_count cache the last leaf charged (map nodes never move).
  FMap<std::uint32_t, std::uint32_t> leaves;
  std::uint32_t hot_leaf = ~std::uint32_t{0};
  std::uint32_t* hot_count = nullptr;
  FMap<Id, Binding> bindings;
  FMap<Id, Id> by_spid;
};

struct Group {
  int (*alloc)(void*, Id, Id, Id*) = nullptr;
  void (*free)(void*, Id) = nullptr;
  FVector<const AllocatorOps*> members;  // members.front() is the one called
  std::uint64_t live = 0;
  std::uint8_t slot = 0;
  bool removed = false;  // unregistered with live IDs left: those are orphans
};

class SpaceImpl final : public Space {
 public:
  SpaceImpl() = default;
  ~SpaceImpl();

  Result<void> init(const SpaceConfig& config) noexcept;

  // ---- locking ----
  // The writer lock. A thread that already holds it (a callback calling back) gets
  // would_deadlock from mutating calls; read-only locked calls then run without relocking.
  class WriteLock {
   public:
    explicit WriteLock(const SpaceImpl& s) : s_(s) { s_.mu_.lock(); }
    ~WriteLock() { s_.mu_.unlock(); }
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;

   private:
    const SpaceImpl& s_;
  };
  // For read-only queries: takes the lock unless this thread already holds it (a callback).
  class QueryLock {
   public:
    explicit QueryLock(const SpaceImpl& s) : s_(s), locked_(!s.mu_.held_by_me()) {
      if (locked_) s_.mu_.lock();
    }
    ~QueryLock() {
      if (locked_) s_.mu_.unlock();
    }
    QueryLock(const QueryLock&) = delete;
    QueryLock& operator=(const QueryLock&) = delete;

   private:
    const SpaceImpl& s_;
    bool locked_;
  };
  bool held_by_me() const noexcept { return mu_.held_by_me(); }

  // ---- helpers used by the operations (writer lock held) ----
  SetRec* set_of(SetId set) const noexcept;
  SetRec* set_by_serial(std::uint32_t serial) const noexcept;
  Result<Id> check_id(Id id) const noexcept;
  // The live entry of id owned by set (any when set.is_any()).
  struct Live {
    Leaf* leaf;
    std::uint32_t index;
    SetRec* set;
    IdState state;
    HotEntry& hot() const { return leaf->hot[index]; }
    ColdEntry& cold() const { return leaf->cold[index]; }
  };
  Result<Live> live_entry(SetId set, Id id) const noexcept;
  // The default allocator's pick in [min, max], or kInvalidId. (Raw returns on this path: see
  // Space::find_raw.)
  Id alloc_default(Id min, Id max) const noexcept;
  // Asks the custom allocator and checks its answer; Errc{} and *out on success.
  Errc alloc_custom(Group& group, Id min, Id max, Id* out) noexcept;
  // The member counter of id's leaf in set, made (at 0) if absent; nullptr when out of memory.
  std::uint32_t* leaf_counter(SetRec& set, Id id) noexcept;
  // Drops a counter made by leaf_counter() that is still 0 (a failed allocation's rollback).
  void drop_leaf_counter(SetRec& set, Id id) noexcept;
  // Calls fn(id, leaf, index, state) for every live member of set, in ID order within a leaf. fn
  // may release the member (and with it the leaf's counter and, for the last one, the set): the
  // walk stops once it has seen as many members as the set had when it began.
  template <class Fn>
  void for_each_member(SetRec& set, Fn&& fn) const {
    std::uint32_t remaining = set.count;
    const std::uint32_t serial = set.serial;
    for (auto it = set.leaves.begin(); remaining > 0 && it != set.leaves.end();) {
      auto next = std::next(it);  // fn may erase *it
      const Id base = it->first << kLeafBits;
      Leaf* leaf = table_.leaf_of(base);
      for (std::uint32_t i = 0; i < kLeafSize && remaining > 0; ++i) {
        ++member_entries_scanned_;
        const std::uint64_t m = leaf->hot[i].meta.load(std::memory_order_relaxed);
        const IdState st = meta::state(m);
        if (meta::set_serial(m) != serial ||
            (st != IdState::active && st != IdState::free_pending)) {
          continue;
        }
        --remaining;
        fn(base | i, leaf, i, st);
      }
      it = next;
    }
  }
  void record(Id id, Leaf* leaf, SetRec& set, std::uint32_t* leaf_count, std::uint8_t group,
              void* priv) noexcept;
  // The owner's free: drop the allocation reference, notify FREE, release or go FREE_PENDING.
  void free_live(Id id, const Live& e) noexcept;
  // Drop one reference; at zero notify FREE if still ACTIVE and release. True when released.
  bool drop_ref(Id id, const Live& e) noexcept;
  void release(Id id, const Live& e) noexcept;
  void notify(EventType type, Id id, const SetRec& set, void* priv) noexcept {
    if (has_notifiers_) notify_subscribers(type, id, set, priv);
  }
  void notify_subscribers(EventType type, Id id, const SetRec& set, void* priv) noexcept;
  Id spid_of(const SetRec& set, Id id) const noexcept;
  void erase_set(SetRec* set) noexcept;
  // Every set, in slot order.
  template <class Fn>
  void for_each_set(Fn&& fn) const {
    for (SetRec* rec : set_slots_) {
      if (rec != nullptr) fn(*rec);
    }
  }
  void log(LogLevel level, const char* fmt, ...) const noexcept
      __attribute__((format(printf, 3, 4)));
  Group* active_group() const noexcept { return groups_.empty() ? nullptr : groups_.front(); }
  Group* find_group_of(const AllocatorOps* ops, std::size_t* pos) const noexcept;
  Result<NotifierId> add_notifier(bool global, std::uint64_t token, NotifierFn fn, void* opaque,
                                  std::uint32_t mask) noexcept;
  IdInfo info_of(Id id, const Live& e) const noexcept;

  // ---- state ----
  mutable SpaceLock mu_;

  IdTable table_;
  SpaceConfig config_;
  std::uint64_t capacity_ = 0;
  std::uint64_t quota_reserved_ = 0;
  std::uint64_t reserved_ids_ = 0;
  Id cursor_ = 0;  // cyclic policy: where the next search starts

  // Sets by slot. A set's serial is (generation << kSetSlotBits) | slot: the slot finds it in O(1),
  // the 12-bit generation (bumped at each reuse of the slot; slots are reused round-robin) keeps a
  // stale SetId from naming a later set. Slot 0 is never used, so serial 0 means "no set".
  FVector<SetRec*> set_slots_;
  FVector<std::uint16_t> set_gens_;
  std::uint32_t set_cursor_ = 1;  // where the search for a free slot starts
  std::uint64_t set_count_ = 0;
  FMap<std::uint64_t, std::uint32_t> by_token_;

  FVector<Notifier> global_notifiers_;
  FMap<std::uint64_t, FVector<Notifier>> owner_notifiers_;
  NotifierId next_notifier_ = 1;

  FVector<Group*> groups_;                // registered, registration order; front is active
  Group* slots_[kMaxGroupSlot + 1] = {};  // by slot; includes zombies (removed, live > 0)
  std::uint64_t default_live_ = 0;
  bool has_notifiers_ = false;  // any global or owner notifier registered

  SpaceStats stats_;  // counters kept incrementally (live_ids, allocs, ...)
  // Table entries for_each_member() has looked at (set teardown, list_ids), under mu_: lets tests
  // check that teardown costs O(the set's own leaves), never O(the range).
  mutable std::uint64_t member_entries_scanned_ = 0;
};

inline SpaceImpl* impl(Space* s) { return static_cast<SpaceImpl*>(s); }
inline const SpaceImpl* impl(const Space* s) { return static_cast<const SpaceImpl*>(s); }

}  // namespace ioasid::internal
