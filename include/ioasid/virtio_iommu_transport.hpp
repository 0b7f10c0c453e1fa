// SPDX-License-Identifier: Apache-2.0
// virtio_iommu_transport.hpp: ioasid::virtio::VirtioIommuTransport, a virtio-iommu device
// (IommuDevice) running over split virtqueues: request queue 0 drained through
// IommuDevice::handle_request, event queue 1 filled with IommuDevice::pop_fault() events
// (struct virtio_iommu_fault, 24 bytes), the transport state machine of VirtioTransport.
//
// Synopsis
//   IommuDevice dev(vm_backend, cfg);
//   VirtioIommuTransport t(dev, guest_memory, {});
//   VirtioIommuGuestDriver drv(t.port(), guest_memory, area, {});   // in-process guest
//   // a VMM: t.process_requestq() on a kick, t.process_eventq() when faults are queued
//
// Thread-safety: as VirtioTransport. The device must outlive the transport.
#pragma once

#include "ioasid/export.h"
#include "ioasid/guest_memory.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_transport.hpp"

namespace ioasid::virtio {

// IommuDevice as a VirtioDeviceModel (queue 0: requests, queue 1: events).
class IOASID_API IommuDeviceModel final : public VirtioDeviceModel {
 public:
  explicit IommuDeviceModel(IommuDevice& dev) noexcept : dev_(dev) {}
  unsigned num_queues() const noexcept override { return 2; }
  bool is_event_queue(unsigned queue) const noexcept override {
    return queue == wire::virtio_iommu::kEventQueue;
  }
  std::uint64_t device_features() const noexcept override { return dev_.device_features(); }
  bool set_driver_features(std::uint64_t f) noexcept override {
    return dev_.set_driver_features(f);
  }
  void read_config(std::uint32_t offset, std::span<std::byte> out) const noexcept override {
    dev_.read_config(offset, out);
  }
  bool write_config(std::uint32_t offset, std::span<const std::byte> in) noexcept override {
    return dev_.write_config(offset, in);
  }
  std::size_t handle_request(unsigned queue, std::span<const std::byte> readable,
                             std::span<std::byte> writable) noexcept override;
  std::optional<std::size_t> next_event(unsigned queue, std::span<std::byte> out) noexcept override;
  void set_event_notifier(std::function<void()> fn) override;
  void reset() noexcept override;

 private:
  IommuDevice& dev_;
  std::mutex mu_;                      // pending_
  std::optional<FaultEvent> pending_;  // popped from the device, waiting for a big enough buffer
};

class IOASID_API VirtioIommuTransport {
 public:
  VirtioIommuTransport(IommuDevice& dev, const GuestMemory& mem,
                       const VirtioTransportOptions& options = {})
      : model_(dev), t_(model_, mem, options) {}

  // The guest's view (what a guest driver is given) and the VMM's.
  VirtioDriverPort& port() noexcept { return t_; }
  VirtioTransport& transport() noexcept { return t_; }

  std::size_t process_requestq() noexcept {
    return t_.process_queue(wire::virtio_iommu::kRequestQueue);
  }
  std::size_t process_eventq() noexcept {
    return t_.process_queue(wire::virtio_iommu::kEventQueue);
  }

 private:
  IommuDeviceModel model_;
  VirtioTransport t_;
};

}  // namespace ioasid::virtio
