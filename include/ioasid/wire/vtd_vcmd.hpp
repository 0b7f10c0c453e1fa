// SPDX-License-Identifier: Apache-2.0
// vtd_vcmd.hpp: the Intel VT-d virtual command (VCMD) registers as data: the register window of
// both layouts, their bit fields and status codes, as constexpr tables plus pure encode/decode
// helpers shared by the device model (VtdVcmdDevice) and the guest driver (VtdGuestDriver).
//
// Spec and revisions (DOMAIN.md §4, §8 item 18):
//   - VcmdLayout::legacy: Intel VT-d spec rev 3.0/3.1 §10.4.43-45 as coded by Linux v5.8-v5.14
//     (24f27d32ab6b, status fix 444d66a23c1f) and the QEMU RFC (Liu Yi L, 22 Mar 2020):
//     VCCAP 0xE00, VCMD 0xE10, VCRSP 0xE20; operand and result at bits 27:8; status bits 2:1;
//     NO_PASID / INVALID_PASID = 2, UNDEFINED_CMD = 1.
//   - VcmdLayout::rev3_3: Intel VT-d spec rev 3.3 §10.4.43-46 as coded by Linux v5.15-v6.3
//     (4d99efb229e6): VCMD 0xE00, VCRSP 0xE10, VCCAP 0xE30; operand and result at bits 35:16;
//     status bits 7:1; NO_PASID / INVALID_PASID = 16 (10h, command-specific codes start there).
//   - CAP_REG 0x08 / ECAP_REG 0x10: VT-d spec §10.4.2-3 (unchanged since rev 1.0).
// Written from those spec facts; no GPL header was copied.
//
// Synopsis
//   const LayoutSpec& l = layout_spec(VcmdLayout::rev3_3);
//   std::uint64_t cmd = encode_vcmd(l, kVcmdFreePasid, 42);       // OPERAND(42) | FREE
//   VcrspFields rsp = decode_vcrsp(l, raw);                       // {ip, sc, result}
//   VcmdStatus st = decode_status(l, kVcmdAllocPasid, rsp.sc);    // success / no_pasid / ...
//
// Invariants: every register is 64 bits wide and 8-byte aligned; fields never overlap; a PASID is
// 20 bits (kVcmdPasidMask), so encode_* truncate nothing a valid PASID holds.
// Thread-safety: constants and pure functions only.
// Not here: register state, MMIO access sizes (the device model), polling (the guest driver).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ioasid::wire::vtd {

// ---- capability bits (DOMAIN.md §4.1; VT-d spec rev 3.0 and 3.3, §10.4.2, §10.4.3, VCCAP) -----

inline constexpr std::uint32_t kCapRegOffset = 0x08;   // VT-d §10.4.2 Capability Register
inline constexpr std::uint32_t kEcapRegOffset = 0x10;  // VT-d §10.4.3 Extended Capability Register

// CAP.CM, caching mode: VT-d spec §10.4.2 (bit 7 since rev 1.0; unchanged in 3.0 and 3.3).
inline constexpr std::uint64_t kCapCm = std::uint64_t{1} << 7;
// ECAP.PASID, PASID support: VT-d spec §10.4.3 (bit 40 in rev 3.0 and 3.3).
inline constexpr std::uint64_t kEcapPasid = std::uint64_t{1} << 40;
// ECAP.SMTS, scalable-mode translation: VT-d spec §10.4.3 (bit 43 in rev 3.0 and 3.3).
inline constexpr std::uint64_t kEcapSmts = std::uint64_t{1} << 43;
// ECAP.VCS, virtual command support (VCCAP present): VT-d spec §10.4.3 (bit 44 in rev 3.0 and
// 3.3).
inline constexpr std::uint64_t kEcapVcs = std::uint64_t{1} << 44;
// VCCAP.PAS, PASID allocation commands supported: VCCAP bit 0, VT-d spec rev 3.0 §10.4.43 (VCCAP at
// 0xE00) and rev 3.3 §10.4.43-46 (VCCAP at 0xE30: the register moved, the bit did not).
inline constexpr std::uint64_t kVccapPas = std::uint64_t{1} << 0;

// ---- commands (VCMD bits 7:0, same in both layouts) -----------------------------------------

