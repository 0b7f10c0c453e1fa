// SPDX-License-Identifier: Apache-2.0
// vtd_guest_driver_test.cc: VtdGuestDriver against the device model (DOMAIN.md §4.4, §8 items
// 20-21): capability gating, the exact MMIO sequence of the Linux v5.8-v6.3 driver for both
// layouts, status decoding, the bounded poll (timeout instead of a panic, late responses), the
// allocator callbacks' range and private-data rules, and host answers outside [min, max] caught
// end to end by the guest space.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
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
using internal::MmioAccess;

struct LogCapture {
  std::vector<std::string> lines;
  static void sink(void* opaque, LogLevel, const char* message) {
    static_cast<LogCapture*>(opaque)->lines.emplace_back(message);
  }
  bool contains(const std::string& s) const {
    for (const auto& l : lines) {
      if (l.find(s) != std::string::npos) return true;
    }
    return false;
  }
};

class VtdGuestDriverTest : public ::testing::TestWithParam<VcmdLayout> {
 protected:
  void SetUp() override {
    host_ = Space::create({}).value();
    vm_ = host_->create_set(1, 16).value();
    backend_ = std::make_unique<LocalBackend>(*host_, vm_);
    scripted_ = std::make_unique<internal::ScriptedBackend>(*backend_);
    dev_ = VtdVcmdDevice::create(*scripted_, {.layout = GetParam()}).value();
    mmio_ = std::make_unique<internal::DeviceMmio>(*dev_);
    rec_ = std::make_unique<internal::RecordingMmio>(*mmio_);
    guest_ = Space::create({}).value();
    gset_ = guest_->create_set(100, 1000).value();
    drv_ = std::make_unique<VtdGuestDriver>(*rec_, options());
  }
  void TearDown() override {
    drv_.reset();
    EXPECT_TRUE(host_->check_invariants());
    EXPECT_TRUE(guest_->check_invariants());
  }
  VtdGuestDriverOptions options() {
    return {.layout = GetParam(),
            .poll_timeout = std::chrono::milliseconds(50),
            .log_sink = &LogCapture::sink,
            .log_opaque = &log_};
  }
  const LayoutSpec& l() const { return layout_spec(GetParam()); }

  LogCapture log_;
  std::unique_ptr<Space> host_;
  SetId vm_;
  std::unique_ptr<LocalBackend> backend_;
  std::unique_ptr<internal::ScriptedBackend> scripted_;
  std::unique_ptr<VtdVcmdDevice> dev_;
  std::unique_ptr<internal::DeviceMmio> mmio_;
  std::unique_ptr<internal::RecordingMmio> rec_;
  std::unique_ptr<Space> guest_;
  SetId gset_;
  std::unique_ptr<VtdGuestDriver> drv_;
};

TEST_P(VtdGuestDriverTest, ProbeReadsCapEcapVccap) {
  EXPECT_FALSE(drv_->vcmd_capable());
  EXPECT_EQ(drv_->vcmd_alloc().error(), Errc::unsupported);  // nothing probed yet
  EXPECT_TRUE(rec_->log.empty());
  EXPECT_TRUE(drv_->probe());
  const std::vector<MmioAccess> expected = {
      {'r', kCapRegOffset, kCapCm},
      {'r', kEcapRegOffset, kEcapPasid | kEcapSmts | kEcapVcs},
      {'r', l().vccap_offset, kVccapPas}};
  EXPECT_EQ(rec_->log, expected);
  EXPECT_EQ(drv_->cap(), kCapCm);
  EXPECT_EQ(drv_->vccap(), kVccapPas);
}

