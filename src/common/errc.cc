// SPDX-License-Identifier: Apache-2.0
// errc.cc: the one table that maps every ioasid::Errc to its errno and name. Transports add their
// own status columns here as they land, so that each interface answers the same error the same way.
#include <cerrno>

#include "ioasid/errc.hpp"

namespace ioasid {
namespace {

struct ErrcRow {
  Errc code;
  int err;
  const char* name;
};

constexpr ErrcRow kTable[] = {
    {Errc::invalid_argument, EINVAL, "invalid_argument"},
    {Errc::out_of_range, ERANGE, "out_of_range"},
    {Errc::not_found, ENOENT, "not_found"},
    {Errc::not_owner, EACCES, "not_owner"},
    {Errc::exhausted, ENOSPC, "exhausted"},
    {Errc::quota_exceeded, EDQUOT, "quota_exceeded"},
    {Errc::busy, EBUSY, "busy"},
    {Errc::exists, EEXIST, "exists"},
    {Errc::try_again, EAGAIN, "try_again"},
    {Errc::no_memory, ENOMEM, "no_memory"},
    {Errc::would_deadlock, EDEADLK, "would_deadlock"},
    {Errc::overflow, EOVERFLOW, "overflow"},
    {Errc::unsupported, EOPNOTSUPP, "unsupported"},
    {Errc::io_error, EIO, "io_error"},
    {Errc::timed_out, ETIMEDOUT, "timed_out"},
    {Errc::permission_denied, EPERM, "permission_denied"},
};

// The table is indexed by the enum value: keep it dense and in order.
constexpr bool table_is_dense() {
  for (unsigned i = 0; i < sizeof(kTable) / sizeof(kTable[0]); ++i) {
    if (static_cast<unsigned>(kTable[i].code) != i + 1) return false;
  }
  return true;
}
static_assert(table_is_dense(), "kTable must list every Errc in enum order");

const ErrcRow* row(Errc e) {
  const unsigned i = static_cast<unsigned>(e);
  if (i < 1 || i > sizeof(kTable) / sizeof(kTable[0])) return nullptr;
  return &kTable[i - 1];
}

}  // namespace

int to_errno(Errc e) noexcept {
  const ErrcRow* r = row(e);
  return r == nullptr ? EIO : r->err;
}

Errc from_errno(int err) noexcept {
  for (const ErrcRow& r : kTable) {
    if (r.err == err) return r.code;
  }
  return Errc::io_error;
}

const char* to_string(Errc e) noexcept {
  const ErrcRow* r = row(e);
  return r == nullptr ? "unknown" : r->name;
}

}  // namespace ioasid
