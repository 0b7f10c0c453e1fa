// SPDX-License-Identifier: Apache-2.0
// virtqueue.cc: the split virtqueue (virtio 1.2 §2.7): DeviceQueue (pop, descriptor walk with every
// broken-transport check, gather / scatter through per-queue scratch, used ring, notification
// suppression) and DriverQueue (free list, avail ring, used reaping).
//
// Invariants: every guest address is translated through GuestMemory (bounds- and overflow-checked)
// before use; a chain walk visits at most `size` descriptors (or the indirect table's entries), so
// it ends whatever the descriptors hold; nothing allocates after setup().
#include "ioasid/virtqueue.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <new>

namespace ioasid::virtio {
namespace {

static_assert(std::endian::native == std::endian::little ||
              std::endian::native == std::endian::big);

constexpr std::uint16_t from_le(std::uint16_t v) noexcept {
  if constexpr (std::endian::native == std::endian::big) return __builtin_bswap16(v);
  return v;
}

// Plain little-endian fields of guest memory, one memcpy each (wire::Le stores byte by byte,
// which costs a store-forwarding stall on this path).
template <class T>
T ld(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
    if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
  }
  return v;
}
template <class T>
void st(std::byte* p, T v) noexcept {
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
    if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
  }
  std::memcpy(p, &v, sizeof(v));
}

// memcpy of a guest buffer: requests are a few bytes, where a libc call costs more than the copy.
// Never touches a byte outside [0, n) of either side.
inline void copy_bytes(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  if (n >= 8 && n <= 16) {
    std::uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    std::uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, src + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else {
    std::memcpy(dst, src, n);
  }
}

// The shared ring words: 2-byte aligned (checked at setup), accessed atomically because the other
// end may be running at the same time.
std::uint16_t load16(std::byte* p, std::memory_order mo) noexcept {
  return from_le(std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).load(mo));
}
void store16(std::byte* p, std::uint16_t v, std::memory_order mo) noexcept {
  std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).store(from_le(v), mo);
}

// virtio 1.2 §2.7.10: vring_need_event.
constexpr bool need_event(std::uint16_t event, std::uint16_t new_idx, std::uint16_t old) noexcept {
  return static_cast<std::uint16_t>(new_idx - event - 1) <
         static_cast<std::uint16_t>(new_idx - old);
}

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

DeviceQueue::Pop DeviceQueue::pop(Chain& out) noexcept {
  if (fault_ != QueueFault::none) return Pop::broken;
  if (mem_ == nullptr) return Pop::empty;
  if (popped_) {  // the previous chain was never pushed: give it back to the device first
    fail(QueueFault::used_overflow);
    return Pop::broken;
  }
  // Read avail.idx only when the chains seen last time are used up (one acquire per batch).
  if (avail_seen_ == last_avail_) avail_seen_ = load16(avail_ + 2, std::memory_order_acquire);
  const std::uint16_t n = static_cast<std::uint16_t>(avail_seen_ - last_avail_);
  if (n == 0) return Pop::empty;
  if (n > l_.size) {
    fail(QueueFault::avail_idx_jump);
    return Pop::broken;
  }
  const std::uint32_t slot = last_avail_ & (l_.size - 1u);
  const std::uint16_t head = load16(avail_ + 4 + 2 * slot, std::memory_order_relaxed);
  if (!walk(head, out)) return Pop::broken;
  ++last_avail_;
  popped_ = true;
  ++st_.chains;
  if (out.oversized) ++st_.oversized;
  return Pop::chain;
}

void DeviceQueue::unpop() noexcept {
  if (!popped_) return;
  popped_ = false;
  --last_avail_;
  --st_.chains;
}

