// SPDX-License-Identifier: Apache-2.0
// space_test.cc: one test per rule of the IOASID space (include/ioasid/space.hpp): creation,
// allocation policies and ranges, find/set_data, references and FREE_PENDING, sets and quotas,
// SPIDs, notifiers, logging, statistics and trim. Custom allocators: space_allocator_test.cc.
#include "ioasid/space.hpp"

#include "core/internal/space_impl.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ioasid {
namespace {

using ::testing::ElementsAre;

std::unique_ptr<Space> make(SpaceConfig config = {}) {
  auto space = Space::create(config);
  EXPECT_TRUE(space.has_value());
  return std::move(*space);
}

void* tag(std::uintptr_t v) { return reinterpret_cast<void*>(v); }

// ---- creation ---------------------------------------------------------------------------------

TEST(SpaceCreate, RejectsBadWidth) {
  EXPECT_EQ(Space::create({.width_bits = 0}).error(), Errc::invalid_argument);
  EXPECT_EQ(Space::create({.width_bits = 33}).error(), Errc::invalid_argument);
  EXPECT_TRUE(Space::create({.width_bits = 1}).has_value());
  EXPECT_TRUE(Space::create({.width_bits = 32}).has_value());
}

TEST(SpaceCreate, RejectsBadReservedRanges) {
  EXPECT_EQ(Space::create({.width_bits = 8, .reserved = {{5, 4}}}).error(), Errc::invalid_argument);
  EXPECT_EQ(Space::create({.width_bits = 8, .reserved = {{0, 256}}}).error(),
            Errc::invalid_argument);
}

TEST(SpaceCreate, RejectsCapacityAboveAllocatableIds) {
  // 8 bits: 256 IDs, one reserved: 255 allocatable.
  EXPECT_TRUE(Space::create({.width_bits = 8, .capacity = 255}).has_value());
  EXPECT_EQ(Space::create({.width_bits = 8, .capacity = 256}).error(), Errc::invalid_argument);
}

TEST(SpaceCreate, DefaultsReservePasidZeroAndWidth20) {
  auto s = make();
  EXPECT_EQ(s->width_bits(), 20u);
  EXPECT_EQ(s->max_id(), 0xFFFFFu);
  SpaceStats st = s->stats();
  EXPECT_EQ(st.reserved_ids, 1u);
  EXPECT_EQ(st.capacity, 0xFFFFFu);
  SetId vm = *s->create_set(1, 10);
  EXPECT_EQ(*s->alloc(vm, 0, 10, nullptr), 1u);  // 0 is RID_PASID
}

TEST(SpaceCreate, EmptyThirtyTwoBitSpaceIsSmall) {
  auto s = make({.width_bits = 32});
  EXPECT_LT(s->stats().table_bytes, 1u << 20);
  // 0xFFFFFFFF is kInvalidId and reserved with 32 bits.
  EXPECT_EQ(s->stats().reserved_ids, 2u);
  SetId vm = *s->create_set(1, 4);
  EXPECT_EQ(*s->alloc(vm, 0xFFFFFFFE, 0xFFFFFFFF, nullptr), 0xFFFFFFFEu);
  EXPECT_EQ(s->alloc(vm, 0xFFFFFFFE, 0xFFFFFFFF, nullptr).error(), Errc::exhausted);
  EXPECT_TRUE(s->check_invariants());
}

TEST(SpaceCreate, OverlappingReservedRangesCountOnce) {
  auto s = make({.width_bits = 8, .reserved = {{0, 9}, {5, 14}}});
  EXPECT_EQ(s->stats().reserved_ids, 15u);
  SetId vm = *s->create_set(1, 1);
  EXPECT_EQ(*s->alloc(vm, 0, 255, nullptr), 15u);
}

// ---- allocation -------------------------------------------------------------------------------

TEST(SpaceAlloc, LowestFreeInInclusiveRange) {
  auto s = make();
  SetId vm = *s->create_set(7, 100);
  EXPECT_EQ(*s->alloc(vm, 10, 12, nullptr), 10u);
  EXPECT_EQ(*s->alloc(vm, 10, 12, nullptr), 11u);
  EXPECT_EQ(*s->alloc(vm, 10, 12, nullptr), 12u);  // max is inclusive
  EXPECT_EQ(s->alloc(vm, 10, 12, nullptr).error(), Errc::exhausted);
  ASSERT_TRUE(s->free(vm, 11));
  EXPECT_EQ(*s->alloc(vm, 10, 12, nullptr), 11u);  // lowest free again
  EXPECT_EQ(*s->alloc(vm, 5, 5, nullptr), 5u);     // single-ID range
  EXPECT_EQ(s->stats().exhausted_refusals, 1u);
}

TEST(SpaceAlloc, RangeErrors) {
  auto s = make();
  SetId vm = *s->create_set(7, 100);
  EXPECT_EQ(s->alloc(vm, 5, 4, nullptr).error(), Errc::invalid_argument);
  EXPECT_EQ(s->alloc(vm, 1, 0x100000, nullptr).error(), Errc::out_of_range);
  EXPECT_EQ(s->alloc(vm, 0, 0, nullptr).error(), Errc::exhausted);  // only the reserved ID
  EXPECT_EQ(s->stats().live_ids, 0u);
}

TEST(SpaceAlloc, SetErrors) {
  auto s = make();
  EXPECT_EQ(s->alloc(SetId(), 1, 10, nullptr).error(), Errc::invalid_argument);
  EXPECT_EQ(s->alloc(SetId::any(), 1, 10, nullptr).error(), Errc::invalid_argument);
  EXPECT_EQ(s->alloc(SetId::from_raw(12345), 1, 10, nullptr).error(), Errc::not_found);
}

TEST(SpaceAlloc, CrossesLeafAndMidBoundaries) {
  auto s = make({.width_bits = 24});
  SetId vm = *s->create_set(1, 10);
  EXPECT_EQ(*s->alloc(vm, 511, 513, nullptr), 511u);
  EXPECT_EQ(*s->alloc(vm, 511, 513, nullptr), 512u);
  const Id mid_edge = (1u << 21) - 1;
  EXPECT_EQ(*s->alloc(vm, mid_edge, mid_edge + 1, nullptr), mid_edge);
  EXPECT_EQ(*s->alloc(vm, mid_edge, mid_edge + 1, nullptr), mid_edge + 1);
  EXPECT_TRUE(s->check_invariants());
}

TEST(SpaceAlloc, FillsAWholeSmallSpaceThenExhausts) {
  auto s = make({.width_bits = 12});
  SetId vm = *s->create_set(1, 4095);
  for (Id want = 1; want < 4096; ++want) ASSERT_EQ(*s->alloc(vm, 1, 4095, nullptr), want);
  EXPECT_EQ(s->alloc(vm, 1, 4095, nullptr).error(), Errc::quota_exceeded);
  ASSERT_TRUE(s->set_quota(vm, 4095));
  ASSERT_TRUE(s->free(vm, 1000));
  EXPECT_EQ(*s->alloc(vm, 1, 4095, nullptr), 1000u);
  EXPECT_TRUE(s->check_invariants());
}

TEST(SpaceAlloc, CyclicPolicyDoesNotReuseAtOnce) {
  auto s = make({.width_bits = 8, .policy = AllocPolicy::cyclic});
  SetId vm = *s->create_set(1, 255);
  EXPECT_EQ(*s->alloc(vm, 1, 10, nullptr), 1u);
  EXPECT_EQ(*s->alloc(vm, 1, 10, nullptr), 2u);
  ASSERT_TRUE(s->free(vm, 1));
  EXPECT_EQ(*s->alloc(vm, 1, 10, nullptr), 3u);  // lowest_free would give 1
  for (Id want = 4; want <= 10; ++want) ASSERT_EQ(*s->alloc(vm, 1, 10, nullptr), want);
  EXPECT_EQ(*s->alloc(vm, 1, 10, nullptr), 1u);  // wrapped
  EXPECT_EQ(s->alloc(vm, 1, 10, nullptr).error(), Errc::exhausted);
}

TEST(SpaceAlloc, CyclicCursorOutsideRangeStartsAtMin) {
  auto s = make({.width_bits = 8, .policy = AllocPolicy::cyclic});
  SetId vm = *s->create_set(1, 255);
  EXPECT_EQ(*s->alloc(vm, 100, 200, nullptr), 100u);
  EXPECT_EQ(*s->alloc(vm, 1, 10, nullptr), 1u);
  EXPECT_EQ(*s->alloc(vm, 1, 10, nullptr), 2u);
}

// ---- find and private data --------------------------------------------------------------------

TEST(SpaceFind, OwnerAnyOtherMissing) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  SetId b = *s->create_set(2, 10);
  Id id = *s->alloc(a, 1, 100, tag(0xA1));
  EXPECT_EQ(*s->find(a, id), tag(0xA1));
  EXPECT_EQ(*s->find(SetId::any(), id), tag(0xA1));
  EXPECT_EQ(s->find(b, id).error(), Errc::not_owner);
  EXPECT_EQ(s->find(a, id + 1).error(), Errc::not_found);
  EXPECT_EQ(s->find(a, 0).error(), Errc::not_found);  // reserved
  EXPECT_EQ(s->find(a, 0x100000).error(), Errc::out_of_range);
  EXPECT_EQ(s->find(a, 0x80000).error(), Errc::not_found);  // leaf never made
}

