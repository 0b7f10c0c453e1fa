// SPDX-License-Identifier: Apache-2.0
// errc.hpp: the one error vocabulary of ioasid and the Result<T> type every data-path call returns.
//
// Every fallible call in the C++ API returns Result<T> (tl::expected<T, Errc>) and never throws.
// Each Errc has exactly one errno (to_errno) used by the C ABI and the daemon's wire replies, and
// one answer per guest-facing transport (virtio-iommu status, VT-d VCRSP status): all of them are
// columns of one per-Errc table in src/common/errc.cc (ECOSYSTEM.md §1b "One table maps each error
// to every interface"), so that each interface answers the same error the same way and a new Errc
// cannot be added without filling every column. Guest- and client-facing interfaces collapse
// not_owner into not_found, so nobody can learn that a PASID exists in somebody else's set.
#pragma once

#include <cstdint>
#include <tl/expected.hpp>

#include "ioasid/export.h"

namespace ioasid {

// The transports' status types, declared here so that this header needs no wire header; include
// ioasid/wire/virtio_iommu.hpp or ioasid/wire/vtd_vcmd.hpp to use their values.
namespace wire::virtio_iommu {
enum class Status : std::uint8_t;  // VIRTIO_IOMMU_S_* (virtio 1.2/1.3 §5.13.6)
}
namespace wire::vtd {
enum class VcmdStatus : std::uint8_t;  // VCRSP status meaning (VT-d 3.0 / 3.3 §10.4.45-46)
}

enum class Errc : std::uint8_t {
  invalid_argument = 1,  // EINVAL: malformed argument (min > max, bad width, bad handle, ...)
  out_of_range,          // ERANGE: ID or range outside the space, or an allocator answer outside
                         //         the requested [min, max]
  not_found,             // ENOENT: no such ID / set / notifier / SPID
  not_owner,             // EACCES: the ID exists but belongs to another set (C++ API only)
  exhausted,             // ENOSPC: no free ID in the range, or capacity cannot cover a quota
  quota_exceeded,        // EDQUOT: the set holds its quota already
  busy,                  // EBUSY: FREE_PENDING ID, dying set, set token in use by a dying set
  exists,                // EEXIST: duplicate set token, SPID, allocator ops, or ID
  try_again,             // EAGAIN: first custom allocator while the default one holds IDs
  no_memory,             // ENOMEM: an internal memory allocation failed; nothing changed
  would_deadlock,        // EDEADLK: a mutating call from inside a callback run under the lock
  overflow,              // EOVERFLOW: a reference count would overflow
  unsupported,           // EOPNOTSUPP: known request, unsupported value or feature
  io_error,              // EIO: the backend (an allocator, the daemon) failed or is unreachable
  timed_out,             // ETIMEDOUT: a bounded wait (register poll, request) expired
  permission_denied,     // EPERM: credentials do not allow the operation
  // Adding a code: append it above, move kLastErrc, and give it a row in src/common/errc.cc (the
  // build fails until the table has one row per code with every column filled).
};

// The highest Errc; the codes are dense from 1 (invalid_argument) to here.
inline constexpr Errc kLastErrc = Errc::permission_denied;

template <class T>
using Result = tl::expected<T, Errc>;

// Convenience for returning an error: `return fail(Errc::not_found);`
inline tl::unexpected<Errc> fail(Errc e) noexcept { return tl::unexpected<Errc>(e); }

// Positive errno value for an error (EINVAL, ENOENT, ...).
IOASID_API int to_errno(Errc e) noexcept;

// The Errc of a positive errno value, by the same table; io_error for anything it does not hold.
// Used for errors coming in from callbacks (custom allocators) and peers.
IOASID_API Errc from_errno(int err) noexcept;

// Short, stable, lower-case name ("not_found").
IOASID_API const char* to_string(Errc e) noexcept;

// The error a guest- or client-facing interface reports: not_owner becomes not_found.
constexpr Errc guest_visible(Errc e) noexcept { return e == Errc::not_owner ? Errc::not_found : e; }

// ---- virtio-iommu column (virtio 1.2/1.3 §5.13.6 status codes) -------------------------------

// The status a virtio-iommu device writes for a failed operation, after guest_visible() (another
// VM's PASID reads as S_NOENT). Never S_OK; S_DEVERR for a value that is not an Errc.
// Context: pure, noexcept.
IOASID_API wire::virtio_iommu::Status to_virtio_status(Errc e) noexcept;

// The error a virtio-iommu guest driver reports for a status byte (any value, known or not):
// undefined values are io_error. S_OK is not an error and maps to invalid_argument (callers test
// for S_OK first). Context: pure, noexcept.
IOASID_API Errc from_virtio_status(std::uint8_t status) noexcept;

// Short name of a virtio-iommu status byte ("S_NOENT"), "S_unknown" for undefined values.
IOASID_API const char* virtio_status_name(std::uint8_t status) noexcept;

// ---- VT-d virtual command column (VT-d 3.0 §10.4.45 / 3.3 §10.4.46 VCRSP status) --------------

// The status a VT-d virtual command device answers when the host backend failed cmd with e. VT-d
// defines one failure status per command: ALLOC (kVcmdAllocPasid) -> no_pasid and FREE
// (kVcmdFreePasid) -> invalid_pasid for every Errc; any other cmd -> undefined_cmd.
// Context: pure, noexcept.
IOASID_API wire::vtd::VcmdStatus to_vtd_status(std::uint8_t cmd, Errc e) noexcept;

// The error a VT-d guest driver reports for a decoded VCRSP status (wire::vtd::decode_status):
// no_pasid -> exhausted (Linux -ENOSPC), every other status -> io_error (Linux -ENODEV
// "Unexpected error code"). success is not an error (callers test for it first) and maps to
// io_error too. Context: pure, noexcept.
IOASID_API Errc from_vtd_status(wire::vtd::VcmdStatus status) noexcept;

}  // namespace ioasid
