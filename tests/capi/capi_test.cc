// SPDX-License-Identifier: Apache-2.0
// capi_test.cc: the C ABI of include/ioasid/ioasid.h, function by function: every documented
// error return, argument-struct size rules (-EINVAL / -E2BIG), not_owner reported as -ENOENT,
// notifier events, custom allocators written as C callbacks (grouping, standby, orphans), the
// -EDEADLK rule for callbacks, the log sink, the host backend, and the VT-d device model driven
// through its registers at C level for both layouts (offsets and fields written out here from the
// VT-d spec, independently of ioasid/wire/vtd_vcmd.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ioasid/ioasid.h"

namespace {

// ---- helpers --------------------------------------------------------------------------------

struct LogRecord {
  int level;
  std::string message;
};

void capture_log(void* opaque, int level, const char* message) {
  static_cast<std::vector<LogRecord>*>(opaque)->push_back({level, message});
}

ioasid_space_config default_config() {
  ioasid_space_config c;
  std::memset(&c, 0, sizeof(c));
  c.size = sizeof(c);
  return c;
}

ioasid_stats stats_of(const ioasid_space* s) {
  ioasid_stats st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  EXPECT_EQ(ioasid_space_stats(s, &st), 0);
  return st;
}

class CapiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ioasid_space_config c = default_config();
    c.log_fn = capture_log;
    c.log_opaque = &log_;
    c.log_level = IOASID_LOG_DEBUG;
    ASSERT_EQ(ioasid_space_create(&c, &space_), 0);
    ASSERT_EQ(ioasid_set_create(space_, 100, 64, &a_), 0);
    ASSERT_EQ(ioasid_set_create(space_, 200, 64, &b_), 0);
  }
  void TearDown() override { ioasid_space_destroy(space_); }

  ioasid_t alloc(ioasid_set_t set, void* priv = nullptr) {
    ioasid_t id = IOASID_INVALID;
    EXPECT_EQ(ioasid_alloc(space_, set, 1, 0xFFFFF, priv, &id), 0);
    return id;
  }
  bool logged(const char* needle) const {
    for (const LogRecord& r : log_) {
      if (r.message.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  std::vector<LogRecord> log_;
  ioasid_space* space_ = nullptr;
  ioasid_set_t a_ = 0, b_ = 0;
};

// ---- version, strerror ----------------------------------------------------------------------

TEST(CapiVersion, MatchesHeader) {
  EXPECT_EQ(ioasid_version(), static_cast<uint32_t>(IOASID_VERSION));
  EXPECT_EQ(ioasid_version() >> 16, static_cast<uint32_t>(IOASID_VERSION_MAJOR));
}

TEST(CapiStrerror, EveryLibraryErrnoHasADescription) {
  const int errs[] = {EINVAL, ERANGE, ENOENT,     ENOSPC,    EDQUOT,    EBUSY,
                      EEXIST, EAGAIN, ENOMEM,     EDEADLK,   EOVERFLOW, E2BIG,
                      EIO,    EACCES, EOPNOTSUPP, ETIMEDOUT, EPERM,     EBADF};
  std::set<std::string> seen;
  for (int e : errs) {
    const char* s = ioasid_strerror(-e);
    ASSERT_NE(s, nullptr);
    EXPECT_STRNE(s, "unknown error") << e;
    EXPECT_TRUE(seen.insert(s).second) << "duplicate text for " << e;
  }
  EXPECT_STREQ(ioasid_strerror(-ENOENT), "no such ID, set, SPID or notifier");
  EXPECT_STREQ(ioasid_strerror(-ENOTTY), "unknown error");
  EXPECT_STREQ(ioasid_strerror(EINVAL), "unknown error");  // positive: not ours
  EXPECT_STREQ(ioasid_strerror(-100000), "unknown error");
  EXPECT_STREQ(ioasid_strerror(0), "success");
}

// ---- space creation and the config struct ---------------------------------------------------

TEST(CapiSpace, NullConfigMeansDefaults) {
  ioasid_space* s = nullptr;
  ASSERT_EQ(ioasid_space_create(nullptr, &s), 0);
  ioasid_stats st = stats_of(s);
  EXPECT_EQ(st.reserved_ids, 1u);          // PASID 0
  EXPECT_EQ(st.capacity, (1u << 20) - 1);  // 20 bits
  EXPECT_EQ(st.custom_allocator_active, 0u);
  ioasid_set_t set = 0;
  ASSERT_EQ(ioasid_set_create(s, 1, 10, &set), 0);
  ioasid_t id = 0;
  ASSERT_EQ(ioasid_alloc(s, set, 0, 0xFFFFF, nullptr, &id), 0);
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(ioasid_alloc(s, set, 0, 0x100000, nullptr, &id), -ERANGE);
  ioasid_space_destroy(s);
  ioasid_space_destroy(nullptr);  // ignored
}

TEST(CapiSpace, NullOutIsInvalid) { EXPECT_EQ(ioasid_space_create(nullptr, nullptr), -EINVAL); }

TEST(CapiSpace, ZeroWidthMeans20) {
  ioasid_space_config c = default_config();
  ioasid_space* s = nullptr;
  ASSERT_EQ(ioasid_space_create(&c, &s), 0);
  EXPECT_EQ(stats_of(s).capacity, (1u << 20) - 1);
  EXPECT_EQ(stats_of(s).reserved_ids, 1u);  // reserved NULL + count 0: the default {0, 0}
  ioasid_space_destroy(s);
}

TEST(CapiSpace, ConfigSizeRules) {
  ioasid_space* s = nullptr;
  ioasid_space_config c = default_config();
  c.size = sizeof(c) - 1;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  c.size = 0;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);

  // A caller built against a longer struct: zero tail accepted, nonzero tail refused.
  struct Longer {
    ioasid_space_config c;
    uint64_t future[2];
  } big;
  std::memset(&big, 0, sizeof(big));
  big.c.size = sizeof(big);
  big.c.width_bits = 8;
  ASSERT_EQ(ioasid_space_create(&big.c, &s), 0);
  EXPECT_EQ(stats_of(s).capacity, 255u);
  ioasid_space_destroy(s);
  s = nullptr;
  big.future[1] = 1;
  EXPECT_EQ(ioasid_space_create(&big.c, &s), -E2BIG);
  EXPECT_EQ(s, nullptr);  // out untouched on failure
}

TEST(CapiSpace, ConfigFieldValidation) {
  ioasid_space* s = nullptr;
  ioasid_space_config c = default_config();
  c.reserved0 = 1;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  c = default_config();
  c.width_bits = 33;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  c = default_config();
  c.policy = 2;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  c = default_config();
  c.log_level = 4;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  c = default_config();
  c.reserved_count = 1;  // NULL with a count
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  c = default_config();
  c.width_bits = 4;
  c.capacity = 16;  // above the 15 non-reserved IDs
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  c = default_config();
  c.width_bits = 4;
  const ioasid_range bad{3, 16};  // outside the space
  c.reserved = &bad;
  c.reserved_count = 1;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  const ioasid_range backwards{5, 3};
  c.reserved = &backwards;
  EXPECT_EQ(ioasid_space_create(&c, &s), -EINVAL);
  EXPECT_EQ(s, nullptr);
}

TEST(CapiSpace, ReservedRangesAndNothingReserved) {
  ioasid_space* s = nullptr;
  ioasid_space_config c = default_config();
  c.width_bits = 4;
  const ioasid_range none[1] = {{0, 0}};
  c.reserved = none;  // non-NULL, count 0: nothing reserved
  c.reserved_count = 0;
  ASSERT_EQ(ioasid_space_create(&c, &s), 0);
  EXPECT_EQ(stats_of(s).reserved_ids, 0u);
  ioasid_set_t set = 0;
  ASSERT_EQ(ioasid_set_create(s, 1, 16, &set), 0);
  ioasid_t id = IOASID_INVALID;
  ASSERT_EQ(ioasid_alloc(s, set, 0, 15, nullptr, &id), 0);
  EXPECT_EQ(id, 0u);
  ioasid_space_destroy(s);

  const ioasid_range ranges[2] = {{0, 3}, {8, 9}};
  c.reserved = ranges;
  c.reserved_count = 2;
  c.capacity = 5;
  ASSERT_EQ(ioasid_space_create(&c, &s), 0);
  ioasid_stats st = stats_of(s);
  EXPECT_EQ(st.reserved_ids, 6u);
  EXPECT_EQ(st.capacity, 5u);
  ASSERT_EQ(ioasid_set_create(s, 1, 5, &set), 0);
  std::vector<ioasid_t> got;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(ioasid_alloc(s, set, 0, 15, nullptr, &id), 0);
    got.push_back(id);
  }
  EXPECT_EQ(got, (std::vector<ioasid_t>{4, 5, 6, 7, 10}));
  EXPECT_EQ(ioasid_set_create(s, 2, 1, &set), -ENOSPC);  // capacity all reserved by quotas
  ioasid_space_destroy(s);
}

TEST(CapiSpace, CyclicPolicy) {
  ioasid_space* s = nullptr;
  ioasid_space_config c = default_config();
  c.policy = IOASID_POLICY_CYCLIC;
  ASSERT_EQ(ioasid_space_create(&c, &s), 0);
  ioasid_set_t set = 0;
  ASSERT_EQ(ioasid_set_create(s, 1, 10, &set), 0);
  ioasid_t x = 0, y = 0;
  ASSERT_EQ(ioasid_alloc(s, set, 1, 100, nullptr, &x), 0);
  ASSERT_EQ(ioasid_free(s, set, x), 0);
  ASSERT_EQ(ioasid_alloc(s, set, 1, 100, nullptr, &y), 0);
  EXPECT_EQ(x, 1u);
  EXPECT_EQ(y, 2u);  // not reused at once
  ioasid_space_destroy(s);
}

TEST(CapiSpace, ThirtyTwoBitsReservesInvalid) {
  ioasid_space* s = nullptr;
  ioasid_space_config c = default_config();
  c.width_bits = 32;
  ASSERT_EQ(ioasid_space_create(&c, &s), 0);
  EXPECT_EQ(stats_of(s).reserved_ids, 2u);  // 0 and 0xFFFFFFFF
  ioasid_set_t set = 0;
  ASSERT_EQ(ioasid_set_create(s, 1, 10, &set), 0);
  ioasid_t id = 0;
  EXPECT_EQ(ioasid_alloc(s, set, IOASID_INVALID, IOASID_INVALID, nullptr, &id), -ENOSPC);
  ioasid_space_destroy(s);
}

