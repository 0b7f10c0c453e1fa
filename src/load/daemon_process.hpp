// SPDX-License-Identifier: Apache-2.0
// daemon_process.hpp: ioasid-load's ioasidd: the real daemon program started as a child process
// with its socket and state in a directory of ours, ready once it has sent sd_notify READY=1 on a
// private NOTIFY_SOCKET (after rebuilding its state, as under systemd), stopped with SIGTERM.
//
// Thread-safety: none (the load generator's main thread starts and stops it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace ioasid::load {

class DaemonProcess {
 public:
  // program: the ioasidd binary; dir: an existing directory for the socket, the notify socket and
  // the state (dir/state); extra: more options (--no-sync, ...).
  DaemonProcess(std::string program, std::string dir, std::vector<std::string> extra,
                bool show_log);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // The daemon runs on this CPU (before start(); default: anywhere).
  void pin_to(int cpu) { cpu_ = cpu; }
  // Starts it and waits (up to timeout) for READY=1. Returns false with *error set when it could
  // not be started, exited, or was not ready in time (then it is killed).
  bool start(std::chrono::milliseconds timeout, std::string* error);
  // SIGTERM and wait. Returns the exit status (0 for a clean exit), or -1 if it was not running.
  int stop();

  [[nodiscard]] std::string socket() const { return dir_ + "/broker.sock"; }
  [[nodiscard]] std::string state_dir() const { return dir_ + "/state"; }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  std::string program_;
  std::string dir_;
  std::vector<std::string> extra_;
  bool show_log_;
  pid_t pid_ = -1;
  int cpu_ = -1;
};

}  // namespace ioasid::load
