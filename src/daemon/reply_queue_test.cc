// SPDX-License-Identifier: Apache-2.0
// reply_queue_test.cc: ioasidd's per-connection reply queue: no reply becomes sendable before the
// commit it depends on is durable, replies leave in order, and offsets survive compaction.
#include "daemon/reply_queue.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ioasid::daemon {
namespace {

void put(ReplyQueue& q, const std::string& text) {
  auto to = q.append(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) to[i] = static_cast<std::byte>(text[i]);
}

std::string sendable(const ReplyQueue& q) {
  std::string s;
  for (std::byte b : q.send_view()) s.push_back(static_cast<char>(b));
  return s;
}

TEST(ReplyQueue, DurableCommitReleasesAtOnce) {
  ReplyQueue q;
  put(q, "a");
  q.hold(/*epoch=*/3, /*durable=*/3);
  EXPECT_EQ(sendable(q), "a");
  EXPECT_FALSE(q.holding());
}

TEST(ReplyQueue, HeldUntilItsEpochIsDurable) {
  ReplyQueue q;
  put(q, "alloc");
  q.hold(1, 0);
  q.release(0);
  EXPECT_EQ(q.sendable(), 0u);
  EXPECT_EQ(q.pending(), 5u);
  EXPECT_TRUE(q.holding());
  q.release(1);
  EXPECT_EQ(sendable(q), "alloc");
  EXPECT_FALSE(q.holding());
}

TEST(ReplyQueue, AQueryWaitsForTheCommitBeforeIt) {
  // Iteration 1 commits epoch 1 (an ALLOC); iteration 2 commits nothing but answers a FIND that
  // may show the new PASID: it waits for epoch 1 as well, behind the ALLOC's reply.
  ReplyQueue q;
  put(q, "A");
  q.hold(1, 0);
  put(q, "F");
  q.hold(1, 0);
  EXPECT_EQ(q.sendable(), 0u);
  q.release(1);
  EXPECT_EQ(sendable(q), "AF");
}

TEST(ReplyQueue, LaterEpochsStayHeldInOrder) {
  ReplyQueue q;
  put(q, "1");
  q.hold(1, 0);
  put(q, "2");
  q.hold(2, 0);
  put(q, "3");
  q.hold(3, 0);
  q.release(2);
  EXPECT_EQ(sendable(q), "12");
  q.consumed(1);
  EXPECT_EQ(sendable(q), "2");
  // Durable again, but an older range is still held: the new reply queues behind it.
  put(q, "4");
  q.hold(3, 3);
  EXPECT_EQ(sendable(q), "2");
  q.release(3);
  EXPECT_EQ(sendable(q), "234");
  q.consumed(3);
  EXPECT_EQ(q.pending(), 0u);
  EXPECT_FALSE(q.holding());
}

TEST(ReplyQueue, PartialSendsAndCompactionKeepTheHeldRanges) {
  ReplyQueue q;
  const std::string big(100'000, 'x');
  put(q, big);
  q.hold(1, 1);
  put(q, "tail");
  q.hold(2, 1);
  ASSERT_EQ(q.sendable(), big.size());
  q.consumed(90'000);  // more than 64 KiB and more than half: compacted
  EXPECT_EQ(q.sendable(), 10'000u);
  EXPECT_EQ(q.pending(), 10'004u);
  q.release(2);
  const std::string rest = sendable(q);
  EXPECT_EQ(rest.size(), 10'004u);
  EXPECT_EQ(rest.substr(rest.size() - 4), "tail");
  q.consumed(rest.size());
  EXPECT_EQ(q.pending(), 0u);
}

TEST(ReplyQueue, NothingAppendedNothingHeld) {
  ReplyQueue q;
  q.hold(5, 0);
  EXPECT_FALSE(q.holding());
  EXPECT_EQ(q.pending(), 0u);
}

}  // namespace
}  // namespace ioasid::daemon
