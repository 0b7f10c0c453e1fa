// SPDX-License-Identifier: Apache-2.0
// wal_flusher_test.cc: ioasidd's WAL flusher thread on real files: requested epochs become
// durable and are reported through the eventfd, concurrent requests are coalesced, the WAL is
// opened once, and a file that cannot be opened is a reported failure. Labelled
// concurrency (the flusher is a thread), so it runs under ThreadSanitizer too.
#include "daemon/wal_flusher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

namespace ioasid::daemon {
namespace {

class WalFlusherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ioasid-wal-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    wal_ = dir_ + "/state-wal";
  }
  void TearDown() override {
    unlink(wal_.c_str());
    rmdir(dir_.c_str());
  }
  void write_wal(const std::string& text) {
    const int fd = ::open(wal_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
  }
  // Waits (bounded) until the flusher reports a completion.
  static bool wait_event(WalFlusher& f) {
    pollfd p{f.event_fd(), POLLIN, 0};
    if (poll(&p, 1, 10'000) != 1) return false;
    f.acknowledge();
    return true;
  }
  std::string dir_;
  std::string wal_;
};

TEST_F(WalFlusherTest, RequestedEpochsBecomeDurable) {
  write_wal("frame 1");
  WalFlusher f(wal_, dir_);
  ASSERT_TRUE(f.start());
  EXPECT_EQ(f.flushed(), 0u);
  EXPECT_FALSE(f.busy());
  f.request(1);
  while (f.flushed() < 1) ASSERT_TRUE(wait_event(f));
  EXPECT_FALSE(f.busy());
  std::int64_t since = 0;
  EXPECT_FALSE(f.pending(&since));
  write_wal("frame 2");
  f.request(2);
  f.request(3);
  while (f.flushed() < 3) ASSERT_TRUE(wait_event(f));
  EXPECT_FALSE(f.failed());
  // Two or three flushes (epochs 2 and 3 may share one), never more than requests.
  EXPECT_GE(f.flushes(), 2u);
  EXPECT_LE(f.flushes(), 3u);
}

TEST_F(WalFlusherTest, OlderRequestsChangeNothing) {
  write_wal("x");
  WalFlusher f(wal_, dir_);
  ASSERT_TRUE(f.start());
  ASSERT_TRUE(f.flush_now(5));
  EXPECT_EQ(f.flushed(), 5u);
  f.request(4);  // already durable
  EXPECT_FALSE(f.busy());
  EXPECT_EQ(f.flushed(), 5u);
}

TEST_F(WalFlusherTest, ManyRequestsAreCoalesced) {
  write_wal("x");
  WalFlusher f(wal_, dir_);
  ASSERT_TRUE(f.start());
  for (std::uint64_t e = 1; e <= 200; ++e) f.request(e);
  while (f.flushed() < 200) ASSERT_TRUE(wait_event(f));
  EXPECT_LE(f.flushes(), 200u);
  EXPECT_GE(f.flushes(), 1u);
}

TEST_F(WalFlusherTest, TheFirstFlushOpensTheWalAndKeepsIt) {
  write_wal("x");
  WalFlusher f(wal_, dir_);
  ASSERT_TRUE(f.start());
  ASSERT_TRUE(f.flush_now(1));
  // Opened once: the descriptor outlives the name (SQLite keeps the WAL while the database is
  // open), so later flushes do not depend on the path.
  ASSERT_EQ(unlink(wal_.c_str()), 0);
  f.request(2);
  while (f.flushed() < 2) ASSERT_TRUE(wait_event(f));
  EXPECT_FALSE(f.failed());
  EXPECT_EQ(f.flushes(), 2u);
}

TEST_F(WalFlusherTest, AMissingWalFailsTheThreadsFlush) {
  WalFlusher f(wal_, dir_);
  ASSERT_TRUE(f.start());
  f.request(1);
  ASSERT_TRUE(wait_event(f));
  EXPECT_TRUE(f.failed());
  EXPECT_NE(f.error().find("open " + wal_), std::string::npos) << f.error();
  EXPECT_EQ(f.flushed(), 0u);
  EXPECT_FALSE(f.flush_now(1));  // failed stays failed
}

}  // namespace
}  // namespace ioasid::daemon
