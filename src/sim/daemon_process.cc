// SPDX-License-Identifier: Apache-2.0
// daemon_process.cc: starting, killing and stopping the simulator's ioasidd (daemon_process.hpp).
#include "sim/daemon_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace ioasid::sim {
namespace {

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

}  // namespace

DaemonProcess::DaemonProcess(std::string program, std::vector<std::string> args,
                             std::string log_path)
    : program_(std::move(program)), args_(std::move(args)), log_path_(std::move(log_path)) {}

DaemonProcess::~DaemonProcess() { kill9(); }

std::string DaemonProcess::start() {
  if (pid_ > 0) return "ioasidd is running already";
  // READY=1 arrives on a datagram socket of our own, in the abstract namespace (no file, no
  // path length limit; sd_notify takes a NOTIFY_SOCKET starting with '@' as abstract).
  static unsigned starts = 0;
  const std::string name =
      "ioasid-sim-" + std::to_string(::getpid()) + "-" + std::to_string(++starts);
  const std::string notify = "@" + name;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  const int nfd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (nfd < 0) return std::string("socket: ") + std::strerror(errno);
  if (::bind(nfd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    const std::string e = std::string("bind ") + notify + ": " + std::strerror(errno);
    ::close(nfd);
    return e;
  }
  const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    ::close(nfd);
    return "cannot open " + log_path_ + ": " + std::strerror(errno);
  }
  std::vector<std::string> argv_store = {program_};
  argv_store.insert(argv_store.end(), args_.begin(), args_.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(nfd);
    ::close(log);
    return std::string("fork: ") + std::strerror(errno);
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the simulator is gone already
    ::setenv("NOTIFY_SOCKET", notify.c_str(), 1);
    ::dup2(log, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log);
  pid_ = pid;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string error = "ioasidd did not report READY=1 within 30 s";
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{nfd, POLLIN, 0};
    if (::poll(&p, 1, 20) == 1) {
      char buf[512] = {};
      const ssize_t n = ::recv(nfd, buf, sizeof buf - 1, 0);
      if (n > 0 && std::strstr(buf, "READY=1") != nullptr) {
        error.clear();
        break;
      }
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error =
          program_ + " " + describe_status(status) + " before it was ready (see " + log_path_ + ")";
      break;
    }
  }
  ::close(nfd);
  if (!error.empty()) kill9();
  return error;
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
  return "ioasidd " + describe_status(status) + " on SIGTERM (see " + log_path_ + ")";
}

}  // namespace ioasid::sim
