// SPDX-License-Identifier: Apache-2.0
// virtio_iommu_guest_driver.cc: VirtioIommuGuestDriver: virtio initialization, the request path
// (one chain {readable request, writable reply} at a time, bounded wait, late-completion
// draining), the event queue, and the custom-allocator callbacks for the guest's IOASID Space.
//
// Invariants: the request buffers are reused only once the device has returned the previous
// chain (stale_type_ == 0 after draining); the allocator callbacks run under the guest space's
// writer lock and call nothing of the space.
#include "ioasid/virtio_iommu_guest_driver.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "common/internal/futex_mutex.hpp"
#include "virtio/request_parser.hpp"

namespace ioasid::virtio {
namespace {

constexpr std::uint64_t kReadableBytes = 80;  // the largest request the driver sends (MAP: 36)
constexpr std::uint64_t kWritableBytes = 16;  // the largest reply (ALLOC_PASID: 8)
constexpr std::uint64_t kEventBytes = 32;     // struct virtio_iommu_fault is 24
constexpr std::uint64_t align16(std::uint64_t v) { return (v + 15) & ~std::uint64_t{15}; }

std::uint16_t queue_size(std::uint16_t want, std::uint16_t device_max) {
  const std::uint16_t n = std::min<std::uint16_t>(std::max<std::uint16_t>(want, 1), device_max);
  return n == 0 ? 0 : std::bit_floor(n);
}

struct Area {
  std::uint64_t rq, eq, rbuf, wbuf, ebuf, end;
};
Area area_layout(std::uint64_t base, std::uint16_t rq_size, std::uint16_t eq_size) {
  Area a;
  a.rq = base;
  a.eq = align16(a.rq + contiguous_bytes(rq_size));
  a.rbuf = align16(a.eq + contiguous_bytes(eq_size));
  a.wbuf = a.rbuf + kReadableBytes;
  a.ebuf = a.wbuf + kWritableBytes;
  a.end = a.ebuf + kEventBytes * eq_size;
  return a;
}

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }

// mu_: a futex word (BasicLockable view for std::lock_guard).
using Lock = ::ioasid::internal::FutexWordLock;

}  // namespace

std::uint64_t VirtioIommuGuestDriver::area_bytes(const VirtioIommuGuestDriverOptions& o) noexcept {
  const Area a = area_layout(0, queue_size(o.request_queue_size, 0x8000),
                             queue_size(o.event_queue_size, 0x8000));
  return a.end;
}

VirtioIommuGuestDriver::VirtioIommuGuestDriver(
    VirtioDriverPort& port, const GuestMemory& mem, std::uint64_t area_gpa,
    const VirtioIommuGuestDriverOptions& options) noexcept
    : port_(port),
      mem_(mem),
      area_(area_gpa),
      o_(options),
      ops_{&VirtioIommuGuestDriver::ops_alloc, &VirtioIommuGuestDriver::ops_free, this} {}

VirtioIommuGuestDriver::~VirtioIommuGuestDriver() {
  unregister_allocator();
  Lock mu(mu_);
  std::lock_guard<Lock> lock(mu);
  if (ready_) port_.set_status(0);  // the device lets go of our memory
}

void VirtioIommuGuestDriver::log(LogLevel level, const char* fmt, ...) const noexcept {
  if (o_.log_sink == nullptr) return;
  char buf[192];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  o_.log_sink(o_.log_opaque, level, buf);
}

Result<void> VirtioIommuGuestDriver::probe() noexcept {
  std::lock_guard<std::mutex> elock(eq_mu_);  // lock order: eq_mu_, then mu_
  Lock mu(mu_);
  std::lock_guard<Lock> lock(mu);
  return probe_locked();
}

