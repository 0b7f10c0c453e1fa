// SPDX-License-Identifier: Apache-2.0
// virtio_transport.hpp: the device front-end that runs a virtio device model over split virtqueues
// (ioasid::virtio::VirtioTransport), the interface a device model implements for it
// (VirtioDeviceModel), and the interface a guest driver uses to reach a device (VirtioDriverPort:
// status, features, config, queue addresses, notifications; what virtio-pci's common config and
// notify registers or virtio-mmio's registers give a real guest).
//
// Spec: virtio 1.2 §2.1 (device status), §2.2 (feature bits), §3.1 (initialization), §2.7 (split
// virtqueues; see virtqueue.hpp).
//
// Status rules (virtio 1.2 §2.1, §3.1.1):
//   - Writing 0 resets the device: queues forgotten, features cleared, the model reset.
//   - The driver only adds bits; a write that clears a set bit (other than by writing 0) is
//     ignored. The driver can never set NEEDS_RESET (0x40).
//   - set_driver_features() is taken only while DRIVER is set and FEATURES_OK is not.
//   - FEATURES_OK is kept only if the features are a subset of the offer, include
//     VIRTIO_F_VERSION_1 and the model accepts its part (VirtioDeviceModel::set_driver_features);
//     otherwise the bit reads back clear.
//   - set_queue() works between FEATURES_OK and DRIVER_OK; DRIVER_OK needs FEATURES_OK.
//   - Queues run only while DRIVER_OK is set and FAILED is not. A broken transport on a queue
//     (QueueFault) sets NEEDS_RESET, raises a configuration interrupt and stops that queue until
//     the driver resets the device. A request the model rejects is not a broken transport.
//
// Synopsis (in-process)
//   VirtioTransport t(model, guest_memory, {});
//   t.set_interrupt_handler([&](unsigned q) { ... });  // optional
//   // a guest driver holds t as its VirtioDriverPort: notify(0) processes the request queue
//
// Thread-safety: every member is safe from any thread. Queues are processed under a per-queue
// lock, control-plane calls under a control lock (a reset waits for running queues). Handlers
// run on the processing thread, under the queue's lock: they must not call back into the
// transport.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "ioasid/export.h"
#include "ioasid/guest_memory.hpp"
#include "ioasid/virtqueue.hpp"

