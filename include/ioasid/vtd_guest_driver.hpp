// SPDX-License-Identifier: Apache-2.0
// vtd_guest_driver.hpp: ioasid::VtdGuestDriver, the guest side of the VT-d virtual command
// interface: one instance per vIOMMU, reading the capability registers, issuing ALLOC / FREE
// through VCMD and polling VCRSP, and registering as the guest space's custom allocator, as the
// Linux v5.8-v6.3 intel-iommu driver did (DOMAIN.md §4.4, §8 items 20, 21, 25).
//
// Spec: VT-d rev 3.0 §10.4.43-45 (VcmdLayout::legacy, the v5.8-v5.14 driver) or rev 3.3
// §10.4.43-46 (VcmdLayout::rev3_3, the v5.15-v6.3 driver); see ioasid/wire/vtd_vcmd.hpp.
//
// Synopsis
//   VtdGuestDriver iommu0(mmio0, {.layout = VcmdLayout::rev3_3});
//   VtdGuestDriver iommu1(mmio1, {.layout = VcmdLayout::rev3_3});
//   iommu0.register_allocator(guest_space);   // gated on CM && SMTS && VCS && VCCAP.PAS
//   iommu1.register_allocator(guest_space);   // same callbacks: joins iommu0's group
//   Id pasid = guest_space.alloc(set, 1, 0xFFFFF, priv).value();  // -> VCMD ALLOC on iommu0
//   iommu0.unregister_allocator();            // hot-unplug: iommu1 serves every ID from now on
//
// Differences from Linux (deliberate): the VCRSP poll is bounded by poll_timeout and returns
// Errc::timed_out instead of panicking; a command that timed out is remembered, and before the
// next one the driver waits for it and frees a PASID it allocated late, so a late response is
// never taken for the next command's answer.
//
// Invariants: at most one command per vIOMMU is outstanding (a per-driver mutex, Linux's
// register_lock); VCMD is written only when VCRSP.IP is clear.
// Thread-safety: every call is safe from any thread. The allocator callbacks run under the guest
// space's writer lock and only call find() on it. register/unregister must not race with the
// destructor.
// Not done here: DMA remapping, invalidation, fault handling; the guest's other PASID users.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/space.hpp"
#include "ioasid/types.hpp"
#include "ioasid/wire/vtd_vcmd.hpp"

namespace ioasid {

// How the driver reaches one vIOMMU's register window (offsets from its base). Tests wire it to a
// VtdVcmdDevice in-process; a real guest maps the MMIO BAR. Accesses never fail.
class MmioAccessor {
 public:
  virtual ~MmioAccessor() = default;
  virtual std::uint64_t read64(std::uint64_t offset) noexcept = 0;
  virtual void write32(std::uint64_t offset, std::uint32_t value) noexcept = 0;
  virtual void write64(std::uint64_t offset, std::uint64_t value) noexcept = 0;
};

struct VtdGuestDriverOptions {
  // The register layout this driver was written for (the guest kernel generation).
  wire::vtd::VcmdLayout layout = wire::vtd::VcmdLayout::rev3_3;
  // Bound on one VCRSP poll. Linux: DMAR_OPERATION_TIMEOUT, 10 s, then a panic.
  std::chrono::nanoseconds poll_timeout = std::chrono::seconds(10);
  // Write VCMD as two 4-byte halves (low, then high) instead of one 8-byte write (32-bit guests).
  bool split_writes = false;
  LogSinkFn log_sink = nullptr;
  void* log_opaque = nullptr;
};

struct VtdGuestDriverStats {
  std::uint64_t commands = 0;  // VCMD writes issued
  std::uint64_t polls = 0;     // VCRSP reads while polling
  std::uint64_t timeouts = 0;
  std::uint64_t allocs = 0;               // ALLOC success
  std::uint64_t alloc_no_pasid = 0;       // ALLOC answered NO_PASID
  std::uint64_t alloc_errors = 0;         // other statuses (io_error)
  std::uint64_t frees = 0;                // FREE success
  std::uint64_t free_errors = 0;          // FREE answered anything else (logged)
  std::uint64_t free_refused_active = 0;  // free callback refused: private data still attached
  std::uint64_t range_refusals = 0;       // alloc callback refused: min < 1 or max > 0xFFFFF
  std::uint64_t late_responses = 0;       // timed-out commands that completed later
};

class IOASID_API VtdGuestDriver {
 public:
  // mmio must outlive the driver. Nothing is accessed until probe() or a command.
  VtdGuestDriver(MmioAccessor& mmio, const VtdGuestDriverOptions& options) noexcept;
  // Unregisters the allocator if registered (hot-unplug).
  ~VtdGuestDriver();
  VtdGuestDriver(const VtdGuestDriver&) = delete;
  VtdGuestDriver& operator=(const VtdGuestDriver&) = delete;