TEST(SpaceFind, ValidatorSeesPrivateAndCanRefuse) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  Id id = *s->alloc(a, 1, 100, tag(0x55));
  struct Seen {
    void* priv = nullptr;
    bool answer = true;
  } seen;
  auto validator = [](void* opaque, void* priv) {
    auto* sn = static_cast<Seen*>(opaque);
    sn->priv = priv;
    return sn->answer;
  };
  EXPECT_EQ(*s->find(a, id, validator, &seen), tag(0x55));
  EXPECT_EQ(seen.priv, tag(0x55));
  seen.answer = false;
  EXPECT_EQ(s->find(a, id, validator, &seen).error(), Errc::not_found);
}

TEST(SpaceFind, SetDataReplacesPrivate) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  Id id = *s->alloc(a, 1, 100, tag(1));
  ASSERT_TRUE(s->set_data(id, tag(2)));
  EXPECT_EQ(*s->find(a, id), tag(2));
  EXPECT_EQ(s->set_data(id + 1, tag(3)).error(), Errc::not_found);
  EXPECT_EQ(s->set_data(0x100000, tag(3)).error(), Errc::out_of_range);
}

// ---- references and FREE_PENDING --------------------------------------------------------------

TEST(SpaceRefs, FreeWithOtherReferencesIsPendingUntilLastPut) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  Id id = *s->alloc(a, 1, 100, tag(9));
  ASSERT_TRUE(s->get(a, id));
  ASSERT_TRUE(s->get(SetId::any(), id));
  ASSERT_TRUE(s->free(a, id));
  EXPECT_EQ(s->query(a, id)->state, IdState::free_pending);
  EXPECT_EQ(s->query(a, id)->refs, 2u);
  EXPECT_EQ(s->find(a, id).error(), Errc::not_found);  // no longer usable
  EXPECT_EQ(s->get(a, id).error(), Errc::busy);        // no new references
  EXPECT_EQ(s->free(a, id).error(), Errc::busy);       // second free changes nothing
  EXPECT_EQ(s->stats().free_pending_ids, 1u);
  // The ID is not reusable while pending.
  EXPECT_NE(*s->alloc(a, 1, 100, nullptr), id);
  EXPECT_FALSE(*s->put(a, id));
  EXPECT_TRUE(*s->put(a, id));
  EXPECT_EQ(s->query(a, id).error(), Errc::not_found);
  EXPECT_EQ(s->stats().free_pending_ids, 0u);
  EXPECT_EQ(*s->alloc(a, 1, 100, nullptr), id);  // reusable now
  EXPECT_TRUE(s->check_invariants());
}

