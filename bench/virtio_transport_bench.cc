// SPDX-License-Identifier: Apache-2.0
// virtio_transport_bench.cc: ALLOC_PASID + FREE_PASID through the virtio-iommu split virtqueue
// (driver adds the chain, the device front-end pops it, IommuDevice runs it on a LocalBackend, the
// driver reaps the used entry), one request per kick and 64 requests per kick, and through
// VirtioIommuGuestDriver; next to the direct LocalBackend alloc + free over the same kind of host
// set (1024 live IDs, lowest free in [1, 2^20 - 1]). Part of ioasid_bench. Every timing is per
// ALLOC+FREE pair. BM_VqMapUnmap: MAP + UNMAP of one 4 KiB page through the same queue, one
// request per kick, in a domain holding 10k live 4 KiB mappings. A wrong answer stops the
// benchmark with an error; no timing is asserted.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_guest_driver.hpp"
#include "ioasid/virtio_iommu_transport.hpp"
#include "ioasid/virtqueue.hpp"
#include "virtio/request_parser.hpp"

namespace ioasid::bench {
namespace {

using namespace ioasid::virtio;  // NOLINT(build/namespaces)

constexpr Id kMaxId = 0xFFFFF;
constexpr std::uint64_t kGpa = 0x1'0000'0000;
constexpr std::uint64_t kRam = 1u << 20;
constexpr std::uint64_t kBufs = kGpa + 0x10000;  // request i: readable at +64i, writable +64i+32

// A host set holding IDs 1..n, one VM backend, a virtio-iommu device behind a transport, guest
// memory.
struct Host {
  explicit Host(std::uint32_t n, IommuDeviceConfig config = {}) {
    space = Space::create(SpaceConfig{.width_bits = 20}).value();
    set = space->create_set(1, kMaxId).value();
    for (std::uint32_t i = 1; i <= n; ++i) {
      if (space->alloc(set, 1, kMaxId, nullptr) != Result<Id>(i)) ok = false;
    }
    backend = std::make_unique<LocalBackend>(*space, set);
    dev = std::make_unique<IommuDevice>(*backend, config);
    ram.assign(kRam, std::byte{0});
    if (!mem.add_region({kGpa, kRam, ram.data()})) ok = false;
    t = std::make_unique<VirtioIommuTransport>(*dev, mem);
  }
  std::byte* at(std::uint64_t gpa) { return ram.data() + (gpa - kGpa); }

