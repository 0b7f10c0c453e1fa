// SPDX-License-Identifier: Apache-2.0
// space_allocator_test.cc: the custom allocator rules of Space::register_allocator /
// unregister_allocator (DOMAIN.md §1.4 and §8 items 6-9), including where this implementation
// deliberately differs from Linux: every answer is checked against [min, max], the space and the
// live IDs; a group member that leaves is never called again; orphans are counted.
#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <vector>

#include "ioasid/space.hpp"

namespace ioasid {
namespace {

// A model "host": hands out IDs from its own std::set, or misbehaves on request.
struct FakeHost {
  std::set<Id> live;
  Id next_fixed = kInvalidId;  // when set: answer this, whatever the range
  int error = 0;               // when set: fail with this
  std::vector<Id> freed;
  int calls = 0;
};

// Each Unit stands for one vIOMMU: its pdata tells which one the space called.
struct Unit {
  FakeHost* host;
  int name;
  std::vector<int>* trace;
};

int unit_alloc(void* pdata, Id min, Id max, Id* out) {
  auto* u = static_cast<Unit*>(pdata);
  u->trace->push_back(u->name);
  FakeHost& h = *u->host;
  ++h.calls;
  if (h.error != 0) return h.error;
  if (h.next_fixed != kInvalidId) {
    *out = h.next_fixed;
    h.live.insert(*out);
    return 0;
  }
  for (std::uint64_t id = min; id <= max; ++id) {
    if (h.live.insert(static_cast<Id>(id)).second) {
      *out = static_cast<Id>(id);
      return 0;
    }
  }
  return -ENOSPC;
}

void unit_free(void* pdata, Id id) {
  auto* u = static_cast<Unit*>(pdata);
  u->trace->push_back(-u->name);
  u->host->live.erase(id);
  u->host->freed.push_back(id);
}

// A second allocator type: different callbacks, so a different group.
int other_alloc(void* pdata, Id min, Id max, Id* out) { return unit_alloc(pdata, min, max, out); }
void other_free(void* pdata, Id id) { unit_free(pdata, id); }

class SpaceAllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    space_ = std::move(*Space::create({}));
    set_ = *space_->create_set(1, 1000);
  }
  AllocatorOps ops(Unit* u) { return AllocatorOps{&unit_alloc, &unit_free, u}; }
  AllocatorOps other_ops(Unit* u) { return AllocatorOps{&other_alloc, &other_free, u}; }

  std::unique_ptr<Space> space_;
  SetId set_;
  FakeHost host_;
  std::vector<int> trace_;
};

TEST_F(SpaceAllocatorTest, CustomAllocatorTakesPrecedence) {
  Unit u{&host_, 1, &trace_};
  host_.live = {1, 2, 3};  // the host already gave these to other guests
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(space_->register_allocator(&o));
  EXPECT_TRUE(space_->stats().custom_allocator_active);
  EXPECT_EQ(*space_->alloc(set_, 1, 100, nullptr), 4u);
  ASSERT_TRUE(space_->free(set_, 4));
  EXPECT_EQ(host_.freed, std::vector<Id>{4});
  EXPECT_EQ(trace_, (std::vector<int>{1, -1}));
}

TEST_F(SpaceAllocatorTest, FirstRegistrationRefusedWhileDefaultHoldsIds) {
  Id id = *space_->alloc(set_, 1, 100, nullptr);
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  EXPECT_EQ(space_->register_allocator(&o).error(), Errc::try_again);
  EXPECT_EQ(space_->stats().allocator_groups, 0u);  // nothing retained
  space_->unregister_allocator(&o);                 // unknown: harmless
  ASSERT_TRUE(space_->free(set_, id));
  EXPECT_TRUE(space_->register_allocator(&o));
}

TEST_F(SpaceAllocatorTest, SameOpsTwiceIsExists) {
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(space_->register_allocator(&o));
  EXPECT_EQ(space_->register_allocator(&o).error(), Errc::exists);
  EXPECT_EQ(space_->register_allocator(nullptr).error(), Errc::invalid_argument);
  AllocatorOps broken{nullptr, &unit_free, &u};
  EXPECT_EQ(space_->register_allocator(&broken).error(), Errc::invalid_argument);
}

