// SPDX-License-Identifier: Apache-2.0
// test_daemon.hpp: test support for ioasidd: starts the built daemon (IOASIDD_PATH, a compile
// definition) as a real child process with its state in a temporary directory, waits for its
// sd_notify READY=1 on a private NOTIFY_SOCKET, stops or kills it; a raw protocol connection
// for byte-level tests; and run_program() for the tools (ioasidctl, ioasid-load) as subprocesses.
// Header-only, shared by the daemon, client, ioasidctl and load generator test suites.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "broker/proto.hpp"
#include "common/internal/child_process.hpp"

namespace ioasid::testing {

namespace b = ioasid::broker;
namespace bw = ioasid::wire::broker;

inline std::string make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ioasidd-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

// Runs ioasidd. The directory (and the state in it) outlives restarts of the process.
class DaemonProcess {
 public:
  explicit DaemonProcess(std::string dir = make_temp_dir()) : dir_(std::move(dir)) {}
  ~DaemonProcess() {
    if (pid_ > 0) kill9();
    std::error_code ec;
    if (owns_dir_) std::filesystem::remove_all(dir_, ec);
  }
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string socket() const { return dir_ + "/sock"; }
  [[nodiscard]] std::string state_dir() const { return dir_ + "/state"; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  void keep_dir() { owns_dir_ = false; }
  // The next start() passes the listening socket as systemd socket activation does.
  void use_socket_activation() { activate_ = true; }

  // Starts ioasidd with --socket and --state-dir in dir() plus extra; returns true once it
  // reported READY=1, false if it exited first (exit_status() says how).
  bool start(std::vector<std::string> extra = {}) {
    notify_ = std::make_unique<internal::ReadyListener>();
    internal::ReadyListener& ready = *notify_;
    if (!ready.open().empty()) std::abort();
    std::vector<std::string> args = {IOASIDD_PATH, "--socket", socket(), "--state-dir",
                                     state_dir()};
    args.insert(args.end(), extra.begin(), extra.end());
    int listen_fd = -1;
    if (activate_) {
      // Socket activation: the socket exists before the daemon, which inherits it as fd 3.
      ::unlink(socket().c_str());
      listen_fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un la{};
      la.sun_family = AF_UNIX;
      std::strncpy(la.sun_path, socket().c_str(), sizeof la.sun_path - 1);
      if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&la), sizeof la) != 0 ||
          ::listen(listen_fd, 16) != 0) {
        std::abort();
      }
    }
    const std::string& notify = ready.notify_socket();
    pid_ = internal::spawn(args, [&] {
      if (listen_fd >= 0) {
        if (listen_fd != 3) {
          ::dup2(listen_fd, 3);
          ::close(listen_fd);
        }
        ::setenv("LISTEN_FDS", "1", 1);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
      }
      ::setenv("NOTIFY_SOCKET", notify.c_str(), 1);
      for (const auto& [name, value] : env_) ::setenv(name.c_str(), value.c_str(), 1);
      if (!verbose()) {
        const int devnull = ::open("/dev/null", O_WRONLY);
        ::dup2(devnull, 2);
      }
    });
    if (listen_fd >= 0) ::close(listen_fd);
    if (pid_ < 0) std::abort();
    int status = 0;
    switch (ready.wait(pid_, std::chrono::seconds(30), &status)) {
      case internal::ReadyListener::Outcome::ready:
        return true;
      case internal::ReadyListener::Outcome::exited:
        pid_ = -1;
        status_ = status;
        return false;
      case internal::ReadyListener::Outcome::timed_out:
        break;
    }
    return false;  // still running, not ready: the destructor (or kill9) reaps it
  }

  // The next start()s set name=value in the daemon's environment.
  void set_env(std::string name, std::string value) {
    env_.emplace_back(std::move(name), std::move(value));
  }

  // After start(): waits for the daemon's next sd_notify message holding assignment ("WATCHDOG=1")
  // and returns it whole, or "" when none came within the timeout.
  std::string next_notification(const char* assignment, std::chrono::milliseconds timeout) {
    if (notify_ == nullptr || pid_ <= 0) return {};
    int status = 0;
    switch (notify_->wait_for(assignment, pid_, timeout, &status)) {
      case internal::ReadyListener::Outcome::ready:
        return notify_->last_message();
      case internal::ReadyListener::Outcome::exited:
        pid_ = -1;
        status_ = status;
        break;
      case internal::ReadyListener::Outcome::timed_out:
        break;
    }
    return {};
  }

  // SIGKILL and reap.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
  }
  // SIGTERM and reap; returns the wait status.
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    return status_;
  }
  [[nodiscard]] bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  [[nodiscard]] int exit_status() const { return status_; }

  static bool verbose() { return std::getenv("IOASIDD_TEST_VERBOSE") != nullptr; }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool owns_dir_ = true;
  bool activate_ = false;
  std::vector<std::pair<std::string, std::string>> env_;
  std::unique_ptr<internal::ReadyListener> notify_;  // the NOTIFY_SOCKET of the last start()
};

