// SPDX-License-Identifier: Apache-2.0
// rcu.cc: reader registry and grace periods for internal/rcu.hpp.
//
// Nothing here takes a lock: a thread claims its reader slot with one compare-and-swap (a free
// slot of the registry, else a fresh one pushed onto it), and grace periods only read the slots,
// so a reader never waits for a writer, not even on its first read section.
#include "core/internal/rcu.hpp"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <new>

namespace ioasid::internal::rcu {

std::atomic<std::uint64_t> g_epoch{1};
bool g_reader_fence = true;
__thread ReaderSlot* tls_slot = nullptr;

namespace {

std::atomic<ReaderSlot*> g_registry{nullptr};  // singly linked, push-front, never shrinks

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

// Whether readers may rely on the writers' membarrier is decided once, while the process is still
// single-threaded: by the load-time constructor below, before main() (or before dlopen() returns).
// g_reader_fence is a plain bool that readers load without synchronization, so it is written only
// here. A read section that runs from an earlier static constructor than ours finds the decision
// not made yet and makes it itself; that too happens before any other thread exists.
bool g_membarrier_decided = false;

void decide_membarrier() noexcept {
  if (g_membarrier_decided) return;
  const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  const bool have = cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
  g_reader_fence = !have;
  g_membarrier_decided = true;
}

__attribute__((constructor(101))) void decide_membarrier_at_load() { decide_membarrier(); }

void writer_barrier() {
  if (g_reader_fence || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// Gives the slot back when the thread exits.
struct SlotReleaser {
  ReaderSlot* slot = nullptr;
  ~SlotReleaser() {
    if (slot == nullptr) return;
    slot->nesting = 0;
    slot->epoch.store(0, std::memory_order_release);
    slot->in_use.store(false, std::memory_order_release);
    tls_slot = nullptr;
  }
};
thread_local SlotReleaser t_releaser;

// Slots come from a static pool first (zero-filled .bss: no page is touched until used), then
// from the heap. When neither has one (thousands of threads and no memory), the thread waits for
// another thread to exit rather than failing: find() has no error for "no memory".
constexpr unsigned kStaticSlots = 1024;
ReaderSlot g_static_slots[kStaticSlots];
std::atomic<unsigned> g_static_next{0};  // may run past kStaticSlots: then the pool is empty

// A slot of the registry that no thread holds, claimed for the caller; nullptr if none.
ReaderSlot* claim_released_slot() noexcept {
  for (ReaderSlot* s = g_registry.load(std::memory_order_acquire); s != nullptr; s = s->next) {
    bool expected = false;
    // acquire pairs with ~SlotReleaser's release: the previous owner is done with the slot.
    if (!s->in_use.load(std::memory_order_relaxed) &&
        s->in_use.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
      return s;
    }
  }
  return nullptr;
}

// A slot no thread has used yet, already marked in use and linked into the registry.
ReaderSlot* new_slot() noexcept {
  ReaderSlot* slot = nullptr;
  if (g_static_next.load(std::memory_order_relaxed) < kStaticSlots) {
    const unsigned i = g_static_next.fetch_add(1, std::memory_order_relaxed);
    if (i < kStaticSlots) slot = &g_static_slots[i];
  }
  if (slot == nullptr) slot = new (std::nothrow) ReaderSlot;
  if (slot == nullptr) return nullptr;
  slot->in_use.store(true, std::memory_order_relaxed);
  // Push-front. The list never shrinks, so a slot is never unlinked and there is no ABA: a failed
  // CAS only means another thread pushed first.
  ReaderSlot* head = g_registry.load(std::memory_order_relaxed);
  do {
    slot->next = head;
  } while (!g_registry.compare_exchange_weak(head, slot, std::memory_order_release,
                                             std::memory_order_relaxed));
  return slot;
}

}  // namespace

ReaderSlot* register_thread() noexcept {
  decide_membarrier();  // a no-op once the load-time constructor has run
  for (unsigned attempt = 0;; ++attempt) {
    ReaderSlot* slot = claim_released_slot();
    if (slot == nullptr) slot = new_slot();
    if (slot != nullptr) {
      slot->nesting = 0;
      slot->epoch.store(0, std::memory_order_relaxed);
      tls_slot = slot;
      t_releaser.slot = slot;
      return slot;
    }
    if (attempt < 100) {
      sched_yield();
    } else {
      struct timespec ts = {0, 1000 * 1000};
      nanosleep(&ts, nullptr);
    }
  }
}

// Concurrent grace periods need no mutual exclusion: each waits for the sections that began before
// its own epoch increment. A slot pushed while the list is walked belongs to a thread whose read
// section starts after this writer's barrier, so it cannot hold what the writer retired.
void synchronize() noexcept {
  decide_membarrier();
  const std::uint64_t target = g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
  writer_barrier();
  for (ReaderSlot* s = g_registry.load(std::memory_order_acquire); s != nullptr; s = s->next) {
    for (unsigned spins = 0;; ++spins) {
      const std::uint64_t e = s->epoch.load(std::memory_order_acquire);
      if (e == 0 || e >= target) break;
      if (spins < 64) {
        cpu_relax();
      } else if (spins < 256) {
        sched_yield();
      } else {
        struct timespec ts = {0, 50 * 1000};
        nanosleep(&ts, nullptr);
      }
    }
  }
}

}  // namespace ioasid::internal::rcu
