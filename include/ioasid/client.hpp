// SPDX-License-Identifier: Apache-2.0
// client.hpp: the ioasidd client library: ioasid::DaemonBackend, the HostBackend of one VM whose
// PASIDs live in the host daemon (shared by every VMM on the host), and ioasid::DaemonAdmin, the
// administration requests. docs/protocol.md is the protocol; docs/daemon.md the daemon.
//
// Synopsis
//   auto vm = DaemonBackend::open({.socket_path = "/run/ioasid/broker.sock", .vm_token = 42,
//                                  .quota = 64});
//   Id pasid = vm.value()->alloc(1, 0xFFFFF).value();
//   ResumeToken t = vm.value()->resume_token();   // keep it to resume after a VMM restart
//
// Reconnection: when the connection breaks (the daemon restarted, a malformed reply), a call
// reconnects with exponential backoff (capped, jittered), resumes the session with its resume
// token and sends the request again with the same request id, so that the daemon answers a
// request it already executed with its stored reply (exactly-once: a retried ALLOC never yields a
// second PASID). There is no overall deadline: only DaemonOptions::timeout bounds a call
// (Errc::timed_out; the request may or may not have been executed then). If the session cannot
// be resumed (its grace period expired: the daemon reclaimed the set; or another process took it
// over with the resume token), every call returns not_found.
//
// Thread-safety: every call is thread-safe. Threads calling one object at the same time (a VMM's
// vCPU or queue threads) share its connection with their requests pipelined: each has its own in
// flight, up to the daemon's HELLO max_in_flight (at most 32; more callers wait for a slot), and
// after a reconnect every one of them is resent with its request id. A single thread costs one
// send and one receive per call. Destroying a DaemonBackend (no call may be running) closes the
// connection and keeps the session for the daemon's grace period (as a crash would);
// close_session() ends it and frees its PASIDs.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/host_backend.hpp"
#include "ioasid/types.hpp"

namespace ioasid {

using ResumeToken = std::array<std::uint8_t, 16>;

struct DaemonOptions {
  std::string socket_path;
  std::uint64_t vm_token = 0;  // the VM's identity; the policy decides who may open it
  std::uint32_t quota = 0;     // PASIDs the VM's set may hold (>= 1 for a new session)
  // Resume the session of an earlier process of this VM (a VMM restart) instead of opening one;
  // when it is gone a new session is opened (resumed() says which).
  std::optional<ResumeToken> resume_token;
  std::chrono::milliseconds timeout{0};  // per call (open() included); 0: none
  std::chrono::milliseconds backoff_initial{10};
  std::chrono::milliseconds backoff_max{1000};
};

namespace client_detail {
class Channel;
}

class IOASID_API DaemonBackend final : public HostBackend {
 public:
  // Connects, negotiates and opens (or resumes) the VM's session, retrying connection failures
  // with backoff until options.timeout (forever without one).
  // Returns: invalid_argument (empty path, quota 0 without a resume token), permission_denied (the
  // policy), exists (the VM's session is attached to another connection, or detached and not
  // resumable with this token), exhausted (capacity, the per-client session cap), timed_out,
  // no_memory, io_error.
  static Result<std::unique_ptr<DaemonBackend>> open(const DaemonOptions& options) noexcept;
  ~DaemonBackend() override;

  Errc alloc_raw(Id min, Id max, Id* out) noexcept override;
  Errc free_raw(Id id) noexcept override;
  Result<void> get(Id id) noexcept override;
  Result<bool> put(Id id) noexcept override;
  Result<void> bind(Id id, Id spid) noexcept override;
  Result<void> unbind(Id id) noexcept override;
  Result<IdInfo> query(Id id) noexcept override;
  Result<Id> find_by_spid(Id spid) noexcept override;
  Result<SetInfo> set_info() noexcept override;

  // Ends the session: the daemon frees every PASID of the set. Later calls return not_found.
  Result<void> close_session() noexcept;

