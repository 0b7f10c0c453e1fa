// SPDX-License-Identifier: Apache-2.0
// space.hpp: ioasid::Space, one IOASID (PASID) namespace with ownership sets, quotas, reference
// counts, guest-PASID mappings, notifiers and pluggable custom allocators.
//
// The same type serves the host (its default allocator owns the system-wide namespace, each VM is
// a set) and a guest (a transport driver registers as a custom allocator and forwards every
// allocation to the host), as Linux's drivers/iommu/ioasid.c did; DOMAIN.md §1-2 gives the Linux
// semantics followed here and docs/design.md where this implementation differs.
//
// Synopsis
//   auto space = Space::create({.width_bits = 20});          // ID 0 reserved by default
//   SetId vm = space.value()->create_set(/*owner_token=*/42, /*quota=*/1000).value();
//   Id pasid = space.value()->alloc(vm, 1, 0xFFFFF, ctx).value();  // lowest free in [1, 0xFFFFF]
//   void* p = space.value()->find(vm, pasid).value();         // lock-free
//   space.value()->free(vm, pasid);
//
// Concurrency: every call is thread-safe. Calls that change the space serialize on one writer lock;
// find() and find_by_spid()'s lookups take no lock, write no shared memory and never touch freed
// memory, whatever runs concurrently (alloc, free, allocator switches). Callbacks (allocator ops,
// notifiers, the log sink) run under the writer lock: from them only find() / find_by_spid() may
// be called; anything that changes the space returns Errc::would_deadlock.
//
// Memory grows with the IDs in use (a 512-ID leaf at a time), not with the width: an empty 32-bit
// space costs tens of KiB. Leaves emptied by frees are kept until trim().
//
// Not done here: no I/O, no logging of its own (the log sink), no exceptions out of any call.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <vector>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/types.hpp"

namespace ioasid {

struct SpaceConfig {
  // IDs are [0, 2^width_bits - 1]; 1 to 32. A 32-bit space reserves 0xFFFFFFFF (kInvalidId).
  unsigned width_bits = kPasidBits;
  // IDs never handed out, inclusive ranges. Default: PASID 0 (RID_PASID).
  std::vector<IdRange> reserved = {IdRange{0, 0}};
  // Total IDs the sets' quotas may reserve; 0 means every non-reserved ID.
  std::uint64_t capacity = 0;
  AllocPolicy policy = AllocPolicy::lowest_free;
  LogSinkFn log_sink = nullptr;
  void* log_opaque = nullptr;
  LogLevel log_level = LogLevel::info;  // messages below this level are not formatted
};

// Identifies a registered notifier for unregister_notifier().
using NotifierId = std::uint64_t;

class IOASID_API Space {
 public:
  // Creates a space. Returns: invalid_argument (width not in [1, 32], a reserved range with
  // first > last or outside the space, capacity above the non-reserved IDs), no_memory.
  static Result<std::unique_ptr<Space>> create(const SpaceConfig& config) noexcept;

  // Destroys the space. Every ID still live is dropped without calling its allocator's free()
  // and without notifications. Context: no other thread may be using the space.
  void operator delete(Space* space, std::destroying_delete_t) noexcept;

  Space(const Space&) = delete;
  Space& operator=(const Space&) = delete;
  ~Space() = default;  // public for std::unique_ptr; deletion goes through operator delete above

  // ---- sets ---------------------------------------------------------------------------------

  // Creates the set for owner_token (a VM id, a pid, ...) that may hold up to quota IDs. The quota
  // is reserved from the space's capacity at once. Notifiers registered for owner_token before
  // apply to it.
  // Returns: the set; invalid_argument (quota 0), exists (a set owns the token), busy (a dying set
  // still owns the token), exhausted (quota above the unreserved capacity), no_memory,
  // would_deadlock.
  Result<SetId> create_set(std::uint64_t owner_token, std::uint32_t quota) noexcept;

  // Destroys a set: every member is freed through free() (FREE notified, FREE_PENDING while other
  // references remain). Returns true when the set is gone now; false when members are still
  // FREE_PENDING: the set is then dying (no new alloc) and disappears with its last release.
  // Cost: proportional to the set's own IDs.
  // Returns: not_found (no such set), busy (already dying), would_deadlock.
  Result<bool> destroy_set(SetId set) noexcept;

