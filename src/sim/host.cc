// SPDX-License-Identifier: Apache-2.0
// host.cc: the in-process host (a Space with the daemon's session rules) and the ioasidd host (a
// real daemon, DaemonBackend sessions, DaemonAdmin views); see host.hpp.
#include "sim/host.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <thread>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"

namespace ioasid::sim {
namespace {

// ---- in-process ---------------------------------------------------------------------------

class InProcessHost;

class LocalSession final : public VmSession {
 public:
  LocalSession(InProcessHost& host, std::uint64_t token, Space& space, SetId set, bool resumed,
               ResumeToken resume)
      : host_(host), token_(token), backend_(space, set), resumed_(resumed), resume_(resume) {}
  ~LocalSession() override;
  HostBackend& backend() noexcept override { return backend_; }
  bool resumed() const noexcept override { return resumed_; }
  ResumeToken resume_token() const noexcept override { return resume_; }
  Result<void> close() noexcept override;
  void abandon() noexcept override;

 private:
  InProcessHost& host_;
  std::uint64_t token_;
  LocalBackend backend_;
  bool resumed_;
  ResumeToken resume_;
  bool done_ = false;
};

class InProcessHost final : public Host {
 public:
  InProcessHost() : space_(Space::create({}).value()) {}

  std::string describe() const override { return "in-process"; }
  bool is_daemon() const noexcept override { return false; }
  bool can_restart() const noexcept override { return false; }

  Result<std::unique_ptr<VmSession>> open(std::uint64_t token, std::uint32_t quota,
                                          const std::optional<ResumeToken>& resume) override {
    auto it = sessions_.find(token);
    if (it != sessions_.end()) {
      Entry& e = it->second;
      if (e.attached || !resume || *resume != e.resume) return fail(Errc::exists);
      e.attached = true;
      return std::unique_ptr<VmSession>(
          std::make_unique<LocalSession>(*this, token, *space_, e.set, true, e.resume));
    }
    auto set = space_->create_set(token, quota);
    if (!set) return fail(set.error());
    // Resume tokens are a counter here: nothing guesses them, and runs stay deterministic.
    ResumeToken t{};
    const std::uint64_t n = ++tokens_issued_;
    for (unsigned i = 0; i < 8; ++i) t[i] = static_cast<std::uint8_t>(n >> (8 * i));
    t[15] = 0x51;
    sessions_[token] = Entry{*set, t, true};
    return std::unique_ptr<VmSession>(
        std::make_unique<LocalSession>(*this, token, *space_, *set, false, t));
  }

  Result<void> wait_reclaimed(std::uint64_t token) override {
    auto it = sessions_.find(token);
    if (it == sessions_.end()) return {};
    if (it->second.attached) return fail(Errc::busy);
    return teardown(token);
  }

  Result<std::vector<HostSet>> list_sets() override {
    auto sets = space_->list_sets();
    if (!sets) return fail(sets.error());
    std::vector<HostSet> out;
    for (const SetInfo& s : *sets) {
      out.push_back(HostSet{s.owner_token, s.quota, s.count, s.state});
    }
    return out;
  }

  Result<std::vector<IdInfo>> list_ids(std::uint64_t token) override {
    auto set = space_->find_set(token);
    if (!set) return fail(Errc::not_found);
    return space_->list_ids(*set);
  }

  std::string kill_and_restart() override { return "the in-process host cannot restart"; }

  Result<void> backdoor_set_quota(std::uint64_t token, std::uint32_t quota) override {
    auto set = space_->find_set(token);
    if (!set) return fail(Errc::not_found);
    return space_->set_quota(*set, quota);
  }

  std::string stop() override {
    if (!space_->check_invariants()) return "the host space's internal invariants do not hold";
    return {};
  }
  std::uint64_t restarts() const noexcept override { return 0; }