  // Reads CAP, ECAP and, when ECAP.VCS is set, VCCAP (Linux map_iommu()). Returns whether PASID
  // allocation through VCMD is usable: CAP.CM && ECAP.SMTS && ECAP.VCS && VCCAP.PAS.
  // Context: any thread.
  bool probe() noexcept;
  // The last probe()'s answer (false before any probe).
  bool vcmd_capable() const noexcept;
  std::uint64_t cap() const noexcept;
  std::uint64_t ecap() const noexcept;
  std::uint64_t vccap() const noexcept;

  // VCMD ALLOC: write the command, poll VCRSP until IP clears, decode.
  // Returns: the host PASID (20 bits; the driver does not check it, the space does); exhausted
  // (NO_PASID), io_error (any other status: Linux -ENODEV "Unexpected error code"), timed_out
  // (IP still set after poll_timeout, or an earlier command still in progress), unsupported (the
  // last probe() said no, or none ran). Context: any thread; blocks for at most ~2x poll_timeout.
  Result<Id> vcmd_alloc() noexcept;

  // VCMD FREE of pasid. Never fails to the caller: INVALID_PASID, other statuses and timeouts are
  // logged and counted. Context: as vcmd_alloc.
  void vcmd_free(Id pasid) noexcept;

  // Probes, then registers this vIOMMU's allocator ops (the callbacks shared by every
  // VtdGuestDriver, pdata = this) with guest. guest must outlive the registration.
  // Returns: unsupported (gating failed: allocation stays with the space's default allocator),
  // exists (already registered), and every error of Space::register_allocator: try_again (the
  // default allocator holds IDs), no_memory, would_deadlock.
  // Context: not from a callback of guest.
  Result<void> register_allocator(Space& guest) noexcept;

  // Unregisters (hot-unplug); never fails; a no-op when not registered. Another vIOMMU of the
  // group takes over and every ID stays valid.
  void unregister_allocator() noexcept;
  bool registered() const noexcept;

  // The allocator ops this driver registers (one object per driver, callbacks shared by all).
  const AllocatorOps& allocator_ops() const noexcept;
  VtdGuestDriverStats stats() const noexcept;
  const wire::vtd::LayoutSpec& layout() const noexcept;

 private:
  static int ops_alloc(void* pdata, Id min, Id max, Id* out);
  static void ops_free(void* pdata, Id id);
  // One command under mu_: drains a late response, writes VCMD, polls. Returns VCRSP.
  // Raw returns (false: timed out), not Result: these sit on every command (see
  // Space::find_raw for why).
  bool run_locked(std::uint8_t cmd, Id operand, std::uint64_t* rsp) noexcept;
  bool poll_locked(std::uint64_t* rsp) noexcept;
  void write_vcmd_locked(std::uint64_t value) noexcept;
  [[gnu::format(printf, 3, 4)]] void log(LogLevel level, const char* fmt, ...) const noexcept;

  struct Counter {  // bumped from any thread
    std::atomic<std::uint64_t> v{0};
    void inc() noexcept { v.fetch_add(1, std::memory_order_relaxed); }
    std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
  };
  struct SoloCounter {  // bumped under mu_ only: no locked instruction on the poll path
    std::atomic<std::uint64_t> v{0};
    void inc() noexcept {
      v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
  };

  MmioAccessor& mmio_;
  const VtdGuestDriverOptions options_;
  const wire::vtd::LayoutSpec& l_;
  AllocatorOps ops_;
  // Linux iommu->register_lock: one command at a time. A futex word (src/common/internal/
  // futex_mutex.hpp), cheaper than std::mutex on the command path.
  std::atomic<std::uint32_t> mu_{0};
  std::uint8_t stale_cmd_ = 0;  // a command that timed out and may still complete (under mu_)
  mutable std::mutex reg_mu_;   // registration state
  Space* space_ = nullptr;      // the space ops_ is registered with (under reg_mu_)
  std::atomic<Space*> find_space_{nullptr};  // read by the free callback
  std::atomic<std::uint64_t> cap_{0}, ecap_{0}, vccap_{0};
  std::atomic<bool> capable_{false};
  struct {
    // Under mu_ (the command lock).
    SoloCounter commands, polls, timeouts, late_responses, allocs, alloc_no_pasid, alloc_errors,
        frees, free_errors;
    // Outside it.
    Counter free_refused_active, range_refusals;
  } st_;
  Counter free_errors_outside_;  // FREE without virtual command support (added to free_errors)
};

}  // namespace ioasid