  // Changes a set's quota. Returns: not_found, invalid_argument (quota 0 or below the set's count),
  // exhausted (the increase exceeds the unreserved capacity), busy (dying), would_deadlock.
  Result<void> set_quota(SetId set, std::uint32_t quota) noexcept;

  // Returns: not_found.
  Result<SetInfo> set_info(SetId set) const noexcept;
  Result<SetId> find_set(std::uint64_t owner_token) const noexcept;
  // Every set, alive or dying, in creation-slot order. Returns: no_memory (the vector).
  Result<std::vector<SetInfo>> list_sets() const noexcept;
  // Every live ID of a set, with its state, ascending. Returns: not_found, no_memory (the vector).
  Result<std::vector<IdInfo>> list_ids(SetId set) const noexcept;

  // ---- IDs ----------------------------------------------------------------------------------

  // Allocates an ID in [min, max] (inclusive) for set, with private data priv, one reference, and
  // notifies ALLOC. With no custom allocator: the lowest free ID (or the next after the last, per
  // the policy). With one: its answer, checked against [min, max], the space and live IDs.
  // Returns: the ID; invalid_argument (min > max, bad set handle), out_of_range (max outside the
  // space; or the custom allocator answered outside [min, max] or the space: handed back),
  // not_found (no such set), busy (set dying), quota_exceeded, exhausted (no free ID in range),
  // exists (the custom allocator answered a live ID: handed back), io_error or another error the
  // custom allocator returned, no_memory, would_deadlock.
  Result<Id> alloc(SetId set, Id min, Id max, void* priv) noexcept {
    Id id = kInvalidId;
    const Errc e = alloc_raw(set, min, max, priv, &id);
    if (e != Errc{}) return fail(e);
    return id;
  }
  // alloc() without Result, as find_raw(): Errc{} (0) and the ID in *out, or an error.
  Errc alloc_raw(SetId set, Id min, Id max, void* priv, Id* out) noexcept;

  // The owner frees an ID: it drops the allocation's reference and notifies FREE. When other
  // references remain the ID becomes FREE_PENDING (find, get and bind fail on it) and is released
  // by the last put(). Returns: out_of_range, not_found, not_owner, busy (already FREE_PENDING),
  // would_deadlock. A refused free changes nothing.
  Result<void> free(SetId set, Id id) noexcept;

  // Takes a reference on an ACTIVE ID. set may be SetId::any().
  // Returns: out_of_range, not_found, not_owner, busy (FREE_PENDING), overflow, would_deadlock.
  Result<void> get(SetId set, Id id) noexcept;

  // Drops a reference; at zero the ID is released (FREE notified first if it was not). As in
  // Linux, put() may drop the reference a bind() took; the binding then goes with the ID.
  // Returns true when released. Returns: out_of_range, not_found, not_owner, would_deadlock.
  Result<bool> put(SetId set, Id id) noexcept;

  // Lock-free lookup of an ACTIVE ID's private data. set may be SetId::any(). When validator is
  // given it runs on the private data inside the read-side critical section.
  // Returns: the private data (may be nullptr); out_of_range, not_found (no such ID, FREE_PENDING,
  // or the validator said no), not_owner (another set's ID; also for a handle that names no set:
  // find() never looks at the set table).
  // Context: any thread, any context; takes no lock and never waits for a writer (a thread's
  // first call claims a reader slot with a compare-and-swap). find() linearizes at its first read
  // of the entry: a concurrent free makes it return either the old data or not_found.
  Result<void*> find(SetId set, Id id, ValidatorFn validator = nullptr,
                     void* opaque = nullptr) const noexcept {
    void* priv = nullptr;
    const Errc e = find_raw(set, id, validator, opaque, &priv);
    if (e != Errc{}) return fail(e);
    return priv;
  }
  // find() without Result: returns Errc{} (0) and stores the private data in *out, or an error.
  // find() is this plus the Result; it is inline so that the Result never makes a round trip
  // through memory on the hot path (a partial-store forwarding stall costs more than the lookup).
  Errc find_raw(SetId set, Id id, ValidatorFn validator, void* opaque, void** out) const noexcept;

