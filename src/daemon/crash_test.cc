// SPDX-License-Identifier: Apache-2.0
// crash_test.cc: ioasidd killed with SIGKILL at random moments while several VMM processes
// allocate and free through the client library, then restarted on the same state. Afterwards
// every PASID a client was told it owns is owned by that VM in the daemon, and nothing else is:
// no acknowledged allocation lost, no acknowledged free come back, no PASID owned twice, and no
// retried request executed twice (a retried ALLOC that yielded a second PASID would leave one the
// client does not know; a retried FREE that ran again would fail with not_found), with binds and
// guest PASIDs replayed exactly (a BIND run twice would leave two binds).
//
// Run with each --commit-flush mode. Environment: IOASIDD_CRASH_CYCLES (kill/restart cycles,
// default 4), IOASIDD_CRASH_CLIENTS (client processes, default 3), IOASIDD_CRASH_SEED.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "daemon/test_daemon.hpp"
#include "ioasid/client.hpp"

namespace ioasid::testing {
namespace {

using namespace std::chrono_literals;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

constexpr std::uint64_t kVmBase = 100;

// One VMM: allocates (and binds half of what it allocates, with the PASID itself as the guest
// PASID), unbinds and frees, until the stop file appears; then writes what it owns ("id bound").
[[noreturn]] void client_main(const std::string& socket, const std::string& dir, int index,
                              unsigned seed) {
  DaemonOptions o;
  o.socket_path = socket;
  o.vm_token = kVmBase + static_cast<std::uint64_t>(index);
  o.quota = 64;
  o.backoff_initial = 5ms;
  o.backoff_max = 100ms;
  auto vm = DaemonBackend::open(o);
  if (!vm) _exit(20);
  std::mt19937 rng(seed + static_cast<unsigned>(index) * 7919u);
  std::map<Id, bool> owned;  // PASID -> bound
  std::uint64_t ops = 0;
  const std::string stop = dir + "/stop";
  while (::access(stop.c_str(), F_OK) != 0) {
    if (owned.size() < 48 && (owned.empty() || rng() % 3 != 0)) {
      auto id = (*vm)->alloc(1, 0xFFFFF);
      if (!id) _exit(21);
      if (!owned.emplace(*id, false).second) _exit(22);  // the same PASID twice
      if (rng() % 2 == 0) {
        if (!(*vm)->bind(*id, *id)) _exit(25);
        owned[*id] = true;
      }
    } else {
      auto it = owned.begin();
      std::advance(it, static_cast<long>(rng() % owned.size()));
      // An UNBIND or FREE run twice by a retry would fail here (not bound / not found).
      if (it->second && !(*vm)->unbind(it->first)) _exit(26);
      if (!(*vm)->free(it->first)) _exit(23);
      owned.erase(it);
    }
    ++ops;
  }
  std::ofstream out(dir + "/owned-" + std::to_string(index));
  out << ops << " " << (*vm)->reconnects() << "\n";
  for (const auto& [id, bound] : owned) out << id << " " << (bound ? 1 : 0) << "\n";
  out.close();
  _exit(out ? 0 : 24);
}

// Both ways of flushing a commit (docs/daemon.md "Durability"): in `thread` mode the WAL's frames
// of a COMMIT are written out by the store and flushed by another descriptor, so a kill between
// the COMMIT and the reply is a case of its own.
class DaemonCrash : public ::testing::TestWithParam<const char*> {};

TEST_P(DaemonCrash, KilledUnderLoadLosesNothingAcknowledged) {
  const int cycles = env_int("IOASIDD_CRASH_CYCLES", 4);
  const int clients = env_int("IOASIDD_CRASH_CLIENTS", 3);
  const unsigned seed = static_cast<unsigned>(env_int("IOASIDD_CRASH_SEED", 12345));
  DaemonProcess d;
  const std::vector<std::string> args = {"--grace", "120", "--commit-flush", GetParam()};
  ASSERT_TRUE(d.start(args));
  std::vector<pid_t> pids;
  // On a failed assertion the clients would retry forever: they go with the test.
  struct Reaper {
    std::vector<pid_t>* pids;
    ~Reaper() {
      for (pid_t p : *pids) {
        if (p > 0 && ::kill(p, SIGKILL) == 0) ::waitpid(p, nullptr, 0);
      }
    }
  } reaper{&pids};
  for (int i = 0; i < clients; ++i) {
    const pid_t pid = fork();
    if (pid == 0) client_main(d.socket(), d.dir(), i, seed);
    pids.push_back(pid);
  }
  std::mt19937 rng(seed);
  for (int c = 0; c < cycles; ++c) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 300));
    d.kill9();
    ASSERT_TRUE(d.start(args)) << "restart " << c;
  }
  std::this_thread::sleep_for(200ms);
  std::ofstream(d.dir() + "/stop") << "stop\n";
  std::vector<std::map<Id, bool>> owned(static_cast<std::size_t>(clients));
  std::uint64_t total_ops = 0;
  std::uint64_t reconnects = 0;
  for (int i = 0; i < clients; ++i) {
    int status = 0;
    const pid_t pid = pids[static_cast<std::size_t>(i)];
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    pids[static_cast<std::size_t>(i)] = -1;
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "client " << i;
    std::ifstream in(d.dir() + "/owned-" + std::to_string(i));
    std::uint64_t ops = 0;
    std::uint64_t rc = 0;
    in >> ops >> rc;
    total_ops += ops;
    reconnects += rc;
    Id id;
    int bound;
    while (in >> id >> bound) owned[static_cast<std::size_t>(i)][id] = bound != 0;
  }
  EXPECT_GT(total_ops, 0u);
  if (cycles > 0) {
    EXPECT_GT(reconnects, 0u);
  }
  // Once more from the store alone.
  d.kill9();
  ASSERT_TRUE(d.start(args));
  auto admin = DaemonAdmin::open(d.socket(), 20s);
  ASSERT_TRUE(admin);
  std::set<Id> everyone;
  std::size_t sum = 0;
  for (int i = 0; i < clients; ++i) {
    auto ids = (*admin)->list_ids(kVmBase + static_cast<std::uint64_t>(i));
    ASSERT_TRUE(ids) << to_string(ids.error());
    std::map<Id, bool> daemon_view;
    for (const IdInfo& info : *ids) {
      // A BIND run twice by a retry would show as binds == 2.
      EXPECT_EQ(info.state, IdState::active);
      EXPECT_EQ(info.refs, 1u + info.binds) << info.id;
      EXPECT_LE(info.binds, 1u) << info.id;
      EXPECT_EQ(info.spid, info.binds == 1 ? info.id : kInvalidId) << info.id;
      daemon_view[info.id] = info.binds == 1;
      EXPECT_TRUE(everyone.insert(info.id).second) << "PASID " << info.id << " owned twice";
    }
    EXPECT_EQ(daemon_view, owned[static_cast<std::size_t>(i)]) << "VM " << kVmBase + i;
    sum += daemon_view.size();
  }
  auto st = (*admin)->stats();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->space.live_ids, sum);
  EXPECT_EQ(st->sessions, static_cast<std::uint64_t>(clients));
}

INSTANTIATE_TEST_SUITE_P(CommitFlush, DaemonCrash, ::testing::Values("inline", "thread"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

}  // namespace
}  // namespace ioasid::testing