// Linux v5.8-v6.3 vcmd_alloc_pasid / vcmd_free_pasid: one 64-bit VCMD write, then 64-bit VCRSP
// reads until IP clears; nothing else.
TEST_P(VtdGuestDriverTest, LinuxAccessSequenceEndToEnd) {
  ASSERT_TRUE(drv_->register_allocator(*guest_));
  rec_->log.clear();
  int priv = 0;
  const Id pasid = guest_->alloc(gset_, 1, 0xFFFFF, &priv).value();
  EXPECT_EQ(pasid, 1u);
  std::vector<MmioAccess> expected = {{'w', l().vcmd_offset, 1},
                                      {'r', l().vcrsp_offset, encode_vcrsp(l(), false, 0, 1)}};
  EXPECT_EQ(rec_->log, expected);
  EXPECT_EQ(host_->query(vm_, pasid).value().state, IdState::active);
  EXPECT_EQ(guest_->find(gset_, pasid).value(), &priv);

  rec_->log.clear();
  ASSERT_TRUE(guest_->set_data(pasid, nullptr));
  ASSERT_TRUE(guest_->free(gset_, pasid));
  expected = {{'w', l().vcmd_offset, encode_vcmd(l(), kVcmdFreePasid, pasid)},
              {'r', l().vcrsp_offset, 0}};
  EXPECT_EQ(rec_->log, expected);
  EXPECT_FALSE(host_->query(vm_, pasid));
  EXPECT_EQ(drv_->stats().allocs, 1u);
  EXPECT_EQ(drv_->stats().frees, 1u);
}

TEST_P(VtdGuestDriverTest, SplitWritesDriver) {
  VtdGuestDriverOptions o = options();
  o.split_writes = true;
  VtdGuestDriver split(*rec_, o);
  ASSERT_TRUE(split.probe());
  ASSERT_TRUE(host_->alloc(vm_, 0xFEDCB, 0xFEDCB, nullptr));
  rec_->log.clear();
  split.vcmd_free(0xFEDCB);
  const std::uint64_t cmd = encode_vcmd(l(), kVcmdFreePasid, 0xFEDCB);
  ASSERT_GE(rec_->log.size(), 3u);
  EXPECT_EQ(rec_->log[0], (MmioAccess{'h', l().vcmd_offset, cmd & 0xFFFFFFFF}));
  EXPECT_EQ(rec_->log[1], (MmioAccess{'h', l().vcmd_offset + 4, cmd >> 32}));
  EXPECT_FALSE(host_->query(vm_, 0xFEDCB));
  EXPECT_EQ(split.vcmd_alloc().value(), 1u);
}

TEST_P(VtdGuestDriverTest, GatingNeedsCmSmtsVcsPas) {
  struct Case {
    std::uint64_t cap, ecap, vccap;
    bool ok;
  };
  const std::uint64_t all_ecap = kEcapPasid | kEcapSmts | kEcapVcs;
  const Case cases[] = {
      {kCapCm, all_ecap, kVccapPas, true},
      {0, all_ecap, kVccapPas, false},                     // a host (no caching mode)
      {kCapCm, kEcapPasid | kEcapVcs, kVccapPas, false},   // no scalable mode
      {kCapCm, kEcapPasid | kEcapSmts, kVccapPas, false},  // no VCCAP register
      {kCapCm, all_ecap, 0, false},                        // no PASID commands
      {kCapCm, kEcapSmts | kEcapVcs, kVccapPas, true},     // ECAP.PASID is not part of the gate
  };
  for (const Case& c : cases) {
    auto dev =
        VtdVcmdDevice::create(
            *backend_, {.layout = GetParam(), .cap = c.cap, .ecap = c.ecap, .vccap = c.vccap})
            .value();
    internal::DeviceMmio mmio(*dev);
    internal::RecordingMmio rec(mmio);
    auto guest = Space::create({}).value();
    const SetId set = guest->create_set(1, 10).value();
    VtdGuestDriver drv(rec, options());
    const Result<void> r = drv.register_allocator(*guest);
    EXPECT_EQ(r.has_value(), c.ok) << c.cap << " " << c.ecap << " " << c.vccap;
    if (!c.ok) {
      EXPECT_EQ(r.error(), Errc::unsupported);
      EXPECT_FALSE(guest->stats().custom_allocator_active);
      // Allocation stays with the guest's default allocator: the host sees nothing.
      EXPECT_EQ(guest->alloc(set, 1, 0xFFFFF, nullptr).value(), 1u);
      EXPECT_EQ(dev->stats().commands, 0u);
      EXPECT_EQ(drv.vcmd_alloc().error(), Errc::unsupported);
    } else {
      EXPECT_TRUE(guest->stats().custom_allocator_active);
      const Id id = guest->alloc(set, 1, 0xFFFFF, nullptr).value();
      EXPECT_TRUE(host_->query(vm_, id));
      ASSERT_TRUE(guest->free(set, id));
      EXPECT_FALSE(host_->query(vm_, id));
    }
    // VCCAP is read only when ECAP.VCS says the register exists.
    bool read_vccap = false;
    for (const MmioAccess& a : rec.log) read_vccap |= a.offset == l().vccap_offset;
    EXPECT_EQ(read_vccap, (c.ecap & kEcapVcs) != 0);
  }
}