TEST(CapiSpace, LogSinkGetsLevelAndMessageAndHonoursLevel) {
  std::vector<LogRecord> log;
  ioasid_space_config c = default_config();
  c.log_fn = capture_log;
  c.log_opaque = &log;
  c.log_level = IOASID_LOG_WARNING;
  ioasid_space* s = nullptr;
  ASSERT_EQ(ioasid_space_create(&c, &s), 0);
  ioasid_allocator_ops unknown{};
  ioasid_allocator_unregister(s, &unknown);  // warning: not registered
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].level, IOASID_LOG_WARNING);
  EXPECT_NE(log[0].message.find("not registered"), std::string::npos);
  ioasid_space_destroy(s);
}

// ---- stats ----------------------------------------------------------------------------------

TEST_F(CapiTest, StatsSizeRules) {
  ioasid_stats st;
  std::memset(&st, 0, sizeof(st));
  EXPECT_EQ(ioasid_space_stats(space_, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_space_stats(nullptr, &st), -EINVAL);
  st.size = sizeof(st) - 8;
  st.live_ids = 77;
  EXPECT_EQ(ioasid_space_stats(space_, &st), -EINVAL);
  EXPECT_EQ(st.live_ids, 77u);  // untouched on failure

  alloc(a_);
  alloc(b_);
  // A longer struct from a newer header: known fields written, the unknown tail zeroed.
  struct Longer {
    ioasid_stats st;
    uint64_t future;
  } big;
  std::memset(&big, 0xAB, sizeof(big));
  big.st.size = sizeof(big);
  ASSERT_EQ(ioasid_space_stats(space_, &big.st), 0);
  EXPECT_EQ(big.st.size, sizeof(big));
  EXPECT_EQ(big.st.live_ids, 2u);
  EXPECT_EQ(big.st.allocs, 2u);
  EXPECT_EQ(big.st.sets, 2u);
  EXPECT_EQ(big.st.quota_reserved, 128u);
  EXPECT_EQ(big.st.free_pending_ids, 0u);
  EXPECT_GT(big.st.table_bytes, 0u);
  EXPECT_EQ(big.future, 0u);
}

// ---- sets -----------------------------------------------------------------------------------

TEST_F(CapiTest, SetCreateErrors) {
  ioasid_set_t set = 12345;
  EXPECT_EQ(ioasid_set_create(space_, 300, 0, &set), -EINVAL);
  EXPECT_EQ(ioasid_set_create(space_, 100, 1, &set), -EEXIST);
  EXPECT_EQ(ioasid_set_create(space_, 300, 1u << 20, &set), -ENOSPC);
  EXPECT_EQ(ioasid_set_create(space_, 300, 1, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_set_create(nullptr, 300, 1, &set), -EINVAL);
  EXPECT_EQ(set, 12345u);
  EXPECT_NE(a_, b_);
  EXPECT_NE(a_, IOASID_SET_ANY);
}

TEST_F(CapiTest, SetInfoFindAndQuota) {
  alloc(a_);
  alloc(a_);
  ioasid_set_info info;
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.set, a_);
  EXPECT_EQ(info.owner_token, 100u);
  EXPECT_EQ(info.quota, 64u);
  EXPECT_EQ(info.count, 2u);
  EXPECT_EQ(info.bound, 0u);
  EXPECT_EQ(info.peak, 2u);
  EXPECT_EQ(info.dying, 0u);
  EXPECT_EQ(info.reserved0, 0u);
  EXPECT_EQ(ioasid_set_query(space_, 9999, &info), -ENOENT);
  EXPECT_EQ(ioasid_set_query(space_, IOASID_SET_ANY, &info), -ENOENT);
  EXPECT_EQ(ioasid_set_query(space_, a_, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_set_query(nullptr, a_, &info), -EINVAL);

  ioasid_set_t found = 0;
  ASSERT_EQ(ioasid_set_find(space_, 200, &found), 0);
  EXPECT_EQ(found, b_);
  EXPECT_EQ(ioasid_set_find(space_, 999, &found), -ENOENT);
  EXPECT_EQ(ioasid_set_find(space_, 200, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_set_find(nullptr, 200, &found), -EINVAL);

  EXPECT_EQ(ioasid_set_quota(space_, a_, 10), 0);
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.quota, 10u);
  EXPECT_EQ(ioasid_set_quota(space_, a_, 0), -EINVAL);
  EXPECT_EQ(ioasid_set_quota(space_, a_, 1), -EINVAL);  // below count
  EXPECT_EQ(ioasid_set_quota(space_, a_, 1u << 20), -ENOSPC);
  EXPECT_EQ(ioasid_set_quota(space_, 9999, 5), -ENOENT);
  EXPECT_EQ(ioasid_set_quota(nullptr, a_, 5), -EINVAL);
}

TEST_F(CapiTest, SetDestroyImmediateAndDying) {
  bool gone = false;
  alloc(b_);
  ASSERT_EQ(ioasid_set_destroy(space_, b_, &gone), 0);
  EXPECT_TRUE(gone);
  EXPECT_EQ(ioasid_set_destroy(space_, b_, &gone), -ENOENT);
  EXPECT_EQ(ioasid_set_destroy(nullptr, a_, &gone), -EINVAL);

  // A member with a second reference keeps the set dying.
  const ioasid_t id = alloc(a_);
  ASSERT_EQ(ioasid_get(space_, a_, id), 0);
  gone = true;
  ASSERT_EQ(ioasid_set_destroy(space_, a_, &gone), 0);
  EXPECT_FALSE(gone);
  ioasid_set_info info;
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.dying, 1u);
  EXPECT_EQ(stats_of(space_).dying_sets, 1u);
  EXPECT_EQ(stats_of(space_).free_pending_ids, 1u);
  EXPECT_EQ(ioasid_set_destroy(space_, a_, nullptr), -EBUSY);
  EXPECT_EQ(ioasid_set_quota(space_, a_, 10), -EBUSY);
  ioasid_t other = 0;
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 100, nullptr, &other), -EBUSY);
  ioasid_set_t again = 0;
  EXPECT_EQ(ioasid_set_create(space_, 100, 1, &again), -EBUSY);
  bool released = false;
  ASSERT_EQ(ioasid_put(space_, a_, id, &released), 0);
  EXPECT_TRUE(released);
  EXPECT_EQ(ioasid_set_query(space_, a_, &info), -ENOENT);
  EXPECT_EQ(ioasid_set_create(space_, 100, 1, &again), 0);
}

// ---- IDs ------------------------------------------------------------------------------------

TEST_F(CapiTest, AllocErrors) {
  ioasid_t id = 4242;
  EXPECT_EQ(ioasid_alloc(space_, a_, 10, 9, nullptr, &id), -EINVAL);
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 0x100000, nullptr, &id), -ERANGE);
  EXPECT_EQ(ioasid_alloc(space_, 9999, 1, 10, nullptr, &id), -ENOENT);
  EXPECT_EQ(ioasid_alloc(space_, IOASID_SET_ANY, 1, 10, nullptr, &id), -EINVAL);
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 10, nullptr, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_alloc(nullptr, a_, 1, 10, nullptr, &id), -EINVAL);
  EXPECT_EQ(id, 4242u);

  ASSERT_EQ(ioasid_alloc(space_, a_, 5, 5, nullptr, &id), 0);
  EXPECT_EQ(id, 5u);
  EXPECT_EQ(ioasid_alloc(space_, b_, 5, 5, nullptr, &id), -ENOSPC);
  EXPECT_EQ(stats_of(space_).exhausted_refusals, 1u);

  ASSERT_EQ(ioasid_set_quota(space_, a_, 1), 0);
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 100, nullptr, &id), -EDQUOT);
  EXPECT_EQ(stats_of(space_).quota_refusals, 1u);
  ioasid_set_info info;
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.quota_refusals, 1u);
}

TEST_F(CapiTest, FreeGetPutLifecycle) {
  int data = 7;
  const ioasid_t id = alloc(a_, &data);
  ASSERT_EQ(ioasid_get(space_, a_, id), 0);
  ASSERT_EQ(ioasid_get(space_, IOASID_SET_ANY, id), 0);  // the wildcard
  ASSERT_EQ(ioasid_free(space_, a_, id), 0);             // FREE_PENDING now
  EXPECT_EQ(ioasid_free(space_, a_, id), -EBUSY);
  EXPECT_EQ(ioasid_get(space_, a_, id), -EBUSY);
  void* p = nullptr;
  EXPECT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, &p), -ENOENT);
  bool released = true;
  ASSERT_EQ(ioasid_put(space_, a_, id, &released), 0);
  EXPECT_FALSE(released);
  ASSERT_EQ(ioasid_put(space_, IOASID_SET_ANY, id, nullptr), 0);  // released, flag optional
  EXPECT_EQ(ioasid_put(space_, a_, id, &released), -ENOENT);
  EXPECT_EQ(ioasid_free(space_, a_, id), -ENOENT);
  EXPECT_EQ(ioasid_get(space_, a_, id), -ENOENT);

  // put of the only reference releases (and counts as the free).
  const ioasid_t id2 = alloc(a_);
  ASSERT_EQ(ioasid_put(space_, a_, id2, &released), 0);
  EXPECT_TRUE(released);

  EXPECT_EQ(ioasid_free(space_, a_, 0x100000), -ERANGE);
  EXPECT_EQ(ioasid_get(space_, a_, 0x100000), -ERANGE);
  EXPECT_EQ(ioasid_put(space_, a_, 0x100000, nullptr), -ERANGE);
  EXPECT_EQ(ioasid_free(space_, IOASID_SET_ANY, id2), -EINVAL);  // the owner must be named
  EXPECT_EQ(ioasid_free(nullptr, a_, id), -EINVAL);
  EXPECT_EQ(ioasid_get(nullptr, a_, id), -EINVAL);
  EXPECT_EQ(ioasid_put(nullptr, a_, id, nullptr), -EINVAL);
}

TEST_F(CapiTest, GetOverflows) {
  const ioasid_t id = alloc(a_);
  int rc = 0;
  uint32_t n = 0;
  while ((rc = ioasid_get(space_, a_, id)) == 0) ++n;
  EXPECT_EQ(rc, -EOVERFLOW);
  EXPECT_EQ(n, (1u << 24) - 2);  // the allocation holds one of the 2^24 - 1
  EXPECT_EQ(ioasid_bind(space_, a_, id, IOASID_INVALID), -EOVERFLOW);
}

