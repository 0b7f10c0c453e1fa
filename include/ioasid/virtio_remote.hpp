// SPDX-License-Identifier: Apache-2.0
// virtio_remote.hpp: a virtio device and its guest driver in two processes. Guest memory is a
// memfd both map (MemfdRegion); the data path is the split virtqueues in it, with kicks and
// interrupts over eventfds (one kick eventfd per queue, one interrupt eventfd, as KVM's
// ioeventfd / irqfd give a VMM); the control path (status, features, config, queue addresses:
// what a real guest reaches through virtio-pci's common config) is a SOCK_SEQPACKET socket pair
// with one fixed-size message per access and one reply.
//
// Synopsis
//   auto remote = VirtioRemoteDevice::create(transport).value();   // the VMM process
//   pid = fork();  // or pass remote->guest_fds() over a unix socket (SCM_RIGHTS)
//   child:  VirtioRemotePort port(remote->guest_fds());
//           VirtioIommuGuestDriver drv(port, guest_mem_of_the_memfd, area, {});
//   parent: remote->run(std::chrono::seconds(30));  // until the guest closes its socket
//
// Thread-safety: VirtioRemoteDevice::run is one thread; stop() may be called from any thread.
// VirtioRemotePort: one thread at a time (the guest driver serializes its calls).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/virtio_transport.hpp"

namespace ioasid::virtio {

// The descriptors a guest process needs (inherited across fork, or sent with SCM_RIGHTS).
struct VirtioRemoteFds {
  int control = -1;                                     // the guest's end of the socket pair
  std::array<int, VirtioTransport::kMaxQueues> kick{};  // per queue, -1 past num_queues
  int interrupt = -1;
  unsigned num_queues = 0;
};

class IOASID_API VirtioRemoteDevice {
 public:
  // Creates the socket pair and eventfds and sets t's interrupt handler (writes the interrupt
  // eventfd). t must be in immediate mode (deferred_notify = false) and outlive this object.
  // Returns: io_error (socketpair / eventfd failed).
  static Result<std::unique_ptr<VirtioRemoteDevice>> create(VirtioTransport& t);
  ~VirtioRemoteDevice();
  VirtioRemoteDevice(const VirtioRemoteDevice&) = delete;
  VirtioRemoteDevice& operator=(const VirtioRemoteDevice&) = delete;

  [[nodiscard]] const VirtioRemoteFds& guest_fds() const noexcept { return guest_; }
  // After fork, the device process closes the guest's control end so that the guest's exit
  // is seen as end of file.
  void close_guest_control() noexcept;

  // Serves control messages and kicks until the guest closes its control socket (returns {}),
  // stop() is called ({}), or nothing happens for idle_timeout (timed_out). io_error on a
  // socket error.
  Result<void> run(std::chrono::milliseconds idle_timeout) noexcept;
  void stop() noexcept;

  [[nodiscard]] std::uint64_t control_messages() const noexcept { return messages_; }

 private:
  explicit VirtioRemoteDevice(VirtioTransport& t) noexcept : t_(t) {}
  bool serve_one() noexcept;  // false: peer closed or broken

  VirtioTransport& t_;
  int control_ = -1;  // the device's end
  std::array<int, VirtioTransport::kMaxQueues> kick_{};
  int interrupt_ = -1;
  int stop_ = -1;
  VirtioRemoteFds guest_{};
  std::uint64_t messages_ = 0;
};

// The guest side: a VirtioDriverPort over the control socket and the eventfds.
class IOASID_API VirtioRemotePort final : public VirtioDriverPort {
 public:
  // Does not own the descriptors.
  explicit VirtioRemotePort(const VirtioRemoteFds& fds) noexcept : fds_(fds) {}

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

 private:
  // One control access; a dead device reads as all-ones / false (as a removed PCI device).
  std::uint64_t call(std::uint32_t op, std::uint32_t queue, std::uint64_t value,
                     const VirtqueueLayout* layout, std::span<std::byte> data) noexcept;
  VirtioRemoteFds fds_;
};

}  // namespace ioasid::virtio
