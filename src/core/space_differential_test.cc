// SPDX-License-Identifier: Apache-2.0
// space_differential_test.cc: randomized differential test of ioasid::Space against a reference
// model written with std::map / std::set. Every call's value and error code, every notifier event
// and every custom allocator callback are predicted by the model and compared; check_invariants()
// runs after every step that can change the space, and stats() / list_sets() / list_ids() / find()
// of every live ID are compared with the model every 512 steps.
//
// Environment: IOASID_DIFF_OPS (total operations over all configurations, default 1'500'000, or
// 200'000 under a sanitizer, which makes each step ~10x dearer),
// IOASID_DIFF_SEED (override every configuration's seed), IOASID_DIFF_CONFIG (run one configuration
// by index), IOASID_DIFF_ROUNDS (seeds per configuration, default 1). A failure prints the
// configuration, seed and step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ioasid/space.hpp"

namespace ioasid {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IOASID_DIFF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IOASID_DIFF_SANITIZED 1
#endif
#endif
#ifdef IOASID_DIFF_SANITIZED
constexpr std::uint64_t kDefaultOps = 200'000;
#else
constexpr std::uint64_t kDefaultOps = 1'500'000;
#endif

namespace {

// ---- test allocators ---------------------------------------------------------------------------

enum Kind : int { kGoodA = 0, kGoodB, kBuggy, kDup, kErr, kKinds };
constexpr int kMembersPerKind = 3;

struct Call {
  int op;  // 0 alloc, 1 free
  std::uintptr_t pdata;
  Id a;
  Id b;
  auto operator<=>(const Call&) const = default;
};

struct Pool {
  std::set<Id> out;  // IDs handed out and not freed back
  std::uint64_t calls = 0;
  Id base = 0;   // kBuggy: where its answers start, whatever the request
  Id limit = 0;  // highest ID the well-behaved answers use
};

struct Member {
  AllocatorOps ops;
  int kind;
};

Pool g_pool[kKinds];
std::vector<Call> g_calls;

std::pair<int, Id> good_answer(const Pool& p, Id min, Id max) {
  std::uint64_t x = std::max<Id>(min, 1);
  const std::uint64_t hi = std::min(max, p.limit);
  auto it = p.out.lower_bound(static_cast<Id>(std::min<std::uint64_t>(x, 0xFFFFFFFFu)));
  while (x <= hi) {
    if (it == p.out.end() || *it != x) return {0, static_cast<Id>(x)};
    ++x;
    ++it;
  }
  return {-ENOSPC, 0};
}

// What the allocator of kind k answers to [min, max] in state p (pure: the model peeks).
std::pair<int, Id> answer(int k, const Pool& p, Id min, Id max) {
  switch (k) {
    case kGoodA:
    case kGoodB:
      return good_answer(p, min, max);
    case kBuggy: {  // ignores min/max
      std::uint64_t x = p.base;
      auto it = p.out.lower_bound(p.base);
      while (it != p.out.end() && *it == x) {
        ++x;
        ++it;
      }
      if (x > 0xFFFFFFFFu) return {-ENOSPC, 0};
      return {0, static_cast<Id>(x)};
    }
    case kDup:  // every third answer repeats one it gave before
      if (p.calls % 3 == 2 && !p.out.empty()) return {0, *p.out.rbegin()};
      return good_answer(p, min, max);
    default: {
      static constexpr int kRcs[] = {0,          -EIO,    -ENOSPC, -ENOMEM, 7,
                                     -ETIMEDOUT, -EDQUOT, -EINVAL, -ERANGE, -EPERM};
      const int rc = kRcs[p.calls % (sizeof(kRcs) / sizeof(kRcs[0]))];
      if (rc == 0) return good_answer(p, min, max);
      return {rc, 0};
    }
  }
}

template <int K>
int cb_alloc(void* pdata, Id min, Id max, Id* out) {
  g_calls.push_back(Call{0, reinterpret_cast<std::uintptr_t>(pdata), min, max});
  Pool& p = g_pool[K];
  auto [rc, x] = answer(K, p, min, max);
  ++p.calls;
  if (rc == 0) {
    p.out.insert(x);
    *out = x;
  }
  return rc;
}

template <int K>
void cb_free(void* pdata, Id id) {
  g_calls.push_back(Call{1, reinterpret_cast<std::uintptr_t>(pdata), id, static_cast<Id>(K)});
  g_pool[K].out.erase(id);
}

using AllocFn = int (*)(void*, Id, Id, Id*);
using FreeFn = void (*)(void*, Id);
constexpr AllocFn kAllocFns[kKinds] = {cb_alloc<0>, cb_alloc<1>, cb_alloc<2>, cb_alloc<3>,
                                       cb_alloc<4>};
constexpr FreeFn kFreeFns[kKinds] = {cb_free<0>, cb_free<1>, cb_free<2>, cb_free<3>, cb_free<4>};

// A custom allocator's negative errno maps through the error table (tested in errc_test).
Errc errc_of_rc(int rc) { return rc > 0 ? Errc::io_error : from_errno(-rc); }

// ---- notifier events ---------------------------------------------------------------------------

struct Ev {
  int tag;  // 0 global notifier, 1 the watched owner's notifier
  EventType type;
  Id id;
  Id spid;
  std::uint64_t set;
  std::uint64_t token;
  std::uintptr_t priv;
  auto operator<=>(const Ev&) const = default;
};
std::vector<Ev> g_events;
constexpr std::uint64_t kWatchedToken = 3;
constexpr std::uint32_t kWatchedMask = event_bit(EventType::free) | event_bit(EventType::bind);

void on_event(void* opaque, const Event& e) {
  g_events.push_back(Ev{static_cast<int>(reinterpret_cast<std::uintptr_t>(opaque)), e.type, e.id,
                        e.spid, e.set.raw(), e.owner_token,
                        reinterpret_cast<std::uintptr_t>(e.priv)});
}

struct ValidatorCtx {
  bool verdict = true;
  int calls = 0;
  void* seen = nullptr;
};
bool validate(void* opaque, void* priv) {
  auto* v = static_cast<ValidatorCtx*>(opaque);
  ++v->calls;
  v->seen = priv;
  return v->verdict;
}

// ---- configurations ----------------------------------------------------------------------------

struct Config {
  const char* name;
  unsigned width;
  AllocPolicy policy;
  std::vector<IdRange> reserved;
  std::uint64_t capacity;
  std::vector<IdRange> windows;  // where ranges and IDs are drawn (empty: the whole space)
  std::uint64_t seed;
};

std::vector<Config> configs() {
  using P = AllocPolicy;
  return {
      {"w1", 1, P::lowest_free, {{0, 0}}, 0, {}, 11},
      {"w4-noreserve", 4, P::lowest_free, {}, 0, {}, 12},
      {"w4-lowest", 4, P::lowest_free, {{0, 0}}, 0, {}, 13},
      {"w4-cyclic", 4, P::cyclic, {{0, 0}}, 12, {}, 14},
      {"w8-lowest", 8, P::lowest_free, {{0, 0}, {10, 12}, {11, 14}}, 200, {}, 15},
      {"w8-cyclic", 8, P::cyclic, {{0, 0}, {100, 103}}, 0, {}, 16},
      {"w12-lowest", 12, P::lowest_free, {{0, 0}}, 1000, {}, 17},
      {"w12-cyclic", 12, P::cyclic, {{0, 0}, {4000, 4095}}, 0, {}, 18},
      {"w20-lowest", 20, P::lowest_free, {{0, 0}}, 0, {{0, 1600}, {0xFFE00, 0xFFFFF}}, 19},
      {"w20-cyclic",
       20,
       P::cyclic,
       {{0, 0}, {511, 513}},
       3000,
       {{0, 1600}, {0xFFE00, 0xFFFFF}},
       20},
      {"w32-lowest",
       32,
       P::lowest_free,
       {{0, 0}, {0xFFFFFFF0, 0xFFFFFFF1}},
       0,
       {{0xFFFFFF00, 0xFFFFFFFF}, {0x7FFFFF80, 0x8000007F}, {0, 0x180}, {0x12345000, 0x12345100}},
       21},
      {"w32-cyclic",
       32,
       P::cyclic,
       {{0, 0}},
       5000,
       {{0xFFFFFF00, 0xFFFFFFFF}, {0x7FFFFF80, 0x8000007F}, {0, 0x180}},
       22},
  };
}

std::uint64_t env_u64(const char* name, std::uint64_t dflt) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  return std::strtoull(v, nullptr, 0);
}

// ---- the model ---------------------------------------------------------------------------------

struct MId {
  std::uint64_t set;
  IdState state;
  std::uint32_t refs;
  std::uint32_t binds;
  Id spid;
  void* priv;
  int group;  // 0 default, else group slot
};

struct MSet {
  std::uint64_t token = 0;
  std::uint32_t quota = 0;
  std::uint32_t count = 0;
  std::uint32_t peak = 0;
  std::uint64_t quota_refusals = 0;
  bool dying = false;
  std::set<Id> members;
  std::map<Id, Id> by_spid;
  std::uint32_t bound = 0;
};

struct MGroup {
  int kind = 0;
  std::vector<Member*> members;
  std::uint64_t live = 0;
  int slot = 0;
  bool removed = false;
};

const char* name_of(Errc e) { return to_string(e); }

template <class T>
std::string show(const Result<T>& r) {
  if (!r) return std::string("error ") + name_of(r.error());
  if constexpr (std::is_void_v<T>) {
    return "ok";
  } else if constexpr (std::is_same_v<T, SetId>) {
    return "set " + std::to_string(r->raw());
  } else if constexpr (std::is_pointer_v<T>) {
    return "ptr " + std::to_string(reinterpret_cast<std::uintptr_t>(*r));
  } else {
    return "value " + std::to_string(*r);
  }
}

template <class T>
bool same(const Result<T>& got, const Result<T>& want) {
  if (got.has_value() != want.has_value()) return false;
  if (!got) return got.error() == want.error();
  if constexpr (std::is_void_v<T>) {
    return true;
  } else {
    return *got == *want;
  }
}

class Diff {
 public:
  Diff(const Config& cfg, std::uint64_t seed) : cfg_(cfg), seed_(seed), rng_(seed) {}