TEST_F(CapiTest, AnotherSetsIdLooksMissing) {
  const ioasid_t id = alloc(a_);
  void* p = nullptr;
  bool released = false;
  EXPECT_EQ(ioasid_find(space_, b_, id, nullptr, nullptr, &p), -ENOENT);
  EXPECT_EQ(ioasid_free(space_, b_, id), -ENOENT);
  EXPECT_EQ(ioasid_get(space_, b_, id), -ENOENT);
  EXPECT_EQ(ioasid_put(space_, b_, id, &released), -ENOENT);
  EXPECT_EQ(ioasid_bind(space_, b_, id, 5), -ENOENT);
  EXPECT_EQ(ioasid_unbind(space_, b_, id), -ENOENT);
  // A handle that names no set at all answers the same.
  EXPECT_EQ(ioasid_find(space_, 0xDEAD, id, nullptr, nullptr, &p), -ENOENT);
  EXPECT_EQ(ioasid_free(space_, 0xDEAD, id), -ENOENT);
  // Nothing changed.
  ioasid_set_info info;
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.count, 1u);
  ASSERT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, &p), 0);
}

bool validate_equals(void* opaque, void* priv) { return opaque == priv; }

TEST_F(CapiTest, FindAndSetData) {
  int x = 1, y = 2;
  const ioasid_t id = alloc(a_, &x);
  void* p = nullptr;
  ASSERT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, &p), 0);
  EXPECT_EQ(p, &x);
  p = nullptr;
  ASSERT_EQ(ioasid_find(space_, IOASID_SET_ANY, id, validate_equals, &x, &p), 0);
  EXPECT_EQ(p, &x);
  p = &y;
  EXPECT_EQ(ioasid_find(space_, a_, id, validate_equals, &y, &p), -ENOENT);  // validator said no
  EXPECT_EQ(p, &y);
  EXPECT_EQ(ioasid_find(space_, a_, 0x100000, nullptr, nullptr, &p), -ERANGE);
  EXPECT_EQ(ioasid_find(space_, a_, id + 1, nullptr, nullptr, &p), -ENOENT);
  EXPECT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_find(nullptr, a_, id, nullptr, nullptr, &p), -EINVAL);

  ASSERT_EQ(ioasid_set_data(space_, id, &y), 0);
  ASSERT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, &p), 0);
  EXPECT_EQ(p, &y);
  EXPECT_EQ(ioasid_set_data(space_, id + 1, &y), -ENOENT);
  EXPECT_EQ(ioasid_set_data(space_, 0x100000, &y), -ERANGE);
  EXPECT_EQ(ioasid_set_data(nullptr, id, &y), -EINVAL);
  ioasid_synchronize(space_);
  ioasid_synchronize(nullptr);  // ignored
}

TEST_F(CapiTest, BindUnbindAndSpid) {
  const ioasid_t x = alloc(a_);
  const ioasid_t y = alloc(a_);
  ASSERT_EQ(ioasid_bind(space_, a_, x, 7), 0);
  ASSERT_EQ(ioasid_bind(space_, a_, x, 7), 0);  // a second bind, same spid
  ioasid_t found = 0;
  ASSERT_EQ(ioasid_find_by_spid(space_, a_, 7, &found), 0);
  EXPECT_EQ(found, x);
  EXPECT_EQ(ioasid_find_by_spid(space_, b_, 7, &found), -ENOENT);  // set-private
  EXPECT_EQ(ioasid_find_by_spid(space_, a_, 8, &found), -ENOENT);
  EXPECT_EQ(ioasid_find_by_spid(space_, 9999, 7, &found), -ENOENT);
  EXPECT_EQ(ioasid_find_by_spid(space_, a_, 7, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_find_by_spid(nullptr, a_, 7, &found), -EINVAL);
  EXPECT_EQ(ioasid_bind(space_, a_, y, 7), -EEXIST);  // spid maps x
  EXPECT_EQ(ioasid_bind(space_, a_, x, 8), -EEXIST);  // x maps 7
  EXPECT_EQ(ioasid_bind(space_, a_, y, 0x100000), -ERANGE);
  EXPECT_EQ(ioasid_bind(space_, a_, 0x100000, 1), -ERANGE);
  EXPECT_EQ(ioasid_bind(space_, a_, y + 100, 1), -ENOENT);
  ASSERT_EQ(ioasid_bind(space_, a_, y, IOASID_INVALID), 0);  // bind without a guest PASID
  ioasid_set_info info;
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.bound, 2u);

  ASSERT_EQ(ioasid_free(space_, a_, x), 0);  // binds hold it: FREE_PENDING
  EXPECT_EQ(ioasid_bind(space_, a_, x, 7), -EBUSY);
  ASSERT_EQ(ioasid_unbind(space_, a_, x), 0);
  ASSERT_EQ(ioasid_find_by_spid(space_, a_, 7, &found), 0);  // one bind left
  ASSERT_EQ(ioasid_unbind(space_, a_, x), 0);                // the last: x released
  EXPECT_EQ(ioasid_find_by_spid(space_, a_, 7, &found), -ENOENT);
  EXPECT_EQ(ioasid_unbind(space_, a_, x), -ENOENT);
  ASSERT_EQ(ioasid_unbind(space_, a_, y), 0);
  EXPECT_EQ(ioasid_unbind(space_, a_, y), -ENOENT);  // not bound
  EXPECT_EQ(ioasid_unbind(space_, a_, 0x100000), -ERANGE);
  EXPECT_EQ(ioasid_bind(nullptr, a_, y, 1), -EINVAL);
  EXPECT_EQ(ioasid_unbind(nullptr, a_, y), -EINVAL);
}

TEST_F(CapiTest, TrimGivesBackEmptyLeaves) {
  std::vector<ioasid_t> ids;
  ASSERT_EQ(ioasid_set_quota(space_, a_, 2000), 0);
  for (int i = 0; i < 2000; ++i) ids.push_back(alloc(a_));
  const uint64_t before = stats_of(space_).table_bytes;
  for (ioasid_t id : ids) ASSERT_EQ(ioasid_free(space_, a_, id), 0);
  const uint64_t released = ioasid_space_trim(space_);
  EXPECT_GT(released, 0u);
  EXPECT_EQ(stats_of(space_).table_bytes, before - released);
  EXPECT_EQ(ioasid_space_trim(nullptr), 0u);
}

// ---- notifiers ------------------------------------------------------------------------------

struct Recorder {
  std::vector<ioasid_event> events;
};

void record_event(void* opaque, const ioasid_event* ev) {
  static_cast<Recorder*>(opaque)->events.push_back(*ev);
}

TEST_F(CapiTest, NotifiersDeliverEvents) {
  Recorder all, frees, owner;
  uint64_t n_all = 0, n_free = 0, n_owner = 0;
  ASSERT_EQ(ioasid_notifier_register(space_, IOASID_EVENT_MASK_ALL, record_event, &all, &n_all), 0);
  ASSERT_EQ(ioasid_notifier_register(space_, IOASID_EVENT_MASK(IOASID_EVENT_FREE), record_event,
                                     &frees, &n_free),
            0);
  // For a token whose set does not exist yet.
  ASSERT_EQ(ioasid_notifier_register_owner(space_, 300, IOASID_EVENT_MASK_ALL, record_event, &owner,
                                           &n_owner),
            0);
  EXPECT_NE(n_all, n_free);
  EXPECT_NE(n_free, n_owner);

  int data = 0;
  const ioasid_t id = alloc(a_, &data);
  ASSERT_EQ(ioasid_bind(space_, a_, id, 9), 0);
  ASSERT_EQ(ioasid_unbind(space_, a_, id), 0);
  ASSERT_EQ(ioasid_free(space_, a_, id), 0);

  ASSERT_EQ(all.events.size(), 4u);
  const uint32_t types[] = {IOASID_EVENT_ALLOC, IOASID_EVENT_BIND, IOASID_EVENT_UNBIND,
                            IOASID_EVENT_FREE};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(all.events[i].type, types[i]) << i;
    EXPECT_EQ(all.events[i].id, id);
    EXPECT_EQ(all.events[i].set, a_);
    EXPECT_EQ(all.events[i].owner_token, 100u);
    EXPECT_EQ(all.events[i].priv, &data);
    EXPECT_EQ(all.events[i].reserved0, 0u);
  }
  EXPECT_EQ(all.events[0].spid, IOASID_INVALID);
  EXPECT_EQ(all.events[1].spid, 9u);  // BIND sees the guest PASID
  EXPECT_EQ(all.events[2].spid, 9u);  // UNBIND too, before it goes
  EXPECT_EQ(all.events[3].spid, IOASID_INVALID);
  ASSERT_EQ(frees.events.size(), 1u);
  EXPECT_EQ(frees.events[0].type, static_cast<uint32_t>(IOASID_EVENT_FREE));
  EXPECT_TRUE(owner.events.empty());

  ioasid_set_t c = 0;
  ASSERT_EQ(ioasid_set_create(space_, 300, 4, &c), 0);
  const ioasid_t cid = alloc(c);
  ASSERT_EQ(owner.events.size(), 1u);
  EXPECT_EQ(owner.events[0].type, static_cast<uint32_t>(IOASID_EVENT_ALLOC));
  EXPECT_EQ(owner.events[0].id, cid);
  EXPECT_EQ(owner.events[0].set, c);
  EXPECT_EQ(owner.events[0].owner_token, 300u);

  ASSERT_EQ(ioasid_notifier_unregister(space_, n_all), 0);
  ASSERT_EQ(ioasid_notifier_unregister(space_, n_owner), 0);
  EXPECT_EQ(ioasid_notifier_unregister(space_, n_all), -ENOENT);
  EXPECT_EQ(ioasid_notifier_unregister(space_, 123456), -ENOENT);
  EXPECT_EQ(ioasid_notifier_unregister(nullptr, n_free), -EINVAL);
  ASSERT_EQ(all.events.size(), 5u);  // c's ALLOC too
  ASSERT_EQ(ioasid_free(space_, c, cid), 0);
  EXPECT_EQ(all.events.size(), 5u);
  EXPECT_EQ(owner.events.size(), 1u);
  EXPECT_EQ(frees.events.size(), 2u);
  // n_free stays registered: ioasid_space_destroy frees its trampoline (checked by ASan).
}

