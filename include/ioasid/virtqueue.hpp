// SPDX-License-Identifier: Apache-2.0
// virtqueue.hpp: the virtio 1.x split virtqueue (virtio 1.2 §2.7), both ends: DeviceQueue pops
// descriptor chains the driver made available, gathers their device-readable bytes, hands the
// device a contiguous writable buffer and scatters the answer back into the chain, then publishes
// a used entry; DriverQueue adds chains, publishes them and reaps used entries. Generic: no
// knowledge of any device type.
//
// Layout (all little endian, in guest memory): descriptor table of `size` 16-byte entries {le64
// addr; le32 len; le16 flags (NEXT 1, WRITE 2, INDIRECT 4); le16 next} (16-byte aligned); avail
// ring {le16 flags; le16 idx; le16 ring[size]; le16 used_event} (2-byte aligned); used ring {le16
// flags; le16 idx; {le32 id; le32 len}[size]; le16 avail_event} (4-byte aligned). size is a power
// of 2 in [1, 32768].
//
// Synopsis (device)
//   DeviceQueue q;  q.setup(mem, layout, {});
//   DeviceQueue::Chain c;
//   while (q.pop(c) == DeviceQueue::Pop::chain) {
//     std::size_t n = handle(c.readable, c.writable);   // write at most c.writable.size() bytes
//     q.push(c, n);                                     // scatter n bytes, add used {head, n}
//   }
//   if (q.publish()) raise_interrupt();                 // NO_INTERRUPT / used_event honoured
// Synopsis (driver)
//   DriverQueue d;  d.setup(mem, layout, /*event_idx=*/false);
//   d.add({{req_gpa, 8, false}, {resp_gpa, 8, true}});  if (d.publish()) kick();
//   while (auto u = d.pop_used()) ...                   // u->id: the head add() returned
//
// Broken transport (QueueFault): a descriptor index >= size, a chain longer than size descriptors
// (which includes every loop), a buffer outside guest memory, a zero-length buffer, a readable
// descriptor after a writable one, an indirect descriptor inside an indirect table, INDIRECT with
// NEXT, an indirect table whose length is 0, not a multiple of 16 or above size entries, INDIRECT
// without VIRTIO_F_INDIRECT_DESC, a chain whose total length exceeds 2^32 - 1, or an avail idx more
// than size ahead of the device. The queue latches the fault, stops (pop() returns broken from
// then on) and the transport sets NEEDS_RESET. No descriptor content can make the device loop,
// read or write outside guest memory, or allocate.
//
// Memory ordering: the avail idx is read with acquire and the used idx written with release
// (std::atomic_ref on the shared ring word), so the other end may be another thread or another
// process mapping the same memory. The flag and event words used for notification suppression
// are ordered as virtio 1.2 §2.7.7 and §2.7.10 require: each side stores its idx (or its
// suppression word) seq_cst and then loads the other side's word seq_cst (a store-load barrier).
// The transport's request-queue service (VirtioTransport, through the internal
// src/virtio/internal/device_queue_hot.hpp) stores used idx (release) and its re-armed kick word,
// then issues one seq_cst fence before it loads avail idx and the driver's suppression word: the
// same store-load order for both pairs, one barrier instead of two.
//
// Thread-safety: one DeviceQueue / DriverQueue is used by one thread at a time (the transport
// holds a per-queue lock). At most one chain is between pop() and push() at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/guest_memory.hpp"
#include "ioasid/wire/le.hpp"

