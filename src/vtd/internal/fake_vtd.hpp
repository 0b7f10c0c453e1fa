// SPDX-License-Identifier: Apache-2.0
// fake_vtd.hpp: test doubles for the VT-d virtual command tests (test-only, never linked into the
// library):
//   - ScriptedBackend: a HostBackend that forwards to another one, but can answer a fixed PASID,
//     fail with a fixed error, or block each call until the test opens a gate (to hold a command
//     in progress in asynchronous mode);
//   - RecordingMmio: an MmioAccessor that logs every access before forwarding it, to compare with
//     the sequence a Linux guest performs;
//   - StuckMmio: registers whose VCRSP.IP never clears (a wedged host).
// Thread-safety: ScriptedBackend is thread-safe; the others are single-threaded.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ioasid/host_backend.hpp"
#include "ioasid/vtd_guest_driver.hpp"
#include "ioasid/wire/vtd_vcmd.hpp"

namespace ioasid::internal {

class ScriptedBackend final : public HostBackend {
 public:
  explicit ScriptedBackend(HostBackend& next) noexcept : next_(next) {}

  // ALLOC answers this PASID (recorded as allocated in nothing) when set.
  Id fixed_answer = kInvalidId;
  // Every ALLOC / FREE fails with this when set.
  Errc alloc_error{};
  Errc free_error{};

  // While closed, alloc/free wait until open_gate().
  void close_gate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = false;
  }
  void open_gate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      gate_open_ = true;
    }
    cv_.notify_all();
  }
  // Blocks until a call is waiting at the closed gate.
  void wait_for_waiter() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return waiters_ > 0; });
  }
  std::vector<Id> frees() {
    std::lock_guard<std::mutex> lock(mu_);
    return frees_;
  }

  Errc alloc_raw(Id min, Id max, Id* out) noexcept override {
    gate();
    if (alloc_error != Errc{}) return alloc_error;
    if (fixed_answer != kInvalidId) {
      *out = fixed_answer;
      return Errc{};
    }
    return next_.alloc_raw(min, max, out);
  }
  Errc free_raw(Id id) noexcept override {
    gate();
    {
      std::lock_guard<std::mutex> lock(mu_);
      frees_.push_back(id);
    }
    if (free_error != Errc{}) return free_error;
    if (id == fixed_answer) return Errc{};
    return next_.free_raw(id);
  }
  Result<void> get(Id id) noexcept override { return next_.get(id); }
  Result<bool> put(Id id) noexcept override { return next_.put(id); }
  Result<void> bind(Id id, Id spid) noexcept override { return next_.bind(id, spid); }
  Result<void> unbind(Id id) noexcept override { return next_.unbind(id); }
  Result<IdInfo> query(Id id) noexcept override { return next_.query(id); }
  Result<Id> find_by_spid(Id spid) noexcept override { return next_.find_by_spid(spid); }
  Result<SetInfo> set_info() noexcept override { return next_.set_info(); }

 private:
  void gate() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiters_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return gate_open_; });
    --waiters_;
  }

  HostBackend& next_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool gate_open_ = true;
  int waiters_ = 0;
  std::vector<Id> frees_;
};

struct MmioAccess {
  char op;  // 'r' read64, 'w' write64, 'h' write32
  std::uint64_t offset;
  std::uint64_t value;
  friend bool operator==(const MmioAccess&, const MmioAccess&) = default;
};

class RecordingMmio final : public MmioAccessor {
 public:
  explicit RecordingMmio(MmioAccessor& next) noexcept : next_(next) {}
  std::vector<MmioAccess> log;

  std::uint64_t read64(std::uint64_t offset) noexcept override {
    const std::uint64_t v = next_.read64(offset);
    log.push_back({'r', offset, v});
    return v;
  }
  void write32(std::uint64_t offset, std::uint32_t value) noexcept override {
    log.push_back({'h', offset, value});
    next_.write32(offset, value);
  }
  void write64(std::uint64_t offset, std::uint64_t value) noexcept override {
    log.push_back({'w', offset, value});
    next_.write64(offset, value);
  }

 private:
  MmioAccessor& next_;
};

// Capability registers that pass the gating, and a VCRSP stuck with IP set until release().
class StuckMmio final : public MmioAccessor {
 public:
  explicit StuckMmio(wire::vtd::VcmdLayout layout) noexcept : l_(wire::vtd::layout_spec(layout)) {}
  std::uint64_t vcrsp = wire::vtd::kVcrspIp;
  int writes = 0;

  std::uint64_t read64(std::uint64_t offset) noexcept override {
    if (offset == wire::vtd::kCapRegOffset) return wire::vtd::kCapCm;
    if (offset == wire::vtd::kEcapRegOffset) {
      return wire::vtd::kEcapSmts | wire::vtd::kEcapVcs | wire::vtd::kEcapPasid;
    }
    if (offset == l_.vccap_offset) return wire::vtd::kVccapPas;
    if (offset == l_.vcrsp_offset) return vcrsp;
    return 0;
  }
  void write32(std::uint64_t, std::uint32_t) noexcept override { ++writes; }
  void write64(std::uint64_t, std::uint64_t) noexcept override { ++writes; }

 private:
  const wire::vtd::LayoutSpec& l_;
};

}  // namespace ioasid::internal
