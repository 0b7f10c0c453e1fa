// SPDX-License-Identifier: Apache-2.0
// rcu.cc: reader registry and grace periods for internal/rcu.hpp.
#include "core/internal/rcu.hpp"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <mutex>
#include <new>

namespace ioasid::internal::rcu {

std::atomic<std::uint64_t> g_epoch{1};
bool g_reader_fence = true;
__thread ReaderSlot* tls_slot = nullptr;

namespace {

std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}
std::atomic<ReaderSlot*> g_registry{nullptr};  // singly linked, push-front, never shrinks

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

// Decided once, before the first slot is handed out: readers rely on it from then on.
bool init_membarrier() {
  // g_reader_fence is written here once (under the registry mutex, before any slot exists):
  // readers load it without a lock, so later calls must not store to it again.
  static const bool ok = [] {
    long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    const bool have = cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                      membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    g_reader_fence = !have;
    return have;
  }();
  return ok;
}

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
constexpr int kStaticSlots = 1024;
ReaderSlot g_static_slots[kStaticSlots];
int g_static_next = 0;  // under registry_mutex()

}  // namespace

ReaderSlot* register_thread() noexcept {
  for (unsigned attempt = 0;; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(registry_mutex());
      init_membarrier();
      ReaderSlot* slot = nullptr;
      for (ReaderSlot* s = g_registry.load(std::memory_order_acquire); s != nullptr; s = s->next) {
        if (!s->in_use.load(std::memory_order_acquire)) {  // pairs with ~SlotReleaser
          slot = s;
          break;
        }
      }
      if (slot == nullptr) {
        slot = g_static_next < kStaticSlots ? &g_static_slots[g_static_next++]
                                            : new (std::nothrow) ReaderSlot;
        if (slot != nullptr) {
          slot->next = g_registry.load(std::memory_order_relaxed);
          g_registry.store(slot, std::memory_order_release);
        }
      }
      if (slot != nullptr) {
        slot->in_use.store(true, std::memory_order_relaxed);
        slot->nesting = 0;
        slot->epoch.store(0, std::memory_order_relaxed);
        tls_slot = slot;
        t_releaser.slot = slot;
        return slot;
      }
    }
    if (attempt < 100) {
      sched_yield();
    } else {
      struct timespec ts = {0, 1000 * 1000};
      nanosleep(&ts, nullptr);
    }
  }
}

void synchronize() noexcept {
  std::lock_guard<std::mutex> lock(registry_mutex());
  init_membarrier();
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
