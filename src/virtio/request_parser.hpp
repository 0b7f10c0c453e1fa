// SPDX-License-Identifier: Apache-2.0
// request_parser.hpp: the virtio-iommu request parser and encoders: a pure function from the
// device-readable bytes of one request (and the negotiated features) to a decoded Request or a
// ParseError that says how the device answers, plus encoders for requests (driver side, fuzzer
// round trip) and for the device-writable parts (tail, ALLOC_PASID reply, PROBE properties, fault
// events).
//
// Spec and revision: virtio 1.2/1.3 §5.13.6 "Device operations" (oasis-tcs/virtio-spec
// device-types/iommu/description.tex @ b1cf73e9, Linux UAPI v0.12) for the base requests; the
// project's PASID extension, docs/virtio-iommu-pasid.md, for ALLOC/FREE/BIND/UNBIND_PASID.
//
// What parse_request checks, in this order (the first failure wins):
//   1. a head (4 bytes) is present                    else no_head         -> used length 0
//   2. head.type is a known request type              else unknown_type    -> used length 0
//   3. PROBE needs VIRTIO_IOMMU_F_PROBE               else probe_not_offered -> used length 0
//   4. the readable part has exactly the type's size  shorter: too_short   -> used length 0
//                                                     longer:  too_long    -> S_INVAL
//   5. the request's feature was negotiated           else not_negotiated  -> S_UNSUPP
//   6. reserved fields the spec lets the device check are zero
//                                                     else reserved_nonzero -> S_INVAL
//   7. no flag bit outside the negotiated set         else unknown_flags   -> S_INVAL
//   8. MAP/UNMAP ranges: virt_start <= virt_end       else inverted_range  -> S_INVAL
//      MAP: the mapping's length and phys end fit in 64 bits  else range_overflow -> S_RANGE
// Reserved fields the spec says the device MUST ignore are ignored: head.reserved (all requests),
// DETACH reserved[8], PROBE reserved[64]. Everything that needs device state (unknown domain or
// endpoint, alignment to page_size_mask, input_range, overlaps, PASID ownership) is the device
// model's job, not the parser's.
//
// Choices (documented in docs/virtio-iommu-pasid.md §6):
//   - Unknown type: used length 0 (the spec's SHOULD, cloud-hypervisor and crosvm), not QEMU's
//     S_UNSUPP (ECOSYSTEM.md "What users expect" #2).
//   - Known type whose feature was not negotiated (MAP/UNMAP without F_MAP_UNMAP, the PASID
//     requests without their bits): S_UNSUPP, the spec's "unsupported request" status, so the
//     driver learns why. PROBE is the exception: the spec asks for used length 0.
//   - Readable part too long: S_INVAL (the tail is still found in the writable part).
//   - UNMAP reserved nonzero: S_INVAL without unmapping (the spec's MAY, taken).
//   - MAP of the whole 64-bit space ([0, 2^64-1], length 2^64): S_RANGE.
//
// Synopsis
//   ParseResult r = parse_request(readable, negotiated);
//   if (!r) { if (auto st = status_for(r.error())) write *st; else used length 0; }
//   else std::visit(handler, *r);
//
// Thread-safety: pure functions. Context: noexcept, no allocation.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <variant>

#include <tl/expected.hpp>

#include "ioasid/virtio_iommu_types.hpp"
#include "ioasid/wire/virtio_iommu.hpp"

