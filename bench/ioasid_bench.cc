// SPDX-License-Identifier: Apache-2.0
// ioasid_bench.cc: Google Benchmark binary measuring ioasid::Space against two in-binary
// baselines (range_set_baseline.hpp, bitmap_baseline.hpp) and liburcu-bp, in a 20-bit space with
// PASID 0 reserved, at 1k, 64k and full (2^20 - 1) live IDs; plus the VT-d virtual command path
// (guest driver -> register model -> LocalBackend -> host Space) against the direct host-space
// alloc+free. bench/README.md lists the families, how to run them and the figures measured. No
// assertion on timings anywhere: a wrong result (an ID not handed back, a live ID not found) stops
// the benchmark with an error instead.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <urcu/urcu-bp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "bitmap_baseline.hpp"
#include "core/internal/rcu.hpp"
#include "core/internal/space_impl.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/vtd_device.hpp"
#include "ioasid/vtd_guest_driver.hpp"
#include "range_set_baseline.hpp"
#include "vtd/internal/device_mmio.hpp"

namespace ioasid::bench {
namespace {

constexpr unsigned kWidth = kPasidBits;        // 20-bit space
constexpr Id kMaxId = (Id{1} << kWidth) - 1;   // 0xFFFFF
constexpr std::int64_t kFull = kMaxId;         // every ID but the reserved PASID 0
constexpr std::uint32_t kVictimIds = 100'000;  // the set destroyed by BM_DestroySet
constexpr std::size_t kIndexLen = 1u << 16;    // random IDs precomputed per benchmark

int g_payload = 0;  // what every ID's private data points to
void* const kPriv = &g_payload;

// ---- the three implementations behind one interface ----------------------------------------
//
// Each holds a 20-bit space with ID 0 reserved, a "main" owner holding the IDs the benchmarks
// use, and a "victim" owner for BM_DestroySet. alloc() is always lowest-free in [1, kMaxId].

// The library under test: one set for the main IDs, one for the victim; find() names the set
// (the owner check is part of the cost).
class Ours {
 public:
  explicit Ours(std::uint32_t main_quota = kMaxId, std::uint32_t victim_quota = 0)
      : victim_quota_(victim_quota) {
    space_ = std::move(Space::create(SpaceConfig{.width_bits = kWidth}).value());
    set_ = space_->create_set(1, main_quota).value();
    if (victim_quota != 0) victim_ = space_->create_set(2, victim_quota).value();
  }
  Id alloc(void* priv) {
    auto r = space_->alloc(set_, 1, kMaxId, priv);
    return r ? *r : kInvalidId;
  }
  void* find(Id id) const {
    auto r = space_->find(set_, id);
    return r ? *r : nullptr;
  }
  void free(Id id) { (void)space_->free(set_, id); }
  Id alloc_victim(void* priv) {
    auto r = space_->alloc(victim_, 1, kMaxId, priv);
    return r ? *r : kInvalidId;
  }
  // Space::destroy_set (true: the set is gone now).
  bool destroy_victim(const std::vector<Id>&) {
    auto r = space_->destroy_set(victim_);
    return r && *r;
  }
  // Untimed, after destroy_victim().
  void recreate_victim() { victim_ = space_->create_set(2, victim_quota_).value(); }
  // The ID table plus the space object and its sets' records (an ID has no per-set cost: the set
  // member list lives in the table's cold entries).
  std::uint64_t accounted_bytes() const {
    const SpaceStats st = space_->stats();
    return st.table_bytes + sizeof(internal::SpaceImpl) + st.sets * sizeof(internal::SetRec);
  }
  Space& space() { return *space_; }