TEST_F(CapiTest, NotifierRegisterErrors) {
  Recorder r;
  uint64_t n = 777;
  EXPECT_EQ(ioasid_notifier_register(space_, 0, record_event, &r, &n), -EINVAL);
  EXPECT_EQ(ioasid_notifier_register(space_, 0x10, record_event, &r, &n), -EINVAL);
  EXPECT_EQ(ioasid_notifier_register(space_, IOASID_EVENT_MASK_ALL, nullptr, &r, &n), -EINVAL);
  EXPECT_EQ(ioasid_notifier_register(space_, IOASID_EVENT_MASK_ALL, record_event, &r, nullptr),
            -EINVAL);
  EXPECT_EQ(ioasid_notifier_register(nullptr, IOASID_EVENT_MASK_ALL, record_event, &r, &n),
            -EINVAL);
  EXPECT_EQ(ioasid_notifier_register_owner(space_, 1, 0, record_event, &r, &n), -EINVAL);
  EXPECT_EQ(ioasid_notifier_register_owner(space_, 1, IOASID_EVENT_MASK_ALL, nullptr, &r, &n),
            -EINVAL);
  EXPECT_EQ(ioasid_notifier_register_owner(nullptr, 1, IOASID_EVENT_MASK_ALL, record_event, &r, &n),
            -EINVAL);
  EXPECT_EQ(n, 777u);
}

// What a re-entrant notifier saw when it called back into the library.
struct Reentry {
  ioasid_space* space;
  ioasid_set_t set;
  int alloc_rc = 1, free_rc = 1, get_rc = 1, put_rc = 1, bind_rc = 1, set_create_rc = 1;
  int set_quota_rc = 1, set_destroy_rc = 1, set_data_rc = 1, notifier_rc = 1, unregister_rc = 1;
  int allocator_rc = 1, find_rc = 1, set_info_rc = 1, set_find_rc = 1, stats_rc = 1;
  void* found = nullptr;
  bool done = false;
};

int dummy_alloc(void*, ioasid_t min, ioasid_t, ioasid_t* out) {
  *out = min;
  return 0;
}
void dummy_free(void*, ioasid_t) {}

void reentrant_notifier(void* opaque, const ioasid_event* ev) {
  auto* r = static_cast<Reentry*>(opaque);
  if (r->done || ev->type != IOASID_EVENT_ALLOC) return;
  r->done = true;
  ioasid_t id = 0;
  ioasid_set_t set = 0;
  uint64_t n = 0;
  r->alloc_rc = ioasid_alloc(r->space, r->set, 1, 100, nullptr, &id);
  r->free_rc = ioasid_free(r->space, r->set, ev->id);
  r->get_rc = ioasid_get(r->space, r->set, ev->id);
  r->put_rc = ioasid_put(r->space, r->set, ev->id, nullptr);
  r->bind_rc = ioasid_bind(r->space, r->set, ev->id, 3);
  r->set_create_rc = ioasid_set_create(r->space, 555, 1, &set);
  r->set_quota_rc = ioasid_set_quota(r->space, r->set, 5);
  r->set_destroy_rc = ioasid_set_destroy(r->space, r->set, nullptr);
  r->set_data_rc = ioasid_set_data(r->space, ev->id, nullptr);
  r->notifier_rc =
      ioasid_notifier_register(r->space, IOASID_EVENT_MASK_ALL, record_event, nullptr, &n);
  r->unregister_rc = ioasid_notifier_unregister(r->space, 1);
  static const ioasid_allocator_ops ops = {dummy_alloc, dummy_free, nullptr};
  r->allocator_rc = ioasid_allocator_register(r->space, &ops);
  ioasid_allocator_unregister(r->space, &ops);  // refused, logged
  // Read-only calls work.
  r->find_rc = ioasid_find(r->space, r->set, ev->id, nullptr, nullptr, &r->found);
  ioasid_set_info info;
  r->set_info_rc = ioasid_set_query(r->space, r->set, &info);
  r->set_find_rc = ioasid_set_find(r->space, 100, &set);
  ioasid_stats st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  r->stats_rc = ioasid_space_stats(r->space, &st);
}

TEST_F(CapiTest, NotifierCallingBackGetsEdeadlk) {
  Reentry r;
  r.space = space_;
  r.set = a_;
  uint64_t n = 0;
  ASSERT_EQ(ioasid_notifier_register(space_, IOASID_EVENT_MASK_ALL, reentrant_notifier, &r, &n), 0);
  int data = 0;
  const ioasid_t id = alloc(a_, &data);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.alloc_rc, -EDEADLK);
  EXPECT_EQ(r.free_rc, -EDEADLK);
  EXPECT_EQ(r.get_rc, -EDEADLK);
  EXPECT_EQ(r.put_rc, -EDEADLK);
  EXPECT_EQ(r.bind_rc, -EDEADLK);
  EXPECT_EQ(r.set_create_rc, -EDEADLK);
  EXPECT_EQ(r.set_quota_rc, -EDEADLK);
  EXPECT_EQ(r.set_destroy_rc, -EDEADLK);
  EXPECT_EQ(r.set_data_rc, -EDEADLK);
  EXPECT_EQ(r.notifier_rc, -EDEADLK);
  EXPECT_EQ(r.unregister_rc, -EDEADLK);
  EXPECT_EQ(r.allocator_rc, -EDEADLK);
  EXPECT_TRUE(logged("called from a callback"));
  EXPECT_EQ(r.find_rc, 0);
  EXPECT_EQ(r.found, &data);
  EXPECT_EQ(r.set_info_rc, 0);
  EXPECT_EQ(r.set_find_rc, 0);
  EXPECT_EQ(r.stats_rc, 0);
  // Nothing changed behind our back.
  ioasid_stats st = stats_of(space_);
  EXPECT_EQ(st.live_ids, 1u);
  EXPECT_EQ(st.allocator_groups, 0u);
  EXPECT_EQ(st.sets, 2u);
  void* p = nullptr;
  EXPECT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, &p), 0);
  ASSERT_EQ(ioasid_notifier_unregister(space_, n), 0);
}

// ---- custom allocators ----------------------------------------------------------------------

// A model host allocator in C style: pdata is a Unit naming the vIOMMU that was called.
struct Host {
  std::set<ioasid_t> live;
  std::vector<ioasid_t> freed;
  ioasid_t fixed = IOASID_INVALID;  // answer this, whatever the range
  int error = 0;                    // fail with this
  ioasid_space* reenter = nullptr;  // call ioasid_alloc on it from alloc
  int reenter_rc = 1;
};

struct Unit {
  Host* host;
  int name;
  std::vector<int>* trace;
};

int unit_alloc(void* pdata, ioasid_t min, ioasid_t max, ioasid_t* out) {
  auto* u = static_cast<Unit*>(pdata);
  u->trace->push_back(u->name);
  Host& h = *u->host;
  if (h.reenter != nullptr) {
    ioasid_t id = 0;
    ioasid_set_t set = 0;
    if (ioasid_set_find(h.reenter, 100, &set) == 0) {
      h.reenter_rc = ioasid_alloc(h.reenter, set, min, max, nullptr, &id);
    }
  }
  if (h.error != 0) return h.error;
  if (h.fixed != IOASID_INVALID) {
    *out = h.fixed;
    h.live.insert(*out);
    return 0;
  }
  for (uint64_t id = min; id <= max; ++id) {
    if (h.live.insert(static_cast<ioasid_t>(id)).second) {
      *out = static_cast<ioasid_t>(id);
      return 0;
    }
  }
  return -ENOSPC;
}

void unit_free(void* pdata, ioasid_t id) {
  auto* u = static_cast<Unit*>(pdata);
  u->trace->push_back(-u->name);
  u->host->live.erase(id);
  u->host->freed.push_back(id);
}

// A different allocator type: different callbacks, another group; answers from the top.
int top_alloc(void* pdata, ioasid_t min, ioasid_t max, ioasid_t* out) {
  auto* u = static_cast<Unit*>(pdata);
  u->trace->push_back(u->name);
  for (int64_t id = max; id >= static_cast<int64_t>(min); --id) {
    if (u->host->live.insert(static_cast<ioasid_t>(id)).second) {
      *out = static_cast<ioasid_t>(id);
      return 0;
    }
  }
  return -ENOSPC;
}

class CapiAllocatorTest : public CapiTest {
 protected:
  Host host_, host2_;
  std::vector<int> trace_;
  Unit u1_{&host_, 1, &trace_}, u2_{&host_, 2, &trace_}, u3_{&host2_, 3, &trace_};
  ioasid_allocator_ops ops1_{unit_alloc, unit_free, &u1_};
  ioasid_allocator_ops ops2_{unit_alloc, unit_free, &u2_};  // same callbacks: groups with ops1_
  ioasid_allocator_ops ops3_{top_alloc, unit_free, &u3_};   // other callbacks: its own group
};