  // The token to resume this session with (all zero if the daemon does not offer resumption).
  [[nodiscard]] ResumeToken resume_token() const noexcept;
  // Whether open() resumed an existing session (its PASIDs are still there).
  [[nodiscard]] bool resumed() const noexcept;
  [[nodiscard]] std::uint32_t grace_seconds() const noexcept;
  // Connections made after the first (a test and monitoring aid).
  [[nodiscard]] std::uint64_t reconnects() const noexcept;

  explicit DaemonBackend(std::unique_ptr<client_detail::Channel> channel) noexcept;

 private:
  std::unique_ptr<client_detail::Channel> ch_;
};

// The daemon's counters (STATS): the space's, then the daemon's own.
struct DaemonStats {
  SpaceStats space{};
  std::uint64_t clients = 0;
  std::uint64_t sessions = 0;
  std::uint64_t detached_sessions = 0;
  std::uint64_t requests = 0;
  std::uint64_t error_replies = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t journal_commits = 0;
  std::uint64_t journal_commit_ns = 0;
  std::uint64_t journal_flushes = 0;  // WAL flushes the replies waited for
};

// The daemon's identity and configuration (STATUS), and what its HELLO said on this connection.
struct DaemonStatus {
  std::uint32_t daemon_version = 0;  // (major << 16) | (minor << 8) | patch, as IOASID_VERSION
  std::uint32_t pid = 0;
  std::uint64_t started_ms = 0;  // CLOCK_REALTIME, milliseconds since the epoch
  unsigned id_bits = 0;
  bool durable = true;  // false: started with --no-sync
  std::uint32_t grace_seconds = 0;
  std::uint32_t max_sessions_per_client = 0;
  std::uint32_t max_clients = 0;
  std::uint64_t max_output = 0;
  // HELLO
  std::uint32_t protocol_version = 0;
  std::uint64_t features = 0;  // negotiated feature bits (docs/protocol.md §3)
  std::uint32_t max_in_flight = 0;
  std::uint32_t max_payload = 0;
};

// One PASID of any VM, with its owner.
struct DaemonIdInfo {
  std::uint64_t vm_token = 0;
  IdInfo info{};
};

struct AdminOptions {
  std::string socket_path;
  std::chrono::milliseconds timeout{0};  // per call (open() included); 0: none
  // false: open() fails at once when the socket cannot be connected to (io_error: nothing listens
  // there; permission_denied: the socket's mode refuses these credentials) instead of retrying
  // with backoff until the timeout. Later calls still reconnect.
  bool wait_for_daemon = true;
};

// Administration (the policy must make the caller an admin, else permission_denied).
class IOASID_API DaemonAdmin {
 public:
  // Connects and negotiates every feature. Returns: invalid_argument (empty path), timed_out,
  // io_error and permission_denied (without wait_for_daemon, see AdminOptions), no_memory.
  static Result<std::unique_ptr<DaemonAdmin>> open(const AdminOptions& options) noexcept;
  static Result<std::unique_ptr<DaemonAdmin>> open(const std::string& socket_path,
                                                   std::chrono::milliseconds timeout = {}) noexcept;
  ~DaemonAdmin();

  // Every set (SetInfo::owner_token is the VM token; SetInfo::set is not meaningful).
  Result<std::vector<SetInfo>> list_sets() noexcept;
  // The live PASIDs of a VM, ascending. Returns: not_found (no such VM).
  Result<std::vector<IdInfo>> list_ids(std::uint64_t vm_token) noexcept;
  // Returns: not_found, invalid_argument (0 or below the count), exhausted, busy.
  Result<void> set_quota(std::uint64_t vm_token, std::uint32_t quota) noexcept;
  Result<DaemonStats> stats() noexcept;
  Result<DaemonStatus> status() noexcept;
  // Any live PASID and its owner VM. Returns: not_found (not allocated), out_of_range (outside
  // the space).
  Result<DaemonIdInfo> query_id(Id id) noexcept;

  explicit DaemonAdmin(std::unique_ptr<client_detail::Channel> channel) noexcept;

 private:
  std::unique_ptr<client_detail::Channel> ch_;
};

}  // namespace ioasid
