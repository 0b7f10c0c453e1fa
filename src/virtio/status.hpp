// SPDX-License-Identifier: Apache-2.0
// status.hpp: how ioasid errors become virtio-iommu status codes (device side) and back (guest
// driver side).
//
// Spec and revision: virtio 1.2/1.3 §5.13.6 status codes (VIRTIO_IOMMU_S_*, Linux UAPI v0.12);
// the mapping is the virtio-iommu column of ECOSYSTEM.md §1b "One table maps each error to every
// interface", applied after guest_visible() so that a PASID of another VM reads as NOENT.
//
// Invariants: to_virtio_status never returns S_OK (every Errc is an error); from_virtio_status is
// total over all 256 byte values (unknown codes are io_error).
// Not here: parse failures (request_parser.hpp status_for), the errno column (src/common/errc.cc).
// This table is meant to move into the central error table in src/common/errc.cc.
#pragma once

#include <cstdint>

#include "ioasid/errc.hpp"
#include "ioasid/wire/virtio_iommu.hpp"

namespace ioasid::virtio {

// The status a device writes for a failed operation.
// Context: pure, noexcept.
[[nodiscard]] wire::virtio_iommu::Status to_virtio_status(Errc e) noexcept;

// The error a guest driver reports for a non-OK status byte (any value, known or not).
// Context: pure, noexcept. Returns Errc; S_OK has no error and maps to invalid_argument (callers
// check for S_OK first).
[[nodiscard]] Errc from_virtio_status(std::uint8_t status) noexcept;

// Short name of a status byte ("S_NOENT"), "S_unknown" for undefined values.
[[nodiscard]] const char* status_name(std::uint8_t status) noexcept;

}  // namespace ioasid::virtio
