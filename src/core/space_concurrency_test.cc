// SPDX-License-Identifier: Apache-2.0
// space_concurrency_test.cc: concurrency tests of ioasid::Space, meant for ThreadSanitizer (and
// ASan): lock-free find() readers against writers that alloc, free, set_data, destroy sets, trim
// and switch custom allocators; set_data() callers freeing the old object at once; concurrent
// allocations never handing out one ID twice. Every test is bounded by iteration counts.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "ioasid/space.hpp"

namespace ioasid {
namespace {

constexpr std::uint64_t kMagic = 0x10A51D7A6C0FFEEull;

// What every private pointer points to: the ID and the set it was attached for. A torn or stale
// read shows up as a mismatch; a freed object as an ASan/TSan report.
struct Tag {
  std::uint64_t magic = kMagic;
  Id id = 0;
  std::uint64_t set = 0;
  bool heap = false;  // made for set_data() and freed by its writer
};

// Tags that live as long as the test: readers may dereference these after find() returned.
class Arena {
 public:
  explicit Arena(std::size_t n) : tags_(n) {}
  Tag* make(Id id, std::uint64_t set) {
    const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= tags_.size()) return nullptr;
    tags_[i].id = id;
    tags_[i].set = set;
    return &tags_[i];
  }
  bool contains(const void* p) const {
    return p >= static_cast<const void*>(tags_.data()) &&
           p < static_cast<const void*>(tags_.data() + tags_.size());
  }

