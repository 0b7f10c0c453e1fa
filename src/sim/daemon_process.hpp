// SPDX-License-Identifier: Apache-2.0
// daemon_process.hpp: sim::DaemonProcess, a real ioasidd run by the simulator as a child process:
// started with --socket and --state-dir, ready when it sends READY=1 on a private NOTIFY_SOCKET
// (after it rebuilt its space from the store, docs/daemon.md), killed with SIGKILL and restarted
// on the same store for daemon_restart events, stopped with SIGTERM at the end. Its log goes to
// ioasidd.log in the state directory. The child gets PR_SET_PDEATHSIG, so it never outlives the
// simulator.
// Thread-safety: one thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace ioasid::sim {

class DaemonProcess {
 public:
  // args: every argument after the program (socket, state dir, grace, ...).
  DaemonProcess(std::string program, std::vector<std::string> args, std::string log_path);
  ~DaemonProcess();  // SIGKILL if still running
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts it and waits (up to 30 s) for READY=1. Returns an error message, empty on success.
  std::string start();
  // SIGKILL and reap.
  void kill9();
  // SIGTERM and reap. Returns an error message if it did not exit with status 0.
  std::string stop();
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

 private:
  std::string program_;
  std::vector<std::string> args_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace ioasid::sim