bool DeviceQueue::walk(std::uint16_t head, Chain& out) noexcept {
  const std::byte* table = desc_;
  std::uint32_t table_n = l_.size;
  std::uint32_t budget = l_.size;
  bool indirect = false;
  bool seen_write = false;
  bool oversized = false;
  std::uint32_t rlen = 0;
  std::uint64_t total = 0, wtotal = 0;
  nwsegs_ = 0;
  std::uint32_t idx = head;
  for (bool first = true;; first = false) {
    if (idx >= table_n) return fail(QueueFault::desc_index);
    if (budget == 0) return fail(QueueFault::chain_too_long);
    --budget;
    // Each field is read once: the guest may change the descriptor while we look at it.
    const std::byte* dp = table + 16u * idx;
    const auto addr = ld<std::uint64_t>(dp);
    const auto len = ld<std::uint32_t>(dp + 8);
    const auto flags = ld<std::uint16_t>(dp + 12);
    if ((flags & kDescFIndirect) != 0) {
      if (indirect) return fail(QueueFault::indirect_nested);
      // Only the head may point to a table (as every driver does), never together with NEXT.
      if (!o_.indirect || !first || (flags & kDescFNext) != 0 || len == 0 || len % 16 != 0 ||
          len / 16 > l_.size) {
        return fail(QueueFault::indirect_bad);
      }
      table = mem_->translate(addr, len);
      if (table == nullptr) return fail(QueueFault::desc_address);
      table_n = len / 16;
      budget = table_n;
      indirect = true;
      idx = 0;
      continue;
    }
    if (len == 0) return fail(QueueFault::zero_length);
    std::byte* p = mem_->translate(addr, len);
    if (p == nullptr) return fail(QueueFault::desc_address);
    total += len;
    if (total > 0xFFFF'FFFFull) return fail(QueueFault::chain_bytes);
    if ((flags & kDescFWrite) != 0) {
      seen_write = true;
      wsegs_[nwsegs_++] = {p, len};  // nwsegs_ < size: at most size descriptors per chain
      wtotal += len;
    } else {
      if (seen_write) return fail(QueueFault::write_before_read);
      if (!oversized) {
        if (len > rscratch_.size() - rlen) {
          oversized = true;
        } else {
          copy_bytes(rscratch_.data() + rlen, p, len);
          rlen += len;
        }
      }
    }
    if ((flags & kDescFNext) == 0) break;
    idx = ld<std::uint16_t>(dp + 14);
  }
  out.head = head;
  out.oversized = oversized;
  out.readable =
      oversized ? std::span<const std::byte>{} : std::span<const std::byte>(rscratch_.data(), rlen);
  out.writable_total = static_cast<std::uint32_t>(wtotal);
  out.writable =
      std::span<std::byte>(wscratch_.data(), std::min<std::uint64_t>(wtotal, wscratch_.size()));
  return true;
}

bool DeviceQueue::push(const Chain& c, std::uint32_t written) noexcept {
  if (fault_ != QueueFault::none) return false;
  if (!popped_) return fail(QueueFault::used_overflow);
  popped_ = false;
  written = static_cast<std::uint32_t>(std::min<std::size_t>(written, c.writable.size()));
  // Scatter over the segments pop() translated (guest memory regions are fixed after setup).
  std::uint32_t off = 0;
  for (std::size_t i = 0; i < nwsegs_ && off < written; ++i) {
    const std::uint32_t n = std::min(wsegs_[i].len, written - off);
    copy_bytes(wsegs_[i].host, c.writable.data() + off, n);
    off += n;
  }
  const std::uint32_t slot = used_shadow_ & (l_.size - 1u);
  st<std::uint32_t>(used_ + 4 + 8 * slot, c.head);
  st<std::uint32_t>(used_ + 8 + 8 * slot, written);
  ++used_shadow_;
  ++st_.used;
  return true;
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
    next_free_.assign(l.size, 0);
    chain_len_.assign(l.size, 0);
    chain_tail_.assign(l.size, 0);
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  std::memset(d, 0, desc_table_bytes(l.size));
  std::memset(a, 0, avail_ring_bytes(l.size));
  std::memset(u, 0, used_ring_bytes(l.size));
  for (std::uint32_t i = 0; i < l.size; ++i) {
    next_free_[i] = static_cast<std::uint16_t>((i + 1) & (l.size - 1u));
  }
  mem_ = &mem;
  l_ = l;
  event_idx_ = event_idx;
  desc_ = d;
  avail_ = a;
  used_ = u;
  free_head_ = 0;
  nfree_ = l.size;
  avail_shadow_ = avail_published_ = last_used_ = 0;
  bad_used_ = 0;
  return {};
}

Errc DriverQueue::add_raw(std::span<const Buffer> bufs, std::uint16_t* head_out) noexcept {
  if (mem_ == nullptr || bufs.empty()) return Errc::invalid_argument;
  if (bufs.size() > nfree_) return Errc::exhausted;
  for (std::size_t i = 1; i < bufs.size(); ++i) {
    if (bufs[i - 1].device_writable && !bufs[i].device_writable) return Errc::invalid_argument;
  }
  const std::uint16_t head = free_head_;
  std::uint16_t cur = head, last = head;
  for (std::size_t i = 0; i < bufs.size(); ++i) {
    const std::uint16_t nxt = next_free_[cur];
    const bool more = i + 1 < bufs.size();
    std::byte* dp = desc_ + 16u * cur;
    st<std::uint64_t>(dp, bufs[i].gpa);
    st<std::uint32_t>(dp + 8, bufs[i].len);
    st<std::uint16_t>(dp + 12,
                      static_cast<std::uint16_t>((bufs[i].device_writable ? kDescFWrite : 0) |
                                                 (more ? kDescFNext : 0)));
    st<std::uint16_t>(dp + 14, more ? nxt : 0);
    last = cur;
    cur = nxt;
  }
  free_head_ = cur;
  nfree_ -= static_cast<std::uint32_t>(bufs.size());
  chain_len_[head] = static_cast<std::uint16_t>(bufs.size());
  chain_tail_[head] = last;
  const std::uint32_t slot = avail_shadow_ & (l_.size - 1u);
  store16(avail_ + 4 + 2 * slot, head, std::memory_order_relaxed);
  ++avail_shadow_;
  *head_out = head;
  return Errc{};
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
  for (;;) {
    const std::uint16_t idx = load16(used_ + 2, std::memory_order_acquire);
    if (idx == last_used_) return false;
    const std::byte* e = used_ + 4 + 8u * (last_used_ & (l_.size - 1u));
    const auto id = ld<std::uint32_t>(e);
    const auto len = ld<std::uint32_t>(e + 4);
    ++last_used_;
    if (event_idx_) store16(avail_ + 4 + 2u * l_.size, last_used_, std::memory_order_relaxed);
    if (id >= l_.size || chain_len_[id] == 0) {
      ++bad_used_;  // a device bug: never free what is not in flight
      continue;
    }
    next_free_[chain_tail_[id]] = free_head_;
    free_head_ = static_cast<std::uint16_t>(id);
    nfree_ += chain_len_[id];
    chain_len_[id] = 0;
    out->id = static_cast<std::uint16_t>(id);
    out->len = len;
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