TEST_P(VtdGuestDriverTest, RegistrationRules) {
  ASSERT_TRUE(drv_->register_allocator(*guest_));
  EXPECT_TRUE(drv_->registered());
  EXPECT_EQ(drv_->register_allocator(*guest_).error(), Errc::exists);
  drv_->unregister_allocator();
  EXPECT_FALSE(drv_->registered());
  drv_->unregister_allocator();  // no-op
  // The default allocator holds an ID: the first custom allocator is refused (Linux -EAGAIN).
  ASSERT_TRUE(guest_->alloc(gset_, 1, 10, nullptr));
  EXPECT_EQ(drv_->register_allocator(*guest_).error(), Errc::try_again);
  EXPECT_FALSE(drv_->registered());
}

TEST_P(VtdGuestDriverTest, StatusDecoding) {
  ASSERT_TRUE(drv_->probe());
  scripted_->alloc_error = Errc::quota_exceeded;
  EXPECT_EQ(drv_->vcmd_alloc().error(), Errc::exhausted);  // NO_PASID -> ENOSPC
  scripted_->alloc_error = Errc{};
  // FREE of a PASID the VM does not hold: INVALID_PASID, logged, never reported.
  drv_->vcmd_free(4242);
  EXPECT_EQ(drv_->stats().free_errors, 1u);
  EXPECT_TRUE(log_.contains("invalid PASID"));
  EXPECT_EQ(dev_->stats().free_invalid_pasid, 1u);
  EXPECT_EQ(drv_->stats().alloc_no_pasid, 1u);

  // A status this layout does not define for ALLOC -> io_error ("Unexpected error code").
  internal::StuckMmio odd(GetParam());
  odd.vcrsp = encode_vcrsp(l(), false, 3, 0);
  VtdGuestDriver drv(odd, options());
  ASSERT_TRUE(drv.probe());
  EXPECT_EQ(drv.vcmd_alloc().error(), Errc::io_error);
  odd.vcrsp = encode_vcrsp(l(), false, status_code(l(), VcmdStatus::undefined_cmd), 0);
  EXPECT_EQ(drv.vcmd_alloc().error(), Errc::io_error);
  drv.vcmd_free(5);  // logged, no failure
  EXPECT_EQ(drv.stats().alloc_errors, 2u);
  EXPECT_EQ(drv.stats().free_errors, 1u);
}

