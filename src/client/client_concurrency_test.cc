// SPDX-License-Identifier: Apache-2.0
// client_concurrency_test.cc: one ioasid::DaemonBackend called from several threads at once (it
// serializes them), also while the daemon is killed and restarted underneath: every thread's
// allocations are distinct and all of them are in the daemon afterwards. Labelled concurrency,
// so it also runs under ThreadSanitizer (the daemon is a separate process).
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "daemon/test_daemon.hpp"
#include "ioasid/client.hpp"

namespace ioasid {
namespace {

using testing::DaemonProcess;
using namespace std::chrono_literals;

TEST(ClientConcurrency, ThreadsShareOneBackendAcrossARestart) {
  DaemonProcess d;
  ASSERT_TRUE(d.start());
  DaemonOptions o;
  o.socket_path = d.socket();
  o.vm_token = 7;
  o.quota = 400;
  o.backoff_initial = 2ms;
  o.backoff_max = 50ms;
  auto vm = DaemonBackend::open(o);
  ASSERT_TRUE(vm);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 30;
  std::vector<std::vector<Id>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto id = (*vm)->alloc(1, 0xFFFFF);
        if (id) got[static_cast<std::size_t>(t)].push_back(*id);
        if (i % 5 == 0) (void)(*vm)->set_info();
      }
    });
  }
  std::this_thread::sleep_for(50ms);
  d.kill9();
  ASSERT_TRUE(d.start());
  for (auto& th : threads) th.join();
  std::set<Id> all;
  for (auto& v : got) {
    EXPECT_EQ(v.size(), static_cast<std::size_t>(kPerThread));
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
  auto info = (*vm)->set_info();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->count, all.size());
}

}  // namespace
}  // namespace ioasid
