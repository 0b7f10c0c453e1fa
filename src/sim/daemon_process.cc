// SPDX-License-Identifier: Apache-2.0
// daemon_process.cc: starting, killing and stopping the simulator's ioasidd (daemon_process.hpp).
#include "sim/daemon_process.hpp"

#include "common/internal/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace ioasid::sim {

DaemonProcess::DaemonProcess(std::string program, std::vector<std::string> args,
                             std::string log_path)
    : program_(std::move(program)), args_(std::move(args)), log_path_(std::move(log_path)) {}

DaemonProcess::~DaemonProcess() { kill9(); }

std::string DaemonProcess::start() {
  if (pid_ > 0) return "ioasidd is running already";
  internal::ReadyListener ready;
  if (std::string e = ready.open(); !e.empty()) return e;
  const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return "cannot open " + log_path_ + ": " + std::strerror(errno);
  std::vector<std::string> args = {program_};
  args.insert(args.end(), args_.begin(), args_.end());
  const std::string& notify = ready.notify_socket();
  const pid_t parent = ::getpid();
  const pid_t pid = internal::spawn(args, [&] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the simulator is gone already
    ::setenv("NOTIFY_SOCKET", notify.c_str(), 1);
    ::dup2(log, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
    }
  });
  ::close(log);
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  pid_ = pid;
  int status = 0;
  switch (ready.wait(pid_, std::chrono::seconds(30), &status)) {
    case internal::ReadyListener::Outcome::ready:
      return {};
    case internal::ReadyListener::Outcome::exited:
      pid_ = -1;
      return program_ + " " + internal::describe_wait_status(status) +
             " before it was ready (see " + log_path_ + ")";
    case internal::ReadyListener::Outcome::timed_out:
      break;
  }
  kill9();
  return "ioasidd did not report READY=1 within 30 s";
}

void DaemonProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string DaemonProcess::stop() {
  if (pid_ <= 0) return {};
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  return "ioasidd " + internal::describe_wait_status(status) + " on SIGTERM (see " + log_path_ +
         ")";
}

}  // namespace ioasid::sim
