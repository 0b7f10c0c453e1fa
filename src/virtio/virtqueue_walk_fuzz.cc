// SPDX-License-Identifier: Apache-2.0
// virtqueue_walk_fuzz.cc: differential libFuzzer target for the split virtqueue's device end. The
// descriptor walk has a fast path for the common chain (device_queue_hot.hpp) and a general walk
// that takes over from whichever descriptor the fast path stops at; the transport drains request
// queues through its own loop (DeviceQueue::Hot::serve). This target runs guest memory built from
// the fuzz bytes through both, DeviceQueue::pop()/push() and VirtioTransport::process_queue() with
// a recording device model, and checks each against a plain reference written from the rules in
// virtqueue.hpp (every descriptor through GuestMemory::translate, one at a time, no fast path):
//   - the same chains in the same order: head, gathered readable bytes, oversized, writable bytes;
//   - the same QueueFault (none included) where the walk stops;
//   - the same guest memory afterwards (scattered replies, used entries, ring words), byte for
//   byte.
// Input: byte 0 = log2(queue size) (bits 0-2) | INDIRECT (bit 3) | EVENT_IDX (bit 4); byte 1 and 2
// select max_readable and max_writable; byte 3 = the reply length the model asks for; the rest =
// guest memory: region A (8 KiB at 0x1000, the queue at its start), region B (4 KiB, adjacent at
// 0x3000: a buffer across A and B is outside guest memory), region C (4 KiB at 2^32), zero-filled
// after the input.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/virtio_transport.hpp"
#include "ioasid/virtqueue.hpp"

namespace {

using namespace ioasid;          // NOLINT(build/namespaces)
using namespace ioasid::virtio;  // NOLINT(build/namespaces)

constexpr std::uint64_t kGpaA = 0x1000, kSizeA = 0x2000;
constexpr std::uint64_t kGpaB = 0x3000, kSizeB = 0x1000;
constexpr std::uint64_t kGpaC = 0x1'0000'0000, kSizeC = 0x1000;
constexpr std::uint32_t kLimits[8] = {0, 1, 8, 12, 16, 40, 64, 512};
// Model calls that write a reply; later calls answer 0 (a reply may rewrite the guest's own rings
// and keep the queue busy; this bounds the run).
constexpr std::uint32_t kMaxReplies = 512;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "virtqueue_walk_fuzz: %s\n", what);
    std::abort();
  }
}

// The guest memory of one run: three regions over separate buffers.
struct Memory {
  std::vector<std::byte> a, b, c;
  GuestMemory mem;
  explicit Memory(std::span<const std::uint8_t> image) : a(kSizeA), b(kSizeB), c(kSizeC) {
    std::size_t off = 0;
    for (std::vector<std::byte>* r : {&a, &b, &c}) {
      const std::size_t n = std::min(r->size(), image.size() - std::min(off, image.size()));
      if (n != 0) std::memcpy(r->data(), image.data() + off, n);
      off += r->size();
    }
    check(static_cast<bool>(mem.add_region({kGpaA, kSizeA, a.data()})), "region A");
    check(static_cast<bool>(mem.add_region({kGpaB, kSizeB, b.data()})), "region B");
    check(static_cast<bool>(mem.add_region({kGpaC, kSizeC, c.data()})), "region C");
  }
  bool operator==(const Memory& o) const { return a == o.a && b == o.b && c == o.c; }
};

std::uint16_t rd16(const GuestMemory& m, std::uint64_t gpa) {
  std::uint16_t v;
  std::memcpy(&v, m.translate(gpa, 2), 2);  // ring words: inside region A by the layout check
  return v;
}
void wr16(const GuestMemory& m, std::uint64_t gpa, std::uint16_t v) {
  std::memcpy(m.translate(gpa, 2), &v, 2);
}