TEST_F(CapiAllocatorTest, RegisterErrors) {
  EXPECT_EQ(ioasid_allocator_register(space_, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_allocator_register(nullptr, &ops1_), -EINVAL);
  ioasid_allocator_ops no_alloc{nullptr, unit_free, &u1_};
  ioasid_allocator_ops no_free{unit_alloc, nullptr, &u1_};
  EXPECT_EQ(ioasid_allocator_register(space_, &no_alloc), -EINVAL);
  EXPECT_EQ(ioasid_allocator_register(space_, &no_free), -EINVAL);

  // The first custom allocator waits for the default one to hold no ID.
  const ioasid_t id = alloc(a_);
  EXPECT_EQ(ioasid_allocator_register(space_, &ops1_), -EAGAIN);
  EXPECT_EQ(stats_of(space_).allocator_groups, 0u);
  ASSERT_EQ(ioasid_free(space_, a_, id), 0);

  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  EXPECT_EQ(ioasid_allocator_register(space_, &ops1_), -EEXIST);  // the same C pointer
  EXPECT_EQ(stats_of(space_).custom_allocator_active, 1u);
  ioasid_allocator_unregister(space_, &ops1_);
  EXPECT_EQ(stats_of(space_).custom_allocator_active, 0u);
  // Registrable again once gone.
  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  ioasid_allocator_unregister(space_, &ops1_);
  ioasid_allocator_unregister(nullptr, &ops1_);  // ignored
}

TEST_F(CapiAllocatorTest, SameCallbacksGroupAndShareIds) {
  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  ASSERT_EQ(ioasid_allocator_register(space_, &ops2_), 0);  // joins ops1_'s group
  ASSERT_EQ(ioasid_allocator_register(space_, &ops3_), 0);  // standby group
  ioasid_stats st = stats_of(space_);
  EXPECT_EQ(st.allocator_groups, 2u);
  EXPECT_EQ(st.custom_allocator_active, 1u);

  const ioasid_t x = alloc(a_);
  EXPECT_EQ(x, 1u);
  EXPECT_EQ(trace_, (std::vector<int>{1}));  // the group's first member is called
  // ops1_ leaves: the group continues with ops2_'s pdata, the IDs stay shared.
  ioasid_allocator_unregister(space_, &ops1_);
  EXPECT_EQ(stats_of(space_).allocator_groups, 2u);
  const ioasid_t y = alloc(a_);
  EXPECT_EQ(y, 2u);
  ASSERT_EQ(ioasid_free(space_, a_, x), 0);  // freed through the surviving member
  EXPECT_EQ(trace_, (std::vector<int>{1, 2, -2}));
  EXPECT_EQ(host_.freed, (std::vector<ioasid_t>{x}));

  // The last member leaves with y live: y is orphaned, the standby group becomes active.
  ioasid_allocator_unregister(space_, &ops2_);
  st = stats_of(space_);
  EXPECT_EQ(st.allocator_groups, 1u);
  EXPECT_EQ(st.orphaned_ids, 1u);
  EXPECT_EQ(st.orphaned_total, 1u);
  EXPECT_TRUE(logged("orphaned"));
  const ioasid_t z = alloc(a_);
  EXPECT_EQ(z, 0xFFFFFu);  // top_alloc
  EXPECT_EQ(trace_.back(), 3);
  ASSERT_EQ(ioasid_free(space_, a_, y), 0);  // an orphan: no allocator called
  EXPECT_EQ(stats_of(space_).orphaned_ids, 0u);
  EXPECT_EQ(host_.freed.size(), 1u);
  ASSERT_EQ(ioasid_free(space_, a_, z), 0);
  EXPECT_EQ(trace_.back(), -3);
  ioasid_allocator_unregister(space_, &ops3_);
  EXPECT_EQ(stats_of(space_).custom_allocator_active, 0u);
  EXPECT_EQ(alloc(a_), 1u);  // the default allocator again
}

TEST_F(CapiAllocatorTest, TwoStructsWithTheSameContentsAreTwoRegistrations) {
  ioasid_allocator_ops copy = ops1_;
  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  ASSERT_EQ(ioasid_allocator_register(space_, &copy), 0);  // a different pointer: joins
  EXPECT_EQ(stats_of(space_).allocator_groups, 1u);
  ioasid_allocator_unregister(space_, &ops1_);
  EXPECT_EQ(stats_of(space_).custom_allocator_active, 1u);  // copy still holds the group
  EXPECT_EQ(ioasid_allocator_register(space_, &copy), -EEXIST);
  ioasid_allocator_unregister(space_, &copy);
  EXPECT_EQ(stats_of(space_).custom_allocator_active, 0u);
}

TEST_F(CapiAllocatorTest, UnknownOpsAreLoggedAndIgnored) {
  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  ioasid_allocator_unregister(space_, &ops2_);
  EXPECT_TRUE(logged("not registered"));
  EXPECT_EQ(stats_of(space_).allocator_groups, 1u);
  ioasid_allocator_unregister(space_, &ops1_);
}

TEST_F(CapiAllocatorTest, AllocatorAnswersAreChecked) {
  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  ioasid_t id = 4242;
  host_.error = -ENOSPC;
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 10, nullptr, &id), -ENOSPC);
  host_.error = -EPERM;  // errnos map through the error table
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 10, nullptr, &id), -EPERM);
  host_.error = -ENODEV;  // anything the table does not hold is an I/O error
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 10, nullptr, &id), -EIO);
  host_.error = 0;
  host_.fixed = 50;  // outside [1, 10]: handed back
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 10, nullptr, &id), -ERANGE);
  EXPECT_EQ(host_.freed, (std::vector<ioasid_t>{50}));
  host_.fixed = 0;  // reserved PASID 0
  EXPECT_EQ(ioasid_alloc(space_, a_, 0, 10, nullptr, &id), -EEXIST);
  EXPECT_EQ(id, 4242u);
  EXPECT_EQ(stats_of(space_).allocator_rejects, 2u);
  host_.fixed = IOASID_INVALID;
  ASSERT_EQ(ioasid_alloc(space_, b_, 1, 10, nullptr, &id), 0);
  host_.fixed = id;  // already live in another set
  ioasid_t dup = 0;
  EXPECT_EQ(ioasid_alloc(space_, a_, 1, 10, nullptr, &dup), -EEXIST);
  host_.fixed = IOASID_INVALID;
  ASSERT_EQ(ioasid_free(space_, b_, id), 0);
  ioasid_allocator_unregister(space_, &ops1_);
}

TEST_F(CapiAllocatorTest, AllocatorCallingBackGetsEdeadlk) {
  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  host_.reenter = space_;
  const ioasid_t id = alloc(b_);
  EXPECT_EQ(host_.reenter_rc, -EDEADLK);
  host_.reenter = nullptr;
  ASSERT_EQ(ioasid_free(space_, b_, id), 0);
  ioasid_allocator_unregister(space_, &ops1_);
}

TEST_F(CapiAllocatorTest, RegisteredAllocatorsFreedWithTheSpace) {
  // Left registered on purpose: ioasid_space_destroy frees the copies (checked by ASan/LSan).
  ASSERT_EQ(ioasid_allocator_register(space_, &ops1_), 0);
  ASSERT_EQ(ioasid_allocator_register(space_, &ops3_), 0);
  alloc(a_);
}

// ---- host backend ---------------------------------------------------------------------------

TEST_F(CapiTest, BackendActsOnItsSet) {
  ioasid_backend* be = nullptr;
  EXPECT_EQ(ioasid_backend_local_create(space_, 9999, &be), -ENOENT);
  EXPECT_EQ(ioasid_backend_local_create(space_, IOASID_SET_ANY, &be), -ENOENT);
  EXPECT_EQ(ioasid_backend_local_create(space_, a_, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_backend_local_create(nullptr, a_, &be), -EINVAL);
  EXPECT_EQ(be, nullptr);
  ASSERT_EQ(ioasid_backend_local_create(space_, a_, &be), 0);
  ASSERT_NE(be, nullptr);

  ioasid_t id = 0;
  ASSERT_EQ(ioasid_backend_alloc(be, 1, 100, &id), 0);
  void* p = &id;
  ASSERT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, &p), 0);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(ioasid_backend_alloc(be, 10, 1, &id), -EINVAL);
  EXPECT_EQ(ioasid_backend_alloc(be, 1, 0x100000, &id), -ERANGE);
  EXPECT_EQ(ioasid_backend_alloc(be, 1, 100, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_backend_alloc(nullptr, 1, 100, &id), -EINVAL);

  ASSERT_EQ(ioasid_backend_bind(be, id, 5), 0);
  ioasid_t found = 0;
  ASSERT_EQ(ioasid_find_by_spid(space_, a_, 5, &found), 0);
  EXPECT_EQ(found, id);
  ASSERT_EQ(ioasid_backend_unbind(be, id), 0);
  EXPECT_EQ(ioasid_backend_unbind(be, id), -ENOENT);

  // Another set's ID looks missing.
  const ioasid_t other = alloc(b_);
  EXPECT_EQ(ioasid_backend_free(be, other), -ENOENT);
  EXPECT_EQ(ioasid_backend_bind(be, other, 6), -ENOENT);
  EXPECT_EQ(ioasid_backend_unbind(be, other), -ENOENT);

  ASSERT_EQ(ioasid_backend_free(be, id), 0);
  EXPECT_EQ(ioasid_backend_free(be, id), -ENOENT);
  EXPECT_EQ(ioasid_backend_free(nullptr, id), -EINVAL);
  EXPECT_EQ(ioasid_backend_bind(nullptr, id, 1), -EINVAL);
  EXPECT_EQ(ioasid_backend_unbind(nullptr, id), -EINVAL);

  ASSERT_EQ(ioasid_set_quota(space_, a_, 1), 0);
  ASSERT_EQ(ioasid_backend_alloc(be, 1, 100, &id), 0);
  EXPECT_EQ(ioasid_backend_alloc(be, 1, 100, &id), -EDQUOT);
  ioasid_backend_destroy(be);  // frees nothing of the set
  ioasid_set_info info;
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.count, 1u);
  ioasid_backend_destroy(nullptr);
}