TEST_P(VtdGuestDriverTest, PollTimesOutInsteadOfHanging) {
  internal::StuckMmio stuck(GetParam());
  auto guest = Space::create({}).value();  // outlives the driver's registration
  const SetId set = guest->create_set(1, 10).value();
  VtdGuestDriver drv(stuck, options());
  ASSERT_TRUE(drv.register_allocator(*guest));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(guest->alloc(set, 1, 0xFFFFF, nullptr).error(), Errc::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(stuck.writes, 1);
  // Still stuck: the next command is not even written (the old one may still complete).
  EXPECT_EQ(drv.vcmd_alloc().error(), Errc::timed_out);
  drv.vcmd_free(3);
  EXPECT_EQ(stuck.writes, 1);
  EXPECT_EQ(drv.stats().timeouts, 3u);
  EXPECT_EQ(guest->stats().live_ids, 0u);

  // The stuck ALLOC completes late with PASID 9: it is freed, not taken for the next answer.
  stuck.vcrsp = encode_vcrsp(l(), false, 0, 9);
  EXPECT_EQ(drv.vcmd_alloc().value(), 9u);  // the StuckMmio answers 9 again to the new ALLOC
  EXPECT_EQ(stuck.writes, 3);               // FREE 9, then ALLOC
  EXPECT_EQ(drv.stats().late_responses, 1u);
  EXPECT_TRUE(log_.contains("late ALLOC answer 9 freed"));
}

TEST_P(VtdGuestDriverTest, AllocCallbackRefusesRangesVcmdCannotServe) {
  auto wide = Space::create({.width_bits = 24}).value();
  const SetId set = wide->create_set(1, 10).value();
  ASSERT_TRUE(drv_->register_allocator(*wide));
  EXPECT_EQ(wide->alloc(set, 0, 0xFFFFF, nullptr).error(), Errc::invalid_argument);  // min < 1
  EXPECT_EQ(wide->alloc(set, 1, 0x100000, nullptr).error(), Errc::invalid_argument);
  EXPECT_EQ(drv_->stats().range_refusals, 2u);
  EXPECT_EQ(dev_->stats().commands, 0u);
  EXPECT_EQ(wide->alloc(set, 1, 0xFFFFF, nullptr).value(), 1u);
  ASSERT_TRUE(wide->free(set, 1));
  drv_->unregister_allocator();
  EXPECT_TRUE(wide->check_invariants());
}

// The host answers outside the caller's [min, max]: the guest space hands the PASID back through
// VCMD FREE and fails with out_of_range.
TEST_P(VtdGuestDriverTest, HostAnswerOutsideRequestIsHandedBackEndToEnd) {
  ASSERT_TRUE(drv_->register_allocator(*guest_));
  // The real host hands out its lowest free PASID (1), below the request.
  EXPECT_EQ(guest_->alloc(gset_, 100, 200, nullptr).error(), Errc::out_of_range);
  EXPECT_EQ(host_->stats().live_ids, 0u);
  EXPECT_EQ(dev_->stats().frees, 1u);
  // A host backend that answers a fixed PASID above the request.
  scripted_->fixed_answer = 0x500;
  EXPECT_EQ(guest_->alloc(gset_, 100, 200, nullptr).error(), Errc::out_of_range);
  EXPECT_EQ(scripted_->frees().back(), 0x500u);
  EXPECT_EQ(guest_->stats().live_ids, 0u);
  EXPECT_EQ(guest_->stats().allocator_rejects, 2u);
  scripted_->fixed_answer = kInvalidId;
  EXPECT_EQ(guest_->alloc(gset_, 1, 200, nullptr).value(), 1u);
}

TEST_P(VtdGuestDriverTest, FreeRefusedWhilePrivateDataIsAttached) {
  ASSERT_TRUE(drv_->register_allocator(*guest_));
  int priv = 0;
  const Id id = guest_->alloc(gset_, 1, 0xFFFFF, &priv).value();
  // intel_vcmd_ioasid_free() on a PASID that still carries private data: refused, logged.
  const AllocatorOps& ops = drv_->allocator_ops();
  ops.free(ops.pdata, id);
  EXPECT_EQ(drv_->stats().free_refused_active, 1u);
  EXPECT_TRUE(log_.contains("cannot free active PASID"));
  EXPECT_TRUE(host_->query(vm_, id));

  // Through the space, a bound PASID is not handed to the free callback until the last unbind.
  ASSERT_TRUE(guest_->bind(gset_, id));
  ASSERT_TRUE(guest_->free(gset_, id));
  EXPECT_EQ(guest_->query(gset_, id).value().state, IdState::free_pending);
  EXPECT_TRUE(host_->query(vm_, id));
  EXPECT_EQ(drv_->stats().frees, 0u);  // no VCMD FREE reached the host while bound
  ASSERT_TRUE(guest_->unbind(gset_, id));
  EXPECT_FALSE(host_->query(vm_, id));
  EXPECT_EQ(drv_->stats().frees, 1u);
}

TEST_P(VtdGuestDriverTest, LayoutMismatchFailsTheGate) {
  // A v5.8 driver on a VT-d 3.3 device (or the reverse) reads VCCAP at the wrong offset.
  VtdGuestDriverOptions o = options();
  o.layout = GetParam() == VcmdLayout::legacy ? VcmdLayout::rev3_3 : VcmdLayout::legacy;
  VtdGuestDriver wrong(*rec_, o);
  EXPECT_EQ(wrong.register_allocator(*guest_).error(), Errc::unsupported);
  EXPECT_EQ(dev_->stats().commands, 0u);
}

INSTANTIATE_TEST_SUITE_P(Layouts, VtdGuestDriverTest,
                         ::testing::Values(VcmdLayout::legacy, VcmdLayout::rev3_3),
                         [](const auto& p) { return std::string(layout_spec(p.param).name); });

}  // namespace
}  // namespace ioasid
