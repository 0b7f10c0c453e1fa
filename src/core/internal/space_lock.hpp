// SPDX-License-Identifier: Apache-2.0
// space_lock.hpp: the writer lock of an IOASID space: a futex mutex (the three-state design of
// Drepper's "Futexes Are Tricky": one atomic instruction to lock, one to unlock, a futex wait only
// under contention) that also remembers which thread holds it, so that a callback running under
// the lock and calling back into the space gets would_deadlock instead of deadlocking.
//
// It replaces std::mutex on the alloc/free path, where glibc's generic mutex cost about 100
// instructions per lock/unlock pair and the holder check needed pthread_self().
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace ioasid::internal {

class SpaceLock {
 public:
  void lock() noexcept {
    std::uint32_t c = 0;
    if (!state_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      lock_contended(c);
    }
    holder_.store(self(), std::memory_order_relaxed);
  }

  void unlock() noexcept {
    holder_.store(0, std::memory_order_relaxed);
    if (state_.fetch_sub(1, std::memory_order_release) != 1) {
      state_.store(0, std::memory_order_release);
      syscall(SYS_futex, &state_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }

  // True when the calling thread holds the lock (it is inside a callback run under it).
  bool held_by_me() const noexcept { return holder_.load(std::memory_order_relaxed) == self(); }

 private:
  static std::uintptr_t self() noexcept {
    static __thread char marker;  // one distinct address per thread, no initialization
    return reinterpret_cast<std::uintptr_t>(&marker);
  }

  // state_: 0 unlocked, 1 locked, 2 locked with (possible) waiters.
  void lock_contended(std::uint32_t c) noexcept {
    for (int spin = 0; spin < 100 && c != 0; ++spin) {
      c = 0;
      if (state_.compare_exchange_weak(c, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return;
      }
    }
    if (c != 2) c = state_.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      syscall(SYS_futex, &state_, FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
      c = state_.exchange(2, std::memory_order_acquire);
    }
  }

  std::atomic<std::uint32_t> state_{0};
  std::atomic<std::uintptr_t> holder_{0};
};

}  // namespace ioasid::internal