// VCMD.CMD, the command code: bits 7:0 of VCMD in VT-d spec rev 3.0 §10.4.44 and rev 3.3
// §10.4.43-46.
inline constexpr std::uint64_t kVcmdCmdMask = 0xFF;
// Code 0 is no command (the QEMU RFC's "NULL"); the device answers it as undefined.
inline constexpr std::uint8_t kVcmdNull = 0;
// Allocate PASID, code 1: VCMD in VT-d spec rev 3.0 §10.4.44 and rev 3.3 §10.4.43-46 (no
// operand).
inline constexpr std::uint8_t kVcmdAllocPasid = 1;
// Free PASID, code 2: VCMD in VT-d spec rev 3.0 §10.4.44 and rev 3.3 §10.4.43-46;
// operand: the PASID.
inline constexpr std::uint8_t kVcmdFreePasid = 2;

// PASIDs are 20 bits (PCIe Base spec 4.0 §6.20; the operand and result fields are 20 bits wide in
// VT-d spec rev 3.0 §10.4.44-45 and rev 3.3 §10.4.43-46). VCMD hands out [kVcmdPasidMin,
// kVcmdPasidMax]: PASID 0 is the RID_PASID (VT-d spec rev 3.0 §9.4, scalable-mode context entry
// RID_PASID field; QEMU RFC VTD_MIN_HPASID 1 .. VTD_MAX_HPASID 0xFFFFF).
inline constexpr std::uint64_t kVcmdPasidMask = 0xFFFFF;
inline constexpr std::uint32_t kVcmdPasidMin = 1;
inline constexpr std::uint32_t kVcmdPasidMax = 0xFFFFF;

// VCRSP.IP, In Progress: bit 0 of VCRSP in VT-d spec rev 3.0 §10.4.45 and rev 3.3 §10.4.43-46.
inline constexpr std::uint64_t kVcrspIp = 1;

// ---- layouts ----------------------------------------------------------------------------------

enum class VcmdLayout : std::uint8_t {
  legacy = 0,  // VT-d 3.0/3.1, Linux v5.8-v5.14, QEMU RFC
  rev3_3 = 1,  // VT-d 3.3, Linux v5.15-v6.3
};

// What a status code means (the encoding depends on the layout; see LayoutSpec).
enum class VcmdStatus : std::uint8_t {
  success = 0,
  undefined_cmd = 1,  // unknown command code
  no_pasid = 2,       // ALLOC: no PASID available (exhausted or over quota)
  invalid_pasid = 3,  // FREE: the PASID is not allocated to this VM (nothing changed)
  unknown = 4,        // a code this layout does not define (decode only)
};

struct LayoutSpec {
  VcmdLayout layout;
  const char* name;
  const char* spec;            // spec section and revision
  std::uint32_t vccap_offset;  // VCCAP (RO)
  std::uint32_t vcmd_offset;   // VCMD (command, RW)
  std::uint32_t vcrsp_offset;  // VCRSP (response, RO)
  unsigned operand_shift;      // VCMD operand (PASID to free) low bit
  unsigned result_shift;       // VCRSP result (allocated PASID) low bit
  unsigned sc_shift;           // VCRSP status code low bit
  std::uint64_t sc_mask;       // status code width mask (after the shift)
  std::uint8_t sc_success;
  std::uint8_t sc_undefined_cmd;
  std::uint8_t sc_no_pasid;       // ALLOC status
  std::uint8_t sc_invalid_pasid;  // FREE status
};

inline constexpr LayoutSpec kLayouts[] = {
    // VT-d rev 3.0 §10.4.43-45 (as coded by Linux 24f27d32ab6b + 444d66a23c1f, QEMU RFC v1 10/22).
    {.layout = VcmdLayout::legacy,
     .name = "legacy",
     .spec = "VT-d 3.0 §10.4.43-45",
     .vccap_offset = 0xE00,
     .vcmd_offset = 0xE10,
     .vcrsp_offset = 0xE20,
     .operand_shift = 8,  // operand bits 27:8
     .result_shift = 8,   // result bits 27:8
     .sc_shift = 1,       // status bits 2:1
     .sc_mask = 0x3,
     .sc_success = 0,
     .sc_undefined_cmd = 1,
     .sc_no_pasid = 2,  // 1 in v5.8, fixed to 2 by 444d66a23c1f per spec rev 3.0
     .sc_invalid_pasid = 2},
    // VT-d rev 3.3 §10.4.43-46 (as coded by Linux 4d99efb229e6). UNDEFINED_CMD keeps the generic
    // code 1 (codes below 10h are generic; command-specific codes start at 10h).
    {.layout = VcmdLayout::rev3_3,
     .name = "rev3_3",
     .spec = "VT-d 3.3 §10.4.43-46",
     .vccap_offset = 0xE30,
     .vcmd_offset = 0xE00,
     .vcrsp_offset = 0xE10,
     .operand_shift = 16,  // operand bits 35:16
     .result_shift = 16,   // result bits 35:16
     .sc_shift = 1,        // status bits 7:1
     .sc_mask = 0x7F,
     .sc_success = 0,
     .sc_undefined_cmd = 1,
     .sc_no_pasid = 16,
     .sc_invalid_pasid = 16},
};