Result<void> VirtioIommuGuestDriver::probe_locked() noexcept {
  ready_ = false;
  broken_ = false;
  stale_type_ = 0;
  features_.store(0, std::memory_order_relaxed);
  max_pasid_.store(0, std::memory_order_relaxed);
  port_.set_status(0);
  port_.set_status(kStatusAcknowledge);
  port_.set_status(kStatusAcknowledge | kStatusDriver);
  const std::uint64_t offered = port_.get_device_features();
  if ((offered & bit(kFVersion1)) == 0) {
    port_.set_status(kStatusAcknowledge | kStatusDriver | kStatusFailed);
    log(LogLevel::error, "virtio-iommu: device does not offer VIRTIO_F_VERSION_1");
    return fail(Errc::unsupported);
  }
  std::uint64_t want = offered & o_.wanted_features & ~kTransportFeatureMask;
  want &= ~vi::feature_bit(vi::kFPasidPerEndpoint);
  if ((want & vi::feature_bit(vi::kFPasidAlloc)) == 0) want &= ~vi::kPasidFeatures;
  want |= bit(kFVersion1);
  if (o_.event_idx) want |= offered & bit(kFEventIdx);
  port_.set_driver_features(want);
  constexpr std::uint8_t kDrv = kStatusAcknowledge | kStatusDriver;
  port_.set_status(kDrv | kStatusFeaturesOk);
  if ((port_.get_status() & kStatusFeaturesOk) == 0) {
    port_.set_status(kDrv | kStatusFailed);
    log(LogLevel::error, "virtio-iommu: FEATURES_OK refused (features %#llx)",
        static_cast<unsigned long long>(want));
    return fail(Errc::unsupported);
  }
  std::array<std::byte, sizeof(vi::ConfigPasid)> cfg{};
  const bool pasid = (want & vi::feature_bit(vi::kFPasidAlloc)) != 0;
  // A driver without the extension never reads past the base 40 bytes (docs §3).
  port_.read_config(0, std::span(cfg).first(pasid ? sizeof(vi::ConfigPasid) : sizeof(vi::Config)));
  std::memcpy(&config_, cfg.data(), sizeof(config_));
  const std::uint32_t mp = pasid ? config_.max_pasid.load() : 0;
  max_pasid_.store(mp <= vi::kPasidMaxLimit ? mp : 0, std::memory_order_relaxed);
  if (pasid && (mp == 0 || mp > vi::kPasidMaxLimit)) {
    log(LogLevel::error, "virtio-iommu: config.max_pasid %u invalid: no PASID allocation", mp);
  }

  const std::uint16_t rqn =
      queue_size(o_.request_queue_size, port_.queue_max_size(vi::kRequestQueue));
  const std::uint16_t eqn = queue_size(o_.event_queue_size, port_.queue_max_size(vi::kEventQueue));
  const Area a = area_layout(area_, rqn, eqn);
  const bool eidx = (want & bit(kFEventIdx)) != 0;
  if (rqn == 0 || eqn == 0 || (area_ & 15) != 0 ||
      mem_.translate(area_, a.end - area_) == nullptr ||
      !rq_.setup(mem_, contiguous_layout(a.rq, rqn), eidx) ||
      !eq_.setup(mem_, contiguous_layout(a.eq, eqn), eidx) ||
      !port_.set_queue(vi::kRequestQueue, rq_.layout()) ||
      !port_.set_queue(vi::kEventQueue, eq_.layout())) {
    port_.set_status(kDrv | kStatusFeaturesOk | kStatusFailed);
    log(LogLevel::error, "virtio-iommu: queue setup failed");
    return fail(Errc::invalid_argument);
  }
  rbuf_ = a.rbuf;
  wbuf_ = a.wbuf;
  ebuf_ = a.ebuf;
  rbuf_host_ = mem_.translate(rbuf_, kReadableBytes);  // inside the area checked above
  wbuf_host_ = mem_.translate(wbuf_, kWritableBytes);
  for (std::uint16_t i = 0; i < eqn; ++i) post_event_buffer(i);
  port_.set_status(kDrv | kStatusFeaturesOk | kStatusDriverOk);
  if ((port_.get_status() & kStatusDriverOk) == 0) {
    port_.set_status(kDrv | kStatusFeaturesOk | kStatusFailed);
    return fail(Errc::io_error);
  }
  features_.store(want, std::memory_order_release);
  ready_ = true;
  if (eq_.publish()) port_.notify(vi::kEventQueue);
  return {};
}

void VirtioIommuGuestDriver::post_event_buffer(std::uint16_t slot) noexcept {
  const DriverQueue::Buffer b{ebuf_ + kEventBytes * slot, static_cast<std::uint32_t>(kEventBytes),
                              true};
  // Each buffer is its own one-descriptor chain; the head is then the slot's descriptor as
  // long as every chain has one descriptor, but pop_event finds the buffer by its head anyway.
  (void)eq_.add(std::span(&b, 1));
}