TEST(SpaceRefs, NonOwnerCannotFreeGetOrPut) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  SetId b = *s->create_set(2, 10);
  Id id = *s->alloc(a, 1, 100, nullptr);
  EXPECT_EQ(s->free(b, id).error(), Errc::not_owner);
  EXPECT_EQ(s->get(b, id).error(), Errc::not_owner);
  EXPECT_EQ(s->put(b, id).error(), Errc::not_owner);
  EXPECT_EQ(s->free(SetId::any(), id).error(), Errc::invalid_argument);
  EXPECT_EQ(s->query(a, id)->refs, 1u);
  EXPECT_EQ(s->query(a, id)->state, IdState::active);
}

TEST(SpaceRefs, PutOfTheLastReferenceReleases) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  Id id = *s->alloc(a, 1, 100, nullptr);
  EXPECT_TRUE(*s->put(a, id));
  EXPECT_EQ(s->find(a, id).error(), Errc::not_found);
  EXPECT_EQ(s->put(a, id).error(), Errc::not_found);
  EXPECT_EQ(s->set_info(a)->count, 0u);
}

// ---- sets and quotas --------------------------------------------------------------------------

TEST(SpaceSets, TokenIsUnique) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  EXPECT_EQ(s->create_set(1, 10).error(), Errc::exists);
  EXPECT_EQ(*s->find_set(1), a);
  EXPECT_EQ(s->find_set(2).error(), Errc::not_found);
  EXPECT_EQ(s->create_set(3, 0).error(), Errc::invalid_argument);
}

