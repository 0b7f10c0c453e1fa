// SPDX-License-Identifier: Apache-2.0
// errc_test.cc: the error table (src/common/errc.cc) is complete, one-to-one where it must be,
// and hides ownership from guests, in every column: errno and name, the virtio-iommu status
// (virtio 1.2/1.3 §5.13.6, ECOSYSTEM.md §1b) and the VT-d VCRSP status (VT-d 3.0 §10.4.45 / 3.3
// §10.4.46), exhaustively over every Errc and every status value, both directions.
#include "ioasid/errc.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <iterator>
#include <set>
#include <string>

#include "ioasid/wire/virtio_iommu.hpp"
#include "ioasid/wire/vtd_vcmd.hpp"

namespace ioasid {
namespace {

namespace vi = ::ioasid::wire::virtio_iommu;
using wire::vtd::kVcmdAllocPasid;
using wire::vtd::kVcmdFreePasid;
using wire::vtd::VcmdStatus;

constexpr Errc kAll[] = {
    Errc::invalid_argument, Errc::out_of_range,   Errc::not_found,      Errc::not_owner,
    Errc::exhausted,        Errc::quota_exceeded, Errc::busy,           Errc::exists,
    Errc::try_again,        Errc::no_memory,      Errc::would_deadlock, Errc::overflow,
    Errc::unsupported,      Errc::io_error,       Errc::timed_out,      Errc::permission_denied,
};

TEST(Errc, KAllListsEveryCode) {
  ASSERT_EQ(std::size(kAll), static_cast<std::size_t>(kLastErrc));
  for (std::size_t i = 0; i < std::size(kAll); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(kAll[i]), i + 1);
  }
}

TEST(Errc, EveryCodeHasADistinctErrnoAndName) {
  std::set<int> errnos;
  std::set<std::string> names;
  for (Errc e : kAll) {
    EXPECT_GT(to_errno(e), 0);
    EXPECT_TRUE(errnos.insert(to_errno(e)).second) << to_string(e);
    EXPECT_TRUE(names.insert(to_string(e)).second);
    EXPECT_NE(std::string(to_string(e)), "unknown");
  }
}

TEST(Errc, KnownMappings) {
  EXPECT_EQ(to_errno(Errc::not_found), ENOENT);
  EXPECT_EQ(to_errno(Errc::exhausted), ENOSPC);
  EXPECT_EQ(to_errno(Errc::busy), EBUSY);
  EXPECT_EQ(to_errno(Errc::try_again), EAGAIN);
  EXPECT_EQ(to_errno(Errc::out_of_range), ERANGE);
  EXPECT_EQ(to_errno(static_cast<Errc>(200)), EIO);
  EXPECT_STREQ(to_string(static_cast<Errc>(0)), "unknown");
}

TEST(Errc, FromErrnoInvertsTheTable) {
  for (Errc e : kAll) EXPECT_EQ(from_errno(to_errno(e)), e) << to_string(e);
  EXPECT_EQ(from_errno(ENODEV), Errc::io_error);
  EXPECT_EQ(from_errno(0), Errc::io_error);
  EXPECT_EQ(from_errno(-ENOENT), Errc::io_error);
}

TEST(Errc, GuestsCannotTellNotOwnedFromMissing) {
  EXPECT_EQ(guest_visible(Errc::not_owner), Errc::not_found);
  for (Errc e : kAll) {
    if (e != Errc::not_owner) {
      EXPECT_EQ(guest_visible(e), e);
    }
  }
}

// ---- virtio-iommu column ----------------------------------------------------------------------

TEST(VirtioStatus, EveryErrcIsAnError) {
  for (Errc e : kAll) {
    const vi::Status s = to_virtio_status(e);
    EXPECT_NE(s, vi::Status::ok) << to_string(e);
    EXPECT_LE(vi::to_u8(s), vi::to_u8(vi::Status::nomem)) << to_string(e);
  }
  // A value that is no Errc: an internal device error.
  EXPECT_EQ(to_virtio_status(static_cast<Errc>(0)), vi::Status::deverr);
  EXPECT_EQ(to_virtio_status(static_cast<Errc>(200)), vi::Status::deverr);
}

TEST(VirtioStatus, TableRows) {
  EXPECT_EQ(to_virtio_status(Errc::invalid_argument), vi::Status::inval);
  EXPECT_EQ(to_virtio_status(Errc::out_of_range), vi::Status::range);
  EXPECT_EQ(to_virtio_status(Errc::not_found), vi::Status::noent);
  EXPECT_EQ(to_virtio_status(Errc::exhausted), vi::Status::nomem);
  EXPECT_EQ(to_virtio_status(Errc::quota_exceeded), vi::Status::nomem);
  EXPECT_EQ(to_virtio_status(Errc::busy), vi::Status::inval);
  EXPECT_EQ(to_virtio_status(Errc::exists), vi::Status::inval);
  EXPECT_EQ(to_virtio_status(Errc::no_memory), vi::Status::nomem);
  EXPECT_EQ(to_virtio_status(Errc::overflow), vi::Status::nomem);
  EXPECT_EQ(to_virtio_status(Errc::unsupported), vi::Status::unsupp);
  EXPECT_EQ(to_virtio_status(Errc::io_error), vi::Status::ioerr);
  EXPECT_EQ(to_virtio_status(Errc::timed_out), vi::Status::ioerr);
  EXPECT_EQ(to_virtio_status(Errc::try_again), vi::Status::deverr);
  EXPECT_EQ(to_virtio_status(Errc::would_deadlock), vi::Status::deverr);
  EXPECT_EQ(to_virtio_status(Errc::permission_denied), vi::Status::deverr);
}

TEST(VirtioStatus, NotOwnerLooksLikeNotFound) {
  // A guest must not learn that a PASID exists in another VM's set.
  EXPECT_EQ(to_virtio_status(Errc::not_owner), to_virtio_status(Errc::not_found));
}

TEST(VirtioStatus, GuestSideDecoding) {
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::ok)), Errc::invalid_argument);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::noent)), Errc::not_found);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::nomem)), Errc::exhausted);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::inval)), Errc::invalid_argument);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::range)), Errc::out_of_range);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::unsupp)), Errc::unsupported);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::ioerr)), Errc::io_error);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::deverr)), Errc::io_error);
  EXPECT_EQ(from_virtio_status(vi::to_u8(vi::Status::fault)), Errc::invalid_argument);
  for (unsigned s = 9; s < 256; ++s) {
    EXPECT_EQ(from_virtio_status(static_cast<std::uint8_t>(s)), Errc::io_error) << s;
    EXPECT_STREQ(virtio_status_name(static_cast<std::uint8_t>(s)), "S_unknown");
  }
}