// Query, references, SPID lookup and set info: every HostBackend call through a local backend.
TEST_F(CapiTest, BackendQueryReferencesAndSetInfo) {
  ioasid_backend* be = nullptr;
  ASSERT_EQ(ioasid_backend_local_create(space_, a_, &be), 0);
  ioasid_t id = 0;
  ASSERT_EQ(ioasid_backend_alloc(be, 1, 100, &id), 0);

  ioasid_id_info info;
  std::memset(&info, 0xAB, sizeof(info));
  ASSERT_EQ(ioasid_backend_query(be, id, &info), 0);
  EXPECT_EQ(info.id, id);
  EXPECT_EQ(info.state, uint32_t{IOASID_ID_ACTIVE});
  EXPECT_EQ(info.refs, 1u);
  EXPECT_EQ(info.binds, 0u);
  EXPECT_EQ(info.spid, IOASID_INVALID);
  EXPECT_EQ(info.reserved0, 0u);

  ASSERT_EQ(ioasid_backend_bind(be, id, 77), 0);
  ASSERT_EQ(ioasid_backend_get(be, id), 0);
  ASSERT_EQ(ioasid_backend_query(be, id, &info), 0);
  EXPECT_EQ(info.refs, 3u);
  EXPECT_EQ(info.binds, 1u);
  EXPECT_EQ(info.spid, 77u);
  ioasid_t found = 0;
  ASSERT_EQ(ioasid_backend_find_by_spid(be, 77, &found), 0);
  EXPECT_EQ(found, id);

  ioasid_set_info si;
  ASSERT_EQ(ioasid_backend_set_info(be, &si), 0);
  EXPECT_EQ(si.set, a_);
  EXPECT_EQ(si.owner_token, 100u);
  EXPECT_EQ(si.quota, 64u);
  EXPECT_EQ(si.count, 1u);
  EXPECT_EQ(si.bound, 1u);
  EXPECT_EQ(si.dying, 0u);

  // The same through the space's query.
  ioasid_id_info sq;
  ASSERT_EQ(ioasid_query(space_, IOASID_SET_ANY, id, &sq), 0);
  EXPECT_EQ(std::memcmp(&sq, &info, sizeof(sq)), 0);
  EXPECT_EQ(ioasid_query(space_, b_, id, &sq), -ENOENT);  // another set's
  EXPECT_EQ(ioasid_query(space_, a_, 0x100000, &sq), -ERANGE);
  EXPECT_EQ(ioasid_query(space_, a_, id, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_query(nullptr, a_, id, &sq), -EINVAL);

  // FREE_PENDING: freed by the owner, still referenced by the bind and the get.
  ASSERT_EQ(ioasid_backend_free(be, id), 0);
  ASSERT_EQ(ioasid_backend_query(be, id, &info), 0);
  EXPECT_EQ(info.state, uint32_t{IOASID_ID_FREE_PENDING});
  EXPECT_EQ(info.refs, 2u);
  EXPECT_EQ(ioasid_backend_get(be, id), -EBUSY);
  EXPECT_EQ(ioasid_backend_bind(be, id, IOASID_INVALID), -EBUSY);
  EXPECT_EQ(ioasid_backend_free(be, id), -EBUSY);
  bool released = true;
  ASSERT_EQ(ioasid_backend_put(be, id, &released), 0);
  EXPECT_FALSE(released);
  ASSERT_EQ(ioasid_backend_unbind(be, id), 0);  // the last reference: released
  std::memset(&info, 0xCD, sizeof(info));
  const ioasid_id_info before = info;
  EXPECT_EQ(ioasid_backend_query(be, id, &info), -ENOENT);
  EXPECT_EQ(std::memcmp(&info, &before, sizeof(info)), 0);          // untouched on failure
  EXPECT_EQ(ioasid_backend_find_by_spid(be, 77, &found), -ENOENT);  // the spid went with it
  EXPECT_EQ(ioasid_backend_put(be, id, &released), -ENOENT);
  EXPECT_EQ(ioasid_backend_get(be, id), -ENOENT);

  // put of the only reference releases; the flag is optional.
  ASSERT_EQ(ioasid_backend_alloc(be, 1, 100, &id), 0);
  ASSERT_EQ(ioasid_backend_put(be, id, &released), 0);
  EXPECT_TRUE(released);
  ASSERT_EQ(ioasid_backend_alloc(be, 1, 100, &id), 0);
  ASSERT_EQ(ioasid_backend_put(be, id, nullptr), 0);

  // Outside the space.
  EXPECT_EQ(ioasid_backend_query(be, 0x100000, &info), -ERANGE);
  EXPECT_EQ(ioasid_backend_get(be, 0x100000), -ERANGE);
  EXPECT_EQ(ioasid_backend_put(be, 0x100000, &released), -ERANGE);
  EXPECT_EQ(ioasid_backend_free(be, 0x100000), -ERANGE);
  EXPECT_EQ(ioasid_backend_unbind(be, 0x100000), -ERANGE);
  ASSERT_EQ(ioasid_backend_alloc(be, 1, 100, &id), 0);
  EXPECT_EQ(ioasid_backend_bind(be, id, 0x100000), -ERANGE);  // spid outside the space
  EXPECT_EQ(ioasid_backend_bind(be, 0x100000, 1), -ERANGE);
  // spid conflicts.
  ioasid_t id2 = 0;
  ASSERT_EQ(ioasid_backend_alloc(be, 1, 100, &id2), 0);
  ASSERT_EQ(ioasid_backend_bind(be, id, 5), 0);
  EXPECT_EQ(ioasid_backend_bind(be, id2, 5), -EEXIST);
  EXPECT_EQ(ioasid_backend_bind(be, id, 6), -EEXIST);

  // Another set's IDs and SPIDs look missing.
  const ioasid_t other = alloc(b_);
  ASSERT_EQ(ioasid_bind(space_, b_, other, 9), 0);
  EXPECT_EQ(ioasid_backend_query(be, other, &info), -ENOENT);
  EXPECT_EQ(ioasid_backend_get(be, other), -ENOENT);
  EXPECT_EQ(ioasid_backend_put(be, other, &released), -ENOENT);
  EXPECT_EQ(ioasid_backend_find_by_spid(be, 9, &found), -ENOENT);

  // NULL handles and out-parameters.
  EXPECT_EQ(ioasid_backend_query(nullptr, id, &info), -EINVAL);
  EXPECT_EQ(ioasid_backend_query(be, id, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_backend_find_by_spid(nullptr, 5, &found), -EINVAL);
  EXPECT_EQ(ioasid_backend_find_by_spid(be, 5, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_backend_set_info(nullptr, &si), -EINVAL);
  EXPECT_EQ(ioasid_backend_set_info(be, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_backend_get(nullptr, id), -EINVAL);
  EXPECT_EQ(ioasid_backend_put(nullptr, id, &released), -EINVAL);

  // A dying set, then a destroyed one.
  ASSERT_EQ(ioasid_get(space_, a_, id2), 0);  // keeps id2 FREE_PENDING through the destroy
  bool gone = true;
  ASSERT_EQ(ioasid_set_destroy(space_, a_, &gone), 0);
  EXPECT_FALSE(gone);
  ASSERT_EQ(ioasid_backend_set_info(be, &si), 0);
  EXPECT_EQ(si.dying, 1u);
  EXPECT_EQ(ioasid_backend_alloc(be, 1, 100, &id), -EBUSY);
  ASSERT_EQ(ioasid_put(space_, IOASID_SET_ANY, id2, nullptr), 0);
  ASSERT_EQ(ioasid_backend_unbind(be, id), 0);  // the last member is released: the set goes
  std::memset(&si, 0xEE, sizeof(si));
  const ioasid_set_info si_before = si;
  EXPECT_EQ(ioasid_backend_set_info(be, &si), -ENOENT);
  EXPECT_EQ(std::memcmp(&si, &si_before, sizeof(si)), 0);
  EXPECT_EQ(ioasid_backend_alloc(be, 1, 100, &id), -ENOENT);
  ioasid_backend_destroy(be);
}

// A notifier calling the backend of its own space: every mutating call is -EDEADLK.
struct BackendReentry {
  ioasid_backend* be = nullptr;
  ioasid_t id = IOASID_INVALID;
  int alloc_rc = 1, free_rc = 1, get_rc = 1, put_rc = 1, bind_rc = 1, unbind_rc = 1;
  int query_rc = 1, set_info_rc = 1;
  bool done = false;
};
void backend_reentrant_notifier(void* opaque, const ioasid_event* ev) {
  auto* r = static_cast<BackendReentry*>(opaque);
  if (r->done || ev->type != IOASID_EVENT_ALLOC) return;
  r->done = true;
  ioasid_t id = 0;
  bool released = false;
  ioasid_id_info info;
  ioasid_set_info si;
  r->alloc_rc = ioasid_backend_alloc(r->be, 1, 100, &id);
  r->free_rc = ioasid_backend_free(r->be, ev->id);
  r->get_rc = ioasid_backend_get(r->be, ev->id);
  r->put_rc = ioasid_backend_put(r->be, ev->id, &released);
  r->bind_rc = ioasid_backend_bind(r->be, ev->id, 3);
  r->unbind_rc = ioasid_backend_unbind(r->be, ev->id);
  r->query_rc = ioasid_backend_query(r->be, ev->id, &info);
  r->set_info_rc = ioasid_backend_set_info(r->be, &si);
}

TEST_F(CapiTest, BackendFromANotifierGetsEdeadlk) {
  BackendReentry r;
  ASSERT_EQ(ioasid_backend_local_create(space_, a_, &r.be), 0);
  uint64_t n = 0;
  ASSERT_EQ(ioasid_notifier_register_owner(space_, 100, IOASID_EVENT_MASK(IOASID_EVENT_ALLOC),
                                           backend_reentrant_notifier, &r, &n),
            0);
  const ioasid_t id = alloc(a_);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.alloc_rc, -EDEADLK);
  EXPECT_EQ(r.free_rc, -EDEADLK);
  EXPECT_EQ(r.get_rc, -EDEADLK);
  EXPECT_EQ(r.put_rc, -EDEADLK);
  EXPECT_EQ(r.bind_rc, -EDEADLK);
  EXPECT_EQ(r.unbind_rc, -EDEADLK);
  // Queries read under the query lock, which a callback may take.
  EXPECT_EQ(r.query_rc, 0);
  EXPECT_EQ(r.set_info_rc, 0);
  ioasid_id_info info;
  ASSERT_EQ(ioasid_backend_query(r.be, id, &info), 0);
  EXPECT_EQ(info.refs, 1u);  // nothing changed
  ASSERT_EQ(ioasid_notifier_unregister(space_, n), 0);
  ioasid_backend_destroy(r.be);
}

// ---- VT-d virtual command device model -----------------------------------------------------

// The register layouts as a C VMM or guest sees them (VT-d 3.0 §10.4.43-45, 3.3 §10.4.43-46).
struct VtdRegs {
  uint32_t layout;
  uint64_t vccap, vcmd, vcrsp;
  unsigned field_shift;  // operand and result
  uint64_t sc_mask;      // status code bits, after >> 1
  uint64_t sc_no_pasid;  // also INVALID_PASID
};
constexpr VtdRegs kLegacyRegs{IOASID_VTD_LAYOUT_LEGACY, 0xE00, 0xE10, 0xE20, 8, 0x3, 2};
constexpr VtdRegs kRev33Regs{IOASID_VTD_LAYOUT_REV3_3, 0xE30, 0xE00, 0xE10, 16, 0x7F, 16};
constexpr uint64_t kCmdAlloc = 1, kCmdFree = 2;

ioasid_vtd_config vtd_config(uint32_t layout,
                             uint32_t completion = IOASID_VTD_COMPLETION_IMMEDIATE) {
  ioasid_vtd_config c;
  std::memset(&c, 0, sizeof(c));
  c.size = sizeof(c);
  c.layout = layout;
  c.completion = completion;
  return c;
}

class CapiVtdTest : public CapiTest, public ::testing::WithParamInterface<uint32_t> {
 protected:
  void SetUp() override {
    CapiTest::SetUp();
    ASSERT_EQ(ioasid_backend_local_create(space_, a_, &be_), 0);
  }
  void TearDown() override {
    ioasid_backend_destroy(be_);  // after every device over it
    CapiTest::TearDown();
  }
  const VtdRegs& r() const {
    return GetParam() == IOASID_VTD_LAYOUT_LEGACY ? kLegacyRegs : kRev33Regs;
  }

  // One command the way a Linux guest issues it: write VCMD, poll VCRSP until IP clears.
  uint64_t command(ioasid_vtd_device* d, uint64_t cmd, uint64_t operand = 0) const {
    ioasid_vtd_mmio_write(d, r().vcmd, 8, (operand << r().field_shift) | cmd);
    uint64_t rsp = 0;
    for (int i = 0; i < 10'000'000; ++i) {
      rsp = ioasid_vtd_mmio_read(d, r().vcrsp, 8);
      if ((rsp & 1) == 0) break;
      std::this_thread::yield();
    }
    return rsp;
  }
  uint64_t sc(uint64_t rsp) const { return (rsp >> 1) & r().sc_mask; }
  ioasid_t result(uint64_t rsp) const {
    return static_cast<ioasid_t>((rsp >> r().field_shift) & 0xFFFFF);
  }

  ioasid_backend* be_ = nullptr;
};

TEST_P(CapiVtdTest, AllocAndFreeThroughTheRegisters) {
  for (uint32_t completion : {IOASID_VTD_COMPLETION_IMMEDIATE, IOASID_VTD_COMPLETION_ASYNC}) {
    SCOPED_TRACE(completion);
    const ioasid_vtd_config c = vtd_config(r().layout, completion);
    ioasid_vtd_device* d = nullptr;
    ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
    ASSERT_NE(d, nullptr);

    // Capability registers as the guest reads them, and what the VMM advertises.
    EXPECT_EQ(ioasid_vtd_cap_bits(d), uint64_t{1} << 7);  // CAP.CM
    EXPECT_EQ(ioasid_vtd_ecap_bits(d),
              (uint64_t{1} << 40) | (uint64_t{1} << 43) | (uint64_t{1} << 44));
    EXPECT_EQ(ioasid_vtd_mmio_read(d, 0x08, 8), ioasid_vtd_cap_bits(d));
    EXPECT_EQ(ioasid_vtd_mmio_read(d, 0x10, 8), ioasid_vtd_ecap_bits(d));
    EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vccap, 8), 1u);  // VCCAP.PAS

    const uint64_t rsp = command(d, kCmdAlloc);
    EXPECT_EQ(rsp & 1, 0u);
    EXPECT_EQ(sc(rsp), 0u);
    const ioasid_t pasid = result(rsp);
    EXPECT_GE(pasid, 1u);
    void* p = &p;
    EXPECT_EQ(ioasid_find(space_, a_, pasid, nullptr, nullptr, &p), 0);  // in the VM's set
    EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vcmd, 8), kCmdAlloc);          // last command

    EXPECT_EQ(sc(command(d, kCmdFree, pasid)), 0u);
    EXPECT_EQ(ioasid_find(space_, a_, pasid, nullptr, nullptr, &p), -ENOENT);
    // Freeing it again: INVALID_PASID.
    EXPECT_EQ(sc(command(d, kCmdFree, pasid)), r().sc_no_pasid);
    ioasid_vtd_device_destroy(d);
  }
}

