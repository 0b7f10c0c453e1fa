// SPDX-License-Identifier: Apache-2.0
// memory.cc: the space's allocation hook with fail-nth injection (internal/memory.hpp).
#include "core/internal/memory.hpp"

#include <cstdlib>

namespace ioasid::internal {

std::atomic<std::uint64_t> FaultInjector::countdown_{0};
std::atomic<std::uint64_t> FaultInjector::seen_{0};
std::atomic<bool> FaultInjector::fired_{false};

void FaultInjector::arm(std::uint64_t nth) noexcept {
  fired_.store(false, std::memory_order_relaxed);
  countdown_.store(nth, std::memory_order_relaxed);
}

std::uint64_t FaultInjector::allocations() noexcept {
  return seen_.load(std::memory_order_relaxed);
}

bool FaultInjector::fired() noexcept { return fired_.load(std::memory_order_relaxed); }

bool FaultInjector::should_fail() noexcept {
  seen_.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t c = countdown_.load(std::memory_order_relaxed);
  if (c == 0) return false;
  if (c == 1) {
    countdown_.store(0, std::memory_order_relaxed);
    fired_.store(true, std::memory_order_relaxed);
    return true;
  }
  countdown_.store(c - 1, std::memory_order_relaxed);
  return false;
}

void* mem_alloc(std::size_t bytes, std::size_t align) noexcept {
  if (FaultInjector::should_fail()) return nullptr;
  if (align <= alignof(std::max_align_t)) return std::malloc(bytes);
  return std::aligned_alloc(align, (bytes + align - 1) / align * align);
}

void mem_free(void* p) noexcept { std::free(p); }

}  // namespace ioasid::internal