  // Runs ops steps; returns false (after ADD_FAILURE) on the first divergence.
  bool run(std::uint64_t ops);

 private:
  // ---- plumbing ----
  void diverge(int line, const std::string& what) {
    if (failed_) return;
    failed_ = true;
    char buf[128];
    std::snprintf(buf, sizeof(buf),
                  "config %s seed %" PRIu64 " step %" PRIu64 " (line %d): ", cfg_.name, seed_,
                  step_, line);
    msg_ = buf + what + "\n  last op: " + op_;
  }
  std::uint64_t rnd(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  std::uint64_t rnd_in(std::uint64_t lo, std::uint64_t hi) { return lo + rnd(hi - lo + 1); }
  bool chance(unsigned percent) { return rnd(100) < percent; }
  void begin(const char* fmt, ...) __attribute__((format(printf, 2, 3)));

  template <class T>
  void expect(int line, const Result<T>& got, const Result<T>& want) {
    if (!same(got, want)) diverge(line, "got " + show(got) + ", want " + show(want));
  }
  void expect_side_effects(int line);

  // ---- model helpers ----
  const IdRange& window() { return windows_[rnd(windows_.size())]; }
  Id pick_id();
  SetId pick_set();
  std::pair<Id, Id> pick_range();
  Id model_find_free(std::uint64_t first, std::uint64_t last) const;
  Result<MId*> model_live(SetId set, Id id);
  Id spid_of(Id id) const;
  void emit(EventType t, Id id);
  void m_release(Id id);
  void m_free_live(Id id);
  bool m_drop_ref(Id id);
  MGroup* group_of(const Member* m, std::size_t* pos);
  void note_destroyed(std::uint64_t raw) {
    if (stale_sets_.size() < 8) {
      stale_sets_.push_back(raw);
    } else {
      stale_sets_[rnd(8)] = raw;
    }
    if (destroyed_.size() < 256) {
      destroyed_.push_back(raw);
    } else {
      destroyed_[destroyed_pos_++ % 256] = raw;
    }
  }

  // ---- operations ----
  void op_alloc();
  void op_free();
  void op_get();
  void op_put();
  void op_bind();
  void op_unbind();
  void op_find();
  void op_find_by_spid();
  void op_query();
  void op_set_data();
  void op_create_set();
  void op_destroy_set();
  void op_set_quota();
  void op_register();
  void op_unregister();
  void op_trim();
  void full_check();

  const Config& cfg_;
  std::uint64_t seed_;
  std::mt19937_64 rng_;
  std::uint64_t step_ = 0;
  bool failed_ = false;
  std::string msg_;
  std::string op_;

  std::unique_ptr<Space> space_;
  Id max_id_ = 0;
  std::vector<IdRange> windows_;
  std::vector<Id> reserved_ids_;
  std::uint64_t reserved_count_ = 0;

  // model state
  std::map<Id, MId> live_;
  std::set<Id> used_;  // live and reserved
  std::map<std::uint64_t, MSet> sets_;
  std::map<std::uint64_t, std::uint64_t> by_token_;
  std::vector<std::uint64_t> stale_sets_;  // a few destroyed handles, for use after destroy
  std::vector<std::uint64_t> destroyed_;   // the last 256 destroyed handles (ring)
  std::size_t destroyed_pos_ = 0;
  std::vector<Id> recent_freed_;
  std::vector<std::unique_ptr<MGroup>> group_store_;
  std::vector<MGroup*> groups_;  // registration order, front active
  MGroup* slots_[255] = {};
  std::uint64_t default_live_ = 0;
  Id cursor_ = 0;
  SpaceStats st_;  // model counters
  std::uint64_t quota_reserved_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t priv_counter_ = 0;
  Member members_[kKinds][kMembersPerKind];
  AllocatorOps bad_ops_{};
  std::vector<Call> want_calls_;
  std::vector<Ev> want_events_;
};

void Diff::begin(const char* fmt, ...) {
  char buf[200];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  op_ = buf;
  g_calls.clear();
  g_events.clear();
  want_calls_.clear();
  want_events_.clear();
}

void Diff::expect_side_effects(int line) {
  std::sort(g_calls.begin(), g_calls.end());
  std::sort(want_calls_.begin(), want_calls_.end());
  if (g_calls != want_calls_) {
    std::string s = "allocator calls differ: got";
    for (const Call& c : g_calls) {
      s +=
          " {" + std::to_string(c.op) + "," + std::to_string(c.a) + "," + std::to_string(c.b) + "}";
    }
    s += " want";
    for (const Call& c : want_calls_) {
      s +=
          " {" + std::to_string(c.op) + "," + std::to_string(c.a) + "," + std::to_string(c.b) + "}";
    }
    diverge(line, s);
  }
  std::sort(g_events.begin(), g_events.end());
  std::sort(want_events_.begin(), want_events_.end());
  if (g_events != want_events_) {
    std::string s = "events differ: got";
    for (const Ev& e : g_events) {
      s += " {" + std::to_string(e.tag) + "," + std::to_string(static_cast<int>(e.type)) + "," +
           std::to_string(e.id) + "," + std::to_string(e.spid) + "}";
    }
    s += " want";
    for (const Ev& e : want_events_) {
      s += " {" + std::to_string(e.tag) + "," + std::to_string(static_cast<int>(e.type)) + "," +
           std::to_string(e.id) + "," + std::to_string(e.spid) + "}";
    }
    diverge(line, s);
  }
}

Id Diff::model_find_free(std::uint64_t first, std::uint64_t last) const {
  std::uint64_t x = first;
  auto it = used_.lower_bound(static_cast<Id>(first));
  while (x <= last) {
    if (it == used_.end() || *it != x) return static_cast<Id>(x);
    ++x;
    ++it;
  }
  return kInvalidId;
}

Id Diff::pick_id() {
  const unsigned r = static_cast<unsigned>(rnd(100));
  if (r < 55 && !live_.empty()) {
    const IdRange& w = window();
    auto it = live_.lower_bound(static_cast<Id>(rnd_in(w.first, w.last)));
    if (it == live_.end()) it = live_.begin();
    return it->first;
  }
  if (r < 65 && !recent_freed_.empty()) return recent_freed_[rnd(recent_freed_.size())];
  if (r < 72) return reserved_ids_[rnd(reserved_ids_.size())];
  if (r < 76) return max_id_ == kInvalidId ? kInvalidId : max_id_ + 1 + static_cast<Id>(rnd(3));
  const IdRange& w = window();
  return static_cast<Id>(rnd_in(w.first, w.last));
}

SetId Diff::pick_set() {
  const unsigned r = static_cast<unsigned>(rnd(100));
  if (r < 78 && !sets_.empty()) {
    auto it = sets_.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(rnd(sets_.size())));
    return SetId::from_raw(it->first);
  }
  if (r < 86 && !stale_sets_.empty()) return SetId::from_raw(stale_sets_[rnd(stale_sets_.size())]);
  if (r < 90) return SetId::any();
  if (r < 93) return SetId();
  if (r < 97 && !sets_.empty()) {
    // A forged handle whose low 32 bits name a live set.
    return SetId::from_raw((std::uint64_t{1} << 32) | sets_.begin()->first);
  }
  for (;;) {  // a handle no set has now
    const std::uint64_t raw = rnd_in(1, 0xFFFFFFFEu);
    if (sets_.count(raw) == 0) return SetId::from_raw(raw);
  }
}

std::pair<Id, Id> Diff::pick_range() {
  const IdRange& w = window();
  const std::uint64_t size = std::uint64_t{w.last} - w.first + 1;
  const unsigned r = static_cast<unsigned>(rnd(100));
  const Id a = static_cast<Id>(rnd_in(w.first, w.last));
  if (r < 45) {
    std::uint64_t span = rnd(4) == 0 ? rnd(size) : rnd(std::min<std::uint64_t>(size, 24));
    return {a, static_cast<Id>(std::min<std::uint64_t>(std::uint64_t{a} + span, w.last))};
  }
  if (r < 60) return {w.first, w.last};
  if (r < 68) return {a, a};
  if (r < 73) return {a, a == 0 ? 0 : a - 1};  // min > max unless a == 0
  if (r < 78) {
    if (max_id_ == kInvalidId) return {a, kInvalidId};
    return {a, static_cast<Id>(
                   std::min<std::uint64_t>(std::uint64_t{max_id_} + 1 + rnd(5), 0xFFFFFFFFu))};
  }
  if (r < 83) return {0, max_id_};
  if (r < 86) {
    const Id res = reserved_ids_[rnd(reserved_ids_.size())];
    return {res, res};
  }
  if (r < 90) {  // a range near the top of the window
    const Id lo = static_cast<Id>(std::max<std::uint64_t>(w.first, w.last >= 3 ? w.last - 3 : 0));
    return {lo, w.last};
  }
  const Id b = static_cast<Id>(rnd_in(w.first, w.last));
  return {std::min(a, b), std::max(a, b)};
}

Result<MId*> Diff::model_live(SetId set, Id id) {
  if (id > max_id_) return fail(Errc::out_of_range);
  auto it = live_.find(id);
  if (it == live_.end()) return fail(Errc::not_found);
  if (!set.is_any() && set.raw() != it->second.set) {
    if (sets_.count(set.raw()) == 0) return fail(Errc::not_found);
    return fail(Errc::not_owner);
  }
  return &it->second;
}

Id Diff::spid_of(Id id) const {
  auto it = live_.find(id);
  if (it == live_.end() || it->second.binds == 0) return kInvalidId;
  return it->second.spid;
}

void Diff::emit(EventType t, Id id) {
  const MId& e = live_.at(id);
  const MSet& s = sets_.at(e.set);
  const Ev ev{0, t, id, spid_of(id), e.set, s.token, reinterpret_cast<std::uintptr_t>(e.priv)};
  want_events_.push_back(ev);
  if (s.token == kWatchedToken && (kWatchedMask & event_bit(t)) != 0) {
    Ev ev1 = ev;
    ev1.tag = 1;
    want_events_.push_back(ev1);
  }
}

void Diff::m_release(Id id) {
  MId e = live_.at(id);
  MSet& s = sets_.at(e.set);
  s.members.erase(id);
  if (e.binds > 0) {
    if (e.spid != kInvalidId) s.by_spid.erase(e.spid);
    --s.bound;
  }
  if (e.state == IdState::free_pending) --st_.free_pending_ids;
  if (e.group == 0) {
    --default_live_;
  } else {
    MGroup* g = slots_[e.group];
    --g->live;
    if (g->removed) {
      --st_.orphaned_ids;
      if (g->live == 0) slots_[e.group] = nullptr;
    } else {
      want_calls_.push_back(Call{1, reinterpret_cast<std::uintptr_t>(g->members.front()), id,
                                 static_cast<Id>(g->kind)});
    }
  }
  live_.erase(id);
  used_.erase(id);
  if (recent_freed_.size() < 16) {
    recent_freed_.push_back(id);
  } else {
    recent_freed_[rnd(16)] = id;
  }
  --s.count;
  --st_.live_ids;
  ++st_.releases;
  if (s.dying) {
    --s.quota;
    --quota_reserved_;
    if (s.count == 0) {
      quota_reserved_ -= s.quota;
      --st_.dying_sets;
      by_token_.erase(s.token);
      note_destroyed(e.set);
      sets_.erase(e.set);
    }
  }
}

void Diff::m_free_live(Id id) {
  MId& e = live_.at(id);
  e.state = IdState::free_pending;
  ++st_.free_pending_ids;
  emit(EventType::free, id);
  if (--e.refs == 0) m_release(id);
}

bool Diff::m_drop_ref(Id id) {
  MId& e = live_.at(id);
  if (e.refs > 1) {
    --e.refs;
    return false;
  }
  if (e.state == IdState::active) {
    m_free_live(id);
    return true;
  }
  e.refs = 0;
  m_release(id);
  return true;
}

MGroup* Diff::group_of(const Member* m, std::size_t* pos) {
  for (MGroup* g : groups_) {
    for (std::size_t i = 0; i < g->members.size(); ++i) {
      if (g->members[i] == m) {
        if (pos != nullptr) *pos = i;
        return g;
      }
    }
  }
  return nullptr;
}

// ---- operations
// ----------------------------------------------------------------------------------

void Diff::op_alloc() {
  const SetId set = pick_set();
  auto [min, max] = pick_range();
  void* priv = chance(10) ? nullptr : reinterpret_cast<void*>(std::uintptr_t{++priv_counter_ << 4});
  begin("alloc(set %" PRIu64 ", [%u, %u])", set.raw(), min, max);
  Result<Id> want = fail(Errc::invalid_argument);
  auto sit = sets_.find(set.raw());
  if (min > max) {
    want = fail(Errc::invalid_argument);
  } else if (sit == sets_.end()) {
    want = fail(set.valid() && !set.is_any() ? Errc::not_found : Errc::invalid_argument);
  } else if (max > max_id_) {
    want = fail(Errc::out_of_range);
  } else if (sit->second.dying) {
    want = fail(Errc::busy);
  } else if (sit->second.count >= sit->second.quota) {
    ++sit->second.quota_refusals;
    ++st_.quota_refusals;
    want = fail(Errc::quota_exceeded);
  } else {
    MGroup* g = groups_.empty() ? nullptr : groups_.front();
    Id id = kInvalidId;
    if (g == nullptr) {
      if (cfg_.policy == AllocPolicy::cyclic && cursor_ > min && cursor_ <= max) {
        id = model_find_free(cursor_, max);
        if (id == kInvalidId) id = model_find_free(min, cursor_ - 1);
      } else {
        id = model_find_free(min, max);
      }
      if (id == kInvalidId) {
        ++st_.exhausted_refusals;
        want = fail(Errc::exhausted);
      }
    } else {
      Member* m = g->members.front();
      auto [rc, x] = answer(g->kind, g_pool[g->kind], min, max);
      want_calls_.push_back(Call{0, reinterpret_cast<std::uintptr_t>(m), min, max});
      if (rc != 0) {
        want = fail(errc_of_rc(rc));
        if (want.error() == Errc::exhausted) ++st_.exhausted_refusals;
      } else {
        Errc bad{};
        if (x < min || x > max || x > max_id_) {
          bad = Errc::out_of_range;
        } else if (used_.count(x) != 0) {
          bad = Errc::exists;
        }
        if (bad != Errc{}) {
          ++st_.allocator_rejects;
          if (x != kInvalidId) {
            want_calls_.push_back(
                Call{1, reinterpret_cast<std::uintptr_t>(m), x, static_cast<Id>(g->kind)});
          }
          want = fail(bad);
        } else {
          id = x;
        }
      }
    }
    {
      if (id != kInvalidId) {
        MSet& s = sit->second;
        live_[id] = MId{set.raw(), IdState::active, 1, 0, kInvalidId, priv, g ? g->slot : 0};
        used_.insert(id);
        s.members.insert(id);
        ++s.count;
        s.peak = std::max(s.peak, s.count);
        ++st_.live_ids;
        ++st_.allocs;
        if (g == nullptr) {
          ++default_live_;
        } else {
          ++g->live;
        }
        if (cfg_.policy == AllocPolicy::cyclic) cursor_ = id + 1;
        emit(EventType::alloc, id);
        want = id;
      }
    }
  }
  expect(__LINE__, space_->alloc(set, min, max, priv), want);
  expect_side_effects(__LINE__);
}

void Diff::op_free() {
  const Id id = pick_id();
  SetId set = pick_set();
  if (chance(60)) {
    auto it = live_.find(id);
    if (it != live_.end()) set = SetId::from_raw(it->second.set);
  }
  begin("free(set %" PRIu64 ", %u)", set.raw(), id);
  Result<void> want;
  if (set.is_any()) {
    want = fail(Errc::invalid_argument);
  } else if (auto e = model_live(set, id); !e) {
    want = fail(e.error());
  } else if ((*e)->state == IdState::free_pending) {
    want = fail(Errc::busy);
  } else {
    m_free_live(id);
  }
  expect(__LINE__, space_->free(set, id), want);
  expect_side_effects(__LINE__);
}

void Diff::op_get() {
  const Id id = pick_id();
  SetId set = chance(30) ? SetId::any() : pick_set();
  if (chance(50)) {
    auto it = live_.find(id);
    if (it != live_.end()) set = SetId::from_raw(it->second.set);
  }
  begin("get(set %" PRIu64 ", %u)", set.raw(), id);
  Result<void> want;
  if (auto e = model_live(set, id); !e) {
    want = fail(e.error());
  } else if ((*e)->state == IdState::free_pending) {
    want = fail(Errc::busy);
  } else {
    ++(*e)->refs;
  }
  expect(__LINE__, space_->get(set, id), want);
  expect_side_effects(__LINE__);
}

void Diff::op_put() {
  const Id id = pick_id();
  SetId set = chance(30) ? SetId::any() : pick_set();
  if (chance(50)) {
    auto it = live_.find(id);
    if (it != live_.end()) set = SetId::from_raw(it->second.set);
  }
  begin("put(set %" PRIu64 ", %u)", set.raw(), id);
  Result<bool> want = false;
  if (auto e = model_live(set, id); !e) {
    want = fail(e.error());
  } else {
    want = m_drop_ref(id);
  }
  expect(__LINE__, space_->put(set, id), want);
  expect_side_effects(__LINE__);
}

void Diff::op_bind() {
  const Id id = pick_id();
  SetId set = pick_set();
  if (chance(70)) {
    auto it = live_.find(id);
    if (it != live_.end()) set = SetId::from_raw(it->second.set);
  }
  Id spid = kInvalidId;
  const unsigned r = static_cast<unsigned>(rnd(100));
  if (r < 40) {
    spid = static_cast<Id>(rnd(40));  // small guest PASIDs: collisions within a set
  } else if (r < 50) {
    spid = max_id_ == kInvalidId ? 0xFFFFFFFEu : max_id_;
  } else if (r < 55 && max_id_ != kInvalidId) {
    spid = max_id_ + 1;
  } else if (r < 65) {
    auto it = live_.find(id);
    if (it != live_.end() && it->second.binds > 0 && it->second.spid != kInvalidId) {
      spid = it->second.spid;  // the same spid again
    }
  }
  begin("bind(set %" PRIu64 ", %u, spid %u)", set.raw(), id, spid);
  Result<void> want;
  if (set.is_any()) {
    want = fail(Errc::invalid_argument);
  } else if (spid != kInvalidId && spid > max_id_) {
    want = fail(Errc::out_of_range);
  } else if (auto e = model_live(set, id); !e) {
    want = fail(e.error());
  } else if ((*e)->state == IdState::free_pending) {
    want = fail(Errc::busy);
  } else {
    MId& m = **e;
    MSet& s = sets_.at(m.set);
    const Id cur = m.binds > 0 ? m.spid : kInvalidId;
    auto owner = s.by_spid.find(spid);
    if (spid != kInvalidId && owner != s.by_spid.end() && owner->second != id) {
      want = fail(Errc::exists);
    } else if (spid != kInvalidId && cur != kInvalidId && cur != spid) {
      want = fail(Errc::exists);
    } else {
      if (m.binds == 0) {
        ++s.bound;
        m.spid = kInvalidId;
      }
      if (spid != kInvalidId && cur == kInvalidId) {
        s.by_spid[spid] = id;
        m.spid = spid;
      }
      ++m.binds;
      ++m.refs;
      emit(EventType::bind, id);
    }
  }
  expect(__LINE__, space_->bind(set, id, spid), want);
  expect_side_effects(__LINE__);
}

void Diff::op_unbind() {
  const Id id = pick_id();
  SetId set = pick_set();
  if (chance(70)) {
    auto it = live_.find(id);
    if (it != live_.end()) set = SetId::from_raw(it->second.set);
  }
  begin("unbind(set %" PRIu64 ", %u)", set.raw(), id);
  Result<void> want;
  if (set.is_any()) {
    want = fail(Errc::invalid_argument);
  } else if (auto e = model_live(set, id); !e) {
    want = fail(e.error());
  } else if ((*e)->binds == 0) {
    want = fail(Errc::not_found);
  } else {
    MId& m = **e;
    MSet& s = sets_.at(m.set);
    emit(EventType::unbind, id);
    if (--m.binds == 0) {
      if (m.spid != kInvalidId) s.by_spid.erase(m.spid);
      m.spid = kInvalidId;
      --s.bound;
    }
    m_drop_ref(id);
  }
  expect(__LINE__, space_->unbind(set, id), want);
  expect_side_effects(__LINE__);
}

void Diff::op_find() {
  const Id id = pick_id();
  SetId set = pick_set();
  const unsigned r = static_cast<unsigned>(rnd(100));
  auto it = live_.find(id);
  if (r < 40 && it != live_.end()) set = SetId::from_raw(it->second.set);  // owner
  if (r >= 40 && r < 60) set = SetId::any();
  const bool use_validator = chance(30);
  ValidatorCtx v;
  v.verdict = chance(70);
  begin("find(set %" PRIu64 ", %u, validator %d/%d)", set.raw(), id, use_validator, v.verdict);
  Result<void*> want = nullptr;
  bool validator_runs = false;
  if (id > max_id_) {
    want = fail(Errc::out_of_range);
  } else if (it == live_.end() || it->second.state != IdState::active) {
    want = fail(Errc::not_found);
  } else if (!set.is_any() && set.raw() != it->second.set) {
    want = fail(Errc::not_owner);
  } else if (use_validator) {
    validator_runs = true;
    want = v.verdict ? Result<void*>(it->second.priv) : fail(Errc::not_found);
  } else {
    want = it->second.priv;
  }
  expect(__LINE__, space_->find(set, id, use_validator ? validate : nullptr, &v), want);
  if (v.calls != (validator_runs ? 1 : 0)) diverge(__LINE__, "validator call count");
  if (validator_runs && v.seen != it->second.priv) diverge(__LINE__, "validator saw other data");
}

void Diff::op_find_by_spid() {
  SetId set = pick_set();
  Id spid = static_cast<Id>(rnd(40));
  if (chance(20)) spid = max_id_ == kInvalidId ? 0xFFFFFFFEu : max_id_;
  begin("find_by_spid(set %" PRIu64 ", %u)", set.raw(), spid);
  Result<Id> want = fail(Errc::not_found);
  auto sit = sets_.find(set.raw());
  if (sit != sets_.end()) {
    auto b = sit->second.by_spid.find(spid);
    if (b != sit->second.by_spid.end()) want = b->second;
  }
  expect(__LINE__, space_->find_by_spid(set, spid), want);
}

void Diff::op_query() {
  const Id id = pick_id();
  SetId set = chance(50) ? SetId::any() : pick_set();
  begin("query(set %" PRIu64 ", %u)", set.raw(), id);
  auto got = space_->query(set, id);
  auto e = model_live(set, id);
  if (!e) {
    expect(__LINE__, got.has_value() ? Result<void>() : Result<void>(fail(got.error())),
           Result<void>(fail(e.error())));
    return;
  }
  if (!got) {
    diverge(__LINE__, std::string("query failed: ") + name_of(got.error()));
    return;
  }
  const MId& m = **e;
  if (got->id != id || got->state != m.state || got->refs != m.refs || got->binds != m.binds ||
      got->spid != (m.binds > 0 ? m.spid : kInvalidId)) {
    diverge(__LINE__, "query info differs");
  }
}

void Diff::op_set_data() {
  const Id id = pick_id();
  void* priv = reinterpret_cast<void*>(std::uintptr_t{++priv_counter_ << 4});
  begin("set_data(%u)", id);
  Result<void> want;
  if (auto e = model_live(SetId::any(), id); !e) {
    want = fail(e.error());
  } else {
    (*e)->priv = priv;
  }
  expect(__LINE__, space_->set_data(id, priv), want);
  expect_side_effects(__LINE__);
}

void Diff::op_create_set() {
  const std::uint64_t token = rnd(10);
  std::uint32_t quota = 0;
  const unsigned r = static_cast<unsigned>(rnd(100));
  const std::uint64_t free_cap = capacity_ - quota_reserved_;
  if (r < 5) {
    quota = 0;
  } else if (r < 12) {
    quota = 0xFFFFFFFFu;
  } else if (r < 20) {
    quota = static_cast<std::uint32_t>(std::min<std::uint64_t>(free_cap + 1, 0xFFFFFFFFu));
  } else {
    const std::uint64_t typical = std::max<std::uint64_t>(1, capacity_ / 4);
    quota = static_cast<std::uint32_t>(std::min<std::uint64_t>(rnd_in(1, typical), 0xFFFFFFFFu));
  }
  begin("create_set(token %" PRIu64 ", quota %u)", token, quota);
  Result<SetId> want = fail(Errc::invalid_argument);
  auto tok = by_token_.find(token);
  if (quota == 0) {
    want = fail(Errc::invalid_argument);
  } else if (tok != by_token_.end()) {
    want = fail(sets_.at(tok->second).dying ? Errc::busy : Errc::exists);
  } else if (quota > free_cap) {
    want = fail(Errc::exhausted);
  } else {
    // The handle's value is the space's choice: it must be new (no live set has it, no recently
    // destroyed set had it) and usable.
    Result<SetId> got = space_->create_set(token, quota);
    if (!got) {
      diverge(__LINE__, "create_set failed: " + show(got));
      return;
    }
    const std::uint64_t raw = got->raw();
    if (!got->valid() || got->is_any() || sets_.count(raw) != 0 ||
        std::find(destroyed_.begin(), destroyed_.end(), raw) != destroyed_.end()) {
      diverge(__LINE__, "create_set returned a used handle " + std::to_string(raw));
      return;
    }
    MSet s;
    s.token = token;
    s.quota = quota;
    sets_[raw] = s;
    by_token_[token] = raw;
    quota_reserved_ += quota;
    expect_side_effects(__LINE__);
    return;
  }
  expect(__LINE__, space_->create_set(token, quota), want);
  expect_side_effects(__LINE__);
}

void Diff::op_destroy_set() {
  const SetId set = pick_set();
  begin("destroy_set(%" PRIu64 ")", set.raw());
  Result<bool> want = fail(Errc::not_found);
  auto sit = sets_.find(set.raw());
  if (sit == sets_.end()) {
    want = fail(Errc::not_found);
  } else if (sit->second.dying) {
    want = fail(Errc::busy);
  } else if (sit->second.count == 0) {
    quota_reserved_ -= sit->second.quota;
    by_token_.erase(sit->second.token);
    note_destroyed(set.raw());
    sets_.erase(sit);
    want = true;
  } else {
    MSet& s = sit->second;
    s.dying = true;
    ++st_.dying_sets;
    quota_reserved_ -= s.quota - s.count;
    s.quota = s.count;
    const std::vector<Id> members(s.members.begin(), s.members.end());
    for (Id id : members) {
      if (live_.at(id).state == IdState::active) m_free_live(id);  // may erase s
    }
    want = sets_.count(set.raw()) == 0;
  }
  expect(__LINE__, space_->destroy_set(set), want);
  expect_side_effects(__LINE__);
}

void Diff::op_set_quota() {
  const SetId set = pick_set();
  auto sit = sets_.find(set.raw());
  std::uint32_t quota = static_cast<std::uint32_t>(rnd(capacity_ / 3 + 2));
  const unsigned r = static_cast<unsigned>(rnd(100));
  if (r < 10) {
    quota = 0xFFFFFFFFu;
  } else if (r < 25 && sit != sets_.end()) {
    quota = sit->second.count == 0 ? 0 : sit->second.count - 1;  // below the count
  } else if (r < 40 && sit != sets_.end()) {
    quota = sit->second.count;
  } else if (r < 50 && sit != sets_.end()) {
    quota = static_cast<std::uint32_t>(std::min<std::uint64_t>(
        sit->second.quota + (capacity_ - quota_reserved_) + rnd(2), 0xFFFFFFFFu));
  }
  begin("set_quota(%" PRIu64 ", %u)", set.raw(), quota);
  Result<void> want;
  if (sit == sets_.end()) {
    want = fail(Errc::not_found);
  } else if (sit->second.dying) {
    want = fail(Errc::busy);
  } else if (quota == 0 || quota < sit->second.count) {
    want = fail(Errc::invalid_argument);
  } else if (quota > sit->second.quota && quota - sit->second.quota > capacity_ - quota_reserved_) {
    want = fail(Errc::exhausted);
  } else {
    quota_reserved_ = quota_reserved_ - sit->second.quota + quota;
    sit->second.quota = quota;
  }
  expect(__LINE__, space_->set_quota(set, quota), want);
  expect_side_effects(__LINE__);
}

void Diff::op_register() {
  const AllocatorOps* ops = nullptr;
  Member* m = nullptr;
  const unsigned r = static_cast<unsigned>(rnd(100));
  if (r < 3) {
    ops = nullptr;
  } else if (r < 6) {
    ops = &bad_ops_;
  } else {
    // Favour the well-behaved allocators; the others come up too.
    static constexpr int kPick[] = {kGoodA, kGoodA, kGoodA, kGoodB, kGoodB, kBuggy, kDup, kErr};
    m = &members_[kPick[rnd(8)]][rnd(kMembersPerKind)];
    ops = &m->ops;
  }
  begin("register_allocator(kind %d, member %p)", m ? m->kind : -1, static_cast<void*>(m));
  Result<void> want;
  if (m == nullptr) {
    want = fail(Errc::invalid_argument);
  } else if (group_of(m, nullptr) != nullptr) {
    want = fail(Errc::exists);
  } else if (groups_.empty() && default_live_ != 0) {
    want = fail(Errc::try_again);
  } else {
    MGroup* join = nullptr;
    for (MGroup* g : groups_) {
      if (g->kind == m->kind) join = g;
    }
    if (join != nullptr) {
      join->members.push_back(m);
    } else {
      int slot = 0;
      for (int i = 1; i <= 254; ++i) {
        if (slots_[i] == nullptr) {
          slot = i;
          break;
        }
      }
      if (slot == 0) {
        want = fail(Errc::exhausted);
      } else {
        group_store_.push_back(std::make_unique<MGroup>());
        MGroup* g = group_store_.back().get();
        g->kind = m->kind;
        g->members.push_back(m);
        g->slot = slot;
        slots_[slot] = g;
        groups_.push_back(g);
      }
    }
  }
  expect(__LINE__, space_->register_allocator(ops), want);
  expect_side_effects(__LINE__);
}

void Diff::op_unregister() {
  Member* m = &members_[rnd(kKinds)][rnd(kMembersPerKind)];
  // Mostly a registered one.
  if (chance(80) && !groups_.empty()) {
    MGroup* g = groups_[rnd(groups_.size())];
    m = g->members[rnd(g->members.size())];
  }
  begin("unregister_allocator(kind %d, member %p)", m->kind, static_cast<void*>(m));
  std::size_t pos = 0;
  MGroup* g = group_of(m, &pos);
  if (g != nullptr) {
    if (g->members.size() > 1) {
      g->members.erase(g->members.begin() + static_cast<std::ptrdiff_t>(pos));
    } else {
      groups_.erase(std::find(groups_.begin(), groups_.end(), g));
      if (g->live != 0) {
        g->removed = true;
        g->members.clear();
        st_.orphaned_ids += g->live;
        st_.orphaned_total += g->live;
      } else {
        slots_[g->slot] = nullptr;
      }
    }
  }
  space_->unregister_allocator(&m->ops);
  expect_side_effects(__LINE__);
}

void Diff::op_trim() {
  begin("trim()");
  space_->trim();
}

void Diff::full_check() {
  begin("full_check");
  const SpaceStats s = space_->stats();
  auto cmp = [&](const char* what, std::uint64_t got, std::uint64_t want) {
    if (got != want) {
      diverge(__LINE__, std::string("stats.") + what + " = " + std::to_string(got) + ", want " +
                            std::to_string(want));
    }
  };
  cmp("live_ids", s.live_ids, st_.live_ids);
  cmp("free_pending_ids", s.free_pending_ids, st_.free_pending_ids);
  cmp("reserved_ids", s.reserved_ids, reserved_count_);
  cmp("capacity", s.capacity, capacity_);
  cmp("quota_reserved", s.quota_reserved, quota_reserved_);
  cmp("sets", s.sets, sets_.size());
  cmp("dying_sets", s.dying_sets, st_.dying_sets);
  cmp("orphaned_ids", s.orphaned_ids, st_.orphaned_ids);
  cmp("orphaned_total", s.orphaned_total, st_.orphaned_total);
  cmp("allocs", s.allocs, st_.allocs);
  cmp("releases", s.releases, st_.releases);
  cmp("quota_refusals", s.quota_refusals, st_.quota_refusals);
  cmp("exhausted_refusals", s.exhausted_refusals, st_.exhausted_refusals);
  cmp("allocator_rejects", s.allocator_rejects, st_.allocator_rejects);
  cmp("allocator_groups", s.allocator_groups, groups_.size());
  cmp("custom_allocator_active", s.custom_allocator_active, !groups_.empty());
  if (failed_) return;

  std::vector<SetInfo> list = space_->list_sets().value();
  std::sort(list.begin(), list.end(),
            [](const SetInfo& a, const SetInfo& b) { return a.set.raw() < b.set.raw(); });
  if (list.size() != sets_.size()) {
    diverge(__LINE__, "list_sets size");
    return;
  }
  std::size_t i = 0;
  for (const auto& [serial, ms] : sets_) {
    const SetInfo& info = list[i++];
    auto one = space_->set_info(SetId::from_raw(serial));
    if (!one || one->set != info.set || one->count != info.count || one->quota != info.quota) {
      diverge(__LINE__, "set_info differs from list_sets for set " + std::to_string(serial));
      return;
    }
    if (info.set.raw() != serial || info.owner_token != ms.token || info.quota != ms.quota ||
        info.count != ms.count || info.bound != ms.bound || info.peak != ms.peak ||
        info.quota_refusals != ms.quota_refusals ||
        info.state != (ms.dying ? SetState::dying : SetState::alive)) {
      diverge(__LINE__, "set info differs for set " + std::to_string(serial) + ": count " +
                            std::to_string(info.count) + "/" + std::to_string(ms.count) +
                            " quota " + std::to_string(info.quota) + "/" +
                            std::to_string(ms.quota) + " bound " + std::to_string(info.bound) +
                            "/" + std::to_string(ms.bound) + " peak " + std::to_string(info.peak) +
                            "/" + std::to_string(ms.peak));
      return;
    }
    auto found = space_->find_set(ms.token);
    if (!found || found->raw() != serial) {
      diverge(__LINE__, "find_set");
      return;
    }
    auto ids = space_->list_ids(SetId::from_raw(serial));
    if (!ids || ids->size() != ms.members.size()) {
      diverge(__LINE__, "list_ids size for set " + std::to_string(serial));
      return;
    }
    std::size_t j = 0;
    for (Id id : ms.members) {
      const IdInfo& ii = (*ids)[j++];
      const MId& m = live_.at(id);
      if (ii.id != id || ii.state != m.state || ii.refs != m.refs || ii.binds != m.binds ||
          ii.spid != (m.binds > 0 ? m.spid : kInvalidId)) {
        diverge(__LINE__, "list_ids entry differs for id " + std::to_string(id));
        return;
      }
      auto f = space_->find(SetId::any(), id);
      const Result<void*> want =
          m.state == IdState::active ? Result<void*>(m.priv) : Result<void*>(fail(Errc::not_found));
      expect(__LINE__, f, want);
    }
    for (const auto& [spid, id] : ms.by_spid) {
      expect(__LINE__, space_->find_by_spid(SetId::from_raw(serial), spid), Result<Id>(id));
    }
  }
  for (std::uint64_t token = 0; token < 10; ++token) {
    if (by_token_.count(token) == 0) {
      expect(__LINE__, space_->find_set(token), Result<SetId>(fail(Errc::not_found)));
    }
  }
  for (std::uint64_t stale : stale_sets_) {
    expect(__LINE__, space_->set_info(SetId::from_raw(stale)).map([](const SetInfo&) {}),
           Result<void>(fail(Errc::not_found)));
    expect(__LINE__, space_->list_ids(SetId::from_raw(stale)).map([](const auto&) {}),
           Result<void>(fail(Errc::not_found)));
  }
}

bool Diff::run(std::uint64_t ops) {
  SpaceConfig sc;
  sc.width_bits = cfg_.width;
  sc.reserved = cfg_.reserved;
  sc.capacity = cfg_.capacity;
  sc.policy = cfg_.policy;
  auto created = Space::create(sc);
  if (!created) {
    ADD_FAILURE() << cfg_.name << ": create failed: " << to_string(created.error());
    return false;
  }
  space_ = std::move(*created);
  max_id_ = space_->max_id();
  windows_ = cfg_.windows;
  if (windows_.empty()) windows_.push_back(IdRange{0, max_id_});
  std::set<Id> reserved;
  for (const IdRange& r : cfg_.reserved) {
    for (std::uint64_t x = r.first; x <= r.last; ++x) reserved.insert(static_cast<Id>(x));
  }
  if (cfg_.width == 32) reserved.insert(kInvalidId);
  reserved_ids_.assign(reserved.begin(), reserved.end());
  reserved_count_ = reserved.size();
  if (reserved_ids_.empty()) reserved_ids_.push_back(max_id_);  // only used as "some ID"
  used_ = reserved;
  capacity_ = cfg_.capacity != 0 ? cfg_.capacity : std::uint64_t{max_id_} + 1 - reserved.size();

  for (int k = 0; k < kKinds; ++k) {
    g_pool[k] = Pool{};
    const IdRange& top = windows_.front();
    g_pool[k].limit = top.last;
    g_pool[k].base = top.last >= 3 ? top.last - 3 : 0;
    for (int i = 0; i < kMembersPerKind; ++i) {
      members_[k][i].kind = k;
      members_[k][i].ops = AllocatorOps{kAllocFns[k], kFreeFns[k], &members_[k][i]};
    }
  }
  bad_ops_ = AllocatorOps{nullptr, kFreeFns[0], nullptr};

  // Notifiers: one global (every event) and one for a token that comes and goes.
  if (!space_->register_global_notifier(on_event, reinterpret_cast<void*>(std::uintptr_t{0})) ||
      !space_->register_set_notifier(kWatchedToken, on_event,
                                     reinterpret_cast<void*>(std::uintptr_t{1}), kWatchedMask)) {
    ADD_FAILURE() << "notifier registration failed";
    return false;
  }

  // Allocator churn is bursty: long stretches on one allocator, then a switch.
  for (step_ = 0; step_ < ops && !failed_; ++step_) {
    const unsigned r = static_cast<unsigned>(rnd(1000));
    if (r < 260) {
      op_alloc();
    } else if (r < 380) {
      op_free();
    } else if (r < 430) {
      op_get();
    } else if (r < 500) {
      op_put();
    } else if (r < 570) {
      op_bind();
    } else if (r < 630) {
      op_unbind();
    } else if (r < 740) {
      op_find();
    } else if (r < 770) {
      op_find_by_spid();
    } else if (r < 800) {
      op_query();
    } else if (r < 803) {
      op_set_data();
    } else if (r < 850) {
      op_create_set();
    } else if (r < 880) {
      op_destroy_set();
    } else if (r < 920) {
      op_set_quota();
    } else if (r < 935) {
      op_register();
    } else if (r < 950) {
      op_unregister();
    } else if (r < 951) {
      op_trim();
    } else {
      op_find();
    }
    // After every step that may change the space (find, find_by_spid and query are const).
    const bool read_only = (r >= 630 && r < 800) || r >= 951;
    if (!failed_ && !read_only) {
      if (auto inv = space_->check_invariants(); !inv) {
        std::string detail;
        for (const auto& [id, m] : live_) {
          if (m.refs < m.binds || m.refs == 0) {
            detail += " id " + std::to_string(id) + " refs " + std::to_string(m.refs) + " binds " +
                      std::to_string(m.binds) + ";";
          }
        }
        diverge(__LINE__, "check_invariants failed; suspicious model entries:" + detail);
      }
    }
    if (!failed_ && step_ % 512 == 0) full_check();
  }
  if (!failed_) full_check();
  const SpaceStats fin = space_->stats();
  std::printf("  %-12s seed %-6" PRIu64 " %8" PRIu64 " ops: allocs %" PRIu64 " releases %" PRIu64
              " quota_refusals %" PRIu64 " exhausted %" PRIu64 " allocator_rejects %" PRIu64
              " orphaned_total %" PRIu64 "\n",
              cfg_.name, seed_, step_, fin.allocs, fin.releases, fin.quota_refusals,
              fin.exhausted_refusals, fin.allocator_rejects, fin.orphaned_total);
  // Unregister everything so that nothing calls into freed test state.
  for (int k = 0; k < kKinds; ++k) {
    for (int i = 0; i < kMembersPerKind; ++i) space_->unregister_allocator(&members_[k][i].ops);
  }
  space_.reset();
  if (failed_) {
    ADD_FAILURE() << msg_ << "\n  reproduce: IOASID_DIFF_SEED=" << seed_
                  << " IOASID_DIFF_CONFIG=<index of " << cfg_.name << ">";
    return false;
  }
  return true;
}

TEST(SpaceDifferential, AgainstModel) {
  const std::vector<Config> all = configs();
  const std::uint64_t total = env_u64("IOASID_DIFF_OPS", kDefaultOps);
  const std::uint64_t rounds = env_u64("IOASID_DIFF_ROUNDS", 1);
  const std::uint64_t only = env_u64("IOASID_DIFF_CONFIG", ~std::uint64_t{0});
  const std::uint64_t seed_override = env_u64("IOASID_DIFF_SEED", 0);
  const std::uint64_t per_config = std::max<std::uint64_t>(1, total / all.size());
  for (std::size_t c = 0; c < all.size(); ++c) {
    if (only != ~std::uint64_t{0} && only != c) continue;
    for (std::uint64_t round = 0; round < rounds; ++round) {
      const std::uint64_t seed = (seed_override != 0 ? seed_override : all[c].seed) + round * 1000;
      Diff d(all[c], seed);
      if (!d.run(per_config)) {
        std::fprintf(stderr, "config index %zu (%s) seed %" PRIu64 " failed\n", c, all[c].name,
                     seed);
        return;
      }
    }
  }
}

}  // namespace
}  // namespace ioasid