TEST_F(SpaceAllocatorTest, SameCallbacksShareOneGroupAndSurviveHotUnplug) {
  Unit u1{&host_, 1, &trace_}, u2{&host_, 2, &trace_}, u3{&host_, 3, &trace_};
  AllocatorOps o1 = ops(&u1), o2 = ops(&u2), o3 = ops(&u3);
  ASSERT_TRUE(space_->register_allocator(&o1));
  ASSERT_TRUE(space_->register_allocator(&o2));
  ASSERT_TRUE(space_->register_allocator(&o3));
  EXPECT_EQ(space_->stats().allocator_groups, 1u);
  Id a = *space_->alloc(set_, 1, 100, nullptr);
  EXPECT_EQ(trace_.back(), 1);
  // Hot-unplug the first vIOMMU: Linux kept calling it; here the group moves to the next member.
  space_->unregister_allocator(&o1);
  Id b = *space_->alloc(set_, 1, 100, nullptr);
  EXPECT_EQ(trace_.back(), 2);
  EXPECT_EQ(*space_->find(set_, a), nullptr);  // IDs of the group stay valid
  ASSERT_TRUE(space_->free(set_, a));
  EXPECT_EQ(trace_.back(), -2);
  space_->unregister_allocator(&o2);
  ASSERT_TRUE(space_->free(set_, b));
  EXPECT_EQ(trace_.back(), -3);
  EXPECT_EQ(space_->stats().orphaned_ids, 0u);
  EXPECT_TRUE(space_->check_invariants());
}

TEST_F(SpaceAllocatorTest, OtherCallbacksStandByAndTakeOverInOrder) {
  // Different transports (say VT-d and virtio-iommu) of one guest reach the same host.
  Unit u1{&host_, 1, &trace_}, u2{&host_, 2, &trace_}, u3{&host_, 3, &trace_};
  AllocatorOps o1 = ops(&u1);
  AllocatorOps o2 = other_ops(&u2);
  // A third kind: same alloc as o2 but another free function is a different group.
  AllocatorOps o3{&other_alloc, &unit_free, &u3};
  ASSERT_TRUE(space_->register_allocator(&o1));
  ASSERT_TRUE(space_->register_allocator(&o2));
  ASSERT_TRUE(space_->register_allocator(&o3));
  EXPECT_EQ(space_->stats().allocator_groups, 3u);
  ASSERT_TRUE(space_->alloc(set_, 1, 100, nullptr));
  EXPECT_EQ(trace_.back(), 1);        // registration does not change the active allocator
  space_->unregister_allocator(&o1);  // active group gone: its ID is orphaned
  EXPECT_EQ(space_->stats().orphaned_ids, 1u);
  ASSERT_TRUE(space_->alloc(set_, 1, 100, nullptr));
  EXPECT_EQ(trace_.back(), 2);        // next in registration order
  space_->unregister_allocator(&o3);  // a standby leaving changes nothing
  ASSERT_TRUE(space_->alloc(set_, 1, 100, nullptr));
  EXPECT_EQ(trace_.back(), 2);
  EXPECT_TRUE(space_->check_invariants());
}

TEST_F(SpaceAllocatorTest, OrphansStayValidAndFreeWithoutCallingAnyone) {
  Unit u1{&host_, 1, &trace_};
  AllocatorOps o1 = ops(&u1);
  ASSERT_TRUE(space_->register_allocator(&o1));
  Id a = *space_->alloc(set_, 1, 100, reinterpret_cast<void*>(7));
  space_->unregister_allocator(&o1);
  SpaceStats st = space_->stats();
  EXPECT_EQ(st.orphaned_ids, 1u);
  EXPECT_EQ(st.orphaned_total, 1u);
  EXPECT_FALSE(st.custom_allocator_active);
  EXPECT_EQ(*space_->find(set_, a), reinterpret_cast<void*>(7));
  // The default allocator is back and allocates around the orphan.
  Id b = *space_->alloc(set_, a, a + 1, nullptr);
  EXPECT_EQ(b, a + 1);
  const auto calls = trace_.size();
  ASSERT_TRUE(space_->free(set_, a));
  EXPECT_EQ(trace_.size(), calls);  // nobody to hand it back to
  EXPECT_EQ(space_->stats().orphaned_ids, 0u);
  EXPECT_EQ(space_->stats().orphaned_total, 1u);
  EXPECT_TRUE(space_->check_invariants());
}

