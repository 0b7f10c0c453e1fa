// SPDX-License-Identifier: Apache-2.0
// virtio_iommu.hpp: the virtio-iommu wire format as data: feature bits, config layout, request and
// status codes, every request, PROBE property and fault-event layout, with explicit little-endian
// field types (wire/le.hpp) and no bitfields; plus the project's PASID extension.
//
// Spec and revision:
//   - Base device: virtio 1.2/1.3 §5.13 "IOMMU Device" (oasis-tcs/virtio-spec
//     device-types/iommu/description.tex @ b1cf73e9), identical to the Linux UAPI header
//     <linux/virtio_iommu.h> "v0.12" (linux-libc-dev 6.1); DOMAIN.md §5.1. Feature-bit ranges:
//     virtio 1.2 §2.2 (device-type bits are 0-23 and 50-127).
//   - PASID extension (ALLOC_PASID / FREE_PASID / BIND_PASID / UNBIND_PASID, config max_pasid):
//     project-defined, NOT standardised; docs/virtio-iommu-pasid.md is its specification. It
//     follows the 2019 iommu-list proposal for the request shapes (DOMAIN.md §5.2) but picks its
//     own numbers: feature bits 56-59 (device-type range, far from the standard 0-6 and from the
//     5-9 drafts used) and request types 0x80-0x83 (standard types are 1-5, drafts used 6-8).
//
// Synopsis
//   ReqMap m{};  m.head.type = to_u8(ReqType::map);  m.domain.store(1);
//   m.virt_start.store(0x1000);  m.virt_end.store(0x1fff);  m.flags.store(kMapFRead);
//   std::uint64_t f = feature_bit(kFMapUnmap) | feature_bit(kFPasidAlloc);
//
// Invariants: every struct is trivially copyable with alignment 1 and no padding; each size and
// field offset below is checked at compile time, and src/virtio/uapi_compat_test.cc compares them
// with the kernel's header. The standard 40-byte config layout is untouched: the extension's
// fields live after it (ConfigPasid).
// Thread-safety: types and constants only. Not here: parsing and validation
// (src/virtio/request_parser.hpp), device behaviour.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ioasid/wire/le.hpp"

