// SPDX-License-Identifier: Apache-2.0
// vtd_device.hpp: ioasid::VtdVcmdDevice, the register-level model of the Intel VT-d virtual command
// registers (VCCAP / VCMD / VCRSP) that a VMM wires to the guest's MMIO accesses, so that a guest
// VT-d driver allocates PASIDs from the host's system-wide space (DOMAIN.md §4, §8 items 18-19).
//
// Spec: VT-d rev 3.0 §10.4.43-45 (VcmdLayout::legacy, Linux v5.8-v5.14 guests) or VT-d rev 3.3
// §10.4.43-46 (VcmdLayout::rev3_3, Linux v5.15-v6.3 guests), chosen per device; the offsets, fields
// and codes are the tables of ioasid/wire/vtd_vcmd.hpp.
//
// Synopsis
//   LocalBackend vm1(host_space, vm1_set);
//   auto dev = VtdVcmdDevice::create(vm1, {.layout = VcmdLayout::rev3_3}).value();
//   // VMM MMIO trap handlers:
//   dev->mmio_write(0xE00, 8, 0x1);                    // VCMD <- ALLOC
//   std::uint64_t rsp = dev->mmio_read(0xE10, 8);      // VCRSP: PASID << 16, SC 0, IP 0
//   cap |= dev->cap_bits(); ecap |= dev->ecap_bits();   // what the VMM advertises
//
// Register semantics (documented decisions where the spec leaves room):
//   - Accesses: aligned 8-byte, or aligned 4-byte halves. Anything else (other sizes, unaligned)
//     is ignored (reads return 0) and counted in bad_accesses. Offsets outside the registers of
//     the layout read 0 and ignore writes (unknown_accesses).
//   - CAP (0x08) and ECAP (0x10) read the configured capability bits; VCCAP reads its value.
//     All three and VCRSP are read-only: writes are ignored (ro_writes).
//   - VCMD: an 8-byte write, or the high half (offset +4) after a low half, runs the command; a low
//     half alone only latches; a high half with no latched low half is ignored (split_orphans).
//     VCMD reads return the last command accepted.
//   - A VCMD write is ignored (ignored_disabled) unless ECAP.VCS and VCCAP.PAS are set, and
//     ignored (ignored_busy) while VCRSP.IP is set; both halves are subject to this.
//   - Accepted: VCRSP = IP at once; the command runs (inline in immediate mode, on a worker thread
//     in asynchronous mode); then VCRSP = result | status, IP clear (released last).
//   - ALLOC -> backend alloc in [pasid_min, pasid_max]; exhausted or over quota (and any other
//     backend failure) -> NO_PASID (to_vtd_status, the VT-d column of the error table in
//     src/common/errc.cc). A backend answer outside that range is freed back, NO_PASID.
//   - FREE -> backend free of the operand; not allocated, another VM's, FREE_PENDING, out of range
//     or any backend failure -> INVALID_PASID, and nothing changes.
//   - Any other command code (0 included) -> UNDEFINED_CMD. Reserved VCMD bits (outside bits 7:0
//     and the 20-bit operand field, and the operand field of ALLOC) are ignored and counted
//     (reserved_bits): the command runs on the defined fields.
//
// Thread-safety: every call is safe from any thread (several vCPUs, the worker). mmio_read never
// blocks; mmio_write serializes command acceptance on an internal mutex and, in immediate mode,
// runs the backend call inside the write. The backend must not call back into the device.
// Not done here: VT-d translation, invalidation or fault registers; interrupts (VCMD has none);
// migration of the register state.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/host_backend.hpp"
#include "ioasid/types.hpp"
#include "ioasid/wire/vtd_vcmd.hpp"