namespace ioasid::virtio {

// ---- transport constants (virtio 1.2 §2.7, §6) ------------------------------------------------

inline constexpr unsigned kFIndirectDesc = 28;  // VIRTIO_F_INDIRECT_DESC
inline constexpr unsigned kFEventIdx = 29;      // VIRTIO_F_EVENT_IDX
inline constexpr unsigned kFVersion1 = 32;      // VIRTIO_F_VERSION_1

inline constexpr std::uint16_t kDescFNext = 1;
inline constexpr std::uint16_t kDescFWrite = 2;
inline constexpr std::uint16_t kDescFIndirect = 4;
inline constexpr std::uint16_t kAvailFNoInterrupt = 1;  // VIRTQ_AVAIL_F_NO_INTERRUPT
inline constexpr std::uint16_t kUsedFNoNotify = 1;      // VIRTQ_USED_F_NO_NOTIFY
inline constexpr std::uint32_t kMaxQueueSize = 32768;

struct VirtqDesc {
  wire::le64 addr;
  wire::le32 len;
  wire::le16 flags;
  wire::le16 next;
};
static_assert(sizeof(VirtqDesc) == 16 && alignof(VirtqDesc) == 1);
struct VirtqUsedElem {
  wire::le32 id;
  wire::le32 len;
};
static_assert(sizeof(VirtqUsedElem) == 8 && alignof(VirtqUsedElem) == 1);

// Where the three parts of a queue sit in guest memory.
struct VirtqueueLayout {
  std::uint16_t size = 0;  // power of 2, 1..32768 (32768 is stored as 0x8000)
  std::uint64_t desc = 0;
  std::uint64_t avail = 0;
  std::uint64_t used = 0;
};

[[nodiscard]] constexpr std::uint64_t desc_table_bytes(std::uint32_t size) noexcept {
  return 16ull * size;
}
[[nodiscard]] constexpr std::uint64_t avail_ring_bytes(std::uint32_t size) noexcept {
  return 6ull + 2ull * size;  // flags, idx, ring[size], used_event
}
[[nodiscard]] constexpr std::uint64_t used_ring_bytes(std::uint32_t size) noexcept {
  return 6ull + 8ull * size;  // flags, idx, ring[size], avail_event
}
// The three parts one after another from base (16-aligned): desc, avail, used (4-aligned).
[[nodiscard]] constexpr VirtqueueLayout contiguous_layout(std::uint64_t base,
                                                          std::uint16_t size) noexcept {
  const std::uint64_t avail = base + desc_table_bytes(size);
  const std::uint64_t used = (avail + avail_ring_bytes(size) + 3) & ~std::uint64_t{3};
  return {size, base, avail, used};
}
[[nodiscard]] constexpr std::uint64_t contiguous_bytes(std::uint16_t size) noexcept {
  const VirtqueueLayout l = contiguous_layout(0, size);
  return l.used + used_ring_bytes(size);
}
// Whether a layout is valid on its own: size a power of 2 <= 32768, alignments 16 / 2 / 4, no part
// wrapping around 2^64.
[[nodiscard]] bool layout_valid(const VirtqueueLayout& l) noexcept;

// Why a queue stopped (broken transport). none while it works.
enum class QueueFault : std::uint8_t {
  none = 0,
  bad_layout,         // setup: invalid layout or a part outside guest memory (queue not ready)
  avail_idx_jump,     // avail idx more than size ahead of the device
  desc_index,         // a head or next index >= size (or >= the indirect table's entries)
  chain_too_long,     // more than size descriptors in one chain (loops end here)
  desc_address,       // [addr, addr + len) outside guest memory
  zero_length,        // a buffer of length 0
  write_before_read,  // a device-readable descriptor after a device-writable one
  indirect_nested,    // INDIRECT inside an indirect table
  indirect_bad,       // INDIRECT with NEXT, length 0 / not a multiple of 16 / above size entries,
                      // or INDIRECT without VIRTIO_F_INDIRECT_DESC
  chain_bytes,        // the chain's total length exceeds 2^32 - 1
  used_overflow,      // push() of a head the device did not pop (device bug)
};
[[nodiscard]] IOASID_API const char* to_string(QueueFault f) noexcept;

struct DeviceQueueOptions {
  bool indirect = true;    // VIRTIO_F_INDIRECT_DESC negotiated
  bool event_idx = false;  // VIRTIO_F_EVENT_IDX negotiated
  // The device-readable bytes gathered per chain (the scratch size). A chain with more is returned
  // with oversized = true and its readable span empty: the device answers it with used length 0.
  std::uint32_t max_readable = 4096;
  // The contiguous writable scratch. A chain with more writable bytes gets only this many.
  std::uint32_t max_writable = 4096;
};

struct DeviceQueueStats {
  std::uint64_t chains = 0;     // chains popped
  std::uint64_t used = 0;       // used entries pushed
  std::uint64_t oversized = 0;  // chains whose readable part exceeded max_readable
  std::uint64_t interrupts = 0;
  std::uint64_t interrupts_suppressed = 0;
};

class IOASID_API DeviceQueue {
 public:
  // A popped chain. readable: the gathered device-readable bytes (per-queue scratch, valid until
  // the next pop); writable: a contiguous scratch of min(writable bytes, max_writable).
  struct Chain {
    std::uint16_t head = 0;
    std::span<const std::byte> readable;
    std::span<std::byte> writable;
    std::uint32_t writable_total = 0;  // the chain's device-writable bytes
    bool oversized = false;
  };
  enum class Pop : std::uint8_t { chain, empty, broken };