bool VirtioIommuGuestDriver::ready() const noexcept {
  Lock mu(mu_);
  std::lock_guard<Lock> lock(mu);
  return ready_ && !broken_;
}
bool VirtioIommuGuestDriver::pasid_capable() const noexcept {
  return max_pasid_.load(std::memory_order_relaxed) != 0;
}
std::uint64_t VirtioIommuGuestDriver::negotiated_features() const noexcept {
  return features_.load(std::memory_order_acquire);
}
std::uint32_t VirtioIommuGuestDriver::max_pasid() const noexcept {
  return max_pasid_.load(std::memory_order_relaxed);
}
vi::ConfigPasid VirtioIommuGuestDriver::config() const noexcept {
  Lock mu(mu_);
  std::lock_guard<Lock> lock(mu);
  return config_;
}

// Waits for head's used entry. Entries for other heads cannot appear (one request in flight),
// except a stale one that drain_stale_locked() already took. The clock is read only when the
// answer is not there at once (an in-process device answers inside notify()): the deadline is
// o_.timeout from that first miss.
bool VirtioIommuGuestDriver::wait_locked(std::uint16_t head, std::uint32_t* used) noexcept {
  std::optional<std::chrono::steady_clock::time_point> deadline;
  for (;;) {
    DriverQueue::Used u;
    while (rq_.pop_used_raw(&u)) {
      if (u.id == head) {
        *used = u.len;
        return true;
      }
      log(LogLevel::warning, "virtio-iommu: used entry for unknown head %u ignored", u.id);
    }
    // Ask for an interrupt before sleeping, and look again: an answer published meanwhile would
    // not raise one.
    if (rq_.enable_interrupts(true)) continue;
    if ((port_.get_status() & kStatusNeedsReset) != 0) {
      broken_ = true;
      log(LogLevel::error, "virtio-iommu: device needs reset");
      return false;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!deadline) {
      deadline = now + o_.timeout;
    } else if (now >= *deadline) {
      return false;
    }
    port_.wait_interrupt(vi::kRequestQueue, *deadline);
  }
}

bool VirtioIommuGuestDriver::drain_stale_locked() noexcept {
  std::uint32_t used = 0;
  if (!wait_locked(stale_head_, &used)) {
    st_.timeouts.inc();
    return false;
  }
  st_.late_completions.inc();
  const std::uint8_t type = stale_type_;
  stale_type_ = 0;
  if (type != vi::to_u8(vi::ReqType::alloc_pasid) || used < 8) return true;
  std::array<std::byte, 8> w{};
  std::memcpy(w.data(), wbuf_host_, w.size());
  const auto pasid = wire::read_le<std::uint32_t>(w, 0);
  if (static_cast<std::uint8_t>(w[4]) != vi::to_u8(vi::Status::ok) || !pasid) return true;
  // Nobody received this PASID: give it back rather than leak it in the host.
  log(LogLevel::warning, "virtio-iommu: late ALLOC_PASID answer %u freed", *pasid);
  const EncodedRequest req = encode_request(FreePasidRequest{*pasid});
  Reply r;
  const Errc e = run_locked(req.span(), 4, &r);
  if (e == Errc{}) st_.late_allocs_freed.inc();
  return e != Errc::timed_out;
}

Errc VirtioIommuGuestDriver::run_locked(std::span<const std::byte> readable,
                                        std::uint32_t writable_len, Reply* reply) noexcept {
  if (!ready_ || broken_) return broken_ ? Errc::io_error : Errc::unsupported;
  if (stale_type_ != 0 && !drain_stale_locked()) return broken_ ? Errc::io_error : Errc::timed_out;
  if (readable.size() > kReadableBytes) return Errc::io_error;
  std::memcpy(rbuf_host_, readable.data(), readable.size());
  const std::array<DriverQueue::Buffer, 2> chain{
      {{rbuf_, static_cast<std::uint32_t>(readable.size()), false}, {wbuf_, writable_len, true}}};
  std::uint16_t head = 0;
  if (rq_.add_raw(chain, &head) != Errc{}) return Errc::io_error;  // one chain in flight at most
  st_.requests.inc_locked();
  if (rq_.publish()) {
    st_.kicks.inc_locked();
    port_.notify(vi::kRequestQueue);
  }
  std::uint32_t used = 0;
  if (!wait_locked(head, &used)) {
    if (broken_) return Errc::io_error;
    st_.timeouts.inc();
    stale_head_ = head;
    stale_type_ = static_cast<std::uint8_t>(readable[0]);
    log(LogLevel::error, "virtio-iommu: request %#x timed out", stale_type_);
    return Errc::timed_out;
  }
  reply->used = used;
  std::memcpy(reply->bytes.data(), wbuf_host_, std::min<std::size_t>(used, reply->bytes.size()));
  return Errc{};
}