namespace ioasid::wire::virtio_iommu {

// ---- device identity (§5.13.1-2) ------------------------------------------------------------

inline constexpr std::uint32_t kDeviceId = 23;
inline constexpr unsigned kRequestQueue = 0;
inline constexpr unsigned kEventQueue = 1;

// ---- feature bits (bit numbers; §5.13.3) ----------------------------------------------------

inline constexpr unsigned kFInputRange = 0;    // input_range is valid
inline constexpr unsigned kFDomainRange = 1;   // domain_range is valid
inline constexpr unsigned kFMapUnmap = 2;      // MAP and UNMAP requests
inline constexpr unsigned kFBypass = 3;        // unattached endpoints bypass (superseded by 6)
inline constexpr unsigned kFProbe = 4;         // PROBE request
inline constexpr unsigned kFMmio = 5;          // MAP_F_MMIO flag
inline constexpr unsigned kFBypassConfig = 6;  // config.bypass and ATTACH_F_BYPASS

// Project extension (docs/virtio-iommu-pasid.md §2). Device-type range 50-63 of the 64-bit
// feature word; every extension bit requires kFPasidAlloc.
inline constexpr unsigned kFPasidAlloc = 56;        // ALLOC_PASID, FREE_PASID, config max_pasid
inline constexpr unsigned kFPasidMaxReq = 57;       // ALLOC_PASID carries a max_pasid limit
inline constexpr unsigned kFPasidBind = 58;         // BIND_PASID, UNBIND_PASID (ownership rule)
inline constexpr unsigned kFPasidPerEndpoint = 59;  // per-endpoint PASID spaces (needs 58)

[[nodiscard]] constexpr std::uint64_t feature_bit(unsigned bit) noexcept {
  return std::uint64_t{1} << bit;
}

inline constexpr std::uint64_t kStandardFeatures =
    feature_bit(kFInputRange) | feature_bit(kFDomainRange) | feature_bit(kFMapUnmap) |
    feature_bit(kFBypass) | feature_bit(kFProbe) | feature_bit(kFMmio) |
    feature_bit(kFBypassConfig);
inline constexpr std::uint64_t kPasidFeatures =
    feature_bit(kFPasidAlloc) | feature_bit(kFPasidMaxReq) | feature_bit(kFPasidBind) |
    feature_bit(kFPasidPerEndpoint);
// virtio 1.2 §2.2: device-type feature bits are 0-23 and 50-127 (50-63 in a 64-bit word).
inline constexpr std::uint64_t kDeviceTypeFeatureMask = 0xFFFC'0000'00FF'FFFFull;
static_assert((kStandardFeatures & kPasidFeatures) == 0);
static_assert((kPasidFeatures & ~kDeviceTypeFeatureMask) == 0);
// Bits 5-9 were used by unmerged drafts (ATTACH_TABLE 5/6/7/8, MQ 7, POSTED_MAP 9).
static_assert((kPasidFeatures & 0x3E0ull) == 0);

// ---- request types (§5.13.6) and status codes ----------------------------------------------

enum class ReqType : std::uint8_t {
  attach = 0x01,
  detach = 0x02,
  map = 0x03,
  unmap = 0x04,
  probe = 0x05,
  // Project extension, private range 0x80-0xFF (drafts used 0x06-0x08).
  alloc_pasid = 0x80,
  free_pasid = 0x81,
  bind_pasid = 0x82,
  unbind_pasid = 0x83,
};

enum class Status : std::uint8_t {
  ok = 0x00,      // success
  ioerr = 0x01,   // virtio communication error
  unsupp = 0x02,  // unsupported request
  deverr = 0x03,  // internal device error
  inval = 0x04,   // invalid parameters
  range = 0x05,   // out-of-range parameters
  noent = 0x06,   // entry not found
  fault = 0x07,   // bad address
  nomem = 0x08,   // insufficient resources
};

[[nodiscard]] constexpr std::uint8_t to_u8(ReqType t) noexcept {
  return static_cast<std::uint8_t>(t);
}
[[nodiscard]] constexpr std::uint8_t to_u8(Status s) noexcept {
  return static_cast<std::uint8_t>(s);
}

// ---- flags and property / fault codes --------------------------------------------------------

inline constexpr std::uint32_t kAttachFBypass = 1u << 0;  // needs kFBypassConfig

inline constexpr std::uint32_t kMapFRead = 1u << 0;
inline constexpr std::uint32_t kMapFWrite = 1u << 1;
inline constexpr std::uint32_t kMapFMmio = 1u << 2;  // needs kFMmio
inline constexpr std::uint32_t kMapFMask = kMapFRead | kMapFWrite | kMapFMmio;

inline constexpr std::uint16_t kProbeTNone = 0;      // end of the property list
inline constexpr std::uint16_t kProbeTResvMem = 1;   // struct ProbeResvMem
inline constexpr std::uint16_t kProbeTMask = 0xFFF;  // type is bits 11:0; bits 15:12 reserved

inline constexpr std::uint8_t kResvMemTReserved = 0;
inline constexpr std::uint8_t kResvMemTMsi = 1;

inline constexpr std::uint8_t kFaultRUnknown = 0;
inline constexpr std::uint8_t kFaultRDomain = 1;
inline constexpr std::uint8_t kFaultRMapping = 2;

inline constexpr std::uint32_t kFaultFRead = 1u << 0;
inline constexpr std::uint32_t kFaultFWrite = 1u << 1;
inline constexpr std::uint32_t kFaultFExec = 1u << 2;
inline constexpr std::uint32_t kFaultFAddress = 1u << 8;

// Project extension: BIND_PASID / UNBIND_PASID define no flag yet (every bit is reserved).
inline constexpr std::uint32_t kBindPasidFMask = 0;
// ALLOC_PASID reply: the pasid the device writes when status is not OK.
inline constexpr std::uint32_t kPasidInvalid = 0xFFFFFFFFu;
// The largest PASID the extension can carry (PCIe PASIDs are 20 bits).
inline constexpr std::uint32_t kPasidMaxLimit = 0xFFFFFu;

// ---- config space (§5.13.4) -------------------------------------------------------------------

// struct virtio_iommu_range_64 / _32: inclusive [start, end].
struct Range64 {
  le64 start;
  le64 end;
};
struct Range32 {
  le32 start;
  le32 end;
};

// struct virtio_iommu_config (40 bytes). The driver may write only bypass (0 or 1, and only with
// kFBypassConfig negotiated).
struct Config {
  le64 page_size_mask;
  Range64 input_range;
  Range32 domain_range;
  le32 probe_size;
  std::uint8_t bypass;
  std::uint8_t reserved[3];
};

// The project's config: the standard 40 bytes unchanged, then the extension (valid only when
// kFPasidAlloc is negotiated; read-only for the driver).
struct ConfigPasid {
  Config base;
  le32 max_pasid;  // the largest PASID ALLOC_PASID ever returns, in [1, kPasidMaxLimit]
  std::uint8_t reserved[4];
};

// ---- requests (§5.13.6) -----------------------------------------------------------------------

// Device-readable head of every request. The device ignores reserved (§5.13.6.1 device rules).
struct ReqHead {
  std::uint8_t type;
  std::uint8_t reserved[3];
};

// Device-writable tail of every request. The device writes reserved as zero.
struct ReqTail {
  std::uint8_t status;
  std::uint8_t reserved[3];
};

// struct virtio_iommu_req_attach (24 bytes). reserved must be zero (device MUST reject: INVAL).
struct ReqAttach {
  ReqHead head;
  le32 domain;
  le32 endpoint;
  le32 flags;
  std::uint8_t reserved[4];
  ReqTail tail;
};

// struct virtio_iommu_req_detach (24 bytes). The device MUST ignore reserved.
struct ReqDetach {
  ReqHead head;
  le32 domain;
  le32 endpoint;
  std::uint8_t reserved[8];
  ReqTail tail;
};

// struct virtio_iommu_req_map (40 bytes); [virt_start, virt_end] is inclusive.
struct ReqMap {
  ReqHead head;
  le32 domain;
  le64 virt_start;
  le64 virt_end;
  le64 phys_start;
  le32 flags;
  ReqTail tail;
};

// struct virtio_iommu_req_unmap (32 bytes); [virt_start, virt_end] is inclusive.
struct ReqUnmap {
  ReqHead head;
  le32 domain;
  le64 virt_start;
  le64 virt_end;
  std::uint8_t reserved[4];
  ReqTail tail;
};

// struct virtio_iommu_req_probe, device-readable part (72 bytes). The device-writable part that
// follows is u8 properties[config.probe_size] then a ReqTail. The device MUST ignore reserved.
struct ReqProbe {
  ReqHead head;
  le32 endpoint;
  std::uint8_t reserved[64];
};

// struct virtio_iommu_probe_property: type is bits 11:0 of the first le16 (kProbeTMask), bits
// 15:12 are reserved; length counts the bytes after this 4-byte header. The next property starts
// length + 4 bytes after this one.
struct ProbeProperty {
  le16 type;
  le16 length;
};

// struct virtio_iommu_probe_resv_mem (24 bytes, length = 20); [start, end] is inclusive.
struct ProbeResvMem {
  ProbeProperty head;
  std::uint8_t subtype;
  std::uint8_t reserved[3];
  le64 start;
  le64 end;
};

// struct virtio_iommu_fault (24 bytes), written by the device into an eventq buffer. The kernel
// header names reserved1 "reserved2" (u8[4]); the layout is the same.
struct Fault {
  std::uint8_t reason;
  std::uint8_t reserved[3];
  le32 flags;
  le32 endpoint;
  le32 reserved1;
  le64 address;
};

// ---- PASID extension requests (docs/virtio-iommu-pasid.md §4) ---------------------------------

// ALLOC_PASID without kFPasidMaxReq (16 bytes): readable {head, reserved} (8 bytes, reserved must
// be zero), writable {pasid, tail} (8 bytes).
struct ReqAllocPasid {
  ReqHead head;
  le32 reserved;
  le32 pasid;  // device-writable
  ReqTail tail;
};

// ALLOC_PASID with kFPasidMaxReq negotiated: the same 16 bytes, the reserved word becomes
// max_pasid (0 = no request-level limit; otherwise the device returns a PASID <= max_pasid).
struct ReqAllocPasidMax {
  ReqHead head;
  le32 max_pasid;
  le32 pasid;  // device-writable
  ReqTail tail;
};

// FREE_PASID (16 bytes): readable {head, reserved (zero), pasid} (12 bytes), writable {tail}.
struct ReqFreePasid {
  ReqHead head;
  le32 reserved;
  le32 pasid;
  ReqTail tail;
};

// BIND_PASID (24 bytes, the ATTACH shape): readable {head, endpoint, pasid, flags, reserved}
// (20 bytes; flags: no bit defined, reserved: zero), writable {tail}.
struct ReqBindPasid {
  ReqHead head;
  le32 endpoint;
  le32 pasid;
  le32 flags;
  std::uint8_t reserved[4];
  ReqTail tail;
};

// UNBIND_PASID (24 bytes): the same layout as BIND_PASID.
struct ReqUnbindPasid {
  ReqHead head;
  le32 endpoint;
  le32 pasid;
  le32 flags;
  std::uint8_t reserved[4];
  ReqTail tail;
};

// ---- layout checks ------------------------------------------------------------------------------

#define IOASID_VIOMMU_WIRE(S, size)                                              \
  static_assert(sizeof(S) == (size), #S ": size");                               \
  static_assert(alignof(S) == 1, #S ": alignment");                              \
  static_assert(std::is_trivially_copyable_v<S> && std::is_standard_layout_v<S>, \
                #S ": not a plain wire struct")
#define IOASID_VIOMMU_AT(S, field, off) \
  static_assert(offsetof(S, field) == (off), #S "::" #field ": offset")

IOASID_VIOMMU_WIRE(Range64, 16);
IOASID_VIOMMU_AT(Range64, start, 0);
IOASID_VIOMMU_AT(Range64, end, 8);
IOASID_VIOMMU_WIRE(Range32, 8);
IOASID_VIOMMU_AT(Range32, start, 0);
IOASID_VIOMMU_AT(Range32, end, 4);

IOASID_VIOMMU_WIRE(Config, 40);
IOASID_VIOMMU_AT(Config, page_size_mask, 0);
IOASID_VIOMMU_AT(Config, input_range, 8);
IOASID_VIOMMU_AT(Config, domain_range, 24);
IOASID_VIOMMU_AT(Config, probe_size, 32);
IOASID_VIOMMU_AT(Config, bypass, 36);
IOASID_VIOMMU_AT(Config, reserved, 37);

IOASID_VIOMMU_WIRE(ConfigPasid, 48);
IOASID_VIOMMU_AT(ConfigPasid, base, 0);
IOASID_VIOMMU_AT(ConfigPasid, max_pasid, 40);
IOASID_VIOMMU_AT(ConfigPasid, reserved, 44);

IOASID_VIOMMU_WIRE(ReqHead, 4);
IOASID_VIOMMU_AT(ReqHead, type, 0);
IOASID_VIOMMU_AT(ReqHead, reserved, 1);
IOASID_VIOMMU_WIRE(ReqTail, 4);
IOASID_VIOMMU_AT(ReqTail, status, 0);
IOASID_VIOMMU_AT(ReqTail, reserved, 1);

IOASID_VIOMMU_WIRE(ReqAttach, 24);
IOASID_VIOMMU_AT(ReqAttach, head, 0);
IOASID_VIOMMU_AT(ReqAttach, domain, 4);
IOASID_VIOMMU_AT(ReqAttach, endpoint, 8);
IOASID_VIOMMU_AT(ReqAttach, flags, 12);
IOASID_VIOMMU_AT(ReqAttach, reserved, 16);
IOASID_VIOMMU_AT(ReqAttach, tail, 20);

IOASID_VIOMMU_WIRE(ReqDetach, 24);
IOASID_VIOMMU_AT(ReqDetach, head, 0);
IOASID_VIOMMU_AT(ReqDetach, domain, 4);
IOASID_VIOMMU_AT(ReqDetach, endpoint, 8);
IOASID_VIOMMU_AT(ReqDetach, reserved, 12);
IOASID_VIOMMU_AT(ReqDetach, tail, 20);

IOASID_VIOMMU_WIRE(ReqMap, 40);
IOASID_VIOMMU_AT(ReqMap, head, 0);
IOASID_VIOMMU_AT(ReqMap, domain, 4);
IOASID_VIOMMU_AT(ReqMap, virt_start, 8);
IOASID_VIOMMU_AT(ReqMap, virt_end, 16);
IOASID_VIOMMU_AT(ReqMap, phys_start, 24);
IOASID_VIOMMU_AT(ReqMap, flags, 32);
IOASID_VIOMMU_AT(ReqMap, tail, 36);

IOASID_VIOMMU_WIRE(ReqUnmap, 32);
IOASID_VIOMMU_AT(ReqUnmap, head, 0);
IOASID_VIOMMU_AT(ReqUnmap, domain, 4);
IOASID_VIOMMU_AT(ReqUnmap, virt_start, 8);
IOASID_VIOMMU_AT(ReqUnmap, virt_end, 16);
IOASID_VIOMMU_AT(ReqUnmap, reserved, 24);
IOASID_VIOMMU_AT(ReqUnmap, tail, 28);

IOASID_VIOMMU_WIRE(ReqProbe, 72);
IOASID_VIOMMU_AT(ReqProbe, head, 0);
IOASID_VIOMMU_AT(ReqProbe, endpoint, 4);
IOASID_VIOMMU_AT(ReqProbe, reserved, 8);

IOASID_VIOMMU_WIRE(ProbeProperty, 4);
IOASID_VIOMMU_AT(ProbeProperty, type, 0);
IOASID_VIOMMU_AT(ProbeProperty, length, 2);

IOASID_VIOMMU_WIRE(ProbeResvMem, 24);
IOASID_VIOMMU_AT(ProbeResvMem, head, 0);
IOASID_VIOMMU_AT(ProbeResvMem, subtype, 4);
IOASID_VIOMMU_AT(ProbeResvMem, reserved, 5);
IOASID_VIOMMU_AT(ProbeResvMem, start, 8);
IOASID_VIOMMU_AT(ProbeResvMem, end, 16);

IOASID_VIOMMU_WIRE(Fault, 24);
IOASID_VIOMMU_AT(Fault, reason, 0);
IOASID_VIOMMU_AT(Fault, reserved, 1);
IOASID_VIOMMU_AT(Fault, flags, 4);
IOASID_VIOMMU_AT(Fault, endpoint, 8);
IOASID_VIOMMU_AT(Fault, reserved1, 12);
IOASID_VIOMMU_AT(Fault, address, 16);

IOASID_VIOMMU_WIRE(ReqAllocPasid, 16);
IOASID_VIOMMU_AT(ReqAllocPasid, head, 0);
IOASID_VIOMMU_AT(ReqAllocPasid, reserved, 4);
IOASID_VIOMMU_AT(ReqAllocPasid, pasid, 8);
IOASID_VIOMMU_AT(ReqAllocPasid, tail, 12);

IOASID_VIOMMU_WIRE(ReqAllocPasidMax, 16);
IOASID_VIOMMU_AT(ReqAllocPasidMax, head, 0);
IOASID_VIOMMU_AT(ReqAllocPasidMax, max_pasid, 4);
IOASID_VIOMMU_AT(ReqAllocPasidMax, pasid, 8);
IOASID_VIOMMU_AT(ReqAllocPasidMax, tail, 12);

IOASID_VIOMMU_WIRE(ReqFreePasid, 16);
IOASID_VIOMMU_AT(ReqFreePasid, head, 0);
IOASID_VIOMMU_AT(ReqFreePasid, reserved, 4);
IOASID_VIOMMU_AT(ReqFreePasid, pasid, 8);
IOASID_VIOMMU_AT(ReqFreePasid, tail, 12);

IOASID_VIOMMU_WIRE(ReqBindPasid, 24);
IOASID_VIOMMU_AT(ReqBindPasid, head, 0);
IOASID_VIOMMU_AT(ReqBindPasid, endpoint, 4);
IOASID_VIOMMU_AT(ReqBindPasid, pasid, 8);
IOASID_VIOMMU_AT(ReqBindPasid, flags, 12);
IOASID_VIOMMU_AT(ReqBindPasid, reserved, 16);
IOASID_VIOMMU_AT(ReqBindPasid, tail, 20);

IOASID_VIOMMU_WIRE(ReqUnbindPasid, 24);
IOASID_VIOMMU_AT(ReqUnbindPasid, head, 0);
IOASID_VIOMMU_AT(ReqUnbindPasid, endpoint, 4);
IOASID_VIOMMU_AT(ReqUnbindPasid, pasid, 8);
IOASID_VIOMMU_AT(ReqUnbindPasid, flags, 12);
IOASID_VIOMMU_AT(ReqUnbindPasid, reserved, 16);
IOASID_VIOMMU_AT(ReqUnbindPasid, tail, 20);

#undef IOASID_VIOMMU_AT
#undef IOASID_VIOMMU_WIRE

}  // namespace ioasid::wire::virtio_iommu