// Runs ioasidd to completion (for command-line and policy errors); returns the wait status and
// stores stderr in *err.
inline int run_daemon_to_exit(const std::vector<std::string>& extra, std::string* err) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) std::abort();
  std::vector<std::string> args = {IOASIDD_PATH};
  args.insert(args.end(), extra.begin(), extra.end());
  const pid_t pid = internal::spawn(args, [&] {
    ::dup2(pipefd[1], 2);
    ::dup2(pipefd[1], 1);
    ::close(pipefd[0]);
  });
  if (pid < 0) std::abort();
  ::close(pipefd[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0)
    err->append(buf, static_cast<std::size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// What a program run by run_program() did.
struct ProgramResult {
  int status = -1;  // wait status
  std::string out;  // stdout
  std::string err;  // stderr
  [[nodiscard]] int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// Runs path with args to completion, stdin from /dev/null, capturing stdout and stderr. env holds
// "NAME=value" entries to set and "NAME" entries to unset in the child. before_exec (if any) runs
// in the child just before execv (e.g. to drop privileges).
inline ProgramResult run_program(const std::string& path, const std::vector<std::string>& args,
                                 const std::vector<std::string>& env = {},
                                 void (*before_exec)() = nullptr) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) std::abort();
  std::vector<std::string> all = {path};
  all.insert(all.end(), args.begin(), args.end());
  const pid_t pid = internal::spawn(all, [&] {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    for (const std::string& e : env) {
      const auto eq = e.find('=');
      if (eq == std::string::npos) {
        ::unsetenv(e.c_str());
      } else {
        ::setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1);
      }
    }
    if (before_exec != nullptr) before_exec();
  });
  if (pid < 0) std::abort();
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ProgramResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  ::waitpid(pid, &r.status, 0);
  return r;
}

// A raw protocol connection (blocking, with a receive timeout).
class RawConn {
 public:
  explicit RawConn(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    timeval tv{10, 0};
    if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  [[nodiscard]] int fd() const { return fd_; }

  bool send_bytes(std::span<const std::byte> bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }
  bool send(std::uint64_t rid, const b::Request& r) {
    return send_bytes(b::encode_request(rid, r).span());
  }

  // Reads one reply frame; false on EOF, timeout or a malformed frame. The reply's list views
  // point into this object's buffer.
  bool recv(b::Reply* out, std::uint64_t* rid = nullptr) {
    buf_.resize(b::kHeaderSize);
    if (!read_exact(buf_.data(), b::kHeaderSize)) return false;
    auto h = b::decode_header(buf_);
    if (!h) return false;
    buf_.resize(h->frame_size());
    if (!read_exact(buf_.data() + b::kHeaderSize, h->size)) return false;
    auto r = b::decode_reply(*h, std::span<const std::byte>(buf_).subspan(b::kHeaderSize));
    if (!r) return false;
    if (rid != nullptr) *rid = h->request_id;
    *out = *r;
    return true;
  }
  // send + recv; status of the reply (or 1 when there was none).
  b::Reply call(std::uint64_t rid, const b::Request& r) {
    b::Reply out;
    out.status = 1;
    if (!send(rid, r) || !recv(&out)) out.status = 1;
    return out;
  }
  // True when the daemon closed the connection (EOF) within the receive timeout.
  bool closed_by_peer() {
    std::byte x[256];
    while (true) {
      const ssize_t n = ::recv(fd_, x, sizeof x, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  std::uint64_t hello(std::uint64_t features = bw::kAllFeatures) {
    auto r = call(1, b::HelloRequest{1, features});
    return r.status == 0 ? std::get<b::HelloReply>(r.body).features : ~std::uint64_t{0};
  }

 private:
  bool read_exact(std::byte* p, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      const ssize_t r = ::recv(fd_, p + done, n - done, 0);
      if (r <= 0) return false;
      done += static_cast<std::size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
  std::vector<std::byte> buf_;
};

}  // namespace ioasid::testing