namespace {
// The status of a reply whose tail sits at tail_off; used length 0 or short: io_error.
Errc reply_errc(std::uint32_t used, std::uint32_t tail_off, const std::array<std::byte, 16>& b) {
  if (used < tail_off + 4) return Errc::io_error;
  const auto s = static_cast<std::uint8_t>(b[tail_off]);
  if (s == vi::to_u8(vi::Status::ok)) return Errc{};
  return from_virtio_status(s);
}
}  // namespace

Result<Id> VirtioIommuGuestDriver::alloc_pasid(std::uint32_t max_pasid) noexcept {
  if (!pasid_capable()) return fail(Errc::unsupported);
  if ((negotiated_features() & vi::feature_bit(vi::kFPasidMaxReq)) == 0 && max_pasid != 0) {
    return fail(Errc::unsupported);
  }
  const std::array<std::byte, 8> req = encode_alloc_pasid_request(max_pasid);
  Reply r;
  Errc e;
  {
    Lock mu(mu_);
    std::lock_guard<Lock> lock(mu);
    e = run_locked(req, 8, &r);
  }
  if (e == Errc{}) {
    if (r.used == 0) st_.used_zero.inc();
    e = reply_errc(r.used, 4, r.bytes);
  }
  if (e != Errc{}) {
    if (e == Errc::exhausted) {
      st_.alloc_nomem.inc();
    } else {
      st_.alloc_errors.inc();
      log(LogLevel::warning, "virtio-iommu: ALLOC_PASID failed: %s", to_string(e));
    }
    return fail(e);
  }
  st_.allocs.inc();
  return Id{wire::read_le<std::uint32_t>(r.bytes, 0).value_or(kInvalidId)};
}

Errc VirtioIommuGuestDriver::simple_raw(std::span<const std::byte> readable) noexcept {
  Reply r;
  Errc e;
  {
    Lock mu(mu_);
    std::lock_guard<Lock> lock(mu);
    e = run_locked(readable, 4, &r);
  }
  if (e == Errc{}) {
    if (r.used == 0) st_.used_zero.inc();
    e = reply_errc(r.used, 0, r.bytes);
  }
  return e;
}

Result<void> VirtioIommuGuestDriver::simple(std::span<const std::byte> readable) noexcept {
  const Errc e = simple_raw(readable);
  if (e != Errc{}) return fail(e);
  return {};
}

Result<void> VirtioIommuGuestDriver::free_pasid(Id pasid) noexcept {
  if (!pasid_capable()) return fail(Errc::unsupported);
  const Errc e = simple_raw(encode_free_pasid_request(pasid));
  if (e != Errc{}) {
    st_.free_errors.inc();
    log(LogLevel::warning, "virtio-iommu: FREE_PASID %u failed: %s", pasid, to_string(e));
    return fail(e);
  }
  st_.frees.inc();
  return {};
}

Result<void> VirtioIommuGuestDriver::bind_pasid(std::uint32_t endpoint, Id pasid) noexcept {
  return simple(encode_request(BindPasidRequest{endpoint, pasid, 0}).span());
}
Result<void> VirtioIommuGuestDriver::unbind_pasid(std::uint32_t endpoint, Id pasid) noexcept {
  return simple(encode_request(UnbindPasidRequest{endpoint, pasid, 0}).span());
}
Result<void> VirtioIommuGuestDriver::attach(std::uint32_t domain, std::uint32_t endpoint,
                                            std::uint32_t flags) noexcept {
  return simple(encode_request(AttachRequest{domain, endpoint, flags}).span());
}
Result<void> VirtioIommuGuestDriver::detach(std::uint32_t domain, std::uint32_t endpoint) noexcept {
  return simple(encode_request(DetachRequest{domain, endpoint}).span());
}
Result<void> VirtioIommuGuestDriver::map(std::uint32_t domain, std::uint64_t virt_start,
                                         std::uint64_t virt_end, std::uint64_t phys_start,
                                         std::uint32_t flags) noexcept {
  return simple(encode_request(MapRequest{domain, virt_start, virt_end, phys_start, flags}).span());
}
Result<void> VirtioIommuGuestDriver::unmap(std::uint32_t domain, std::uint64_t virt_start,
                                           std::uint64_t virt_end) noexcept {
  return simple(encode_request(UnmapRequest{domain, virt_start, virt_end}).span());
}

