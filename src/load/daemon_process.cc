// SPDX-License-Identifier: Apache-2.0
// daemon_process.cc: starting and stopping ioasidd for ioasid-load (daemon_process.hpp).
#include "load/daemon_process.hpp"

#include "common/internal/child_process.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
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
  if (socket().size() >= sizeof(sockaddr_un{}.sun_path)) {
    *error = "directory path too long for a Unix socket: " + dir_;
    return false;
  }
  internal::ReadyListener ready;
  if (std::string e = ready.open(); !e.empty()) {
    *error = "notify socket: " + e;
    return false;
  }
  std::vector<std::string> args = {program_, "--socket", socket(), "--state-dir", state_dir()};
  args.insert(args.end(), extra_.begin(), extra_.end());
  const std::string& notify = ready.notify_socket();
  pid_ = internal::spawn(args, [&] {
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
  });
  if (pid_ < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  int status = 0;
  switch (ready.wait(pid_, timeout, &status)) {
    case internal::ReadyListener::Outcome::ready:
      return true;
    case internal::ReadyListener::Outcome::exited:
      pid_ = -1;
      *error =
          WIFEXITED(status) && WEXITSTATUS(status) == 127
              ? program_ + ": cannot be executed"
              : program_ + " " + internal::describe_wait_status(status) + " before it was ready";
      return false;
    case internal::ReadyListener::Outcome::timed_out:
      break;
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  *error = program_ + " was not ready in time";
  return false;
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