TEST_P(CapiVtdTest, SplitWriteRunsOnTheHighHalf) {
  const ioasid_vtd_config c = vtd_config(r().layout);
  ioasid_vtd_device* d = nullptr;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  ioasid_vtd_mmio_write(d, r().vcmd, 4, kCmdAlloc);
  EXPECT_EQ(stats_of(space_).live_ids, 0u);  // latched only
  ioasid_vtd_mmio_write(d, r().vcmd + 4, 4, 0);
  EXPECT_EQ(stats_of(space_).live_ids, 1u);
  const uint64_t rsp = ioasid_vtd_mmio_read(d, r().vcrsp, 8);
  EXPECT_EQ(sc(rsp), 0u);
  // The two 4-byte halves of VCRSP read the same value.
  EXPECT_EQ(
      ioasid_vtd_mmio_read(d, r().vcrsp, 4) | (ioasid_vtd_mmio_read(d, r().vcrsp + 4, 4) << 32),
      rsp);
  ioasid_vtd_device_destroy(d);
}

TEST_P(CapiVtdTest, OwnershipQuotaAndUndefinedCommands) {
  ioasid_vtd_config c = vtd_config(r().layout);
  c.log_fn = capture_log;
  c.log_opaque = &log_;
  ioasid_vtd_device* d = nullptr;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);

  // Another VM's PASID: INVALID_PASID, and it survives.
  const ioasid_t other = alloc(b_);
  EXPECT_EQ(sc(command(d, kCmdFree, other)), r().sc_no_pasid);
  void* p = nullptr;
  EXPECT_EQ(ioasid_find(space_, b_, other, nullptr, nullptr, &p), 0);

  // Quota reached: NO_PASID, nothing allocated.
  ASSERT_EQ(ioasid_set_quota(space_, a_, 1), 0);
  EXPECT_EQ(sc(command(d, kCmdAlloc)), 0u);
  const uint64_t rsp = command(d, kCmdAlloc);
  EXPECT_EQ(sc(rsp), r().sc_no_pasid);
  EXPECT_EQ(result(rsp), 0u);
  ioasid_set_info info;
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.count, 1u);

  // Unknown command code: UNDEFINED_CMD (1), reported through the log sink.
  EXPECT_EQ(sc(command(d, 0x42)), 1u);
  EXPECT_TRUE(logged("undefined command"));

  // Destroying the device frees nothing of the set.
  ioasid_vtd_device_destroy(d);
  ASSERT_EQ(ioasid_set_query(space_, a_, &info), 0);
  EXPECT_EQ(info.count, 1u);
}

TEST_P(CapiVtdTest, ConfigOverridesAndRange) {
  ioasid_vtd_config c = vtd_config(r().layout);
  c.cap = (uint64_t{1} << 7) | 0x1000;
  c.ecap = (uint64_t{1} << 43) | (uint64_t{1} << 44);
  c.pasid_min = 100;
  c.pasid_max = 100;
  ioasid_vtd_device* d = nullptr;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  EXPECT_EQ(ioasid_vtd_cap_bits(d), c.cap);
  EXPECT_EQ(ioasid_vtd_ecap_bits(d), c.ecap);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, 0x10, 8), c.ecap);
  uint64_t rsp = command(d, kCmdAlloc);
  EXPECT_EQ(sc(rsp), 0u);
  EXPECT_EQ(result(rsp), 100u);
  EXPECT_EQ(sc(command(d, kCmdAlloc)), r().sc_no_pasid);  // [100, 100] is used up
  ioasid_vtd_device_destroy(d);

  // VCCAP without PAS: the registers read, commands are ignored.
  c = vtd_config(r().layout);
  c.vccap = 0x2;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vccap, 8), 0x2u);
  ioasid_vtd_mmio_write(d, r().vcmd, 8, kCmdAlloc);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vcrsp, 8), 0u);
  EXPECT_EQ(stats_of(space_).live_ids, 1u);  // only the one above
  ioasid_vtd_device_destroy(d);
}

TEST_P(CapiVtdTest, IgnoredAccesses) {
  const ioasid_vtd_config c = vtd_config(r().layout);
  ioasid_vtd_device* d = nullptr;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  ioasid_vtd_mmio_write(d, r().vcmd, 2, kCmdAlloc);      // odd size
  ioasid_vtd_mmio_write(d, r().vcmd + 2, 4, kCmdAlloc);  // unaligned
  ioasid_vtd_mmio_write(d, r().vcrsp, 8, 0x1234);        // read-only
  ioasid_vtd_mmio_write(d, 0x800, 8, kCmdAlloc);         // no register there
  EXPECT_EQ(stats_of(space_).live_ids, 0u);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vcrsp, 8), 0u);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vcrsp, 1), 0u);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, 0x800, 8), 0u);
  ioasid_vtd_device_destroy(d);
}

TEST_P(CapiVtdTest, StatsCountEveryKindOfAccess) {
  ioasid_vtd_config c = vtd_config(r().layout);
  ioasid_vtd_device* d = nullptr;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  ioasid_vtd_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_vtd_stats(d, &st), 0);
  EXPECT_EQ(st.size, sizeof(st));
  EXPECT_EQ(st.commands, 0u);
  EXPECT_EQ(st.reads, 0u);

  const ioasid_t pasid = result(command(d, kCmdAlloc));  // 1 write, >= 1 read
  EXPECT_EQ(sc(command(d, kCmdFree, pasid)), 0u);
  EXPECT_EQ(sc(command(d, kCmdFree, pasid)), r().sc_no_pasid);
  EXPECT_EQ(sc(command(d, 0x42)), 1u);                                     // undefined command
  ioasid_vtd_mmio_write(d, r().vcmd, 8, (uint64_t{1} << 40) | kCmdAlloc);  // reserved bits
  EXPECT_EQ(sc(ioasid_vtd_mmio_read(d, r().vcrsp, 8)), 0u);
  ioasid_vtd_mmio_write(d, r().vcmd, 2, kCmdAlloc);  // odd size
  ioasid_vtd_mmio_write(d, r().vcrsp, 8, 0);         // read-only
  ioasid_vtd_mmio_write(d, 0x800, 8, 0);             // no register there
  (void)ioasid_vtd_mmio_read(d, r().vcmd + 1, 4);    // unaligned
  ioasid_vtd_mmio_write(d, r().vcmd + 4, 4, 0);      // high half without a low half
  ASSERT_EQ(ioasid_set_quota(space_, a_, 1), 0);
  EXPECT_EQ(sc(command(d, kCmdAlloc)), r().sc_no_pasid);  // quota (1 held)

  ASSERT_EQ(ioasid_vtd_stats(d, &st), 0);
  EXPECT_EQ(st.commands, 6u);
  EXPECT_EQ(st.allocs, 2u);
  EXPECT_EQ(st.alloc_no_pasid, 1u);
  EXPECT_EQ(st.frees, 1u);
  EXPECT_EQ(st.free_invalid_pasid, 1u);
  EXPECT_EQ(st.undefined_cmds, 1u);
  EXPECT_EQ(st.reserved_bits, 1u);
  EXPECT_EQ(st.bad_accesses, 2u);
  EXPECT_EQ(st.ro_writes, 1u);
  EXPECT_EQ(st.unknown_accesses, 1u);
  EXPECT_EQ(st.split_orphans, 1u);
  EXPECT_EQ(st.ignored_busy, 0u);
  EXPECT_EQ(st.ignored_disabled, 0u);
  EXPECT_EQ(st.backend_errors, 0u);
  EXPECT_EQ(st.backend_bad_answers, 0u);
  EXPECT_GE(st.reads, 6u);
  EXPECT_GE(st.writes, 6u);

  // Size rules: too small is refused and nothing is written; a longer struct gets zeroes past
  // the fields this library knows.
  ioasid_vtd_counters small;
  std::memset(&small, 0x5A, sizeof(small));
  small.size = sizeof(small) - 8;
  EXPECT_EQ(ioasid_vtd_stats(d, &small), -EINVAL);
  EXPECT_EQ(small.commands, 0x5A5A5A5A5A5A5A5Aull);
  struct Longer {
    ioasid_vtd_counters st;
    uint64_t future[2];
  } big;
  std::memset(&big, 0x5A, sizeof(big));
  big.st.size = sizeof(big);
  ASSERT_EQ(ioasid_vtd_stats(d, &big.st), 0);
  EXPECT_EQ(big.st.commands, 6u);
  EXPECT_EQ(big.future[0], 0u);
  EXPECT_EQ(big.future[1], 0u);
  EXPECT_EQ(ioasid_vtd_stats(d, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_vtd_stats(nullptr, &st), -EINVAL);
  ioasid_vtd_device_destroy(d);
}

