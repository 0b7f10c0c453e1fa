// SPDX-License-Identifier: Apache-2.0
// id_table_test.cc: the ID table's lowest-free search and bitmaps at the edges that matter: leaf
// (512) and mid (2^21) boundaries, full leaves and mids, the top of a 32-bit space, trim.
#include "core/internal/id_table.hpp"

#include <gtest/gtest.h>

namespace ioasid::internal {
namespace {

void use(IdTable& t, Id id) {
  ASSERT_TRUE(t.ensure_leaf(id));
  t.mark_used(id);
}

TEST(IdTable, EmptyFindsFirst) {
  IdTable t;
  ASSERT_TRUE(t.init(20));
  EXPECT_EQ(t.max_id(), 0xFFFFFu);
  EXPECT_EQ(t.find_free(0, 0xFFFFF), 0u);
  EXPECT_EQ(t.find_free(700, 800), 700u);
  EXPECT_EQ(t.lookup(5), nullptr);
}

TEST(IdTable, SkipsFullLeavesAndMids) {
  IdTable t;
  ASSERT_TRUE(t.init(24));
  for (Id id = 0; id < (1u << 21) + 3; ++id) use(t, id);  // one full mid and 3 more
  EXPECT_EQ(t.find_free(0, 0xFFFFFF), (1u << 21) + 3);
  EXPECT_EQ(t.find_free(0, (1u << 21) + 2), kInvalidId);
  t.mark_free(1000);
  EXPECT_EQ(t.find_free(0, 0xFFFFFF), 1000u);
  EXPECT_EQ(t.find_free(1001, 0xFFFFFF), (1u << 21) + 3);
  EXPECT_TRUE(t.check_bitmaps());
}

TEST(IdTable, ZerosBelowTheStartAreIgnored) {
  IdTable t;
  ASSERT_TRUE(t.init(20));
  for (Id id = 10; id < 512; ++id) use(t, id);
  EXPECT_EQ(t.find_free(20, 0xFFFFF), 512u);
  EXPECT_EQ(t.find_free(0, 0xFFFFF), 0u);
}

TEST(IdTable, TopOfThirtyTwoBits) {
  IdTable t;
  ASSERT_TRUE(t.init(32));
  EXPECT_EQ(t.max_id(), 0xFFFFFFFFu);
  use(t, 0xFFFFFFFE);
  EXPECT_EQ(t.find_free(0xFFFFFFFE, 0xFFFFFFFE), kInvalidId);
  EXPECT_EQ(t.find_free(0xFFFFFFF0, 0xFFFFFFFE), 0xFFFFFFF0u);
  EXPECT_TRUE(t.is_used(0xFFFFFFFE));
  EXPECT_NE(t.lookup(0xFFFFFFFE), nullptr);
}

TEST(IdTable, RetireEmptyLeaves) {
  IdTable t;
  ASSERT_TRUE(t.init(24));
  use(t, 5);
  use(t, 3'000'000);
  const std::uint64_t before = t.bytes();
  t.mark_free(3'000'000);
  EXPECT_GT(t.retire_empty(), 0u);
  t.free_retired();
  EXPECT_LT(t.bytes(), before);
  EXPECT_EQ(t.lookup(3'000'000), nullptr);
  EXPECT_NE(t.lookup(5), nullptr);
  EXPECT_TRUE(t.check_bitmaps());
}

}  // namespace
}  // namespace ioasid::internal
