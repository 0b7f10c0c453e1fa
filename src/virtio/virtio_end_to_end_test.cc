// SPDX-License-Identifier: Apache-2.0
// virtio_end_to_end_test.cc: two guests on one host space, each with two virtio-iommu devices and
// one VT-d vIOMMU, every PASID going guest Space -> driver (VirtioIommuGuestDriver over split
// virtqueues, or VtdGuestDriver over VCMD registers) -> device model (IommuDevice /
// VtdVcmdDevice) -> the VM's LocalBackend -> host Space (DOMAIN.md §8 items 22-25): uniqueness
// across every path and both VMs, ownership (a guest can neither free nor bind the other's
// PASIDs: S_NOENT), quotas, global scope across device types, hot-unplug with the next device of
// the group taking over, then the next group, then VM teardown.
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <set>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_guest_driver.hpp"
#include "ioasid/virtio_iommu_transport.hpp"
#include "ioasid/vtd_device.hpp"
#include "ioasid/vtd_guest_driver.hpp"
#include "vtd/internal/device_mmio.hpp"

namespace ioasid::virtio {
namespace {

constexpr std::uint32_t kQuota = 12;
constexpr std::uint64_t kGpa = 0x8000'0000;
constexpr std::uint64_t kMem = 0x4000;
constexpr std::uint32_t kEndpoint = 8;

IommuDeviceConfig device_config() {
  IommuDeviceConfig c;
  c.endpoints = {{.id = kEndpoint, .resv = {}}};
  return c;
}

// One VM: its set on the host and one backend shared by its three vIOMMU device models; inside,
// guest memory, a guest space and one driver per vIOMMU, all registered with the guest space
// (the two virtio-iommu drivers form one allocator group, the VT-d driver another, on standby).
struct Vm {
  Vm(Space& host, std::uint64_t token) {
    set = host.create_set(token, kQuota).value();
    backend = std::make_unique<LocalBackend>(host, set);
    guest = Space::create({}).value();
    gset = guest->create_set(/*owner_token=*/1, /*quota=*/1000).value();
    ram.assign(kMem, std::byte{0});
    EXPECT_TRUE(mem.add_region({kGpa, kMem, ram.data()}));
    for (int i = 0; i < 2; ++i) {
      devs[i] = std::make_unique<IommuDevice>(*backend, device_config());
      transports[i] = std::make_unique<VirtioIommuTransport>(*devs[i], mem);
      drvs[i] = std::make_unique<VirtioIommuGuestDriver>(
          transports[i]->port(), mem, kGpa + 0x1000u * i, VirtioIommuGuestDriverOptions{});
      EXPECT_TRUE(drvs[i]->register_allocator(*guest));
    }
    vtd_dev = VtdVcmdDevice::create(*backend, {}).value();
    vtd_mmio = std::make_unique<internal::DeviceMmio>(*vtd_dev);
    vtd_drv = std::make_unique<VtdGuestDriver>(*vtd_mmio, VtdGuestDriverOptions{});
    EXPECT_TRUE(vtd_drv->register_allocator(*guest));
  }
  ~Vm() {
    vtd_drv.reset();
    for (auto& d : drvs) d.reset();
  }

