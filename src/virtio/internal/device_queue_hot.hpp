// SPDX-License-Identifier: Apache-2.0
// device_queue_hot.hpp: the per-chain path of DeviceQueue (pop with its descriptor walk, push) as
// inline code, so that the transport's drain loop (VirtioTransport::process_queue) compiles it in
// place instead of making three out-of-line calls per chain; DeviceQueue::pop() and push() are the
// same functions. Also the guest-memory access helpers both ends of the queue use.
//
// What is here is exactly what virtqueue.hpp documents for pop() and push(): every descriptor field
// read once, every index, length and address checked before use, at most `size` descriptors per
// chain. The fast path of walk() only takes chains on which the general walk (walk_general, in
// virtqueue.cc) would succeed with the same result; anything else continues in the general walk
// from the descriptor already read, so a chain gets the same checks and the same QueueFault
// whichever path meets it.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "ioasid/guest_memory.hpp"
#include "ioasid/virtqueue.hpp"

namespace ioasid::virtio::internal {

static_assert(std::endian::native == std::endian::little ||
              std::endian::native == std::endian::big);

constexpr std::uint16_t from_le16(std::uint16_t v) noexcept {
  if constexpr (std::endian::native == std::endian::big) return __builtin_bswap16(v);
  return v;
}

// Plain little-endian fields of guest memory, one memcpy each (wire::Le stores byte by byte,
// which costs a store-forwarding stall on this path).
template <class T>
inline T ld(const std::byte* p) noexcept {
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
inline void st(std::byte* p, T v) noexcept {
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
    if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
  }
  std::memcpy(p, &v, sizeof(v));
}
// Two adjacent le32 fields (a used element {id, len}) in one store.
inline void st_pair(std::byte* p, std::uint32_t lo, std::uint32_t hi) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    st<std::uint64_t>(p, std::uint64_t{lo} | std::uint64_t{hi} << 32);
  } else {
    st<std::uint32_t>(p, lo);
    st<std::uint32_t>(p + 4, hi);
  }
}

// memcpy of a guest buffer: requests are a few bytes (virtio-iommu's largest is PROBE, 72), where a
// libc call costs more than the copy. Overlapping loads and stores of 4, 8, 16 or 32 bytes cover
// every length from 4 to 64; never touches a byte outside [0, n) of either side (n = 0: none).
template <std::size_t W>
inline void copy_ends(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  unsigned char a[W], b[W];
  std::memcpy(a, src, W);
  std::memcpy(b, src + n - W, W);
  std::memcpy(dst, a, W);
  std::memcpy(dst + n - W, b, W);
}
inline void copy_bytes(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  if (n >= 8 && n <= 16) {
    copy_ends<8>(dst, src, n);
  } else if (n >= 4 && n < 8) {
    copy_ends<4>(dst, src, n);
  } else if (n > 16 && n <= 32) {
    copy_ends<16>(dst, src, n);
  } else if (n > 32 && n <= 64) {
    copy_ends<32>(dst, src, n);
  } else if (n != 0) {  // an empty scratch's data() may be null, which memcpy must not see
    std::memcpy(dst, src, n);
  }
}

// The shared ring words: 2-byte aligned (checked at setup), accessed atomically because the other
// end may be running at the same time.
inline std::uint16_t load16(std::byte* p, std::memory_order mo) noexcept {
  return from_le16(std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).load(mo));
}
inline void store16(std::byte* p, std::uint16_t v, std::memory_order mo) noexcept {
  std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).store(from_le16(v), mo);
}

// virtio 1.2 §2.7.10: vring_need_event.
constexpr bool need_event(std::uint16_t event, std::uint16_t new_idx, std::uint16_t old) noexcept {
  return static_cast<std::uint16_t>(new_idx - event - 1) <
         static_cast<std::uint16_t>(new_idx - old);
}

// One descriptor: addr, then len | flags << 32 | next << 48. Two loads, each field read once.
struct RawDesc {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t flags, next;
};
inline RawDesc read_desc(const std::byte* dp) noexcept {
  const auto addr = ld<std::uint64_t>(dp);
  const auto rest = ld<std::uint64_t>(dp + 8);
  return {addr, static_cast<std::uint32_t>(rest), static_cast<std::uint16_t>(rest >> 32),
          static_cast<std::uint16_t>(rest >> 48)};
}

