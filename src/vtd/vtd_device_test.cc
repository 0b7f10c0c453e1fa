// SPDX-License-Identifier: Apache-2.0
// vtd_device_test.cc: register conformance of VtdVcmdDevice for each layout (VT-d 3.0
// §10.4.43-45 and 3.3 §10.4.43-46; DOMAIN.md §8 items 18-19): every register read, every command
// and status code, reserved bits, full-width and split accesses, bad accesses, read-only
// registers, disabled commands, backend answers outside the range. Commands that stay in progress
// are in vtd_async_test.cc (threads, also run under TSan).
#include <gtest/gtest.h>

#include <memory>

#include "internal/fake_vtd.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/vtd_device.hpp"

namespace ioasid {
namespace {

using namespace wire::vtd;  // NOLINT(build/namespaces): the register vocabulary

class VtdDeviceTest : public ::testing::TestWithParam<VcmdLayout> {
 protected:
  void SetUp() override {
    host_ = Space::create({}).value();
    vm_ = host_->create_set(/*owner_token=*/1, /*quota=*/4).value();
    other_ = host_->create_set(/*owner_token=*/2, /*quota=*/4).value();
    backend_ = std::make_unique<LocalBackend>(*host_, vm_);
    dev_ = make({});
  }
  void TearDown() override { ASSERT_TRUE(host_->check_invariants()); }

  std::unique_ptr<VtdVcmdDevice> make(VtdVcmdDeviceOptions o, HostBackend* backend = nullptr) {
    o.layout = GetParam();
    return VtdVcmdDevice::create(backend ? *backend : *backend_, o).value();
  }
  const LayoutSpec& l() const { return layout_spec(GetParam()); }

  // VCMD <- value (8 bytes); returns VCRSP.
  std::uint64_t command(VtdVcmdDevice& d, std::uint64_t value) {
    d.mmio_write(l().vcmd_offset, 8, value);
    return d.mmio_read(l().vcrsp_offset, 8);
  }
  std::uint64_t command(std::uint64_t value) { return command(*dev_, value); }
  std::uint64_t rsp(VcmdStatus s, Id result = 0) const {
    return encode_vcrsp(l(), false, status_code(l(), s), result);
  }

