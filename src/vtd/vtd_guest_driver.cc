// SPDX-License-Identifier: Apache-2.0
// vtd_guest_driver.cc: VtdGuestDriver, the guest VT-d driver's virtual command path (DOMAIN.md
// §4.4: vcmd_alloc_pasid / vcmd_free_pasid, intel_vcmd_ioasid_alloc / _free,
// register_pasid_allocator) over VT-d 3.0 §10.4.43-45 or 3.3 §10.4.43-46 registers.
//
// Invariants: VCMD is written only under mu_ and only when no earlier command of this driver can
// still be in progress (stale_cmd_ == 0 after draining); every allocator callback runs under the
// guest space's writer lock and calls nothing of the space but find_raw().
#include "ioasid/vtd_guest_driver.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <thread>

#include "common/internal/futex_mutex.hpp"

namespace ioasid {

using wire::vtd::VcmdStatus;

VtdGuestDriver::VtdGuestDriver(MmioAccessor& mmio, const VtdGuestDriverOptions& options) noexcept
    : mmio_(mmio),
      options_(options),
      l_(wire::vtd::layout_spec(options.layout)),
      ops_{&VtdGuestDriver::ops_alloc, &VtdGuestDriver::ops_free, this} {}

VtdGuestDriver::~VtdGuestDriver() { unregister_allocator(); }

void VtdGuestDriver::log(LogLevel level, const char* fmt, ...) const noexcept {
  if (options_.log_sink == nullptr) return;
  char buf[192];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  options_.log_sink(options_.log_opaque, level, buf);
}

bool VtdGuestDriver::probe() noexcept {
  const std::uint64_t cap = mmio_.read64(wire::vtd::kCapRegOffset);
  const std::uint64_t ecap = mmio_.read64(wire::vtd::kEcapRegOffset);
  // Linux map_iommu(): VCCAP exists only when ECAP.VCS says so.
  const std::uint64_t vccap = (ecap & wire::vtd::kEcapVcs) != 0 ? mmio_.read64(l_.vccap_offset) : 0;
  cap_.store(cap, std::memory_order_relaxed);
  ecap_.store(ecap, std::memory_order_relaxed);
  vccap_.store(vccap, std::memory_order_relaxed);
  // register_pasid_allocator(): !CM -> a host, nothing to do; !SMTS -> no scalable mode;
  // !VCCAP.PAS -> no PASID commands. Kevin Tian's review: check VCS, not only CM.
  const bool ok = (cap & wire::vtd::kCapCm) != 0 && (ecap & wire::vtd::kEcapSmts) != 0 &&
                  (ecap & wire::vtd::kEcapVcs) != 0 && (vccap & wire::vtd::kVccapPas) != 0;
  capable_.store(ok, std::memory_order_release);
  return ok;
}

bool VtdGuestDriver::vcmd_capable() const noexcept {
  return capable_.load(std::memory_order_acquire);
}
std::uint64_t VtdGuestDriver::cap() const noexcept { return cap_.load(std::memory_order_relaxed); }
std::uint64_t VtdGuestDriver::ecap() const noexcept {
  return ecap_.load(std::memory_order_relaxed);
}
std::uint64_t VtdGuestDriver::vccap() const noexcept {
  return vccap_.load(std::memory_order_relaxed);
}
const wire::vtd::LayoutSpec& VtdGuestDriver::layout() const noexcept { return l_; }

void VtdGuestDriver::write_vcmd_locked(std::uint64_t value) noexcept {
  st_.commands.inc();
  if (options_.split_writes) {
    mmio_.write32(l_.vcmd_offset, static_cast<std::uint32_t>(value));
    mmio_.write32(l_.vcmd_offset + 4, static_cast<std::uint32_t>(value >> 32));
  } else {
    mmio_.write64(l_.vcmd_offset, value);
  }
}

// IOMMU_WAIT_OP(VCRSP, !(sts & IP)) with a deadline instead of a panic.
// The clock is read only once IP has been seen set (an immediate-mode device never costs one).
bool VtdGuestDriver::poll_locked(std::uint64_t* rsp) noexcept {
  std::uint64_t v = mmio_.read64(l_.vcrsp_offset);
  st_.polls.inc();
  if ((v & wire::vtd::kVcrspIp) == 0) {
    *rsp = v;
    return true;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.poll_timeout;
  for (std::uint32_t spins = 1;; ++spins) {
    v = mmio_.read64(l_.vcrsp_offset);
    st_.polls.inc();
    if ((v & wire::vtd::kVcrspIp) == 0) {
      *rsp = v;
      return true;
    }
    if ((spins & 63) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::yield();
    }
  }
}

bool VtdGuestDriver::run_locked(std::uint8_t cmd, Id operand, std::uint64_t* rsp) noexcept {
  if (stale_cmd_ != 0) {
    // A command that timed out earlier: wait for it so its response is not taken for ours.
    std::uint64_t late = 0;
    if (!poll_locked(&late)) {
      st_.timeouts.inc();
      log(LogLevel::error, "vtd-vcmd: command %u still in progress", stale_cmd_);
      return false;
    }
    st_.late_responses.inc();
    const std::uint8_t stale = stale_cmd_;
    stale_cmd_ = 0;
    const wire::vtd::VcrspFields f = wire::vtd::decode_vcrsp(l_, late);
    if (stale == wire::vtd::kVcmdAllocPasid &&
        wire::vtd::decode_status(l_, stale, f.sc) == VcmdStatus::success) {
      // Nobody received this PASID: give it back rather than leak it in the host.
      log(LogLevel::warning, "vtd-vcmd: late ALLOC answer %u freed", f.result);
      write_vcmd_locked(wire::vtd::encode_vcmd(l_, wire::vtd::kVcmdFreePasid, f.result));
      if (!poll_locked(&late)) {
        st_.timeouts.inc();
        stale_cmd_ = wire::vtd::kVcmdFreePasid;
        return false;
      }
    }
  }
  write_vcmd_locked(wire::vtd::encode_vcmd(l_, cmd, operand));
  if (!poll_locked(rsp)) {
    st_.timeouts.inc();
    stale_cmd_ = cmd;
    log(LogLevel::error, "vtd-vcmd: command %u timed out (VCRSP.IP still set)", cmd);
    return false;
  }
  return true;
}

Result<Id> VtdGuestDriver::vcmd_alloc() noexcept {
  if (!vcmd_capable()) return fail(Errc::unsupported);
  std::uint64_t rsp = 0;
  Errc e;
  std::uint8_t sc;
  {
    // The outcome counters are bumped under the command lock too: plain stores, no locked
    // instruction on the command path.
    internal::FutexWordLock cmd_lock(mu_);
    std::lock_guard<internal::FutexWordLock> lock(cmd_lock);
    if (!run_locked(wire::vtd::kVcmdAllocPasid, 0, &rsp)) return fail(Errc::timed_out);
    const wire::vtd::VcrspFields f = wire::vtd::decode_vcrsp(l_, rsp);
    const VcmdStatus s = wire::vtd::decode_status(l_, wire::vtd::kVcmdAllocPasid, f.sc);
    if (s == VcmdStatus::success) {
      st_.allocs.inc();
      return Id{f.result};
    }
    // The VT-d column of the error table: NO_PASID -> exhausted, anything else -> io_error.
    e = from_vtd_status(s);
    sc = f.sc;
    if (e == Errc::exhausted) {
      st_.alloc_no_pasid.inc();
    } else {
      st_.alloc_errors.inc();
    }
  }
  if (e != Errc::exhausted) log(LogLevel::error, "vtd-vcmd: ALLOC: unexpected status code %u", sc);
  return fail(e);
}

void VtdGuestDriver::vcmd_free(Id pasid) noexcept {
  if (!vcmd_capable()) {
    free_errors_outside_.inc();
    log(LogLevel::warning, "vtd-vcmd: FREE %u: no virtual command support", pasid);
    return;
  }
  std::uint64_t rsp = 0;
  VcmdStatus s;
  std::uint8_t sc;
  {
    internal::FutexWordLock cmd_lock(mu_);
    std::lock_guard<internal::FutexWordLock> lock(cmd_lock);
    if (!run_locked(wire::vtd::kVcmdFreePasid, pasid, &rsp)) {
      st_.free_errors.inc();
      return;  // logged by run_locked
    }
    const wire::vtd::VcrspFields f = wire::vtd::decode_vcrsp(l_, rsp);
    s = wire::vtd::decode_status(l_, wire::vtd::kVcmdFreePasid, f.sc);
    sc = f.sc;
    if (s == VcmdStatus::success) {
      st_.frees.inc();
      return;
    }
    st_.free_errors.inc();
  }
  if (s == VcmdStatus::invalid_pasid) {
    log(LogLevel::info, "vtd-vcmd: FREE %u: invalid PASID", pasid);
  } else {
    log(LogLevel::warning, "vtd-vcmd: FREE %u: unexpected status code %u", pasid, sc);
  }
}

// intel_vcmd_ioasid_alloc(): the host picks any PASID of the 20-bit space; the guest space
// checks it against [min, max] and hands it back when it does not fit.
int VtdGuestDriver::ops_alloc(void* pdata, Id min, Id max, Id* out) {
  auto* d = static_cast<VtdGuestDriver*>(pdata);
  if (min < wire::vtd::kVcmdPasidMin || max > wire::vtd::kVcmdPasidMax) {
    d->st_.range_refusals.inc();
    d->log(LogLevel::warning, "vtd-vcmd: alloc [%u, %u] refused: outside [1, 0xfffff]", min, max);
    return -EINVAL;
  }
  Result<Id> id = d->vcmd_alloc();
  if (!id) return -to_errno(id.error());
  *out = *id;
  return 0;
}

// intel_vcmd_ioasid_free(): refuse while the PASID still carries private data.
void VtdGuestDriver::ops_free(void* pdata, Id id) {
  auto* d = static_cast<VtdGuestDriver*>(pdata);
  Space* space = d->find_space_.load(std::memory_order_acquire);
  void* priv = nullptr;
  if (space != nullptr && space->find_raw(SetId::any(), id, nullptr, nullptr, &priv) == Errc{} &&
      priv != nullptr) {
    d->st_.free_refused_active.inc();
    d->log(LogLevel::error, "vtd-vcmd: cannot free active PASID %u (private data attached)", id);
    return;
  }
  d->vcmd_free(id);
}

Result<void> VtdGuestDriver::register_allocator(Space& guest) noexcept {
  std::lock_guard<std::mutex> lock(reg_mu_);
  if (space_ != nullptr) return fail(Errc::exists);
  if (!probe()) {
    log(LogLevel::info,
        "vtd-vcmd: no virtual command PASID allocation (CAP %#llx ECAP %#llx "
        "VCCAP %#llx)",
        static_cast<unsigned long long>(cap()), static_cast<unsigned long long>(ecap()),
        static_cast<unsigned long long>(vccap()));
    return fail(Errc::unsupported);
  }
  find_space_.store(&guest, std::memory_order_release);
  Result<void> r = guest.register_allocator(&ops_);
  if (!r) {
    find_space_.store(nullptr, std::memory_order_release);
    log(LogLevel::warning, "vtd-vcmd: register_allocator failed: %s", to_string(r.error()));
    return r;
  }
  space_ = &guest;
  return {};
}

void VtdGuestDriver::unregister_allocator() noexcept {
  std::lock_guard<std::mutex> lock(reg_mu_);
  if (space_ == nullptr) return;
  space_->unregister_allocator(&ops_);
  space_ = nullptr;
  find_space_.store(nullptr, std::memory_order_release);
}

bool VtdGuestDriver::registered() const noexcept {
  std::lock_guard<std::mutex> lock(reg_mu_);
  return space_ != nullptr;
}

const AllocatorOps& VtdGuestDriver::allocator_ops() const noexcept { return ops_; }

VtdGuestDriverStats VtdGuestDriver::stats() const noexcept {
  VtdGuestDriverStats s;
  s.commands = st_.commands.get();
  s.polls = st_.polls.get();
  s.timeouts = st_.timeouts.get();
  s.allocs = st_.allocs.get();
  s.alloc_no_pasid = st_.alloc_no_pasid.get();
  s.alloc_errors = st_.alloc_errors.get();
  s.frees = st_.frees.get();
  s.free_errors = st_.free_errors.get() + free_errors_outside_.get();
  s.free_refused_active = st_.free_refused_active.get();
  s.range_refusals = st_.range_refusals.get();
  s.late_responses = st_.late_responses.get();
  return s;
}

}  // namespace ioasid