TEST(SpaceSets, QuotasReserveCapacity) {
  auto s = make({.width_bits = 8, .capacity = 100});
  SetId a = *s->create_set(1, 60);
  EXPECT_EQ(s->create_set(2, 41).error(), Errc::exhausted);
  SetId b = *s->create_set(2, 40);
  EXPECT_EQ(s->stats().quota_reserved, 100u);
  EXPECT_EQ(s->set_quota(a, 61).error(), Errc::exhausted);
  ASSERT_TRUE(s->set_quota(b, 10));
  ASSERT_TRUE(s->set_quota(a, 90));
  EXPECT_EQ(s->stats().quota_reserved, 100u);
  EXPECT_EQ(s->set_quota(a, 0xFFFFFFFFu).error(), Errc::exhausted);  // no overflow
}

TEST(SpaceSets, QuotaNeverBelowCount) {
  auto s = make();
  SetId a = *s->create_set(1, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->alloc(a, 1, 100, nullptr));
  EXPECT_EQ(s->alloc(a, 1, 100, nullptr).error(), Errc::quota_exceeded);
  EXPECT_EQ(s->set_info(a)->quota_refusals, 1u);
  EXPECT_EQ(s->stats().quota_refusals, 1u);
  EXPECT_EQ(s->set_quota(a, 2).error(), Errc::invalid_argument);
  EXPECT_EQ(s->set_quota(a, 0).error(), Errc::invalid_argument);
  ASSERT_TRUE(s->set_quota(a, 3));
  EXPECT_EQ(s->set_quota(SetId::from_raw(999), 3).error(), Errc::not_found);
}

