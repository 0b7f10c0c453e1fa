// SPDX-License-Identifier: Apache-2.0
// virtio_iommu_guest_driver.hpp: ioasid::virtio::VirtioIommuGuestDriver, the guest side of a
// virtio-iommu device with the PASID extension: the virtio initialization sequence (feature
// negotiation, config incl. max_pasid, request and event queues), requests over the request
// queue with a bounded wait, fault events from the event queue, and registration as the guest
// IOASID Space's custom allocator (DOMAIN.md §8 items 22-25, docs/virtio-iommu-pasid.md).
//
// Synopsis
//   VirtioIommuGuestDriver viommu0(port0, guest_mem, area0_gpa, {});
//   VirtioIommuGuestDriver viommu1(port1, guest_mem, area1_gpa, {});
//   viommu0.register_allocator(guest_space);   // probes; needs VIRTIO_IOMMU_F_PASID_ALLOC
//   viommu1.register_allocator(guest_space);   // same callbacks: joins viommu0's group
//   Id pasid = guest_space.alloc(set, 1, 0xFFFFF, priv).value();  // ALLOC_PASID on viommu0
//   viommu0.unregister_allocator();            // hot-unplug: viommu1 serves every ID from now on
//
// Allocation range: the callback clips [min, max] to [min, min(max, config.max_pasid)] (nothing
// left: -ENOSPC, no request sent); when the clipped top is below max_pasid and
// F_PASID_MAX_REQ is negotiated, the request carries it as the request-level max_pasid. The guest
// space checks the answer against [min, max] as for any custom allocator.
//
// Requests: one at a time per device (a per-driver lock), each waiting at most `timeout`. A
// request that timed out stays owned by the device; before the next one the driver waits for it
// (bounded), and if it was an ALLOC_PASID that succeeded late, frees that PASID with a
// FREE_PASID: a late completion is never taken for the next request's answer (the VT-d driver's
// rule). While the stale request is still outstanding, new requests fail with timed_out. A device
// that sets NEEDS_RESET fails requests with io_error until probe() runs again.
//
// Guest memory: the driver owns [area_gpa, area_gpa + area_bytes(options)) of guest memory
// (16-byte aligned): both rings, one request buffer pair, the event buffers.
//
// Thread-safety: every call is safe from any thread. The allocator callbacks run under the guest
// space's writer lock and call nothing of the space. register/unregister must not race with the
// destructor.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/guest_memory.hpp"
#include "ioasid/space.hpp"
#include "ioasid/types.hpp"
#include "ioasid/virtio_iommu_types.hpp"
#include "ioasid/virtio_transport.hpp"
#include "ioasid/virtqueue.hpp"
#include "ioasid/wire/virtio_iommu.hpp"