namespace ioasid::virtio {

// ---- decoded requests (host byte order; ranges inclusive, [virt_start, virt_end]) ---------------

struct AttachRequest {
  std::uint32_t domain = 0;
  std::uint32_t endpoint = 0;
  std::uint32_t flags = 0;  // only kAttachFBypass, and only with F_BYPASS_CONFIG
  friend bool operator==(const AttachRequest&, const AttachRequest&) = default;
};

struct DetachRequest {
  std::uint32_t domain = 0;
  std::uint32_t endpoint = 0;
  friend bool operator==(const DetachRequest&, const DetachRequest&) = default;
};

struct MapRequest {
  std::uint32_t domain = 0;
  std::uint64_t virt_start = 0;  // [virt_start, virt_end], virt_start <= virt_end
  std::uint64_t virt_end = 0;
  std::uint64_t phys_start = 0;  // phys_start + (virt_end - virt_start) does not overflow
  std::uint32_t flags = 0;       // kMapFRead | kMapFWrite | (kMapFMmio with F_MMIO)
  friend bool operator==(const MapRequest&, const MapRequest&) = default;
};

struct UnmapRequest {
  std::uint32_t domain = 0;
  std::uint64_t virt_start = 0;  // [virt_start, virt_end], virt_start <= virt_end
  std::uint64_t virt_end = 0;
  friend bool operator==(const UnmapRequest&, const UnmapRequest&) = default;
};

struct ProbeRequest {
  std::uint32_t endpoint = 0;
  friend bool operator==(const ProbeRequest&, const ProbeRequest&) = default;
};

struct AllocPasidRequest {
  // With F_PASID_MAX_REQ: the request-level limit, 0 = none. Without it: always 0.
  std::uint32_t max_pasid = 0;
  friend bool operator==(const AllocPasidRequest&, const AllocPasidRequest&) = default;
};

struct FreePasidRequest {
  std::uint32_t pasid = 0;
  friend bool operator==(const FreePasidRequest&, const FreePasidRequest&) = default;
};

struct BindPasidRequest {
  std::uint32_t endpoint = 0;
  std::uint32_t pasid = 0;
  std::uint32_t flags = 0;  // no flag defined yet: always 0 after a successful parse
  friend bool operator==(const BindPasidRequest&, const BindPasidRequest&) = default;
};

struct UnbindPasidRequest {
  std::uint32_t endpoint = 0;
  std::uint32_t pasid = 0;
  std::uint32_t flags = 0;  // no flag defined yet: always 0 after a successful parse
  friend bool operator==(const UnbindPasidRequest&, const UnbindPasidRequest&) = default;
};

using Request =
    std::variant<AttachRequest, DetachRequest, MapRequest, UnmapRequest, ProbeRequest,
                 AllocPasidRequest, FreePasidRequest, BindPasidRequest, UnbindPasidRequest>;

// The wire type of a decoded request.
[[nodiscard]] vi::ReqType request_type(const Request& r) noexcept;

// ---- parse outcome (ParseError: ioasid/virtio_iommu_types.hpp) ---------------------------------

using ParseResult = tl::expected<Request, ParseError>;

// The status the device writes for a parse failure, or nullopt when it must return the buffers
// unwritten (used length 0).
[[nodiscard]] std::optional<vi::Status> status_for(ParseError e) noexcept;

// Stable lower-case name ("too_short"), for logs and counters.
[[nodiscard]] const char* to_string(ParseError e) noexcept;

// The exact size of the device-readable part of a request of this type (head included), or
// nullopt for an unknown type. Independent of the negotiated features.
[[nodiscard]] std::optional<std::size_t> readable_size(std::uint8_t type) noexcept;

// The size of the device-writable part of a request (the tail, the ALLOC_PASID pasid, PROBE's
// properties[probe_size]). A buffer smaller than this cannot take the reply: used length 0.
[[nodiscard]] std::size_t writable_size(const Request& r, std::uint32_t probe_size) noexcept;

// Parses the device-readable bytes of one request (head first) against the negotiated features.
// Context: pure, noexcept, no allocation; any input is safe.
// Returns: the decoded request, or the ParseError of the first failed check (see top of file).
[[nodiscard]] ParseResult parse_request(std::span<const std::byte> readable,
                                        std::uint64_t negotiated_features) noexcept;

// ---- the ALLOC_PASID / FREE_PASID pair in line ---------------------------------------------

// What parse_pasid_request found: one of the hot pair, or `other` (any other type, or anything
// parse_request would not accept as ALLOC_PASID / FREE_PASID): ask parse_request.
struct PasidParse {
  enum class Kind : std::uint8_t { other, alloc, free };
  Kind kind = Kind::other;
  std::uint32_t value = 0;  // alloc: AllocPasidRequest::max_pasid; free: FreePasidRequest::pasid
};

namespace detail {
inline std::uint32_t le32_at(const std::byte* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}
}  // namespace detail

// parse_request for the device's hot pair without building a Request: whenever parse_request
// returns an AllocPasidRequest{m} this returns {alloc, m}, whenever it returns a
// FreePasidRequest{p} this returns {free, p}, and `other` in every other case (checked both ways by
// request_parser_fuzz). The checks are parse_request's for these types: exact size, the feature,
// reserved words zero (ALLOC_PASID's word is max_pasid only with F_PASID_MAX_REQ).
[[nodiscard]] inline PasidParse parse_pasid_request(std::span<const std::byte> readable,
                                                    std::uint64_t negotiated_features) noexcept {
  using Kind = PasidParse::Kind;
  if ((negotiated_features & vi::feature_bit(vi::kFPasidAlloc)) == 0) return {};
  const std::byte* b = readable.data();
  if (readable.size() == offsetof(vi::ReqAllocPasidMax, pasid) &&
      std::to_integer<std::uint8_t>(b[0]) == vi::to_u8(vi::ReqType::alloc_pasid)) {
    const std::uint32_t word = detail::le32_at(b + offsetof(vi::ReqAllocPasidMax, max_pasid));
    if ((negotiated_features & vi::feature_bit(vi::kFPasidMaxReq)) != 0) return {Kind::alloc, word};
    if (word == 0) return {Kind::alloc, 0};
    return {};
  }
  if (readable.size() == offsetof(vi::ReqFreePasid, tail) &&
      std::to_integer<std::uint8_t>(b[0]) == vi::to_u8(vi::ReqType::free_pasid) &&
      detail::le32_at(b + offsetof(vi::ReqFreePasid, reserved)) == 0) {
    return {Kind::free, detail::le32_at(b + offsetof(vi::ReqFreePasid, pasid))};
  }
  return {};
}

// True when the feature set respects the extension's dependencies: kFPasidMaxReq, kFPasidBind
// and kFPasidPerEndpoint each require kFPasidAlloc. (A device rejects FEATURES_OK otherwise.)
[[nodiscard]] bool features_consistent(std::uint64_t features) noexcept;

// ---- encoders
// -------------------------------------------------------------------------------------

// The device-readable bytes of a request, as a driver sends them (reserved fields zero).
struct EncodedRequest {
  std::array<std::byte, sizeof(vi::ReqProbe)> bytes{};  // the largest readable part (72)
  std::size_t size = 0;
  [[nodiscard]] std::span<const std::byte> span() const noexcept { return {bytes.data(), size}; }
};

// Encodes r. parse_request(encode_request(r).span(), f) == r for every r that parse_request
// returned under features f.
[[nodiscard]] EncodedRequest encode_request(const Request& r) noexcept;

// The readable parts of ALLOC_PASID and FREE_PASID as encode_request writes them, without the
// variant: the guest driver's hot pair.
[[nodiscard]] inline std::array<std::byte, 8> encode_alloc_pasid_request(
    std::uint32_t max_pasid) noexcept {
  std::array<std::byte, 8> b{};
  b[0] = std::byte{vi::to_u8(vi::ReqType::alloc_pasid)};
  for (int i = 0; i < 4; ++i) b[4 + i] = static_cast<std::byte>(max_pasid >> (8 * i));
  return b;
}
[[nodiscard]] inline std::array<std::byte, 12> encode_free_pasid_request(
    std::uint32_t pasid) noexcept {
  std::array<std::byte, 12> b{};
  b[0] = std::byte{vi::to_u8(vi::ReqType::free_pasid)};
  for (int i = 0; i < 4; ++i) b[8 + i] = static_cast<std::byte>(pasid >> (8 * i));
  return b;
}

// Writes a tail {status, reserved = 0} at out[0, 4). Returns false (nothing written) if out is
// shorter than 4 bytes. Inline, one 4-byte store: every request writes one.
[[nodiscard]] inline bool encode_tail(std::span<std::byte> out, vi::Status status) noexcept {
  static_assert(sizeof(vi::ReqTail) == 4);
  if (out.size() < sizeof(vi::ReqTail)) return false;
  const std::byte tail[4] = {std::byte{vi::to_u8(status)}, std::byte{0}, std::byte{0},
                             std::byte{0}};
  std::memcpy(out.data(), tail, sizeof(tail));
  return true;
}

// Writes ALLOC_PASID's writable part {le32 pasid; tail} at out[0, 8): pasid when status is OK,
// kPasidInvalid otherwise. Returns false (nothing written) if out is shorter than 8 bytes.
// Inline, one 8-byte store.
[[nodiscard]] inline bool encode_alloc_pasid_reply(std::span<std::byte> out, vi::Status status,
                                                   std::uint32_t pasid) noexcept {
  static_assert(sizeof(vi::ReqAllocPasid) - offsetof(vi::ReqAllocPasid, pasid) == 8);
  if (out.size() < 8) return false;
  const std::uint32_t value = status == vi::Status::ok ? pasid : vi::kPasidInvalid;
  std::uint64_t reply = std::uint64_t{value} | std::uint64_t{vi::to_u8(status)} << 32;
  if constexpr (std::endian::native == std::endian::big) reply = __builtin_bswap64(reply);
  std::memcpy(out.data(), &reply, sizeof(reply));
  return true;
}

// Fills PROBE's properties[] (out is exactly properties[probe_size]) with one RESV_MEM property
// per region, then zeroes to the end (which also terminates the list, type 0).
// Returns: the bytes of properties written, or nullopt (nothing written) if they do not fit.
[[nodiscard]] std::optional<std::size_t> encode_probe_properties(
    std::span<std::byte> out, std::span<const ResvMemRegion> regions) noexcept;

// Writes a 24-byte struct virtio_iommu_fault at out[0, 24) (reserved fields zero, undefined flag
// bits cleared). Returns false (nothing written) if out is shorter.
[[nodiscard]] bool encode_fault(std::span<std::byte> out, const FaultEvent& f) noexcept;

}  // namespace ioasid::virtio