TEST_F(SpaceAllocatorTest, AnswerOutsideTheRangeIsHandedBack) {
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(space_->register_allocator(&o));
  host_.next_fixed = 0x500;  // "VCMD always allocates with the full 20-bit range"
  EXPECT_EQ(space_->alloc(set_, 1, 0x100, nullptr).error(), Errc::out_of_range);
  EXPECT_EQ(host_.freed, std::vector<Id>{0x500});
  EXPECT_TRUE(host_.live.empty());
  EXPECT_EQ(space_->stats().allocator_rejects, 1u);
  EXPECT_EQ(space_->stats().live_ids, 0u);
  EXPECT_EQ(space_->set_info(set_)->count, 0u);
  host_.next_fixed = 0x100;  // the inclusive edge is fine
  EXPECT_EQ(*space_->alloc(set_, 1, 0x100, nullptr), 0x100u);
}

TEST_F(SpaceAllocatorTest, AnswerOutsideTheSpaceIsHandedBack) {
  auto small = std::move(*Space::create({.width_bits = 8}));
  SetId s = *small->create_set(1, 10);
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(small->register_allocator(&o));
  host_.next_fixed = 300;
  EXPECT_EQ(small->alloc(s, 1, 255, nullptr).error(), Errc::out_of_range);
  EXPECT_EQ(host_.freed, std::vector<Id>{300});
}

TEST_F(SpaceAllocatorTest, DuplicateOrReservedAnswerIsHandedBack) {
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(space_->register_allocator(&o));
  Id a = *space_->alloc(set_, 1, 100, reinterpret_cast<void*>(1));
  host_.next_fixed = a;
  EXPECT_EQ(space_->alloc(set_, 1, 100, nullptr).error(), Errc::exists);
  EXPECT_EQ(*space_->find(set_, a), reinterpret_cast<void*>(1));  // the holder is untouched
  host_.next_fixed = 0;                                           // RID_PASID
  EXPECT_EQ(space_->alloc(set_, 0, 100, nullptr).error(), Errc::exists);
  EXPECT_EQ(space_->stats().allocator_rejects, 2u);
  EXPECT_EQ(space_->stats().live_ids, 1u);
}

TEST_F(SpaceAllocatorTest, AllocatorErrorsMapToErrc) {
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(space_->register_allocator(&o));
  host_.error = -ENOSPC;
  EXPECT_EQ(space_->alloc(set_, 1, 100, nullptr).error(), Errc::exhausted);
  host_.error = -ETIMEDOUT;
  EXPECT_EQ(space_->alloc(set_, 1, 100, nullptr).error(), Errc::timed_out);
  host_.error = -ENODEV;
  EXPECT_EQ(space_->alloc(set_, 1, 100, nullptr).error(), Errc::io_error);
  host_.error = 5;  // not a negative errno
  EXPECT_EQ(space_->alloc(set_, 1, 100, nullptr).error(), Errc::io_error);
  EXPECT_EQ(space_->stats().live_ids, 0u);
}

TEST_F(SpaceAllocatorTest, QuotaIsCheckedBeforeAskingTheAllocator) {
  auto s = *space_->create_set(2, 1);
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(space_->register_allocator(&o));
  ASSERT_TRUE(space_->alloc(s, 1, 100, nullptr));
  EXPECT_EQ(space_->alloc(s, 1, 100, nullptr).error(), Errc::quota_exceeded);
  EXPECT_EQ(host_.calls, 1);
}

TEST_F(SpaceAllocatorTest, RegisterAgainAfterTheDefaultCameBack) {
  Unit u{&host_, 1, &trace_};
  AllocatorOps o = ops(&u);
  ASSERT_TRUE(space_->register_allocator(&o));
  space_->unregister_allocator(&o);
  Id id = *space_->alloc(set_, 1, 100, nullptr);  // default allocator
  EXPECT_EQ(space_->register_allocator(&o).error(), Errc::try_again);
  ASSERT_TRUE(space_->free(set_, id));
  EXPECT_TRUE(space_->register_allocator(&o));
}

TEST_F(SpaceAllocatorTest, CallbacksMustNotReenter) {
  struct Reenter {
    Space* space;
    SetId set;
    Errc seen{};
  } re{space_.get(), set_};
  AllocatorOps o{[](void* pdata, Id, Id, Id* out) {
                   auto* r = static_cast<Reenter*>(pdata);
                   r->seen = r->space->alloc(r->set, 1, 10, nullptr).error();
                   *out = 50;
                   return 0;
                 },
                 [](void*, Id) {}, &re};
  ASSERT_TRUE(space_->register_allocator(&o));
  EXPECT_EQ(*space_->alloc(set_, 1, 100, nullptr), 50u);
  EXPECT_EQ(re.seen, Errc::would_deadlock);
}

}  // namespace
}  // namespace ioasid