 private:
  std::unique_ptr<Space> space_;
  SetId set_;
  SetId victim_;
  std::uint32_t victim_quota_;
};

// Baseline 1: std::map of free ranges + std::unordered_map for find, one shared_mutex.
class RangeSet {
 public:
  explicit RangeSet(std::uint32_t = kMaxId, std::uint32_t = 0) : b_(kMaxId) {}
  Id alloc(void* priv) { return b_.alloc(1, kMaxId, priv); }
  void* find(Id id) const { return b_.find(id); }
  void free(Id id) { b_.free(id); }
  Id alloc_victim(void* priv) { return alloc(priv); }
  // No sets: the owner frees its IDs one by one.
  bool destroy_victim(const std::vector<Id>& ids) {
    for (Id id : ids) b_.free(id);
    return true;
  }
  void recreate_victim() {}
  std::uint64_t accounted_bytes() const { return b_.accounted_bytes(); }

 private:
  RangeSetBaseline b_;
};

// Baseline 2: bare 3-level bitmap + flat std::atomic<void*> table.
class Bitmap {
 public:
  explicit Bitmap(std::uint32_t = kMaxId, std::uint32_t = 0) : b_(kMaxId) {}
  Id alloc(void* priv) { return b_.alloc(1, kMaxId, priv); }
  void* find(Id id) const { return b_.find(id); }
  void free(Id id) { b_.free(id); }
  Id alloc_victim(void* priv) { return alloc(priv); }
  bool destroy_victim(const std::vector<Id>& ids) {
    for (Id id : ids) b_.free(id);
    return true;
  }
  void recreate_victim() {}
  std::uint64_t accounted_bytes() const { return b_.accounted_bytes(); }
  const BitmapBaseline& raw() const { return b_; }

