// SPDX-License-Identifier: Apache-2.0
// errc.cc: the one table that maps every ioasid::Errc to its answer on every interface: errno (C
// ABI, daemon replies), name, virtio-iommu status (virtio 1.2/1.3 §5.13.6) and VT-d VCRSP status
// per command (VT-d 3.0 §10.4.45, 3.3 §10.4.46). ECOSYSTEM.md §1b "One table maps each error to
// every interface" gives the rows; the values it does not name are decided in the row comments.
//
// Invariants (checked at compile time): kTable has exactly one row per Errc, in enum order, with
// every column filled (no row answers "success" on any transport). The reverse tables (status ->
// Errc, for guest drivers) are per status code and are dense over the codes each spec defines.
#include <cerrno>
#include <cstddef>
#include <iterator>

#include "ioasid/errc.hpp"
#include "ioasid/wire/virtio_iommu.hpp"
#include "ioasid/wire/vtd_vcmd.hpp"

namespace ioasid {
namespace {

namespace vi = ::ioasid::wire::virtio_iommu;
using VtdSt = ::ioasid::wire::vtd::VcmdStatus;

struct ErrcRow {
  Errc code;
  int err;            // positive errno
  const char* name;   // to_string
  vi::Status virtio;  // virtio-iommu device answer (after guest_visible: not_owner == not_found)
  VtdSt vtd_alloc;    // VT-d VCRSP status answering a failed ALLOC
  VtdSt vtd_free;     // VT-d VCRSP status answering a failed FREE
};

// VT-d has one failure status per command (ALLOC: NO_PASID, FREE: INVALID_PASID), whatever the
// cause, and nothing changes on a failure. ECOSYSTEM.md §1b lists undefined-command for
// `unsupported`, but a VT-d device never runs ALLOC or FREE into that code (undefined-command
// answers unknown command codes only), so those rows keep the per-command status as well.
constexpr VtdSt kNoPasid = VtdSt::no_pasid;
constexpr VtdSt kInvalidPasid = VtdSt::invalid_pasid;

constexpr ErrcRow kTable[] = {
    {Errc::invalid_argument, EINVAL, "invalid_argument", vi::Status::inval, kNoPasid,
     kInvalidPasid},
    {Errc::out_of_range, ERANGE, "out_of_range", vi::Status::range, kNoPasid, kInvalidPasid},
    {Errc::not_found, ENOENT, "not_found", vi::Status::noent, kNoPasid, kInvalidPasid},
    // Folded into not_found by guest_visible() before any transport sees it; same answers.
    {Errc::not_owner, EACCES, "not_owner", vi::Status::noent, kNoPasid, kInvalidPasid},
    {Errc::exhausted, ENOSPC, "exhausted", vi::Status::nomem, kNoPasid, kInvalidPasid},
    {Errc::quota_exceeded, EDQUOT, "quota_exceeded", vi::Status::nomem, kNoPasid, kInvalidPasid},
    // FREE_PENDING: the PASID is on its way out, the request is invalid now.
    {Errc::busy, EBUSY, "busy", vi::Status::inval, kNoPasid, kInvalidPasid},
    // E.g. a second BIND of the same PASID with another spid.
    {Errc::exists, EEXIST, "exists", vi::Status::inval, kNoPasid, kInvalidPasid},
    // Host-internal state (allocator switch), not the guest's fault.
    {Errc::try_again, EAGAIN, "try_again", vi::Status::deverr, kNoPasid, kInvalidPasid},
    // Host allocation failed: insufficient resources.
    {Errc::no_memory, ENOMEM, "no_memory", vi::Status::nomem, kNoPasid, kInvalidPasid},
    // A device-model bug.
    {Errc::would_deadlock, EDEADLK, "would_deadlock", vi::Status::deverr, kNoPasid, kInvalidPasid},
    // A reference count is saturated: insufficient resources.
    {Errc::overflow, EOVERFLOW, "overflow", vi::Status::nomem, kNoPasid, kInvalidPasid},
    {Errc::unsupported, EOPNOTSUPP, "unsupported", vi::Status::unsupp, kNoPasid, kInvalidPasid},
    // Backend (daemon) unreachable or failed.
    {Errc::io_error, EIO, "io_error", vi::Status::ioerr, kNoPasid, kInvalidPasid},
    {Errc::timed_out, ETIMEDOUT, "timed_out", vi::Status::ioerr, kNoPasid, kInvalidPasid},
    // The host refused the VMM, not the guest's request.
    {Errc::permission_denied, EPERM, "permission_denied", vi::Status::deverr, kNoPasid,
     kInvalidPasid},
};

constexpr std::size_t kRows = std::size(kTable);

// One row per Errc, indexed by the enum value, every column filled: a new Errc (kLastErrc moved)
// or a row left short fails the build here.
constexpr bool table_is_dense() {
  if (kRows != static_cast<std::size_t>(kLastErrc)) return false;
  for (std::size_t i = 0; i < kRows; ++i) {
    if (static_cast<std::size_t>(kTable[i].code) != i + 1) return false;
  }
  return true;
}
static_assert(table_is_dense(), "kTable must list every Errc in enum order");

constexpr bool columns_are_filled() {
  for (const ErrcRow& r : kTable) {
    if (r.err <= 0 || r.name == nullptr) return false;
    if (r.virtio == vi::Status::ok || vi::to_u8(r.virtio) > vi::to_u8(vi::Status::nomem)) {
      return false;
    }
    if (r.vtd_alloc != VtdSt::no_pasid || r.vtd_free != VtdSt::invalid_pasid) return false;
  }
  return true;
}
static_assert(columns_are_filled(), "every Errc needs an errno, a name and an error status");

const ErrcRow* row(Errc e) {
  const auto i = static_cast<std::size_t>(e);
  if (i < 1 || i > kRows) return nullptr;
  return &kTable[i - 1];
}

// ---- reverse: virtio-iommu status byte -> Errc (guest driver side) ---------------------------

struct VirtioRow {
  vi::Status status;
  const char* name;
  Errc errc;
};

constexpr VirtioRow kVirtio[] = {
    {vi::Status::ok, "S_OK", Errc::invalid_argument},  // not an error; callers test S_OK first
    {vi::Status::ioerr, "S_IOERR", Errc::io_error},
    {vi::Status::unsupp, "S_UNSUPP", Errc::unsupported},
    {vi::Status::deverr, "S_DEVERR", Errc::io_error},
    {vi::Status::inval, "S_INVAL", Errc::invalid_argument},
    {vi::Status::range, "S_RANGE", Errc::out_of_range},
    {vi::Status::noent, "S_NOENT", Errc::not_found},
    {vi::Status::fault, "S_FAULT", Errc::invalid_argument},
    {vi::Status::nomem, "S_NOMEM", Errc::exhausted},
};

constexpr bool virtio_is_dense() {
  for (std::size_t i = 0; i < std::size(kVirtio); ++i) {
    if (vi::to_u8(kVirtio[i].status) != i) return false;
  }
  return std::size(kVirtio) == vi::to_u8(vi::Status::nomem) + 1u;
}
static_assert(virtio_is_dense(), "kVirtio must list every status code in order");

// ---- reverse: VT-d VCRSP status -> Errc (guest driver side) ----------------------------------

struct VtdRow {
  VtdSt status;
  Errc errc;
};

constexpr VtdRow kVtd[] = {
    {VtdSt::success, Errc::io_error},  // not an error; callers test success first
    {VtdSt::undefined_cmd, Errc::io_error}, {VtdSt::no_pasid, Errc::exhausted},
    {VtdSt::invalid_pasid, Errc::io_error},  // FREE: logged by the driver, never returned
    {VtdSt::unknown, Errc::io_error},        // Linux: -ENODEV "Unexpected error code"
};

constexpr bool vtd_is_dense() {
  for (std::size_t i = 0; i < std::size(kVtd); ++i) {
    if (static_cast<std::size_t>(kVtd[i].status) != i) return false;
  }
  return std::size(kVtd) == static_cast<std::size_t>(VtdSt::unknown) + 1;
}
static_assert(vtd_is_dense(), "kVtd must list every VcmdStatus in order");

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

vi::Status to_virtio_status(Errc e) noexcept {
  const ErrcRow* r = row(guest_visible(e));
  return r == nullptr ? vi::Status::deverr : r->virtio;
}

Errc from_virtio_status(std::uint8_t status) noexcept {
  return status < std::size(kVirtio) ? kVirtio[status].errc : Errc::io_error;
}

const char* virtio_status_name(std::uint8_t status) noexcept {
  return status < std::size(kVirtio) ? kVirtio[status].name : "S_unknown";
}

VtdSt to_vtd_status(std::uint8_t cmd, Errc e) noexcept {
  const ErrcRow* r = row(guest_visible(e));
  if (cmd == wire::vtd::kVcmdAllocPasid) return r == nullptr ? kNoPasid : r->vtd_alloc;
  if (cmd == wire::vtd::kVcmdFreePasid) return r == nullptr ? kInvalidPasid : r->vtd_free;
  return VtdSt::undefined_cmd;
}

Errc from_vtd_status(VtdSt status) noexcept {
  const auto i = static_cast<std::size_t>(status);
  return i < std::size(kVtd) ? kVtd[i].errc : Errc::io_error;
}

}  // namespace ioasid