// The state of walk_general(): where the walk is, what it gathered, and the descriptor it looks
// at (read once by whoever filled it in, already counted against the budget).
struct WalkState {
  std::uint16_t head;
  const std::byte* table;
  std::uint32_t table_n;
  std::uint32_t budget;  // descriptors the chain may still visit after the current one
  bool first;            // the current descriptor is the chain's head
  bool indirect = false;
  bool seen_write = false;
  bool oversized = false;
  std::uint32_t rlen = 0;
  std::uint64_t total = 0, wtotal = 0;
  RawDesc d;
};

}  // namespace ioasid::virtio::internal

namespace ioasid::virtio {

struct DeviceQueue::Hot {
  using RawDesc = internal::RawDesc;
  using WalkState = internal::WalkState;

  // GuestMemory::translate() with the region of the last hit tried first: regions never change
  // or go away once added, so a copy of one stays exact.
  static std::byte* translate(DeviceQueue& q, std::uint64_t gpa, std::uint64_t len) noexcept {
    const GuestRegion& r = q.last_region_;
    // off wraps to above size when gpa < r.gpa (a region never wraps 2^64).
    const std::uint64_t off = gpa - r.gpa;
    if (off < r.size && len <= r.size - off) [[likely]] {
      return r.host + off;
    }
    return translate_miss(q, gpa, len);
  }
  static std::byte* translate_miss(DeviceQueue& q, std::uint64_t gpa, std::uint64_t len) noexcept;
  // translate() as a test, for a length of at least 1: *out is the host pointer when true (a hit
  // needs no null check). With len >= 1, "off < size and len <= size - off" is "off + len <= size
  // without a carry" (a gpa below the region wraps off to above 2^64 - 2^32, and off + len
  // carries or stays above size).
  static bool translate_to(DeviceQueue& q, std::uint64_t gpa, std::uint32_t len,
                           std::byte** out) noexcept {
    const GuestRegion& r = q.last_region_;
    const std::uint64_t off = gpa - r.gpa;
    std::uint64_t end;
    if (!__builtin_add_overflow(off, std::uint64_t{len}, &end) && end <= r.size) [[likely]] {
      *out = r.host + off;
      return true;
    }
    *out = translate_miss(q, gpa, len);
    return *out != nullptr;
  }
  // The general walk: any chain, every check (virtqueue.cc).
  static bool walk_general(DeviceQueue& q, WalkState& s, Chain& out) noexcept;

