// SPDX-License-Identifier: Apache-2.0
// checker.hpp: the invariant checker of ioasid-sim, the simulator's record of what the host
// acknowledged, and the history ring printed when a run stops.
//
// The invariants (docs/simulator.md "Invariants" says how each is checked):
//   single_owner           no PASID is owned by two VMs (host sets, and the guests' holdings)
//   guest_pasid_owned      every PASID a guest holds is owned by its VM on the host, in the state
//                          and with the binds the guest believes
//   quota                  no VM holds more than its quota; the host enforces the scenario's quota
//   no_leak                the host holds nothing for a VM beyond what its guest holds (checked
//                          at every release and scan), and nothing at all once the VM is gone
//   allocator_after_unplug a guest that still has a vIOMMU after a hot-unplug keeps a working
//                          allocator, served by a vIOMMU that is still plugged
//   durable_ack            after a daemon restart the host holds exactly what it acknowledged
// A violation throws Violation; an operation that fails in a way no invariant covers (a request
// that should work returning io_error) throws RunFailure. Both carry the message; the simulator
// prints them with the history and exits non-zero.
//
// Two records are kept apart on purpose: the guests' holdings (GuestPasid, kept by each VM's
// guest model) and the acknowledged record (AckedPasid, kept here from the replies the
// simulator got). A guest that misbehaves diverges from the host; a record that was altered
// diverges from the host; either is caught without trusting the other.
// Thread-safety: one simulation thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "ioasid/errc.hpp"
#include "ioasid/types.hpp"
#include "sim/host.hpp"
#include "sim/scenario.hpp"

namespace ioasid::sim {

enum class Invariant : std::uint8_t {
  single_owner = 0,
  guest_pasid_owned,
  quota,
  no_leak,
  allocator_after_unplug,
  durable_ack,
};
inline constexpr unsigned kInvariants = 6;
const char* to_string(Invariant i) noexcept;

struct Violation : std::runtime_error {
  Violation(Invariant inv, const std::string& detail)
      : std::runtime_error(detail), invariant(inv) {}
  Invariant invariant;
};
struct RunFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "0x2a": how PASIDs are written everywhere in the simulator's output.
std::string hex(Id id);

// The last entries of what happened (events and guest operations), for a violation report.
class History {
 public:
  explicit History(std::size_t capacity) : capacity_(capacity) {}
  void add(std::uint64_t step, std::string what);
  [[nodiscard]] const std::deque<std::pair<std::uint64_t, std::string>>& entries() const {
    return entries_;
  }
  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }

 private:
  std::size_t capacity_;
  std::deque<std::pair<std::uint64_t, std::string>> entries_;
  std::uint64_t total_ = 0;
};

// A PASID as a guest model holds it.
struct GuestPasid {
  int via = -1;  // vIOMMU (slot index) whose driver allocated it; -1: none did
  ViommuKind kind = ViommuKind::vtd;
  bool orphaned = false;  // its allocator group is gone (the guest frees it through another)
  int bound_slot = -1;    // vIOMMU whose device it is bound to; -1: not bound
  std::uint32_t endpoint = 0;
  bool freed = false;  // freed while bound: FREE_PENDING on the host until the unbind
  [[nodiscard]] bool bound() const noexcept { return bound_slot >= 0; }
};

// A PASID as the host acknowledged it to the simulator.
struct AckedPasid {
  IdState state = IdState::active;
  std::uint32_t binds = 0;
  Id spid = kInvalidId;
  friend bool operator==(const AckedPasid&, const AckedPasid&) = default;
};

// What the checker needs to know of one VM for a full scan.
struct VmView {
  std::string name;
  std::uint64_t token = 0;
  std::uint32_t quota = 0;
  bool running = false;
  const std::map<Id, GuestPasid>* guest = nullptr;  // running VMs only
};

struct CheckCounts {
  std::uint64_t incremental = 0;  // per-operation checks of one PASID
  std::uint64_t full_scans = 0;   // scans of the whole host state
  std::uint64_t restart_checks = 0;
};

class Checker {
 public:
  Checker(const Scenario& s, Host& host) : s_(s), host_(host), acked_(s.vms.size()) {}

  // ---- the record of acknowledged operations ----
  void ack_alloc(int vm, Id id);
  void ack_free(int vm, Id id, bool released);  // released: gone; else FREE_PENDING
  void ack_bind(int vm, Id id, Id spid);
  void ack_unbind(int vm, Id id, bool released);
  void ack_gone(int vm);  // the VM's set was torn down
  [[nodiscard]] const std::map<Id, AckedPasid>& acked(int vm) const {
    return acked_[static_cast<std::size_t>(vm)];
  }
  // Fault injection only (alter_record).
  std::map<Id, AckedPasid>& acked_for_fault(int vm) { return acked_[static_cast<std::size_t>(vm)]; }

  // ---- incremental checks ----
  // A guest model takes / gives up a PASID (single_owner across guests).
  void claim(int vm, Id id);
  void unclaim(int vm, Id id);
  // After an operation on one PASID: the host's answer to the VM's own query for it against
  // what the guest holds (rec: nullptr when the guest holds nothing by that number).
  void check_pasid(int vm, Id id, const GuestPasid* rec, const Result<IdInfo>& host);
  // After an allocation: the VM holds no more than its quota.
  void check_quota(int vm);

  // ---- scans of the whole host state ----
  // after_restart: also compare the host with the acknowledged record exactly (durable_ack).
  void full_scan(const std::vector<VmView>& vms, bool after_restart);
  // The VM is gone (shut down, or reclaimed after a crash): the host holds nothing for it.
  void check_gone(const std::string& name, std::uint64_t token);

  [[noreturn]] void violate(Invariant inv, const std::string& detail);
  [[nodiscard]] const CheckCounts& counts() const noexcept { return counts_; }

 private:
  const Scenario& s_;
  Host& host_;
  std::vector<std::map<Id, AckedPasid>> acked_;
  std::map<Id, int> claims_;  // PASID -> the VM whose guest holds it
  CheckCounts counts_;
};

}  // namespace ioasid::sim