constexpr const LayoutSpec& layout_spec(VcmdLayout layout) noexcept {
  return layout == VcmdLayout::legacy ? kLayouts[0] : kLayouts[1];
}

// ---- the register table -----------------------------------------------------------------------

enum class VcmdReg : std::uint8_t { cap = 0, ecap = 1, vccap = 2, vcmd = 3, vcrsp = 4 };
inline constexpr std::size_t kVcmdRegCount = 5;

struct RegisterSpec {
  VcmdReg reg;
  const char* name;
  std::uint32_t offset;
  std::uint8_t width;           // bytes
  std::uint64_t reset;          // value at reset (CAP/ECAP/VCCAP: the model's configured value)
  std::uint64_t writable_mask;  // bits a guest write may set (0: read-only)
  std::uint64_t defined_mask;   // bits with a meaning here; the rest is reserved (RsvdZ)
  const char* spec;
};

constexpr std::uint64_t vcmd_defined_mask(const LayoutSpec& l) noexcept {
  return kVcmdCmdMask | (kVcmdPasidMask << l.operand_shift);
}
constexpr std::uint64_t vcrsp_defined_mask(const LayoutSpec& l) noexcept {
  return kVcrspIp | (l.sc_mask << l.sc_shift) | (kVcmdPasidMask << l.result_shift);
}

// The VCMD-related registers of one layout, in VcmdReg order. CAP and ECAP are listed for the
// bits this model defines only (a VMM that emulates the rest ORs them into its own registers).
constexpr RegisterSpec register_spec(const LayoutSpec& l, VcmdReg reg) noexcept {
  switch (reg) {
    case VcmdReg::cap:
      return {reg, "CAP", kCapRegOffset, 8, kCapCm, 0, kCapCm, "VT-d §10.4.2"};
    case VcmdReg::ecap:
      return {reg,
              "ECAP",
              kEcapRegOffset,
              8,
              kEcapPasid | kEcapSmts | kEcapVcs,
              0,
              kEcapPasid | kEcapSmts | kEcapVcs,
              "VT-d §10.4.3"};
    case VcmdReg::vccap:
      return {reg, "VCCAP", l.vccap_offset, 8, kVccapPas, 0, kVccapPas, l.spec};
    case VcmdReg::vcmd:
      return {reg, "VCMD", l.vcmd_offset, 8, 0, vcmd_defined_mask(l), vcmd_defined_mask(l), l.spec};
    case VcmdReg::vcrsp:
      break;
  }
  return {VcmdReg::vcrsp, "VCRSP", l.vcrsp_offset, 8, 0, 0, vcrsp_defined_mask(l), l.spec};
}

// The register whose 8 bytes contain offset, or false. *reg receives it.
constexpr bool register_at(const LayoutSpec& l, std::uint64_t offset, VcmdReg* reg) noexcept {
  for (std::size_t i = 0; i < kVcmdRegCount; ++i) {
    const RegisterSpec r = register_spec(l, static_cast<VcmdReg>(i));
    if (offset >= r.offset && offset < r.offset + r.width) {
      *reg = r.reg;
      return true;
    }
  }
  return false;
}

// ---- encode / decode --------------------------------------------------------------------------

struct VcmdFields {
  std::uint8_t cmd = 0;
  std::uint32_t operand = 0;   // the 20-bit PASID field
  std::uint64_t reserved = 0;  // bits set outside the defined fields
};

struct VcrspFields {
  bool ip = false;
  std::uint8_t sc = 0;
  std::uint32_t result = 0;  // the 20-bit result PASID field
  std::uint64_t reserved = 0;
};

// A VCMD value: OPERAND(operand) | cmd. Operand bits above 20 are dropped.
constexpr std::uint64_t encode_vcmd(const LayoutSpec& l, std::uint8_t cmd,
                                    std::uint32_t operand = 0) noexcept {
  return ((std::uint64_t{operand} & kVcmdPasidMask) << l.operand_shift) | cmd;
}