  // As ioasidd tears a session down (docs/daemon.md "Sessions"): drop every reference the
  // session's devices held (unbind), then destroy the set, which frees every PASID.
  Result<void> teardown(std::uint64_t token) {
    auto it = sessions_.find(token);
    if (it == sessions_.end()) return fail(Errc::not_found);
    const SetId set = it->second.set;
    sessions_.erase(it);
    auto ids = space_->list_ids(set);
    if (!ids) return fail(ids.error());
    for (const IdInfo& id : *ids) {
      for (std::uint32_t b = 0; b < id.binds; ++b) (void)space_->unbind(set, id.id);
    }
    auto gone = space_->destroy_set(set);
    if (!gone) return fail(gone.error());
    return {};
  }
  void detach(std::uint64_t token) {
    auto it = sessions_.find(token);
    if (it != sessions_.end()) it->second.attached = false;
  }

 private:
  struct Entry {
    SetId set;
    ResumeToken resume{};
    bool attached = false;
  };
  std::unique_ptr<Space> space_;
  std::map<std::uint64_t, Entry> sessions_;
  std::uint64_t tokens_issued_ = 0;
};

LocalSession::~LocalSession() {
  if (!done_) abandon();
}
Result<void> LocalSession::close() noexcept {
  if (done_) return fail(Errc::not_found);
  done_ = true;
  return host_.teardown(token_);
}
void LocalSession::abandon() noexcept {
  if (done_) return;
  done_ = true;
  host_.detach(token_);
}

// ---- ioasidd ------------------------------------------------------------------------------

class DaemonSession final : public VmSession {
 public:
  explicit DaemonSession(std::unique_ptr<DaemonBackend> b) : b_(std::move(b)) {}
  HostBackend& backend() noexcept override { return *b_; }
  bool resumed() const noexcept override { return b_->resumed(); }
  ResumeToken resume_token() const noexcept override { return b_->resume_token(); }
  Result<void> close() noexcept override { return b_->close_session(); }
  // Destroying a DaemonBackend closes its connection without CLOSE_SESSION: for the daemon that
  // is exactly a VMM that died (the kernel closes a dead process's sockets the same way).
  void abandon() noexcept override { b_.reset(); }

 private:
  std::unique_ptr<DaemonBackend> b_;
};

class DaemonHost final : public Host {
 public:
  DaemonHost(const DaemonHostOptions& o, std::string socket, std::unique_ptr<DaemonProcess> d)
      : o_(o), socket_(std::move(socket)), daemon_(std::move(d)) {}

  std::string connect_admin() {
    auto admin = DaemonAdmin::open(socket_, o_.call_timeout);
    if (!admin) {
      return "cannot open an admin connection to " + socket_ + ": " + to_string(admin.error());
    }
    admin_ = std::move(*admin);
    // The simulator checks the daemon's state: it must be an admin (the policy).
    auto sets = admin_->list_sets();
    if (!sets) {
      return "ioasidd at " + socket_ + " refused LIST_SETS (" + to_string(sets.error()) +
             "): the simulator needs admin rights in its policy";
    }
    return {};
  }

  std::string describe() const override {
    if (daemon_) return "ioasidd (started by the simulator, state in " + o_.state_dir + ")";
    return "ioasidd at " + socket_;
  }
  bool is_daemon() const noexcept override { return true; }
  bool can_restart() const noexcept override { return daemon_ != nullptr; }

  Result<std::unique_ptr<VmSession>> open(std::uint64_t token, std::uint32_t quota,
                                          const std::optional<ResumeToken>& resume) override {
    DaemonOptions d;
    d.socket_path = socket_;
    d.vm_token = token;
    d.quota = quota;
    d.resume_token = resume;
    d.timeout = o_.call_timeout;
    d.backoff_initial = std::chrono::milliseconds(5);
    d.backoff_max = std::chrono::milliseconds(200);
    auto b = DaemonBackend::open(d);
    if (!b) return fail(b.error());
    return std::unique_ptr<VmSession>(std::make_unique<DaemonSession>(std::move(*b)));
  }

