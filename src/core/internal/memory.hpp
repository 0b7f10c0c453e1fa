// SPDX-License-Identifier: Apache-2.0
// memory.hpp: every memory allocation the IOASID space makes goes through here, so that a test
// can make the N-th one fail (fail-nth, as iommufd_fail_nth.c does) and check that the operation
// reports no_memory and leaves the space exactly as it was.
//
// mem_alloc() returns nullptr on failure; FallibleAllocator<T> (for std containers) throws
// std::bad_alloc, which the space catches at the edge of each operation.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace ioasid::internal {

// Test hook. arm(n): the n-th allocation from now (1-based) fails, once. arm(0) disarms.
class FaultInjector {
 public:
  static void arm(std::uint64_t nth) noexcept;
  static std::uint64_t allocations() noexcept;  // allocations seen since process start
  static bool fired() noexcept;                 // the armed failure happened
  static bool should_fail() noexcept;           // called by mem_alloc

 private:
  static std::atomic<std::uint64_t> countdown_;
  static std::atomic<std::uint64_t> seen_;
  static std::atomic<bool> fired_;
};

void* mem_alloc(std::size_t bytes, std::size_t align = alignof(std::max_align_t)) noexcept;
void mem_free(void* p) noexcept;

template <class T>
struct FallibleAllocator {
  using value_type = T;
  FallibleAllocator() noexcept = default;
  template <class U>
  FallibleAllocator(const FallibleAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    void* p = mem_alloc(n * sizeof(T), alignof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { mem_free(p); }
  template <class U>
  bool operator==(const FallibleAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace ioasid::internal
