// SPDX-License-Identifier: Apache-2.0
// vtd_end_to_end_test.cc: two guests with two vIOMMUs each on one host space, every PASID going
// guest Space -> VtdGuestDriver -> VCMD/VCRSP registers -> VtdVcmdDevice -> LocalBackend -> host
// Space and back (DOMAIN.md §8 items 18-21, 25-26): system-wide uniqueness, ownership (a guest
// freeing another guest's PASID gets INVALID_PASID and the PASID survives), quota exhaustion
// (NO_PASID), hot-unplug of a vIOMMU, VM teardown. Run for both layouts and for a mixed host.
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <set>
#include <vector>

#include "internal/device_mmio.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/vtd_device.hpp"
#include "ioasid/vtd_guest_driver.hpp"

namespace ioasid {
namespace {

using wire::vtd::VcmdLayout;

constexpr std::uint32_t kQuota = 8;

// One VM: its set on the host, one backend shared by its two vIOMMU device models, and inside it
// a guest space with one driver per vIOMMU, all registered (one allocator group).
struct Vm {
  Vm(Space& host, std::uint64_t token, VcmdLayout layout) {
    set = host.create_set(token, kQuota).value();
    backend = std::make_unique<LocalBackend>(host, set);
    guest = Space::create({}).value();
    gset = guest->create_set(/*owner_token=*/1, /*quota=*/1000).value();
    for (int i = 0; i < 2; ++i) {
      devs[i] = VtdVcmdDevice::create(*backend, {.layout = layout}).value();
      mmios[i] = std::make_unique<internal::DeviceMmio>(*devs[i]);
      drvs[i] =
          std::make_unique<VtdGuestDriver>(*mmios[i], VtdGuestDriverOptions{.layout = layout});
      EXPECT_TRUE(drvs[i]->register_allocator(*guest));
    }
  }
  ~Vm() {
    for (auto& d : drvs) d.reset();
  }

