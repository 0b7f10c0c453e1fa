// SPDX-License-Identifier: Apache-2.0
// vtd_device.cc: VtdVcmdDevice, the VT-d virtual command register model (VT-d 3.0 §10.4.43-45 and
// 3.3 §10.4.43-46; DOMAIN.md §4.5 describes the QEMU RFC behaviour followed here, with Peter Xu's
// review points: IP checked once at entry, the command runs on the write that completes it).
//
// State: vcmd_ (last accepted command), vcrsp_ (response) and the latched low half live in atomics
// so that reads never block; acceptance of a command (check IP, set IP) happens under mu_, so two
// vCPUs cannot both start a command. Invariant: while vcrsp_ has IP set, exactly one command is
// pending (immediate: the running mmio_write; asynchronous: pending_ for the worker) and nothing
// else writes vcrsp_. The final VCRSP value (IP clear) is published with a release store after the
// backend call, so a guest that sees IP clear sees the result.
#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <new>
#include <thread>

#include "ioasid/vtd_device.hpp"

#include "common/internal/futex_mutex.hpp"

namespace ioasid {

using wire::vtd::LayoutSpec;
using wire::vtd::VcmdReg;
using wire::vtd::VcmdStatus;

namespace {

// Bumped from any thread at once (the lock-free read path): an atomic read-modify-write.
struct Counter {
  std::atomic<std::uint64_t> v{0};
  void inc() noexcept { v.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

// Bumped by one writer at a time, ordered by mu (command acceptance and execution): a plain
// load + store, no locked instruction on the command path; stats() may read it at any time.
struct SoloCounter {
  std::atomic<std::uint64_t> v{0};
  void inc() noexcept { v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

constexpr std::uint64_t kLow32 = 0xFFFFFFFFu;

}  // namespace

struct VtdVcmdDevice::Impl {
  // May throw std::bad_alloc (condition_variable_any allocates its internal mutex).
  Impl(HostBackend& b, const VtdVcmdDeviceOptions& o)
      : backend(b), opts(o), l(wire::vtd::layout_spec(o.layout)) {}

  HostBackend& backend;
  const VtdVcmdDeviceOptions opts;
  const LayoutSpec& l;

  std::atomic<std::uint64_t> vcmd{0};
  std::atomic<std::uint64_t> vcrsp{0};
  std::atomic<std::uint64_t> low_latch{0};
  std::atomic<bool> low_latched{false};

  internal::FutexMutex mu;  // command acceptance; the worker's queue
  std::condition_variable_any cv;
  bool pending = false;  // asynchronous: a command waits for the worker (under mu)
  std::uint64_t pending_value = 0;
  bool stopping = false;
  std::thread worker;

  struct {
    Counter reads, bad_accesses, unknown_accesses, ro_writes;
    // Under mu, or in execute(), which runs for one accepted command at a time (IP protocol).
    SoloCounter writes, commands, allocs, alloc_no_pasid, frees, free_invalid_pasid, undefined_cmds,
        ignored_busy, ignored_disabled, reserved_bits, split_orphans, backend_errors,
        backend_bad_answers;
  } st;

  [[gnu::format(printf, 3, 4)]] void log(LogLevel level, const char* fmt, ...) noexcept {
    if (opts.log_sink == nullptr) return;
    char buf[192];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    opts.log_sink(opts.log_opaque, level, buf);
  }

  bool enabled() const noexcept {
    return (opts.ecap & wire::vtd::kEcapVcs) != 0 && (opts.vccap & wire::vtd::kVccapPas) != 0;
  }

  std::uint64_t reg_value(VcmdReg reg) const noexcept {
    switch (reg) {
      case VcmdReg::cap:
        return opts.cap;
      case VcmdReg::ecap:
        return opts.ecap;
      case VcmdReg::vccap:
        return opts.vccap;
      case VcmdReg::vcmd:
        return vcmd.load(std::memory_order_relaxed);
      case VcmdReg::vcrsp:
        break;
    }
    return vcrsp.load(std::memory_order_acquire);
  }

  // Runs one accepted command and returns the final VCRSP (IP clear).
  std::uint64_t execute(std::uint64_t value) noexcept {
    const wire::vtd::VcmdFields f = wire::vtd::decode_vcmd(l, value);
    st.commands.inc();
    std::uint64_t reserved = f.reserved;
    if (f.cmd == wire::vtd::kVcmdAllocPasid && f.operand != 0) {
      reserved |= std::uint64_t{f.operand} << l.operand_shift;
    }
    if (reserved != 0) {
      st.reserved_bits.inc();
      log(LogLevel::debug, "vtd-vcmd: reserved bits %#llx ignored in command %#llx",
          static_cast<unsigned long long>(reserved), static_cast<unsigned long long>(value));
    }
    switch (f.cmd) {
      case wire::vtd::kVcmdAllocPasid:
        return do_alloc();
      case wire::vtd::kVcmdFreePasid:
        return do_free(f.operand);
      default:
        break;
    }
    st.undefined_cmds.inc();
    log(LogLevel::debug, "vtd-vcmd: undefined command %#x", f.cmd);
    return respond(VcmdStatus::undefined_cmd, 0);
  }

  std::uint64_t respond(VcmdStatus status, Id result) const noexcept {
    return wire::vtd::encode_vcrsp(l, false, wire::vtd::status_code(l, status), result);
  }

  std::uint64_t do_alloc() noexcept {
    Result<Id> id = backend.alloc(opts.pasid_min, opts.pasid_max);
    if (id && (*id < opts.pasid_min || *id > opts.pasid_max)) {
      st.backend_bad_answers.inc();
      log(LogLevel::warning, "vtd-vcmd: backend answered PASID %u outside [%u, %u], handed back",
          *id, opts.pasid_min, opts.pasid_max);
      (void)backend.free(*id);
      id = fail(Errc::io_error);
    }
    if (!id) {
      const Errc e = id.error();
      if (e != Errc::exhausted && e != Errc::quota_exceeded) st.backend_errors.inc();
      st.alloc_no_pasid.inc();
      log(LogLevel::info, "vtd-vcmd: ALLOC failed: %s", to_string(e));
      return respond(to_vtd_status(wire::vtd::kVcmdAllocPasid, e), 0);
    }
    st.allocs.inc();
    return respond(VcmdStatus::success, *id);
  }

  std::uint64_t do_free(Id pasid) noexcept {
    Errc e{};
    if (pasid < opts.pasid_min || pasid > opts.pasid_max) {
      e = Errc::out_of_range;
    } else if (Result<void> r = backend.free(pasid); !r) {
      e = r.error();
      if (e != Errc::not_found && e != Errc::not_owner && e != Errc::busy) {
        st.backend_errors.inc();
      }
    }
    if (e != Errc{}) {
      st.free_invalid_pasid.inc();
      log(LogLevel::info, "vtd-vcmd: FREE of PASID %u refused: %s", pasid, to_string(e));
      return respond(to_vtd_status(wire::vtd::kVcmdFreePasid, e), 0);
    }
    st.frees.inc();
    return respond(VcmdStatus::success, 0);
  }

  // A complete 64-bit command value arrived. Context: mu held by the caller's lock.
  void submit(std::unique_lock<internal::FutexMutex>& lock, std::uint64_t value) noexcept {
    if (!enabled()) {
      st.ignored_disabled.inc();
      return;
    }
    if ((vcrsp.load(std::memory_order_relaxed) & wire::vtd::kVcrspIp) != 0) {
      st.ignored_busy.inc();
      log(LogLevel::debug, "vtd-vcmd: command %#llx ignored: in progress",
          static_cast<unsigned long long>(value));
      return;
    }
    vcmd.store(value, std::memory_order_relaxed);
    vcrsp.store(wire::vtd::kVcrspIp, std::memory_order_release);
    if (opts.completion == VtdCompletion::immediate) {
      // mu stays held: a concurrent write waits and then sees the completed command.
      vcrsp.store(execute(value), std::memory_order_release);
      return;
    }
    pending = true;
    pending_value = value;
    lock.unlock();
    cv.notify_all();
  }

  void worker_loop() noexcept {
    std::unique_lock<internal::FutexMutex> lock(mu);
    for (;;) {
      cv.wait(lock, [this] { return pending || stopping; });
      if (!pending) return;  // stopping, nothing left
      const std::uint64_t value = pending_value;
      lock.unlock();
      if (opts.async_delay.count() > 0) std::this_thread::sleep_for(opts.async_delay);
      const std::uint64_t rsp = execute(value);
      lock.lock();
      pending = false;
      // IP clears last: the guest sees the result with it.
      vcrsp.store(rsp, std::memory_order_release);
      cv.notify_all();
    }
  }

  void write_vcmd(std::uint64_t offset_in_reg, unsigned size, std::uint64_t value) noexcept {
    std::unique_lock<internal::FutexMutex> lock(mu);
    st.writes.inc();
    if (size == 8) {
      low_latched.store(false, std::memory_order_relaxed);
      submit(lock, value);
      return;
    }
    if (offset_in_reg == 0) {
      // Low half: latched, the command runs when the high half lands (Peter Xu's review).
      if (!enabled()) {
        st.ignored_disabled.inc();
        return;
      }
      if ((vcrsp.load(std::memory_order_relaxed) & wire::vtd::kVcrspIp) != 0) {
        st.ignored_busy.inc();
        return;
      }
      low_latch.store(value & kLow32, std::memory_order_relaxed);
      low_latched.store(true, std::memory_order_relaxed);
      return;
    }
    if (!low_latched.load(std::memory_order_relaxed)) {
      st.split_orphans.inc();
      log(LogLevel::debug, "vtd-vcmd: high half of VCMD written without its low half");
      return;
    }
    low_latched.store(false, std::memory_order_relaxed);
    submit(lock, ((value & kLow32) << 32) | low_latch.load(std::memory_order_relaxed));
  }
};

Result<std::unique_ptr<VtdVcmdDevice>> VtdVcmdDevice::create(
    HostBackend& backend, const VtdVcmdDeviceOptions& options) noexcept {
  if (options.pasid_min < wire::vtd::kVcmdPasidMin ||
      options.pasid_max > wire::vtd::kVcmdPasidMax || options.pasid_min > options.pasid_max) {
    return fail(Errc::invalid_argument);
  }
  std::unique_ptr<Impl> impl;
  try {
    impl.reset(new Impl(backend, options));
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  // The device owns the Impl before the worker starts, so that every failure path below destroys
  // an Impl without a running thread (a joinable std::thread would terminate the process).
  std::unique_ptr<VtdVcmdDevice> dev(new (std::nothrow) VtdVcmdDevice(std::move(impl)));
  if (!dev) return fail(Errc::no_memory);
  if (options.completion == VtdCompletion::asynchronous) {
    try {
      Impl* p = dev->impl_.get();
      p->worker = std::thread([p] { p->worker_loop(); });
    } catch (...) {
      return fail(Errc::io_error);  // out of memory or threads; dev goes without a worker
    }
  }
  return dev;
}

VtdVcmdDevice::VtdVcmdDevice(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}

VtdVcmdDevice::~VtdVcmdDevice() {
  if (impl_ && impl_->worker.joinable()) {
    {
      std::lock_guard<internal::FutexMutex> lock(impl_->mu);
      impl_->stopping = true;
    }
    impl_->cv.notify_all();
    impl_->worker.join();
  }
}

std::uint64_t VtdVcmdDevice::mmio_read(std::uint64_t offset, unsigned size) noexcept {
  Impl& d = *impl_;
  // The guest's poll: an 8-byte read of VCRSP, without the register table walk.
  if (offset == d.l.vcrsp_offset && size == 8) {
    d.st.reads.inc();
    return d.vcrsp.load(std::memory_order_acquire);
  }
  if ((size != 4 && size != 8) || offset % size != 0) {
    d.st.bad_accesses.inc();
    return 0;
  }
  VcmdReg reg{};
  if (!wire::vtd::register_at(d.l, offset, &reg)) {
    d.st.unknown_accesses.inc();
    return 0;
  }
  d.st.reads.inc();
  const std::uint64_t v = d.reg_value(reg);
  if (size == 8) return v;
  return (offset % 8 == 0) ? (v & kLow32) : (v >> 32);
}

void VtdVcmdDevice::mmio_write(std::uint64_t offset, unsigned size, std::uint64_t value) noexcept {
  Impl& d = *impl_;
  // The guest's command: an 8-byte write of VCMD, without the register table walk.
  if (offset == d.l.vcmd_offset && size == 8) return d.write_vcmd(0, 8, value);
  if ((size != 4 && size != 8) || offset % size != 0) {
    d.st.bad_accesses.inc();
    return;
  }
  VcmdReg reg{};
  if (!wire::vtd::register_at(d.l, offset, &reg)) {
    d.st.unknown_accesses.inc();
    return;
  }
  if (reg != VcmdReg::vcmd) {
    d.st.ro_writes.inc();
    return;
  }
  d.write_vcmd(offset % 8, size, size == 4 ? (value & kLow32) : value);
}

bool VtdVcmdDevice::wait_idle(std::chrono::nanoseconds timeout) noexcept {
  Impl& d = *impl_;
  std::unique_lock<internal::FutexMutex> lock(d.mu);
  return d.cv.wait_for(lock, timeout, [&d] {
    return (d.vcrsp.load(std::memory_order_acquire) & wire::vtd::kVcrspIp) == 0;
  });
}

std::uint64_t VtdVcmdDevice::cap_bits() const noexcept { return impl_->opts.cap; }
std::uint64_t VtdVcmdDevice::ecap_bits() const noexcept { return impl_->opts.ecap; }
std::uint64_t VtdVcmdDevice::vccap() const noexcept { return impl_->opts.vccap; }
const wire::vtd::LayoutSpec& VtdVcmdDevice::layout() const noexcept { return impl_->l; }
VtdCompletion VtdVcmdDevice::completion() const noexcept { return impl_->opts.completion; }

VtdVcmdStats VtdVcmdDevice::stats() const noexcept {
  const auto& s = impl_->st;
  VtdVcmdStats out;
  out.reads = s.reads.get();
  out.writes = s.writes.get();
  out.commands = s.commands.get();
  out.allocs = s.allocs.get();
  out.alloc_no_pasid = s.alloc_no_pasid.get();
  out.frees = s.frees.get();
  out.free_invalid_pasid = s.free_invalid_pasid.get();
  out.undefined_cmds = s.undefined_cmds.get();
  out.ignored_busy = s.ignored_busy.get();
  out.ignored_disabled = s.ignored_disabled.get();
  out.bad_accesses = s.bad_accesses.get();
  out.unknown_accesses = s.unknown_accesses.get();
  out.ro_writes = s.ro_writes.get();
  out.reserved_bits = s.reserved_bits.get();
  out.split_orphans = s.split_orphans.get();
  out.backend_errors = s.backend_errors.get();
  out.backend_bad_answers = s.backend_bad_answers.get();
  return out;
}

}  // namespace ioasid