  SetId set;
  std::unique_ptr<LocalBackend> backend;
  std::unique_ptr<Space> guest;
  SetId gset;
  std::vector<std::byte> ram;
  GuestMemory mem;
  std::array<std::unique_ptr<IommuDevice>, 2> devs;
  std::array<std::unique_ptr<VirtioIommuTransport>, 2> transports;
  std::array<std::unique_ptr<VirtioIommuGuestDriver>, 2> drvs;
  std::unique_ptr<VtdVcmdDevice> vtd_dev;
  std::unique_ptr<internal::DeviceMmio> vtd_mmio;
  std::unique_ptr<VtdGuestDriver> vtd_drv;
};

class VirtioEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = Space::create({}).value();
    a_ = std::make_unique<Vm>(*host_, 0xA);
    b_ = std::make_unique<Vm>(*host_, 0xB);
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

TEST_F(VirtioEndToEndTest, TwoAllocatorGroupsPerGuestVirtioActive) {
  for (Vm* vm : {a_.get(), b_.get()}) {
    const SpaceStats s = vm->guest->stats();
    EXPECT_TRUE(s.custom_allocator_active);
    EXPECT_EQ(s.allocator_groups, 2u);  // the virtio-iommu pair, and VT-d on standby
    const Id id = vm->guest->alloc(vm->gset, 1, 0xFFFFF, nullptr).value();
    EXPECT_EQ(vm->drvs[0]->stats().allocs, 1u);  // the first registered device serves the group
    EXPECT_EQ(vm->vtd_drv->stats().commands, 0u);
    EXPECT_EQ(host_->query(vm->set, id).value().state, IdState::active);
  }
}

TEST_F(VirtioEndToEndTest, UniqueAcrossEveryPathAndBothVmsUpToTheQuota) {
  std::set<Id> seen;
  std::vector<Id> held_a, held_b;
  for (std::uint32_t i = 0; i < kQuota; ++i) {
    for (Vm* vm : {a_.get(), b_.get()}) {
      Id id = kInvalidId;
      switch (i % 3) {
        case 0:  // the guest space, through its active allocator (virtio-iommu device 0)
          id = vm->guest->alloc(vm->gset, 1, 0xFFFFF, nullptr).value();
          break;
        case 1:  // virtio-iommu device 1's request queue directly
          id = vm->drvs[1]->alloc_pasid().value();
          break;
        default:  // the VT-d vIOMMU's virtual command registers directly
          id = vm->vtd_drv->vcmd_alloc().value();
          break;
      }
      EXPECT_TRUE(seen.insert(id).second) << id;
      EXPECT_EQ(host_->query(vm->set, id).value().state, IdState::active);
      (vm == a_.get() ? held_a : held_b).push_back(id);
    }
  }
  EXPECT_EQ(host_->stats().live_ids, 2u * kQuota);
  // Quota reached: S_NOMEM on either virtio-iommu device, NO_PASID on VT-d, exhausted in the
  // guest space.
  for (Vm* vm : {a_.get(), b_.get()}) {
    EXPECT_EQ(vm->guest->alloc(vm->gset, 1, 0xFFFFF, nullptr).error(), Errc::exhausted);
    EXPECT_EQ(vm->drvs[1]->alloc_pasid().error(), Errc::exhausted);
    EXPECT_EQ(vm->vtd_drv->vcmd_alloc().error(), Errc::exhausted);
    EXPECT_EQ(vm->drvs[0]->stats().alloc_nomem, 1u);
    EXPECT_EQ(host_->set_info(vm->set).value().count, kQuota);
  }
  // Global scope: a PASID allocated through VT-d is freed through virtio-iommu and vice versa.
  ASSERT_TRUE(a_->drvs[1]->free_pasid(held_a[2]));  // i = 2 went through VT-d
  a_->vtd_drv->vcmd_free(held_a[1]);                // i = 1 went through virtio device 1
  EXPECT_EQ(a_->vtd_drv->stats().frees, 1u);
  EXPECT_FALSE(host_->query(a_->set, held_a[1]));
  EXPECT_FALSE(host_->query(a_->set, held_a[2]));
  const Id again = a_->drvs[0]->alloc_pasid().value();
  EXPECT_TRUE(again == held_a[1] || again == held_a[2]);
  EXPECT_FALSE(host_->query(b_->set, again));
}

TEST_F(VirtioEndToEndTest, AGuestCanNeitherFreeNorBindAnotherGuestsPasid) {
  const Id theirs = b_->guest->alloc(b_->gset, 1, 0xFFFFF, nullptr).value();
  const Id mine = a_->guest->alloc(a_->gset, 1, 0xFFFFF, nullptr).value();
  for (auto& d : a_->drvs) {
    EXPECT_EQ(d->free_pasid(theirs).error(), Errc::not_found);
    EXPECT_EQ(d->bind_pasid(kEndpoint, theirs).error(), Errc::not_found);
    EXPECT_EQ(d->unbind_pasid(kEndpoint, theirs).error(), Errc::not_found);
  }
  a_->vtd_drv->vcmd_free(theirs);
  EXPECT_EQ(a_->vtd_drv->stats().free_errors, 1u);
  EXPECT_EQ(host_->query(b_->set, theirs).value().state, IdState::active);
  EXPECT_EQ(host_->query(b_->set, theirs).value().refs, 1u);
  EXPECT_TRUE(b_->guest->find(b_->gset, theirs));
  // A PASID that exists nowhere reads the same as another VM's.
  EXPECT_EQ(a_->drvs[0]->free_pasid(0x7FFFF).error(), Errc::not_found);

  // Its own PASID A may bind (through the other device too: one space per VM), then free it:
  // FREE_PENDING until the unbind.
  ASSERT_TRUE(a_->drvs[1]->bind_pasid(kEndpoint, mine));
  EXPECT_EQ(host_->query(a_->set, mine).value().refs, 2u);
  ASSERT_TRUE(a_->drvs[0]->free_pasid(mine));
  EXPECT_EQ(host_->query(a_->set, mine).value().state, IdState::free_pending);
  ASSERT_TRUE(a_->drvs[1]->unbind_pasid(kEndpoint, mine));
  EXPECT_FALSE(host_->query(a_->set, mine));
  // B can still free its PASID.
  ASSERT_TRUE(b_->guest->free(b_->gset, theirs));
}

TEST_F(VirtioEndToEndTest, HotUnplugHandsOverToTheNextDeviceThenTheNextGroup) {
  std::vector<Id> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(a_->guest->alloc(a_->gset, 1, 0xFFFFF, nullptr).value());
  }
  EXPECT_EQ(a_->drvs[0]->stats().allocs, 4u);