namespace ioasid::virtio {

struct VirtioIommuGuestDriverOptions {
  // Bound on one request's wait (and on draining a timed-out one).
  std::chrono::nanoseconds timeout = std::chrono::seconds(10);
  // Device-type features the driver accepts when offered (the extension's dependencies are
  // enforced: without F_PASID_ALLOC none of 57-59 is accepted; 59 is never accepted).
  std::uint64_t wanted_features =
      vi::feature_bit(vi::kFInputRange) | vi::feature_bit(vi::kFDomainRange) |
      vi::feature_bit(vi::kFMapUnmap) | vi::feature_bit(vi::kFMmio) |
      vi::feature_bit(vi::kFBypassConfig) | vi::feature_bit(vi::kFPasidAlloc) |
      vi::feature_bit(vi::kFPasidMaxReq) | vi::feature_bit(vi::kFPasidBind);
  bool event_idx = true;                  // accept VIRTIO_F_EVENT_IDX when offered
  std::uint16_t request_queue_size = 64;  // rounded down to a power of 2, capped by the device
  std::uint16_t event_queue_size = 8;
  LogSinkFn log_sink = nullptr;
  void* log_opaque = nullptr;
};

struct VirtioIommuGuestDriverStats {
  std::uint64_t requests = 0;           // requests sent
  std::uint64_t kicks = 0;              // notifications sent
  std::uint64_t timeouts = 0;           // waits that expired
  std::uint64_t late_completions = 0;   // timed-out requests that completed later
  std::uint64_t late_allocs_freed = 0;  // PASIDs of late ALLOCs given back
  std::uint64_t used_zero = 0;          // answers with used length 0 (request not understood)
  std::uint64_t allocs = 0;             // ALLOC_PASID S_OK
  std::uint64_t alloc_nomem = 0;        // ALLOC_PASID S_NOMEM
  std::uint64_t alloc_errors = 0;       // other failures
  std::uint64_t frees = 0;              // FREE_PASID S_OK
  std::uint64_t free_errors = 0;        // FREE_PASID anything else (logged)
  std::uint64_t range_refusals = 0;     // alloc callback: [min, max] empty after clipping
  std::uint64_t events = 0;             // fault events read
};

class IOASID_API VirtioIommuGuestDriver {
 public:
  // Guest memory the driver needs at area_gpa.
  static std::uint64_t area_bytes(const VirtioIommuGuestDriverOptions& options) noexcept;

  // port and mem must outlive the driver. Nothing is touched until probe() or register.
  VirtioIommuGuestDriver(VirtioDriverPort& port, const GuestMemory& mem, std::uint64_t area_gpa,
                         const VirtioIommuGuestDriverOptions& options) noexcept;
  // Unregisters the allocator if registered (hot-unplug) and resets the device.
  ~VirtioIommuGuestDriver();
  VirtioIommuGuestDriver(const VirtioIommuGuestDriver&) = delete;
  VirtioIommuGuestDriver& operator=(const VirtioIommuGuestDriver&) = delete;

  // The initialization sequence (virtio 1.2 §3.1.1): reset, ACKNOWLEDGE, DRIVER, features,
  // FEATURES_OK, config, queues, DRIVER_OK. Returns: unsupported (no VIRTIO_F_VERSION_1, or
  // FEATURES_OK refused: the driver sets FAILED), invalid_argument (area outside guest memory or
  // a queue refused), io_error (DRIVER_OK refused).
  Result<void> probe() noexcept;
  [[nodiscard]] bool ready() const noexcept;
  // PASID allocation usable: F_PASID_ALLOC negotiated and config.max_pasid in [1, 0xFFFFF].
  [[nodiscard]] bool pasid_capable() const noexcept;
  [[nodiscard]] std::uint64_t negotiated_features() const noexcept;
  [[nodiscard]] std::uint32_t max_pasid() const noexcept;  // 0 unless pasid_capable()
  [[nodiscard]] wire::virtio_iommu::ConfigPasid config() const noexcept;

  // ---- requests (each returns timed_out, io_error (NEEDS_RESET, used length 0 or a reply too
  // short), unsupported (not probed / feature missing) or the status's Errc
  // (from_virtio_status: NOENT -> not_found, NOMEM -> exhausted, INVAL -> invalid_argument, ...))
  // max_pasid: request-level limit (sent only with F_PASID_MAX_REQ; otherwise must be 0).
  Result<Id> alloc_pasid(std::uint32_t max_pasid = 0) noexcept;
  Result<void> free_pasid(Id pasid) noexcept;
  Result<void> bind_pasid(std::uint32_t endpoint, Id pasid) noexcept;
  Result<void> unbind_pasid(std::uint32_t endpoint, Id pasid) noexcept;
  Result<void> attach(std::uint32_t domain, std::uint32_t endpoint,
                      std::uint32_t flags = 0) noexcept;
  Result<void> detach(std::uint32_t domain, std::uint32_t endpoint) noexcept;
  Result<void> map(std::uint32_t domain, std::uint64_t virt_start, std::uint64_t virt_end,
                   std::uint64_t phys_start, std::uint32_t flags) noexcept;
  Result<void> unmap(std::uint32_t domain, std::uint64_t virt_start,
                     std::uint64_t virt_end) noexcept;