// A chain as the rules in virtqueue.hpp define it.
struct RefChain {
  std::uint16_t head = 0;
  std::vector<std::byte> readable;  // empty when oversized
  bool oversized = false;
  std::uint64_t writable_total = 0;
  std::vector<std::pair<std::byte*, std::uint32_t>> wsegs;
};

struct RefOptions {
  bool indirect;
  std::uint32_t max_readable, max_writable;
};

// The descriptor walk, one descriptor at a time, straight from the documented rules.
QueueFault ref_walk(const GuestMemory& m, const VirtqueueLayout& l, const RefOptions& o,
                    std::uint16_t head, RefChain* out) {
  out->head = head;
  std::uint64_t table = l.desc;
  std::uint32_t table_n = l.size, budget = l.size, idx = head;
  bool indirect = false, seen_write = false, first = true;
  std::uint64_t total = 0;
  for (;; first = false) {
    if (idx >= table_n) return QueueFault::desc_index;
    if (budget == 0) return QueueFault::chain_too_long;
    --budget;
    std::array<std::byte, 16> d;
    check(m.read(table + 16u * idx, d), "descriptor inside its table");
    std::uint64_t addr;
    std::uint32_t len;
    std::uint16_t flags, next;
    std::memcpy(&addr, d.data(), 8);
    std::memcpy(&len, d.data() + 8, 4);
    std::memcpy(&flags, d.data() + 12, 2);
    std::memcpy(&next, d.data() + 14, 2);
    if ((flags & kDescFIndirect) != 0) {
      if (indirect) return QueueFault::indirect_nested;
      if (!o.indirect || !first || (flags & kDescFNext) != 0 || len == 0 || len % 16 != 0 ||
          len / 16 > l.size) {
        return QueueFault::indirect_bad;
      }
      if (m.translate(addr, len) == nullptr) return QueueFault::desc_address;
      table = addr;
      table_n = budget = len / 16;
      indirect = true;
      idx = 0;
      continue;
    }
    if (len == 0) return QueueFault::zero_length;
    std::byte* p = m.translate(addr, len);
    if (p == nullptr) return QueueFault::desc_address;
    total += len;
    if (total > 0xFFFF'FFFFull) return QueueFault::chain_bytes;
    if ((flags & kDescFWrite) != 0) {
      seen_write = true;
      out->wsegs.emplace_back(p, len);
      out->writable_total += len;
    } else {
      if (seen_write) return QueueFault::write_before_read;
      if (!out->oversized) {
        if (out->readable.size() + len > o.max_readable) {
          out->oversized = true;
          out->readable.clear();
        } else {
          out->readable.insert(out->readable.end(), p, p + len);
        }
      }
    }
    if ((flags & kDescFNext) == 0) return QueueFault::none;
    idx = next;
  }
}

// The reply the model writes for its n-th call: a pattern of the call number.
std::byte pattern(std::uint32_t call, std::size_t i) {
  return static_cast<std::byte>((call * 37u + i * 11u + 5u) & 0xFF);
}

// What a chain is answered with: the used length, the reply bytes in scratch[0, used).
std::uint32_t answer(std::uint32_t* calls, std::uint8_t reply_len, std::span<std::byte> writable) {
  const std::uint32_t call = (*calls)++;
  if (call >= kMaxReplies) return 0;
  const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(writable.size(), reply_len));
  for (std::size_t i = 0; i < n; ++i) writable[i] = pattern(call, i);
  return n;
}

// What a device end must do for one chain after the model answered `used` bytes: scatter them
// over the writable buffers in order, and write the used element {head, used}.
void ref_complete(const GuestMemory& m, const VirtqueueLayout& l, const RefChain& c,
                  std::uint16_t used_idx, std::span<const std::byte> reply) {
  std::size_t off = 0;
  for (const auto& [p, len] : c.wsegs) {
    if (off == reply.size()) break;
    const std::size_t n = std::min<std::size_t>(len, reply.size() - off);
    std::memcpy(p, reply.data() + off, n);
    off += n;
  }
  const std::uint32_t elem[2] = {c.head, static_cast<std::uint32_t>(reply.size())};
  std::memcpy(m.translate(l.used + 4 + 8u * (used_idx & (l.size - 1u)), 8), elem, 8);
}