  Result<void> wait_reclaimed(std::uint64_t token) override {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(o_.grace_seconds) +
                       std::chrono::seconds(15);
    while (true) {
      auto sets = admin_->list_sets();
      if (!sets) return fail(sets.error());
      bool present = false;
      for (const SetInfo& s : *sets) present = present || s.owner_token == token;
      if (!present) return {};
      if (std::chrono::steady_clock::now() > until) return fail(Errc::timed_out);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  Result<std::vector<HostSet>> list_sets() override {
    auto sets = admin_->list_sets();
    if (!sets) return fail(sets.error());
    std::vector<HostSet> out;
    for (const SetInfo& s : *sets) out.push_back(HostSet{s.owner_token, s.quota, s.count, s.state});
    return out;
  }

  Result<std::vector<IdInfo>> list_ids(std::uint64_t token) override {
    return admin_->list_ids(token);
  }

  std::string kill_and_restart() override {
    if (!daemon_) return "ioasidd was not started by the simulator";
    admin_.reset();
    daemon_->kill9();
    ++restarts_;
    if (std::string e = daemon_->start(); !e.empty()) return e;
    return connect_admin();
  }

  Result<void> backdoor_set_quota(std::uint64_t token, std::uint32_t quota) override {
    return admin_->set_quota(token, quota);
  }

  std::string stop() override {
    admin_.reset();
    if (!daemon_) return {};
    return daemon_->stop();
  }
  std::uint64_t restarts() const noexcept override { return restarts_; }

 private:
  DaemonHostOptions o_;
  std::string socket_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<DaemonAdmin> admin_;
  std::uint64_t restarts_ = 0;
};

}  // namespace

std::unique_ptr<Host> make_in_process_host() { return std::make_unique<InProcessHost>(); }

std::unique_ptr<Host> make_daemon_host(const DaemonHostOptions& o, std::string* error) {
  if (!o.socket.empty()) {
    auto host = std::make_unique<DaemonHost>(o, o.socket, nullptr);
    if (std::string e = host->connect_admin(); !e.empty()) {
      *error = e;
      return nullptr;
    }
    return host;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(o.state_dir, ec);
  if (ec) {
    *error = "cannot create the state directory " + o.state_dir + ": " + ec.message();
    return nullptr;
  }
  // Every run starts from an empty store: the simulator's record of acknowledged operations
  // begins with nothing. Only the files ioasidd itself makes there are removed.
  for (const char* f : {"ioasidd.sqlite3", "ioasidd.sqlite3-wal", "ioasidd.sqlite3-shm",
                        "ioasidd.sqlite3-journal", "ioasidd.sock", "ioasidd.log"}) {
    fs::remove(fs::path(o.state_dir) / f, ec);
  }
  const std::string socket = (fs::absolute(o.state_dir) / "ioasidd.sock").string();
  if (socket.size() >= 108) {
    *error = "the socket path " + socket + " is longer than a Unix socket allows (107 bytes)";
    return nullptr;
  }
  if (::access(o.ioasidd.c_str(), X_OK) != 0) {
    *error = "cannot run ioasidd at " + o.ioasidd + " (give its path with --ioasidd)";
    return nullptr;
  }
  std::vector<std::string> args = {"--socket",
                                   socket,
                                   "--state-dir",
                                   o.state_dir,
                                   "--grace",
                                   std::to_string(o.grace_seconds),
                                   "--max-sessions-per-client",
                                   std::to_string(o.max_sessions)};
  auto daemon = std::make_unique<DaemonProcess>(o.ioasidd, std::move(args),
                                                (fs::path(o.state_dir) / "ioasidd.log").string());
  if (std::string e = daemon->start(); !e.empty()) {
    *error = e;
    return nullptr;
  }
  auto host = std::make_unique<DaemonHost>(o, socket, std::move(daemon));
  if (std::string e = host->connect_admin(); !e.empty()) {
    *error = e;
    return nullptr;
  }
  return host;
}

}  // namespace ioasid::sim