  // The fast step of a walk: the common chain, a direct device-readable descriptor (within
  // max_readable; its bytes copied to the readable scratch) then one direct device-writable
  // descriptor, both valid (done: p1/len1 is the writable buffer). Otherwise it stops at the first
  // descriptor it does not take (d0: the head, nothing consumed; d1: the second, the head's bytes
  // gathered) and walk_general() continues from that descriptor, already read. Small and
  // returned by value, so that inlined it lives in registers. head < size.
  struct FastWalk {
    enum class Stage : std::uint8_t { done, d0, d1 } stage;
    RawDesc d;           // d0, d1: the descriptor to continue from
    std::uint32_t len0;  // d1, done: bytes gathered from the head
    std::uint32_t len1;  // done: the writable buffer's length
    std::byte* p1;       // done: the writable buffer
  };
  static FastWalk walk_fast(DeviceQueue& q, std::uint32_t head) noexcept {
    using Stage = FastWalk::Stage;
    std::byte* const desc = q.desc_;
    const RawDesc d0 = internal::read_desc(desc + 16u * head);
    // len in [1, max_readable]: len - 1 < fast_rmax_ (min(max_readable, 2^32 - 2)); next < size
    // with size > 1 (a second descriptor within the budget): next < fast_size_ (0 when size is 1).
    if (d0.flags != kDescFNext || d0.len - 1u >= q.fast_rmax_ || d0.next >= q.fast_size_) {
      return {Stage::d0, d0, 0, 0, nullptr};
    }
    std::byte* p0;
    if (!translate_to(q, d0.addr, d0.len, &p0)) return {Stage::d0, d0, 0, 0, nullptr};
    internal::copy_bytes(q.rscratch_.data(), p0, d0.len);
    const RawDesc d1 = internal::read_desc(desc + 16u * d0.next);
    // len >= 1 and len0 + len <= 2^32 - 1: len - 1 (wrapping 0 to 2^32 - 1) <= 2^32 - 2 - len0
    // (len0 is in [1, 2^32 - 2]).
    if (d1.flags != kDescFWrite || d1.len - 1u > 0xFFFF'FFFEu - d0.len) {
      return {Stage::d1, d1, d0.len, 0, nullptr};
    }
    std::byte* p1;
    if (!translate_to(q, d1.addr, d1.len, &p1)) return {Stage::d1, d1, d0.len, 0, nullptr};
    return {Stage::done, d1, d0.len, d1.len, p1};
  }
  // Where walk_general() picks up after walk_fast() stopped.
  static WalkState continue_from(DeviceQueue& q, std::uint32_t head, const FastWalk& f) noexcept {
    if (f.stage == FastWalk::Stage::d0) {
      return {.head = static_cast<std::uint16_t>(head),
              .table = q.desc_,
              .table_n = q.l_.size,
              .budget = q.l_.size - 1u,
              .first = true,
              .d = f.d};
    }
    return {.head = static_cast<std::uint16_t>(head),
            .table = q.desc_,
            .table_n = q.l_.size,
            .budget = q.l_.size - 2u,
            .first = false,
            .rlen = f.len0,
            .total = f.len0,
            .d = f.d};
  }
  // The chain walk_fast() took whole.
  static Chain fast_chain(DeviceQueue& q, std::uint16_t head, const FastWalk& f) noexcept {
    return {
        .head = head,
        .readable = std::span<const std::byte>(q.rscratch_.data(), f.len0),
        .writable = std::span<std::byte>(q.wscratch_.data(), std::min(f.len1, q.o_.max_writable)),
        .writable_total = f.len1,
        .oversized = false};
  }

  // pop()'s walk: the chain's readable bytes gathered, its writable buffers in wsegs_.
  static bool walk(DeviceQueue& q, std::uint16_t head, Chain& out) noexcept {
    q.nwsegs_ = 0;
    if (head >= q.l_.size) return q.fail(QueueFault::desc_index);
    const FastWalk f = walk_fast(q, head);
    if (f.stage != FastWalk::Stage::done) {
      WalkState s = continue_from(q, head, f);
      return walk_general(q, s, out);
    }
    q.wsegs_[0] = {f.p1, f.len1};
    q.nwsegs_ = 1;
    out = fast_chain(q, head, f);
    return true;
  }

  static Pop pop(DeviceQueue& q, Chain& out) noexcept {
    if (q.fault_ != QueueFault::none) return Pop::broken;
    if (q.mem_ == nullptr) return Pop::empty;
    if (q.popped_) {  // the previous chain was never pushed: give it back to the device first
      q.fail(QueueFault::used_overflow);
      return Pop::broken;
    }
    // Read avail.idx only when the chains seen last time are used up (one acquire per batch).
    if (q.avail_seen_ == q.last_avail_) {
      q.avail_seen_ = internal::load16(q.avail_ + 2, std::memory_order_acquire);
    }
    const auto n = static_cast<std::uint16_t>(q.avail_seen_ - q.last_avail_);
    if (n == 0) return Pop::empty;
    if (n > q.l_.size) {
      q.fail(QueueFault::avail_idx_jump);
      return Pop::broken;
    }
    const std::uint32_t slot = q.last_avail_ & (q.l_.size - 1u);
    const std::uint16_t head = internal::load16(q.avail_ + 4 + 2 * slot, std::memory_order_relaxed);
    if (!walk(q, head, out)) return Pop::broken;
    ++q.last_avail_;
    q.popped_ = true;
    ++q.st_.chains;
    if (out.oversized) ++q.st_.oversized;
    return Pop::chain;
  }

