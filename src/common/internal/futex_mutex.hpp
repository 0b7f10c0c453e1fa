// SPDX-License-Identifier: Apache-2.0
// futex_mutex.hpp: the mutex of the library's short critical sections (the space's writer lock, a
// VT-d command): three states (free, locked, locked with waiters) in one 32-bit word, after
// Drepper's "Futexes Are Tricky": one atomic instruction to lock and one to unlock when
// uncontended, a brief spin, then a futex wait. glibc's generic pthread mutex costs ~50 more
// instructions per lock/unlock pair on these paths (callgrind, bench/README.md).
//
// The word can live in a public class as a plain std::atomic<std::uint32_t> (no internal type in
// an installed header): futex_lock(word) / futex_unlock(word). FutexMutex wraps one for internal
// classes and is a BasicLockable (std::lock_guard, std::unique_lock, condition_variable_any).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace ioasid::internal {

// state: 0 free, 1 locked, 2 locked with (possible) waiters.
inline void futex_lock_contended(std::atomic<std::uint32_t>& state, std::uint32_t c) noexcept {
  for (int spin = 0; spin < 100 && c != 0; ++spin) {
    c = 0;
    if (state.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) {
      return;
    }
  }
  if (c != 2) c = state.exchange(2, std::memory_order_acquire);
  while (c != 0) {
    syscall(SYS_futex, &state, FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
    c = state.exchange(2, std::memory_order_acquire);
  }
}

inline void futex_lock(std::atomic<std::uint32_t>& state) noexcept {
  std::uint32_t c = 0;
  if (!state.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) {
    futex_lock_contended(state, c);
  }
}

inline bool futex_try_lock(std::atomic<std::uint32_t>& state) noexcept {
  std::uint32_t c = 0;
  return state.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed);
}

inline void futex_unlock(std::atomic<std::uint32_t>& state) noexcept {
  if (state.fetch_sub(1, std::memory_order_release) != 1) {
    state.store(0, std::memory_order_release);
    syscall(SYS_futex, &state, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
}

class FutexMutex {
 public:
  void lock() noexcept { futex_lock(state_); }
  bool try_lock() noexcept { return futex_try_lock(state_); }
  void unlock() noexcept { futex_unlock(state_); }

 private:
  std::atomic<std::uint32_t> state_{0};
};

// A BasicLockable view of a futex word that lives elsewhere (a public class's member).
class FutexWordLock {
 public:
  explicit FutexWordLock(std::atomic<std::uint32_t>& word) noexcept : word_(word) {}
  void lock() noexcept { futex_lock(word_); }
  void unlock() noexcept { futex_unlock(word_); }

 private:
  std::atomic<std::uint32_t>& word_;
};

}  // namespace ioasid::internal
