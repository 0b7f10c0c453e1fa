// SPDX-License-Identifier: Apache-2.0
// virtqueue_fuzz.cc: libFuzzer target for the split virtqueue and the transport front-end with a
// real IommuDevice behind it. Guest memory, the descriptor table and the avail ring all come from
// the fuzz bytes; the device is kicked and processes whatever it finds. Checks:
//   - no crash, no access outside guest memory (ASan: the guest memory is an exact-size buffer);
//   - the used ring is well-formed: after each drain used idx equals the chains completed, and
//     the last used entry names a descriptor index < size and a length <= the writable scratch;
//   - a broken transport (QueueFault) and NEEDS_RESET go together, and after it nothing else is
//     completed; a reset brings the queue back.
// Input: byte 0 = log2(queue size) (low 3 bits) | INDIRECT (bit 3) | EVENT_IDX (bit 4);
// byte 1 = extra avail idx bump for a second kick; the rest = the start of guest memory (8 KiB,
// zero-filled after the input), where the queue sits at offset 0.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_transport.hpp"
#include "ioasid/virtqueue.hpp"

namespace {

using namespace ioasid;          // NOLINT(build/namespaces)
using namespace ioasid::virtio;  // NOLINT(build/namespaces)

constexpr std::uint64_t kGpa = 0x1000;
constexpr std::size_t kMem = 8192;
constexpr std::uint32_t kMaxWritable = 512;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "virtqueue_fuzz: %s\n", what);
    std::abort();
  }
}

std::uint16_t le16_at(const std::vector<std::byte>& m, std::uint64_t gpa) {
  std::uint16_t v;
  std::memcpy(&v, m.data() + (gpa - kGpa), 2);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<Space> host = Space::create({}).value();
  if (size < 2) return 0;
  const std::uint16_t qsize = static_cast<std::uint16_t>(1u << (data[0] & 7));
  const bool indirect = (data[0] & 8) != 0;
  const bool event_idx = (data[0] & 16) != 0;
  const std::uint8_t bump = data[1];

  std::vector<std::byte> ram(kMem);
  std::memcpy(ram.data(), data + 2, std::min(size - 2, kMem));
  GuestMemory mem;
  check(static_cast<bool>(mem.add_region({kGpa, kMem, ram.data()})), "region");

  const SetId set = host->create_set(1, 64).value();
  {
    LocalBackend backend(*host, set);
    IommuDeviceConfig cfg;
    cfg.allow_undeclared_endpoints = true;
    IommuDevice dev(backend, cfg);
    VirtioIommuTransport t(dev, mem,
                           {.offer_indirect = indirect,
                            .offer_event_idx = event_idx,
                            .max_readable = 256,
                            .max_writable = kMaxWritable});
    VirtioTransport& tr = t.transport();
    const VirtqueueLayout l = contiguous_layout(kGpa, qsize);
    tr.set_status(kStatusAcknowledge | kStatusDriver);
    tr.set_driver_features(tr.get_device_features());
    tr.set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    check(tr.set_queue(0, l), "set_queue");
    tr.set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);

    for (int round = 0; round < 2; ++round) {
      const std::uint64_t done_before = tr.queue_stats(0).used;
      tr.notify(0);
      const std::uint64_t done = tr.queue_stats(0).used - done_before;
      // Nobody adds while the device drains: at most one ring's worth per kick.
      check(done <= qsize, "bounded work");
      // The guest never initialised the used ring (its bytes are fuzz input) and its writable
      // buffers may overlap it, but each drain ends with the device storing used.idx (all it
      // completed since setup) after the last entry, which no scatter overwrites.
      if (done != 0) {
        const std::uint16_t total = static_cast<std::uint16_t>(tr.queue_stats(0).used);
        check(le16_at(ram, l.used + 2) == total, "used idx = the completed chains");
        const std::uint64_t slot = static_cast<std::uint16_t>(total - 1) & (qsize - 1u);
        std::uint32_t id, len;
        std::memcpy(&id, ram.data() + (l.used + 4 + 8 * slot - kGpa), 4);
        std::memcpy(&len, ram.data() + (l.used + 8 + 8 * slot - kGpa), 4);
        check(id < qsize, "used id in range");
        check(len <= kMaxWritable, "used length within the writable scratch");
      }
      const bool faulted = tr.queue_fault(0) != QueueFault::none;
      check(faulted == ((tr.get_status() & kStatusNeedsReset) != 0), "NEEDS_RESET iff faulted");
      if (faulted) {
        const std::uint64_t before = tr.queue_stats(0).used;
        tr.notify(0);
        check(tr.queue_stats(0).used == before, "nothing after NEEDS_RESET");
        break;
      }
      // Second round: the guest publishes more (possibly an invalid jump).
      const std::uint16_t idx = le16_at(ram, l.avail + 2);
      const std::uint16_t next = static_cast<std::uint16_t>(idx + bump);
      std::memcpy(ram.data() + (l.avail + 2 - kGpa), &next, 2);
    }
    tr.set_status(0);
    check(tr.queue_fault(0) == QueueFault::none && tr.get_status() == 0, "reset");
  }
  (void)host->destroy_set(set);
  return 0;
}