  DeviceQueue() = default;
  DeviceQueue(const DeviceQueue&) = delete;
  DeviceQueue& operator=(const DeviceQueue&) = delete;

  // Checks the layout (layout_valid, each part inside guest memory at host addresses aligned like
  // the guest-physical ones) and allocates the scratch buffers. mem must outlive the queue.
  // Returns: invalid_argument (bad layout: fault() is bad_layout), no_memory.
  Result<void> setup(const GuestMemory& mem, const VirtqueueLayout& l,
                     const DeviceQueueOptions& o) noexcept;
  // Back to not ready (device reset). Scratch buffers are kept.
  void reset() noexcept;
  [[nodiscard]] bool ready() const noexcept {
    return mem_ != nullptr && fault_ == QueueFault::none;
  }
  [[nodiscard]] QueueFault fault() const noexcept { return fault_; }
  [[nodiscard]] const VirtqueueLayout& layout() const noexcept { return l_; }

  // Pops the next available chain. Returns empty when the driver has made nothing more
  // available, broken when the queue is (or just became) faulted. Context: noexcept, no
  // allocation.
  Pop pop(Chain& out) noexcept;
  // Gives the last popped chain back (it will be popped again), e.g. an event buffer there was no
  // event for.
  void unpop() noexcept;
  // Scatters c.writable[0, written) into the chain's writable buffers (written is clamped to the
  // scratch) and writes the used entry {c.head, written}. Not visible to the driver before
  // publish(). Returns false when the queue is faulted.
  bool push(const Chain& c, std::uint32_t written) noexcept;
  // Makes pushed entries visible (release store of used idx). Returns whether the driver wants an
  // interrupt for them: NO_INTERRUPT clear, or with EVENT_IDX used_event crossed.
  bool publish() noexcept;
  // Device-side notification suppression: ask the driver not to kick (false) or to kick again
  // (true). Re-enabling returns whether chains arrived meanwhile (the caller must then drain).
  bool enable_kicks(bool enable) noexcept;
  // Whether the driver made chains available that the device has not popped.
  [[nodiscard]] bool pending() const noexcept;

  [[nodiscard]] DeviceQueueStats stats() const noexcept { return st_; }

 private:
  // pop() (with its descriptor walk) and push() as inline code, shared with the transport's drain
  // loop: src/virtio/internal/device_queue_hot.hpp.
  struct Hot;
  friend class VirtioTransport;
  bool fail(QueueFault f) noexcept;

  const GuestMemory* mem_ = nullptr;
  VirtqueueLayout l_{};
  DeviceQueueOptions o_{};
  QueueFault fault_ = QueueFault::none;
  // Host pointers of the rings (checked at setup).
  std::byte* desc_ = nullptr;
  std::byte* avail_ = nullptr;
  std::byte* used_ = nullptr;
  std::uint16_t last_avail_ = 0;   // next avail ring slot to pop
  std::uint16_t avail_seen_ = 0;   // the last avail idx read (valid while != last_avail_)
  std::uint16_t used_shadow_ = 0;  // used idx including pushed, unpublished entries
  std::uint16_t used_published_ = 0;
  bool popped_ = false;  // a chain is between pop() and push()
  struct Seg {
    std::byte* host;  // translated and bounds-checked by pop(); regions never change after setup
    std::uint32_t len;
  };
  std::vector<Seg> wsegs_;  // writable buffers of the popped chain (<= size)
  std::size_t nwsegs_ = 0;
  std::vector<std::byte> rscratch_, wscratch_;
  GuestRegion last_region_{};  // a copy of the region the last translation hit (size 0: none)
  // The walk's fast path bounds (setup): min(max_readable, 2^32 - 2), and size (0 when size is 1:
  // a chain of two descriptors cannot fit).
  std::uint32_t fast_rmax_ = 0, fast_size_ = 0;
  DeviceQueueStats st_;
};

// The driver end. Buffers are guest-physical addresses the caller owns.
class IOASID_API DriverQueue {
 public:
  struct Buffer {
    std::uint64_t gpa = 0;
    std::uint32_t len = 0;
    bool device_writable = false;
  };
  struct Used {
    std::uint16_t id = 0;  // the head add() returned
    std::uint32_t len = 0;
  };