TEST(VirtioStatus, Names) {
  const char* const names[] = {"S_OK",    "S_IOERR", "S_UNSUPP", "S_DEVERR", "S_INVAL",
                               "S_RANGE", "S_NOENT", "S_FAULT",  "S_NOMEM"};
  for (unsigned s = 0; s < std::size(names); ++s) {
    EXPECT_STREQ(virtio_status_name(static_cast<std::uint8_t>(s)), names[s]);
  }
}

TEST(VirtioStatus, DeviceAndDriverAgreeOnGuestVisibleErrors) {
  // Errors the device reports unchanged come back as themselves on the guest side.
  for (Errc e : {Errc::invalid_argument, Errc::out_of_range, Errc::not_found, Errc::exhausted,
                 Errc::unsupported, Errc::io_error}) {
    EXPECT_EQ(from_virtio_status(vi::to_u8(to_virtio_status(e))), e) << to_string(e);
  }
}

// ---- VT-d virtual command column --------------------------------------------------------------

TEST(VtdStatus, OneFailureStatusPerCommand) {
  for (Errc e : kAll) {
    EXPECT_EQ(to_vtd_status(kVcmdAllocPasid, e), VcmdStatus::no_pasid) << to_string(e);
    EXPECT_EQ(to_vtd_status(kVcmdFreePasid, e), VcmdStatus::invalid_pasid) << to_string(e);
  }
  // Values that are no Errc keep the per-command answer.
  EXPECT_EQ(to_vtd_status(kVcmdAllocPasid, static_cast<Errc>(0)), VcmdStatus::no_pasid);
  EXPECT_EQ(to_vtd_status(kVcmdFreePasid, static_cast<Errc>(200)), VcmdStatus::invalid_pasid);
  // Any other command code.
  for (unsigned cmd = 0; cmd < 256; ++cmd) {
    if (cmd == kVcmdAllocPasid || cmd == kVcmdFreePasid) continue;
    EXPECT_EQ(to_vtd_status(static_cast<std::uint8_t>(cmd), Errc::io_error),
              VcmdStatus::undefined_cmd)
        << cmd;
  }
}

TEST(VtdStatus, NotOwnerLooksLikeNotFound) {
  EXPECT_EQ(to_vtd_status(kVcmdFreePasid, Errc::not_owner),
            to_vtd_status(kVcmdFreePasid, Errc::not_found));
}

TEST(VtdStatus, GuestSideDecoding) {
  EXPECT_EQ(from_vtd_status(VcmdStatus::no_pasid), Errc::exhausted);
  EXPECT_EQ(from_vtd_status(VcmdStatus::success), Errc::io_error);
  EXPECT_EQ(from_vtd_status(VcmdStatus::undefined_cmd), Errc::io_error);
  EXPECT_EQ(from_vtd_status(VcmdStatus::invalid_pasid), Errc::io_error);
  EXPECT_EQ(from_vtd_status(VcmdStatus::unknown), Errc::io_error);
  for (unsigned s = static_cast<unsigned>(VcmdStatus::unknown) + 1; s < 256; ++s) {
    EXPECT_EQ(from_vtd_status(static_cast<VcmdStatus>(s)), Errc::io_error) << s;
  }
}

TEST(VtdStatus, EveryLayoutEncodesTheAnswersDistinctFromSuccess) {
  // Both register layouts can carry every answer of the table, and decode it back for its command.
  for (wire::vtd::VcmdLayout layout :
       {wire::vtd::VcmdLayout::legacy, wire::vtd::VcmdLayout::rev3_3}) {
    const wire::vtd::LayoutSpec& l = wire::vtd::layout_spec(layout);
    for (Errc e : kAll) {
      for (std::uint8_t cmd : {kVcmdAllocPasid, kVcmdFreePasid}) {
        const VcmdStatus st = to_vtd_status(cmd, e);
        const std::uint8_t sc = wire::vtd::status_code(l, st);
        EXPECT_NE(sc, l.sc_success) << l.name << " " << to_string(e);
        EXPECT_EQ(wire::vtd::decode_status(l, cmd, sc), st) << l.name << " " << to_string(e);
      }
    }
  }
}

TEST(VtdStatus, DeviceAndDriverAgreeOnExhaustion) {
  EXPECT_EQ(from_vtd_status(to_vtd_status(kVcmdAllocPasid, Errc::exhausted)), Errc::exhausted);
  EXPECT_EQ(from_vtd_status(to_vtd_status(kVcmdAllocPasid, Errc::quota_exceeded)), Errc::exhausted);
}

}  // namespace
}  // namespace ioasid
