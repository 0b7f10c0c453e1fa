// SPDX-License-Identifier: Apache-2.0
// capi_fail_nth_test.cc: no exception crosses the C ABI, and a failed allocation leaks nothing.
// This executable replaces the global operator new / delete with counting versions that can be
// armed to fail the n-th allocation (fail-nth, like src/core/space_fail_nth_test.cc does for the
// space's own allocator, which the C++ device models do not use). Each C call that allocates is
// run with the 1st, 2nd, ... allocation failing until it completes without the failure firing:
// every attempt that fired must return -ENOMEM (or, for a guest request, answer S_NOMEM), write no
// out-parameter, and leave as many live allocations and open descriptors as before.
//
// Not built with sanitizers: their runtimes define operator new themselves.
#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>

#include "ioasid/ioasid.h"
#include "ioasid/wire/virtio_iommu.hpp"

namespace {

std::atomic<long> g_live{0};
std::atomic<std::uint64_t> g_countdown{0};
std::atomic<bool> g_fired{false};

bool should_fail() noexcept {
  std::uint64_t c = g_countdown.load(std::memory_order_relaxed);
  if (c == 0) return false;
  g_countdown.store(c - 1, std::memory_order_relaxed);
  if (c != 1) return false;
  g_fired.store(true, std::memory_order_relaxed);
  return true;
}

void* counted_alloc(std::size_t n) {
  if (should_fail()) throw std::bad_alloc();
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  g_live.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  g_live.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }

namespace {

int open_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

// Runs op with the n-th allocation failing, n = 1, 2, ... until it succeeds without the failure
// firing. op returns its C result; undo releases what a successful op created. Returns the
// number of failing attempts.
int fail_nth(const char* what, const std::function<int()>& op, const std::function<void()>& undo,
             int expected_failure = -ENOMEM) {
  SCOPED_TRACE(what);
  // Warm-up: first-use caches (thread records, locale, ...) are not leaks.
  EXPECT_EQ(op(), 0);
  undo();
  for (std::uint64_t n = 1; n < 10'000; ++n) {
    const long live = g_live.load();
    const int fds = open_fds();
    g_fired.store(false);
    g_countdown.store(n);
    int rc = 1;
    EXPECT_NO_THROW(rc = op());
    g_countdown.store(0);
    if (!g_fired.load()) {
      EXPECT_EQ(rc, 0) << "attempt " << n;
      undo();
      EXPECT_EQ(g_live.load(), live);
      EXPECT_EQ(open_fds(), fds);
      return static_cast<int>(n - 1);
    }
    EXPECT_EQ(rc, expected_failure) << "allocation " << n;
    if (rc == 0) undo();
    EXPECT_EQ(g_live.load(), live) << "allocation " << n << " leaked";
    EXPECT_EQ(open_fds(), fds) << "allocation " << n << " leaked a descriptor";
  }
  ADD_FAILURE() << "never completed";
  return 0;
}

class CapiFailNthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(ioasid_space_create(nullptr, &space_), 0);
    ASSERT_EQ(ioasid_set_create(space_, 1, 64, &set_), 0);
    ASSERT_EQ(ioasid_backend_local_create(space_, set_, &be_), 0);
  }
  void TearDown() override {
    ioasid_backend_destroy(be_);
    ioasid_space_destroy(space_);
  }
  ioasid_space* space_ = nullptr;
  ioasid_set_t set_ = 0;
  ioasid_backend* be_ = nullptr;
};

TEST_F(CapiFailNthTest, BackendAndNotifier) {
  // The space's own table allocations are covered by space_fail_nth_test (internal::FaultInjector);
  // here every operator new of creating one.
  ioasid_space* sp = nullptr;
  EXPECT_GT(fail_nth(
                "space_create", [&] { return ioasid_space_create(nullptr, &sp); },
                [&] { ioasid_space_destroy(sp); }),
            0);
  ioasid_backend* b = nullptr;
  EXPECT_GT(
      fail_nth(
          "backend_local_create", [&] { return ioasid_backend_local_create(space_, set_, &b); },
          [&] { ioasid_backend_destroy(b); }),
      0);
  ioasid_vtd_device* vtd = nullptr;
  EXPECT_GT(fail_nth(
                "vtd_device_create", [&] { return ioasid_vtd_device_create(be_, nullptr, &vtd); },
                [&] { ioasid_vtd_device_destroy(vtd); }),
            0);
  std::uint64_t n = 0;
  EXPECT_GT(fail_nth(
                "notifier_register",
                [&] {
                  return ioasid_notifier_register(
                      space_, IOASID_EVENT_MASK_ALL, [](void*, const ioasid_event*) {}, nullptr,
                      &n);
                },
                [&] { ASSERT_EQ(ioasid_notifier_unregister(space_, n), 0); }),
            0);
}

