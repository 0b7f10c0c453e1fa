// SPDX-License-Identifier: Apache-2.0
// types.hpp: the small value types shared by every ioasid interface: IDs, ranges, set handles,
// events, callbacks, custom allocator ops, statistics.
//
// Ranges in ioasid are always inclusive on both ends and written [first, last], exactly as the
// Linux ioasid_alloc(min, max) contract: IdRange{1, 0xFFFFF} holds 0xFFFFF IDs.
#pragma once

#include <cstdint>

#include "ioasid/errc.hpp"

namespace ioasid {

// An IOASID / PASID. A space of width W holds IDs [0, 2^W - 1].
using Id = std::uint32_t;

// Never a valid ID (Linux's INVALID_IOASID). A 32-bit space reserves it automatically.
inline constexpr Id kInvalidId = 0xFFFFFFFFu;

// The PCIe PASID width and the default space width.
inline constexpr unsigned kPasidBits = 20;

// An inclusive range of IDs, [first, last].
struct IdRange {
  Id first = 0;
  Id last = 0;
  friend bool operator==(const IdRange&, const IdRange&) = default;
};

// Handle to an ownership set (one per VM or host process). Cheap to copy; compares equal only to
// the same set (a destroyed set's handle never matches a later set that reuses its slot).
class SetId {
 public:
  constexpr SetId() = default;
  // The wildcard accepted by find(), get() and put(): act on the ID whatever its set.
  static constexpr SetId any() { return SetId(kAnyRaw); }
  static constexpr SetId from_raw(std::uint64_t raw) { return SetId(raw); }
  constexpr std::uint64_t raw() const { return raw_; }
  constexpr bool is_any() const { return raw_ == kAnyRaw; }
  constexpr bool valid() const { return raw_ != 0; }
  friend constexpr bool operator==(SetId, SetId) = default;

 private:
  static constexpr std::uint64_t kAnyRaw = ~std::uint64_t{0};
  constexpr explicit SetId(std::uint64_t raw) : raw_(raw) {}
  std::uint64_t raw_ = 0;
};

// How the default allocator picks among free IDs in [min, max].
enum class AllocPolicy : std::uint8_t {
  // The lowest free ID (Linux xa_alloc / IDA). Dense, cache-friendly, predictable; a freed ID is
  // handed out again at once, so a stale user of the old PASID may hit the new owner's context.
  lowest_free = 0,
  // The next free ID after the last one handed out, wrapping to min (like PID allocation). A freed
  // PASID is reused only after the rest of the range has been cycled, which shrinks the window in
  // which stale DMA or a late page request hits a new owner; IDs spread over the whole range, so
  // the table touches more memory.
  cyclic = 1,
};

// Lifecycle of one ID.
enum class IdState : std::uint8_t {
  free = 0,          // not allocated
  active = 1,        // allocated, references may be taken
  free_pending = 2,  // freed by its owner while other references remain; no new get/bind
  reserved = 3,      // never allocated (e.g. PASID 0, the PCIe RID_PASID)
};

enum class EventType : std::uint8_t {
  alloc = 1,   // an ID was allocated
  free = 2,    // the owner freed an ID (it may stay FREE_PENDING until the last put)
  bind = 3,    // bind() took a reference, with or without a guest PASID (spid)
  unbind = 4,  // unbind() dropped it
};

// Event mask bits for notifier registration.
inline constexpr std::uint32_t kEventMaskAll = 0xF;
constexpr std::uint32_t event_bit(EventType t) { return 1u << (static_cast<unsigned>(t) - 1); }

// What a notifier receives. spid is kInvalidId when the ID has no guest PASID attached.
struct Event {
  EventType type;
  Id id;
  Id spid;
  SetId set;
  std::uint64_t owner_token;
  void* priv;
};

// Called for each event, under the space's writer lock. It may call find() and find_by_spid(),
// nothing that changes the space (those calls return Errc::would_deadlock).
using NotifierFn = void (*)(void* opaque, const Event& event);

// Optional check run by find() on the private data while the entry is guaranteed alive (inside the
// read-side critical section). Return false to make find() fail with Errc::not_found. It must not
// block or call into the space except find().
using ValidatorFn = bool (*)(void* opaque, void* priv);

enum class LogLevel : std::uint8_t { debug = 0, info = 1, warning = 2, error = 3 };

// Where the library reports what it would otherwise print. message is NUL-terminated and valid
// only during the call. May be called under the writer lock: must not call into the space.
using LogSinkFn = void (*)(void* opaque, LogLevel level, const char* message);

// A custom allocator (Linux's struct ioasid_allocator_ops), e.g. a guest driver that forwards
// allocation to the host. Both callbacks run under the space's writer lock and must not call
// into the space.
struct AllocatorOps {
  // Allocate an ID in [min, max]; store it in *out and return 0, or return a negative errno
  // (-ENOSPC when nothing is left). The space checks whatever is returned: an ID outside
  // [min, max], outside the space, reserved or already live is handed back through free() and
  // the allocation fails (kInvalidId itself is treated as "nothing allocated" and not handed
  // back).
  int (*alloc)(void* pdata, Id min, Id max, Id* out);
  // Release an ID this allocator returned. Cannot fail.
  void (*free)(void* pdata, Id id);
  void* pdata;
};

// Counters of a space (a consistent snapshot, taken under the writer lock).
struct SpaceStats {
  std::uint64_t live_ids = 0;          // allocated IDs (active + free_pending)
  std::uint64_t free_pending_ids = 0;  // of which FREE_PENDING
  std::uint64_t reserved_ids = 0;
  std::uint64_t capacity = 0;        // IDs the sets may reserve in total
  std::uint64_t quota_reserved = 0;  // sum of the sets' quotas
  std::uint64_t sets = 0;
  std::uint64_t dying_sets = 0;
  std::uint64_t orphaned_ids = 0;        // live IDs whose custom allocator was unregistered
  std::uint64_t orphaned_total = 0;      // IDs ever orphaned
  std::uint64_t allocs = 0;              // successful allocations
  std::uint64_t releases = 0;            // IDs returned to their allocator
  std::uint64_t quota_refusals = 0;      // alloc refused by a set quota
  std::uint64_t exhausted_refusals = 0;  // alloc refused: no free ID in range
  std::uint64_t allocator_rejects = 0;   // custom allocator answers refused (range, duplicate)
  std::uint64_t allocator_groups = 0;    // registered custom allocator groups
  bool custom_allocator_active = false;
  std::uint64_t table_bytes = 0;  // memory held by the ID table
};

enum class SetState : std::uint8_t { alive = 0, dying = 1 };

struct SetInfo {
  SetId set;
  std::uint64_t owner_token = 0;
  std::uint32_t quota = 0;
  std::uint32_t count = 0;  // IDs held (active + free_pending)
  std::uint32_t bound = 0;  // IDs with at least one bind
  std::uint32_t peak = 0;   // highest count seen
  std::uint64_t quota_refusals = 0;
  SetState state = SetState::alive;
};

// What the owner may learn about one of its IDs.
struct IdInfo {
  Id id = kInvalidId;
  IdState state = IdState::free;
  std::uint32_t refs = 0;
  std::uint32_t binds = 0;
  Id spid = kInvalidId;
};

}  // namespace ioasid