  // The next fault event the device reported (the buffer goes back to the device), if any.
  std::optional<FaultEvent> pop_event() noexcept;

  // ---- allocator registration
  // Probes if needed, then registers this device's ops (callbacks shared by every
  // VirtioIommuGuestDriver, pdata = this) with guest. Returns: unsupported (no PASID allocation),
  // exists (already registered), and Space::register_allocator's errors.
  Result<void> register_allocator(Space& guest) noexcept;
  // Hot-unplug: unregisters; never fails; another device of the group takes over.
  void unregister_allocator() noexcept;
  [[nodiscard]] bool registered() const noexcept;
  [[nodiscard]] const AllocatorOps& allocator_ops() const noexcept { return ops_; }

  [[nodiscard]] VirtioIommuGuestDriverStats stats() const noexcept;

 private:
  struct Reply {
    std::uint32_t used = 0;
    std::array<std::byte, 16> bytes{};  // the start of the writable buffer
  };
  static int ops_alloc(void* pdata, Id min, Id max, Id* out);
  static void ops_free(void* pdata, Id id);
  Result<void> probe_locked() noexcept;
  // Sends one request (under mu_) and waits for its answer.
  Errc run_locked(std::span<const std::byte> readable, std::uint32_t writable_len,
                  Reply* reply) noexcept;
  // Waits at most o_.timeout from the first look that finds no answer (the clock is read only
  // then).
  bool wait_locked(std::uint16_t head, std::uint32_t* used) noexcept;
  bool drain_stale_locked() noexcept;
  Result<void> simple(std::span<const std::byte> readable) noexcept;
  Errc simple_raw(std::span<const std::byte> readable) noexcept;  // simple() without a Result
  void post_event_buffer(std::uint16_t slot) noexcept;
  [[gnu::format(printf, 3, 4)]] void log(LogLevel level, const char* fmt, ...) const noexcept;

  struct Counter {
    std::atomic<std::uint64_t> v{0};
    void inc() noexcept { v.fetch_add(1, std::memory_order_relaxed); }
    // For a counter only written under mu_: no locked instruction.
    void inc_locked() noexcept {
      v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
  };

  VirtioDriverPort& port_;
  const GuestMemory& mem_;
  const std::uint64_t area_;
  const VirtioIommuGuestDriverOptions o_;
  AllocatorOps ops_;

  // One request at a time; queue and probe state. A futex word
  // (src/common/internal/futex_mutex.hpp): one atomic instruction each way when uncontended.
  mutable std::atomic<std::uint32_t> mu_{0};
  DriverQueue rq_, eq_;
  bool ready_ = false;
  bool broken_ = false;                           // NEEDS_RESET seen
  std::uint64_t rbuf_ = 0, wbuf_ = 0, ebuf_ = 0;  // guest addresses of the buffers
  std::byte* rbuf_host_ = nullptr;                // their host pointers (regions are fixed)
  std::byte* wbuf_host_ = nullptr;
  std::uint16_t stale_head_ = 0;
  std::uint8_t stale_type_ = 0;  // 0: none; else the type of a timed-out request
  std::mutex eq_mu_;             // event queue
  std::atomic<std::uint64_t> features_{0};
  std::atomic<std::uint32_t> max_pasid_{0};
  wire::virtio_iommu::ConfigPasid config_{};
  mutable std::mutex reg_mu_;
  Space* space_ = nullptr;  // under reg_mu_
  struct {
    Counter requests, kicks, timeouts, late_completions, late_allocs_freed, used_zero, allocs,
        alloc_nomem, alloc_errors, frees, free_errors, range_refusals, events;
  } st_;
};

}  // namespace ioasid::virtio
