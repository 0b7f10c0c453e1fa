// SPDX-License-Identifier: Apache-2.0
// virtio_iommu_transport.cc: IommuDeviceModel, the glue between IommuDevice and VirtioTransport:
// requests to handle_request, fault events from pop_fault encoded into event buffers.
#include "ioasid/virtio_iommu_transport.hpp"

#include "virtio/request_parser.hpp"

namespace ioasid::virtio {

// IommuDeviceModel::handle_request is in iommu_device.cc, where IommuDevice::handle_request's
// fast path compiles into it (the transport's one virtual call per chain goes straight there).

std::optional<std::size_t> IommuDeviceModel::next_event(unsigned queue,
                                                        std::span<std::byte> out) noexcept {
  if (queue != wire::virtio_iommu::kEventQueue) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  if (!pending_) pending_ = dev_.pop_fault();
  if (!pending_) return std::nullopt;
  if (!encode_fault(out, *pending_)) return 0;  // too small: the event waits for the next buffer
  pending_.reset();
  return sizeof(wire::virtio_iommu::Fault);
}

void IommuDeviceModel::set_event_notifier(std::function<void()> fn) {
  dev_.set_fault_notifier(std::move(fn));
}

void IommuDeviceModel::reset() noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.reset();
  }
  dev_.reset();
}

}  // namespace ioasid::virtio