 private:
  std::vector<Tag> tags_;
  std::atomic<std::size_t> next_{0};
};

struct Errors {
  std::atomic<std::uint64_t> torn{0};        // a tag for another ID
  std::atomic<std::uint64_t> wrong_set{0};   // find(set) returned another set's tag
  std::atomic<std::uint64_t> bad_error{0};   // an error find() must not return here
  std::atomic<std::uint64_t> duplicate{0};   // an ID handed out twice
  std::atomic<std::uint64_t> unexpected{0};  // a writer call failed in a way it must not
};

struct CheckCtx {
  Id id;
  std::uint64_t set;  // 0: any
  Errors* errors;
};

// Runs inside find()'s read-side critical section: any tag may be dereferenced here.
bool check_tag(void* opaque, void* priv) {
  const auto* c = static_cast<const CheckCtx*>(opaque);
  const auto* t = static_cast<const Tag*>(priv);
  if (t == nullptr || t->magic != kMagic || t->id != c->id) {
    c->errors->torn.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (c->set != 0 && t->set != c->set) c->errors->wrong_set.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// ---- readers against writers, with and without custom allocator switching -----------------------

// A custom allocator that answers min (the writers ask for one ID at a time): the space rejects
// a live answer, hands it back and the writer sees exists. It is called under the space lock;
// allocs is atomic because the switcher reads it outside.
struct SimpleBackend {
  std::atomic<std::uint64_t> allocs{0};
  std::uint64_t frees = 0;
};
int simple_alloc(void* pdata, Id min, Id, Id* out) {
  static_cast<SimpleBackend*>(pdata)->allocs.fetch_add(1, std::memory_order_relaxed);
  *out = min;
  return 0;
}
void simple_free(void* pdata, Id) { ++static_cast<SimpleBackend*>(pdata)->frees; }
int other_alloc(void* pdata, Id min, Id max, Id* out) {
  if (min > max) return -EINVAL;
  return simple_alloc(pdata, min, max, out);
}
void other_free(void* pdata, Id id) { simple_free(pdata, id); }

constexpr Id kLo = 1;
constexpr Id kHi = 700;  // two leaves: trim() can retire the second one under readers

void churn(bool custom_allocators) {
  constexpr int kWriters = 2;
  constexpr int kReaders = 2;
  constexpr int kWriterOps = 15000;
  auto created = Space::create(SpaceConfig{});
  ASSERT_TRUE(created.has_value());
  Space& space = **created;
  Errors errors;
  Arena arena(kWriters * kWriterOps + 16);
  std::atomic<std::uint8_t> owner[kHi + 1] = {};  // writer + 1 holding the ID, 0 none
  std::atomic<std::uint64_t> writer_set[kWriters] = {};
  std::atomic<int> writers_left{kWriters};
  std::atomic<std::uint64_t> found{0};
  std::atomic<std::uint64_t> reads{0};  // finds done so far, all readers

  SimpleBackend backend_a, backend_b;
  AllocatorOps a0{simple_alloc, simple_free, &backend_a};
  AllocatorOps a1{simple_alloc, simple_free, &backend_a};
  AllocatorOps b0{other_alloc, other_free, &backend_b};
  if (custom_allocators) {
    ASSERT_TRUE(space.register_allocator(&a0).has_value());
  }

  std::atomic<int> readers_ready{0};
  auto writer = [&](int w) {
    // Start once every reader runs, so that the writers' work overlaps the readers'.
    while (readers_ready.load() < kReaders) std::this_thread::yield();
    std::mt19937 rng(1234 + w);
    std::uint64_t token = 1000 * (w + 1);
    auto make_set = [&] {
      auto s = space.create_set(token++, 400);
      if (!s) {
        errors.unexpected.fetch_add(1);
        return SetId();
      }
      writer_set[w].store(s->raw(), std::memory_order_relaxed);
      return *s;
    };
    SetId set = make_set();
    struct Mine {
      Id id;
      Tag* current;
    };
    std::vector<Mine> mine;
    std::vector<Tag*> retired;  // heap tags of freed IDs: deleted after synchronize()
    auto retire = [&](Tag* t) {
      if (t->heap) retired.push_back(t);
    };
    for (int i = 0; i < kWriterOps; ++i) {
      const unsigned r = rng() % 100;
      if (r < 50 || mine.empty()) {
        const Id x = kLo + rng() % (kHi - kLo + 1);
        Tag* t = arena.make(x, set.raw());
        auto id = space.alloc(set, x, x, t);
        if (id) {
          std::uint8_t expected = 0;
          if (*id != x ||
              !owner[x].compare_exchange_strong(expected, static_cast<std::uint8_t>(w + 1))) {
            errors.duplicate.fetch_add(1);
          }
          mine.push_back({x, t});
        } else if (id.error() != Errc::exhausted && id.error() != Errc::exists &&
                   id.error() != Errc::quota_exceeded) {
          errors.unexpected.fetch_add(1);
        }
      } else if (r < 80) {
        const std::size_t k = rng() % mine.size();
        owner[mine[k].id].store(0);
        if (!space.free(set, mine[k].id)) errors.unexpected.fetch_add(1);
        retire(mine[k].current);
        mine[k] = mine.back();
        mine.pop_back();
      } else if (r < 97) {
        // Replace the private data; the old heap object is freed as soon as set_data returns.
        Mine& m = mine[rng() % mine.size()];
        Tag* fresh = new Tag{kMagic, m.id, set.raw(), true};
        if (!space.set_data(m.id, fresh)) errors.unexpected.fetch_add(1);
        if (m.current->heap) delete m.current;
        m.current = fresh;
      } else {
        for (const Mine& m : mine) {
          owner[m.id].store(0);
          retire(m.current);
        }
        mine.clear();
        auto d = space.destroy_set(set);
        if (!d || !*d) errors.unexpected.fetch_add(1);
        set = make_set();
      }
      if (retired.size() >= 64) {
        space.synchronize();
        for (Tag* t : retired) delete t;
        retired.clear();
      }
    }
    // On a loaded machine the readers may have run only before this writer allocated anything, or
    // hardly at all: keep this writer's IDs live until they have done a fair number of finds from
    // now on, so that the test never passes without testing.
    const std::uint64_t reads_before = reads.load(std::memory_order_relaxed);
    while (reads.load(std::memory_order_relaxed) - reads_before < 20000) {
      std::this_thread::yield();
    }
    for (const Mine& m : mine) {
      owner[m.id].store(0);
      if (!space.free(set, m.id)) errors.unexpected.fetch_add(1);
      retire(m.current);
    }
    space.synchronize();
    for (Tag* t : retired) delete t;
    writers_left.fetch_sub(1);
  };

  auto reader = [&](int rd) {
    std::mt19937 rng(99 + rd);
    std::uint64_t hits = 0;
    readers_ready.fetch_add(1);
    while (writers_left.load(std::memory_order_relaxed) > 0) {
      const Id x = kLo + rng() % (kHi - kLo + 1);
      const unsigned mode = rng() % 4;
      const std::uint64_t set_raw =
          mode >= 2 ? writer_set[rng() % kWriters].load(std::memory_order_relaxed) : 0;
      const SetId set = set_raw != 0 ? SetId::from_raw(set_raw) : SetId::any();
      CheckCtx ctx{x, set_raw, &errors};
      auto r = (mode % 2 == 1) ? space.find(set, x, check_tag, &ctx) : space.find(set, x);
      reads.fetch_add(1, std::memory_order_relaxed);
      if (r) {
        ++hits;
        void* p = *r;
        // Outside the read section only the arena's tags may be dereferenced.
        if (p == nullptr || (!arena.contains(p) && mode % 2 == 0)) continue;
        if (arena.contains(p)) {
          const Tag* t = static_cast<const Tag*>(p);
          if (t->magic != kMagic || t->id != x) errors.torn.fetch_add(1);
          if (set_raw != 0 && t->set != set_raw) errors.wrong_set.fetch_add(1);
        }
      } else if (r.error() != Errc::not_found && r.error() != Errc::not_owner) {
        errors.bad_error.fetch_add(1);
      } else if (r.error() == Errc::not_owner && set_raw == 0) {
        errors.bad_error.fetch_add(1);
      }
    }
    found.fetch_add(hits);
  };

  // Registers and unregisters a0, a1 (one group) and b0 (another) at random, mostly keeping one
  // registered; with all of a group's members gone its live IDs are orphaned and the next group
  // (or the default allocator) takes over under the readers' feet. trim() now and then.
  auto switcher = [&] {
    std::mt19937 rng(7);
    AllocatorOps* ops[3] = {&a0, &a1, &b0};
    bool reg[3] = {custom_allocators, false, false};
    // Not before a writer has allocated through a0: on a loaded machine the switcher could
    // otherwise unregister it before any writer ran, and the custom allocators would go unused.
    while (custom_allocators && backend_a.allocs.load(std::memory_order_relaxed) == 0 &&
           writers_left.load(std::memory_order_relaxed) > 0) {
      std::this_thread::yield();
    }
    while (writers_left.load(std::memory_order_relaxed) > 0) {
      const unsigned k = rng() % 3;
      const unsigned action = rng() % 8;
      if (!custom_allocators || action == 7) {
        space.trim();
        std::this_thread::yield();
      } else if (!reg[k]) {
        auto r = space.register_allocator(ops[k]);
        if (r) {
          reg[k] = true;
        } else if (r.error() != Errc::try_again) {  // the default allocator holds IDs
          errors.unexpected.fetch_add(1);
        }
      } else if (reg[0] + reg[1] + reg[2] > 1 || rng() % 10 == 0) {
        space.unregister_allocator(ops[k]);
        reg[k] = false;
      }
    }
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) threads.emplace_back(writer, w);
  for (int rd = 0; rd < kReaders; ++rd) threads.emplace_back(reader, rd);
  threads.emplace_back(switcher);
  for (auto& t : threads) t.join();

  EXPECT_EQ(errors.torn.load(), 0u);
  EXPECT_EQ(errors.wrong_set.load(), 0u);
  EXPECT_EQ(errors.bad_error.load(), 0u);
  EXPECT_EQ(errors.duplicate.load(), 0u);
  EXPECT_EQ(errors.unexpected.load(), 0u);
  EXPECT_TRUE(space.check_invariants().has_value());
  EXPECT_EQ(space.stats().live_ids, 0u);
  EXPECT_GE(reads.load(), 20000u);
  if (custom_allocators) {
    space.unregister_allocator(&a0);
    space.unregister_allocator(&a1);
    space.unregister_allocator(&b0);
    EXPECT_EQ(space.stats().orphaned_ids, 0u);
    EXPECT_GT(backend_a.allocs.load() + backend_b.allocs.load(), 0u);
  }
  // Not a correctness requirement, but a test whose readers never hit anything tests little.
  EXPECT_GT(found.load(), 0u);
}

TEST(SpaceConcurrency, FindWhileWritersChurn) { churn(false); }
TEST(SpaceConcurrency, FindWhileAllocatorsSwitch) { churn(true); }

// ---- a new thread's first find() does not wait for a grace period
// --------------------------------

struct HoldCtx {
  std::atomic<bool>* inside;    // set once the holder is inside its read section
  std::atomic<bool>* released;  // the holder leaves its read section when this is set
  bool timed_out = false;
};

// A validator that keeps the calling reader inside find()'s read section until told to leave
// (bounded: 20 s, after which the test fails instead of hanging).
bool hold_read_section(void* opaque, void* /*priv*/) {
  auto* h = static_cast<HoldCtx*>(opaque);
  h->inside->store(true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!h->released->load()) {
    if (std::chrono::steady_clock::now() > deadline) {
      h->timed_out = true;
      break;
    }
    std::this_thread::yield();
  }
  return true;
}

// Reader A sits in a read section; a writer's set_data() waits for A's grace period; meanwhile a
// thread that has never called find() does its first find(). It must complete while A is still
// inside (registration takes no lock a grace period holds); only then is A released.
TEST(SpaceConcurrency, FirstFindOfANewThreadDoesNotWaitForAGracePeriod) {
  auto created = Space::create(SpaceConfig{});
  ASSERT_TRUE(created.has_value());
  Space& space = **created;
  const SetId set = space.create_set(1, 16).value();
  static int old_data = 1, new_data = 2;
  const Id held = space.alloc(set, 1, 100, &old_data).value();
  const Id other = space.alloc(set, 1, 100, &old_data).value();

  std::atomic<bool> inside{false}, released{false}, writer_returned{false};
  HoldCtx hold{&inside, &released};
  std::thread holder([&] { EXPECT_TRUE(space.find(set, held, hold_read_section, &hold)); });
  while (!inside.load()) std::this_thread::yield();

  std::thread writer([&] {
    EXPECT_TRUE(space.set_data(other, &new_data).has_value());  // waits for the holder
    writer_returned.store(true);
  });
  // Give the writer time to enter its grace period (it cannot finish before the holder leaves).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(writer_returned.load());

  std::atomic<bool> fresh_done{false};
  std::thread fresh([&] {
    auto r = space.find(set, other);
    EXPECT_TRUE(r.has_value());
    fresh_done.store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!fresh_done.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(fresh_done.load()) << "a new thread's first find() waited for the grace period";
  EXPECT_FALSE(writer_returned.load());  // the holder was still inside all along

  released.store(true);
  holder.join();
  writer.join();
  fresh.join();
  EXPECT_FALSE(hold.timed_out);
  EXPECT_TRUE(writer_returned.load());
  EXPECT_EQ(space.find(set, other).value(), &new_data);
}

// ---- set_data(): the old object may be freed as soon as it returns -----------------------------

TEST(SpaceConcurrency, SetDataThenFreeOld) {
  auto created = Space::create(SpaceConfig{});
  ASSERT_TRUE(created.has_value());
  Space& space = **created;
  const SetId set = space.create_set(1, 16).value();
  constexpr int kIds = 8;
  constexpr int kReplacements = 3000;
  Id ids[kIds];
  Tag* current[kIds];
  for (int i = 0; i < kIds; ++i) {
    ids[i] = space.alloc(set, 1, 100, nullptr).value();
    current[i] = new Tag{kMagic, ids[i], set.raw(), true};
    ASSERT_TRUE(space.set_data(ids[i], current[i]).has_value());
  }
  Errors errors;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> checks{0};
  std::atomic<int> readers_ready{0};
  auto reader = [&](int rd) {
    std::mt19937 rng(rd);
    std::uint64_t n = 0;
    readers_ready.fetch_add(1);
    do {
      const int i = static_cast<int>(rng() % kIds);
      CheckCtx ctx{ids[i], rd % 2 ? set.raw() : 0, &errors};
      auto r = space.find(rd % 2 ? set : SetId::any(), ids[i], check_tag, &ctx);
      if (!r) errors.bad_error.fetch_add(1);  // always live, and check_tag says yes
      ++n;
    } while (!done.load(std::memory_order_relaxed));
    checks.fetch_add(n);
  };
  std::vector<std::thread> readers;
  for (int rd = 0; rd < 3; ++rd) readers.emplace_back(reader, rd);
  while (readers_ready.load() < 3) std::this_thread::yield();
  std::mt19937 rng(5);
  for (int k = 0; k < kReplacements; ++k) {
    const int i = static_cast<int>(rng() % kIds);
    Tag* fresh = new Tag{kMagic, ids[i], set.raw(), true};
    ASSERT_TRUE(space.set_data(ids[i], fresh).has_value());
    delete current[i];  // at once: no reader can still see it
    current[i] = fresh;
  }
  done.store(true);
  for (auto& t : readers) t.join();
  for (int i = 0; i < kIds; ++i) {
    ASSERT_TRUE(space.free(set, ids[i]).has_value());
  }
  space.synchronize();
  for (Tag* t : current) delete t;
  EXPECT_EQ(errors.torn.load(), 0u);
  EXPECT_EQ(errors.wrong_set.load(), 0u);
  EXPECT_EQ(errors.bad_error.load(), 0u);
  EXPECT_GT(checks.load(), 0u);
}

// ---- concurrent allocations never return one ID twice -------------------------------------------

void unique_allocs(AllocPolicy policy, bool shared_set) {
  constexpr int kThreads = 4;
  constexpr int kOps = 15000;
  SpaceConfig config;
  config.width_bits = 10;  // 1023 IDs for 4 threads: the space runs full
  config.policy = policy;
  auto created = Space::create(config);
  ASSERT_TRUE(created.has_value());
  Space& space = **created;
  std::vector<SetId> sets;
  if (shared_set) {
    sets.push_back(space.create_set(1, 1023).value());
  } else {
    for (int t = 0; t < kThreads; ++t) sets.push_back(space.create_set(10 + t, 255).value());
  }
  std::vector<std::atomic<std::uint8_t>> owner(1024);
  std::atomic<std::uint64_t> duplicates{0}, unexpected{0}, allocs{0};
  auto worker = [&](int t) {
    std::mt19937 rng(77 + t);
    const SetId set = sets[shared_set ? 0 : t];
    std::vector<Id> mine;
    for (int i = 0; i < kOps; ++i) {
      if (rng() % 100 < 60 || mine.empty()) {
        const Id min = rng() % 4 == 0 ? static_cast<Id>(rng() % 1000) + 1 : 1;
        auto id = space.alloc(set, min, 1023, nullptr);
        if (id) {
          std::uint8_t expected = 0;
          if (*id < min ||
              !owner[*id].compare_exchange_strong(expected, static_cast<std::uint8_t>(t + 1))) {
            duplicates.fetch_add(1);
          }
          mine.push_back(*id);
          allocs.fetch_add(1, std::memory_order_relaxed);
        } else if (id.error() != Errc::exhausted && id.error() != Errc::quota_exceeded) {
          unexpected.fetch_add(1);
        }
      } else {
        const std::size_t k = rng() % mine.size();
        owner[mine[k]].store(0);  // before the free: the ID is not ours once free() runs
        if (!space.free(set, mine[k])) unexpected.fetch_add(1);
        mine[k] = mine.back();
        mine.pop_back();
      }
    }
    for (Id id : mine) {
      owner[id].store(0);
      if (!space.free(set, id)) unexpected.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(duplicates.load(), 0u);
  EXPECT_EQ(unexpected.load(), 0u);
  EXPECT_GT(allocs.load(), 0u);
  EXPECT_TRUE(space.check_invariants().has_value());
  const SpaceStats st = space.stats();
  EXPECT_EQ(st.live_ids, 0u);
  EXPECT_EQ(st.allocs, allocs.load());
  EXPECT_EQ(st.releases, allocs.load());
}

TEST(SpaceConcurrency, AllocsNeverDuplicateLowestFree) {
  unique_allocs(AllocPolicy::lowest_free, true);
}
TEST(SpaceConcurrency, AllocsNeverDuplicateCyclic) { unique_allocs(AllocPolicy::cyclic, true); }
TEST(SpaceConcurrency, AllocsNeverDuplicateOwnSets) {
  unique_allocs(AllocPolicy::lowest_free, false);
}

}  // namespace
}  // namespace ioasid
