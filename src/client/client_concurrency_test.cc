// SPDX-License-Identifier: Apache-2.0
// client_concurrency_test.cc: one ioasid::DaemonBackend called from several threads at once (their
// requests are pipelined on its one connection), also while the daemon is killed and restarted
// underneath: every thread's allocations are distinct and all of them are in the daemon
// afterwards. Labelled concurrency, so it also runs under ThreadSanitizer (the daemon is a separate
// process).
#include <gtest/gtest.h>

#include <signal.h>

#include <set>
#include <thread>

#include "daemon/test_daemon.hpp"
#include "ioasid/client.hpp"

namespace ioasid {
namespace {

using testing::DaemonProcess;
using namespace std::chrono_literals;

DaemonOptions vm_options(const DaemonProcess& d, std::uint64_t vm, std::uint32_t quota) {
  DaemonOptions o;
  o.socket_path = d.socket();
  o.vm_token = vm;
  o.quota = quota;
  return o;
}

TEST(ClientConcurrency, ThreadsShareOneBackendAcrossARestart) {
  DaemonProcess d;
  ASSERT_TRUE(d.start());
  DaemonOptions o = vm_options(d, 7, 400);
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

TEST(ClientConcurrency, ThreadsPipelineTheirRequestsOnOneConnection) {
  DaemonProcess d;
  ASSERT_TRUE(d.start());
  auto vm = DaemonBackend::open(vm_options(d, 8, 64));
  ASSERT_TRUE(vm);
  auto admin = DaemonAdmin::open(d.socket(), 20s);
  ASSERT_TRUE(admin);
  const DaemonStats before = (*admin)->stats().value();
  constexpr int kThreads = 8;
  constexpr int kPairs = 150;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPairs; ++i) {
        auto id = (*vm)->alloc(1, 0xFFFFF);
        if (!id) {
          ++failures[static_cast<std::size_t>(t)];
          continue;
        }
        // query() sees this thread's PASID while it is held, whichever thread read the reply.
        auto info = (*vm)->query(*id);
        if (!info || info->id != *id) ++failures[static_cast<std::size_t>(t)];
        if (!(*vm)->free(*id)) ++failures[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
  EXPECT_EQ((*vm)->reconnects(), 0u);
  EXPECT_EQ((*vm)->set_info().value().count, 0u);
  const DaemonStats after = (*admin)->stats().value();
  // One connection, one request at a time, would commit every ALLOC and FREE alone; pipelined,
  // the daemon reads several of them per iteration and commits them together.
  const std::uint64_t mutating = 2u * kThreads * kPairs;
  const std::uint64_t commits = after.journal_commits - before.journal_commits;
  EXPECT_GE(commits, 1u);
  EXPECT_LT(commits * 4, mutating * 3) << commits << " commits for " << mutating << " requests";
}

TEST(ClientConcurrency, CallsThatTimeOutTogetherLeaveTheConnectionUsable) {
  DaemonProcess d;
  ASSERT_TRUE(d.start());
  DaemonOptions o = vm_options(d, 9, 64);
  o.timeout = 300ms;
  auto vm = DaemonBackend::open(o);
  ASSERT_TRUE(vm);
  // The daemon stops answering: every thread's call (one of them reading for all) times out.
  ASSERT_EQ(::kill(d.pid(), SIGSTOP), 0);
  constexpr int kThreads = 6;
  std::vector<Errc> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Id id = kInvalidId;
      got[static_cast<std::size_t>(t)] = (*vm)->alloc_raw(1, 0xFFFFF, &id);
    });
  }
  for (auto& th : threads) th.join();
  for (Errc e : got) EXPECT_EQ(e, Errc::timed_out);
  ASSERT_EQ(::kill(d.pid(), SIGCONT), 0);
  // The timed-out ALLOCs were executed once the daemon ran again; their late replies find no
  // caller and are dropped, and the next calls get their own answers on the same connection.
  std::set<Id> mine;
  for (int i = 0; i < 5; ++i) {
    auto id = (*vm)->alloc(1, 0xFFFFF);
    ASSERT_TRUE(id) << to_string(id.error());
    mine.insert(*id);
  }
  EXPECT_EQ(mine.size(), 5u);
  EXPECT_EQ((*vm)->reconnects(), 0u);
  auto info = (*vm)->set_info();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->count, 5u + kThreads);
}

}  // namespace
}  // namespace ioasid
