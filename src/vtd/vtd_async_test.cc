// SPDX-License-Identifier: Apache-2.0
// vtd_async_test.cc: VtdVcmdDevice in asynchronous mode, where a worker completes each command
// and the guest truly polls VCRSP.IP (VT-d 3.0 §10.4.45 / 3.3 §10.4.44; DOMAIN.md §8 item 19):
// writes while a command is in progress are ignored (full and split), the result appears with IP
// clear, the guest driver polls to completion, and several guest threads on two vIOMMUs get
// system-wide unique PASIDs. Labelled "concurrency": also runs under TSan.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "internal/device_mmio.hpp"
#include "internal/fake_vtd.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/vtd_device.hpp"
#include "ioasid/vtd_guest_driver.hpp"

namespace ioasid {
namespace {

using namespace wire::vtd;  // NOLINT(build/namespaces): the register vocabulary

class VtdAsyncTest : public ::testing::TestWithParam<VcmdLayout> {
 protected:
  void SetUp() override {
    host_ = Space::create({}).value();
    vm_ = host_->create_set(1, 1000).value();
    backend_ = std::make_unique<LocalBackend>(*host_, vm_);
  }
  void TearDown() override { EXPECT_TRUE(host_->check_invariants()); }
  const LayoutSpec& l() const { return layout_spec(GetParam()); }

