// SPDX-License-Identifier: Apache-2.0
// client_test.cc: the ioasidd client library (ioasid::DaemonBackend, ioasid::DaemonAdmin and the C
// functions of ioasid/client.h) against the built daemon run as a child process: every
// HostBackend call and its errors, two VMMs (two processes) sharing the namespace, administration,
// reconnection across a daemon restart, per-call timeouts, a VMM crash followed by a resume within
// the grace period, and a session lost after the grace period.
#include "ioasid/client.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <thread>

#include "daemon/test_daemon.hpp"
#include "ioasid/client.h"

namespace ioasid {
namespace {

using testing::DaemonProcess;
using namespace std::chrono_literals;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.start(extra_)); }
  DaemonOptions opts(std::uint64_t vm, std::uint32_t quota = 16) {
    DaemonOptions o;
    o.socket_path = d_.socket();
    o.vm_token = vm;
    o.quota = quota;
    o.timeout = 20s;  // a hung test fails instead of hanging
    return o;
  }
  std::unique_ptr<DaemonBackend> open(std::uint64_t vm, std::uint32_t quota = 16) {
    auto b = DaemonBackend::open(opts(vm, quota));
    EXPECT_TRUE(b) << (b ? "" : to_string(b.error()));
    return b ? std::move(*b) : nullptr;
  }
  std::unique_ptr<DaemonAdmin> admin() {
    auto a = DaemonAdmin::open(d_.socket(), 20s);
    EXPECT_TRUE(a);
    return a ? std::move(*a) : nullptr;
  }
  // Waits (bounded) until the daemon holds no set for vm.
  bool wait_gone(std::uint64_t vm) {
    auto a = admin();
    for (int i = 0; i < 400; ++i) {
      auto sets = a->list_sets();
      if (!sets) return false;
      bool found = false;
      for (const SetInfo& s : *sets) found = found || s.owner_token == vm;
      if (!found) return true;
      std::this_thread::sleep_for(25ms);
    }
    return false;
  }
  DaemonProcess d_;
  std::vector<std::string> extra_;
};

TEST_F(ClientTest, EveryHostBackendCall) {
  auto vm = open(1, 3);
  ASSERT_TRUE(vm);
  EXPECT_FALSE(vm->resumed());
  EXPECT_EQ(vm->grace_seconds(), 30u);
  EXPECT_NE(vm->resume_token(), ResumeToken{});
  auto a = vm->alloc(10, 20);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, 10u);
  EXPECT_EQ(vm->alloc(5, 1).error(), Errc::invalid_argument);
  EXPECT_EQ(vm->alloc(1, 0x100000).error(), Errc::out_of_range);
  ASSERT_TRUE(vm->get(*a));
  auto p = vm->put(*a);
  ASSERT_TRUE(p);
  EXPECT_FALSE(*p);
  ASSERT_TRUE(vm->bind(*a, 99));
  EXPECT_EQ(*vm->find_by_spid(99), *a);
  EXPECT_EQ(vm->find_by_spid(98).error(), Errc::not_found);
  auto q = vm->query(*a);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->refs, 2u);
  EXPECT_EQ(q->binds, 1u);
  EXPECT_EQ(q->spid, 99u);
  auto info = vm->set_info();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->owner_token, 1u);
  EXPECT_EQ(info->quota, 3u);
  EXPECT_EQ(info->count, 1u);
  EXPECT_EQ(info->bound, 1u);
  ASSERT_TRUE(vm->free(*a));
  EXPECT_EQ(vm->free(*a).error(), Errc::busy);  // FREE_PENDING: still bound
  ASSERT_TRUE(vm->unbind(*a));
  EXPECT_EQ(vm->query(*a).error(), Errc::not_found);
  ASSERT_TRUE(vm->alloc(1, 100));
  ASSERT_TRUE(vm->alloc(1, 100));
  ASSERT_TRUE(vm->alloc(1, 100));
  EXPECT_EQ(vm->alloc(1, 100).error(), Errc::quota_exceeded);
  ASSERT_TRUE(vm->close_session());
  EXPECT_EQ(vm->alloc(1, 100).error(), Errc::not_found);
  // Option checks before any connection.
  DaemonOptions bad = opts(2, 0);
  EXPECT_EQ(DaemonBackend::open(bad).error(), Errc::invalid_argument);
  bad = opts(2);
  bad.socket_path.clear();
  EXPECT_EQ(DaemonBackend::open(bad).error(), Errc::invalid_argument);
  bad = opts(2);
  bad.resume_token = ResumeToken{};
  EXPECT_EQ(DaemonBackend::open(bad).error(), Errc::invalid_argument);
}