  // Copies c.writable[0, written) over the chain's writable buffers, in order (written <=
  // c.writable.size()); the segments were translated by walk() (regions are fixed after setup).
  static void scatter(DeviceQueue& q, const Chain& c, std::uint32_t written) noexcept {
    const Seg* seg = q.wsegs_.data();
    if (q.nwsegs_ == 1) {
      internal::copy_bytes(seg[0].host, c.writable.data(), std::min(seg[0].len, written));
      return;
    }
    std::uint32_t off = 0;
    for (std::size_t i = 0; i < q.nwsegs_ && off < written; ++i) {
      const std::uint32_t n = std::min(seg[i].len, written - off);
      internal::copy_bytes(seg[i].host, c.writable.data() + off, n);
      off += n;
    }
  }

  static bool push(DeviceQueue& q, const Chain& c, std::uint32_t written) noexcept {
    if (q.fault_ != QueueFault::none) return false;
    if (!q.popped_) return q.fail(QueueFault::used_overflow);
    q.popped_ = false;
    written = static_cast<std::uint32_t>(std::min<std::size_t>(written, c.writable.size()));
    scatter(q, c, written);
    const std::uint32_t slot = q.used_shadow_ & (q.l_.size - 1u);
    internal::st_pair(q.used_ + 4 + 8 * slot, c.head, written);
    ++q.used_shadow_;
    ++q.st_.used;
    return true;
  }

  // pop() and push() for every available chain: answer(readable, writable) returns the used
  // length (clamped to the writable scratch, as push() does); a chain whose readable part exceeds
  // max_readable (Chain::oversized) is not given to answer and gets used length 0. The ring indices
  // stay in locals across the batch and the per-call state checks run once. Returns the chains
  // completed; stops when the ring is empty or a chain breaks the transport (the fault is latched,
  // as pop() would; completed chains stay pushed). Nothing is published.
  template <class Answer>
  [[gnu::always_inline]] static std::uint32_t drain(DeviceQueue& q, Answer& answer,
                                                    std::uint32_t* n_oversized) noexcept {
    if (q.fault_ != QueueFault::none || q.mem_ == nullptr) return 0;
    if (q.popped_) {  // a chain popped and never pushed, as pop() reports it
      q.fail(QueueFault::used_overflow);
      return 0;
    }
    std::byte* const avail = q.avail_;
    std::byte* const used = q.used_;
    const std::uint32_t size = q.l_.size;
    const std::uint16_t first = q.last_avail_;
    std::uint16_t last = first, seen = q.avail_seen_;
    // Every completed chain moves the avail and the used index on by one: the used slot of the
    // chain at `last` is last + delta.
    const auto delta = static_cast<std::uint16_t>(q.used_shadow_ - first);
    if (static_cast<std::uint16_t>(seen - last) > size) {  // as pop() checks a value it kept
      q.fail(QueueFault::avail_idx_jump);
      return 0;
    }
    std::uint32_t done = 0, oversized = 0;  // done: more than 2^16 if the driver keeps adding
    for (;;) {
      // Read avail.idx only when the chains seen last time are used up (one acquire per batch).
      // The count of chains to pop only shrinks between two reads, so the avail_idx_jump check
      // (more than size ahead) needs to run only on a fresh value.
      if (seen == last) {
        seen = internal::load16(avail + 2, std::memory_order_acquire);
        if (seen == last) break;
        if (static_cast<std::uint16_t>(seen - last) > size) {
          q.fail(QueueFault::avail_idx_jump);
          break;
        }
      }
      const std::uint32_t head =
          internal::load16(avail + 4 + 2 * (last & (size - 1u)), std::memory_order_relaxed);
      if (head >= size) {
        q.fail(QueueFault::desc_index);
        break;
      }
      const FastWalk f = walk_fast(q, head);
      std::uint32_t written;
      if (f.stage == FastWalk::Stage::done) {
        // The common chain: its one writable buffer is in hand; written <= len1.
        const std::span<std::byte> w(q.wscratch_.data(), std::min(f.len1, q.o_.max_writable));
        written = static_cast<std::uint32_t>(std::min<std::size_t>(
            answer(std::span<const std::byte>(q.rscratch_.data(), f.len0), w), w.size()));
        internal::copy_bytes(f.p1, w.data(), written);
      } else {
        WalkState s = continue_from(q, head, f);
        Chain c;
        q.nwsegs_ = 0;
        if (!walk_general(q, s, c)) break;
        if (c.oversized) {
          ++oversized;  // more readable bytes than max_readable: answered with used length 0
          written = 0;
        } else {
          written = static_cast<std::uint32_t>(
              std::min<std::size_t>(answer(c.readable, c.writable), c.writable.size()));
          scatter(q, c, written);
        }
        q.nwsegs_ = 0;
      }
      // {id, len}
      internal::st_pair(used + 4 + 8 * ((last + delta) & (size - 1u)), head, written);
      ++last;
      ++done;
    }
    q.last_avail_ = last;
    q.avail_seen_ = seen;
    q.used_shadow_ = static_cast<std::uint16_t>(last + delta);
    q.st_.chains += done;
    q.st_.used += done;
    q.st_.oversized += oversized;
    *n_oversized += oversized;
    return done;
  }