struct Seen {  // a chain as the device end handed it on
  std::vector<std::byte> readable;
  std::size_t writable;
  bool oversized;
  bool operator==(const Seen&) const = default;
};

// The reference device end: pops until the ring is empty or a chain breaks the transport. For
// the transport (serve) it also stores the kick suppression and re-arm words and used.idx as
// VirtioTransport does (virtqueue.hpp's ordering): NO_NOTIFY at the start (without EVENT_IDX),
// then per round used.idx and the re-armed word, looking at avail.idx again after each round.
struct RefRun {
  std::vector<Seen> seen;
  QueueFault fault = QueueFault::none;
};
RefRun ref_run(const GuestMemory& m, const VirtqueueLayout& l, const RefOptions& o,
               std::uint8_t reply_len, bool transport, bool event_idx) {
  RefRun r;
  std::uint16_t last = 0, avail_seen = 0, used_idx = 0, published = 0;
  std::uint32_t calls = 0;
  std::vector<std::byte> scratch(o.max_writable);
  if (transport && !event_idx) wr16(m, l.used, kUsedFNoNotify);
  for (;;) {
    for (;;) {
      if (avail_seen == last) avail_seen = rd16(m, l.avail + 2);
      const auto n = static_cast<std::uint16_t>(avail_seen - last);
      if (n == 0) break;
      if (n > l.size) {
        r.fault = QueueFault::avail_idx_jump;
        break;
      }
      const std::uint16_t head = rd16(m, l.avail + 4 + 2u * (last & (l.size - 1u)));
      RefChain c;
      r.fault = ref_walk(m, l, o, head, &c);
      if (r.fault != QueueFault::none) break;
      ++last;
      std::uint32_t used = 0;
      const std::size_t w = std::min<std::uint64_t>(c.writable_total, o.max_writable);
      // The transport answers an oversized chain with 0 without the model; pop()/push() users
      // see it (the fuzzer pushes 0 for it as well).
      r.seen.push_back({c.readable, w, c.oversized});
      if (!c.oversized) used = answer(&calls, reply_len, std::span(scratch).first(w));
      ref_complete(m, l, c, used_idx, std::span(scratch).first(used));
      ++used_idx;
    }
    if (!transport) return r;
    if (used_idx != published) {
      wr16(m, l.used + 2, used_idx);
      published = used_idx;
    }
    if (r.fault != QueueFault::none) return r;
    if (event_idx) {
      wr16(m, l.used + 4 + 8u * l.size, last);
    } else {
      wr16(m, l.used, 0);
    }
    if (rd16(m, l.avail + 2) == last) return r;
  }
}

// The device model of the transport run: records what it is given, answers with the pattern.
class RecordingModel final : public VirtioDeviceModel {
 public:
  explicit RecordingModel(std::uint8_t reply_len) : reply_len_(reply_len) {}
  unsigned num_queues() const noexcept override { return 1; }
  bool is_event_queue(unsigned) const noexcept override { return false; }
  std::uint64_t device_features() const noexcept override { return 0; }
  bool set_driver_features(std::uint64_t) noexcept override { return true; }
  void read_config(std::uint32_t, std::span<std::byte> out) const noexcept override {
    std::fill(out.begin(), out.end(), std::byte{0});
  }
  bool write_config(std::uint32_t, std::span<const std::byte>) noexcept override { return false; }
  std::size_t handle_request(unsigned, std::span<const std::byte> readable,
                             std::span<std::byte> writable) noexcept override {
    seen.push_back(
        {std::vector<std::byte>(readable.begin(), readable.end()), writable.size(), false});
    return answer(&calls_, reply_len_, writable);
  }
  std::optional<std::size_t> next_event(unsigned, std::span<std::byte>) noexcept override {
    return std::nullopt;
  }
  void set_event_notifier(std::function<void()>) override {}
  void reset() noexcept override {}

