// SPDX-License-Identifier: Apache-2.0
// space_fail_nth_test.cc: memory-failure injection in the style of iommufd_fail_nth. Each
// operation is run with internal::FaultInjector armed to fail its 1st, 2nd, ... internal memory
// allocation until an attempt completes without the failure firing; every attempt in which it fired
// must return Errc::no_memory and leave the space exactly as it was (stats, sets, IDs, private
// data, SPIDs, notifier events, allocator calls, invariants). Leaks are caught by LSan in the
// sanitizer builds.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/internal/memory.hpp"
#include "ioasid/space.hpp"

namespace ioasid {
namespace {

using internal::FaultInjector;

// ---- a custom allocator with observable state ---------------------------------------------------

struct TestAllocator {
  std::set<Id> out;
  Id next_hint = 0;  // when non-zero, the next answer (then cleared)
  int calls = 0;
};

int ta_alloc(void* pdata, Id min, Id max, Id* out) {
  auto* a = static_cast<TestAllocator*>(pdata);
  ++a->calls;
  Id x = a->next_hint != 0 ? a->next_hint : (min == 0 ? 1 : min);
  a->next_hint = 0;
  while (a->out.count(x) != 0) {
    if (x == max) return -ENOSPC;
    ++x;
  }
  a->out.insert(x);
  *out = x;
  return 0;
}
void ta_free(void* pdata, Id id) { static_cast<TestAllocator*>(pdata)->out.erase(id); }

// A second callback pair, so that registering it makes a new group.
int tb_alloc(void* pdata, Id min, Id max, Id* out) { return ta_alloc(pdata, min, max, out); }
void tb_free(void* pdata, Id id) { ta_free(pdata, id); }

std::vector<std::string> g_events;
void record_event(void* opaque, const Event& e) {
  g_events.push_back(std::to_string(reinterpret_cast<std::uintptr_t>(opaque)) + ":" +
                     std::to_string(static_cast<int>(e.type)) + ":" + std::to_string(e.id) + ":" +
                     std::to_string(e.spid));
}

// ---- fixture and snapshot
// -------------------------------------------------------------------------

struct Fx {
  TestAllocator alloc_a;  // declared before the space: outlives it
  TestAllocator alloc_b;
  AllocatorOps ops_a{ta_alloc, ta_free, &alloc_a};
  AllocatorOps ops_a2{ta_alloc, ta_free, &alloc_a};  // same callbacks: joins ops_a's group
  AllocatorOps ops_b{tb_alloc, tb_free, &alloc_b};
  std::unique_ptr<Space> space;
  std::vector<SetId> sets;
  std::vector<Id> ids;
};

void* priv_of(Id id) { return reinterpret_cast<void*>(std::uintptr_t{id} * 16 + 16); }

std::unique_ptr<Space> make_space(unsigned width, std::vector<IdRange> reserved = {{0, 0}}) {
  SpaceConfig c;
  c.width_bits = width;
  c.reserved = std::move(reserved);
  auto s = Space::create(c);
  EXPECT_TRUE(s.has_value());
  return s ? std::move(*s) : nullptr;
}

struct Snapshot {
  std::string text;  // every observable value, printed
  bool invariants_ok = false;
};

Snapshot snap(const Fx& fx) {
  Snapshot s;
  const Space& sp = *fx.space;
  const SpaceStats st = sp.stats();
  std::string& t = s.text;
  auto add = [&t](const char* name, std::uint64_t v) {
    t += name;
    t += '=';
    t += std::to_string(v);
    t += ' ';
  };
  add("live", st.live_ids);
  add("pending", st.free_pending_ids);
  add("reserved", st.reserved_ids);
  add("capacity", st.capacity);
  add("quota_reserved", st.quota_reserved);
  add("sets", st.sets);
  add("dying", st.dying_sets);
  add("orphaned", st.orphaned_ids);
  add("orphaned_total", st.orphaned_total);
  add("allocs", st.allocs);
  add("releases", st.releases);
  add("quota_refusals", st.quota_refusals);
  add("exhausted_refusals", st.exhausted_refusals);
  add("allocator_rejects", st.allocator_rejects);
  add("groups", st.allocator_groups);
  add("custom_active", st.custom_allocator_active);
  add("table_bytes", st.table_bytes);
  t += "\n";
  const std::vector<SetInfo> sets = sp.list_sets().value();
  for (const SetInfo& si : sets) {
    add("set", si.set.raw());
    add("token", si.owner_token);
    add("quota", si.quota);
    add("count", si.count);
    add("bound", si.bound);
    add("peak", si.peak);
    add("refusals", si.quota_refusals);
    add("state", static_cast<std::uint64_t>(si.state));
    t += "\n";
    auto ids = sp.list_ids(si.set);
    if (!ids) {
      t += "list_ids failed\n";
      continue;
    }
    for (const IdInfo& ii : *ids) {
      add(" id", ii.id);
      add("state", static_cast<std::uint64_t>(ii.state));
      add("refs", ii.refs);
      add("binds", ii.binds);
      add("spid", ii.spid);
      auto f = sp.find(SetId::any(), ii.id);
      add("find", f ? std::uint64_t{reinterpret_cast<std::uintptr_t>(*f)}
                    : std::uint64_t{1000} + static_cast<std::uint64_t>(f.error()));
      if (ii.spid != kInvalidId) {
        auto b = sp.find_by_spid(si.set, ii.spid);
        add("by_spid", b ? *b : kInvalidId);
      }
      t += "\n";
    }
  }
  for (const TestAllocator* a : {&fx.alloc_a, &fx.alloc_b}) {
    t += "allocator:";
    for (Id id : a->out) t += " " + std::to_string(id);
    t += "\n";
  }
  t += "events: " + std::to_string(g_events.size()) + "\n";
  s.invariants_ok = sp.check_invariants().has_value();
  return s;
}

using Setup = std::function<void(Fx&)>;
using Op = std::function<Errc(Fx&)>;  // Errc{} on success

// Runs op with the n-th allocation failing, n = 1, 2, ... until it succeeds without the failure
// firing. Returns the number of attempts in which the failure fired.
int fail_nth(const char* name, const Setup& setup, const Op& op) {
  int fired_count = 0;
  const bool failed_before = ::testing::Test::HasFailure();
  auto stop = [failed_before] { return !failed_before && ::testing::Test::HasFailure(); };
  for (std::uint64_t n = 1; n < 10000; ++n) {
    Fx fx;
    g_events.clear();
    setup(fx);
    if (stop()) return fired_count;
    const Snapshot before = fx.space != nullptr ? snap(fx) : Snapshot{"", true};
    EXPECT_TRUE(before.invariants_ok) << name << ": setup broke invariants";
    FaultInjector::arm(n);
    const Errc rc = op(fx);
    const bool fired = FaultInjector::fired();
    FaultInjector::arm(0);
    if (!fired) {
      EXPECT_EQ(rc, Errc{}) << name << ": failed without an injected failure: " << to_string(rc);
      EXPECT_TRUE(fx.space == nullptr || fx.space->check_invariants().has_value()) << name;
      return fired_count;
    }
    ++fired_count;
    EXPECT_EQ(rc, Errc::no_memory) << name << " n=" << n << ": " << to_string(rc);
    if (fx.space != nullptr) {
      const Snapshot after = snap(fx);
      EXPECT_TRUE(after.invariants_ok) << name << " n=" << n << ": invariants broken";
      EXPECT_EQ(after.text, before.text) << name << " n=" << n << ": the space changed";
      // The space stays usable: the same operation now succeeds.
      EXPECT_EQ(op(fx), Errc{}) << name << " n=" << n << ": retry without injection failed";
      EXPECT_TRUE(fx.space->check_invariants().has_value()) << name << " n=" << n;
    }
    if (stop()) return fired_count;
  }
  ADD_FAILURE() << name << ": never completed";
  return fired_count;
}

template <class T>
Errc errc(const Result<T>& r) {
  return r ? Errc{} : r.error();
}

// Standard fixture: a 32-bit space, two sets, IDs in the low 2M region, a notifier.
void base_setup(Fx& fx) {
  fx.space = make_space(32);
  if (!fx.space) return;
  ASSERT_TRUE(fx.space->register_global_notifier(record_event, nullptr).has_value());
  fx.sets.push_back(fx.space->create_set(1, 100).value());
  fx.sets.push_back(fx.space->create_set(2, 100).value());
  for (Id i = 0; i < 5; ++i) {
    const Id id = fx.space->alloc(fx.sets[i % 2], 1, 1000, nullptr).value();
    ASSERT_TRUE(fx.space->set_data(id, priv_of(id)).has_value());
    fx.ids.push_back(id);
  }
  ASSERT_TRUE(fx.space->bind(fx.sets[0], fx.ids[0], 7).has_value());
  ASSERT_TRUE(fx.space->get(fx.sets[1], fx.ids[1]).has_value());
  ASSERT_TRUE(fx.space->free(fx.sets[1], fx.ids[1]).has_value());  // FREE_PENDING
}

// ---- tests
// -----------------------------------------------------------------------------------------

TEST(SpaceFailNth, CreateSpace) {
  for (unsigned width : {1u, 8u, 20u, 32u}) {
    SpaceConfig c;
    c.width_bits = width;
    if (width == 32) c.reserved = {{0, 0}, {0x40000000, 0x40000001}, {0xFFFFFFF0, 0xFFFFFFFE}};
    int fired = fail_nth(
        "create space", [](Fx&) {},
        [&c](Fx& fx) {
          auto s = Space::create(c);
          if (!s) return s.error();
          fx.space = std::move(*s);
          return Errc{};
        });
    EXPECT_GE(fired, 2) << "width " << width;
  }
}

TEST(SpaceFailNth, CreateSet) {
  EXPECT_GE(fail_nth(
                "first create_set", [](Fx& fx) { fx.space = make_space(20); },
                [](Fx& fx) { return errc(fx.space->create_set(9, 10)); }),
            1);
  EXPECT_GE(
      fail_nth("create_set", base_setup, [](Fx& fx) { return errc(fx.space->create_set(9, 10)); }),
      1);
  // Enough sets that the set table and the token map grow along the way.
  for (int pre : {2, 3, 7, 15, 16, 31, 33}) {
    fail_nth(
        "create_set after many",
        [pre](Fx& fx) {
          fx.space = make_space(20);
          for (int i = 0; i < pre; ++i) ASSERT_TRUE(fx.space->create_set(100 + i, 2).has_value());
          // Holes: destroyed sets leave free slots behind.
          ASSERT_TRUE(fx.space->destroy_set(fx.space->find_set(100).value()).has_value());
        },
        [](Fx& fx) { return errc(fx.space->create_set(9, 10)); });
  }
}

TEST(SpaceFailNth, AllocNewLeafAndMid) {
  // A 32-bit space: each 2M region has its own mid, each 512 IDs their own leaf.
  // (0xFFFFFFFE shares its leaf with the reserved 0xFFFFFFFF: the table needs nothing new, the
  // set's first member in that leaf needs its leaf counter, one allocation.)
  const Id targets[] = {0x1000, 0x80000000u, 0xFFFFFC00u, 0x00200000, 0x7FFFFFFFu};
  for (Id target : targets) {
    const int fired = fail_nth("alloc new leaf/mid", base_setup, [target](Fx& fx) {
      auto r = fx.space->alloc(fx.sets[0], target, target, priv_of(target));
      return errc(r);
    });
    EXPECT_GE(fired, 1) << std::hex << target;
  }
  EXPECT_EQ(fail_nth("alloc next to the reserved top", base_setup,
                     [](Fx& fx) {
                       return errc(fx.space->alloc(fx.sets[0], 0xFFFFFFFEu, kInvalidId, nullptr));
                     }),
            1);
  // The same leaf: nothing to allocate.
  EXPECT_EQ(fail_nth("alloc same leaf", base_setup,
                     [](Fx& fx) { return errc(fx.space->alloc(fx.sets[0], 1, 1000, nullptr)); }),
            0);
}

TEST(SpaceFailNth, AllocThroughCustomAllocator) {
  auto setup = [](Fx& fx) {
    fx.space = make_space(32);
    ASSERT_TRUE(fx.space->register_global_notifier(record_event, nullptr).has_value());
    ASSERT_TRUE(fx.space->register_allocator(&fx.ops_a).has_value());
    fx.sets.push_back(fx.space->create_set(1, 100).value());
    ASSERT_TRUE(fx.space->alloc(fx.sets[0], 1, 100, nullptr).has_value());
  };
  // The allocator's answer needs a new mid and leaf: on failure it must be handed back.
  const int fired = fail_nth("custom alloc, new mid", setup, [](Fx& fx) {
    fx.alloc_a.next_hint = 0x90000000u;
    return errc(fx.space->alloc(fx.sets[0], 0x80000000u, 0xA0000000u, nullptr));
  });
  EXPECT_GE(fired, 1);
}

TEST(SpaceFailNth, Bind) {
  // Binds with and without a spid, with the set's maps at many sizes (rehashes).
  for (int pre : {0, 1, 2, 5, 7, 11, 12, 13, 23, 24, 25, 29, 50, 97}) {
    auto setup = [pre](Fx& fx) {
      base_setup(fx);
      if (::testing::Test::HasFatalFailure()) return;
      fx.sets.push_back(fx.space->create_set(3, 200).value());
      for (int i = 0; i < pre + 2; ++i) {
        fx.ids.push_back(fx.space->alloc(fx.sets[2], 1, 0xFFFFF, nullptr).value());
      }
      for (int i = 0; i < pre; ++i) {
        ASSERT_TRUE(fx.space->bind(fx.sets[2], fx.ids[5 + i], 1000 + i).has_value());
      }
      // The last ID: bound without a spid (a spid attach later only grows by_spid).
      ASSERT_TRUE(fx.space->bind(fx.sets[2], fx.ids.back()).has_value());
    };
    const Id fresh_index = static_cast<Id>(5 + pre);
    fail_nth("bind with spid", setup, [fresh_index](Fx& fx) {
      return errc(fx.space->bind(fx.sets[2], fx.ids[fresh_index], 5000));
    });
    fail_nth("bind without spid", setup, [fresh_index](Fx& fx) {
      return errc(fx.space->bind(fx.sets[2], fx.ids[fresh_index]));
    });
    fail_nth("attach spid to a bound ID", setup,
             [](Fx& fx) { return errc(fx.space->bind(fx.sets[2], fx.ids.back(), 6000)); });
  }
  // The first bind of a set with a spid allocates both maps.
  EXPECT_GE(fail_nth("first bind", base_setup,
                     [](Fx& fx) { return errc(fx.space->bind(fx.sets[1], fx.ids[3], 3)); }),
            1);
}

TEST(SpaceFailNth, Notifiers) {
  EXPECT_GE(fail_nth("global notifier", base_setup,
                     [](Fx& fx) {
                       return errc(fx.space->register_global_notifier(record_event, nullptr));
                     }),
            1);
  EXPECT_GE(fail_nth("first set notifier", base_setup,
                     [](Fx& fx) {
                       return errc(fx.space->register_set_notifier(1, record_event, nullptr));
                     }),
            1);
  for (int pre : {1, 2, 3, 4, 7, 8}) {
    fail_nth(
        "more set notifiers",
        [pre](Fx& fx) {
          base_setup(fx);
          for (int i = 0; i < pre; ++i) {
            ASSERT_TRUE(fx.space->register_set_notifier(1, record_event, nullptr).has_value());
            ASSERT_TRUE(fx.space->register_set_notifier(50 + i, record_event, nullptr).has_value());
            ASSERT_TRUE(fx.space->register_global_notifier(record_event, nullptr).has_value());
          }
        },
        [](Fx& fx) {
          auto a = fx.space->register_set_notifier(1, record_event, nullptr);
          if (!a) return a.error();
          return Errc{};
        });
  }
  // A set notifier for a token with no set yet, then the set and an alloc notify it.
  fail_nth("notifier for a future owner", base_setup,
           [](Fx& fx) { return errc(fx.space->register_set_notifier(77, record_event, nullptr)); });
}

TEST(SpaceFailNth, RegisterAllocator) {
  auto empty = [](Fx& fx) {
    fx.space = make_space(20);
    fx.sets.push_back(fx.space->create_set(1, 10).value());
  };
  EXPECT_GE(fail_nth("first allocator", empty,
                     [](Fx& fx) { return errc(fx.space->register_allocator(&fx.ops_a)); }),
            1);
  auto one = [empty](Fx& fx) {
    empty(fx);
    ASSERT_TRUE(fx.space->register_allocator(&fx.ops_a).has_value());
    ASSERT_TRUE(fx.space->alloc(fx.sets[0], 1, 100, nullptr).has_value());
  };
  EXPECT_GE(fail_nth("standby group", one,
                     [](Fx& fx) { return errc(fx.space->register_allocator(&fx.ops_b)); }),
            1);
  EXPECT_GE(fail_nth("join group", one,
                     [](Fx& fx) { return errc(fx.space->register_allocator(&fx.ops_a2)); }),
            1);
  // Unregistering never fails and allocates nothing; orphaning keeps IDs valid.
  EXPECT_EQ(fail_nth("unregister", one,
                     [](Fx& fx) {
                       fx.space->unregister_allocator(&fx.ops_a);
                       return Errc{};
                     }),
            0);
}

TEST(SpaceFailNth, OperationsThatNeedNoMemory) {
  // These allocate nothing: the first attempt completes and must succeed.
  struct Case {
    const char* name;
    Op op;
  };
  const Case cases[] = {
      {"destroy_set with members", [](Fx& fx) { return errc(fx.space->destroy_set(fx.sets[0])); }},
      {"destroy_set with pending",
       [](Fx& fx) {
         auto r = fx.space->destroy_set(fx.sets[1]);
         return r ? (*r ? Errc::invalid_argument : Errc{}) : r.error();  // dying: false
       }},
      {"free", [](Fx& fx) { return errc(fx.space->free(fx.sets[0], fx.ids[2])); }},
      {"put", [](Fx& fx) { return errc(fx.space->put(fx.sets[1], fx.ids[1])); }},
      {"unbind", [](Fx& fx) { return errc(fx.space->unbind(fx.sets[0], fx.ids[0])); }},
      {"get", [](Fx& fx) { return errc(fx.space->get(SetId::any(), fx.ids[0])); }},
      {"set_quota", [](Fx& fx) { return errc(fx.space->set_quota(fx.sets[0], 50)); }},
      {"set_data", [](Fx& fx) { return errc(fx.space->set_data(fx.ids[0], nullptr)); }},
      {"trim",
       [](Fx& fx) {
         fx.space->trim();
         return Errc{};
       }},
  };
  for (const Case& c : cases) EXPECT_EQ(fail_nth(c.name, base_setup, c.op), 0) << c.name;
}

TEST(SpaceFailNth, AllocAfterTrim) {
  // trim() gives leaves back; the next alloc there needs them again.
  auto setup = [](Fx& fx) {
    base_setup(fx);
    if (::testing::Test::HasFatalFailure()) return;
    const Id far = fx.space->alloc(fx.sets[0], 0x50000000u, 0x50000000u, nullptr).value();
    ASSERT_TRUE(fx.space->free(fx.sets[0], far).has_value());
    EXPECT_GT(fx.space->trim(), 0u);
  };
  EXPECT_GE(fail_nth("alloc after trim", setup,
                     [](Fx& fx) {
                       return errc(fx.space->alloc(fx.sets[0], 0x50000000u, 0x50000000u, nullptr));
                     }),
            1);
}

}  // namespace
}  // namespace ioasid
