// SPDX-License-Identifier: Apache-2.0
// status_test.cc: the virtio-iommu status column of the error table (virtio/status.hpp; virtio
// 1.2/1.3 §5.13.6 status codes, ECOSYSTEM.md §1b), exhaustively over every Errc and every status
// byte.
#include "virtio/status.hpp"

#include <gtest/gtest.h>

namespace ioasid::virtio {
namespace {

namespace vi = ::ioasid::wire::virtio_iommu;

// Errc values are dense from 1 (src/common/errc.cc checks the same).
constexpr unsigned kFirstErrc = static_cast<unsigned>(Errc::invalid_argument);
constexpr unsigned kLastErrc = static_cast<unsigned>(Errc::permission_denied);

TEST(VirtioStatus, EveryErrcIsAnError) {
  for (unsigned i = kFirstErrc; i <= kLastErrc; ++i) {
    const auto e = static_cast<Errc>(i);
    const vi::Status s = to_virtio_status(e);
    EXPECT_NE(s, vi::Status::ok) << to_string(e);
    EXPECT_LE(vi::to_u8(s), vi::to_u8(vi::Status::nomem)) << to_string(e);
  }
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
    EXPECT_STREQ(status_name(static_cast<std::uint8_t>(s)), "S_unknown");
  }
  EXPECT_STREQ(status_name(0), "S_OK");
  EXPECT_STREQ(status_name(8), "S_NOMEM");
}

TEST(VirtioStatus, DeviceAndDriverAgreeOnGuestVisibleErrors) {
  // Errors the device reports unchanged come back as themselves on the guest side.
  for (Errc e : {Errc::invalid_argument, Errc::out_of_range, Errc::not_found, Errc::exhausted,
                 Errc::unsupported, Errc::io_error}) {
    EXPECT_EQ(from_virtio_status(vi::to_u8(to_virtio_status(e))), e) << to_string(e);
  }
}

}  // namespace
}  // namespace ioasid::virtio