TEST(SpaceSets, DestroyFreesEveryMemberAndTheReservation) {
  auto s = make({.width_bits = 8});
  SetId a = *s->create_set(1, 50);
  SetId b = *s->create_set(2, 50);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(s->alloc(a, 1, 255, nullptr));
  Id other = *s->alloc(b, 1, 255, nullptr);
  EXPECT_TRUE(*s->destroy_set(a));
  EXPECT_EQ(s->set_info(a).error(), Errc::not_found);
  EXPECT_EQ(s->stats().live_ids, 1u);
  EXPECT_EQ(s->stats().quota_reserved, 50u);
  EXPECT_EQ(*s->find(b, other), nullptr);
  EXPECT_EQ(s->destroy_set(a).error(), Errc::not_found);
  // The token is free again, and the IDs too.
  SetId a2 = *s->create_set(1, 50);
  EXPECT_NE(a2, a);
  EXPECT_EQ(*s->alloc(a2, 1, 255, nullptr), 1u);
  EXPECT_TRUE(s->check_invariants());
}

// Teardown visits only the leaves that hold the set's IDs (512 entries each), whatever the width:
// two IDs at opposite ends of a 32-bit space cost two leaves, not 2^32 entries.
TEST(SpaceSets, DestroyCostsTheSetsOwnLeavesNotTheRange) {
  auto s = Space::create({.width_bits = 32}).value();
  const SetId a = s->create_set(1, 16).value();
  const SetId b = s->create_set(2, 1000).value();
  ASSERT_EQ(s->alloc(a, 1, 1, nullptr).value(), 1u);
  ASSERT_EQ(s->alloc(a, 0xFFFFFFF0u, 0xFFFFFFF0u, nullptr).value(), 0xFFFFFFF0u);
  for (Id i = 0; i < 1000; ++i) ASSERT_TRUE(s->alloc(b, 1u << 20, 0xFFFFFFFEu, nullptr));
  const internal::SpaceImpl* impl = internal::impl(s.get());
  const std::uint64_t before = impl->member_entries_scanned_;
  ASSERT_TRUE(s->destroy_set(a).value());
  const std::uint64_t scanned = impl->member_entries_scanned_ - before;
  EXPECT_GE(scanned, 2u);
  EXPECT_LE(scanned, 2u * 512);  // two leaves at most; set b's 1000 IDs are not looked at
  EXPECT_EQ(s->set_info(b).value().count, 1000u);
  EXPECT_FALSE(s->query(SetId::any(), 1));
  EXPECT_FALSE(s->query(SetId::any(), 0xFFFFFFF0u));
  EXPECT_TRUE(s->check_invariants().has_value());
}

TEST(SpaceSets, DestroyWaitsForPendingMembers) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  Id held = *s->alloc(a, 1, 100, nullptr);
  Id plain = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->get(a, held));  // e.g. a device still bound
  EXPECT_FALSE(*s->destroy_set(a));
  SetInfo info = *s->set_info(a);
  EXPECT_EQ(info.state, SetState::dying);
  EXPECT_EQ(info.count, 1u);
  EXPECT_EQ(info.quota, 1u);  // the reservation shrank to what is still held
  EXPECT_EQ(s->query(a, plain).error(), Errc::not_found);
  EXPECT_EQ(s->query(a, held)->state, IdState::free_pending);
  EXPECT_EQ(s->alloc(a, 1, 100, nullptr).error(), Errc::busy);
  EXPECT_EQ(s->destroy_set(a).error(), Errc::busy);
  EXPECT_EQ(s->set_quota(a, 5).error(), Errc::busy);
  EXPECT_EQ(s->create_set(1, 10).error(), Errc::busy);  // token still held by the dying set
  EXPECT_EQ(s->stats().dying_sets, 1u);
  EXPECT_TRUE(*s->put(a, held));
  EXPECT_EQ(s->set_info(a).error(), Errc::not_found);
  EXPECT_EQ(s->stats().quota_reserved, 0u);
  EXPECT_EQ(s->stats().dying_sets, 0u);
  EXPECT_TRUE(s->create_set(1, 10));
  EXPECT_TRUE(s->check_invariants());
}

