// SPDX-License-Identifier: Apache-2.0
// iommu_device_hotpath_test.cc: the IommuDevice properties that are not about one request's
// answer: ALLOC_PASID / FREE_PASID through handle_request allocate no heap memory (this binary
// replaces the global operator new to count), and several threads driving two devices of one VM
// (ALLOC/FREE on both, MAP/UNMAP/translate on one) keep the host space and the device consistent
// (run under TSan in the sanitizer builds; label "concurrency"). The counting operator new lives
// in its own translation unit, iommu_device_hotpath_new.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "virtio/request_parser.hpp"

// Allocations made through the global operator new (iommu_device_hotpath_new.cc).
std::uint64_t allocation_count() noexcept;

namespace ioasid::virtio {
namespace {

std::uint8_t status(const std::byte* reply, std::size_t used) {
  return used < 4 ? 0xFF : std::to_integer<std::uint8_t>(reply[used - 4]);
}

TEST(VirtioIommuDeviceHotPath, AllocFreeAllocateNothing) {
  auto host = Space::create({}).value();
  const SetId vm = host->create_set(1, 64).value();
  LocalBackend backend(*host, vm);
  IommuDevice dev(backend, IommuDeviceConfig{});
  ASSERT_TRUE(dev.set_driver_features(dev.device_features()));
  const EncodedRequest alloc = encode_request(AllocPasidRequest{});
  const EncodedRequest free = encode_request(FreePasidRequest{1});
  const EncodedRequest bad_free = encode_request(FreePasidRequest{7});
  std::byte areply[8];
  std::byte freply[4];
  // Warm up (the space may grow its table on first use).
  ASSERT_EQ(dev.handle_request(alloc.span(), areply), 8u);
  ASSERT_EQ(dev.handle_request(free.span(), freply), 4u);
  const std::uint64_t before = allocation_count();
  for (int i = 0; i < 1000; ++i) {
    const std::size_t a = dev.handle_request(alloc.span(), areply);
    const std::size_t f = dev.handle_request(free.span(), freply);
    ASSERT_EQ(status(areply, a), 0);
    ASSERT_EQ(areply[0], std::byte{1});
    ASSERT_EQ(status(freply, f), 0);
    // A refused FREE (no log sink configured) allocates nothing either.
    ASSERT_EQ(status(freply, dev.handle_request(bad_free.span(), freply)),
              wire::virtio_iommu::to_u8(wire::virtio_iommu::Status::noent));
  }
  EXPECT_EQ(allocation_count() - before, 0u);
  // The counter does see allocations.
  auto probe = std::make_unique<int>(1);
  EXPECT_GT(allocation_count() - before, 0u);
  EXPECT_EQ(dev.stats().pasid_allocs, 1001u);
}

TEST(VirtioIommuDeviceHotPath, ConcurrentRequestsAndTranslations) {
  auto host = Space::create({}).value();
  const SetId vm = host->create_set(1, 1000).value();
  LocalBackend backend(*host, vm);
  IommuDeviceConfig cfg;
  cfg.endpoints = {{1, {}}, {2, {}}};
  IommuDevice a(backend, cfg);
  IommuDevice b(backend, cfg);
  ASSERT_TRUE(a.set_driver_features(a.device_features()));
  ASSERT_TRUE(b.set_driver_features(b.device_features()));
  std::byte r4[4];
  const EncodedRequest att = encode_request(AttachRequest{1, 1, 0});
  ASSERT_EQ(status(r4, a.handle_request(att.span(), r4)), 0);

  constexpr int kIters = 2000;
  auto pasid_worker = [&](IommuDevice& mine, IommuDevice& peer) {
    const EncodedRequest alloc = encode_request(AllocPasidRequest{});
    std::byte reply[8];
    std::byte tail[4];
    for (int i = 0; i < kIters; ++i) {
      const std::size_t used = mine.handle_request(alloc.span(), reply);
      ASSERT_EQ(status(reply, used), 0);
      Id p = 0;
      std::memcpy(&p, reply, 4);
      // Bind on one device, free on the other (global scope), unbind: released.
      const EncodedRequest bind = encode_request(BindPasidRequest{2, p, 0});
      const EncodedRequest unbind = encode_request(UnbindPasidRequest{2, p, 0});
      const EncodedRequest free = encode_request(FreePasidRequest{p});
      ASSERT_EQ(status(tail, mine.handle_request(bind.span(), tail)), 0);
      ASSERT_EQ(status(tail, peer.handle_request(free.span(), tail)), 0);
      ASSERT_EQ(status(tail, mine.handle_request(unbind.span(), tail)), 0);
    }
  };
  auto map_worker = [&] {
    std::byte tail[4];
    for (int i = 0; i < kIters; ++i) {
      const std::uint64_t va = 0x1000 * static_cast<std::uint64_t>(i % 64);
      const EncodedRequest map =
          encode_request(MapRequest{1, va, va + 0xFFF, va, wire::virtio_iommu::kMapFRead});
      const EncodedRequest unmap = encode_request(UnmapRequest{1, va, va + 0xFFF});
      ASSERT_EQ(status(tail, a.handle_request(map.span(), tail)), 0);
      ASSERT_EQ(status(tail, a.handle_request(unmap.span(), tail)), 0);
    }
  };
  std::atomic<bool> stop{false};
  auto dma_worker = [&] {
    while (!stop.load()) {
      auto t = a.translate(1, 0x1000, Access::read);
      if (t) {
        ASSERT_EQ(t->phys, 0x1000u);
      }
      (void)a.pop_fault();
    }
  };
  std::thread t1(pasid_worker, std::ref(a), std::ref(b));
  std::thread t2(pasid_worker, std::ref(b), std::ref(a));
  std::thread t3(map_worker);
  std::thread t4(dma_worker);
  t1.join();
  t2.join();
  t3.join();
  stop = true;
  t4.join();
  EXPECT_EQ(host->set_info(vm).value().count, 0u);
  EXPECT_EQ(a.stats().mappings, 0u);
  EXPECT_EQ(a.stats().binds + b.stats().binds, 0u);
  EXPECT_TRUE(host->check_invariants());
}

}  // namespace
}  // namespace ioasid::virtio
