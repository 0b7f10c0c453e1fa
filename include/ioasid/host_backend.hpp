// SPDX-License-Identifier: Apache-2.0
// host_backend.hpp: the interface through which a vIOMMU device model reaches the host's PASID
// space on behalf of one VM.
//
// Device models (VT-d virtual commands, virtio-iommu) never allocate by themselves: every PASID
// operation a guest asks for goes through the HostBackend bound to that guest's set. Two
// implementations exist: LocalBackend (the host space lives in this process) and the ioasidd
// client (the space lives in the daemon, shared by every VMM on the host). Several device models
// of one VM share one backend, so they all see one system-wide namespace.
//
// Errors follow the guest-visible rule: an ID owned by another set is reported as not_found,
// exactly like an ID that does not exist. Ranges are inclusive, [min, max]. Besides the errors
// each call lists, a remote implementation may return timed_out (its per-call timeout expired; the
// request may or may not have run) and io_error (the host could not be reached); the ioasidd
// client returns not_found for every call once its session is gone (client.hpp). LocalBackend
// returns not_found for every call once its set is destroyed, and would_deadlock when called from
// one of its space's callbacks (allocator ops, notifiers, the log sink).
//
// Thread-safety: every implementation is safe to call from several threads at once.
#pragma once

#include "ioasid/errc.hpp"
#include "ioasid/types.hpp"

namespace ioasid {

class HostBackend {
 public:
  virtual ~HostBackend() = default;

  // Allocates an ID in [min, max] for this VM's set.
  // Returns: the ID; invalid_argument (min > max), out_of_range (max outside the space),
  // exhausted, quota_exceeded, busy (the set is being destroyed), no_memory, io_error.
  Result<Id> alloc(Id min, Id max) noexcept {
    Id id = kInvalidId;
    const Errc e = alloc_raw(min, max, &id);
    if (e != Errc{}) return fail(e);
    return id;
  }

  // Frees an ID of this set: released at once, or FREE_PENDING until the last reference goes.
  // Returns: out_of_range (id outside the space), not_found (no such ID in this set), busy
  // (already FREE_PENDING), io_error.
  Result<void> free(Id id) noexcept {
    const Errc e = free_raw(id);
    if (e != Errc{}) return fail(e);
    return {};
  }

  // What implementations provide for alloc() and free(), the two calls on every guest command:
  // Errc{} (0) and *out on success, else the error. alloc() and free() are inline wrappers so that
  // no Result crosses the virtual call (a Result returned through memory costs a store-forwarding
  // stall, more than the work of a command; see Space::find_raw).
  virtual Errc alloc_raw(Id min, Id max, Id* out) noexcept = 0;
  virtual Errc free_raw(Id id) noexcept = 0;

  // Takes / drops a reference. put returns true when it released the ID.
  // Returns: out_of_range (id outside the space), not_found, busy (get on FREE_PENDING), overflow
  // (get: the reference count is full), io_error.
  virtual Result<void> get(Id id) noexcept = 0;
  virtual Result<bool> put(Id id) noexcept = 0;

  // Binds the ID to a device: takes a reference and, when spid != kInvalidId, records spid as the
  // guest PASID for it (unique within the set). unbind drops one bind; the spid goes with the last.
  // Returns: out_of_range (id or spid outside the space), not_found, busy (FREE_PENDING), exists
  // (spid used by another ID, or the ID already has a different spid), overflow (the reference
  // count is full), no_memory, io_error. unbind: out_of_range, not_found (also: not bound),
  // io_error.
  virtual Result<void> bind(Id id, Id spid) noexcept = 0;
  virtual Result<void> unbind(Id id) noexcept = 0;

  // What the set knows about one of its IDs. Returns: out_of_range, not_found, io_error.
  virtual Result<IdInfo> query(Id id) noexcept = 0;

  // The host ID bound to guest PASID spid. Returns: not_found, io_error.
  virtual Result<Id> find_by_spid(Id spid) noexcept = 0;

  // The set's quota, count and state. Returns: not_found (set gone), io_error.
  virtual Result<SetInfo> set_info() noexcept = 0;
};

}  // namespace ioasid
