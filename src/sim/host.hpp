// SPDX-License-Identifier: Apache-2.0
// host.hpp: the simulated host as the simulator sees it, in either mode:
//   - in-process: the host Space lives in the simulator; each VM's device models use a
//     LocalBackend on the VM's set. Sessions, grace periods and reclaim follow the daemon's rules
//     (docs/daemon.md "Sessions") so that scenarios mean the same in both modes: a crashed VM's
//     set is kept until the simulator says its grace period is over.
//   - ioasidd: a real daemon (started by the simulator with its store in a state directory, or
//     one already listening on a socket); each VM's device models use a DaemonBackend (its own
//     connection and session); the simulator reads the daemon's state with DaemonAdmin.
//
// Synopsis
//   std::unique_ptr<Host> host = make_in_process_host();
//   auto vm = host->open(/*token=*/100, /*quota=*/64, std::nullopt).value();
//   vm->backend().alloc(1, 0xFFFFF);
//   vm->abandon();                       // the VMM crashed: the set waits for its grace period
//   host->wait_reclaimed(100);           // the grace period is over: the set is torn down
//
// Errors: data calls return Result (Errc); starting and restarting a daemon return a message.
// Thread-safety: one simulation thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ioasid/client.hpp"
#include "ioasid/host_backend.hpp"
#include "ioasid/types.hpp"
#include "sim/daemon_process.hpp"

namespace ioasid::sim {

// One set as the host reports it.
struct HostSet {
  std::uint64_t token = 0;
  std::uint32_t quota = 0;
  std::uint32_t count = 0;
  SetState state = SetState::alive;
};

// A VM's session with the host: the backend its device models share.
class VmSession {
 public:
  virtual ~VmSession() = default;
  virtual HostBackend& backend() noexcept = 0;
  // Whether open() took over the set of an earlier VMM (its PASIDs are still there).
  [[nodiscard]] virtual bool resumed() const noexcept = 0;
  [[nodiscard]] virtual ResumeToken resume_token() const noexcept = 0;
  // The VM is gone: the host frees every PASID of the set and the set itself.
  virtual Result<void> close() noexcept = 0;
  // The VMM died: the connection drops without a goodbye; the host keeps the set for its grace
  // period. The session is unusable afterwards.
  virtual void abandon() noexcept = 0;
};

class Host {
 public:
  virtual ~Host() = default;
  // "in-process", "ioasidd (started by the simulator, state in DIR)", "ioasidd at SOCKET".
  [[nodiscard]] virtual std::string describe() const = 0;
  [[nodiscard]] virtual bool is_daemon() const noexcept = 0;
  // Whether daemon_restart can be done (a daemon the simulator started).
  [[nodiscard]] virtual bool can_restart() const noexcept = 0;

  // Opens the session of VM token (or, with resume, takes over its detached one).
  // Returns: exists (attached elsewhere, or detached and the token does not match), the
  // backend's errors (exhausted, permission_denied, io_error, timed_out).
  virtual Result<std::unique_ptr<VmSession>> open(std::uint64_t token, std::uint32_t quota,
                                                  const std::optional<ResumeToken>& resume) = 0;
  // Returns once the detached session of token is gone (its grace period over and the set torn
  // down). In-process: tears it down now. Returns: timed_out (ioasidd did not reclaim it within
  // the grace period and a margin), io_error.
  virtual Result<void> wait_reclaimed(std::uint64_t token) = 0;

  // The host's view, for the invariant checker.
  virtual Result<std::vector<HostSet>> list_sets() = 0;
  // The live PASIDs of VM token, ascending. Returns: not_found (no such set), io_error.
  virtual Result<std::vector<IdInfo>> list_ids(std::uint64_t token) = 0;

  // daemon_restart: SIGKILL the daemon, start it again on its store, wait until it is ready.
  // Returns an error message (empty on success).
  virtual std::string kill_and_restart() = 0;
  // Fault injection only (quota_backdoor): changes a set's quota behind the VM's back.
  virtual Result<void> backdoor_set_quota(std::uint64_t token, std::uint32_t quota) = 0;
  // The run is over: stops a daemon the simulator started (SIGTERM). Error message or empty.
  virtual std::string stop() = 0;
  // Daemon restarts done so far.
  [[nodiscard]] virtual std::uint64_t restarts() const noexcept = 0;
};

std::unique_ptr<Host> make_in_process_host();

struct DaemonHostOptions {
  // Connect to a daemon already listening here (nothing is started; daemon_restart impossible).
  std::string socket;
  // Otherwise start this ioasidd with its store in state_dir (created if missing; the store of
  // an earlier run there is removed first) and its socket beside it.
  std::string ioasidd;
  std::string state_dir;
  std::uint32_t grace_seconds = 30;
  std::uint32_t max_sessions = 64;
  std::chrono::milliseconds call_timeout{10000};  // per request (a hung daemon fails the run)
};

// Starts (or connects to) the daemon. On failure returns nullptr and sets *error.
std::unique_ptr<Host> make_daemon_host(const DaemonHostOptions& options, std::string* error);

}  // namespace ioasid::sim