std::optional<FaultEvent> VirtioIommuGuestDriver::pop_event() noexcept {
  std::lock_guard<std::mutex> lock(eq_mu_);
  {
    Lock mu(mu_);
    std::lock_guard<Lock> rlock(mu);
    if (!ready_) return std::nullopt;
  }
  const auto u = eq_.pop_used();
  if (!u) return std::nullopt;
  // Which buffer: every chain is one descriptor whose address we read back from our own table.
  const std::uint64_t slot_gpa = eq_.layout().desc + 16u * u->id;
  VirtqDesc d;
  std::optional<FaultEvent> ev;
  if (mem_.read(slot_gpa, std::as_writable_bytes(std::span(&d, 1))) &&
      u->len >= sizeof(vi::Fault)) {
    std::array<std::byte, sizeof(vi::Fault)> raw{};
    if (mem_.read(d.addr.load(), raw)) {
      vi::Fault f;
      std::memcpy(&f, raw.data(), sizeof(f));
      FaultEvent e;
      e.reason = f.reason;
      e.flags = f.flags.load();
      e.endpoint = f.endpoint.load();
      if ((e.flags & vi::kFaultFAddress) != 0) e.address = f.address.load();
      ev = e;
      st_.events.inc();
    }
  }
  const DriverQueue::Buffer b{d.addr.load(), static_cast<std::uint32_t>(kEventBytes), true};
  (void)eq_.add(std::span(&b, 1));
  if (eq_.publish()) port_.notify(vi::kEventQueue);
  return ev;
}

// ---- allocator callbacks ------------------------------------------------------------------------

int VirtioIommuGuestDriver::ops_alloc(void* pdata, Id min, Id max, Id* out) {
  auto* d = static_cast<VirtioIommuGuestDriver*>(pdata);
  const std::uint32_t limit = d->max_pasid();
  if (limit == 0) return -EOPNOTSUPP;
  const Id hi = std::min<Id>(max, limit);
  if (min < 1 || min > hi) {
    d->st_.range_refusals.inc();
    return -ENOSPC;  // nothing of [min, max] is in the device's PASID range
  }
  // The request-level limit when the range stops below config.max_pasid.
  const bool max_req = (d->negotiated_features() & vi::feature_bit(vi::kFPasidMaxReq)) != 0;
  Result<Id> id = d->alloc_pasid(max_req && hi < limit ? hi : 0);
  if (!id) return -to_errno(id.error());
  *out = *id;
  return 0;
}

void VirtioIommuGuestDriver::ops_free(void* pdata, Id id) {
  (void)static_cast<VirtioIommuGuestDriver*>(pdata)->free_pasid(id);  // logged and counted
}

Result<void> VirtioIommuGuestDriver::register_allocator(Space& guest) noexcept {
  std::lock_guard<std::mutex> lock(reg_mu_);
  if (space_ != nullptr) return fail(Errc::exists);
  if (!ready()) {
    if (Result<void> r = probe(); !r) return r;
  }
  if (!pasid_capable()) {
    log(LogLevel::info, "virtio-iommu: no PASID allocation (features %#llx)",
        static_cast<unsigned long long>(negotiated_features()));
    return fail(Errc::unsupported);
  }
  Result<void> r = guest.register_allocator(&ops_);
  if (!r) {
    log(LogLevel::warning, "virtio-iommu: register_allocator failed: %s", to_string(r.error()));
    return r;
  }
  space_ = &guest;
  return {};
}

void VirtioIommuGuestDriver::unregister_allocator() noexcept {
  std::lock_guard<std::mutex> lock(reg_mu_);
  if (space_ == nullptr) return;
  space_->unregister_allocator(&ops_);
  space_ = nullptr;
}

bool VirtioIommuGuestDriver::registered() const noexcept {
  std::lock_guard<std::mutex> lock(reg_mu_);
  return space_ != nullptr;
}

VirtioIommuGuestDriverStats VirtioIommuGuestDriver::stats() const noexcept {
  VirtioIommuGuestDriverStats s;
  s.requests = st_.requests.get();
  s.kicks = st_.kicks.get();
  s.timeouts = st_.timeouts.get();
  s.late_completions = st_.late_completions.get();
  s.late_allocs_freed = st_.late_allocs_freed.get();
  s.used_zero = st_.used_zero.get();
  s.allocs = st_.allocs.get();
  s.alloc_nomem = st_.alloc_nomem.get();
  s.alloc_errors = st_.alloc_errors.get();
  s.frees = st_.frees.get();
  s.free_errors = st_.free_errors.get();
  s.range_refusals = st_.range_refusals.get();
  s.events = st_.events.get();
  return s;
}

}  // namespace ioasid::virtio
