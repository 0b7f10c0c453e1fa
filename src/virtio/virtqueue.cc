// SPDX-License-Identifier: Apache-2.0
// virtqueue.cc: the split virtqueue (virtio 1.2 §2.7): DeviceQueue (pop, descriptor walk with every
// broken-transport check, gather / scatter through per-queue scratch, used ring, notification
// suppression) and DriverQueue (free list, avail ring, used reaping).
//
// Invariants: every guest address is translated through GuestMemory (bounds- and overflow-checked)
// before use; a chain walk visits at most `size` descriptors (or the indirect table's entries), so
// it ends whatever the descriptors hold; nothing allocates after setup().
#include "ioasid/virtqueue.hpp"

#include "virtio/internal/device_queue_hot.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <new>

namespace ioasid::virtio {
namespace {

using internal::copy_bytes;
using internal::ld;
using internal::load16;
using internal::st;
using internal::store16;

using internal::need_event;

bool aligned(const void* p, std::uintptr_t a) noexcept {
  return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0;
}

// Translates the three parts of a valid layout; false if any is outside mem or misaligned on the
// host side.
bool map_parts(const GuestMemory& mem, const VirtqueueLayout& l, std::byte** desc,
               std::byte** avail, std::byte** used) noexcept {
  *desc = mem.translate(l.desc, desc_table_bytes(l.size));
  *avail = mem.translate(l.avail, avail_ring_bytes(l.size));
  *used = mem.translate(l.used, used_ring_bytes(l.size));
  return *desc != nullptr && *avail != nullptr && *used != nullptr && aligned(*avail, 2) &&
         aligned(*used, 4);
}

}  // namespace

bool layout_valid(const VirtqueueLayout& l) noexcept {
  const std::uint32_t n = l.size;
  if (n == 0 || n > kMaxQueueSize || (n & (n - 1)) != 0) return false;
  if ((l.desc & 15) != 0 || (l.avail & 1) != 0 || (l.used & 3) != 0) return false;
  const auto fits = [](std::uint64_t base, std::uint64_t len) {
    return base <= ~std::uint64_t{0} - len;
  };
  return fits(l.desc, desc_table_bytes(n)) && fits(l.avail, avail_ring_bytes(n)) &&
         fits(l.used, used_ring_bytes(n));
}

const char* to_string(QueueFault f) noexcept {
  switch (f) {
    case QueueFault::none:
      return "none";
    case QueueFault::bad_layout:
      return "bad_layout";
    case QueueFault::avail_idx_jump:
      return "avail_idx_jump";
    case QueueFault::desc_index:
      return "desc_index";
    case QueueFault::chain_too_long:
      return "chain_too_long";
    case QueueFault::desc_address:
      return "desc_address";
    case QueueFault::zero_length:
      return "zero_length";
    case QueueFault::write_before_read:
      return "write_before_read";
    case QueueFault::indirect_nested:
      return "indirect_nested";
    case QueueFault::indirect_bad:
      return "indirect_bad";
    case QueueFault::chain_bytes:
      return "chain_bytes";
    case QueueFault::used_overflow:
      return "used_overflow";
  }
  return "unknown";
}

// ---- DeviceQueue --------------------------------------------------------------------------------

Result<void> DeviceQueue::setup(const GuestMemory& mem, const VirtqueueLayout& l,
                                const DeviceQueueOptions& o) noexcept {
  reset();
  std::byte *d = nullptr, *a = nullptr, *u = nullptr;
  if (!layout_valid(l) || !map_parts(mem, l, &d, &a, &u)) {
    fault_ = QueueFault::bad_layout;
    return ioasid::fail(Errc::invalid_argument);
  }
  try {
    wsegs_.resize(l.size);
    rscratch_.resize(o.max_readable);
    wscratch_.resize(o.max_writable);
  } catch (const std::bad_alloc&) {
    return ioasid::fail(Errc::no_memory);
  }
  l_ = l;
  o_ = o;
  desc_ = d;
  avail_ = a;
  used_ = u;
  last_region_ = {};
  fast_rmax_ = std::min<std::uint32_t>(o.max_readable, 0xFFFF'FFFEu);
  fast_size_ = l.size > 1 ? l.size : 0;
  // The device starts from whatever the rings say now (zero after a driver's setup).
  last_avail_ = avail_seen_ = 0;
  used_shadow_ = used_published_ = 0;
  mem_ = &mem;
  return {};
}

void DeviceQueue::reset() noexcept {
  mem_ = nullptr;
  fault_ = QueueFault::none;
  desc_ = avail_ = used_ = nullptr;
  last_avail_ = avail_seen_ = used_shadow_ = used_published_ = 0;
  popped_ = false;
  nwsegs_ = 0;
}

bool DeviceQueue::fail(QueueFault f) noexcept {
  if (fault_ == QueueFault::none) fault_ = f;
  return false;
}

bool DeviceQueue::pending() const noexcept {
  if (!ready()) return false;
  return load16(avail_ + 2, std::memory_order_acquire) != last_avail_;
}

DeviceQueue::Pop DeviceQueue::pop(Chain& out) noexcept { return DeviceQueue::Hot::pop(*this, out); }

void DeviceQueue::unpop() noexcept {
  if (!popped_) return;
  popped_ = false;
  --last_avail_;
  --st_.chains;
}

bool DeviceQueue::push(const Chain& c, std::uint32_t written) noexcept {
  return DeviceQueue::Hot::push(*this, c, written);
}

bool DeviceQueue::publish() noexcept {
  if (mem_ == nullptr || used_shadow_ == used_published_) return false;
  const std::uint16_t old = used_published_;
  // The used idx store must be visible before the driver's suppression word is read (§2.7.10):
  // a seq_cst store and a seq_cst load (the driver's enable_interrupts does the mirror image),
  // cheaper than a release store plus a full fence.
  store16(used_ + 2, used_shadow_, std::memory_order_seq_cst);
  used_published_ = used_shadow_;
  bool want;
  if (o_.event_idx) {
    const std::uint16_t ev = load16(avail_ + 4 + 2u * l_.size, std::memory_order_seq_cst);
    want = need_event(ev, used_shadow_, old);
  } else {
    want = (load16(avail_, std::memory_order_seq_cst) & kAvailFNoInterrupt) == 0;
  }
  if (want) {
    ++st_.interrupts;
  } else {
    ++st_.interrupts_suppressed;
  }
  return want;
}

bool DeviceQueue::enable_kicks(bool enable) noexcept {
  if (mem_ == nullptr) return false;
  if (o_.event_idx) {
    // avail_event: kick me when the driver publishes past what I have popped.
    if (enable) store16(used_ + 4 + 8u * l_.size, last_avail_, std::memory_order_seq_cst);
  } else {
    store16(used_, enable ? 0 : kUsedFNoNotify,
            enable ? std::memory_order_seq_cst : std::memory_order_relaxed);
  }
  if (!enable) return false;
  // Mirror of the driver's publish(): seq_cst store above, seq_cst load here.
  return load16(avail_ + 2, std::memory_order_seq_cst) != last_avail_;
}

// ---- DriverQueue --------------------------------------------------------------------------------

Result<void> DriverQueue::setup(const GuestMemory& mem, const VirtqueueLayout& l,
                                bool event_idx) noexcept {
  std::byte *d = nullptr, *a = nullptr, *u = nullptr;
  if (!layout_valid(l) || !map_parts(mem, l, &d, &a, &u)) return fail(Errc::invalid_argument);
  try {
    slots_.assign(l.size, Slot{});
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  std::memset(d, 0, desc_table_bytes(l.size));
  std::memset(a, 0, avail_ring_bytes(l.size));
  std::memset(u, 0, used_ring_bytes(l.size));
  for (std::uint32_t i = 0; i < l.size; ++i) {
    slots_[i].next_free = static_cast<std::uint16_t>((i + 1) & (l.size - 1u));
  }
  mem_ = &mem;
  l_ = l;
  event_idx_ = event_idx;
  desc_ = d;
  avail_ = a;
  used_ = u;
  free_head_ = 0;
  nfree_ = l.size;
  avail_shadow_ = avail_published_ = last_used_ = used_seen_ = 0;
  bad_used_ = 0;
  return {};
}

namespace {

// A descriptor {addr, len, flags, next}: two stores on little-endian hosts.
void put_desc(std::byte* dp, std::uint64_t addr, std::uint32_t len, std::uint32_t flags,
              std::uint32_t next) noexcept {
  st<std::uint64_t>(dp, addr);
  if constexpr (std::endian::native == std::endian::little) {
    st<std::uint64_t>(dp + 8,
                      std::uint64_t{len} | std::uint64_t{flags} << 32 | std::uint64_t{next} << 48);
  } else {
    st<std::uint32_t>(dp + 8, len);
    st<std::uint16_t>(dp + 12, static_cast<std::uint16_t>(flags));
    st<std::uint16_t>(dp + 14, static_cast<std::uint16_t>(next));
  }
}

}  // namespace

// A request and its reply, as every virtio-iommu request is: straight-line, the rest in add_any().
Errc DriverQueue::add_raw(std::span<const Buffer> bufs, std::uint16_t* head_out) noexcept {
  if (bufs.size() != 2 || mem_ == nullptr || nfree_ < 2) return add_any(bufs, head_out);
  const Buffer* const b = bufs.data();
  if (b[0].device_writable && !b[1].device_writable) return Errc::invalid_argument;
  std::byte* const desc = desc_;
  Slot* const slots = slots_.data();
  const std::uint32_t head = free_head_;
  const std::uint32_t last = slots[head].next_free;
  put_desc(desc + 16u * head, b[0].gpa, b[0].len,
           (b[0].device_writable ? kDescFWrite : 0) | kDescFNext, last);
  put_desc(desc + 16u * last, b[1].gpa, b[1].len, b[1].device_writable ? kDescFWrite : 0, 0);
  // added(head, last, 2), in line.
  free_head_ = slots[last].next_free;
  nfree_ -= 2;
  slots[head].chain_len = 2;
  slots[head].chain_tail = static_cast<std::uint16_t>(last);
  const std::uint16_t shadow = avail_shadow_;
  store16(avail_ + 4 + 2 * (shadow & (l_.size - 1u)), static_cast<std::uint16_t>(head),
          std::memory_order_relaxed);
  avail_shadow_ = static_cast<std::uint16_t>(shadow + 1);
  *head_out = static_cast<std::uint16_t>(head);
  return Errc{};
}

Errc DriverQueue::add_any(std::span<const Buffer> bufs, std::uint16_t* head_out) noexcept {
  const std::size_t n = bufs.size();
  if (mem_ == nullptr || n == 0) return Errc::invalid_argument;
  if (n > nfree_) return Errc::exhausted;
  const Buffer* const b = bufs.data();
  for (std::size_t i = 1; i < n; ++i) {
    if (b[i - 1].device_writable && !b[i].device_writable) return Errc::invalid_argument;
  }
  // Locals: the descriptor stores below may alias any member as far as the compiler knows.
  std::byte* const desc = desc_;
  const Slot* const slots = slots_.data();
  const std::uint32_t head = free_head_;
  std::uint32_t cur = head;
  for (std::size_t i = 0;; ++i) {
    const std::uint32_t flags = b[i].device_writable ? kDescFWrite : 0;
    if (i + 1 == n) {
      put_desc(desc + 16u * cur, b[i].gpa, b[i].len, flags, 0);
      break;
    }
    const std::uint32_t nxt = slots[cur].next_free;
    put_desc(desc + 16u * cur, b[i].gpa, b[i].len, flags | kDescFNext, nxt);
    cur = nxt;
  }
  added(head, cur, static_cast<std::uint32_t>(n));
  *head_out = static_cast<std::uint16_t>(head);
  return Errc{};
}

// The bookkeeping of an added chain [head .. last] of n descriptors, and its avail slot.
void DriverQueue::added(std::uint32_t head, std::uint32_t last, std::uint32_t n) noexcept {
  Slot* const slots = slots_.data();
  free_head_ = slots[last].next_free;
  nfree_ -= n;
  slots[head].chain_len = static_cast<std::uint16_t>(n);
  slots[head].chain_tail = static_cast<std::uint16_t>(last);
  const std::uint16_t shadow = avail_shadow_;
  store16(avail_ + 4 + 2 * (shadow & (l_.size - 1u)), static_cast<std::uint16_t>(head),
          std::memory_order_relaxed);
  avail_shadow_ = static_cast<std::uint16_t>(shadow + 1);
}

bool DriverQueue::publish() noexcept {
  if (mem_ == nullptr || avail_shadow_ == avail_published_) return false;
  const std::uint16_t old = avail_published_;
  // §2.7.13.4: the idx store before the flags read (seq_cst store + seq_cst load; the device's
  // enable_kicks is the mirror image).
  store16(avail_ + 2, avail_shadow_, std::memory_order_seq_cst);
  avail_published_ = avail_shadow_;
  if (event_idx_) {
    const std::uint16_t ev = load16(used_ + 4 + 8u * l_.size, std::memory_order_seq_cst);
    return need_event(ev, avail_shadow_, old);
  }
  return (load16(used_, std::memory_order_seq_cst) & kUsedFNoNotify) == 0;
}

bool DriverQueue::pop_used_raw(Used* out) noexcept {
  if (mem_ == nullptr) return false;
  std::byte* const used = used_;
  const std::uint32_t size = l_.size;
  for (;;) {
    const std::uint16_t last = last_used_;
    // Read used.idx only when the entries seen last time are reaped (one acquire per batch).
    if (used_seen_ == last) {
      used_seen_ = load16(used + 2, std::memory_order_acquire);
      if (used_seen_ == last) return false;
    }
    // {id, len} in one load (each field read once).
    const auto elem = ld<std::uint64_t>(used + 4 + 8u * (last & (size - 1u)));
    const auto id = static_cast<std::uint32_t>(elem);
    const auto next = static_cast<std::uint16_t>(last + 1);
    last_used_ = next;
    if (event_idx_) store16(avail_ + 4 + 2u * size, next, std::memory_order_relaxed);
    Slot* const slots = slots_.data();
    if (id >= size || slots[id].chain_len == 0) {
      ++bad_used_;  // a device bug: never free what is not in flight
      continue;
    }
    Slot& h = slots[id];
    slots[h.chain_tail].next_free = free_head_;
    free_head_ = static_cast<std::uint16_t>(id);
    nfree_ += h.chain_len;
    h.chain_len = 0;
    out->id = static_cast<std::uint16_t>(id);
    out->len = static_cast<std::uint32_t>(elem >> 32);
    return true;
  }
}

bool DriverQueue::enable_interrupts(bool enable) noexcept {
  if (mem_ == nullptr) return false;
  if (event_idx_) {
    if (enable) store16(avail_ + 4 + 2u * l_.size, last_used_, std::memory_order_seq_cst);
  } else {
    store16(avail_, enable ? 0 : kAvailFNoInterrupt,
            enable ? std::memory_order_seq_cst : std::memory_order_relaxed);
  }
  if (!enable) return false;
  // Mirror of the device's publish().
  return load16(used_ + 2, std::memory_order_seq_cst) != last_used_;
}

}  // namespace ioasid::virtio

// ---- the out-of-line parts of the per-chain path (device_queue_hot.hpp) ----------------------

namespace ioasid::virtio {

// GuestMemory::translate, remembering the region that holds gpa.
std::byte* DeviceQueue::Hot::translate_miss(DeviceQueue& q, std::uint64_t gpa,
                                            std::uint64_t len) noexcept {
  for (const GuestRegion& r : q.mem_->regions()) {
    if (gpa < r.gpa) continue;
    const std::uint64_t off = gpa - r.gpa;
    if (off >= r.size) continue;
    q.last_region_ = r;
    if (len > r.size - off) return nullptr;  // regions never overlap: no other can hold it
    return r.host + off;
  }
  return nullptr;
}

// Any chain, every check; entered with the state and the descriptor the fast path had in hand.
bool DeviceQueue::Hot::walk_general(DeviceQueue& q, WalkState& s, Chain& out) noexcept {
  for (;;) {
    const RawDesc& d = s.d;
    std::uint32_t idx = 0;
    if ((d.flags & kDescFIndirect) != 0) {
      if (s.indirect) return q.fail(QueueFault::indirect_nested);
      // Only the head may point to a table (as every driver does), never together with NEXT.
      if (!q.o_.indirect || !s.first || (d.flags & kDescFNext) != 0 || d.len == 0 ||
          d.len % 16 != 0 || d.len / 16 > q.l_.size) {
        return q.fail(QueueFault::indirect_bad);
      }
      s.table = translate(q, d.addr, d.len);
      if (s.table == nullptr) return q.fail(QueueFault::desc_address);
      s.table_n = d.len / 16;
      s.budget = s.table_n;
      s.indirect = true;
    } else {
      if (d.len == 0) return q.fail(QueueFault::zero_length);
      std::byte* p = translate(q, d.addr, d.len);
      if (p == nullptr) return q.fail(QueueFault::desc_address);
      s.total += d.len;
      if (s.total > 0xFFFF'FFFFull) return q.fail(QueueFault::chain_bytes);
      if ((d.flags & kDescFWrite) != 0) {
        s.seen_write = true;
        q.wsegs_[q.nwsegs_++] = {p, d.len};  // nwsegs_ < size: at most size descriptors per chain
        s.wtotal += d.len;
      } else {
        if (s.seen_write) return q.fail(QueueFault::write_before_read);
        if (!s.oversized) {
          if (d.len > q.rscratch_.size() - s.rlen) {
            s.oversized = true;
          } else {
            internal::copy_bytes(q.rscratch_.data() + s.rlen, p, d.len);
            s.rlen += d.len;
          }
        }
      }
      if ((d.flags & kDescFNext) == 0) break;
      idx = d.next;
    }
    s.first = false;
    if (idx >= s.table_n) return q.fail(QueueFault::desc_index);
    if (s.budget == 0) return q.fail(QueueFault::chain_too_long);
    --s.budget;
    s.d = internal::read_desc(s.table + 16u * idx);
  }
  out.head = s.head;
  out.oversized = s.oversized;
  out.readable = s.oversized ? std::span<const std::byte>{}
                             : std::span<const std::byte>(q.rscratch_.data(), s.rlen);
  out.writable_total = static_cast<std::uint32_t>(s.wtotal);
  out.writable = std::span<std::byte>(q.wscratch_.data(),
                                      std::min<std::uint64_t>(s.wtotal, q.wscratch_.size()));
  return true;
}

}  // namespace ioasid::virtio