  std::unique_ptr<Space> host_;
  SetId vm_;
  std::unique_ptr<LocalBackend> backend_;
};

TEST_P(VtdAsyncTest, WritesWhileInProgressAreIgnored) {
  internal::ScriptedBackend gated(*backend_);
  auto dev = VtdVcmdDevice::create(
                 gated, {.layout = GetParam(), .completion = VtdCompletion::asynchronous})
                 .value();
  const std::uint64_t alloc = encode_vcmd(l(), kVcmdAllocPasid);
  gated.close_gate();
  dev->mmio_write(l().vcmd_offset, 8, alloc);
  gated.wait_for_waiter();  // the worker is inside the backend call: IP must be set
  EXPECT_EQ(dev->mmio_read(l().vcrsp_offset, 8), kVcrspIp);
  EXPECT_EQ(dev->mmio_read(l().vcrsp_offset, 4), kVcrspIp);
  EXPECT_FALSE(dev->wait_idle(std::chrono::milliseconds(1)));

  const std::uint64_t other = encode_vcmd(l(), kVcmdFreePasid, 1);
  dev->mmio_write(l().vcmd_offset, 8, other);               // full width
  dev->mmio_write(l().vcmd_offset, 4, other & 0xFFFFFFFF);  // low half: not latched
  dev->mmio_write(l().vcmd_offset + 4, 4, other >> 32);     // high half: orphan
  EXPECT_EQ(dev->stats().ignored_busy, 2u);
  EXPECT_EQ(dev->stats().split_orphans, 1u);
  EXPECT_EQ(dev->mmio_read(l().vcmd_offset, 8), alloc);  // still the command in progress

  gated.open_gate();
  ASSERT_TRUE(dev->wait_idle(std::chrono::seconds(10)));
  EXPECT_EQ(dev->mmio_read(l().vcrsp_offset, 8), encode_vcrsp(l(), false, 0, 1));
  EXPECT_EQ(dev->stats().commands, 1u);
  EXPECT_EQ(host_->stats().live_ids, 1u);  // the FREE never ran

  // The device accepts commands again.
  dev->mmio_write(l().vcmd_offset, 8, other);
  ASSERT_TRUE(dev->wait_idle(std::chrono::seconds(10)));
  EXPECT_EQ(dev->mmio_read(l().vcrsp_offset, 8), encode_vcrsp(l(), false, 0, 0));
  EXPECT_EQ(host_->stats().live_ids, 0u);
}

TEST_P(VtdAsyncTest, DestroyingWithACommandInFlightCompletesIt) {
  internal::ScriptedBackend gated(*backend_);
  auto dev = VtdVcmdDevice::create(
                 gated, {.layout = GetParam(), .completion = VtdCompletion::asynchronous})
                 .value();
  gated.close_gate();
  dev->mmio_write(l().vcmd_offset, 8, encode_vcmd(l(), kVcmdAllocPasid));
  gated.wait_for_waiter();
  std::thread opener([&gated] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    gated.open_gate();
  });
  dev.reset();
  opener.join();
  EXPECT_EQ(host_->stats().live_ids, 1u);  // the command ran; the VM's set owns the PASID
}

TEST_P(VtdAsyncTest, GuestDriverPollsUntilTheWorkerCompletes) {
  auto dev = VtdVcmdDevice::create(*backend_, {.layout = GetParam(),
                                               .completion = VtdCompletion::asynchronous,
                                               .async_delay = std::chrono::microseconds(200)})
                 .value();
  internal::DeviceMmio mmio(*dev);
  auto guest = Space::create({}).value();  // outlives the driver's registration
  const SetId gset = guest->create_set(1, 100).value();
  VtdGuestDriver drv(mmio, {.layout = GetParam()});
  ASSERT_TRUE(drv.register_allocator(*guest));
  for (int i = 0; i < 10; ++i) {
    const Id id = guest->alloc(gset, 1, 0xFFFFF, nullptr).value();
    EXPECT_TRUE(host_->query(vm_, id));
    ASSERT_TRUE(guest->free(gset, id));
    EXPECT_FALSE(host_->query(vm_, id));
  }
  const VtdGuestDriverStats s = drv.stats();
  EXPECT_EQ(s.commands, 20u);
  EXPECT_GT(s.polls, 2 * s.commands);  // IP was seen set: the guest really polled
  EXPECT_EQ(s.timeouts, 0u);
  drv.unregister_allocator();
  EXPECT_TRUE(guest->check_invariants());
}

TEST_P(VtdAsyncTest, ConcurrentGuestThreadsOnTwoVIommus) {
  auto guest = Space::create({}).value();  // outlives the drivers' registrations
  const SetId gset = guest->create_set(1, 1000).value();
  std::unique_ptr<VtdVcmdDevice> devs[2];
  std::unique_ptr<internal::DeviceMmio> mmios[2];
  std::unique_ptr<VtdGuestDriver> drvs[2];
  for (int i = 0; i < 2; ++i) {
    devs[i] = VtdVcmdDevice::create(
                  *backend_, {.layout = GetParam(), .completion = VtdCompletion::asynchronous})
                  .value();
    mmios[i] = std::make_unique<internal::DeviceMmio>(*devs[i]);
    drvs[i] =
        std::make_unique<VtdGuestDriver>(*mmios[i], VtdGuestDriverOptions{.layout = GetParam()});
    ASSERT_TRUE(drvs[i]->register_allocator(*guest));
  }
  // A second host user hammers the same host space directly.
  const SetId host_user = host_->create_set(2, 1000).value();
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  std::mutex mu;
  std::set<Id> held_by_guest;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Id> mine;
      for (int r = 0; r < kRounds; ++r) {
        if (t == 0) {
          // The host user.
          auto id = host_->alloc(host_user, 1, 0xFFFFF, nullptr);
          if (!id) {
            ++failures;
            continue;
          }
          if (host_->query(vm_, *id)) ++failures;  // never one of the VM's PASIDs
          if (!host_->free(host_user, *id)) ++failures;
          continue;
        }
        auto id = guest->alloc(gset, 1, 0xFFFFF, nullptr);
        if (!id) {
          ++failures;
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!held_by_guest.insert(*id).second) ++failures;
        }
        mine.push_back(*id);
        if (r % 3 == 2) {
          const Id victim = mine.front();
          mine.erase(mine.begin());
          {
            std::lock_guard<std::mutex> lock(mu);
            held_by_guest.erase(victim);
          }
          if (!guest->free(gset, victim)) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(host_->set_info(vm_).value().count, held_by_guest.size());
  for (Id id : held_by_guest) EXPECT_TRUE(host_->query(vm_, id)) << id;
  for (auto& d : drvs) d->unregister_allocator();
  EXPECT_TRUE(guest->check_invariants());
}

INSTANTIATE_TEST_SUITE_P(Layouts, VtdAsyncTest,
                         ::testing::Values(VcmdLayout::legacy, VcmdLayout::rev3_3),
                         [](const auto& p) { return std::string(layout_spec(p.param).name); });

}  // namespace
}  // namespace ioasid
