// SPDX-License-Identifier: Apache-2.0
// virtio_iommu_types.hpp: the small value types shared by the virtio-iommu parser
// (src/virtio/request_parser.hpp) and the public device model (ioasid/virtio_iommu_device.hpp):
// parse outcomes, reserved regions reported by PROBE, fault events for the event queue.
//
// Spec: virtio 1.2/1.3 §5.13.6 (PROBE RESV_MEM property, fault reporting); the parse outcomes are
// the project's table in docs/virtio-iommu-pasid.md §6.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "ioasid/wire/virtio_iommu.hpp"

namespace ioasid::virtio {

namespace vi = ::ioasid::wire::virtio_iommu;

// Why parse_request refused a request (docs/virtio-iommu-pasid.md §6); the comment says how the
// device answers.
enum class ParseError : std::uint8_t {
  no_head = 1,        // fewer than 4 readable bytes                         -> used length 0
  unknown_type,       // head.type is not a request this parser knows        -> used length 0
  probe_not_offered,  // PROBE without VIRTIO_IOMMU_F_PROBE                  -> used length 0
  too_short,          // readable part shorter than the type's               -> used length 0
  too_long,           // readable part longer than the type's                -> S_INVAL
  not_negotiated,     // the request's feature bit was not negotiated        -> S_UNSUPP
  reserved_nonzero,   // a reserved field the device checks is not zero      -> S_INVAL
  unknown_flags,      // a flag bit that is undefined or not negotiated      -> S_INVAL
  inverted_range,     // virt_start > virt_end                               -> S_INVAL
  range_overflow,     // MAP length or phys end does not fit in 64 bits      -> S_RANGE
};

// The highest ParseError; the codes are dense from 1 (no_head) to here.
inline constexpr ParseError kLastParseError = ParseError::range_overflow;
inline constexpr std::size_t kParseErrorCount = static_cast<std::size_t>(kLastParseError);

// A reserved region of an endpoint, [start, end] inclusive.
struct ResvMemRegion {
  std::uint8_t subtype = vi::kResvMemTReserved;  // kResvMemTReserved or kResvMemTMsi
  std::uint64_t start = 0;
  std::uint64_t end = 0;
};

// A fault report for the event queue.
struct FaultEvent {
  std::uint8_t reason = vi::kFaultRUnknown;
  std::uint32_t flags = 0;  // kFaultF*; kFaultFAddress is set by encode_fault when address is set
  std::uint32_t endpoint = 0;
  std::optional<std::uint64_t> address;
};

}  // namespace ioasid::virtio