TEST(SpaceSets, ListSetsAndIds) {
  auto s = make();
  SetId a = *s->create_set(10, 5);
  SetId b = *s->create_set(20, 5);
  Id x = *s->alloc(a, 1, 100, nullptr);
  Id y = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->bind(a, y, 77));
  auto sets = s->list_sets().value();
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].set, a);
  EXPECT_EQ(sets[0].count, 2u);
  EXPECT_EQ(sets[0].bound, 1u);
  EXPECT_EQ(sets[1].set, b);
  auto ids = *s->list_ids(a);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].id, x);
  EXPECT_EQ(ids[1].id, y);
  EXPECT_EQ(ids[1].spid, 77u);
  EXPECT_EQ(ids[1].refs, 2u);
  EXPECT_EQ(s->list_ids(SetId::from_raw(999)).error(), Errc::not_found);
}

// ---- binding and SPIDs ------------------------------------------------------------------------

TEST(SpaceBind, SpidIsUniqueWithinASet) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  SetId b = *s->create_set(2, 10);
  Id x = *s->alloc(a, 1, 100, nullptr);
  Id y = *s->alloc(a, 1, 100, nullptr);
  Id z = *s->alloc(b, 1, 100, nullptr);
  ASSERT_TRUE(s->bind(a, x, 500));
  EXPECT_EQ(*s->find_by_spid(a, 500), x);
  EXPECT_EQ(s->bind(a, y, 500).error(), Errc::exists);  // spid taken in this set
  EXPECT_EQ(s->bind(a, x, 501).error(), Errc::exists);  // x already maps 500
  ASSERT_TRUE(s->bind(b, z, 500));                      // another set: fine
  EXPECT_EQ(*s->find_by_spid(b, 500), z);
  EXPECT_EQ(s->find_by_spid(a, 501).error(), Errc::not_found);
  EXPECT_EQ(s->bind(a, y, 0x100000).error(), Errc::out_of_range);
  EXPECT_EQ(s->bind(b, x, 1).error(), Errc::not_owner);
  EXPECT_TRUE(s->check_invariants());
}

TEST(SpaceBind, BindTakesReferenceAndLastUnbindDetaches) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  Id x = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->bind(a, x, 42));
  ASSERT_TRUE(s->bind(a, x, 42));  // a second device, same guest PASID
  ASSERT_TRUE(s->bind(a, x));      // a third, without spid
  EXPECT_EQ(s->query(a, x)->refs, 4u);
  EXPECT_EQ(s->query(a, x)->binds, 3u);
  ASSERT_TRUE(s->unbind(a, x));
  ASSERT_TRUE(s->unbind(a, x));
  EXPECT_EQ(*s->find_by_spid(a, 42), x);
  ASSERT_TRUE(s->unbind(a, x));
  EXPECT_EQ(s->find_by_spid(a, 42).error(), Errc::not_found);
  EXPECT_EQ(s->unbind(a, x).error(), Errc::not_found);
  EXPECT_EQ(s->query(a, x)->refs, 1u);
}

TEST(SpaceBind, FreeWhileBoundIsPendingUntilUnbind) {
  auto s = make();
  SetId a = *s->create_set(1, 10);
  Id x = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->bind(a, x, 42));
  ASSERT_TRUE(s->free(a, x));
  EXPECT_EQ(s->query(a, x)->state, IdState::free_pending);
  EXPECT_EQ(s->bind(a, x, 43).error(), Errc::busy);
  ASSERT_TRUE(s->unbind(a, x));
  EXPECT_EQ(s->query(a, x).error(), Errc::not_found);
  EXPECT_EQ(s->find_by_spid(a, 42).error(), Errc::not_found);
  EXPECT_TRUE(s->check_invariants());
}

// ---- notifiers --------------------------------------------------------------------------------

