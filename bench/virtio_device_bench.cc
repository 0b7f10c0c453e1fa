// SPDX-License-Identifier: Apache-2.0
// virtio_device_bench.cc: costs of the virtio-iommu device model core (IommuDevice), registered
// into ioasid_bench:
//   - BM_VirtioAllocFree: one ALLOC_PASID + FREE_PASID pair through handle_request (parse, status
//     table, reply encoding) on a LocalBackend whose set holds N live IDs, against
//     BM_VirtioDirectAllocFree, the same pair straight on the LocalBackend in the same run.
//   - BM_VirtioMapUnmap: MAP + UNMAP of one 4 KiB page through handle_request in a domain that
//     holds N live 4 KiB mappings (the new page lands in the middle of them), and
//     BM_VirtioIntervalMap, the same pair on the domain's interval map alone.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "virtio/internal/interval_map.hpp"
#include "virtio/request_parser.hpp"

namespace ioasid::bench {
namespace {

using virtio::IommuDevice;
using virtio::IommuDeviceConfig;
namespace vi = wire::virtio_iommu;

constexpr std::uint32_t kPasidMax = 0xFFFFF;
constexpr std::uint64_t kPage = 0x1000;

struct VmFixture {
  std::unique_ptr<Space> space;
  SetId set;
  std::unique_ptr<LocalBackend> backend;

  // A host space with one VM set holding n live IDs (1..n).
  bool init(std::uint32_t n) {
    space = Space::create(SpaceConfig{}).value();
    set = space->create_set(1, kPasidMax).value();
    backend = std::make_unique<LocalBackend>(*space, set);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (!backend->alloc(1, kPasidMax)) return false;
    }
    return true;
  }
};

std::uint8_t tail_status(const std::byte* reply, std::size_t used) {
  return used < 4 ? 0xFF : std::to_integer<std::uint8_t>(reply[used - 4]);
}

void BM_VirtioAllocFree(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  VmFixture vm;
  if (!vm.init(n)) return state.SkipWithError("fill failed");
  IommuDevice dev(*vm.backend, IommuDeviceConfig{});
  if (!dev.set_driver_features(dev.device_features())) return state.SkipWithError("features");
  const virtio::EncodedRequest alloc = virtio::encode_request(virtio::AllocPasidRequest{});
  const virtio::EncodedRequest free = virtio::encode_request(virtio::FreePasidRequest{n + 1});
  std::byte areply[8];
  std::byte freply[4];
  for (auto _ : state) {
    const std::size_t a = dev.handle_request(alloc.span(), areply);
    const std::size_t f = dev.handle_request(free.span(), freply);
    if (a != 8 || areply[0] != std::byte{static_cast<std::uint8_t>(n + 1)} ||
        tail_status(areply, a) != 0 || tail_status(freply, f) != 0) {
      state.SkipWithError("ALLOC/FREE failed");
      break;
    }
  }
}

void BM_VirtioDirectAllocFree(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  VmFixture vm;
  if (!vm.init(n)) return state.SkipWithError("fill failed");
  HostBackend& b = *vm.backend;
  for (auto _ : state) {
    const Result<Id> id = b.alloc(1, kPasidMax);
    if (!id || *id != n + 1 || !b.free(*id)) {
      state.SkipWithError("alloc/free failed");
      break;
    }
  }
}

void BM_VirtioMapUnmap(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  VmFixture vm;
  if (!vm.init(0)) return state.SkipWithError("space");
  IommuDeviceConfig cfg;
  cfg.endpoints = {{1, {}}};
  cfg.max_mappings = n + 1;
  IommuDevice dev(*vm.backend, cfg);
  if (!dev.set_driver_features(dev.device_features())) return state.SkipWithError("features");
  std::byte reply[4];
  auto run = [&](const virtio::Request& r) {
    const virtio::EncodedRequest e = virtio::encode_request(r);
    return tail_status(reply, dev.handle_request(e.span(), reply));
  };
  if (run(virtio::AttachRequest{1, 1, 0}) != 0) return state.SkipWithError("attach");
  // Live mappings on even pages: [0, 2n) pages; the benchmark's page is an odd one in the middle.
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t va = 2 * i * kPage;
    if (run(virtio::MapRequest{1, va, va + kPage - 1, va, vi::kMapFRead | vi::kMapFWrite}) != 0) {
      return state.SkipWithError("fill map");
    }
  }
  const std::uint64_t va = (n | 1) * kPage;
  const virtio::EncodedRequest map = virtio::encode_request(
      virtio::MapRequest{1, va, va + kPage - 1, va, vi::kMapFRead | vi::kMapFWrite});
  const virtio::EncodedRequest unmap =
      virtio::encode_request(virtio::UnmapRequest{1, va, va + kPage - 1});
  std::byte mreply[4];
  std::byte ureply[4];
  for (auto _ : state) {
    const std::size_t m = dev.handle_request(map.span(), mreply);
    const std::size_t u = dev.handle_request(unmap.span(), ureply);
    if (tail_status(mreply, m) != 0 || tail_status(ureply, u) != 0) {
      state.SkipWithError("MAP/UNMAP failed");
      break;
    }
  }
  state.counters["live_mappings"] = static_cast<double>(dev.stats().mappings);
}

void BM_VirtioIntervalMap(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  virtio::internal::IntervalMap map;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t va = 2 * i * kPage;
    (void)map.insert({va, va + kPage - 1, va, 3});
  }
  const std::uint64_t va = (n | 1) * kPage;
  for (auto _ : state) {
    std::size_t removed = 0;
    if (map.insert({va, va + kPage - 1, va, 3}) != virtio::internal::IntervalMap::Insert::ok ||
        map.erase(va, va + kPage - 1, &removed) != virtio::internal::IntervalMap::Erase::ok ||
        removed != 1) {
      state.SkipWithError("insert/erase failed");
      break;
    }
  }
}

BENCHMARK(BM_VirtioAllocFree)->Arg(1024);
BENCHMARK(BM_VirtioDirectAllocFree)->Arg(1024);
BENCHMARK(BM_VirtioMapUnmap)->Arg(10000);
BENCHMARK(BM_VirtioIntervalMap)->Arg(10000);

}  // namespace
}  // namespace ioasid::bench
