// SPDX-License-Identifier: Apache-2.0
// errc.hpp: the one error vocabulary of ioasid and the Result<T> type every data-path call returns.
//
// Every fallible call in the C++ API returns Result<T> (tl::expected<T, Errc>) and never throws.
// Each Errc has exactly one errno (to_errno) used by the C ABI and the daemon's wire replies; the
// guest-facing transports map Errc to their own status codes in one table (src/common/errc.cc).
// Guest- and client-facing interfaces collapse not_owner into not_found, so nobody can learn that
// a PASID exists in somebody else's set.
#pragma once

#include <cstdint>
#include <tl/expected.hpp>

#include "ioasid/export.h"

namespace ioasid {

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
};

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

}  // namespace ioasid