  std::vector<Seen> seen;

 private:
  std::uint8_t reply_len_;
  std::uint32_t calls_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const auto qsize = static_cast<std::uint16_t>(1u << (data[0] & 7));
  const bool indirect = (data[0] & 8) != 0;
  const bool event_idx = (data[0] & 16) != 0;
  const RefOptions o{indirect, kLimits[data[1] & 7], kLimits[data[2] & 7]};
  const std::uint8_t reply_len = data[3];
  const std::span<const std::uint8_t> image(data + 4, size - 4);
  const VirtqueueLayout l = contiguous_layout(kGpaA, qsize);

  // 1. DeviceQueue::pop() / push(), against the reference.
  {
    Memory dev(image), ref(image);
    const RefRun want = ref_run(ref.mem, l, o, reply_len, false, event_idx);
    DeviceQueue q;
    check(static_cast<bool>(q.setup(dev.mem, l,
                                    {.indirect = o.indirect,
                                     .event_idx = event_idx,
                                     .max_readable = o.max_readable,
                                     .max_writable = o.max_writable})),
          "setup");
    std::vector<Seen> got;
    std::uint32_t calls = 0;
    DeviceQueue::Chain c;
    DeviceQueue::Pop p;
    while ((p = q.pop(c)) == DeviceQueue::Pop::chain) {
      check(c.writable_total >= c.writable.size() && c.writable.size() <= o.max_writable,
            "writable scratch size");
      got.push_back({std::vector<std::byte>(c.readable.begin(), c.readable.end()),
                     c.writable.size(), c.oversized});
      check(!c.oversized || c.readable.empty(), "oversized chain with readable bytes");
      const std::uint32_t used = c.oversized ? 0 : answer(&calls, reply_len, c.writable);
      check(q.push(c, used), "push");
    }
    check((p == DeviceQueue::Pop::broken) == (q.fault() != QueueFault::none), "broken = fault");
    check(q.fault() == want.fault, "pop: a different QueueFault than the reference");
    check(got == want.seen, "pop: different chains than the reference");
    check(dev == ref, "pop/push: guest memory differs from the reference");
  }

  // 2. VirtioTransport's request-queue drain, against the reference.
  {
    Memory dev(image), ref(image);
    const RefRun want = ref_run(ref.mem, l, o, reply_len, true, event_idx);
    RecordingModel model(reply_len);
    VirtioTransport t(model, dev.mem,
                      {.max_queue_size = 128,
                       .offer_indirect = indirect,
                       .offer_event_idx = event_idx,
                       .max_readable = o.max_readable,
                       .max_writable = o.max_writable});
    t.set_status(kStatusAcknowledge | kStatusDriver);
    t.set_driver_features(t.get_device_features());
    t.set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    check(t.set_queue(0, l), "set_queue");
    t.set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    t.notify(0);
    check(t.queue_fault(0) == want.fault, "drain: a different QueueFault than the reference");
    check(((t.get_status() & kStatusNeedsReset) != 0) == (want.fault != QueueFault::none),
          "NEEDS_RESET iff faulted");
    // The oversized chains are answered with used length 0 without the model.
    std::vector<Seen> want_model;
    std::size_t want_oversized = 0;
    for (const Seen& s : want.seen) {
      if (s.oversized) {
        ++want_oversized;
      } else {
        want_model.push_back(s);
      }
    }
    check(model.seen == want_model, "drain: the model saw different chains than the reference");
    check(t.stats().requests == want_model.size() && t.stats().oversized == want_oversized,
          "drain: request / oversized counts");
    check(dev == ref, "drain: guest memory differs from the reference");
  }
  return 0;
}