constexpr VcmdFields decode_vcmd(const LayoutSpec& l, std::uint64_t value) noexcept {
  return {static_cast<std::uint8_t>(value & kVcmdCmdMask),
          static_cast<std::uint32_t>((value >> l.operand_shift) & kVcmdPasidMask),
          value & ~vcmd_defined_mask(l)};
}

constexpr std::uint64_t encode_vcrsp(const LayoutSpec& l, bool ip, std::uint8_t sc,
                                     std::uint32_t result) noexcept {
  return ((std::uint64_t{result} & kVcmdPasidMask) << l.result_shift) |
         ((std::uint64_t{sc} & l.sc_mask) << l.sc_shift) | (ip ? kVcrspIp : 0);
}

constexpr VcrspFields decode_vcrsp(const LayoutSpec& l, std::uint64_t value) noexcept {
  return {(value & kVcrspIp) != 0, static_cast<std::uint8_t>((value >> l.sc_shift) & l.sc_mask),
          static_cast<std::uint32_t>((value >> l.result_shift) & kVcmdPasidMask),
          value & ~vcrsp_defined_mask(l)};
}

// The status code a layout uses for a status (unknown encodes as the undefined-command code).
constexpr std::uint8_t status_code(const LayoutSpec& l, VcmdStatus status) noexcept {
  switch (status) {
    case VcmdStatus::success:
      return l.sc_success;
    case VcmdStatus::no_pasid:
      return l.sc_no_pasid;
    case VcmdStatus::invalid_pasid:
      return l.sc_invalid_pasid;
    case VcmdStatus::undefined_cmd:
    case VcmdStatus::unknown:
      break;
  }
  return l.sc_undefined_cmd;
}

// What sc means in the response to cmd (the legacy layout reuses 2 for ALLOC and FREE).
constexpr VcmdStatus decode_status(const LayoutSpec& l, std::uint8_t cmd,
                                   std::uint8_t sc) noexcept {
  if (sc == l.sc_success) return VcmdStatus::success;
  if (sc == l.sc_undefined_cmd) return VcmdStatus::undefined_cmd;
  if (cmd == kVcmdAllocPasid && sc == l.sc_no_pasid) return VcmdStatus::no_pasid;
  if (cmd == kVcmdFreePasid && sc == l.sc_invalid_pasid) return VcmdStatus::invalid_pasid;
  return VcmdStatus::unknown;
}

// ---- compile-time checks of the tables against DOMAIN.md §4.2-4.3 ------------------------------

static_assert(layout_spec(VcmdLayout::legacy).vccap_offset == 0xE00);
static_assert(layout_spec(VcmdLayout::legacy).vcmd_offset == 0xE10);
static_assert(layout_spec(VcmdLayout::legacy).vcrsp_offset == 0xE20);
static_assert(layout_spec(VcmdLayout::rev3_3).vcmd_offset == 0xE00);
static_assert(layout_spec(VcmdLayout::rev3_3).vcrsp_offset == 0xE10);
static_assert(layout_spec(VcmdLayout::rev3_3).vccap_offset == 0xE30);
// Linux v5.8 VCMD_VRSP_RESULT_PASID(e) = ((e) >> 8) & 0xfffff; v5.15: ((e) >> 16) & 0xfffff.
static_assert(decode_vcrsp(layout_spec(VcmdLayout::legacy), 0x5 << 8).result == 5);
static_assert(decode_vcrsp(layout_spec(VcmdLayout::rev3_3), std::uint64_t{0xFFFFF} << 16).result ==
              0xFFFFF);
// Linux v5.8 VCMD_VRSP_SC(e) = ((e) >> 1) & 0x3; v5.15: ((e) & 0xff) >> 1.
static_assert(decode_vcrsp(layout_spec(VcmdLayout::legacy), 0x4).sc == 2);
static_assert(decode_vcrsp(layout_spec(VcmdLayout::rev3_3), 0x20).sc == 16);
static_assert(encode_vcmd(layout_spec(VcmdLayout::legacy), kVcmdFreePasid, 7) == 0x702);
static_assert(encode_vcmd(layout_spec(VcmdLayout::rev3_3), kVcmdFreePasid, 7) == 0x70002);

}  // namespace ioasid::wire::vtd
