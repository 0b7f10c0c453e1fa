// SPDX-License-Identifier: Apache-2.0
// vtd_vcmd_wire_test.cc: the VCMD register tables and encode/decode helpers of
// ioasid/wire/vtd_vcmd.hpp against the numbers of DOMAIN.md §4.1-4.3 (VT-d 3.0 §10.4.43-45 as
// coded by Linux v5.8-v5.14, VT-d 3.3 §10.4.43-46 as coded by Linux v5.15-v6.3).
#include <gtest/gtest.h>

#include <set>

#include "ioasid/wire/vtd_vcmd.hpp"

namespace ioasid::wire::vtd {
namespace {

TEST(VtdVcmdWire, CapabilityBits) {
  EXPECT_EQ(kCapRegOffset, 0x08u);
  EXPECT_EQ(kEcapRegOffset, 0x10u);
  EXPECT_EQ(kCapCm, 0x80u);
  EXPECT_EQ(kEcapPasid, std::uint64_t{1} << 40);
  EXPECT_EQ(kEcapSmts, std::uint64_t{1} << 43);
  EXPECT_EQ(kEcapVcs, std::uint64_t{1} << 44);
  EXPECT_EQ(kVccapPas, 1u);
  EXPECT_EQ(kVcmdAllocPasid, 1);
  EXPECT_EQ(kVcmdFreePasid, 2);
}

TEST(VtdVcmdWire, LegacyLayout) {
  const LayoutSpec& l = layout_spec(VcmdLayout::legacy);
  EXPECT_EQ(l.vccap_offset, 0xE00u);
  EXPECT_EQ(l.vcmd_offset, 0xE10u);
  EXPECT_EQ(l.vcrsp_offset, 0xE20u);
  EXPECT_EQ(l.operand_shift, 8u);
  EXPECT_EQ(l.result_shift, 8u);
  // VCMD_VRSP_SC(e) = ((e) >> 1) & 0x3; SUCCESS 0, UNDEFINED 1, NO_PASID / INVALID_PASID 2.
  EXPECT_EQ(status_code(l, VcmdStatus::success), 0);
  EXPECT_EQ(status_code(l, VcmdStatus::undefined_cmd), 1);
  EXPECT_EQ(status_code(l, VcmdStatus::no_pasid), 2);
  EXPECT_EQ(status_code(l, VcmdStatus::invalid_pasid), 2);
  EXPECT_EQ(encode_vcrsp(l, false, 2, 0), 0x4u);
  EXPECT_EQ(encode_vcrsp(l, false, 0, 0xFFFFF), 0xFFFFF00u);
  EXPECT_EQ(encode_vcrsp(l, true, 0, 0), 1u);
  EXPECT_EQ(encode_vcmd(l, kVcmdFreePasid, 0xABCDE), 0xABCDE02u);
}

TEST(VtdVcmdWire, Rev33Layout) {
  const LayoutSpec& l = layout_spec(VcmdLayout::rev3_3);
  EXPECT_EQ(l.vcmd_offset, 0xE00u);
  EXPECT_EQ(l.vcrsp_offset, 0xE10u);
  EXPECT_EQ(l.vccap_offset, 0xE30u);
  // VCMD_VRSP_SC(e) = ((e) & 0xff) >> 1; NO_PASID / INVALID_PASID 16.
  EXPECT_EQ(status_code(l, VcmdStatus::no_pasid), 16);
  EXPECT_EQ(status_code(l, VcmdStatus::invalid_pasid), 16);
  EXPECT_EQ(status_code(l, VcmdStatus::undefined_cmd), 1);
  EXPECT_EQ(encode_vcrsp(l, false, 16, 0), 0x20u);
  EXPECT_EQ(encode_vcrsp(l, false, 0, 0xFFFFF), std::uint64_t{0xFFFFF} << 16);
  EXPECT_EQ(encode_vcmd(l, kVcmdFreePasid, 0xABCDE), (std::uint64_t{0xABCDE} << 16) | 2);
}

class VtdVcmdWireLayout : public ::testing::TestWithParam<VcmdLayout> {};

TEST_P(VtdVcmdWireLayout, RoundTrips) {
  const LayoutSpec& l = layout_spec(GetParam());
  for (std::uint32_t pasid : {0u, 1u, 0x1234u, 0xFFFFFu}) {
    for (std::uint8_t cmd : {kVcmdNull, kVcmdAllocPasid, kVcmdFreePasid, std::uint8_t{0xFF}}) {
      const VcmdFields f = decode_vcmd(l, encode_vcmd(l, cmd, pasid));
      EXPECT_EQ(f.cmd, cmd);
      EXPECT_EQ(f.operand, pasid);
      EXPECT_EQ(f.reserved, 0u);
    }
    for (unsigned code = 0; code <= l.sc_mask; ++code) {
      const auto sc = static_cast<std::uint8_t>(code);
      for (bool ip : {false, true}) {
        const VcrspFields f = decode_vcrsp(l, encode_vcrsp(l, ip, sc, pasid));
        EXPECT_EQ(f.ip, ip);
        EXPECT_EQ(f.sc, sc);
        EXPECT_EQ(f.result, pasid);
        EXPECT_EQ(f.reserved, 0u);
      }
    }
  }
  // Operand bits beyond 20 are not part of the PASID; reserved bits are reported.
  EXPECT_EQ(decode_vcmd(l, ~std::uint64_t{0}).operand, 0xFFFFFu);
  EXPECT_EQ(decode_vcmd(l, ~std::uint64_t{0}).reserved, ~vcmd_defined_mask(l));
  EXPECT_EQ(decode_vcrsp(l, ~std::uint64_t{0}).reserved, ~vcrsp_defined_mask(l));
}

TEST_P(VtdVcmdWireLayout, StatusDecoding) {
  const LayoutSpec& l = layout_spec(GetParam());
  EXPECT_EQ(decode_status(l, kVcmdAllocPasid, l.sc_success), VcmdStatus::success);
  EXPECT_EQ(decode_status(l, kVcmdAllocPasid, l.sc_no_pasid), VcmdStatus::no_pasid);
  EXPECT_EQ(decode_status(l, kVcmdFreePasid, l.sc_invalid_pasid), VcmdStatus::invalid_pasid);
  EXPECT_EQ(decode_status(l, 7, l.sc_undefined_cmd), VcmdStatus::undefined_cmd);
  EXPECT_EQ(decode_status(l, kVcmdAllocPasid, 3), VcmdStatus::unknown);
  EXPECT_EQ(decode_status(l, 7, l.sc_no_pasid), VcmdStatus::unknown);
  for (VcmdStatus s : {VcmdStatus::success, VcmdStatus::undefined_cmd, VcmdStatus::no_pasid,
                       VcmdStatus::invalid_pasid}) {
    EXPECT_LE(status_code(l, s), l.sc_mask);
  }
}

TEST_P(VtdVcmdWireLayout, RegisterTable) {
  const LayoutSpec& l = layout_spec(GetParam());
  std::set<std::uint32_t> offsets;
  for (std::size_t i = 0; i < kVcmdRegCount; ++i) {
    const RegisterSpec r = register_spec(l, static_cast<VcmdReg>(i));
    EXPECT_EQ(static_cast<std::size_t>(r.reg), i);
    EXPECT_EQ(r.width, 8);
    EXPECT_EQ(r.offset % 8, 0u) << r.name;
    EXPECT_TRUE(offsets.insert(r.offset).second) << r.name;
    EXPECT_EQ(r.reset & ~r.defined_mask, 0u) << r.name;
    EXPECT_EQ(r.writable_mask & ~r.defined_mask, 0u) << r.name;
    for (std::uint32_t off = r.offset; off < r.offset + 8; ++off) {
      VcmdReg found{};
      ASSERT_TRUE(register_at(l, off, &found));
      EXPECT_EQ(found, r.reg);
    }
  }
  VcmdReg found{};
  EXPECT_FALSE(register_at(l, 0, &found));
  EXPECT_FALSE(register_at(l, 0x18, &found));
  EXPECT_FALSE(register_at(l, 0xF00, &found));
  EXPECT_EQ(register_spec(l, VcmdReg::vcmd).writable_mask, vcmd_defined_mask(l));
  EXPECT_EQ(register_spec(l, VcmdReg::vcrsp).writable_mask, 0u);
}

INSTANTIATE_TEST_SUITE_P(Layouts, VtdVcmdWireLayout,
                         ::testing::Values(VcmdLayout::legacy, VcmdLayout::rev3_3),
                         [](const auto& p) { return std::string(layout_spec(p.param).name); });

}  // namespace
}  // namespace ioasid::wire::vtd