  std::unique_ptr<Space> host_;
  SetId vm_, other_;
  std::unique_ptr<LocalBackend> backend_;
  std::unique_ptr<VtdVcmdDevice> dev_;
};

TEST_P(VtdDeviceTest, ReadsEveryRegisterAtReset) {
  EXPECT_EQ(dev_->mmio_read(kCapRegOffset, 8), kCapCm);
  EXPECT_EQ(dev_->mmio_read(kEcapRegOffset, 8), kEcapPasid | kEcapSmts | kEcapVcs);
  EXPECT_EQ(dev_->mmio_read(l().vccap_offset, 8), kVccapPas);
  EXPECT_EQ(dev_->mmio_read(l().vcmd_offset, 8), 0u);
  EXPECT_EQ(dev_->mmio_read(l().vcrsp_offset, 8), 0u);
  // Every register of the table reads its reset value, whole or in halves.
  for (std::size_t i = 0; i < kVcmdRegCount; ++i) {
    const RegisterSpec r = register_spec(l(), static_cast<VcmdReg>(i));
    const std::uint64_t v = dev_->mmio_read(r.offset, 8);
    EXPECT_EQ(v, r.reset) << r.name;
    EXPECT_EQ(dev_->mmio_read(r.offset, 4), v & 0xFFFFFFFFu) << r.name;
    EXPECT_EQ(dev_->mmio_read(r.offset + 4, 4), v >> 32) << r.name;
  }
  EXPECT_EQ(dev_->cap_bits(), kCapCm);
  EXPECT_EQ(dev_->ecap_bits(), kEcapPasid | kEcapSmts | kEcapVcs);
  EXPECT_EQ(dev_->vccap(), kVccapPas);
  EXPECT_EQ(dev_->stats().bad_accesses, 0u);
}

TEST_P(VtdDeviceTest, AllocAndFree) {
  const std::uint64_t r = command(encode_vcmd(l(), kVcmdAllocPasid));
  EXPECT_EQ(r, rsp(VcmdStatus::success, 1));  // lowest free host PASID, IP clear
  EXPECT_EQ(decode_vcrsp(l(), r).result, 1u);
  EXPECT_EQ(host_->query(vm_, 1).value().state, IdState::active);
  EXPECT_EQ(dev_->mmio_read(l().vcmd_offset, 8), encode_vcmd(l(), kVcmdAllocPasid));
  EXPECT_EQ(decode_vcrsp(l(), command(encode_vcmd(l(), kVcmdAllocPasid))).result, 2u);

  EXPECT_EQ(command(encode_vcmd(l(), kVcmdFreePasid, 1)), rsp(VcmdStatus::success));
  EXPECT_FALSE(host_->query(vm_, 1));
  EXPECT_EQ(host_->set_info(vm_).value().count, 1u);
  const VtdVcmdStats s = dev_->stats();
  EXPECT_EQ(s.commands, 3u);
  EXPECT_EQ(s.allocs, 2u);
  EXPECT_EQ(s.frees, 1u);
}

TEST_P(VtdDeviceTest, QuotaAndExhaustionAnswerNoPasid) {
  for (Id i = 1; i <= 4; ++i) {
    EXPECT_EQ(command(encode_vcmd(l(), kVcmdAllocPasid)), rsp(VcmdStatus::success, i));
  }
  // Over quota: NO_PASID, raw code 2 (3.0) or 16 (3.3).
  const std::uint64_t r = command(encode_vcmd(l(), kVcmdAllocPasid));
  EXPECT_EQ(r, rsp(VcmdStatus::no_pasid));
  EXPECT_EQ(decode_vcrsp(l(), r).sc, GetParam() == VcmdLayout::legacy ? 2 : 16);
  EXPECT_EQ(host_->set_info(vm_).value().count, 4u);

  // Exhausted range: a device limited to [5, 5], PASID 5 taken by the other VM.
  ASSERT_EQ(host_->alloc(other_, 5, 5, nullptr).value(), 5u);
  ASSERT_TRUE(host_->free(vm_, 1));
  auto narrow = make({.pasid_min = 5, .pasid_max = 5});
  EXPECT_EQ(command(*narrow, encode_vcmd(l(), kVcmdAllocPasid)), rsp(VcmdStatus::no_pasid));
  EXPECT_EQ(narrow->stats().alloc_no_pasid, 1u);
  EXPECT_EQ(narrow->stats().backend_errors, 0u);
  EXPECT_EQ(dev_->stats().alloc_no_pasid, 1u);
}

TEST_P(VtdDeviceTest, FreeOfWhatThisVmDoesNotOwnIsInvalidAndChangesNothing) {
  const Id theirs = host_->alloc(other_, 1, 0xFFFFF, nullptr).value();
  const Id mine = decode_vcrsp(l(), command(encode_vcmd(l(), kVcmdAllocPasid))).result;
  const SpaceStats before = host_->stats();
  for (Id pasid : {theirs, Id{0}, Id{77}, Id{0xFFFFF}}) {
    const std::uint64_t r = command(encode_vcmd(l(), kVcmdFreePasid, pasid));
    EXPECT_EQ(r, rsp(VcmdStatus::invalid_pasid)) << pasid;
    EXPECT_EQ(decode_vcrsp(l(), r).sc, GetParam() == VcmdLayout::legacy ? 2 : 16);
  }
  EXPECT_EQ(host_->query(other_, theirs).value().state, IdState::active);
  EXPECT_EQ(host_->query(vm_, mine).value().state, IdState::active);
  EXPECT_EQ(host_->stats().live_ids, before.live_ids);
  // A PASID that is FREE_PENDING (another reference held) cannot be freed twice.
  ASSERT_TRUE(host_->get(vm_, mine));
  EXPECT_EQ(command(encode_vcmd(l(), kVcmdFreePasid, mine)), rsp(VcmdStatus::success));
  EXPECT_EQ(command(encode_vcmd(l(), kVcmdFreePasid, mine)), rsp(VcmdStatus::invalid_pasid));
  EXPECT_EQ(host_->query(vm_, mine).value().state, IdState::free_pending);
  ASSERT_TRUE(host_->put(vm_, mine));
  EXPECT_EQ(dev_->stats().free_invalid_pasid, 5u);
  EXPECT_EQ(dev_->stats().backend_errors, 0u);
}

TEST_P(VtdDeviceTest, UndefinedCommands) {
  for (std::uint8_t cmd : {kVcmdNull, std::uint8_t{3}, std::uint8_t{0x80}, std::uint8_t{0xFF}}) {
    const std::uint64_t r = command(encode_vcmd(l(), cmd, 5));
    EXPECT_EQ(r, rsp(VcmdStatus::undefined_cmd)) << int{cmd};
    EXPECT_EQ(decode_vcrsp(l(), r).sc, 1);
  }
  EXPECT_EQ(dev_->stats().undefined_cmds, 4u);
  EXPECT_EQ(host_->stats().live_ids, 0u);
}

TEST_P(VtdDeviceTest, ReservedBitsAreIgnoredAndCounted) {
  // ALLOC with an operand and high reserved bits still allocates.
  const std::uint64_t junk = (std::uint64_t{0xA5} << 56) | encode_vcmd(l(), 0, 0x777);
  EXPECT_EQ(command(junk | kVcmdAllocPasid), rsp(VcmdStatus::success, 1));
  // FREE acts on the 20-bit operand field only.
  const std::uint64_t reserved_free =
      (std::uint64_t{1} << 62) | encode_vcmd(l(), kVcmdFreePasid, 1);
  EXPECT_EQ(command(reserved_free), rsp(VcmdStatus::success));
  EXPECT_EQ(host_->stats().live_ids, 0u);
  // A clean command counts nothing.
  EXPECT_EQ(command(encode_vcmd(l(), kVcmdAllocPasid)), rsp(VcmdStatus::success, 1));
  EXPECT_EQ(dev_->stats().reserved_bits, 2u);
}

TEST_P(VtdDeviceTest, SplitWritesRunOnTheHighHalf) {
  const std::uint64_t vcmd = l().vcmd_offset;
  // A PASID whose operand crosses the 32-bit boundary in the 3.3 layout (bits 35:16).
  ASSERT_EQ(host_->alloc(vm_, 0xABCDE, 0xABCDE, nullptr).value(), 0xABCDEu);
  const std::uint64_t free_cmd = encode_vcmd(l(), kVcmdFreePasid, 0xABCDE);
  dev_->mmio_write(vcmd, 4, free_cmd & 0xFFFFFFFF);
  EXPECT_EQ(dev_->stats().commands, 0u);  // the low half alone only latches
  EXPECT_EQ(dev_->mmio_read(l().vcrsp_offset, 8), 0u);
  EXPECT_TRUE(host_->query(vm_, 0xABCDE));
  dev_->mmio_write(vcmd + 4, 4, free_cmd >> 32);
  EXPECT_EQ(dev_->stats().commands, 1u);
  EXPECT_EQ(dev_->mmio_read(l().vcrsp_offset, 8), rsp(VcmdStatus::success));
  EXPECT_FALSE(host_->query(vm_, 0xABCDE));
  EXPECT_EQ(dev_->mmio_read(vcmd, 8), free_cmd);

  // A high half with no low half latched is ignored.
  dev_->mmio_write(vcmd + 4, 4, 0);
  EXPECT_EQ(dev_->stats().commands, 1u);
  EXPECT_EQ(dev_->stats().split_orphans, 1u);

  // Low then high ALLOC; reading VCRSP in halves.
  dev_->mmio_write(vcmd, 4, kVcmdAllocPasid);
  dev_->mmio_write(vcmd + 4, 4, 0);
  const std::uint64_t lo = dev_->mmio_read(l().vcrsp_offset, 4);
  const std::uint64_t hi = dev_->mmio_read(l().vcrsp_offset + 4, 4);
  EXPECT_EQ((hi << 32) | lo, rsp(VcmdStatus::success, 1));
  // A second high half does not re-run the command.
  dev_->mmio_write(vcmd + 4, 4, 0);
  EXPECT_EQ(dev_->stats().commands, 2u);
  EXPECT_EQ(host_->stats().live_ids, 1u);
  // An 8-byte write drops a latched low half.
  dev_->mmio_write(vcmd, 4, kVcmdAllocPasid);
  EXPECT_EQ(command(encode_vcmd(l(), kVcmdFreePasid, 1)), rsp(VcmdStatus::success));
  dev_->mmio_write(vcmd + 4, 4, 0);
  EXPECT_EQ(dev_->stats().commands, 3u);
  EXPECT_EQ(dev_->stats().split_orphans, 3u);
  EXPECT_EQ(host_->stats().live_ids, 0u);
}

TEST_P(VtdDeviceTest, BadAndUnknownAccessesAreIgnoredAndCounted) {
  const std::uint64_t vcmd = l().vcmd_offset;
  const std::uint64_t alloc = encode_vcmd(l(), kVcmdAllocPasid);
  std::uint64_t bad = 0;
  for (unsigned size : {0u, 1u, 2u, 3u, 16u}) {
    dev_->mmio_write(vcmd, size, alloc);
    EXPECT_EQ(dev_->mmio_read(l().vccap_offset, size), 0u);
    bad += 2;
  }
  dev_->mmio_write(vcmd + 4, 8, alloc);  // unaligned 8-byte
  dev_->mmio_write(vcmd + 2, 4, alloc);  // unaligned 4-byte
  EXPECT_EQ(dev_->mmio_read(l().vcrsp_offset + 1, 4), 0u);
  bad += 3;
  EXPECT_EQ(dev_->stats().bad_accesses, bad);
  EXPECT_EQ(dev_->stats().commands, 0u);
  EXPECT_EQ(host_->stats().live_ids, 0u);

  for (std::uint64_t off : {std::uint64_t{0}, std::uint64_t{0x18}, std::uint64_t{0xF00},
                            std::uint64_t{0xFFFFFFFFFFFFFFF8ull}}) {
    EXPECT_EQ(dev_->mmio_read(off, 8), 0u);
    dev_->mmio_write(off, 8, alloc);
  }
  EXPECT_EQ(dev_->stats().unknown_accesses, 8u);
  EXPECT_EQ(dev_->stats().commands, 0u);
}

TEST_P(VtdDeviceTest, ReadOnlyRegistersIgnoreWrites) {
  const std::uint64_t alloc = encode_vcmd(l(), kVcmdAllocPasid);
  for (std::uint64_t off : {std::uint64_t{kCapRegOffset}, std::uint64_t{kEcapRegOffset},
                            std::uint64_t{l().vccap_offset}, std::uint64_t{l().vcrsp_offset}}) {
    const std::uint64_t before = dev_->mmio_read(off, 8);
    dev_->mmio_write(off, 8, ~before);
    dev_->mmio_write(off + 4, 4, alloc);
    EXPECT_EQ(dev_->mmio_read(off, 8), before) << off;
  }
  EXPECT_EQ(dev_->stats().ro_writes, 8u);
  EXPECT_EQ(dev_->stats().commands, 0u);
}

TEST_P(VtdDeviceTest, CommandsNeedVcsAndPas) {
  auto no_pas = make({.vccap = 0});
  EXPECT_EQ(no_pas->mmio_read(l().vccap_offset, 8), 0u);
  auto no_vcs = make({.ecap = kEcapSmts | kEcapPasid});
  for (VtdVcmdDevice* d : {no_pas.get(), no_vcs.get()}) {
    EXPECT_EQ(command(*d, encode_vcmd(l(), kVcmdAllocPasid)), 0u);
    d->mmio_write(l().vcmd_offset, 4, kVcmdAllocPasid);
    d->mmio_write(l().vcmd_offset + 4, 4, 0);
    EXPECT_EQ(d->stats().commands, 0u);
    EXPECT_EQ(d->stats().ignored_disabled, 2u);
    EXPECT_EQ(d->mmio_read(l().vcmd_offset, 8), 0u);
  }
  EXPECT_EQ(host_->stats().live_ids, 0u);
}

TEST_P(VtdDeviceTest, BackendAnswersOutsideTheRangeAreHandedBack) {
  internal::ScriptedBackend scripted(*backend_);
  auto d = make({.pasid_min = 1, .pasid_max = 0xFF}, &scripted);
  scripted.fixed_answer = 0x100;
  EXPECT_EQ(command(*d, encode_vcmd(l(), kVcmdAllocPasid)), rsp(VcmdStatus::no_pasid));
  EXPECT_EQ(scripted.frees(), std::vector<Id>{0x100});
  EXPECT_EQ(d->stats().backend_bad_answers, 1u);

  scripted.fixed_answer = kInvalidId;
  scripted.alloc_error = Errc::io_error;
  EXPECT_EQ(command(*d, encode_vcmd(l(), kVcmdAllocPasid)), rsp(VcmdStatus::no_pasid));
  scripted.free_error = Errc::io_error;
  EXPECT_EQ(command(*d, encode_vcmd(l(), kVcmdFreePasid, 3)), rsp(VcmdStatus::invalid_pasid));
  EXPECT_EQ(d->stats().backend_errors, 3u);  // bad answer, alloc io_error, free io_error
}

TEST_P(VtdDeviceTest, CreateRejectsBadRanges) {
  VtdVcmdDeviceOptions o{.layout = GetParam()};
  o.pasid_min = 0;
  EXPECT_EQ(VtdVcmdDevice::create(*backend_, o).error(), Errc::invalid_argument);
  o.pasid_min = 1;
  o.pasid_max = 0x100000;
  EXPECT_EQ(VtdVcmdDevice::create(*backend_, o).error(), Errc::invalid_argument);
  o.pasid_min = 9;
  o.pasid_max = 8;
  EXPECT_EQ(VtdVcmdDevice::create(*backend_, o).error(), Errc::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Layouts, VtdDeviceTest,
                         ::testing::Values(VcmdLayout::legacy, VcmdLayout::rev3_3),
                         [](const auto& p) { return std::string(layout_spec(p.param).name); });

}  // namespace
}  // namespace ioasid