TEST_F(ClientTest, TwoVmmProcessesShareOneNamespace) {
  auto mine = open(10);
  ASSERT_TRUE(mine);
  std::set<Id> ids;
  for (int i = 0; i < 8; ++i) ids.insert(mine->alloc(1, 0xFFFFF).value());
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t child = fork();
  if (child == 0) {
    // The second VMM: another process, another VM.
    auto o = opts(11);
    auto other = DaemonBackend::open(o);
    if (!other) _exit(2);
    for (int i = 0; i < 8; ++i) {
      auto id = (*other)->alloc(1, 0xFFFFF);
      if (!id) _exit(3);
      if (write(pipefd[1], &*id, sizeof *id) != sizeof *id) _exit(4);
    }
    // Another VM's PASID reads as not found.
    const Id theirs = 1;
    if ((*other)->query(theirs).error() != Errc::not_found) _exit(5);
    if ((*other)->free(theirs).error() != Errc::not_found) _exit(6);
    _exit(0);
  }
  close(pipefd[1]);
  Id id;
  int n = 0;
  while (read(pipefd[0], &id, sizeof id) == sizeof id) {
    EXPECT_TRUE(ids.insert(id).second) << "PASID " << id << " handed out twice";
    ++n;
  }
  close(pipefd[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(n, 8);
  // The child's VM is another set: its PASIDs are not mine.
  for (Id x : ids) {
    auto q = mine->query(x);
    EXPECT_TRUE(q || q.error() == Errc::not_found);
  }
  // Its session without a close stays for the grace period.
  auto a = admin();
  auto sets = a->list_sets();
  ASSERT_TRUE(sets);
  EXPECT_EQ(sets->size(), 2u);
}

TEST_F(ClientTest, AdminCalls) {
  auto vm = open(20, 8);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(vm->alloc(1, 0xFFFFF));
  auto a = admin();
  auto sets = a->list_sets();
  ASSERT_TRUE(sets);
  ASSERT_EQ(sets->size(), 1u);
  EXPECT_EQ((*sets)[0].owner_token, 20u);
  EXPECT_EQ((*sets)[0].count, 5u);
  auto ids = a->list_ids(20);
  ASSERT_TRUE(ids);
  EXPECT_EQ(ids->size(), 5u);
  EXPECT_EQ(a->list_ids(21).error(), Errc::not_found);
  EXPECT_EQ(a->set_quota(20, 4).error(), Errc::invalid_argument);
  ASSERT_TRUE(a->set_quota(20, 5));
  EXPECT_EQ(vm->alloc(1, 0xFFFFF).error(), Errc::quota_exceeded);
  auto st = a->stats();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->space.live_ids, 5u);
  EXPECT_EQ(st->sessions, 1u);
  EXPECT_EQ(st->clients, 2u);
  EXPECT_GT(st->journal_commits, 0u);
}

TEST_F(ClientTest, AdminStatusAndQueryId) {
  auto vm = open(30, 8);
  const Id x = vm->alloc(1, 0xFFFFF).value();
  ASSERT_TRUE(vm->bind(x, 77));
  auto a = admin();
  auto st = a->status();
  ASSERT_TRUE(st) << to_string(st.error());
  EXPECT_EQ(st->pid, static_cast<std::uint32_t>(d_.pid()));
  EXPECT_EQ(st->daemon_version, std::uint32_t{IOASID_VERSION});
  EXPECT_EQ(st->id_bits, 20u);
  EXPECT_TRUE(st->durable);
  EXPECT_EQ(st->protocol_version, 1u);
  EXPECT_EQ(st->features, 7u);
  EXPECT_EQ(st->max_in_flight, 32u);
  EXPECT_EQ(st->max_payload, 65536u);
  auto q = a->query_id(x);
  ASSERT_TRUE(q) << to_string(q.error());
  EXPECT_EQ(q->vm_token, 30u);
  EXPECT_EQ(q->info.id, x);
  EXPECT_EQ(q->info.spid, 77u);
  EXPECT_EQ(q->info.binds, 1u);
  EXPECT_EQ(q->info.refs, 2u);
  EXPECT_EQ(a->query_id(x + 1).error(), Errc::not_found);
  EXPECT_EQ(a->query_id(0x100000).error(), Errc::out_of_range);
}

TEST(ClientAdminOpen, WithoutWaitingFailsAtOnceWhenNothingListens) {
  const std::string dir = testing::make_temp_dir();
  AdminOptions o;
  o.socket_path = dir + "/none.sock";
  o.timeout = 20s;
  o.wait_for_daemon = false;
  const auto t0 = std::chrono::steady_clock::now();
  auto a = DaemonAdmin::open(o);
  EXPECT_EQ(a.error(), Errc::io_error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);  // not the 20 s timeout
  // Waiting (the default): the timeout bounds the attempt.
  o.wait_for_daemon = true;
  o.timeout = 200ms;
  EXPECT_EQ(DaemonAdmin::open(o).error(), Errc::timed_out);
  o.socket_path.clear();
  EXPECT_EQ(DaemonAdmin::open(o).error(), Errc::invalid_argument);
  std::filesystem::remove_all(dir);
}

TEST_F(ClientTest, ReconnectsAndResumesAcrossDaemonRestart) {
  auto vm = open(30);
  const Id x = vm->alloc(1, 0xFFFFF).value();
  ASSERT_TRUE(vm->bind(x, 5));
  d_.kill9();
  // While the daemon is down a call with a timeout fails with timed_out ...
  DaemonOptions o = opts(31);
  o.timeout = 200ms;
  EXPECT_EQ(DaemonBackend::open(o).error(), Errc::timed_out);
  // ... and one without waits for it to come back.
  std::thread restart([&] {
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(d_.start());
  });
  auto y = vm->alloc(1, 0xFFFFF);
  restart.join();
  ASSERT_TRUE(y);
  EXPECT_NE(*y, x);
  EXPECT_GE(vm->reconnects(), 1u);
  EXPECT_EQ(*vm->find_by_spid(5), x);
  EXPECT_EQ(vm->set_info()->count, 2u);
}

TEST_F(ClientTest, VmmCrashThenResumeWithinGrace) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t child = fork();
  if (child == 0) {
    auto vm = DaemonBackend::open(opts(40));
    if (!vm) _exit(2);
    const ResumeToken t = (*vm)->resume_token();
    Id ids[3];
    for (Id& id : ids) id = (*vm)->alloc(1, 0xFFFFF).value_or(kInvalidId);
    if (write(pipefd[1], t.data(), t.size()) != static_cast<ssize_t>(t.size())) _exit(3);
    if (write(pipefd[1], ids, sizeof ids) != sizeof ids) _exit(3);
    _exit(0);  // a crash: no CLOSE_SESSION, the connection just drops
  }
  close(pipefd[1]);
  ResumeToken t{};
  Id ids[3];
  ASSERT_EQ(read(pipefd[0], t.data(), t.size()), static_cast<ssize_t>(t.size()));
  ASSERT_EQ(read(pipefd[0], ids, sizeof ids), static_cast<ssize_t>(sizeof ids));
  close(pipefd[0]);
  waitpid(child, nullptr, 0);
  DaemonOptions o = opts(40, 0);
  o.resume_token = t;
  auto vm = DaemonBackend::open(o);
  ASSERT_TRUE(vm) << to_string(vm.error());
  EXPECT_TRUE((*vm)->resumed());
  EXPECT_EQ((*vm)->resume_token(), t);
  for (Id id : ids) EXPECT_TRUE((*vm)->query(id)) << id;
  EXPECT_EQ((*vm)->set_info()->count, 3u);
  // A wrong token does not take over a live session.
  o.resume_token = ResumeToken{1, 2, 3};
  EXPECT_EQ(DaemonBackend::open(o).error(), Errc::exists);
}

