// SPDX-License-Identifier: Apache-2.0
// errc_test.cc: the error table is complete, one-to-one, and hides ownership from guests.
#include "ioasid/errc.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <string>

namespace ioasid {
namespace {

constexpr Errc kAll[] = {
    Errc::invalid_argument, Errc::out_of_range,   Errc::not_found,      Errc::not_owner,
    Errc::exhausted,        Errc::quota_exceeded, Errc::busy,           Errc::exists,
    Errc::try_again,        Errc::no_memory,      Errc::would_deadlock, Errc::overflow,
    Errc::unsupported,      Errc::io_error,       Errc::timed_out,      Errc::permission_denied,
};

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

}  // namespace
}  // namespace ioasid