TEST_F(CapiFailNthTest, VirtioDeviceMemoryTransportRemote) {
  const ioasid_virtio_iommu_resv resv = {0xFEE00000, 0xFEEFFFFF, IOASID_VIRTIO_IOMMU_RESV_MSI, 0};
  const ioasid_virtio_iommu_endpoint eps[2] = {{8, 1, &resv}, {9, 0, nullptr}};
  ioasid_virtio_iommu_config c;
  std::memset(&c, 0, sizeof(c));
  c.size = sizeof(c);
  c.endpoints = eps;
  c.endpoint_count = 2;
  ioasid_virtio_iommu* d = nullptr;
  EXPECT_GT(fail_nth(
                "virtio_iommu_create", [&] { return ioasid_virtio_iommu_create(be_, &c, &d); },
                [&] { ioasid_virtio_iommu_destroy(d); }),
            0);

  ioasid_guest_memory* m = nullptr;
  EXPECT_GT(fail_nth(
                "guest_memory_create", [&] { return ioasid_guest_memory_create(&m); },
                [&] { ioasid_guest_memory_destroy(m); }),
            0);
  static std::byte ram[0x4000];
  ioasid_guest_memory* m2 = nullptr;
  EXPECT_GT(fail_nth(
                "guest_memory_add",
                [&] {
                  if (int rc = ioasid_guest_memory_create(&m2); rc != 0) return rc;
                  const int rc = ioasid_guest_memory_add(m2, 0x100000, sizeof(ram), ram);
                  if (rc != 0) ioasid_guest_memory_destroy(m2);
                  return rc;
                },
                [&] { ioasid_guest_memory_destroy(m2); }),
            0);
  EXPECT_GT(fail_nth(
                "guest_memory_add_memfd",
                [&] {
                  if (int rc = ioasid_guest_memory_create(&m2); rc != 0) return rc;
                  const int rc = ioasid_guest_memory_add_memfd(m2, 0, 0x1000, nullptr, nullptr);
                  if (rc != 0) ioasid_guest_memory_destroy(m2);
                  return rc;
                },
                [&] { ioasid_guest_memory_destroy(m2); }),
            0);

  ASSERT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), 0);
  ASSERT_EQ(ioasid_guest_memory_create(&m), 0);
  ASSERT_EQ(ioasid_guest_memory_add(m, 0x100000, sizeof(ram), ram), 0);
  ioasid_virtio_transport* t = nullptr;
  EXPECT_GT(fail_nth(
                "virtio_transport_create",
                [&] { return ioasid_virtio_transport_create(d, m, nullptr, &t); },
                [&] { ioasid_virtio_transport_destroy(t); }),
            0);
  ASSERT_EQ(ioasid_virtio_transport_create(d, m, nullptr, &t), 0);
  ioasid_virtio_remote* r = nullptr;
  EXPECT_GT(fail_nth(
                "virtio_remote_create", [&] { return ioasid_virtio_remote_create(t, &r); },
                [&] { ioasid_virtio_remote_destroy(r); }),
            0);

  // A guest request that needs memory (ATTACH of a new domain and endpoint record): S_NOMEM and
  // nothing changed, never an exception.
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, ioasid_virtio_iommu_features(d)), 0);
  namespace vi = ioasid::wire::virtio_iommu;
  vi::ReqAttach a{};
  a.head.type = vi::to_u8(vi::ReqType::attach);
  a.domain.store(5);
  a.endpoint.store(9);
  vi::ReqDetach dt{};
  dt.head.type = vi::to_u8(vi::ReqType::detach);
  dt.domain.store(5);
  dt.endpoint.store(9);
  auto send = [&](const void* req, std::size_t len) {
    std::uint8_t resp[4] = {0xFF};
    std::size_t used = 0;
    if (ioasid_virtio_iommu_handle_request(d, req, len, resp, sizeof(resp), &used) != 0) {
      return -EINVAL;
    }
    if (used != 4) return -EIO;
    return resp[0] == vi::to_u8(vi::Status::ok)      ? 0
           : resp[0] == vi::to_u8(vi::Status::nomem) ? -ENOMEM
                                                     : -EIO;
  };
  EXPECT_GT(fail_nth(
                "ATTACH", [&] { return send(&a, offsetof(vi::ReqAttach, tail)); },
                [&] { ASSERT_EQ(send(&dt, offsetof(vi::ReqDetach, tail)), 0); }),
            0);
  ioasid_virtio_iommu_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_iommu_stats(d, &st), 0);
  EXPECT_EQ(st.domains, 0u);
  EXPECT_EQ(st.endpoints_attached, 0u);

  ioasid_virtio_transport_destroy(t);
  ioasid_guest_memory_destroy(m);
  ioasid_virtio_iommu_destroy(d);
}

}  // namespace