TEST_F(ClientTest, SessionTakenOverByAnotherProcessIsNotFoundForTheOldOne) {
  auto old_vm = open(45);
  const Id x = old_vm->alloc(1, 0xFFFFF).value();
  d_.kill9();  // the old process loses its connection ...
  ASSERT_TRUE(d_.start());
  DaemonOptions o = opts(45, 0);  // ... and a new process of the VM resumes first
  o.resume_token = old_vm->resume_token();
  auto new_vm = DaemonBackend::open(o);
  ASSERT_TRUE(new_vm);
  EXPECT_TRUE((*new_vm)->resumed());
  EXPECT_EQ(old_vm->query(x).error(), Errc::not_found);
  EXPECT_TRUE((*new_vm)->query(x));
}

class ClientGraceTest : public ClientTest {
 protected:
  ClientGraceTest() { extra_ = {"--grace", "1"}; }
};

TEST_F(ClientGraceTest, VmmCrashThenGraceExpiresAndPasidsAreReclaimed) {
  ResumeToken t{};
  Id x = kInvalidId;
  {
    auto vm = open(50);
    t = vm->resume_token();
    x = vm->alloc(1, 0xFFFFF).value();
  }  // destroyed without close: as a crash
  ASSERT_TRUE(wait_gone(50));
  DaemonOptions o = opts(50, 4);
  o.resume_token = t;
  auto vm = DaemonBackend::open(o);
  ASSERT_TRUE(vm);
  EXPECT_FALSE((*vm)->resumed());  // a fresh session: the old PASIDs are gone
  EXPECT_EQ((*vm)->set_info()->count, 0u);
  EXPECT_EQ((*vm)->query(x).error(), Errc::not_found);
}

