// SPDX-License-Identifier: Apache-2.0
// virtio_transport.cc: VirtioTransport, the device status state machine, feature negotiation,
// queue setup and the queue processing loops (request queues drained through the model, event
// queues filled from it), with NEEDS_RESET on a broken transport.
#include "ioasid/virtio_transport.hpp"

#include <thread>

#include "common/internal/futex_mutex.hpp"
#include "virtio/internal/device_queue_hot.hpp"

namespace ioasid::virtio {
namespace {

using QueueLock = ::ioasid::internal::FutexWordLock;

std::uint64_t transport_offer(const VirtioTransportOptions& o) noexcept {
  std::uint64_t f = std::uint64_t{1} << kFVersion1;
  if (o.offer_indirect) f |= std::uint64_t{1} << kFIndirectDesc;
  if (o.offer_event_idx) f |= std::uint64_t{1} << kFEventIdx;
  return f;
}

}  // namespace

VirtioTransport::VirtioTransport(VirtioDeviceModel& dev, const GuestMemory& mem,
                                 const VirtioTransportOptions& options)
    : dev_(dev),
      mem_(mem),
      o_(options),
      nq_(std::min(dev.num_queues(), kMaxQueues)),
      offered_((dev.device_features() & ~kTransportFeatureMask) | transport_offer(options)) {
  dev_.set_event_notifier([this] {
    for (unsigned q = 0; q < nq_; ++q) {
      if (dev_.is_event_queue(q)) record_kick(q);
    }
  });
}

VirtioTransport::~VirtioTransport() { dev_.set_event_notifier(nullptr); }

std::uint8_t VirtioTransport::get_status() noexcept {
  return status_.load(std::memory_order_acquire);
}

void VirtioTransport::reset_locked() noexcept {
  for (unsigned q = 0; q < nq_; ++q) {
    QueueLock mu(queues_[q].mu);
    std::lock_guard<QueueLock> lock(mu);
    queues_[q].q.reset();
    queues_[q].enabled = false;
  }
  pending_.store(0, std::memory_order_relaxed);
  driver_features_ = 0;
  negotiated_.store(0, std::memory_order_relaxed);
  dev_.reset();
  status_.store(0, std::memory_order_release);
  st_.resets.inc();
}

void VirtioTransport::set_status(std::uint8_t v) noexcept {
  std::lock_guard<std::mutex> lock(ctl_mu_);
  if (v == 0) {
    reset_locked();
    return;
  }
  const std::uint8_t cur = status_.load(std::memory_order_acquire);
  constexpr std::uint8_t kDriverBits =
      kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk | kStatusFailed;
  // The driver never clears a bit (only a reset does) and never sets NEEDS_RESET.
  if ((cur & kDriverBits & ~v) != 0 || (v & ~kDriverBits) != 0) st_.status_refused.inc();
  if ((cur & kDriverBits & ~v) != 0) return;
  std::uint8_t next = static_cast<std::uint8_t>(cur | (v & kDriverBits));
  if ((next & kStatusFeaturesOk) != 0 && (cur & kStatusFeaturesOk) == 0) {
    const std::uint64_t f = driver_features_;
    const bool ok = (next & kStatusDriver) != 0 && (f & ~offered_) == 0 &&
                    (f & (std::uint64_t{1} << kFVersion1)) != 0 &&
                    dev_.set_driver_features(f & ~kTransportFeatureMask);
    if (ok) {
      negotiated_.store(f, std::memory_order_release);
    } else {
      next = static_cast<std::uint8_t>(next & ~kStatusFeaturesOk);
      st_.features_refused.inc();
    }
  }
  if ((next & kStatusDriverOk) != 0 && (next & kStatusFeaturesOk) == 0) {
    next = static_cast<std::uint8_t>(next & ~kStatusDriverOk);
    st_.status_refused.inc();
  }
  // Keep a NEEDS_RESET the device may have set meanwhile.
  std::uint8_t expected = cur;
  while (!status_.compare_exchange_weak(
      expected, static_cast<std::uint8_t>(next | (expected & kStatusNeedsReset)),
      std::memory_order_acq_rel)) {
  }
  if ((next & kStatusDriverOk) != 0 && (cur & kStatusDriverOk) == 0) {
    // Work that arrived before DRIVER_OK (kicks, events) runs now.
    for (unsigned q = 0; q < nq_; ++q) {
      if (dev_.is_event_queue(q)) record_kick(q);
    }
  }
}

std::uint64_t VirtioTransport::get_device_features() noexcept { return offered_; }

void VirtioTransport::set_driver_features(std::uint64_t f) noexcept {
  std::lock_guard<std::mutex> lock(ctl_mu_);
  const std::uint8_t s = status_.load(std::memory_order_acquire);
  if ((s & kStatusDriver) == 0 || (s & kStatusFeaturesOk) != 0) {
    st_.status_refused.inc();
    return;
  }
  driver_features_ = f;
}

std::uint64_t VirtioTransport::negotiated_features() const noexcept {
  return negotiated_.load(std::memory_order_acquire);
}

void VirtioTransport::read_config(std::uint32_t offset, std::span<std::byte> out) noexcept {
  dev_.read_config(offset, out);
}

bool VirtioTransport::write_config(std::uint32_t offset, std::span<const std::byte> in) noexcept {
  return dev_.write_config(offset, in);
}

unsigned VirtioTransport::num_queues() noexcept { return nq_; }

std::uint16_t VirtioTransport::queue_max_size(unsigned queue) noexcept {
  return queue < nq_ ? o_.max_queue_size : 0;
}

bool VirtioTransport::set_queue(unsigned queue, const VirtqueueLayout& layout) noexcept {
  std::lock_guard<std::mutex> lock(ctl_mu_);
  const std::uint8_t s = status_.load(std::memory_order_acquire);
  if (queue >= nq_ || (s & kStatusFeaturesOk) == 0 || (s & kStatusDriverOk) != 0 ||
      layout.size > o_.max_queue_size) {
    st_.status_refused.inc();
    return false;
  }
  const std::uint64_t f = negotiated_.load(std::memory_order_acquire);
  const DeviceQueueOptions qo{.indirect = (f & (std::uint64_t{1} << kFIndirectDesc)) != 0,
                              .event_idx = (f & (std::uint64_t{1} << kFEventIdx)) != 0,
                              .max_readable = o_.max_readable,
                              .max_writable = o_.max_writable};
  Queue& q = queues_[queue];
  QueueLock mu(q.mu);
  std::lock_guard<QueueLock> qlock(mu);
  q.enabled = static_cast<bool>(q.q.setup(mem_, layout, qo));
  return q.enabled;
}

void VirtioTransport::record_kick(unsigned queue) noexcept {
  if (queue >= nq_) return;
  if (!o_.deferred_notify) {
    process_queue(queue);
    return;
  }
  pending_.fetch_or(1u << queue, std::memory_order_acq_rel);
  if (on_kick_) on_kick_(queue);
}

void VirtioTransport::notify(unsigned queue) noexcept {
  if (queue < nq_ && !o_.deferred_notify) {
    process(queue, true);  // the kick is counted under the queue's lock
    return;
  }
  st_.kicks.inc();
  record_kick(queue);
}

void VirtioTransport::wait_interrupt(unsigned, std::chrono::steady_clock::time_point) noexcept {
  // In-process: the used ring is the truth; let a deferred processor run.
  if (o_.deferred_notify) std::this_thread::yield();
}

void VirtioTransport::set_interrupt_handler(std::function<void(unsigned)> fn) {
  on_interrupt_ = std::move(fn);
}
void VirtioTransport::set_kick_handler(std::function<void(unsigned)> fn) {
  on_kick_ = std::move(fn);
}

void VirtioTransport::interrupt(unsigned queue) noexcept {
  st_.interrupts.inc();
  if (on_interrupt_) on_interrupt_(queue);
}

std::size_t VirtioTransport::process_pending() noexcept {
  std::size_t n = 0;
  std::uint32_t bits = pending_.exchange(0, std::memory_order_acq_rel);
  for (unsigned q = 0; bits != 0; ++q, bits >>= 1) {
    if ((bits & 1) != 0) n += process_queue(q);
  }
  return n;
}

std::size_t VirtioTransport::process_queue(unsigned queue) noexcept {
  return process(queue, false);
}

// A request queue's chains through the model: DeviceQueue::Hot::serve (drain, publish, re-arm with
// one fence per round), the per-chain path compiled in place. Under q.mu.
std::size_t VirtioTransport::serve_requests(Queue& q, unsigned queue, bool* interrupt) noexcept {
  // An oversized chain (more readable bytes than any request of the device) is answered with used
  // length 0 without the model.
  auto answer = [dev = &dev_, queue](std::span<const std::byte> readable,
                                     std::span<std::byte> writable) {
    return dev->handle_request(queue, readable, writable);
  };
  std::uint32_t oversized = 0;
  const std::size_t done = DeviceQueue::Hot::serve(q.q, answer, interrupt, &oversized);
  if (done != oversized) q.requests.add_locked(done - oversized);
  if (oversized != 0) q.oversized.add_locked(oversized);
  return done;
}

std::size_t VirtioTransport::process(unsigned queue, bool kicked) noexcept {
  if (queue >= nq_) return 0;
  Queue& q = queues_[queue];
  QueueLock mu(q.mu);
  std::lock_guard<QueueLock> lock(mu);
  if (kicked) q.kicks.add_locked(1);
  const std::uint8_t s = status_.load(std::memory_order_acquire);
  if (!q.enabled || (s & kStatusDriverOk) == 0 || (s & kStatusFailed) != 0 || !q.q.ready()) {
    return 0;
  }
  std::size_t done = 0;
  bool want_interrupt = false;
  if (!dev_.is_event_queue(queue)) {
    done = serve_requests(q, queue, &want_interrupt);
  } else {
    std::size_t filled = 0;
    for (;;) {
      DeviceQueue::Chain c;
      const DeviceQueue::Pop p = q.q.pop(c);
      if (p == DeviceQueue::Pop::broken) break;
      if (p == DeviceQueue::Pop::empty) {
        if (!q.q.enable_kicks(true)) break;  // re-armed, and nothing slipped in
        continue;
      }
      const std::optional<std::size_t> ev = dev_.next_event(queue, c.writable);
      if (!ev) {
        q.q.unpop();  // no event: keep the buffer for the next one
        q.q.enable_kicks(true);
        break;
      }
      ++filled;
      q.q.push(c, static_cast<std::uint32_t>(std::min<std::size_t>(*ev, c.writable.size())));
      ++done;
    }
    if (filled != 0) q.events.add_locked(filled);
    want_interrupt = q.q.publish();
  }
  if (want_interrupt) {
    q.interrupts.add_locked(1);
    if (on_interrupt_) on_interrupt_(queue);
  }
  if (!q.q.ready()) {  // broken transport: the queue latched a QueueFault
    status_.fetch_or(kStatusNeedsReset, std::memory_order_acq_rel);
    interrupt(kConfigInterrupt);
  }
  return done;
}

QueueFault VirtioTransport::queue_fault(unsigned queue) noexcept {
  if (queue >= nq_) return QueueFault::none;
  QueueLock mu(queues_[queue].mu);
  std::lock_guard<QueueLock> lock(mu);
  return queues_[queue].q.fault();
}

DeviceQueueStats VirtioTransport::queue_stats(unsigned queue) noexcept {
  if (queue >= nq_) return {};
  QueueLock mu(queues_[queue].mu);
  std::lock_guard<QueueLock> lock(mu);
  return queues_[queue].q.stats();
}

VirtioTransportStats VirtioTransport::stats() const noexcept {
  VirtioTransportStats s;
  s.kicks = st_.kicks.get();
  s.interrupts = st_.interrupts.get();
  for (unsigned i = 0; i < nq_; ++i) {
    const Queue& q = queues_[i];
    s.kicks += q.kicks.get();
    s.requests += q.requests.get();
    s.events += q.events.get();
    s.oversized += q.oversized.get();
    s.interrupts += q.interrupts.get();
  }
  s.resets = st_.resets.get();
  s.status_refused = st_.status_refused.get();
  s.features_refused = st_.features_refused.get();
  return s;
}

}  // namespace ioasid::virtio
