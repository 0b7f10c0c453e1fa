// SPDX-License-Identifier: Apache-2.0
// rcu.hpp: the read-side critical sections that make Space::find() lock-free, and the grace
// periods that let writers wait for them (set_data, trim).
//
// A minimal user-space RCU in the style of liburcu's "memb" flavour, written for this library
// because liburcu's library-friendly flavour (urcu-bp, no thread registration) costs ~23 ns per
// read section through its exported functions on the target machine, ten times a table load
// (bench/README.md); its inline fast path requires _LGPL_SOURCE.
//
// Readers: read_lock() stores the current epoch in the thread's own slot (no shared write; slots
// are cache-line sized), read_unlock() stores 0 with release order. A thread claims its slot on
// its first read section with a compare-and-swap (no lock: a new thread's first find() never waits
// for a writer) and gives it back when it exits. Nesting is allowed.
// Writers: synchronize() advances the epoch, issues membarrier(PRIVATE_EXPEDITED) so that every
// running reader's slot store is visible (readers then need only a compiler barrier), and waits
// for every slot that holds an older epoch. Without membarrier (old kernel, seccomp) readers fall
// back to a full fence.
//
// Context: read sections must not block on a writer (no synchronize() inside one).
#pragma once

#include <atomic>
#include <cstdint>

namespace ioasid::internal::rcu {

struct alignas(64) ReaderSlot {
  std::atomic<std::uint64_t> epoch{0};  // 0: quiescent; else the epoch the section began in
  std::uint32_t nesting = 0;            // touched by the owning thread only
  std::atomic<bool> in_use{false};
  ReaderSlot* next = nullptr;  // registry list, immutable once linked
};

extern std::atomic<std::uint64_t> g_epoch;
extern bool g_reader_fence;  // true when membarrier is unavailable
// __thread, not thread_local: no dynamic initialization, so no TLS wrapper call on each access.
extern __thread ReaderSlot* tls_slot __attribute__((tls_model("initial-exec")));

// Slow path, once per thread: gives the calling thread a slot (and arranges its release at thread
// exit). Lock-free; allocates only past 1024 threads alive at once.
ReaderSlot* register_thread() noexcept;

inline void read_lock() noexcept {
  ReaderSlot* slot = tls_slot;
  if (__builtin_expect(slot == nullptr, 0)) slot = register_thread();
  if (slot->nesting++ == 0) {
    slot->epoch.store(g_epoch.load(std::memory_order_relaxed), std::memory_order_relaxed);
    if (__builtin_expect(g_reader_fence, 0)) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }
}

inline void read_unlock() noexcept {
  ReaderSlot* slot = tls_slot;
  if (--slot->nesting == 0) slot->epoch.store(0, std::memory_order_release);
}

// Waits until every read section that began before the call has ended.
void synchronize() noexcept;

// True when the calling thread is inside a read section.
inline bool in_read_section() noexcept { return tls_slot != nullptr && tls_slot->nesting > 0; }

class ReadGuard {
 public:
  ReadGuard() noexcept { read_lock(); }
  ~ReadGuard() { read_unlock(); }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;
};

}  // namespace ioasid::internal::rcu
