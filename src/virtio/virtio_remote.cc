// SPDX-License-Identifier: Apache-2.0
// virtio_remote.cc: VirtioRemoteDevice (control socket server + kick eventfds -> VirtioTransport,
// interrupts -> eventfd) and VirtioRemotePort (the guest's side).
//
// Control message (fixed 48 bytes, host byte order: both ends run on the same host):
// {u32 op; u32 queue; u64 value; u64 desc; u64 avail; u64 used; u32 size; u32 len}; reply:
// {u64 value; u8 data[64]} (data: read_config bytes).
#include "ioasid/virtio_remote.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace ioasid::virtio {
namespace {

enum Op : std::uint32_t {
  kGetStatus = 1,
  kSetStatus,
  kGetFeatures,
  kSetFeatures,
  kReadConfig,
  kNumQueues,
  kQueueMax,
  kSetQueue,
};

struct Msg {
  std::uint32_t op;
  std::uint32_t queue;
  std::uint64_t value;
  std::uint64_t desc, avail, used;
  std::uint32_t size;
  std::uint32_t len;
};
struct Reply {
  std::uint64_t value;
  std::byte data[64];
};

void close_fd(int& fd) noexcept {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

Result<std::unique_ptr<VirtioRemoteDevice>> VirtioRemoteDevice::create(VirtioTransport& t) {
  std::unique_ptr<VirtioRemoteDevice> d(new (std::nothrow) VirtioRemoteDevice(t));
  if (!d) return fail(Errc::no_memory);
  d->kick_.fill(-1);
  d->guest_.kick.fill(-1);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return fail(Errc::io_error);
  d->control_ = sv[0];
  d->guest_.control = sv[1];
  d->guest_.num_queues = t.num_queues();
  for (unsigned q = 0; q < d->guest_.num_queues; ++q) {
    d->kick_[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->kick_[q] < 0) return fail(Errc::io_error);
    d->guest_.kick[q] = d->kick_[q];
  }
  d->interrupt_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  d->stop_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (d->interrupt_ < 0 || d->stop_ < 0) return fail(Errc::io_error);
  d->guest_.interrupt = d->interrupt_;
  const int irq = d->interrupt_;
  t.set_interrupt_handler([irq](unsigned) {
    const std::uint64_t one = 1;
    (void)!write(irq, &one, sizeof(one));
  });
  return d;
}

VirtioRemoteDevice::~VirtioRemoteDevice() {
  t_.set_interrupt_handler(nullptr);
  close_fd(control_);
  close_fd(guest_.control);
  for (int& fd : kick_) close_fd(fd);
  close_fd(interrupt_);
  close_fd(stop_);
}

void VirtioRemoteDevice::close_guest_control() noexcept { close_fd(guest_.control); }

void VirtioRemoteDevice::stop() noexcept {
  const std::uint64_t one = 1;
  (void)!write(stop_, &one, sizeof(one));
}

bool VirtioRemoteDevice::serve_one() noexcept {
  Msg m;
  const ssize_t n = recv(control_, &m, sizeof(m), 0);
  if (n == 0) return false;
  if (n != static_cast<ssize_t>(sizeof(m))) return n < 0 && errno == EINTR;
  ++messages_;
  Reply r{};
  switch (m.op) {
    case kGetStatus:
      r.value = t_.get_status();
      break;
    case kSetStatus:
      t_.set_status(static_cast<std::uint8_t>(m.value));
      break;
    case kGetFeatures:
      r.value = t_.get_device_features();
      break;
    case kSetFeatures:
      t_.set_driver_features(m.value);
      break;
    case kReadConfig:
      t_.read_config(static_cast<std::uint32_t>(m.value),
                     std::span<std::byte>(r.data, std::min<std::size_t>(m.len, sizeof(r.data))));
      break;
    case kNumQueues:
      r.value = t_.num_queues();
      break;
    case kQueueMax:
      r.value = t_.queue_max_size(m.queue);
      break;
    case kSetQueue:
      r.value = t_.set_queue(m.queue, {static_cast<std::uint16_t>(m.size), m.desc, m.avail, m.used})
                    ? 1
                    : 0;
      break;
    default:
      r.value = ~std::uint64_t{0};
      break;
  }
  return send(control_, &r, sizeof(r), MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof(r));
}

Result<void> VirtioRemoteDevice::run(std::chrono::milliseconds idle_timeout) noexcept {
  std::array<pollfd, VirtioTransport::kMaxQueues + 2> fds{};
  const unsigned nq = guest_.num_queues;
  fds[0] = {control_, POLLIN, 0};
  fds[1] = {stop_, POLLIN, 0};
  for (unsigned q = 0; q < nq; ++q) fds[2 + q] = {kick_[q], POLLIN, 0};
  for (;;) {
    const int n = poll(fds.data(), 2 + nq, static_cast<int>(idle_timeout.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io_error);
    }
    if (n == 0) return fail(Errc::timed_out);
    if ((fds[1].revents & POLLIN) != 0) return {};
    for (unsigned q = 0; q < nq; ++q) {
      if ((fds[2 + q].revents & POLLIN) == 0) continue;
      std::uint64_t v;
      (void)!read(kick_[q], &v, sizeof(v));
      t_.process_queue(q);
    }
    if ((fds[0].revents & POLLIN) != 0) {
      if (!serve_one()) return {};
    } else if ((fds[0].revents & (POLLHUP | POLLERR)) != 0) {
      return {};
    }
  }
}

// ---- guest side ---------------------------------------------------------------------------------

std::uint64_t VirtioRemotePort::call(std::uint32_t op, std::uint32_t queue, std::uint64_t value,
                                     const VirtqueueLayout* layout,
                                     std::span<std::byte> data) noexcept {
  Msg m{};
  m.op = op;
  m.queue = queue;
  m.value = value;
  if (layout != nullptr) {
    m.desc = layout->desc;
    m.avail = layout->avail;
    m.used = layout->used;
    m.size = layout->size;
  }
  m.len = static_cast<std::uint32_t>(data.size());
  Reply r{};
  if (send(fds_.control, &m, sizeof(m), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(m))) {
    return ~std::uint64_t{0};
  }
  ssize_t n;
  do {
    n = recv(fds_.control, &r, sizeof(r), 0);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(r))) return ~std::uint64_t{0};
  if (!data.empty()) std::memcpy(data.data(), r.data, std::min(data.size(), sizeof(r.data)));
  return r.value;
}

std::uint8_t VirtioRemotePort::get_status() noexcept {
  return static_cast<std::uint8_t>(call(kGetStatus, 0, 0, nullptr, {}));
}
void VirtioRemotePort::set_status(std::uint8_t status) noexcept {
  call(kSetStatus, 0, status, nullptr, {});
}
std::uint64_t VirtioRemotePort::get_device_features() noexcept {
  return call(kGetFeatures, 0, 0, nullptr, {});
}
void VirtioRemotePort::set_driver_features(std::uint64_t f) noexcept {
  call(kSetFeatures, 0, f, nullptr, {});
}
void VirtioRemotePort::read_config(std::uint32_t offset, std::span<std::byte> out) noexcept {
  for (std::size_t done = 0; done < out.size(); done += 64) {
    const auto chunk = out.subspan(done, std::min<std::size_t>(64, out.size() - done));
    call(kReadConfig, 0, offset + done, nullptr, chunk);
  }
}
unsigned VirtioRemotePort::num_queues() noexcept {
  return static_cast<unsigned>(call(kNumQueues, 0, 0, nullptr, {}));
}
std::uint16_t VirtioRemotePort::queue_max_size(unsigned queue) noexcept {
  return static_cast<std::uint16_t>(call(kQueueMax, queue, 0, nullptr, {}));
}
bool VirtioRemotePort::set_queue(unsigned queue, const VirtqueueLayout& layout) noexcept {
  return call(kSetQueue, queue, 0, &layout, {}) == 1;
}
void VirtioRemotePort::notify(unsigned queue) noexcept {
  if (queue >= fds_.num_queues) return;
  const std::uint64_t one = 1;
  (void)!write(fds_.kick[queue], &one, sizeof(one));
}
void VirtioRemotePort::wait_interrupt(unsigned,
                                      std::chrono::steady_clock::time_point deadline) noexcept {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  pollfd p{fds_.interrupt, POLLIN, 0};
  // Round up so that a sub-millisecond remainder still sleeps instead of spinning.
  const int ms =
      left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count() + 1, 1000));
  if (poll(&p, 1, ms) > 0) {
    std::uint64_t v;
    (void)!read(fds_.interrupt, &v, sizeof(v));
  }
}

}  // namespace ioasid::virtio