  // Replaces an ID's private data. Returns after every find() that could still see the old
  // pointer has finished (an RCU grace period), so the caller may free the old object.
  // Returns: out_of_range, not_found, would_deadlock.
  Result<void> set_data(Id id, void* priv) noexcept;

  // What the owner may learn about one ID. set may be SetId::any().
  // Returns: out_of_range, not_found, not_owner.
  Result<IdInfo> query(SetId set, Id id) const noexcept;

  // ---- binding and guest PASIDs (SPIDs) -----------------------------------------------------

  // Binds an ID of set to a device: takes a reference, and when spid != kInvalidId records spid as
  // the set-private (guest) ID for it, unique within the set. Notifies BIND.
  // Returns: out_of_range (id or spid outside the space), not_found, not_owner, busy
  // (FREE_PENDING), exists (spid maps another ID, or the ID maps another spid), overflow,
  // no_memory, would_deadlock.
  Result<void> bind(SetId set, Id id, Id spid = kInvalidId) noexcept;

  // Drops one bind; the last one detaches the spid. Notifies UNBIND. Releases the ID when that was
  // its last reference. Returns: out_of_range, not_found (also: the ID is not bound), not_owner,
  // would_deadlock.
  Result<void> unbind(SetId set, Id id) noexcept;

  // The ID bound to spid in set, O(1). Returns: not_found.
  Result<Id> find_by_spid(SetId set, Id spid) const noexcept;

  // ---- notifiers ----------------------------------------------------------------------------

  // Registers fn for the events in event_mask (event_bit()s): for every set (global) or for the
  // set of owner_token, which need not exist yet. Returns: the handle; invalid_argument (no fn,
  // empty mask), no_memory, would_deadlock.
  Result<NotifierId> register_global_notifier(NotifierFn fn, void* opaque,
                                              std::uint32_t event_mask = kEventMaskAll) noexcept;
  Result<NotifierId> register_set_notifier(std::uint64_t owner_token, NotifierFn fn, void* opaque,
                                           std::uint32_t event_mask = kEventMaskAll) noexcept;
  // Returns: not_found, would_deadlock.
  Result<void> unregister_notifier(NotifierId id) noexcept;

  // ---- custom allocators (DOMAIN.md §1.4) ---------------------------------------------------

  // Registers a custom allocator; *ops must stay valid until unregister_allocator(ops).
  // - the first one becomes active only if the default allocator holds no ID (try_again
  //   otherwise, nothing retained);
  // - ops already registered: exists;
  // - same alloc and free callbacks as a registered group: joins it (shares its IDs);
  // - otherwise: queued as standby; the active allocator does not change.
  // Returns: invalid_argument (null ops or callbacks), try_again, exists, no_memory,
  // would_deadlock.
  Result<void> register_allocator(const AllocatorOps* ops) noexcept;

  // Unregisters; never fails. A group member with siblings leaves (the group continues with a
  // surviving member's ops and pdata); the last member of a group takes the group away: its live
  // IDs stay valid but are orphaned (counted and logged; releasing them calls no allocator). When
  // the active group goes, the next registered group becomes active, else the default allocator.
  // Unknown ops: logged, nothing changes.
  void unregister_allocator(const AllocatorOps* ops) noexcept;

  // ---- maintenance --------------------------------------------------------------------------

  SpaceStats stats() const noexcept;
  // True when the calling thread is running one of this space's callbacks (it holds the writer
  // lock): mutating calls would return would_deadlock.
  bool in_callback() const noexcept;
  unsigned width_bits() const noexcept;
  Id max_id() const noexcept;  // 2^width - 1

  // Waits until every find() running at the time of the call has finished.
  // Context: must not be called from inside find()'s validator.
  void synchronize() const noexcept;

  // Gives back table leaves that hold no ID (after a grace period). Returns the bytes released.
  std::uint64_t trim() noexcept;

  // Checks every internal invariant (counts, lists, bitmaps, quotas, SPID maps). Returns
  // invalid_argument describing nothing more: a debugging and testing aid, O(live IDs + leaves).
  Result<void> check_invariants() const noexcept;

 protected:
  Space() = default;
};

}  // namespace ioasid