namespace ioasid::virtio {

inline constexpr std::uint8_t kStatusAcknowledge = 1;
inline constexpr std::uint8_t kStatusDriver = 2;
inline constexpr std::uint8_t kStatusDriverOk = 4;
inline constexpr std::uint8_t kStatusFeaturesOk = 8;
inline constexpr std::uint8_t kStatusNeedsReset = 0x40;
inline constexpr std::uint8_t kStatusFailed = 0x80;

// The queue number interrupt handlers get for a configuration change (NEEDS_RESET).
inline constexpr unsigned kConfigInterrupt = ~0u;
// Feature bits 24-49 belong to the transport (virtio 1.2 §2.2, §6), the rest to the device type.
inline constexpr std::uint64_t kTransportFeatureMask = 0x0003'FFFF'FF00'0000ull;

// A virtio device type, as the transport drives it.
class VirtioDeviceModel {
 public:
  virtual ~VirtioDeviceModel() = default;
  [[nodiscard]] virtual unsigned num_queues() const noexcept = 0;
  // True for queues the device fills on its own (event queues): the driver posts empty
  // device-writable buffers there.
  [[nodiscard]] virtual bool is_event_queue(unsigned queue) const noexcept = 0;
  // Device-type feature bits (bits of kTransportFeatureMask are ignored).
  [[nodiscard]] virtual std::uint64_t device_features() const noexcept = 0;
  // The driver's device-type bits at FEATURES_OK; false refuses them (FEATURES_OK stays clear).
  virtual bool set_driver_features(std::uint64_t features) noexcept = 0;
  virtual void read_config(std::uint32_t offset, std::span<std::byte> out) const noexcept = 0;
  virtual bool write_config(std::uint32_t offset, std::span<const std::byte> in) noexcept = 0;
  // One chain of a request queue: the gathered readable bytes, a writable scratch; returns the
  // used length (bytes written at the start of writable).
  virtual std::size_t handle_request(unsigned queue, std::span<const std::byte> readable,
                                     std::span<std::byte> writable) noexcept = 0;
  // Event queues: writes the next event into out and returns its length; nullopt when there is
  // none (the buffer is kept for later). A buffer too small for the event may be returned with
  // 0 (the event stays queued for the next buffer).
  virtual std::optional<std::size_t> next_event(unsigned queue,
                                                std::span<std::byte> out) noexcept = 0;
  // fn is called (any thread) when an event becomes available; nullptr clears it.
  virtual void set_event_notifier(std::function<void()> fn) = 0;
  virtual void reset() noexcept = 0;
};

// What a guest driver reaches of a virtio device.
class VirtioDriverPort {
 public:
  virtual ~VirtioDriverPort() = default;
  virtual std::uint8_t get_status() noexcept = 0;
  virtual void set_status(std::uint8_t status) noexcept = 0;
  virtual std::uint64_t get_device_features() noexcept = 0;
  virtual void set_driver_features(std::uint64_t features) noexcept = 0;
  virtual void read_config(std::uint32_t offset, std::span<std::byte> out) noexcept = 0;
  virtual unsigned num_queues() noexcept = 0;
  virtual std::uint16_t queue_max_size(unsigned queue) noexcept = 0;
  // Sets a queue's addresses and enables it. False: refused (wrong state, bad layout).
  virtual bool set_queue(unsigned queue, const VirtqueueLayout& layout) noexcept = 0;
  // Kicks queue.
  virtual void notify(unsigned queue) noexcept = 0;
  // Blocks until an interrupt for queue may have arrived or deadline passes (spurious returns are
  // fine; the driver looks at its used ring). In-process ports return at once.
  virtual void wait_interrupt(unsigned queue,
                              std::chrono::steady_clock::time_point deadline) noexcept = 0;
};

struct VirtioTransportOptions {
  std::uint16_t max_queue_size = 256;
  bool offer_indirect = true;
  bool offer_event_idx = true;
  std::uint32_t max_readable = 4096;  // per chain (DeviceQueueOptions)
  std::uint32_t max_writable = 4096;
  // false: notify() processes the queue on the caller's thread (in-process guests). true:
  // notify() only records the kick and calls the kick handler; someone (a worker thread, an
  // eventfd loop, a test) calls process_pending().
  bool deferred_notify = false;
};

struct VirtioTransportStats {
  std::uint64_t kicks = 0;
  std::uint64_t requests = 0;        // request chains handled
  std::uint64_t events = 0;          // event buffers filled
  std::uint64_t oversized = 0;       // chains answered with used length 0 without the model
  std::uint64_t interrupts = 0;      // queue interrupts raised
  std::uint64_t resets = 0;          // writes of 0 to the status
  std::uint64_t status_refused = 0;  // status writes (or parts) ignored
  std::uint64_t features_refused = 0;
};

class IOASID_API VirtioTransport final : public VirtioDriverPort {
 public:
  static constexpr unsigned kMaxQueues = 8;

  // dev and mem must outlive the transport. The model's event notifier is connected here.
  VirtioTransport(VirtioDeviceModel& dev, const GuestMemory& mem,
                  const VirtioTransportOptions& options);
  ~VirtioTransport() override;
  VirtioTransport(const VirtioTransport&) = delete;
  VirtioTransport& operator=(const VirtioTransport&) = delete;