struct Recorder {
  std::vector<std::string> events;
  static void record(void* opaque, const Event& e) {
    static const char* names[] = {"?", "alloc", "free", "bind", "unbind"};
    auto* r = static_cast<Recorder*>(opaque);
    r->events.push_back(std::string(names[static_cast<int>(e.type)]) + ":" + std::to_string(e.id) +
                        ":" + (e.spid == kInvalidId ? "-" : std::to_string(e.spid)) + ":" +
                        std::to_string(e.owner_token) + ":" +
                        std::to_string(reinterpret_cast<std::uintptr_t>(e.priv)));
  }
};

TEST(SpaceNotify, GlobalAndPerOwnerIncludingBeforeTheSetExists) {
  auto s = make();
  Recorder global, owner1, owner2;
  ASSERT_TRUE(s->register_global_notifier(&Recorder::record, &global));
  ASSERT_TRUE(s->register_set_notifier(1, &Recorder::record, &owner1));  // set 1 not yet made
  ASSERT_TRUE(s->register_set_notifier(2, &Recorder::record, &owner2));
  SetId a = *s->create_set(1, 10);
  Id x = *s->alloc(a, 1, 100, tag(5));
  ASSERT_TRUE(s->bind(a, x, 9));
  ASSERT_TRUE(s->unbind(a, x));
  ASSERT_TRUE(s->free(a, x));
  EXPECT_THAT(owner1.events,
              ElementsAre("alloc:1:-:1:5", "bind:1:9:1:5", "unbind:1:9:1:5", "free:1:-:1:5"));
  EXPECT_EQ(global.events, owner1.events);
  EXPECT_TRUE(owner2.events.empty());
}

TEST(SpaceNotify, MaskAndUnregister) {
  auto s = make();
  Recorder r;
  NotifierId n = *s->register_global_notifier(&Recorder::record, &r, event_bit(EventType::free));
  SetId a = *s->create_set(1, 10);
  Id x = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->free(a, x));
  ASSERT_EQ(r.events.size(), 1u);
  ASSERT_TRUE(s->unregister_notifier(n));
  EXPECT_EQ(s->unregister_notifier(n).error(), Errc::not_found);
  x = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->free(a, x));
  EXPECT_EQ(r.events.size(), 1u);
  EXPECT_EQ(s->register_global_notifier(nullptr, nullptr).error(), Errc::invalid_argument);
  EXPECT_EQ(s->register_global_notifier(&Recorder::record, &r, 0).error(), Errc::invalid_argument);
}

TEST(SpaceNotify, FreeIsNotifiedOnceEvenWhenPending) {
  auto s = make();
  Recorder r;
  ASSERT_TRUE(s->register_global_notifier(&Recorder::record, &r, event_bit(EventType::free)));
  SetId a = *s->create_set(1, 10);
  Id x = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->get(a, x));
  ASSERT_TRUE(s->free(a, x));
  ASSERT_TRUE(s->put(a, x));
  Id y = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->put(a, y));  // release without free: FREE still notified
  EXPECT_EQ(r.events.size(), 2u);
}

TEST(SpaceNotify, CallbacksMayFindButNotMutate) {
  auto s = make();
  struct Probe {
    Space* space;
    SetId set;
    Result<void*> found = fail(Errc::io_error);
    Result<Id> alloc = fail(Errc::io_error);
    Result<SetInfo> info = fail(Errc::io_error);
  } probe{s.get(), SetId()};
  auto cb = [](void* opaque, const Event& e) {
    auto* p = static_cast<Probe*>(opaque);
    if (e.type != EventType::alloc) return;
    p->found = p->space->find(e.set, e.id);
    p->alloc = p->space->alloc(e.set, 1, 100, nullptr);
    p->info = p->space->set_info(e.set);
  };
  ASSERT_TRUE(s->register_global_notifier(cb, &probe));
  probe.set = *s->create_set(1, 10);
  Id x = *s->alloc(probe.set, 1, 100, tag(3));
  EXPECT_EQ(*probe.found, tag(3));
  EXPECT_EQ(probe.alloc.error(), Errc::would_deadlock);
  EXPECT_EQ(probe.info->count, 1u);
  EXPECT_EQ(s->set_info(probe.set)->count, 1u);
  EXPECT_EQ(x, 1u);
}

