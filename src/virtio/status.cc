// SPDX-License-Identifier: Apache-2.0
// status.cc: the virtio-iommu column of the error table (virtio 1.2/1.3 §5.13.6 status codes).
// Kept here until it moves into src/common/errc.cc next to the errno column; the rows follow
// ECOSYSTEM.md §1b, with the Errc values that table does not name decided below.
#include "virtio/status.hpp"

#include <iterator>

namespace ioasid::virtio {

namespace vi = ::ioasid::wire::virtio_iommu;

vi::Status to_virtio_status(Errc e) noexcept {
  switch (guest_visible(e)) {
    case Errc::invalid_argument:
      return vi::Status::inval;
    case Errc::out_of_range:
      return vi::Status::range;
    case Errc::not_found:
    case Errc::not_owner:  // folded by guest_visible already; listed for completeness
      return vi::Status::noent;
    case Errc::exhausted:
    case Errc::quota_exceeded:
      return vi::Status::nomem;
    case Errc::busy:  // FREE_PENDING: the PASID is on its way out, the request is invalid now
      return vi::Status::inval;
    case Errc::exists:  // e.g. a second BIND of the same PASID with another spid
      return vi::Status::inval;
    case Errc::no_memory:  // host allocation failed: insufficient resources
      return vi::Status::nomem;
    case Errc::overflow:  // a reference count is saturated: insufficient resources
      return vi::Status::nomem;
    case Errc::unsupported:
      return vi::Status::unsupp;
    case Errc::io_error:  // backend (daemon) unreachable or failed
    case Errc::timed_out:
      return vi::Status::ioerr;
    case Errc::try_again:          // host-internal state (allocator switch), not the guest's fault
    case Errc::would_deadlock:     // a device-model bug
    case Errc::permission_denied:  // the host refused the VMM, not the guest's request
      return vi::Status::deverr;
  }
  return vi::Status::deverr;
}

Errc from_virtio_status(std::uint8_t status) noexcept {
  switch (static_cast<vi::Status>(status)) {
    case vi::Status::ok:
      return Errc::invalid_argument;  // not an error; documented: callers test S_OK first
    case vi::Status::ioerr:
      return Errc::io_error;
    case vi::Status::unsupp:
      return Errc::unsupported;
    case vi::Status::deverr:
      return Errc::io_error;
    case vi::Status::inval:
      return Errc::invalid_argument;
    case vi::Status::range:
      return Errc::out_of_range;
    case vi::Status::noent:
      return Errc::not_found;
    case vi::Status::fault:
      return Errc::invalid_argument;
    case vi::Status::nomem:
      return Errc::exhausted;
  }
  return Errc::io_error;
}

const char* status_name(std::uint8_t status) noexcept {
  static constexpr const char* kNames[] = {"S_OK",    "S_IOERR", "S_UNSUPP", "S_DEVERR", "S_INVAL",
                                           "S_RANGE", "S_NOENT", "S_FAULT",  "S_NOMEM"};
  return status < std::size(kNames) ? kNames[status] : "S_unknown";
}

}  // namespace ioasid::virtio
