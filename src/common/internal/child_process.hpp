// SPDX-License-Identifier: Apache-2.0
// child_process.hpp: starting a program (ioasidd, systemd-socket-activate) as a child process and
// waiting for its sd_notify READY=1, shared by everything that runs a real daemon: the daemon and
// C ABI tests (src/daemon/test_daemon.hpp), ioasid-load, ioasid-sim and the systemd unit test.
//
// ReadyListener is the receiving end of sd_notify: a datagram socket in the abstract namespace,
// unique to this process and call (no file to clean up, no path length limit; sd_notify takes a
// NOTIFY_SOCKET beginning with '@' as abstract). spawn() forks and execs with a setup step run in
// the child first (environment, descriptors, CPU affinity).
//
// Thread-safety: none; one thread starts a child and waits for it. The setup step runs between
// fork and exec, so it must only call what is safe there (setenv, dup2, close, open are used).
// Not part of the library's API: header-only, for programs and tests of this tree.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace ioasid::internal {

// "exited with status 3", "killed by signal 9".
inline std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

class ReadyListener {
 public:
  enum class Outcome { ready, exited, timed_out };

  ReadyListener() = default;
  ~ReadyListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  ReadyListener(const ReadyListener&) = delete;
  ReadyListener& operator=(const ReadyListener&) = delete;

  // Binds the socket. Returns "" or what failed.
  std::string open() {
    static std::atomic<unsigned> counter{0};
    const std::string name = "ioasid-ready-" + std::to_string(::getpid()) + "-" +
                             std::to_string(counter.fetch_add(1) + 1);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
      const std::string e = "bind @" + name + ": " + std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      return e;
    }
    address_ = "@" + name;
    return {};
  }

  // The value for the child's NOTIFY_SOCKET.
  [[nodiscard]] const std::string& notify_socket() const { return address_; }

  // Waits until READY=1 arrives, pid exits (then reaped, its wait status in *status), or the
  // timeout passes.
  Outcome wait(pid_t pid, std::chrono::milliseconds timeout, int* status) {
    return wait_for("READY=1", pid, timeout, status);
  }

  // The same for the next message holding `assignment` (say "WATCHDOG=1"): Outcome::ready when it
  // came. Messages without it are consumed and dropped.
  Outcome wait_for(const char* assignment, pid_t pid, std::chrono::milliseconds timeout,
                   int* status) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) == 1) {
        char buf[512] = {};
        const ssize_t n = ::recv(fd_, buf, sizeof buf - 1, 0);
        if (n > 0) {
          last_message_.assign(buf, static_cast<std::size_t>(n));
          if (std::strstr(buf, assignment) != nullptr) return Outcome::ready;
        }
      }
      if (::waitpid(pid, status, WNOHANG) == pid) return Outcome::exited;
    }
    return Outcome::timed_out;
  }

  // The last message received, whole ("WATCHDOG=1\nSTATUS=...").
  [[nodiscard]] const std::string& last_message() const { return last_message_; }

 private:
  int fd_ = -1;
  std::string address_;
  std::string last_message_;
};

// fork, then in the child setup() and execv(args[0], args); exit status 127 when execv fails.
// Returns the child's pid, or -1 with errno set (fork failed).
template <class Setup>
pid_t spawn(const std::vector<std::string>& args, Setup&& setup) {
  std::vector<std::string> store = args;  // execv wants char*; built before fork
  std::vector<char*> argv;
  argv.reserve(store.size() + 1);
  for (auto& a : store) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  std::forward<Setup>(setup)();
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

}  // namespace ioasid::internal
