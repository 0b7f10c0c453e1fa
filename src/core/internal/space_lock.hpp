// SPDX-License-Identifier: Apache-2.0
// space_lock.hpp: the writer lock of an IOASID space: a FutexMutex
// (common/internal/futex_mutex.hpp) that also remembers which thread holds it, so that a callback
// running under the lock and calling back into the space gets would_deadlock instead of
// deadlocking.
//
// It replaces std::mutex on the alloc/free path, where glibc's generic mutex cost about 100
// instructions per lock/unlock pair and the holder check needed pthread_self().
#pragma once

#include <atomic>
#include <cstdint>

#include "common/internal/futex_mutex.hpp"

namespace ioasid::internal {

class SpaceLock {
 public:
  void lock() noexcept {
    mutex_.lock();
    holder_.store(self(), std::memory_order_relaxed);
  }

  void unlock() noexcept {
    holder_.store(0, std::memory_order_relaxed);
    mutex_.unlock();
  }

  // True when the calling thread holds the lock (it is inside a callback run under it).
  bool held_by_me() const noexcept { return holder_.load(std::memory_order_relaxed) == self(); }

 private:
  static std::uintptr_t self() noexcept {
    static __thread char marker;  // one distinct address per thread, no initialization
    return reinterpret_cast<std::uintptr_t>(&marker);
  }

  FutexMutex mutex_;
  std::atomic<std::uintptr_t> holder_{0};
};

}  // namespace ioasid::internal