  SetId set;
  std::unique_ptr<LocalBackend> backend;
  std::unique_ptr<Space> guest;
  SetId gset;
  std::array<std::unique_ptr<VtdVcmdDevice>, 2> devs;
  std::array<std::unique_ptr<internal::DeviceMmio>, 2> mmios;
  std::array<std::unique_ptr<VtdGuestDriver>, 2> drvs;
};

class VtdEndToEndTest : public ::testing::TestWithParam<std::array<VcmdLayout, 2>> {
 protected:
  void SetUp() override {
    host_ = Space::create({}).value();
    a_ = std::make_unique<Vm>(*host_, 0xA, GetParam()[0]);
    b_ = std::make_unique<Vm>(*host_, 0xB, GetParam()[1]);
  }
  void TearDown() override {
    EXPECT_TRUE(a_->guest->check_invariants());
    EXPECT_TRUE(b_->guest->check_invariants());
    a_.reset();
    b_.reset();
    EXPECT_TRUE(host_->check_invariants());
  }
  std::unique_ptr<Space> host_;
  std::unique_ptr<Vm> a_, b_;
};

TEST_P(VtdEndToEndTest, OneAllocatorGroupPerGuest) {
  for (Vm* vm : {a_.get(), b_.get()}) {
    const SpaceStats s = vm->guest->stats();
    EXPECT_TRUE(s.custom_allocator_active);
    EXPECT_EQ(s.allocator_groups, 1u);  // both vIOMMUs share the callbacks
  }
}

TEST_P(VtdEndToEndTest, SystemWideUniquenessAndQuota) {
  std::set<Id> seen;
  std::vector<Id> ids_a, ids_b;
  for (std::uint32_t i = 0; i < kQuota; ++i) {
    for (Vm* vm : {a_.get(), b_.get()}) {
      const Id id = vm->guest->alloc(vm->gset, 1, 0xFFFFF, nullptr).value();
      EXPECT_TRUE(seen.insert(id).second) << id;
      // The guest's PASID is the host PASID, held by the VM's set.
      EXPECT_EQ(host_->query(vm->set, id).value().state, IdState::active);
      (vm == a_.get() ? ids_a : ids_b).push_back(id);
    }
  }
  // Quota reached: NO_PASID on the registers, exhausted (ENOSPC) in the guest.
  for (Vm* vm : {a_.get(), b_.get()}) {
    EXPECT_EQ(vm->guest->alloc(vm->gset, 1, 0xFFFFF, nullptr).error(), Errc::exhausted);
    EXPECT_EQ(vm->devs[0]->stats().alloc_no_pasid, 1u);
    EXPECT_EQ(vm->drvs[0]->stats().alloc_no_pasid, 1u);
    EXPECT_EQ(host_->set_info(vm->set).value().count, kQuota);
  }
  // Freed capacity comes back, system-wide unique still.
  ASSERT_TRUE(a_->guest->free(a_->gset, ids_a[3]));
  const Id again = a_->guest->alloc(a_->gset, 1, 0xFFFFF, nullptr).value();
  EXPECT_EQ(again, ids_a[3]);  // the host's lowest free
  EXPECT_EQ(host_->stats().live_ids, 2 * kQuota);
}

TEST_P(VtdEndToEndTest, AGuestCannotFreeAnotherGuestsPasid) {
  const Id theirs = b_->guest->alloc(b_->gset, 1, 0xFFFFF, nullptr).value();
  // Guest A's vIOMMU is asked (by a buggy or hostile guest) to free B's PASID.
  a_->drvs[1]->vcmd_free(theirs);
  EXPECT_EQ(a_->devs[1]->stats().free_invalid_pasid, 1u);
  EXPECT_EQ(a_->drvs[1]->stats().free_errors, 1u);
  EXPECT_EQ(host_->query(b_->set, theirs).value().state, IdState::active);
  EXPECT_TRUE(b_->guest->find(b_->gset, theirs));
  // The raw register answer is INVALID_PASID.
  const auto& l = a_->devs[0]->layout();
  a_->devs[0]->mmio_write(l.vcmd_offset, 8,
                          wire::vtd::encode_vcmd(l, wire::vtd::kVcmdFreePasid, theirs));
  EXPECT_EQ(a_->devs[0]->mmio_read(l.vcrsp_offset, 8),
            wire::vtd::encode_vcrsp(l, false, l.sc_invalid_pasid, 0));
  EXPECT_EQ(host_->query(b_->set, theirs).value().state, IdState::active);
  // B can still free it.
  ASSERT_TRUE(b_->guest->free(b_->gset, theirs));
  EXPECT_EQ(host_->stats().live_ids, 0u);
}

TEST_P(VtdEndToEndTest, HotUnplugHandsOverToTheNextVIommu) {
  std::vector<Id> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(a_->guest->alloc(a_->gset, 1, 0xFFFFF, nullptr).value());
  EXPECT_EQ(a_->devs[0]->stats().allocs, 4u);  // the first registered vIOMMU serves the group
  EXPECT_EQ(a_->devs[1]->stats().commands, 0u);

  a_->drvs[0]->unregister_allocator();  // hot-unplug vIOMMU 0 (its device model stays)
  const SpaceStats s = a_->guest->stats();
  EXPECT_TRUE(s.custom_allocator_active);
  EXPECT_EQ(s.orphaned_ids, 0u);
  for (Id id : ids) {
    EXPECT_TRUE(a_->guest->find(a_->gset, id)) << id;
    EXPECT_TRUE(host_->query(a_->set, id)) << id;
  }
  // Frees of IDs allocated through vIOMMU 0 and new allocations go through vIOMMU 1.
  ASSERT_TRUE(a_->guest->free(a_->gset, ids[0]));
  EXPECT_EQ(a_->devs[1]->stats().frees, 1u);
  EXPECT_FALSE(host_->query(a_->set, ids[0]));
  const Id next = a_->guest->alloc(a_->gset, 1, 0xFFFFF, nullptr).value();
  EXPECT_EQ(a_->devs[1]->stats().allocs, 1u);
  EXPECT_EQ(a_->devs[0]->stats().commands, 4u);
  EXPECT_TRUE(host_->query(a_->set, next));

  // Removing a vIOMMU frees nothing on the host; the last one leaving orphans the guest's IDs
  // (still valid, released without a command).
  a_->drvs[1]->unregister_allocator();
  EXPECT_EQ(a_->guest->stats().orphaned_ids, 4u);
  EXPECT_EQ(host_->set_info(a_->set).value().count, 4u);
  // VM teardown: destroying the VM's set frees everything it held.
  EXPECT_TRUE(host_->destroy_set(a_->set).value());
  EXPECT_EQ(host_->stats().live_ids, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, VtdEndToEndTest,
    ::testing::Values(std::array<VcmdLayout, 2>{VcmdLayout::legacy, VcmdLayout::legacy},
                      std::array<VcmdLayout, 2>{VcmdLayout::rev3_3, VcmdLayout::rev3_3},
                      std::array<VcmdLayout, 2>{VcmdLayout::legacy, VcmdLayout::rev3_3}),
    [](const auto& p) {
      return std::string(wire::vtd::layout_spec(p.param[0]).name) + "_" +
             wire::vtd::layout_spec(p.param[1]).name;
    });

}  // namespace
}  // namespace ioasid