  DriverQueue() = default;
  DriverQueue(const DriverQueue&) = delete;
  DriverQueue& operator=(const DriverQueue&) = delete;

  // Zeroes the rings in guest memory and builds the free list. mem must outlive the queue.
  // Returns: invalid_argument (layout_valid fails or a part is outside mem), no_memory.
  Result<void> setup(const GuestMemory& mem, const VirtqueueLayout& l, bool event_idx) noexcept;
  [[nodiscard]] const VirtqueueLayout& layout() const noexcept { return l_; }

  // Adds a chain (device-readable buffers first) to the avail ring, unpublished. Returns the head
  // index; exhausted (not enough free descriptors), invalid_argument (empty, or readable after
  // writable).
  Result<std::uint16_t> add(std::span<const Buffer> bufs) noexcept {
    std::uint16_t head = 0;
    const Errc e = add_raw(bufs, &head);
    if (e != Errc{}) return fail(e);
    return head;
  }
  // add() without Result (Errc{} and *head on success): a Result built in memory costs a
  // store-forwarding stall on this path (see Space::find_raw).
  Errc add_raw(std::span<const Buffer> bufs, std::uint16_t* head) noexcept;
  // Publishes added chains (release store of avail idx). Returns whether the device wants a kick
  // (NO_NOTIFY clear, or with EVENT_IDX avail_event crossed).
  bool publish() noexcept;
  // The next used entry, freeing its descriptors; nullopt when none. An entry naming a head that
  // is not in flight is skipped and counted (bad_used()).
  std::optional<Used> pop_used() noexcept {
    Used u;
    if (!pop_used_raw(&u)) return std::nullopt;
    return u;
  }
  // pop_used() without optional: true and *out, or false when none.
  bool pop_used_raw(Used* out) noexcept;
  // Driver-side suppression: ask for interrupts (true) or not. Re-enabling returns whether used
  // entries arrived meanwhile.
  bool enable_interrupts(bool enable) noexcept;
  [[nodiscard]] std::uint32_t free_descriptors() const noexcept { return nfree_; }
  [[nodiscard]] std::uint64_t bad_used() const noexcept { return bad_used_; }

 private:
  Errc add_any(std::span<const Buffer> bufs, std::uint16_t* head) noexcept;  // add_raw, any n
  void added(std::uint32_t head, std::uint32_t last, std::uint32_t n) noexcept;
  const GuestMemory* mem_ = nullptr;
  VirtqueueLayout l_{};
  bool event_idx_ = false;
  std::byte* desc_ = nullptr;
  std::byte* avail_ = nullptr;
  std::byte* used_ = nullptr;
  // Driver-private bookkeeping per descriptor, in one array: the free-list link, and for an
  // in-flight head its chain's length (0: not in flight) and last descriptor.
  struct Slot {
    std::uint16_t next_free = 0;
    std::uint16_t chain_len = 0;
    std::uint16_t chain_tail = 0;
    std::uint16_t unused = 0;  // 8 bytes: an index is a shift
  };
  std::vector<Slot> slots_;
  std::uint16_t free_head_ = 0;
  std::uint32_t nfree_ = 0;
  std::uint16_t avail_shadow_ = 0;
  std::uint16_t avail_published_ = 0;
  std::uint16_t last_used_ = 0;
  std::uint16_t used_seen_ = 0;  // the last used idx read (entries up to it not all reaped yet)
  std::uint64_t bad_used_ = 0;
};

}  // namespace ioasid::virtio
