// SPDX-License-Identifier: Apache-2.0
// daemon_process.cc: starting and stopping ioasidd for ioasid-load (daemon_process.hpp).
#include "load/daemon_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ioasid::load {

DaemonProcess::DaemonProcess(std::string program, std::string dir, std::vector<std::string> extra,
                             bool show_log)
    : program_(std::move(program)),
      dir_(std::move(dir)),
      extra_(std::move(extra)),
      show_log_(show_log) {}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool DaemonProcess::start(std::chrono::milliseconds timeout, std::string* error) {
  const std::string notify = dir_ + "/notify";
  ::unlink(notify.c_str());
  sockaddr_un a{};
  if (notify.size() >= sizeof a.sun_path || socket().size() >= sizeof a.sun_path) {
    *error = "directory path too long for a Unix socket: " + dir_;
    return false;
  }
  const int nfd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, notify.c_str(), notify.size() + 1);
  if (nfd < 0 || ::bind(nfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    *error = std::string("notify socket: ") + std::strerror(errno);
    if (nfd >= 0) ::close(nfd);
    return false;
  }
  std::vector<std::string> args = {program_, "--socket", socket(), "--state-dir", state_dir()};
  args.insert(args.end(), extra_.begin(), extra_.end());
  pid_ = ::fork();
  if (pid_ < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(nfd);
    return false;
  }
  if (pid_ == 0) {
    ::setenv("NOTIFY_SOCKET", notify.c_str(), 1);
    if (cpu_ >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu_, &set);
      (void)::sched_setaffinity(0, sizeof set, &set);
    }
    if (!show_log_) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 2);
    }
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const auto until = std::chrono::steady_clock::now() + timeout;
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < until) {
    pollfd p{nfd, POLLIN, 0};
    if (::poll(&p, 1, 20) == 1) {
      char buf[256] = {};
      const ssize_t n = ::recv(nfd, buf, sizeof buf - 1, 0);
      if (n > 0 && std::strstr(buf, "READY=1") != nullptr) ready = true;
    }
    int status = 0;
    if (!ready && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      *error = WIFEXITED(status) && WEXITSTATUS(status) == 127
                   ? program_ + ": cannot be executed"
                   : program_ + " exited before it was ready (status " +
                         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")";
      break;
    }
  }
  ::close(nfd);
  if (!ready && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    *error = program_ + " was not ready in time";
  }
  return ready;
}

int DaemonProcess::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace ioasid::load