  bool ok = true;
  std::unique_ptr<Space> space;
  SetId set;
  std::unique_ptr<LocalBackend> backend;
  std::unique_ptr<IommuDevice> dev;
  std::vector<std::byte> ram;
  GuestMemory mem;
  std::unique_ptr<VirtioIommuTransport> t;
};

// The reference: LocalBackend alloc + free (what the device does per request) on the same set.
void BM_VqDirectAllocFree(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  Host h(n);
  if (!h.ok) return state.SkipWithError("setup failed");
  HostBackend& b = *h.backend;
  for (auto _ : state) {
    const Result<Id> id = b.alloc(1, kMaxId);
    if (!id || *id != n + 1 || !b.free(*id)) {
      state.SkipWithError("alloc/free failed");
      break;
    }
  }
}

// What a guest driver does before it uses the request queue: negotiation by hand (everything
// offered, EVENT_IDX included), queue 0 at kGpa with 128 entries, DRIVER_OK.
bool bring_up(Host& h, DriverQueue& q) {
  VirtioTransport& t = h.t->transport();
  constexpr std::uint8_t kDrv = kStatusAcknowledge | kStatusDriver;
  t.set_status(kDrv);
  t.set_driver_features(t.get_device_features());
  t.set_status(kDrv | kStatusFeaturesOk);
  const VirtqueueLayout l = contiguous_layout(kGpa, 128);
  if (!q.setup(h.mem, l, true) || !t.set_queue(0, l)) return false;
  t.set_status(kDrv | kStatusFeaturesOk | kStatusDriverOk);
  return true;
}

// kBatch ALLOC_PASID chains added, one kick, kBatch used entries reaped; then the same for
// FREE_PASID.
template <int kBatch>
void BM_VqAllocFree(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  Host h(n);
  if (!h.ok) return state.SkipWithError("setup failed");
  VirtioTransport& t = h.t->transport();
  DriverQueue q;
  if (!bring_up(h, q)) return state.SkipWithError("queue setup");
  // The driver keeps one ALLOC_PASID request per slot in guest memory (the device never writes
  // it) and a FREE_PASID request per slot whose pasid word it fills in; both encoded once.
  constexpr std::uint64_t kFrees = kBufs + 64u * kBatch;
  const EncodedRequest alloc = encode_request(AllocPasidRequest{});
  const EncodedRequest free_req = encode_request(FreePasidRequest{0});
  for (int i = 0; i < kBatch; ++i) {
    std::memcpy(h.at(kBufs + 64u * i), alloc.bytes.data(), alloc.size);
    std::memcpy(h.at(kFrees + 64u * i), free_req.bytes.data(), free_req.size);
  }
  std::array<Id, kBatch> ids{};
  auto run = [&](bool is_alloc) {
    for (int i = 0; i < kBatch; ++i) {
      const std::uint64_t r = kBufs + 64u * i;
      std::uint64_t rd = r;
      std::uint32_t rlen = static_cast<std::uint32_t>(alloc.size);
      if (!is_alloc) {
        rd = kFrees + 64u * i;
        std::memcpy(h.at(rd + offsetof(vi::ReqFreePasid, pasid)), &ids[i], 4);  // LE host
        rlen = static_cast<std::uint32_t>(free_req.size);
      }
      const std::array<DriverQueue::Buffer, 2> chain{
          {{rd, rlen, false}, {r + 32, is_alloc ? 8u : 4u, true}}};
      std::uint16_t head;
      if (q.add_raw(chain, &head) != Errc{}) return false;
    }
    if (q.publish()) t.notify(0);
    for (int i = 0; i < kBatch; ++i) {
      DriverQueue::Used u;
      if (!q.pop_used_raw(&u)) return false;
      const std::byte* w = h.at(kBufs + 64u * i + 32);  // answers come back in order
      if (is_alloc) {
        if (u.len != 8 || w[4] != std::byte{0}) return false;
        std::memcpy(&ids[i], w, 4);
      } else if (u.len != 4 || w[0] != std::byte{0}) {
        return false;
      }
    }
    return true;
  };
  while (state.KeepRunningBatch(kBatch)) {
    if (!run(true) || ids[0] != n + 1 || !run(false)) {
      state.SkipWithError("virtqueue ALLOC/FREE failed");
      break;
    }
  }
  const DeviceQueueStats s = t.queue_stats(0);
  if (s.chains != 0) {
    state.counters["chains_per_kick"] =
        static_cast<double>(s.chains) / static_cast<double>(t.stats().kicks);
  }
}

// The same pair through VirtioIommuGuestDriver::alloc_pasid / free_pasid: one request per kick,
// with the driver's lock, buffer copies and reply decoding.
void BM_VqDriverAllocFree(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  Host h(n);
  if (!h.ok) return state.SkipWithError("setup failed");
  VirtioIommuGuestDriver drv(h.t->port(), h.mem, kGpa, {});
  if (!drv.probe()) return state.SkipWithError("probe failed");
  for (auto _ : state) {
    const Result<Id> id = drv.alloc_pasid();
    if (!id || *id != n + 1 || !drv.free_pasid(*id)) {
      state.SkipWithError("driver ALLOC/FREE failed");
      break;
    }
  }
}

// MAP then UNMAP of one 4 KiB page, each one chain and one kick, in a domain holding n live 4 KiB
// mappings on the even pages (set up through IommuDevice::handle_request); the benchmark's page is
// an odd one in the middle. The requests are encoded once into guest memory.
void BM_VqMapUnmap(benchmark::State& state) {
  constexpr std::uint64_t kPage = 0x1000;
  const auto n = static_cast<std::uint64_t>(state.range(0));
  IommuDeviceConfig cfg;
  cfg.endpoints = {{1, {}}};
  cfg.max_mappings = n + 1;
  Host h(0, cfg);
  DriverQueue q;
  if (!h.ok || !bring_up(h, q)) return state.SkipWithError("setup failed");
  std::byte reply[4];
  auto direct = [&](const Request& r) {
    const EncodedRequest e = encode_request(r);
    const std::size_t used = h.dev->handle_request(e.span(), reply);
    return used == 4 && reply[0] == std::byte{0};
  };
  if (!direct(AttachRequest{1, 1, 0})) return state.SkipWithError("attach");
  namespace vi = wire::virtio_iommu;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t va = 2 * i * kPage;
    if (!direct(MapRequest{1, va, va + kPage - 1, va, vi::kMapFRead | vi::kMapFWrite})) {
      return state.SkipWithError("fill map");
    }
  }
  const std::uint64_t va = (n | 1) * kPage;
  const EncodedRequest map =
      encode_request(MapRequest{1, va, va + kPage - 1, va, vi::kMapFRead | vi::kMapFWrite});
  const EncodedRequest unmap = encode_request(UnmapRequest{1, va, va + kPage - 1});
  constexpr std::uint64_t kMapReq = kBufs, kUnmapReq = kBufs + 128, kReply = kBufs + 256;
  std::memcpy(h.at(kMapReq), map.bytes.data(), map.size);
  std::memcpy(h.at(kUnmapReq), unmap.bytes.data(), unmap.size);
  VirtioTransport& t = h.t->transport();
  auto run = [&](std::uint64_t req, std::size_t len) {
    const std::array<DriverQueue::Buffer, 2> chain{
        {{req, static_cast<std::uint32_t>(len), false}, {kReply, 4u, true}}};
    std::uint16_t head;
    if (q.add_raw(chain, &head) != Errc{}) return false;
    if (q.publish()) t.notify(0);
    DriverQueue::Used u;
    return q.pop_used_raw(&u) && u.len == 4 && *h.at(kReply) == std::byte{0};
  };
  for (auto _ : state) {
    if (!run(kMapReq, map.size) || !run(kUnmapReq, unmap.size)) {
      state.SkipWithError("virtqueue MAP/UNMAP failed");
      break;
    }
  }
  state.counters["live_mappings"] = static_cast<double>(h.dev->stats().mappings);
}

BENCHMARK(BM_VqDirectAllocFree)->Arg(1024);
BENCHMARK_TEMPLATE(BM_VqAllocFree, 1)->Arg(1024);
BENCHMARK_TEMPLATE(BM_VqAllocFree, 64)->Arg(1024);
BENCHMARK(BM_VqDriverAllocFree)->Arg(1024);
BENCHMARK(BM_VqMapUnmap)->Arg(10000);

}  // namespace
}  // namespace ioasid::bench
