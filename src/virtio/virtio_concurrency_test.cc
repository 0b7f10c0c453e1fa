// SPDX-License-Identifier: Apache-2.0
// virtio_concurrency_test.cc: the device on its own thread. A worker thread processes the queues
// of two virtio-iommu devices (deferred kicks, as a VMM's I/O thread does) while guest threads
// allocate and free through the guest space (the drivers on both devices), a third thread
// triggers DMA faults and a fourth reaps fault events: the memory ordering of the rings (acquire /
// release on the idx words, fences for suppression) under TSan, and the counts at the end.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_guest_driver.hpp"
#include "ioasid/virtio_iommu_transport.hpp"

namespace ioasid::virtio {
namespace {

constexpr std::uint64_t kGpa = 0x2000'0000;
constexpr std::uint64_t kMem = 0x4000;

// Processes every kicked queue of the transports on one thread.
class Worker {
 public:
  explicit Worker(std::vector<VirtioTransport*> ts) : ts_(std::move(ts)) {
    for (VirtioTransport* t : ts_) {
      t->set_kick_handler([this](unsigned) {
        kicked_.store(true, std::memory_order_release);
        kicked_.notify_one();
      });
    }
    th_ = std::thread([this] {
      while (!stop_.load(std::memory_order_acquire)) {
        kicked_.wait(false, std::memory_order_acquire);
        kicked_.store(false, std::memory_order_relaxed);
        for (VirtioTransport* t : ts_) t->process_pending();
      }
    });
  }
  ~Worker() {
    stop_.store(true, std::memory_order_release);
    kicked_.store(true, std::memory_order_release);
    kicked_.notify_one();
    th_.join();
  }

 private:
  std::vector<VirtioTransport*> ts_;
  std::atomic<bool> kicked_{false}, stop_{false};
  std::thread th_;
};

TEST(VirtioConcurrencyTest, DeviceThreadAgainstGuestThreads) {
  auto host = Space::create({}).value();
  const SetId set = host->create_set(5, 1000).value();
  LocalBackend backend(*host, set);
  IommuDeviceConfig cfg;
  cfg.endpoints = {{.id = 1, .resv = {}}};
  IommuDevice dev0(backend, cfg), dev1(backend, cfg);
  std::vector<std::byte> ram(kMem);
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region({kGpa, kMem, ram.data()}));
  const VirtioTransportOptions to{.deferred_notify = true};
  VirtioIommuTransport t0(dev0, mem, to), t1(dev1, mem, to);
  Worker worker({&t0.transport(), &t1.transport()});
  auto guest = Space::create({}).value();
  const SetId gs = guest->create_set(1, 1000).value();
  VirtioIommuGuestDriver d0(t0.port(), mem, kGpa, {}), d1(t1.port(), mem, kGpa + 0x1000, {});
  ASSERT_TRUE(d0.register_allocator(*guest));
  ASSERT_TRUE(d1.register_allocator(*guest));
  ASSERT_TRUE(d1.attach(1, 1));

  constexpr int kOps = 300;
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int g = 0; g < 2; ++g) {
    threads.emplace_back([&] {
      std::vector<Id> mine;
      for (int i = 0; i < kOps; ++i) {
        auto id = guest->alloc(gs, 1, 0xFFFFF, nullptr);
        if (!id) {
          failed = true;
          return;
        }
        mine.push_back(*id);
        if (i % 3 == 2) {
          if (!guest->free(gs, mine.front())) failed = true;
          mine.erase(mine.begin());
        }
      }
      for (Id id : mine) {
        if (!guest->free(gs, id)) failed = true;
      }
    });
  }
  std::atomic<bool> faults_done{false};
  threads.emplace_back([&] {
    for (int i = 0; i < kOps; ++i) (void)dev1.translate(1, 0x1000u * i, Access::read);
    faults_done = true;
  });
  std::atomic<std::uint64_t> events{0};
  threads.emplace_back([&] {
    for (;;) {
      const bool done = faults_done.load();
      while (d1.pop_event()) events.fetch_add(1);
      if (done && !d1.pop_event()) break;
      std::this_thread::yield();
    }
  });
  for (auto& th : threads) th.join();
  // Faults raised after the reaper's last look are still queued: reap them now. The worker thread
  // delivers them when it next runs, which on a loaded machine can take longer than a fixed number
  // of yields: wait for them by time (bounded, so a lost event still fails the test).
  std::uint64_t dropped = dev1.stats().faults_dropped;  // the device's queue was full
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (events.load() + dropped < kOps && std::chrono::steady_clock::now() < until) {
    while (d1.pop_event()) events.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    dropped = dev1.stats().faults_dropped;
  }
  EXPECT_FALSE(failed.load());
  EXPECT_EQ(events.load() + dropped, static_cast<std::uint64_t>(kOps));
  EXPECT_GT(events.load(), 0u);
  EXPECT_EQ(host->set_info(set).value().count, 0u);
  EXPECT_EQ(d0.stats().allocs, 2u * kOps);
  EXPECT_EQ(d0.stats().frees, 2u * kOps);
  EXPECT_EQ(d0.stats().timeouts + d1.stats().timeouts, 0u);
  EXPECT_FALSE(t0.transport().get_status() & kStatusNeedsReset);
  EXPECT_TRUE(guest->check_invariants());
}

}  // namespace
}  // namespace ioasid::virtio