  // ---- VirtioDriverPort (the guest's side) ----
  std::uint8_t get_status() noexcept override;
  void set_status(std::uint8_t status) noexcept override;
  std::uint64_t get_device_features() noexcept override;
  void set_driver_features(std::uint64_t features) noexcept override;
  void read_config(std::uint32_t offset, std::span<std::byte> out) noexcept override;
  unsigned num_queues() noexcept override;
  std::uint16_t queue_max_size(unsigned queue) noexcept override;
  bool set_queue(unsigned queue, const VirtqueueLayout& layout) noexcept override;
  void notify(unsigned queue) noexcept override;
  void wait_interrupt(unsigned queue,
                      std::chrono::steady_clock::time_point deadline) noexcept override;
  // The driver writes config (forwarded to the model). False: refused.
  bool write_config(std::uint32_t offset, std::span<const std::byte> in) noexcept;

  // ---- the device's side ----
  // Processes queue: drains a request queue (one handle_request per chain; used idx published
  // once per pass over the ring, normally once per call, and at most one interrupt) or fills event
  // buffers while the model has events. Returns the chains completed.
  // Does nothing unless DRIVER_OK is set, FAILED is not and the queue is enabled and unbroken.
  std::size_t process_queue(unsigned queue) noexcept;
  // Processes every queue with a recorded kick or event (deferred mode). Returns the chains.
  std::size_t process_pending() noexcept;
  // Called (processing thread) when a queue wants an interrupt, with kConfigInterrupt when the
  // device sets NEEDS_RESET. Both handlers are set up front, before any queue runs.
  void set_interrupt_handler(std::function<void(unsigned queue)> fn);
  // Called when notify() records a kick in deferred mode, or the model reports an event.
  void set_kick_handler(std::function<void(unsigned queue)> fn);

  [[nodiscard]] std::uint64_t offered_features() const noexcept { return offered_; }
  [[nodiscard]] std::uint64_t negotiated_features() const noexcept;
  [[nodiscard]] QueueFault queue_fault(unsigned queue) noexcept;
  [[nodiscard]] DeviceQueueStats queue_stats(unsigned queue) noexcept;
  [[nodiscard]] VirtioTransportStats stats() const noexcept;

 private:
  struct Queue;
  void reset_locked() noexcept;
  void interrupt(unsigned queue) noexcept;
  void record_kick(unsigned queue) noexcept;
  // process_queue(); kicked: count a kick of an in-process notify() under the queue's lock.
  std::size_t process(unsigned queue, bool kicked) noexcept;
  std::size_t serve_requests(Queue& q, unsigned queue, bool* interrupt) noexcept;

  struct Counter {
    std::atomic<std::uint64_t> v{0};
    void inc() noexcept { v.fetch_add(1, std::memory_order_relaxed); }
    // For a counter only ever written under one lock: no locked instruction.
    void add_locked(std::uint64_t n) noexcept {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
  };
  struct Queue {
    // The queue's lock: a futex word (src/common/internal/futex_mutex.hpp), one atomic instruction
    // each way when uncontended.
    std::atomic<std::uint32_t> mu{0};
    DeviceQueue q;
    bool enabled = false;  // under mu
    // This queue's share of VirtioTransportStats, written under mu (stats() sums them).
    Counter kicks, requests, events, oversized, interrupts;
  };

  VirtioDeviceModel& dev_;
  const GuestMemory& mem_;
  const VirtioTransportOptions o_;
  const unsigned nq_;
  const std::uint64_t offered_;
  std::mutex ctl_mu_;  // status and feature writes, queue setup, reset
  std::atomic<std::uint8_t> status_{0};
  std::uint64_t driver_features_ = 0;  // under ctl_mu_
  std::atomic<std::uint64_t> negotiated_{0};
  std::atomic<std::uint32_t> pending_{0};  // queues with a recorded kick / event (bit per queue)
  std::array<Queue, kMaxQueues> queues_;
  std::function<void(unsigned)> on_interrupt_;  // set before use, read without a lock
  std::function<void(unsigned)> on_kick_;
  struct {
    // kicks: deferred ones and kicks of a queue that does not exist; interrupts: configuration
    // interrupts. The rest of both, and requests, events, oversized: per queue.
    Counter kicks, interrupts, resets, status_refused, features_refused;
  } st_;
};

}  // namespace ioasid::virtio