 private:
  BitmapBaseline b_;
};

// ---- helpers --------------------------------------------------------------------------------

// Allocates n IDs for the main owner; they must come out as 1..n (lowest free, dense).
template <class Impl>
bool fill(Impl& impl, std::uint32_t n) {
  for (std::uint32_t i = 1; i <= n; ++i) {
    if (impl.alloc(kPriv) != i) return false;
  }
  return true;
}

// kIndexLen IDs drawn uniformly from [1, n], fixed seed.
std::vector<Id> random_ids(std::uint32_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<Id> dist(1, n);
  std::vector<Id> out(kIndexLen);
  for (Id& id : out) id = dist(rng);
  return out;
}

std::uint32_t live_arg(const benchmark::State& state) {
  return static_cast<std::uint32_t>(state.range(0));
}

// Seconds per item, shown by the console reporter with an SI prefix (e.g. "31.2n" = 31.2 ns).
benchmark::Counter per_item(double items) {
  return benchmark::Counter(items, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// In-use heap bytes (main arena chunks plus mmapped blocks), summed over all arenas.
std::uint64_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Pins the calling thread to one CPU for the lifetime of the object (if the machine has it),
// restoring the previous mask after.
class PinThread {
 public:
  explicit PinThread(int cpu) {
    if (pthread_getaffinity_np(pthread_self(), sizeof(old_), &old_) != 0) return;
    if (!CPU_ISSET(cpu, &old_)) return;
    cpu_set_t want;
    CPU_ZERO(&want);
    CPU_SET(cpu, &want);
    pinned_ = pthread_setaffinity_np(pthread_self(), sizeof(want), &want) == 0;
  }
  ~PinThread() {
    if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof(old_), &old_);
  }
  PinThread(const PinThread&) = delete;
  PinThread& operator=(const PinThread&) = delete;
  bool pinned() const { return pinned_; }

 private:
  cpu_set_t old_{};
  bool pinned_ = false;
};

// ---- (a) alloc + find + free on one owner ---------------------------------------------------

// Pre-filled to N live IDs (N - 1 at full: a full space has nothing to allocate, so the cycle
// takes the one hole, the top ID), then: alloc lowest in [1, 2^20 - 1], find it, free it.
template <class Impl>
void BM_Cycle(benchmark::State& state) {
  const std::uint32_t n = std::min<std::uint32_t>(live_arg(state), kMaxId - 1);
  Impl impl;
  if (!fill(impl, n)) return state.SkipWithError("fill failed");
  for (auto _ : state) {
    const Id id = impl.alloc(kPriv);
    void* p = impl.find(id);
    benchmark::DoNotOptimize(p);
    if (__builtin_expect(p != kPriv, 0)) {
      state.SkipWithError("alloc/find failed");
      break;
    }
    impl.free(id);
  }
  state.counters["live"] = n;
}

// ---- (b) find alone, one thread -------------------------------------------------------------

// Random live IDs from a precomputed array; the lookups are independent (throughput, not a
// pointer chase).
template <class Impl>
void BM_Find(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  Impl impl;
  if (!fill(impl, n)) return state.SkipWithError("fill failed");
  const std::vector<Id> ids = random_ids(n, 1);
  std::size_t i = 0;
  std::uint64_t misses = 0;
  for (auto _ : state) {
    void* p = impl.find(ids[i]);
    benchmark::DoNotOptimize(p);
    misses += p == nullptr;
    i = (i + 1) & (kIndexLen - 1);
  }
  if (misses != 0) state.SkipWithError("a live ID was not found");
}

// ---- (c) find with a concurrent writer ------------------------------------------------------

// The reader (the benchmark thread, pinned to CPU 0) runs BM_Find's loop while a writer thread
// pinned to CPU 1 runs alloc/free cycles continuously: free a random live ID, alloc (which hands
// the same hole back). That is the writer that hurts a reader most: it writes the entries, bitmap
// words and cache lines the reader is loading, and at full occupancy it is the only alloc/free
// cycle possible. Reported: the reader's time per find; counters: the writer's pairs per second
// and the fraction of finds that hit an ID the writer had just freed (not_found is correct then).
template <class Impl>
void BM_FindWithWriter(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  Impl impl;
  if (!fill(impl, n)) return state.SkipWithError("fill failed");
  const std::vector<Id> ids = random_ids(n, 1);
  const std::vector<Id> wids = random_ids(n, 2);
  std::atomic<bool> stop{false};
  std::atomic<bool> started{false};
  std::atomic<bool> writer_error{false};
  std::atomic<std::uint64_t> writer_ops{0};
  PinThread pin_reader(0);
  std::thread writer([&] {
    PinThread pin_writer(1);
    started.store(true, std::memory_order_release);
    std::uint64_t ops = 0;
    std::size_t j = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const Id id = wids[j];
      impl.free(id);
      if (impl.alloc(kPriv) != id) {
        writer_error.store(true, std::memory_order_relaxed);
        break;
      }
      j = (j + 1) & (kIndexLen - 1);
      ++ops;
    }
    writer_ops.store(ops, std::memory_order_relaxed);
  });
  while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t i = 0;
  std::uint64_t misses = 0;
  for (auto _ : state) {
    void* p = impl.find(ids[i]);
    benchmark::DoNotOptimize(p);
    misses += p == nullptr;
    i = (i + 1) & (kIndexLen - 1);
  }
  stop.store(true, std::memory_order_relaxed);
  writer.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (writer_error.load()) return state.SkipWithError("writer: the hole was not handed back");
  state.counters["writer_pairs_per_s"] = static_cast<double>(writer_ops.load()) / secs;
  state.counters["miss_ratio"] = static_cast<double>(misses) /
                                 static_cast<double>(std::max<std::int64_t>(state.iterations(), 1));
  state.counters["pinned"] = pin_reader.pinned();
}

// ---- (d) refill a random hole ---------------------------------------------------------------

// N live IDs (1..N); loop: free a random live ID, alloc: the lowest free must be that hole.
// Reported per free + alloc pair.
template <class Impl>
void BM_HoleRefill(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  Impl impl;
  if (!fill(impl, n)) return state.SkipWithError("fill failed");
  const std::vector<Id> ids = random_ids(n, 3);
  std::size_t i = 0;
  for (auto _ : state) {
    const Id id = ids[i];
    impl.free(id);
    if (__builtin_expect(impl.alloc(kPriv) != id, 0)) {
      state.SkipWithError("the hole was not handed back");
      break;
    }
    i = (i + 1) & (kIndexLen - 1);
  }
}

// ---- (e) fill from empty --------------------------------------------------------------------

// Time to allocate N IDs into an empty space (N = 2^20 - 1: the whole space). Time column: the
// whole fill (manual timing: construction and teardown are not counted); per_id: per ID.
template <class Impl>
void BM_Fill(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  for (auto _ : state) {
    auto impl = std::make_unique<Impl>();
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = fill(*impl, n);
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (!ok) {
      state.SkipWithError("fill failed");
      break;
    }
    impl.reset();
  }
  state.counters["per_id"] =
      per_item(static_cast<double>(n) * static_cast<double>(state.iterations()));
}

// ---- (f) destroy a set of 100k IDs ----------------------------------------------------------

// Background: another owner holds N live IDs (N - 100k at full, so that the space is full);
// the victim owner holds 100k IDs above them. Timed: destroying the victim (Space::destroy_set;
// the baselines free its IDs one by one). Re-filling it is not timed.
template <class Impl>
void BM_DestroySet(benchmark::State& state) {
  const std::uint32_t background = std::min<std::uint32_t>(live_arg(state), kMaxId - kVictimIds);
  Impl impl(background, kVictimIds);
  if (!fill(impl, background)) return state.SkipWithError("fill failed");
  std::vector<Id> victim;
  victim.reserve(kVictimIds);
  auto refill = [&] {
    victim.clear();
    for (std::uint32_t k = 0; k < kVictimIds; ++k) {
      const Id id = impl.alloc_victim(kPriv);
      if (id != background + 1 + k) return false;
      victim.push_back(id);
    }
    return true;
  };
  if (!refill()) return state.SkipWithError("victim fill failed");
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = impl.destroy_victim(victim);
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (!ok) {
      state.SkipWithError("destroy failed");
      break;
    }
    impl.recreate_victim();
    if (!refill()) {
      state.SkipWithError("victim refill failed");
      break;
    }
  }
  state.counters["background"] = background;
  state.counters["per_id"] =
      per_item(static_cast<double>(kVictimIds) * static_cast<double>(state.iterations()));
}

// ---- (g) bytes per live ID ------------------------------------------------------------------

// Builds the structure and fills N IDs once. accounted_B_per_id: what the structure accounts for
// (ours: SpaceStats::table_bytes + the space object + its sets' records); heap_B_per_id: growth of
// malloc's in-use bytes (mallinfo2 uordblks + hblkhd) across construction and fill, i.e. with
// malloc's own per-block overhead and alignment waste.
template <class Impl>
void BM_Memory(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  for (auto _ : state) {
    const std::uint64_t before = heap_in_use();
    auto impl = std::make_unique<Impl>();
    if (!fill(*impl, n)) {
      state.SkipWithError("fill failed");
      break;
    }
    const std::uint64_t after = heap_in_use();
    const double accounted = static_cast<double>(impl->accounted_bytes());
    state.counters["accounted_B_per_id"] = accounted / n;
    state.counters["heap_B_per_id"] = static_cast<double>(after - before) / n;
    state.counters["heap_MiB"] = static_cast<double>(after - before) / (1024.0 * 1024.0);
  }
}

// ---- RCU read sections: liburcu-bp vs the library's own -------------------------------------

// The same flat pointer-table load (baseline 2, N live IDs, random IDs) wrapped in nothing, in the
// library's read section (internal::rcu, what Space::find() uses) or in liburcu-bp's exported
// urcu_bp_read_lock()/urcu_bp_read_unlock() (no _LGPL_SOURCE: the library-friendly flavour a
// shared library has to use). BM_Find<Ours> is the space's whole find for comparison.
enum class Section { none, ours, urcu_bp };

template <Section kSection>
void BM_ReadSection(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  Bitmap impl;
  if (!fill(impl, n)) return state.SkipWithError("fill failed");
  const std::vector<Id> ids = random_ids(n, 1);
  const BitmapBaseline& table = impl.raw();
  std::size_t i = 0;
  std::uint64_t misses = 0;
  for (auto _ : state) {
    void* p;
    if constexpr (kSection == Section::ours) {
      internal::rcu::ReadGuard guard;
      p = table.find(ids[i]);
    } else if constexpr (kSection == Section::urcu_bp) {
      urcu_bp_read_lock();
      p = table.find(ids[i]);
      urcu_bp_read_unlock();
    } else {
      p = table.find(ids[i]);
    }
    benchmark::DoNotOptimize(p);
    misses += p == nullptr;
    i = (i + 1) & (kIndexLen - 1);
  }
  if (misses != 0) state.SkipWithError("a live ID was not found");
}

// ---- where find()'s time goes ----------------------------------------------------------------

// The space's own table read path without the rest of Space::find(): IdTable::lookup (the three
// dependent loads) plus the meta and private-pointer loads, bare or inside the library's read
// section. Compared with BM_Find<Ours> (adds the range check, the meta re-check, the owner check,
// the out-of-line call and the Result<void*> return) and BM_ReadSection<Section::none> (the flat
// table), it separates the table layout's cost from the code around it.
enum class Anatomy { table_lookup, table_lookup_rcu };

template <Anatomy kStep>
void BM_FindAnatomy(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  Ours impl;
  if (!fill(impl, n)) return state.SkipWithError("fill failed");
  const internal::IdTable& table = internal::impl(&impl.space())->table_;
  const std::vector<Id> ids = random_ids(n, 1);
  std::size_t i = 0;
  std::uint64_t misses = 0;
  for (auto _ : state) {
    std::optional<internal::rcu::ReadGuard> guard;
    if constexpr (kStep == Anatomy::table_lookup_rcu) guard.emplace();
    const internal::HotEntry* h = table.lookup(ids[i]);
    const std::uint64_t m = h->meta.load(std::memory_order_acquire);
    void* p = h->priv.load(std::memory_order_acquire);
    benchmark::DoNotOptimize(m);
    benchmark::DoNotOptimize(p);
    misses += p == nullptr;
    i = (i + 1) & (kIndexLen - 1);
  }
  if (misses != 0) state.SkipWithError("a live ID was not found");
}

// ---- the writer lock alone ------------------------------------------------------------------

// What every mutating call pays before doing anything: held_by_me() and SpaceImpl::WriteLock
// (std::mutex lock + owner store, owner store + unlock), uncontended.
void BM_WriterLock(benchmark::State& state) {
  auto space = Space::create(SpaceConfig{.width_bits = kWidth}).value();
  internal::SpaceImpl* s = internal::impl(space.get());
  for (auto _ : state) {
    if (__builtin_expect(s->held_by_me(), 0)) {
      state.SkipWithError("lock held");
      break;
    }
    internal::SpaceImpl::WriteLock lock(*s);
    benchmark::ClobberMemory();
  }
}

// ---- VT-d virtual commands (issue 3) --------------------------------------------------------

// Allocates n IDs in set; they must come out as 1..n.
bool fill_set(Space& space, SetId set, std::uint32_t n) {
  for (std::uint32_t i = 1; i <= n; ++i) {
    if (space.alloc(set, 1, kMaxId, kPriv) != Result<Id>(i)) return false;
  }
  return true;
}

// The reference for BM_VtdVcmd: the host space's own alloc + free in one set holding N live IDs
// (1..N), lowest free in [1, 2^20 - 1], so each pair takes and gives back ID N + 1.
void BM_DirectAllocFree(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  auto space = Space::create(SpaceConfig{.width_bits = kWidth}).value();
  const SetId set = space->create_set(1, kMaxId).value();
  if (!fill_set(*space, set, n)) return state.SkipWithError("fill failed");
  for (auto _ : state) {
    const Result<Id> id = space->alloc(set, 1, kMaxId, nullptr);  // as LocalBackend does
    if (!id || *id != n + 1 || !space->free(set, *id)) {
      state.SkipWithError("alloc/free failed");
      break;
    }
  }
}

// The same pair through the VT-d virtual command registers, as a guest performs it: the guest
// driver writes VCMD (one 8-byte write) and polls VCRSP, the register model (VT-d 3.3 layout)
// runs the command on a LocalBackend over the same kind of host set. kMode: the command completes
// inside the VCMD write (immediate), or on the device's worker thread while the guest polls
// (asynchronous). Counters: VCRSP reads per command (1 in immediate mode).
template <VtdCompletion kMode>
void BM_VtdVcmd(benchmark::State& state) {
  const std::uint32_t n = live_arg(state);
  auto space = Space::create(SpaceConfig{.width_bits = kWidth}).value();
  const SetId set = space->create_set(1, kMaxId).value();
  if (!fill_set(*space, set, n)) return state.SkipWithError("fill failed");
  LocalBackend backend(*space, set);
  auto device =
      VtdVcmdDevice::create(backend, {.layout = wire::vtd::VcmdLayout::rev3_3, .completion = kMode})
          .value();
  internal::DeviceMmio mmio(*device);
  VtdGuestDriver driver(mmio, {.layout = wire::vtd::VcmdLayout::rev3_3});
  if (!driver.probe()) return state.SkipWithError("VCMD not advertised");
  for (auto _ : state) {
    const Result<Id> id = driver.vcmd_alloc();
    if (!id || *id != n + 1) {
      state.SkipWithError("VCMD ALLOC failed");
      break;
    }
    driver.vcmd_free(*id);
  }
  const VtdGuestDriverStats st = driver.stats();
  if (st.free_errors != 0 || st.frees != st.allocs) state.SkipWithError("VCMD FREE failed");
  if (st.commands != 0) {
    state.counters["polls_per_cmd"] =
        static_cast<double>(st.polls) / static_cast<double>(st.commands);
  }
}

// ---- registration ---------------------------------------------------------------------------

#define IOASID_SIZES Arg(1024)->Arg(65536)->Arg(kFull)

// fn for the three implementations at the three sizes; the optional argument is appended to each
// registration (e.g. ->UseManualTime()).
#define IOASID_FAMILY(fn, ...)                                \
  BENCHMARK_TEMPLATE(fn, Ours)->IOASID_SIZES __VA_ARGS__;     \
  BENCHMARK_TEMPLATE(fn, RangeSet)->IOASID_SIZES __VA_ARGS__; \
  BENCHMARK_TEMPLATE(fn, Bitmap)->IOASID_SIZES __VA_ARGS__

IOASID_FAMILY(BM_Cycle);
IOASID_FAMILY(BM_Find);
IOASID_FAMILY(BM_FindWithWriter);
IOASID_FAMILY(BM_HoleRefill);
IOASID_FAMILY(BM_Fill, ->UseManualTime()->Unit(benchmark::kMillisecond));
IOASID_FAMILY(BM_DestroySet, ->UseManualTime()->Unit(benchmark::kMicrosecond));
IOASID_FAMILY(BM_Memory, ->Iterations(1)->Unit(benchmark::kMillisecond));

BENCHMARK_TEMPLATE(BM_ReadSection, Section::none)->IOASID_SIZES;
BENCHMARK_TEMPLATE(BM_ReadSection, Section::ours)->IOASID_SIZES;
BENCHMARK_TEMPLATE(BM_ReadSection, Section::urcu_bp)->IOASID_SIZES;

BENCHMARK_TEMPLATE(BM_FindAnatomy, Anatomy::table_lookup)->IOASID_SIZES;
BENCHMARK_TEMPLATE(BM_FindAnatomy, Anatomy::table_lookup_rcu)->IOASID_SIZES;

BENCHMARK(BM_WriterLock);

BENCHMARK(BM_DirectAllocFree)->Arg(1024);
BENCHMARK_TEMPLATE(BM_VtdVcmd, VtdCompletion::immediate)->Arg(1024);
BENCHMARK_TEMPLATE(BM_VtdVcmd, VtdCompletion::asynchronous)->Arg(1024);

}  // namespace
}  // namespace ioasid::bench

BENCHMARK_MAIN();