  // A request queue's whole service, what enable_kicks(false), pop()/push() until empty,
  // enable_kicks(true) (and again while chains slipped in) and publish() do, with one full fence
  // per round instead of two seq_cst stores: the used idx (release) and the re-armed kick word
  // (avail_event, or used.flags cleared) are stored, then one seq_cst fence, then the driver's
  // words are read (avail idx: more to do?; used_event or avail.flags: interrupt?). That is the
  // store-load order §2.7.7 / §2.7.10 ask for on both pairs: the driver's side stores its word
  // seq_cst and loads ours seq_cst, which a seq_cst fence between our store and our load pairs
  // with. Entries are visible from the round that completed them; the interrupt decision covers
  // every entry of the call (need_event over [used idx at entry, final used idx)).
  // Returns the chains completed (*oversized of them answered without answer(), see drain());
  // *interrupt: whether the driver wants an interrupt. A broken transport stops the service (the
  // completed chains are still published).
  template <class Answer>
  [[gnu::always_inline]] static std::uint32_t serve(DeviceQueue& q, Answer& answer, bool* interrupt,
                                                    std::uint32_t* oversized) noexcept {
    *interrupt = false;
    if (q.mem_ == nullptr) return 0;
    std::byte* const avail = q.avail_;
    std::byte* const used = q.used_;
    const bool event_idx = q.o_.event_idx;
    const std::uint32_t size = q.l_.size;
    // No kicks needed while we drain (with EVENT_IDX the driver kicks only past avail_event,
    // which still names the chain we will pop first).
    if (!event_idx) internal::store16(used, kUsedFNoNotify, std::memory_order_relaxed);
    const std::uint16_t old = q.used_published_;
    std::uint32_t done = 0;
    for (;;) {
      done += drain(q, answer, oversized);
      const bool broken = q.fault_ != QueueFault::none;
      if (q.used_shadow_ != q.used_published_) {
        internal::store16(used + 2, q.used_shadow_, std::memory_order_release);
        q.used_published_ = q.used_shadow_;
      }
      if (!broken) {
        // Kick me when the driver publishes past what I have popped / kicks back on.
        if (event_idx) {
          internal::store16(used + 4 + 8u * size, q.last_avail_, std::memory_order_relaxed);
        } else {
          internal::store16(used, 0, std::memory_order_relaxed);
        }
      }
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (broken) break;
      if (internal::load16(avail + 2, std::memory_order_relaxed) == q.last_avail_) break;
    }
    if (q.used_published_ == old) return done;
    bool want;
    if (event_idx) {
      const std::uint16_t ev = internal::load16(avail + 4 + 2u * size, std::memory_order_relaxed);
      want = internal::need_event(ev, q.used_published_, old);
    } else {
      want = (internal::load16(avail, std::memory_order_relaxed) & kAvailFNoInterrupt) == 0;
    }
    if (want) {
      ++q.st_.interrupts;
    } else {
      ++q.st_.interrupts_suppressed;
    }
    *interrupt = want;
    return done;
  }
};

}  // namespace ioasid::virtio