TEST_F(ClientGraceTest, SessionLostWhileDisconnectedReportsNotFound) {
  auto vm = open(60);
  ASSERT_TRUE(vm->alloc(1, 0xFFFFF));
  d_.stop();
  ASSERT_TRUE(d_.start({"--grace", "1"}));
  ASSERT_TRUE(wait_gone(60));
  EXPECT_EQ(vm->alloc(1, 0xFFFFF).error(), Errc::not_found);
  EXPECT_EQ(vm->set_info().error(), Errc::not_found);
}

TEST_F(ClientTest, CApi) {
  ioasid_daemon_config c{};
  c.size = sizeof c;
  const std::string path = d_.socket();
  c.socket_path = path.c_str();
  c.vm_token = 80;
  c.quota = 4;
  c.timeout_ms = 20000;
  ioasid_backend* b = nullptr;
  ASSERT_EQ(ioasid_backend_daemon_create(&c, &b), 0);
  ioasid_t id = 0;
  ASSERT_EQ(ioasid_backend_alloc(b, 1, 0xFFFFF, &id), 0);
  EXPECT_EQ(ioasid_backend_bind(b, id, 12), 0);
  ioasid_t found = 0;
  EXPECT_EQ(ioasid_backend_find_by_spid(b, 12, &found), 0);
  EXPECT_EQ(found, id);
  EXPECT_EQ(ioasid_backend_get(b, id), 0);
  bool released = true;
  EXPECT_EQ(ioasid_backend_put(b, id, &released), 0);
  EXPECT_FALSE(released);
  EXPECT_EQ(ioasid_backend_unbind(b, id), 0);
  EXPECT_EQ(ioasid_backend_free(b, id + 1), -ENOENT);
  ioasid_daemon_session s{};
  s.size = sizeof s;
  ASSERT_EQ(ioasid_backend_daemon_session(b, &s), 0);
  EXPECT_EQ(s.resumed, 0u);
  EXPECT_EQ(s.grace_seconds, 30u);
  // Another process of the VM resumes with the token once this one is gone.
  ioasid_backend_destroy(b);
  c.flags = IOASID_DAEMON_F_RESUME;
  c.quota = 0;
  std::memcpy(c.resume_token, s.resume_token, sizeof c.resume_token);
  ASSERT_EQ(ioasid_backend_daemon_create(&c, &b), 0);
  ioasid_daemon_session s2{};
  s2.size = sizeof s2;
  ASSERT_EQ(ioasid_backend_daemon_session(b, &s2), 0);
  EXPECT_EQ(s2.resumed, 1u);
  EXPECT_EQ(ioasid_backend_free(b, id), 0);
  EXPECT_EQ(ioasid_backend_daemon_close_session(b), 0);
  EXPECT_EQ(ioasid_backend_alloc(b, 1, 5, &id), -ENOENT);
  ioasid_backend_destroy(b);
  // Argument checks.
  EXPECT_EQ(ioasid_backend_daemon_create(nullptr, &b), -EINVAL);
  ioasid_daemon_config bad = c;
  bad.size = 8;
  EXPECT_EQ(ioasid_backend_daemon_create(&bad, &b), -EINVAL);
  bad = c;
  bad.flags = 0x80;
  EXPECT_EQ(ioasid_backend_daemon_create(&bad, &b), -EINVAL);
  struct {
    ioasid_daemon_config c;
    std::uint64_t extra;
  } big{c, 1};
  big.c.size = sizeof big;
  EXPECT_EQ(ioasid_backend_daemon_create(&big.c, &b), -E2BIG);
  EXPECT_EQ(ioasid_backend_daemon_close_session(nullptr), -EINVAL);
}

}  // namespace
}  // namespace ioasid