TEST_P(CapiVtdTest, VccapBitsAreTheConfiguredOnes) {
  ioasid_vtd_config c = vtd_config(r().layout);
  ioasid_vtd_device* d = nullptr;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  EXPECT_EQ(ioasid_vtd_vccap_bits(d), 1u);  // default: VCCAP.PAS
  EXPECT_EQ(ioasid_vtd_vccap_bits(d), ioasid_vtd_mmio_read(d, r().vccap, 8));
  ioasid_vtd_device_destroy(d);
  c.vccap = 0x3;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  EXPECT_EQ(ioasid_vtd_vccap_bits(d), 0x3u);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vccap, 8), 0x3u);
  ioasid_vtd_device_destroy(d);
}

// An allocator that holds the worker inside the backend call until released: the command stays
// in progress (VCRSP.IP) for as long as the test wants.
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<bool> entered{false};
  ioasid_t next = 1;
};
int gated_alloc(void* pdata, ioasid_t min, ioasid_t, ioasid_t* out) {
  auto* g = static_cast<Gate*>(pdata);
  g->entered.store(true);
  while (!g->open.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  *out = g->next < min ? min : g->next;
  g->next = *out + 1;
  return 0;
}
void gated_free(void*, ioasid_t) {}

TEST_P(CapiVtdTest, WaitIdle) {
  // Immediate mode: never anything in progress.
  ioasid_vtd_config c = vtd_config(r().layout);
  ioasid_vtd_device* d = nullptr;
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  EXPECT_EQ(ioasid_vtd_wait_idle(d, 0), 0);
  const uint64_t first = command(d, kCmdAlloc);
  EXPECT_EQ(sc(first), 0u);
  EXPECT_EQ(ioasid_vtd_wait_idle(d, 0), 0);
  ioasid_vtd_device_destroy(d);
  ASSERT_EQ(ioasid_backend_free(be_, result(first)), 0);
  EXPECT_EQ(ioasid_vtd_wait_idle(nullptr, 1000), -EINVAL);

  // Asynchronous mode with the backend held: -ETIMEDOUT until the command completes.
  Gate gate;
  const ioasid_allocator_ops ops = {gated_alloc, gated_free, &gate};
  ASSERT_EQ(ioasid_allocator_register(space_, &ops), 0);  // the default one holds nothing
  c = vtd_config(r().layout, IOASID_VTD_COMPLETION_ASYNC);
  ASSERT_EQ(ioasid_vtd_device_create(be_, &c, &d), 0);
  ioasid_vtd_mmio_write(d, r().vcmd, 8, kCmdAlloc);
  EXPECT_EQ(ioasid_vtd_mmio_read(d, r().vcrsp, 8) & 1, 1u);    // IP
  EXPECT_EQ(ioasid_vtd_wait_idle(d, 20'000'000), -ETIMEDOUT);  // 20 ms
  gate.open.store(true);
  EXPECT_EQ(ioasid_vtd_wait_idle(d, UINT64_MAX), 0);  // clamped, not overflowed
  const uint64_t rsp = ioasid_vtd_mmio_read(d, r().vcrsp, 8);
  EXPECT_EQ(rsp & 1, 0u);
  EXPECT_EQ(sc(rsp), 0u);
  EXPECT_TRUE(gate.entered.load());
  EXPECT_EQ(result(rsp), 1u);
  ioasid_vtd_device_destroy(d);
  ASSERT_EQ(ioasid_backend_free(be_, 1), 0);
  ioasid_allocator_unregister(space_, &ops);
}

INSTANTIATE_TEST_SUITE_P(Layouts, CapiVtdTest,
                         ::testing::Values(uint32_t{IOASID_VTD_LAYOUT_LEGACY},
                                           uint32_t{IOASID_VTD_LAYOUT_REV3_3}),
                         [](const auto& p) {
                           return std::string(p.param == IOASID_VTD_LAYOUT_LEGACY ? "legacy"
                                                                                  : "rev3_3");
                         });

TEST_F(CapiTest, VtdCreateErrors) {
  ioasid_backend* be = nullptr;
  ASSERT_EQ(ioasid_backend_local_create(space_, a_, &be), 0);
  ioasid_vtd_device* d = nullptr;
  ioasid_vtd_config c = vtd_config(IOASID_VTD_LAYOUT_REV3_3);

  // NULL arguments.
  EXPECT_EQ(ioasid_vtd_device_create(nullptr, &c, &d), -EINVAL);
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_vtd_device_create(nullptr, nullptr, nullptr), -EINVAL);

  // Size rules.
  c.size = sizeof(c) - 1;
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, &d), -EINVAL);
  c.size = 0;
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, &d), -EINVAL);
  struct Longer {
    ioasid_vtd_config c;
    uint64_t future[2];
  } big;
  std::memset(&big, 0, sizeof(big));
  big.c.size = sizeof(big);
  big.future[0] = 1;
  EXPECT_EQ(ioasid_vtd_device_create(be, &big.c, &d), -E2BIG);
  EXPECT_EQ(d, nullptr);  // out untouched on failure
  big.future[0] = 0;
  ASSERT_EQ(ioasid_vtd_device_create(be, &big.c, &d), 0);  // zero tail accepted
  ioasid_vtd_device_destroy(d);
  d = nullptr;

  // Field validation.
  c = vtd_config(2);
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, &d), -EINVAL);
  c = vtd_config(IOASID_VTD_LAYOUT_LEGACY, 2);
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, &d), -EINVAL);
  c = vtd_config(IOASID_VTD_LAYOUT_LEGACY);
  c.reserved0 = 1;
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, &d), -EINVAL);
  c = vtd_config(IOASID_VTD_LAYOUT_LEGACY);
  c.pasid_max = 0x100000;
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, &d), -EINVAL);
  c.pasid_min = 10;
  c.pasid_max = 9;
  EXPECT_EQ(ioasid_vtd_device_create(be, &c, &d), -EINVAL);
  EXPECT_EQ(d, nullptr);

  // NULL config: every default (VT-d 3.3 layout: VCMD at 0xE00, VCRSP at 0xE10).
  ASSERT_EQ(ioasid_vtd_device_create(be, nullptr, &d), 0);
  ioasid_vtd_mmio_write(d, 0xE00, 8, kCmdAlloc);
  const uint64_t rsp = ioasid_vtd_mmio_read(d, 0xE10, 8);
  EXPECT_EQ(rsp & 0xFF, 0u);
  EXPECT_EQ(rsp >> 16, 1u);
  ioasid_vtd_device_destroy(d);
  ioasid_backend_destroy(be);
}

TEST(CapiVtd, NullDeviceIsHarmless) {
  EXPECT_EQ(ioasid_vtd_mmio_read(nullptr, 0xE10, 8), 0u);
  ioasid_vtd_mmio_write(nullptr, 0xE00, 8, kCmdAlloc);
  EXPECT_EQ(ioasid_vtd_cap_bits(nullptr), 0u);
  EXPECT_EQ(ioasid_vtd_ecap_bits(nullptr), 0u);
  EXPECT_EQ(ioasid_vtd_vccap_bits(nullptr), 0u);
  ioasid_vtd_device_destroy(nullptr);
}

// ---- concurrency ----------------------------------------------------------------------------

int counter_alloc(void* pdata, ioasid_t min, ioasid_t max, ioasid_t* out) {
  // Runs under the space's writer lock: no locking of its own.
  auto* next = static_cast<ioasid_t*>(pdata);
  if (*next < min || *next > max) *next = min;
  *out = (*next)++;
  return 0;
}
void counter_free(void*, ioasid_t) {}
void count_events(void* opaque, const ioasid_event*) {
  static_cast<std::atomic<int>*>(opaque)->fetch_add(1, std::memory_order_relaxed);
}

// The wrapper's own state (allocator copies, notifier trampolines) under concurrent use; run
// under ASan/TSan this checks that no copy or trampoline is freed while the Space can use it.
TEST_F(CapiTest, ConcurrentRegistrationAndAllocation) {
  constexpr int kRounds = 2000;
  std::atomic<bool> stop{false};
  std::atomic<int> events{0};
  ioasid_t next = 1;
  std::thread allocator_thread([&] {
    const ioasid_allocator_ops ops = {counter_alloc, counter_free, &next};
    for (int i = 0; i < kRounds; ++i) {
      const int rc = ioasid_allocator_register(space_, &ops);
      EXPECT_TRUE(rc == 0 || rc == -EAGAIN) << rc;
      ioasid_allocator_unregister(space_, &ops);
    }
  });
  std::thread notifier_thread([&] {
    for (int i = 0; i < kRounds; ++i) {
      uint64_t n = 0;
      ASSERT_EQ(ioasid_notifier_register_owner(space_, 100, IOASID_EVENT_MASK_ALL, count_events,
                                               &events, &n),
                0);
      ASSERT_EQ(ioasid_notifier_unregister(space_, n), 0);
    }
  });
  std::thread id_thread([&] {
    while (!stop.load()) {
      ioasid_t id = 0;
      const int rc = ioasid_alloc(space_, a_, 1, 0xFFFFF, nullptr, &id);
      if (rc == 0) {
        void* p = nullptr;
        EXPECT_EQ(ioasid_find(space_, a_, id, nullptr, nullptr, &p), 0);
        EXPECT_EQ(ioasid_free(space_, a_, id), 0);
      } else {
        EXPECT_TRUE(rc == -EEXIST || rc == -EDQUOT) << rc;  // a counter answer still live
      }
    }
  });
  allocator_thread.join();
  notifier_thread.join();
  stop.store(true);
  id_thread.join();
  const ioasid_stats st = stats_of(space_);
  EXPECT_EQ(st.allocator_groups, 0u);
  EXPECT_EQ(st.live_ids, 0u);
}

}  // namespace