  a_->drvs[0]->unregister_allocator();  // hot-unplug virtio-iommu 0 (its device stays up)
  EXPECT_EQ(a_->guest->stats().orphaned_ids, 0u);
  ASSERT_TRUE(a_->guest->free(a_->gset, ids[0]));  // allocated through device 0, freed via 1
  EXPECT_EQ(a_->drvs[1]->stats().frees, 1u);
  EXPECT_FALSE(host_->query(a_->set, ids[0]));
  const Id via1 = a_->guest->alloc(a_->gset, 1, 0xFFFFF, nullptr).value();
  EXPECT_EQ(a_->drvs[1]->stats().allocs, 1u);
  EXPECT_EQ(a_->drvs[0]->stats().requests, 4u);

  // The last virtio-iommu device leaves: the VT-d group takes over. The virtio group's IDs stay
  // valid (orphaned in the guest, still held on the host).
  a_->drvs[1].reset();
  EXPECT_EQ(a_->guest->stats().orphaned_ids, 4u);
  EXPECT_TRUE(a_->guest->stats().custom_allocator_active);
  const Id via_vtd = a_->guest->alloc(a_->gset, 1, 0xFFFFF, nullptr).value();
  EXPECT_EQ(a_->vtd_drv->stats().allocs, 1u);
  EXPECT_TRUE(host_->query(a_->set, via1));
  EXPECT_TRUE(host_->query(a_->set, via_vtd));
  EXPECT_EQ(host_->set_info(a_->set).value().count, 5u);
  // B never noticed.
  EXPECT_EQ(b_->guest->alloc(b_->gset, 1, 0xFFFFF, nullptr).value() != via_vtd, true);

  // VM teardown: destroying the VM's set frees everything it held.
  a_->vtd_drv.reset();
  a_->drvs[0].reset();
  EXPECT_TRUE(host_->destroy_set(a_->set).value());
  EXPECT_EQ(host_->stats().live_ids, 1u);  // B's
}

}  // namespace
}  // namespace ioasid::virtio