namespace ioasid {

enum class VtdCompletion : std::uint8_t {
  immediate = 0,     // the command completes inside the mmio_write that issues it
  asynchronous = 1,  // a worker completes it; the guest sees IP set and polls
};

struct VtdVcmdDeviceOptions {
  wire::vtd::VcmdLayout layout = wire::vtd::VcmdLayout::rev3_3;
  VtdCompletion completion = VtdCompletion::immediate;
  // Register values the model reads back (CAP / ECAP: only the bits this model defines matter).
  std::uint64_t cap = wire::vtd::kCapCm;
  std::uint64_t ecap = wire::vtd::kEcapPasid | wire::vtd::kEcapSmts | wire::vtd::kEcapVcs;
  std::uint64_t vccap = wire::vtd::kVccapPas;
  // The host PASIDs ALLOC asks the backend for, inclusive: [pasid_min, pasid_max] within
  // [1, 0xFFFFF].
  Id pasid_min = wire::vtd::kVcmdPasidMin;
  Id pasid_max = wire::vtd::kVcmdPasidMax;
  // Asynchronous mode: extra time the worker waits before running each command (tests, latency
  // injection).
  std::chrono::microseconds async_delay{0};
  // Where guest-triggered anomalies are reported (rate-limiting is the sink's business).
  LogSinkFn log_sink = nullptr;
  void* log_opaque = nullptr;
};

// Counters since creation (relaxed snapshots; each one is exact).
struct VtdVcmdStats {
  std::uint64_t reads = 0;     // accepted reads
  std::uint64_t writes = 0;    // accepted writes (any register)
  std::uint64_t commands = 0;  // commands run
  std::uint64_t allocs = 0;    // ALLOC success
  std::uint64_t alloc_no_pasid = 0;
  std::uint64_t frees = 0;  // FREE success
  std::uint64_t free_invalid_pasid = 0;
  std::uint64_t undefined_cmds = 0;
  std::uint64_t ignored_busy = 0;         // VCMD writes while IP was set
  std::uint64_t ignored_disabled = 0;     // VCMD writes without ECAP.VCS + VCCAP.PAS
  std::uint64_t bad_accesses = 0;         // unaligned or odd-sized accesses
  std::uint64_t unknown_accesses = 0;     // offsets outside the registers
  std::uint64_t ro_writes = 0;            // writes to read-only registers
  std::uint64_t reserved_bits = 0;        // commands with reserved bits set (ignored)
  std::uint64_t split_orphans = 0;        // high-half VCMD writes without a latched low half
  std::uint64_t backend_errors = 0;       // backend failures other than exhausted/quota/not_found
  std::uint64_t backend_bad_answers = 0;  // ALLOC answers outside [pasid_min, pasid_max]
};

class IOASID_API VtdVcmdDevice {
 public:
  // Creates a device over backend (the VM's set), which must outlive it. Asynchronous mode starts
  // the worker thread.
  // Returns: the device; invalid_argument (pasid_min < 1, pasid_max > 0xFFFFF, min > max),
  // no_memory, io_error (the worker thread could not start).
  static Result<std::unique_ptr<VtdVcmdDevice>> create(
      HostBackend& backend, const VtdVcmdDeviceOptions& options) noexcept;

  // Stops the worker; a command in progress completes first. Context: no concurrent MMIO.
  ~VtdVcmdDevice();
  VtdVcmdDevice(const VtdVcmdDevice&) = delete;
  VtdVcmdDevice& operator=(const VtdVcmdDevice&) = delete;

  // A guest read of size bytes (4 or 8) at offset in the VT-d register window.
  // Returns the register value (the addressed half for 4-byte reads); 0 for ignored accesses.
  // Context: any thread; never blocks.
  std::uint64_t mmio_read(std::uint64_t offset, unsigned size) noexcept;

  // A guest write of size bytes (4 or 8) at offset. Never fails: ignored accesses are counted.
  // Context: any thread; in immediate mode runs the host backend call before returning.
  void mmio_write(std::uint64_t offset, unsigned size, std::uint64_t value) noexcept;

  // Waits until no command is in progress or timeout passes. Returns true when idle.
  // Context: any thread except the worker.
  bool wait_idle(std::chrono::nanoseconds timeout) noexcept;

  // The bits the VMM must advertise in its own CAP / ECAP / VCCAP registers.
  std::uint64_t cap_bits() const noexcept;
  std::uint64_t ecap_bits() const noexcept;
  std::uint64_t vccap() const noexcept;
  const wire::vtd::LayoutSpec& layout() const noexcept;
  VtdCompletion completion() const noexcept;
  VtdVcmdStats stats() const noexcept;

 private:
  struct Impl;
  explicit VtdVcmdDevice(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ioasid