TEST(SpaceNotify, DestroyNotifiesFreeForEveryMember) {
  auto s = make();
  Recorder r;
  ASSERT_TRUE(s->register_set_notifier(1, &Recorder::record, &r, event_bit(EventType::free)));
  SetId a = *s->create_set(1, 10);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s->alloc(a, 1, 100, nullptr));
  ASSERT_TRUE(s->destroy_set(a));
  EXPECT_EQ(r.events.size(), 4u);
}

// ---- logging, statistics, trim ----------------------------------------------------------------

TEST(SpaceMisc, LogSinkReceivesMessagesAtOrAboveLevel) {
  std::vector<std::pair<LogLevel, std::string>> log;
  auto sink = [](void* opaque, LogLevel level, const char* msg) {
    static_cast<std::vector<std::pair<LogLevel, std::string>>*>(opaque)->emplace_back(level, msg);
  };
  auto s = make({.log_sink = sink, .log_opaque = &log, .log_level = LogLevel::warning});
  AllocatorOps unknown{[](void*, Id, Id, Id*) { return 0; }, [](void*, Id) {}, nullptr};
  s->unregister_allocator(&unknown);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].first, LogLevel::warning);
  EXPECT_NE(log[0].second.find("not registered"), std::string::npos);
}

TEST(SpaceMisc, StatsCountOperations) {
  auto s = make();
  SetId a = *s->create_set(1, 2);
  Id x = *s->alloc(a, 1, 100, nullptr);
  ASSERT_TRUE(s->alloc(a, 1, 100, nullptr));
  EXPECT_FALSE(s->alloc(a, 1, 100, nullptr));
  ASSERT_TRUE(s->free(a, x));
  SpaceStats st = s->stats();
  EXPECT_EQ(st.allocs, 2u);
  EXPECT_EQ(st.releases, 1u);
  EXPECT_EQ(st.live_ids, 1u);
  EXPECT_EQ(st.quota_refusals, 1u);
  EXPECT_EQ(st.sets, 1u);
  EXPECT_FALSE(st.custom_allocator_active);
}

TEST(SpaceMisc, TrimGivesBackEmptyLeavesAndKeepsLiveOnes) {
  auto s = make({.width_bits = 24});
  SetId a = *s->create_set(1, 10);
  Id low = *s->alloc(a, 1, 100, tag(1));
  Id far = *s->alloc(a, 5'000'000, 5'000'000, tag(2));
  const std::uint64_t before = s->stats().table_bytes;
  ASSERT_TRUE(s->free(a, far));
  EXPECT_GT(s->trim(), 0u);
  EXPECT_LT(s->stats().table_bytes, before);
  EXPECT_EQ(*s->find(a, low), tag(1));
  EXPECT_EQ(s->find(a, far).error(), Errc::not_found);
  EXPECT_EQ(*s->alloc(a, 5'000'000, 5'000'000, nullptr), far);  // leaf made again
  EXPECT_TRUE(s->check_invariants());
  EXPECT_EQ(s->trim(), 0u);  // nothing empty left
}

TEST(SpaceMisc, MemoryGrowsWithIdsNotWidth) {
  auto s = make({.width_bits = 32});
  const std::uint64_t empty = s->stats().table_bytes;
  SetId a = *s->create_set(1, 100'000);
  for (int i = 0; i < 100'000; ++i) ASSERT_TRUE(s->alloc(a, 1, 0xFFFFFFFE, nullptr));
  const std::uint64_t per_id = (s->stats().table_bytes - empty) / 100'000;
  EXPECT_LE(per_id, 40u);
}

}  // namespace
}  // namespace ioasid
